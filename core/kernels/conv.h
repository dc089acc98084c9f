/* 2-D convolution and linear kernels (forward and backward), with plain reference twins.
 *
 * Activations are contiguous NCHW. A weight (Cout, Cin/groups, KH, KW) has contiguous rows
 * of Cin/groups*KH*KW floats that start ldw elements apart: a channel-prefix view
 * w[:cout, :cin] of a full-width (Cout_full, Cin_full, KH, KW) parameter is passed as the
 * full buffer with ldw = Cin_full*KH*KW. The weight gradient is the same strided view of the
 * full gradient buffer: backward writes only the used part of each row, with +=.
 *
 * mn_conv2d_forward / mn_conv2d_backward pick a fast path:
 *  - depthwise (groups == Cin == Cout): direct loops over a zero-padded (polyphase for stride
 *    2) copy of each channel plane, vectorised over flattened output rows, OpenMP over planes;
 *    3x3 with stride 1 or 2 and no dilation have dedicated loops, other depthwise shapes a
 *    generic direct loop;
 *  - 1x1, stride 1, no padding: a GEMM straight on the NCHW planes (no im2col);
 *  - 3x3, stride 1, no dilation, one group, 32+ channels: Winograd F(4x4, 3x3) (winograd.h);
 *  - stride 1, one group, dilated, with most taps' products on padding: a GEMM per tap over
 *    the outputs where it reads the image (conv_taps.h);
 *  - everything else, grouped included: im2col + sgemm per image and group.
 * Threads never nest: OpenBLAS runs single-threaded inside our parallel regions. The GEMM
 * forward pass cuts every image and group into blocks of output pixels sized for L2 (im2col
 * of the block, bias fill, GEMM into the block's output columns) and spreads the blocks over
 * threads; a 1x1 layer with fewer output pixels than output channels and fewer images than
 * threads (late layers at batch 1) splits the output channels over threads instead, so each
 * thread packs only its part of the weight. The GEMM backward pass spreads whole images over
 * threads (each with a private weight gradient, summed in thread order) when there are at
 * least as many images as threads; otherwise images run in turn and OpenBLAS threads each
 * GEMM. mn_conv2d_forward_affine applies a per-channel affine map and clamp (eval-mode batch
 * norm and ReLU / ReLU6) to each output block as soon as it is computed.
 *
 * Scratch memory is the caller's: mn_conv2d_workspace_floats() says how much; nothing is
 * allocated per call. Backward kernels accumulate (+=) into dx, dw and db. */
#ifndef MN_KERNELS_CONV_H
#define MN_KERNELS_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mn/ops.h"

typedef struct mn_conv2d_dims {
    int n, cin, h, w;     /* input (N, Cin, H, W) */
    int cout, kh, kw;     /* weight (Cout, Cin/groups, KH, KW) */
    int ho, wo;           /* output (N, Cout, Ho, Wo) */
    int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
    int64_t ldw;          /* elements between output-channel rows of the weight and its gradient */
    int nthreads;         /* OpenMP threads the workspace is sized for */
    bool im2col_only;     /* take im2col where Winograd or per-tap GEMMs would apply (benchmarks) */
} mn_conv2d_dims;

/* Fills d from the input and weight sizes and p; computes Ho, Wo and takes nthreads from
 * omp_get_max_threads(). Returns MN_EINVAL/MN_ESHAPE (message set) when the parameters are
 * not positive, groups do not divide the channels, ldw is shorter than a row, or the output
 * would be empty. Callers with tensors to name (mn_conv2d) check first with better messages. */
int mn_conv2d_dims_init(mn_conv2d_dims *d, int n, int cin, int h, int w, int cout, int kh, int kw,
                               const mn_conv2d_params *p, int64_t ldw);
/* Floats of scratch mn_conv2d_forward (backward = false) or mn_conv2d_backward needs. */
size_t mn_conv2d_workspace_floats(const mn_conv2d_dims *d, bool backward);

/* y (N, Cout, Ho, Wo) = conv(x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW), row stride ldw)
 * + b (Cout, or NULL); ws holds mn_conv2d_workspace_floats(d, false) floats. */
void mn_conv2d_forward(float *y, const float *x, const float *w, const float *b, float *ws,
                              const mn_conv2d_dims *d);
/* The same convolution followed, per output channel o, by y = clamp(y * scale[o] + shift[o],
 * lo, hi) (lo = -INFINITY, hi = INFINITY: no clamp), applied to each block of the output as
 * soon as it is computed: an eval-mode batch norm and a ReLU / ReLU6 fused into the
 * convolution's output pass. scale, shift (Cout); ws as for mn_conv2d_forward. */
void mn_conv2d_forward_affine(float *y /* (N, Cout, Ho, Wo) */, const float *x /* (N, Cin, H, W) */,
                                     const float *w /* (Cout, Cin/groups, KH, KW), row stride ldw */,
                                     const float *b /* (Cout) or NULL */, const float *scale /* (Cout) */,
                                     const float *shift /* (Cout) */, float lo, float hi,
                                     float *ws /* mn_conv2d_workspace_floats(d, false) */, const mn_conv2d_dims *d);
/* dx (N, Cin, H, W), dw (Cout, Cin/groups, KH, KW) with row stride ldw, db (Cout): each
 * may be NULL; those given are accumulated into. dy (N, Cout, Ho, Wo), x and w as in the
 * forward pass; ws holds mn_conv2d_workspace_floats(d, true) floats. */
void mn_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                               float *ws, const mn_conv2d_dims *d);

/* Reference twins: the direct 7-loop convolution, single-threaded, double accumulators. */
void mn_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, const mn_conv2d_dims *d);
void mn_conv2d_forward_affine_ref(float *y /* (N, Cout, Ho, Wo) */, const float *x /* (N, Cin, H, W) */,
                                         const float *w /* (Cout, Cin/groups, KH, KW), row stride ldw */,
                                         const float *b /* (Cout) or NULL */, const float *scale /* (Cout) */,
                                         const float *shift /* (Cout) */, float lo, float hi,
                                         const mn_conv2d_dims *d);
void mn_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                   const mn_conv2d_dims *d);

/* y (N, OUT) = x (N, IN) w^T + b, w (OUT, IN) with row stride ldw, b (OUT) or NULL. */
void mn_linear_forward(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                              int64_t ldw);
/* dx (N, IN), dw (OUT, IN) with row stride ldw, db (OUT): each may be NULL; accumulated. */
void mn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                               int n, int in, int out, int64_t ldw);
void mn_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                                  int64_t ldw);
void mn_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                                   const float *w, int n, int in, int out, int64_t ldw);

#endif
