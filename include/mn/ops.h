/* Differentiable ops. Each computes its forward pass with a kernel from core/kernels and,
 * when the tape records, appends a node whose backward accumulates into its inputs'
 * gradients. Activations (x, outputs) are contiguous NCHW. Weights may be channel-prefix
 * views of full-width parameters (mn_var_prefix): kernels take the row stride.
 * Every op returns NULL on failure or when given a NULL input (see tape.h). */
#ifndef MN_OPS_H
#define MN_OPS_H

#include <stdint.h>
#include "tape.h"

/* ---- convolution and linear (core/ops_conv.c) ---- */

typedef struct mn_conv2d_params {
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dil_h, dil_w;     /* 1 = no dilation */
    int groups;           /* 1 = dense; Cin = Cout = groups is depthwise */
} mn_conv2d_params;

/* x (N, Cin, H, W); w (Cout, Cin/groups, KH, KW), any row stride; b (Cout) or NULL
 * -> (N, Cout, Ho, Wo) with Ho = (H + 2 pad_h - dil_h (KH - 1) - 1) / stride_h + 1. */
MN_API mn_var *mn_conv2d(mn_tape *t, mn_var *x, mn_var *w, mn_var *b, const mn_conv2d_params *p);
/* x (N, IN); w (OUT, IN), any row stride; b (OUT) or NULL -> (N, OUT). */
MN_API mn_var *mn_linear(mn_tape *t, mn_var *x, mn_var *w, mn_var *b);

/* ---- batch norm (core/ops_bn.c) ---- */

typedef struct mn_bn_state {
    float *running_mean;  /* (C_full) or NULL: no running statistics kept */
    float *running_var;   /* (C_full), unbiased batch variance is averaged in */
    int64_t *num_batches; /* batches averaged so far (for cumulative averaging) */
} mn_bn_state;

struct mn_comm;

typedef struct mn_bn_params {
    float eps;            /* 1e-5 */
    float momentum;       /* running = (1 - m) running + m batch; m < 0: cumulative average,
                           * m = 1 / (num_batches + 1), as BN calibration needs */
    bool training;        /* true: normalise with batch statistics (and update running ones);
                           * false: normalise with the running statistics */
    struct mn_comm *sync; /* training with more than one rank: the batch statistics (and in backward
                           * the sums they need) are those of every rank's batch together, so that
                           * R ranks of N images compute what one process of R x N computes (to the
                           * last bit with momentum < 0, BN calibration: summed as its kernel sums) */
} mn_bn_params;

/* x (N, C, H, W) or (N, C); gamma, beta (C) or NULL (no affine); st's buffers are used for
 * their first C entries (a slimmable layer's prefix). */
MN_API mn_var *mn_batch_norm(mn_tape *t, mn_var *x, mn_var *gamma, mn_var *beta, const mn_bn_state *st,
                             const mn_bn_params *p);

/* act(mn_batch_norm(x, ...)) with act 0 (none), 1 (ReLU) or 6 (ReLU6) as one op: one pass
 * forward, one backward, and neither the pre-activation nor its gradient is stored. The
 * values and gradients are those of the two ops (at the kinks, zero gradient as ReLU's and
 * ReLU6's backward). */
MN_API mn_var *mn_batch_norm_act(mn_tape *t, mn_var *x, mn_var *gamma, mn_var *beta, const mn_bn_state *st,
                                 const mn_bn_params *p, int act);

/* ---- convolution, batch norm and activation in one pass (core/ops_conv.c) ---- */

/* Inference: act(batch_norm(conv2d(x, w, b, p))) with batch norm in eval mode (running
 * statistics st, eps; gamma, beta (Cout) or NULL) and act 0 (none), 1 (ReLU) or 6 (ReLU6).
 * The normalisation and the activation are applied to each block of the convolution's output
 * while it is in cache, not in two more passes; the values are those of the three ops. When
 * the tape records (some input requires a gradient) it runs mn_conv2d and mn_batch_norm_act,
 * recorded, instead.
 * x (N, Cin, H, W); w (Cout, Cin/groups, KH, KW) -> (N, Cout, Ho, Wo). */
MN_API mn_var *mn_conv2d_bn_act(mn_tape *t, mn_var *x, mn_var *w, mn_var *b, const mn_conv2d_params *p,
                                mn_var *gamma, mn_var *beta, const mn_bn_state *st, float eps, int act);

/* ---- elementwise and shape (core/ops_eltwise.c) ---- */

