/* DeepLab-style semantic segmentation on a slimmable backbone: DeepLabV3 (ASPP) and the
 * DeepLabV3+ decoder. By default the head is slimmable too: its channels follow the width
 * multiplier (make_divisible(., 8)) and only the classifier's outputs are never sliced; with
 * slim_head = false the head stays at full width and its first layers read the sliced
 * backbone features (the paper's choice for its detector). */
#ifndef MN_SEG_H
#define MN_SEG_H

#include "backbone.h"

typedef struct mn_seg_config {
    mn_backbone_config backbone;   /* output_stride 16 or 8 */
    int num_classes;               /* segmentation classes (logit channels) */
    bool v3plus;                   /* add the stride-4 decoder */
    bool slim_head;                /* head channels follow the width (default true) */
    int aspp_channels;             /* 256 */
    int low_level_channels;        /* 48: V3+ projection of the stride-4 features */
} mn_seg_config;

/* Defaults: MobileNetV2, output stride 16, V3+, slimmable head, 256 / 48 channels. */
MN_API void mn_seg_config_default(mn_seg_config *cfg, int num_classes);

typedef struct mn_segmenter mn_segmenter;

/* Registers backbone ("backbone.") and head ("head.") parameters in ps. */
MN_API int mn_seg_create(mn_segmenter **out, const mn_seg_config *cfg, mn_param_set *ps, mn_rng *rng);
MN_API void mn_seg_free(mn_segmenter *s);
MN_API const mn_seg_config *mn_seg_cfg(const mn_segmenter *s);
/* x (N, 3, H, W), H and W multiples of 32 -> logits (N, K, H, W) (bilinear upsampling of the
 * head's output); NULL on error. */
MN_API mn_var *mn_seg_forward(mn_segmenter *s, mn_run *r, mn_var *x);
/* Logits at the head's own resolution (stride 4 for V3+, output_stride for V3), before
 * upsampling: what distillation compares. */
MN_API mn_var *mn_seg_forward_raw(mn_segmenter *s, mn_run *r, mn_var *x);
/* Every BN layer of backbone and head. */
MN_API int mn_seg_bn_layers(mn_segmenter *s, mn_slim_bn ***layers);
/* Whole-model multiply-accumulates and parameters at width w and input h x w_px. */
MN_API int mn_seg_flops(mn_segmenter *s, float width, int h, int w_px, int64_t *macs, int64_t *params);

#endif
