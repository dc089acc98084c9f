/* Box arithmetic for the detector: IoU, clipping, small-box removal, NMS, top-k, the box coder,
 * anchors, the IoU matcher and the positive/negative sampler.
 *
 * Boxes are float (x1, y1, x2, y2) rows in pixels; widths are x2 - x1 (no +1), as in torchvision.
 * Every function follows torchvision 0.14's semantics (ops/boxes.py, models/detection/_utils.py,
 * anchor_utils.py); the few places where it deliberately differs are marked "Differs". Indices are
 * int. Functions that return a count return it (>= 0) or a negative MN_E* code. */
#ifndef MN_BOXES_H
#define MN_BOXES_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "rng.h"

/* ---- IoU, clipping, small boxes, crowd (heads/det/boxes.c) ---- */

/* iou[i*m + j] = IoU(a[i], b[j]), areas without +1. Differs: where the union is 0 (two
 * zero-area boxes) the IoU is 0, where torchvision's box_iou gives NaN. */
MN_API void mn_box_iou(float *iou /* (N, M) */, const float *a /* (N, 4) */, int n, const float *b /* (M, 4) */,
                       int m);
/* Clamps x to [0, w] and y to [0, h] in place (torchvision clip_boxes_to_image); NaN stays NaN.
 * n counts boxes, so an (N, K, 4) array of per-class boxes is clipped with n = N * K. */
MN_API void mn_boxes_clip(float *boxes /* (N, 4) */, int n, int h, int w);
/* Indices (ascending) of the boxes with both sides >= min_size (torchvision remove_small_boxes);
 * returns how many. */
MN_API int mn_boxes_remove_small(int *keep /* (N) */, const float *boxes /* (N, 4) */, int n, float min_size);
/* Training targets from ground truth: drops crowd boxes and degenerate ones (x2 <= x1 or
 * y2 <= y1), as torchvision's COCO reference pipeline does (crowd regions then count as
 * background: torchvision does not mark anchors on them as ignored, unlike mmdetection).
 * Writes the kept boxes, their labels (when labels and labels_out are both given) and their
 * input indices (index_out, may be NULL), in input order; crowd may be NULL (none). Outputs
 * may alias the inputs. Returns how many were kept. */
MN_API int mn_boxes_drop_crowd(float *boxes_out /* (M, 4) */, int *labels_out /* (M) or NULL */,
                               int *index_out /* (M) or NULL */, const float *boxes /* (M, 4) */,
                               const int *labels /* (M) or NULL */, const bool *crowd /* (M) or NULL */, int m);

/* ---- NMS and top-k (heads/det/boxes.c) ----
 * Boxes are visited by score, descending, ties by lower index first (a stable sort; torch's
 * CPU sort is not stable, so on ties torchvision may pick another box). A box is suppressed by
 * a kept one when their IoU (float, inter / (area_i + area_j - inter)) is > iou_thr, compared
 * in double as torchvision does; a NaN IoU (zero union) never suppresses. The kept indices
 * come out in that visiting order. max_keep > 0 stops after that many are kept (the same as
 * truncating the full result); 0 keeps all. NaN scores are an error (MN_ENUMERIC). */

/* Greedy NMS; returns how many indices were written to keep. */
MN_API int mn_nms(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */, int n,
                  double iou_thr, int max_keep);
MN_API int mn_nms_ref(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */, int n,
                      double iou_thr, int max_keep);
/* NMS within each class (boxes of different classes never suppress each other), the result in
 * global score order: torchvision batched_nms. */
MN_API int mn_batched_nms(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */,
                          const int *classes /* (N) */, int n, double iou_thr, int max_keep);
MN_API int mn_batched_nms_ref(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */,
                              const int *classes /* (N) */, int n, double iou_thr, int max_keep);
/* The indices of the min(k, n) largest scores, by score descending, ties by lower index
 * (torch.topk, sorted, with a defined tie order). Returns min(k, n). */
MN_API int mn_topk(int *idx /* (K) */, const float *scores /* (N) */, int n, int k);
MN_API int mn_topk_ref(int *idx /* (K) */, const float *scores /* (N) */, int n, int k);

/* ---- box coder (heads/det/box_coder.c) ---- */

typedef struct mn_box_coder {
    float wx, wy, ww, wh;  /* (1, 1, 1, 1) for the RPN, (10, 10, 5, 5) for the RoI head */
    float clip;            /* dw, dh are clamped to at most this before exp: log(1000 / 16) */
} mn_box_coder;

MN_API mn_box_coder mn_box_coder_make(float wx, float wy, float ww, float wh);
/* Regression targets of gt relative to ref (torchvision BoxCoder.encode_single(gt, ref)):
 * dx = wx (gx - rx) / rw, dw = ww log(gw / rw), with centres x1 + 0.5 w. */
MN_API void mn_box_encode(const mn_box_coder *c, float *deltas /* (N, 4) */, const float *gt /* (N, 4) */,
                          const float *ref /* (N, 4) */, int n);
