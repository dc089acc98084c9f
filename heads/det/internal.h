/* Pieces of the detector shared by the heads/det files and reachable from tests/test_det.c: the
 * stages of torchvision's Faster R-CNN as separate functions, so each can be checked against
 * torchvision on fixed inputs (sampling is an argument, not hidden inside). */
#ifndef MN_DET_INTERNAL_H
#define MN_DET_INTERNAL_H

#include "backbone/internal.h"
#include "mn/boxes.h"
#include "mn/det.h"

enum { DET_BACKBONE_LEVELS = 4, DET_ROI_LEVELS = 4 };

/* ---- differentiable gathers (heads/det/det_ops.c) ---- */

/* Rows of the virtual concatenation (along dim 0) of xs[0..n), each contiguous and viewed as
 * (numel / k, k): output row j is virtual row idx[j] -> (m, k). Backward scatter-adds. */
mn_var *det_take_rows(mn_tape *t, mn_var *const *xs, int n, int k, const int64_t *idx /* (m) */, int64_t m);
/* Rows of per-level RPN maps in torchvision's flattened anchor order: maps[l] (N, A k, H_l, W_l)
 * contiguous; anchor id g = img * total + off[l] + (y W_l + x) A + a (off: per-image level
 * offsets, total = off[L]) gives the row (maps[l][img, a k + j, y, x])_j -> (m, k). */
mn_var *det_anchor_rows(mn_tape *t, mn_var *const *maps, int L, int a, int k, const int64_t *off /* (L + 1) */,
                        const int64_t *ids /* (m) */, int64_t m);

/* Plain kernels behind them (outputs first; backward accumulates). */
void det_take_rows_forward(float *y /* (m, k) */, const float *const *xs /* n arrays */,
                           const int64_t *rows /* (n) rows of each */, int n, int k, const int64_t *idx /* (m) */,
                           int64_t m);
void det_take_rows_backward(float *const *dxs /* n arrays */, const int64_t *rows /* (n) */, int n, int k,
                            const float *dy /* (m, k) */, const int64_t *idx /* (m) */, int64_t m);

/* ---- anchors over a padded batch (heads/det/rpn.c) ---- */

typedef struct det_layout {
    int n;                        /* images */
    int a;                        /* anchors per cell */
    int img_h, img_w;             /* padded image size */
    int grid[MN_DET_LEVELS][2];   /* (H_l, W_l) of P2..P6 */
    int64_t off[MN_DET_LEVELS + 1]; /* per-image offset of each level; off[L] = anchors per image */
    float *anchors;               /* (off[L], 4), the same for every image (malloc'd) */
} det_layout;

int det_anchor_gen(const mn_det_config *c, mn_anchor_gen *g);
/* Anchors for feature maps p[l] (N, C, H_l, W_l) of a batch padded to img_h x img_w. */
int det_layout_make(det_layout *lo, const mn_anchor_gen *g, mn_var *const *p, int img_h, int img_w);
void det_layout_free(det_layout *lo);

/* ---- RPN (heads/det/rpn.c) ---- */

typedef struct det_rpn_head {
    mn_slim_conv conv;            /* 3x3, C -> C, then ReLU */
    mn_slim_conv cls;             /* 1x1, C -> A (never sliced) */
    mn_slim_conv bbox;            /* 1x1, C -> 4A (never sliced) */
    int a;
} det_rpn_head;

int det_rpn_head_init(det_rpn_head *h, mn_param_set *ps, mn_rng *rng, int channels, int a);
/* p[l] (N, c, H_l, W_l) -> obj[l] (N, A, H_l, W_l), delta[l] (N, 4A, H_l, W_l); c: the conv's
 * output channels (sliced with the head). */
int det_rpn_head_forward(const det_rpn_head *h, mn_run *r, mn_var *const *p, int c, mn_var **obj, mn_var **delta);

/* Proposals of one image: boxes (n, 4) and objectness probabilities (n), malloc'd. */
typedef struct det_props {
    float *boxes;
    float *scores;
    int n;
} det_props;
void det_props_free(det_props *p, int n);

/* torchvision RegionProposalNetwork.filter_proposals for every image: decode the deltas on the
 * anchors, top pre_nms per level by objectness logit, sigmoid, clip to the valid image (h, w),
 * drop sides < min_size and scores < score_thresh, NMS per level, keep post_nms. */
int det_rpn_proposals(const mn_det_config *c, bool training, const det_layout *lo, mn_var *const *obj,
                      mn_var *const *delta, const mn_det_image *info, det_props *out /* (N) */);

/* Matches one image's anchors to its ground truth (rpn_fg_iou / rpn_bg_iou, low-quality
 * matches allowed): matches (total) as mn_match gives them; m = 0: all background. */
int det_rpn_match(const mn_det_config *c, const det_layout *lo, const float *gt /* (M, 4) */, int m,
                  int *matches /* (total) */);
/* RPN losses over sampled anchors (global ids, see det_anchor_rows): BCE over pos then neg
 * (labels 1 / 0, mean), smooth-L1 (beta rpn_box_beta, summed) of the positives' deltas against
 * pos_targets (np, 4) divided by np + nn. */
