/* Elementwise kernels (ReLU, ReLU6, add, scale) and channel concatenation.
 *
 * Flat kernels work on n contiguous elements. Backward kernels accumulate (+=) into the
 * gradient. Each optimised kernel has a plain `_ref` twin. */
#ifndef MN_KERNELS_ELTWISE_H
#define MN_KERNELS_ELTWISE_H

#include <stdint.h>

#include "mn/error.h"

/* y = max(x, 0) (NaN propagates). */
void mn_relu_forward(float *y /* (n) */, const float *x /* (n) */, int64_t n);
void mn_relu_forward_ref(float *y /* (n) */, const float *x /* (n) */, int64_t n);
/* dx += dy where x > 0 (zero at exactly 0, as PyTorch). */
void mn_relu_backward(float *dx /* (n) */, const float *dy /* (n) */, const float *x /* (n) */, int64_t n);
void mn_relu_backward_ref(float *dx /* (n) */, const float *dy /* (n) */, const float *x /* (n) */,
                                 int64_t n);

/* y = min(max(x, 0), 6). */
void mn_relu6_forward(float *y /* (n) */, const float *x /* (n) */, int64_t n);
void mn_relu6_forward_ref(float *y /* (n) */, const float *x /* (n) */, int64_t n);
/* dx += dy where 0 < x < 6 (zero at both boundaries, as PyTorch's hardtanh). */
void mn_relu6_backward(float *dx /* (n) */, const float *dy /* (n) */, const float *x /* (n) */, int64_t n);
void mn_relu6_backward_ref(float *dx /* (n) */, const float *dy /* (n) */, const float *x /* (n) */,
                                  int64_t n);

/* y = a + b. */
void mn_add_forward(float *y /* (n) */, const float *a /* (n) */, const float *b /* (n) */, int64_t n);
void mn_add_forward_ref(float *y /* (n) */, const float *a /* (n) */, const float *b /* (n) */, int64_t n);

/* y = s x. */
void mn_scale_forward(float *y /* (n) */, const float *x /* (n) */, float s, int64_t n);
void mn_scale_forward_ref(float *y /* (n) */, const float *x /* (n) */, float s, int64_t n);
/* dx += s dy (the backward of scale, and with s = 1 of add). */
void mn_scale_backward(float *dx /* (n) */, const float *dy /* (n) */, float s, int64_t n);
void mn_scale_backward_ref(float *dx /* (n) */, const float *dy /* (n) */, float s, int64_t n);

/* y[:, off_i : off_i + cs[i]] = xs[i] for k inputs, off_i = cs[0] + ... + cs[i-1];
 * ctot = sum cs. */
void mn_concat_forward(float *y /* (N, ctot, S) */, const float *const *xs /* k of (N, cs[i], S) */,
                              const int64_t *cs /* (k) */, int k, int64_t n, int64_t s);
void mn_concat_forward_ref(float *y /* (N, ctot, S) */, const float *const *xs /* k of (N, cs[i], S) */,
                                  const int64_t *cs /* (k) */, int k, int64_t n, int64_t s);
/* dxs[i] += dy[:, off_i : off_i + cs[i]]; a NULL dxs[i] is skipped. */
void mn_concat_backward(float *const *dxs /* k of (N, cs[i], S) or NULL */, const float *dy /* (N, ctot, S) */,
                               const int64_t *cs /* (k) */, int k, int64_t n, int64_t s);
void mn_concat_backward_ref(float *const *dxs /* k of (N, cs[i], S) or NULL */,
                                   const float *dy /* (N, ctot, S) */, const int64_t *cs /* (k) */, int k, int64_t n,
                                   int64_t s);

#endif
