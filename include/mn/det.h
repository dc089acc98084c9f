/* Faster R-CNN with FPN (Ren et al. 2015, Lin et al. 2017) over a slimmable backbone, following
 * torchvision 0.14's fasterrcnn_*_fpn stage by stage.
 *
 * Backbone levels C2..C5 (strides 4..32) feed an FPN (lateral 1x1 convs reading the sliced
 * backbone features, nearest top-down upsampling, 3x3 output convs, no BN, with bias; P6 is a
 * stride-2 max-pool with kernel 1 of P5). An RPN head (3x3 conv + ReLU, 1x1 objectness and box
 * deltas) runs on P2..P6; proposals come from per-level top-k, clipping, small-box removal and
 * per-level NMS. Proposals are pooled from P2..P5 by multi-level RoIAlign (7x7, sampling ratio
 * 2, aligned = False, as MultiScaleRoIAlign calls it) with level
 * k = clamp(floor(4 + log2(sqrt(area) / 224) + 1e-6), 2, 5) (torchvision's LevelMapper puts the
 * eps outside the log), then a two-layer MLP box head and a predictor with class scores and
 * class-specific box deltas.
 *
 * Slimmable head (default): FPN channels, the RPN conv and the box head's hidden widths follow
 * the width multiplier as make_divisible(c w, 8); objectness, RPN deltas, class scores and box
 * outputs are never sliced. slim_head = false keeps neck and heads at full width: only the
 * lateral convs' inputs follow the backbone (the same as zero-padding the features).
 *
 * Parameters: "backbone.*" (torchvision names), "neck.inner_blocks.{0..3}", "neck.layer_blocks.{0..3}",
 * "rpn.conv", "rpn.cls_logits", "rpn.bbox_pred", "roi.fc6", "roi.fc7", "roi.cls_score",
 * "roi.bbox_pred" (each ".weight" and ".bias"). Initialisation as torchvision: FPN convs
 * kaiming-uniform(a = 1), RPN convs N(0, 0.01), linear layers nn.Linear's default; biases 0 except
 * the linear layers' (nn.Linear's uniform). Backbone BN stays in the mode mn_run says (training
 * mode in training: the paper's author advises against freezing it). */
#ifndef MN_DET_H
#define MN_DET_H

#include "backbone.h"
#include "targets.h" /* mn_box; mn_det_image (the data set transform produces it) */

#define MN_DET_LEVELS 5     /* P2..P6 */
#define MN_DET_MAX_CELL 8   /* anchor sizes x ratios per level */

typedef struct mn_det_config {
    mn_backbone_config backbone;  /* output_stride 32 */
    int num_classes;              /* including background: K + 1 */
    bool slim_head;               /* neck and heads follow the width (default true) */
    int fpn_channels;             /* 256 at width 1 */
    int box_hidden;               /* 1024 */

    /* anchors on P2..P6: n_sizes[l] sizes and n_ratios[l] aspect ratios (h / w) per level; the
     * product must be the same on every level (one RPN head serves all) */
    float anchor_sizes[MN_DET_LEVELS][MN_DET_MAX_CELL];    /* 32, 64, 128, 256, 512 */
    int n_sizes[MN_DET_LEVELS];                            /* 1 */
    float aspect_ratios[MN_DET_LEVELS][MN_DET_MAX_CELL];   /* 0.5, 1, 2 */
    int n_ratios[MN_DET_LEVELS];                           /* 3 */

    /* RPN */
    int rpn_pre_nms_train, rpn_post_nms_train;  /* 2000 / 2000: top-k per level before NMS, per image after */
    int rpn_pre_nms_test, rpn_post_nms_test;    /* 1000 / 1000 */
    float rpn_nms;                /* 0.7, within each level */
    float rpn_min_size;           /* 1e-3: proposals with a side below this are dropped */
    float rpn_score_thresh;       /* 0: sigmoid(objectness) >= this */
    float rpn_fg_iou, rpn_bg_iou; /* 0.7 / 0.3, low-quality matches allowed */
    int rpn_batch;                /* 256 anchors sampled per image */
    float rpn_pos_fraction;       /* 0.5 */
    float rpn_box_beta;           /* smooth-L1 beta, 1/9; 0 = L1 */

    /* RoI head */
    int roi_size;                 /* 7: RoIAlign output side */
    int roi_sampling_ratio;       /* 2 */
    float roi_fg_iou, roi_bg_iou; /* 0.5 / 0.5 */
    int roi_batch;                /* 512 RoIs sampled per image (ground truth added to the proposals first) */
    float roi_pos_fraction;       /* 0.25 */
    float roi_box_beta;           /* smooth-L1 beta, 1/9; 0 = L1 */
    float score_thresh;           /* 0.05: detections need a class probability above this */
    float nms;                    /* 0.5, class-wise */
    int detections_per_img;       /* 100 */

    /* FLOPs: the box head is counted on this many RoIs per image (0: rpn_post_nms_test) */
    int flops_rois;
} mn_det_config;

/* MobileNetV2 backbone (output stride 32), slimmable head, 256 FPN channels, 1024 hidden, and
 * torchvision's defaults for everything listed above. */
MN_API void mn_det_config_default(mn_det_config *c, int num_classes);

typedef struct mn_detector mn_detector;

/* Registers "backbone.*", "neck.*", "rpn.*", "roi.*" in ps and initialises them from rng. */
MN_API int mn_det_create(mn_detector **out, const mn_det_config *cfg, mn_param_set *ps, mn_rng *rng);
MN_API void mn_det_free(mn_detector *d);
MN_API const mn_det_config *mn_det_cfg(const mn_detector *d);
/* Every BN layer (the backbone's: neck and heads have none), for calibration. */
MN_API int mn_det_bn_layers(mn_detector *d, mn_slim_bn ***layers);