int det_rpn_loss(mn_tape *t, const mn_det_config *c, const det_layout *lo, mn_var *const *obj, mn_var *const *delta,
                 const int64_t *pos /* (np) */, int np, const int64_t *neg /* (nn) */, int nn,
                 const float *pos_targets /* (np, 4) */, mn_var **loss_cls, mn_var **loss_box);

/* ---- neck (heads/det/fpn.c) ---- */

typedef struct det_fpn {
    mn_slim_conv inner[DET_BACKBONE_LEVELS]; /* 1x1 laterals, backbone C_l -> C */
    mn_slim_conv layer[DET_BACKBONE_LEVELS]; /* 3x3 outputs, C -> C */
} det_fpn;

int det_fpn_init(det_fpn *f, mn_param_set *ps, mn_rng *rng, const int *in_channels, int channels);
/* c2..c5 -> p[0..4] = P2..P6, each (N, c, H / s, W / s). */
int det_fpn_forward(const det_fpn *f, mn_run *r, const mn_features *x, int c, mn_var **p);

/* ---- RoI heads (heads/det/roi_heads.c) ---- */

typedef struct det_box_head {
    mn_slim_linear fc6, fc7;      /* C S S -> hidden -> hidden, ReLU after each */
    mn_slim_linear cls;           /* hidden -> K (never sliced) */
    mn_slim_linear bbox;          /* hidden -> 4K (never sliced) */
} det_box_head;

int det_box_head_init(det_box_head *h, mn_param_set *ps, mn_rng *rng, int in_features, int hidden, int classes);
/* pooled (R, C, S, S) -> cls (R, K), box (R, 4K). */
int det_box_head_forward(const det_box_head *h, mn_run *r, mn_var *pooled, int hidden, int classes, mn_var **cls,
                         mn_var **box);

/* LevelMapper: index 0..3 (P2..P5) of each roi row (batch, x1, y1, x2, y2). */
void det_roi_levels(int *lvl /* (R) */, const float *rois /* (R, 5) */, int r);
/* MultiScaleRoIAlign over p[0..3] (P2..P5, strides 4..32) -> (R, C, size, size) in roi order. */
mn_var *det_roi_pool(mn_tape *t, mn_var *const *p, const float *rois /* (R, 5) */, int r, int size, int sampling);

/* The RoI head's training sample of one image. cand = proposals followed by the ground truth
 * (torchvision add_gt_proposals); matches (P) from mn_match(roi_fg_iou, roi_bg_iou, no
 * low-quality); m = 0: all background. */
int det_roi_match(const mn_det_config *c, const float *cand /* (P, 4) */, int p, const float *gt /* (M, 4) */, int m,
                  int *matches /* (P) */);
/* Sampled candidates idx (ascending, s of them) -> rows of rois (image, box), labels (matched
 * gt label, 0 background) and regression targets (weights 10, 10, 5, 5; zero gt box for an
 * image without ground truth, as torchvision encodes). */
void det_roi_build(float *rois /* (S, 5) */, int32_t *labels /* (S) */, float *targets /* (S, 4) */, int image,
                   const float *cand /* (P, 4) */, const int *matches /* (P) */, const float *gt /* (M, 4) */,
                   const int *gt_labels /* (M) */, const int *idx /* (S) */, int s);
/* torchvision fastrcnn_loss: cross-entropy over the R rows (mean), smooth-L1 (beta, summed) of
 * the positive rows' deltas of their own class against targets, divided by R. */
int det_roi_loss(mn_tape *t, mn_var *cls_logits /* (R, K) */, mn_var *box_reg /* (R, 4K) */, const int32_t *labels,
                 const float *targets /* (R, 4) */, int r, float beta, mn_var **loss_cls, mn_var **loss_box);

/* torchvision RoIHeads.postprocess_detections for one image: boxes in the valid (resized) frame
 * (h, w), by score descending. out is malloc'd (NULL when none). */
int det_postprocess(const mn_det_config *c, const float *logits /* (R, K) */, const float *box_reg /* (R, 4K) */,
                    const float *props /* (R, 4) */, int r, int k, int h, int w, mn_detection **out, int *n);
/* Maps detections from the valid frame of info back to the original image: mirror when
 * flipped, then scale per axis by orig / valid size in float32 (torchvision resize_boxes). */
void det_unresize(mn_detection *d, int n, const mn_det_image *info);

/* ---- the assembled model (heads/det/faster_rcnn.c) ---- */

/* Backbone and FPN: images (N, 3, H, W) -> p[0..4] (P2..P6). */
int det_features(mn_detector *d, mn_run *r, mn_var *images, mn_var **p);
/* RPN head on p. */
int det_rpn_forward(mn_detector *d, mn_run *r, mn_var *const *p, mn_var **obj, mn_var **delta);
/* Pooling and box head on explicit rois (R, 5). */
int det_roi_forward(mn_detector *d, mn_run *r, mn_var *const *p, const float *rois /* (R, 5) */, int n_rois,
                    mn_var **cls, mn_var **box);

#endif
