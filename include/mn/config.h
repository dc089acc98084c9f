/* Training / evaluation configuration, read from JSON strictly: unknown keys, wrong types and
 * out-of-range values are errors naming the file and the key; absent keys take the defaults
 * documented in the README (mn_config_describe prints them). */
#ifndef MN_CONFIG_H
#define MN_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "dataset.h"
#include "error.h"

#define MN_MAX_SCALES 8

enum mn_task_kind { MN_TASK_SEGMENTATION = 0, MN_TASK_DETECTION = 1, MN_TASK_CLASSIFICATION = 2 };
enum mn_mode { MN_MODE_MUTUALNET = 0, MN_MODE_USNET = 1, MN_MODE_INDEPENDENT = 2 };
enum mn_distill { MN_DISTILL_NONE = 0, MN_DISTILL_KL = 1 };
enum mn_schedule { MN_SCHED_COSINE = 0, MN_SCHED_POLY = 1 };

typedef struct mn_config {
    enum mn_task_kind task;
    struct {
        char backbone[32];      /* mobilenet_v2 | mobilenet_v1 | resnet50 */
        int output_stride;      /* 16 | 8 */
        char decoder[16];       /* v3plus | v3 */
        bool slim_head;
        bool sync_bn;           /* with several ranks: BN statistics over the global batch */
        int aspp_channels, low_level_channels;
        char init[512];         /* safetensors weights to start from ("" = random init) */
        int frozen_stages;      /* fine-tuning: backbone stages 0..k-1 (0 the stem) kept as they are */
        bool norm_eval;         /* fine-tuning: backbone BN keeps its running statistics in training */
    } model;
    struct {
        char kind[16];          /* folder | voc | cityscapes | coco | imagefolder */
        char root[512];
        char train_split[32], val_split[32];
        char images[256], labels[256];   /* folder kind: folders under root, "{split}" replaced */
        char classes[512];      /* folder kind: class list file (root-relative or absolute) */
        char annotations[256];  /* coco kind: instances JSON under root, "{split}" replaced */
        int void_index;
        int crop[2];            /* training crop (h, w), multiples of 32 */
        int eval_size[2];       /* evaluation input (h, w) at scale 1, multiples of 32 */
        float scale_range[2];   /* random rescale in augmentation */
        bool hflip;
        float crop_area[2];     /* classification: RandomResizedCrop's area fraction range */
        float crop_ratio[2];    /* classification: its aspect ratio range */
        float eval_crop;        /* classification: evaluation centre crop fraction */
        int workers;
        int max_pixels;         /* largest width x height of an image file, checked from its header */
    } data;
    struct {
        enum mn_mode mode;
        float width_min, width_max;
        int num_subnets;        /* networks per iteration, the full one included (4) */
        int n_scales;
        float scales[MN_MAX_SCALES];   /* input scales for sub-networks, scales[0] = 1 = the full net's */
        enum mn_distill distill;
        float gt_weight, distill_weight;   /* sub-network losses */
        float width;            /* independent mode: the one width trained */
    } mutual;
    struct {
        float lr, momentum, weight_decay;
        bool nesterov;
        enum mn_schedule schedule;
        float power;            /* poly */
        int warmup_iters;
        float warmup_factor;
        float clip_grad_norm;   /* > 0: gradients' joint L2 norm capped at this before each step */
        float backbone_lr_mult; /* the backbone's learning rate is lr x this (the classifier's is lr) */
    } optim;
    struct {
        int batch_size, iterations;
        unsigned long long seed;
        int checkpoint_every, log_every, eval_every;
        int check_every;        /* several ranks: iterations between checks that their parameters agree */
        char out_dir[512];
    } train;
    struct {
        int batches;            /* BN calibration batches per configuration */
        float width_step;
    } calibrate;
    struct {                    /* detection (task "detection"); model.slim_head applies too */
        int short_side;         /* the full network's input short side (torchvision 800, the paper 600);
                                 * sub-networks use short_side x mutual.scales */
        int max_side;           /* cap on the long side (1333; the paper 1000) */
        int anchor_size;        /* anchor side on P2, doubling per level to P6 (32) */
        int fpn_channels, box_hidden;     /* at width 1 (256, 1024) */
        int rpn_pre_nms_train, rpn_post_nms_train, rpn_pre_nms_test, rpn_post_nms_test;
        int rpn_batch, roi_batch;         /* anchors / RoIs sampled per image (256, 512) */
        float score_thresh;     /* detections kept above this class probability (0.05) */
        int detections_per_img; /* (100) */
    } det;
} mn_config;

MN_API void mn_config_default(mn_config *c);
/* Reads path over the defaults. */
MN_API int mn_config_load(const char *path, mn_config *c);
/* Parses JSON text over the defaults; `origin` names the source in error messages. */
MN_API int mn_config_parse(const char *json, const char *origin, mn_config *c);
/* Sets one key from text ("model.backbone", "resnet50"; numbers, booleans and lists as
 * JSON): the command line's --set key=value. The key's own type and range are checked here;
 * rules that tie keys together wait for mn_config_check, so that several --set may pass
 * through a combination that is invalid only half-way. */
MN_API int mn_config_set(mn_config *c, const char *key, const char *value);
/* The rules between keys (task and data kind, width and scale ranges, ...); origin names the
 * source in the message. mn_config_load and mn_config_parse apply it themselves. */
MN_API int mn_config_check(const mn_config *c, const char *origin);
/* mn_config_load, then each "KEY=VALUE" of sets (the command line's --set) in order, then one
 * mn_config_check of the result. */
MN_API int mn_config_load_with(const char *path, const char *const *sets /* (n_sets) */, int n_sets, mn_config *c);
/* The configuration as JSON (malloc'd), every key present: stored in checkpoints. */
MN_API char *mn_config_to_json(const mn_config *c);
/* The keys whose values differ between a and b, as "key old -> new" joined by ", " into out
 * (truncated to n bytes); run_keys_only skips the keys that cannot change a training run's
 * numbers (out_dir, logging and checkpoint intervals, workers, evaluation and calibration
 * settings). Returns how many differ. */
MN_API int mn_config_diff(const mn_config *a, const mn_config *b, bool run_keys_only, char *out, size_t n);
/* The data set options of split `split` as the configuration describes them. The strings
 * point into c, which must outlive *o. */
MN_API void mn_config_dataset_options(const mn_config *c, const char *split, mn_dataset_options *o);
/* Segmentation's augmentation as c asks for it: crop, rescale range and flips when train, a
 * plain resize to the crop otherwise. */
MN_API mn_seg_aug mn_config_seg_aug(const mn_config *c, bool train);
/* Classification's: the random resized crop of data.crop and flips when train; otherwise the
 * centre crop of data.eval_size (set out_h / out_w for other sizes). */
MN_API mn_cls_aug mn_config_cls_aug(const mn_config *c, bool train);
/* An input side scaled by a sub-network's or a table's scale (side x scale), rounded to the
 * nearest multiple of 32 and at least 32: the sizes the networks run at below scale 1. */
MN_API int mn_round32(double v);
/* Prints every key, its type, default and meaning (the README's reference). */
MN_API void mn_config_describe(FILE *f);

#endif
