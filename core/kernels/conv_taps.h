/* Dilated convolutions whose taps fall largely in the padding (DeepLab's ASPP: rates 6, 12 and
 * 18 on a 32x32 map leave 23-61 % of im2col's products on zeros; on CamVid's 11x14 map the
 * off-centre rows of rates 12 and 18 never touch the image). Each tap is a 1x1 product over
 * the rectangle of outputs where it reads the image: y[:, rect] += W_tap (Cout, Cin) x[:, rect
 * shifted], one GEMM per tap, nothing computed on padding. A tap whose rectangle spans whole
 * rows of input and output (the centre column of a "same" convolution) reads and writes the
 * planes in place; the others gather the window and scatter-add the result. Images run in
 * turn; OpenBLAS threads each GEMM and the copies are spread over threads.
 *
 * Used by conv.c for stride-1, one-group convolutions with dilation where at most 80 % of the
 * taps' products touch the image; scratch is the caller's (mn_taps_workspace_floats). */
#ifndef MN_KERNELS_CONV_TAPS_H
#define MN_KERNELS_CONV_TAPS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/kernels/conv.h"

bool mn_taps_applies(const mn_conv2d_dims *d);
size_t mn_taps_workspace_floats(const mn_conv2d_dims *d, bool backward);

/* y (N, Cout, Ho, Wo) = conv(x (N, Cin, H, W), w (Cout, Cin, KH, KW), row stride d->ldw) + b
 * (Cout, or NULL), then, when scale is given, y = clamp(y * scale[o] + shift[o], lo, hi). */
void mn_taps_forward(float *y, const float *x, const float *w, const float *b, const float *scale, const float *shift,
                     float lo, float hi, float *ws, const mn_conv2d_dims *d);
/* dx (N, Cin, H, W) and dw (Cout, Cin, KH, KW) with row stride d->ldw, either may be NULL:
 * += the gradients for dy (N, Cout, Ho, Wo). */
void mn_taps_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float *ws,
                      const mn_conv2d_dims *d);

#endif