/* mn_det_image (include/mn/targets.h): per padded image, the valid (resized) region h x w, the
 * resize factor, whether it was mirrored, and the original size that detections map back to. */

typedef struct mn_det_targets {
    const mn_box *boxes;          /* n boxes in padded-image pixels; crowd boxes and empty ones are
                                   * ignored as targets (torchvision's reference drops them) */
    int n;
} mn_det_targets;

typedef struct mn_det_losses {
    mn_var *rpn_cls;              /* BCE over sampled anchors (mean) */
    mn_var *rpn_box;              /* smooth-L1 over positive anchors / sampled anchors */
    mn_var *cls;                  /* cross-entropy over sampled RoIs (mean) */
    mn_var *box;                  /* smooth-L1 on positive RoIs' class-specific deltas / sampled RoIs */
    mn_var *distill;              /* distillation terms (unweighted); NULL without a teacher */
    mn_var *total;                /* sum of the four, plus distill_weight * distill */
    int rpn_samples;              /* anchors the RPN losses average over (their normaliser) */
    int roi_samples;              /* RoIs the RoI losses average over */
} mn_det_losses;                  /* one-element variables on the run's tape */

/* Distillation (issue 7). A teacher pass (capture) copies out of its tape: its sampled RoIs (the
 * proposals its RoI head was trained on, ground truth included) with the valid image sizes they
 * refer to, its RoI class probabilities, and its RPN objectness probabilities on every anchor.
 * A student pass given the teacher (distill):
 *   - runs its RoI head on the teacher's RoIs, mapped to its own image size per axis (valid
 *     size ratio), with labels and regression targets matched against its own ground truth
 *     (no sampling: the teacher's sample is reused); no proposals of its own are made;
 *   - distill = KL(teacher || student) on the RoI class distributions (mean over RoIs)
 *     + binary cross-entropy of the student's objectness logits against the teacher's
 *     probabilities over all anchors (mean; the same gradient as the binary KL). Objectness is
 *     compared only when the anchor grids are the same (same padded input size); a student at
 *     another resolution gets the RoI term alone (resampling anchors across grids would pair
 *     anchors of different sizes and places).
 * The student keeps its ground-truth losses; total = GT losses + distill_weight * distill. */
typedef struct mn_det_teacher mn_det_teacher;
MN_API mn_det_teacher *mn_det_teacher_new(void);
MN_API void mn_det_teacher_free(mn_det_teacher *t);
/* How many RoIs the teacher holds (0 before a capture). */
MN_API int mn_det_teacher_rois(const mn_det_teacher *t);

/* images (N, 3, H, W), N <= 64, H and W multiples of 32; info and targets have N entries.
 * capture: the teacher pass records into it (may be NULL). distill: student pass using the
 * teacher (may be NULL; the same N images). rng drives the anchor and RoI samplers. Losses go to
 * out (vars on r->tape); BN follows r->training. The proposals use the training settings. */
MN_API int mn_det_forward_train(mn_detector *d, mn_run *r, mn_var *images, const mn_det_image *info,
                                const mn_det_targets *targets, mn_rng *rng, mn_det_teacher *capture,
                                const mn_det_teacher *distill, float distill_weight, mn_det_losses *out);

typedef struct mn_detection {
    float x1, y1, x2, y2;         /* original image pixels */
    int label;                    /* 1..K */
    float score;
} mn_detection;

/* Inference with the test settings (recording is switched off for the call). out[i] is a
 * malloc'd array of n[i] detections (NULL when none), by score descending, boxes mapped back to
 * the original image (flip undone, then scaled per axis by orig / valid size as torchvision's
 * transform.postprocess does). */
MN_API int mn_det_forward_test(mn_detector *d, mn_run *r, mn_var *images, const mn_det_image *info,
                               mn_detection **out, int *n);

/* The detector in the two parts that are plain networks, for export and tests (recording follows
 * r->tape). maps: images (N, 3, H, W), H and W multiples of 32 -> p[l] the FPN maps P2..P6
 * (N, C, H / 2^(l+2), W / 2^(l+2)), obj[l] (N, A, .., ..) objectness logits and delta[l]
 * (N, 4A, .., ..) box deltas per level. box head: pooled (R, C, roi_size, roi_size), RoIAlign's
 * output -> cls (R, K) class logits and box (R, 4K) class-specific deltas. What joins them
 * (anchors, proposals, RoIAlign, box decoding, NMS) is mn_det_forward_test's. C is the neck's
 * channels at the run's width: mn_det_neck_channels. */
MN_API int mn_det_forward_maps(mn_detector *d, mn_run *r, mn_var *images, mn_var **p, mn_var **obj, mn_var **delta);
MN_API int mn_det_forward_box_head(mn_detector *d, mn_run *r, mn_var *pooled, mn_var **cls, mn_var **box);
MN_API int mn_det_neck_channels(const mn_detector *d, float width);

/* Whole-model multiply-accumulates (conv + linear, per image, counted by the slimmable layers
 * on a real pass, as mn_backbone_flops does) and parameters used at width w and input h x w_px:
 * backbone, FPN, RPN head on P2..P6, and the box head on flops_rois RoIs. */
MN_API int mn_det_flops(mn_detector *d, float width, int h, int w_px, int64_t *macs, int64_t *params);
/* The same split into parts: backbone, neck (FPN), rpn (head), roi (box head, all RoIs). */
typedef struct mn_det_flops_parts {
    int64_t backbone, neck, rpn, roi;
} mn_det_flops_parts;
MN_API int mn_det_flops_parts_at(mn_detector *d, float width, int h, int w_px, mn_det_flops_parts *macs);

#endif
