/* Resizing kernels with PyTorch's F.interpolate semantics (scale computed from the sizes).
 *
 * Bilinear: an output row o reads input rows i0[o] and i1[o] with weights 1 - l1[o] and l1[o]
 * ("taps"), likewise for columns. align_corners=False: src = (o + 0.5) in / out - 0.5, clamped
 * at 0; align_corners=True: src = o (in - 1) / (out - 1) (0 when out = 1). Nearest:
 * src = min(floor(o in / out), in - 1). The optimised kernels take taps precomputed by
 * mn_resize_*_taps; their `_ref` twins compute everything per element. Backward kernels
 * scatter (+=) into dx. */
#ifndef MN_KERNELS_RESIZE_H
#define MN_KERNELS_RESIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "mn/error.h"

/* Linear taps from `in` samples to `out` samples. */
void mn_resize_linear_taps(int64_t *i0 /* (out) */, int64_t *i1 /* (out) */, float *l1 /* (out) */,
                                  int64_t in, int64_t out, bool align_corners);
/* Nearest taps from `in` samples to `out` samples. */
void mn_resize_nearest_taps(int64_t *idx /* (out) */, int64_t in, int64_t out);

void mn_resize_bilinear_forward(float *y /* (N, C, OH, OW) */, const int64_t *h0 /* (OH) */,
                                       const int64_t *h1 /* (OH) */, const float *hl /* (OH) */,
                                       const int64_t *w0 /* (OW) */, const int64_t *w1 /* (OW) */,
                                       const float *wl /* (OW) */, const float *x /* (N, C, H, W) */, int64_t n,
                                       int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);
void mn_resize_bilinear_forward_ref(float *y /* (N, C, OH, OW) */, const float *x /* (N, C, H, W) */,
                                           int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                           bool align_corners);
void mn_resize_bilinear_backward(float *dx /* (N, C, H, W) */, const int64_t *h0 /* (OH) */,
                                        const int64_t *h1 /* (OH) */, const float *hl /* (OH) */,
                                        const int64_t *w0 /* (OW) */, const int64_t *w1 /* (OW) */,
                                        const float *wl /* (OW) */, const float *dy /* (N, C, OH, OW) */, int64_t n,
                                        int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);
void mn_resize_bilinear_backward_ref(float *dx /* (N, C, H, W) */, const float *dy /* (N, C, OH, OW) */,
                                            int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                            bool align_corners);

void mn_resize_nearest_forward(float *y /* (N, C, OH, OW) */, const int64_t *hi /* (OH) */,
                                      const int64_t *wi /* (OW) */, const float *x /* (N, C, H, W) */, int64_t n,
                                      int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);
void mn_resize_nearest_forward_ref(float *y /* (N, C, OH, OW) */, const float *x /* (N, C, H, W) */,
                                          int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);
void mn_resize_nearest_backward(float *dx /* (N, C, H, W) */, const int64_t *hi /* (OH) */,
                                       const int64_t *wi /* (OW) */, const float *dy /* (N, C, OH, OW) */, int64_t n,
                                       int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);
void mn_resize_nearest_backward_ref(float *dx /* (N, C, H, W) */, const float *dy /* (N, C, OH, OW) */,
                                           int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow);

#endif