MN_API mn_var *mn_relu(mn_tape *t, mn_var *x);
MN_API mn_var *mn_relu6(mn_tape *t, mn_var *x);
/* a + b, same shape. */
MN_API mn_var *mn_add(mn_tape *t, mn_var *a, mn_var *b);
/* s * x. */
MN_API mn_var *mn_scale(mn_tape *t, mn_var *x, float s);
/* Concatenation along channels: xs[i] (N, Ci, H, W) -> (N, sum Ci, H, W). */
MN_API mn_var *mn_concat(mn_tape *t, mn_var *const *xs, int n);

/* x (contiguous) viewed with another shape of the same numel, e.g. (N, C, 1, 1) -> (N, C)
 * (core/ops_shape.c). */
MN_API mn_var *mn_reshape(mn_tape *t, mn_var *x, int ndim, const int64_t *shape);

/* ---- pooling (core/ops_pool.c) ---- */

/* x (N, C, H, W) -> (N, C, Ho, Wo); padding counts as -inf; floor mode. */
MN_API mn_var *mn_max_pool2d(mn_tape *t, mn_var *x, int k, int stride, int pad);
/* x (N, C, H, W) -> (N, C, Ho, Wo); padding counts as zeros in the mean (count_include_pad). */
MN_API mn_var *mn_avg_pool2d(mn_tape *t, mn_var *x, int k, int stride, int pad);
/* x (N, C, H, W) -> (N, C, 1, 1). */
MN_API mn_var *mn_global_avg_pool(mn_tape *t, mn_var *x);

/* ---- resizing (core/ops_resize.c) ---- */

/* x (N, C, H, W) -> (N, C, oh, ow), PyTorch's F.interpolate(mode='bilinear') semantics. */
MN_API mn_var *mn_resize_bilinear(mn_tape *t, mn_var *x, int oh, int ow, bool align_corners);
/* x (N, C, H, W) -> (N, C, oh, ow), F.interpolate(mode='nearest'): src = floor(dst * in / out). */
MN_API mn_var *mn_resize_nearest(mn_tape *t, mn_var *x, int oh, int ow);

/* ---- losses (core/ops_loss.c); each returns a one-element variable ---- */

enum mn_reduction { MN_REDUCE_MEAN = 0, MN_REDUCE_SUM = 1 };

/* logits (N, C) or (N, C, H, W); target (N) or (N, H, W) class indices, ignore_index skipped;
 * mean over non-ignored elements (0, with zero gradient, when every element is ignored). */
MN_API mn_var *mn_cross_entropy(mn_tape *t, mn_var *logits, const int32_t *target, int ignore_index);
/* KL(p || softmax(logits)) summed over classes (dim 1) and averaged over the other positions
 * (N, or N*H*W): PyTorch's KLDivLoss(log_softmax(logits), p) with batchmean per position.
 * p (same shape) is a probability distribution, usually a detached teacher's softmax. */
MN_API mn_var *mn_kl_div(mn_tape *t, mn_var *logits, mn_var *p);
/* Binary cross-entropy on logits against targets in [0,1] (same shape). */
MN_API mn_var *mn_bce_with_logits(mn_tape *t, mn_var *logits, mn_var *target, enum mn_reduction r);
/* Smooth-L1 with threshold beta (beta = 0 is L1), elementwise against target (same shape). */
MN_API mn_var *mn_smooth_l1(mn_tape *t, mn_var *pred, mn_var *target, float beta, enum mn_reduction r);
MN_API mn_var *mn_l1(mn_tape *t, mn_var *pred, mn_var *target, enum mn_reduction r);
/* Softmax over dim 1 (not differentiable: for teachers and inference). */
MN_API mn_var *mn_softmax(mn_tape *t, mn_var *logits);

/* ---- RoIAlign (core/ops_roi_align.c) ---- */

typedef struct mn_roi_align_params {
    int out_h, out_w;
    float spatial_scale;  /* feature stride reciprocal, e.g. 1/16 */
    int sampling_ratio;   /* samples per bin side; 0: adaptive ceil(roi_size / out_size) */
    bool aligned;         /* true: shift by -0.5 pixel (torchvision aligned=True) */
} mn_roi_align_params;

/* x (N, C, H, W); rois (K, 5) rows (batch_index, x1, y1, x2, y2) in image coordinates
 * -> (K, C, out_h, out_w). Differentiable in x. */
MN_API mn_var *mn_roi_align(mn_tape *t, mn_var *x, const float *rois, int k, const mn_roi_align_params *p);

#endif
