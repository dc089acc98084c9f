/* Slimmable backbones: MobileNetV2, MobileNetV1, ResNet-50.
 *
 * One set of full-width weights runs at any width in [w_min, width_max] and any input size
 * (a multiple of 32). Each backbone exposes feature maps at strides 4, 8, 16, 32 (the last
 * ones dilated instead of strided when output_stride is 16 or 8) for FPN and DeepLab, and a
 * classification head. Parameter names follow torchvision so its weights import directly. */
#ifndef MN_BACKBONE_H
#define MN_BACKBONE_H

#include "slim.h"

enum mn_arch { MN_ARCH_MOBILENET_V2 = 0, MN_ARCH_MOBILENET_V1 = 1, MN_ARCH_RESNET50 = 2 };

typedef struct mn_backbone_config {
    enum mn_arch arch;
    int num_classes;      /* classifier outputs; 0: no classifier */
    int output_stride;    /* 32 (no dilation), 16 or 8 */
} mn_backbone_config;

typedef struct mn_features {
    mn_var *map[4];       /* (N, C_l, H / s_l, W / s_l) for levels 0..3 */
    int stride[4];        /* 4, 8, 16, 32, or capped at output_stride */
} mn_features;

typedef struct mn_backbone mn_backbone;

MN_API const char *mn_arch_name(enum mn_arch a);
/* "mobilenet_v2" | "mobilenet_v1" | "resnet50"; error naming the value otherwise. */
MN_API int mn_arch_parse(const char *s, enum mn_arch *a);

/* Registers the parameters in ps (names prefixed by prefix, e.g. "" or "backbone.") and
 * initialises them from rng (spec §2). */
MN_API int mn_backbone_create(mn_backbone **out, const mn_backbone_config *cfg, mn_param_set *ps, const char *prefix,
                              mn_rng *rng);
MN_API void mn_backbone_free(mn_backbone *b);
MN_API const mn_backbone_config *mn_backbone_cfg(const mn_backbone *b);

/* x (N, 3, H, W) -> feature maps (f may be NULL) and, when logits is non-NULL, the
 * classifier's (N, num_classes). Width and mode come from r. */
MN_API int mn_backbone_forward(mn_backbone *b, mn_run *r, mn_var *x, mn_features *f, mn_var **logits);
/* Channels of feature level (0..3) at width w. */
MN_API int mn_backbone_channels(const mn_backbone *b, float w, int level);
/* Every BN layer, for calibration. */
MN_API int mn_backbone_bn_layers(mn_backbone *b, mn_slim_bn ***layers);

/* Fine-tuning stages (model.frozen_stages counts them): 0 the stem, 1..4 the layers up to the
 * stride 4, 8, 16 and 32 feature maps (MobileNetV2's 1280-channel tail joins 4),
 * MN_BACKBONE_STAGES the classifier. */
#define MN_BACKBONE_STAGES 5
/* The stage of a parameter name of arch (without the prefix it was registered under, e.g.
 * "features.4.conv.0.0.weight" -> 2, "layer3.1.bn2.weight" -> 3, "fc.bias" -> 5); -1 when the
 * architecture has no such name. */
MN_API int mn_backbone_stage(enum mn_arch arch, const char *name);

/* Multiply-accumulates (conv + linear, per image, as the paper counts) and parameters
 * used at width w and input h x w_px, with the classifier when with_classifier. */
MN_API int mn_backbone_flops(mn_backbone *b, float width, int h, int w_px, bool with_classifier, int64_t *macs,
                             int64_t *params);

#endif