/* Boxes from deltas relative to ref (BoxCoder.decode_single): k sets of deltas per reference
 * box (k classes in the RoI head, 1 in the RPN); x1 = cx - 0.5 w, x2 = cx + 0.5 w. */
MN_API void mn_box_decode(const mn_box_coder *c, float *boxes /* (N, K, 4) */, const float *deltas /* (N, K, 4) */,
                          const float *ref /* (N, 4) */, int n, int k);

/* ---- anchors (heads/det/anchors.c) ---- */

#define MN_ANCHOR_MAX_LEVELS 8
#define MN_ANCHOR_MAX_CELL 32    /* sizes x ratios per level */

/* torchvision AnchorGenerator: per level, base anchors for every (ratio, size) pair, ratio-major
 * (a = r * n_sizes + s), aspect ratio = h / w, rounded half to even like torch.round; shifted
 * over the level's grid in (y, x, a) order so that an RPN output (N, A, H, W) permuted to
 * (N, H, W, A) lines up with them. Levels are concatenated. */
typedef struct mn_anchor_gen {
    int n_levels;
    int n_cell[MN_ANCHOR_MAX_LEVELS];                 /* A per level */
    float cell[MN_ANCHOR_MAX_LEVELS][MN_ANCHOR_MAX_CELL][4];
} mn_anchor_gen;

/* Base anchors (A = n_ratios * n_sizes, ratio-major) centred on 0. Returns A. */
MN_API int mn_anchor_cell(float *cell /* (A, 4) */, const float *sizes /* (S) */, int n_sizes,
                          const float *ratios /* (R) */, int n_ratios);
/* Level l has the n_sizes[l] sizes in sizes[l] and the n_ratios[l] ratios in ratios[l]. */
MN_API int mn_anchor_gen_init(mn_anchor_gen *g, int n_levels, const float *const *sizes, const int *n_sizes,
                              const float *const *ratios, const int *n_ratios);
/* The FPN default: levels P2..P6 with sizes 32, 64, 128, 256, 512 and ratios 0.5, 1, 2. */
MN_API void mn_anchor_gen_fpn(mn_anchor_gen *g);
/* Anchors over all levels for grids grid_hw[l] = (H_l, W_l); returns their number. */
MN_API int64_t mn_anchor_gen_count(const mn_anchor_gen *g, const int *grid_hw /* (L, 2) */);
/* Anchors for a batch padded to image_h x image_w: level l's stride is image // grid per axis
 * (as torchvision derives it). anchors has mn_anchor_gen_count rows. */
MN_API int mn_anchor_gen_run(const mn_anchor_gen *g, float *anchors /* (total, 4) */, int image_h, int image_w,
                             const int *grid_hw /* (L, 2) */);
/* One level's anchors with explicit strides: (H * W * A, 4) rows, row (y * W + x) * A + a. */
MN_API void mn_anchor_grid(float *anchors /* (H * W * A, 4) */, const float *cell /* (A, 4) */, int a, int grid_h,
                           int grid_w, int stride_h, int stride_w);

/* ---- matcher and sampler (heads/det/matcher.c) ---- */

#define MN_MATCH_BELOW (-1)      /* best IoU < low: background */
#define MN_MATCH_BETWEEN (-2)    /* low <= best IoU < high: ignored */

typedef struct mn_matcher {
    float high, low;             /* 0.7 / 0.3 for the RPN, 0.5 / 0.5 for the RoI head */
    bool allow_low_quality;      /* true for the RPN */
} mn_matcher;

/* torchvision Matcher over iou (M ground-truth rows x N predictions): matches[j] = the gt with
 * the highest IoU (first on ties) when it is >= high, else MN_MATCH_BETWEEN when >= low, else
 * MN_MATCH_BELOW (thresholds compared in float, as torch does). With allow_low_quality, for each
 * gt every prediction whose IoU equals that gt's maximum (ties included, even a maximum of 0)
 * gets back its own best gt. Differs: M = 0 (no ground truth) gives MN_MATCH_BELOW everywhere
 * (what torchvision's RPN and RoI heads do for an empty image) instead of an error. */
MN_API int mn_match(const mn_matcher *mt, int *matches /* (N) */, const float *iou /* (M, N) */, int m, int n);

/* torchvision BalancedPositiveNegativeSampler on matcher output: matches >= 0 are positive,
 * MN_MATCH_BELOW negative, anything else (MN_MATCH_BETWEEN) is never sampled. Takes
 * min(#pos, int(batch * pos_fraction)) positives and min(#neg, batch - that) negatives, each a
 * uniformly random subset drawn from rng, written in ascending index order. */
MN_API int mn_sample_pos_neg(int *pos /* (batch) */, int *n_pos, int *neg /* (batch) */, int *n_neg,
                             const int *matches /* (N) */, int n, int batch, double pos_fraction, mn_rng *rng);

#endif
