/* Loss kernels: softmax family over the class dimension, and elementwise losses.
 *
 * Class-dimension kernels see logits as (N, C, HW): HW = 1 for (N, C) inputs and H * W for
 * dense (N, C, H, W) predictions, so one code path serves classifiers and segmenters. They
 * subtract the per-position maximum before exponentiating, so logits of 1e3 stay finite.
 * Forward kernels write per-position (or per-element) losses; the op sums them serially in
 * double so the result does not depend on the thread count. Backward kernels accumulate (+=)
 * and take `scale`, the upstream gradient times the reduction factor (1 / count for means). */
#ifndef MN_KERNELS_LOSS_H
#define MN_KERNELS_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "mn/error.h"

/* lse[b, p] = log sum_k exp(x[b, k, p]). Tiled over positions, OpenMP over (b, tile). */
void mn_logsumexp_c(float *lse /* (N, HW) */, const float *x /* (N, C, HW) */, int64_t n, int64_t c,
                           int64_t hw);
/* The same one position at a time with a double accumulator. */
void mn_logsumexp_c_ref(float *lse /* (N, HW) */, const float *x /* (N, C, HW) */, int64_t n, int64_t c,
                               int64_t hw);

/* y = softmax(x) over the class dimension. */
void mn_softmax_c(float *y /* (N, C, HW) */, const float *x /* (N, C, HW) */, int64_t n, int64_t c,
                         int64_t hw);
void mn_softmax_c_ref(float *y /* (N, C, HW) */, const float *x /* (N, C, HW) */, int64_t n, int64_t c,
                             int64_t hw);

/* Cross-entropy per position: lpos = lse - x[target], 0 where target == ignore_index.
 * Targets must already be checked to lie in [0, C) (or equal ignore_index). */
void mn_ce_forward(float *lpos /* (N, HW) */, float *lse /* (N, HW), saved */, const float *x /* (N, C, HW) */,
                          const int32_t *target /* (N, HW) */, int ignore_index, int64_t n, int64_t c, int64_t hw);
void mn_ce_forward_ref(float *lpos /* (N, HW) */, float *lse /* (N, HW) */, const float *x /* (N, C, HW) */,
                              const int32_t *target /* (N, HW) */, int ignore_index, int64_t n, int64_t c,
                              int64_t hw);
/* dx += scale * (softmax(x) - onehot(target)) at non-ignored positions. */
void mn_ce_backward(float *dx /* (N, C, HW) */, const float *lse /* (N, HW) */, const float *x /* (N, C, HW) */,
                           const int32_t *target /* (N, HW) */, int ignore_index, float scale, int64_t n, int64_t c,
                           int64_t hw);
void mn_ce_backward_ref(float *dx /* (N, C, HW) */, const float *lse /* (N, HW) */,
                               const float *x /* (N, C, HW) */, const int32_t *target /* (N, HW) */,
                               int ignore_index, float scale, int64_t n, int64_t c, int64_t hw);

/* KL(p || softmax(x)) per position: lpos = sum_k p (log p - log_softmax(x)), terms with
 * p == 0 counting 0 (PyTorch's xlogy convention). */
void mn_kl_forward(float *lpos /* (N, HW) */, float *lse /* (N, HW), saved */, const float *x /* (N, C, HW) */,
                          const float *p /* (N, C, HW) */, int64_t n, int64_t c, int64_t hw);
void mn_kl_forward_ref(float *lpos /* (N, HW) */, float *lse /* (N, HW) */, const float *x /* (N, C, HW) */,
                              const float *p /* (N, C, HW) */, int64_t n, int64_t c, int64_t hw);
/* dx += scale * (softmax(x) * sum_k p - p): exact even when p does not sum to one. */
void mn_kl_backward(float *dx /* (N, C, HW) */, const float *lse /* (N, HW) */, const float *x /* (N, C, HW) */,
                           const float *p /* (N, C, HW) */, float scale, int64_t n, int64_t c, int64_t hw);
void mn_kl_backward_ref(float *dx /* (N, C, HW) */, const float *lse /* (N, HW) */,
                               const float *x /* (N, C, HW) */, const float *p /* (N, C, HW) */, float scale,
                               int64_t n, int64_t c, int64_t hw);

/* Elementwise kernels: single plain loops (nothing to optimise beyond what the compiler
 * does), so they have no separate reference twin. */

/* l = max(x, 0) - x t + log1p(exp(-|x|)): binary cross-entropy on logits, stable for any x. */
void mn_bce_logits_forward(float *l /* (M) */, const float *x /* (M) */, const float *t /* (M) */, int64_t m);
/* dx += scale (sigmoid(x) - t); dt += scale (-x). dx or dt may be NULL. */
void mn_bce_logits_backward(float *dx /* (M) or NULL */, float *dt /* (M) or NULL */, const float *x /* (M) */,
                                   const float *t /* (M) */, float scale, int64_t m);

/* With d = a - b: l = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0: |d|). */
void mn_smooth_l1_forward(float *l /* (M) */, const float *a /* (M) */, const float *b /* (M) */, float beta,
                                 int64_t m);
/* da += scale g, db -= scale g with g = d / beta inside the quadratic zone, else sign(d)
 * (sign(0) = 0). da or db may be NULL. */
void mn_smooth_l1_backward(float *da /* (M) or NULL */, float *db /* (M) or NULL */, const float *a /* (M) */,
                                  const float *b /* (M) */, float beta, float scale, int64_t m);

#endif
