/* Pooling kernels over NCHW planes: square k x k windows, equal strides and padding on both
 * axes, floor mode. Output sizes are mn_pool2d_out(H), mn_pool2d_out(W).
 *
 * Backward kernels accumulate (+=) into dx. Each optimised kernel has a plain `_ref` twin. */
#ifndef MN_KERNELS_POOL_H
#define MN_KERNELS_POOL_H

#include <stdint.h>

#include "mn/error.h"

/* (in + 2 pad - k) / stride + 1, floor mode (< 1 when the window does not fit). */
int64_t mn_pool2d_out(int64_t in, int k, int stride, int pad);

/* Max over each window; padding counts as -inf. argmax is the position (ih * W + iw) inside
 * the input plane of the first maximum in scan order (a NaN wins, as in PyTorch). */
void mn_max_pool2d_forward(float *y /* (N, C, Ho, Wo) */, int32_t *argmax /* (N, C, Ho, Wo) */,
                                  const float *x /* (N, C, H, W) */, int64_t n, int64_t c, int64_t h, int64_t w,
                                  int k, int stride, int pad);
void mn_max_pool2d_forward_ref(float *y /* (N, C, Ho, Wo) */, int32_t *argmax /* (N, C, Ho, Wo) */,
                                      const float *x /* (N, C, H, W) */, int64_t n, int64_t c, int64_t h,
                                      int64_t w, int k, int stride, int pad);
/* dx[argmax] += dy, plane by plane. */
void mn_max_pool2d_backward(float *dx /* (N, C, H, W) */, const int32_t *argmax /* (N, C, Ho, Wo) */,
                                   const float *dy /* (N, C, Ho, Wo) */, int64_t n, int64_t c, int64_t h,
                                   int64_t w, int64_t ho, int64_t wo);
void mn_max_pool2d_backward_ref(float *dx /* (N, C, H, W) */, const int32_t *argmax /* (N, C, Ho, Wo) */,
                                       const float *dy /* (N, C, Ho, Wo) */, int64_t n, int64_t c, int64_t h,
                                       int64_t w, int64_t ho, int64_t wo);

/* Mean over each window with padding counted as zeros (count_include_pad; the divisor is the
 * window clipped to the padded input, as PyTorch). */
void mn_avg_pool2d_forward(float *y /* (N, C, Ho, Wo) */, const float *x /* (N, C, H, W) */, int64_t n,
                                  int64_t c, int64_t h, int64_t w, int k, int stride, int pad);
void mn_avg_pool2d_forward_ref(float *y /* (N, C, Ho, Wo) */, const float *x /* (N, C, H, W) */, int64_t n,
                                      int64_t c, int64_t h, int64_t w, int k, int stride, int pad);
void mn_avg_pool2d_backward(float *dx /* (N, C, H, W) */, const float *dy /* (N, C, Ho, Wo) */, int64_t n,
                                   int64_t c, int64_t h, int64_t w, int k, int stride, int pad);
void mn_avg_pool2d_backward_ref(float *dx /* (N, C, H, W) */, const float *dy /* (N, C, Ho, Wo) */,
                                       int64_t n, int64_t c, int64_t h, int64_t w, int k, int stride, int pad);

/* Mean of each plane of S = H * W values. */
void mn_global_avg_pool_forward(float *y /* (N, C) */, const float *x /* (N, C, S) */, int64_t n, int64_t c,
                                       int64_t s);
void mn_global_avg_pool_forward_ref(float *y /* (N, C) */, const float *x /* (N, C, S) */, int64_t n,
                                           int64_t c, int64_t s);
/* dx += dy / S over each plane. */
void mn_global_avg_pool_backward(float *dx /* (N, C, S) */, const float *dy /* (N, C) */, int64_t n,
                                        int64_t c, int64_t s);
void mn_global_avg_pool_backward_ref(float *dx /* (N, C, S) */, const float *dy /* (N, C) */, int64_t n,
                                            int64_t c, int64_t s);

#endif
