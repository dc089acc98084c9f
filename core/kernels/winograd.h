/* Winograd F(4x4, 3x3) for 3x3 convolutions with stride 1, no dilation and one group (the
 * DeepLab decoder's, the FPN's and RPN's, ResNet's): every 4x4 block of outputs comes from a
 * 6x6 input tile through 36 products instead of 144, so the multiply-adds become 36 GEMMs of
 * (Cout, Cin) x (Cin, tiles), 4 times fewer than im2col's. The transforms are Lavin & Gray's
 * (interpolation points 0, +-1, +-2, infinity). The backward pass's input gradient is the
 * same computation on dy with the kernel flipped and transposed and the padding 2 - pad; the
 * weight gradient sums, per point, the products of dy's transformed tiles (A dy A^T) and x's,
 * then maps them back with G^T . G.
 *
 * Accuracy: the transforms add rounding of a few units in the 6th digit relative to the
 * output's scale (tests/test_kernels.c holds them to the reference within 1e-4 relative).
 * Threads take blocks of whole tile rows, each with its own single-threaded GEMMs. Scratch is
 * the caller's (mn_winograd_workspace_floats), nothing is allocated. */
#ifndef MN_KERNELS_WINOGRAD_H
#define MN_KERNELS_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/kernels/conv.h"

/* True when d is a convolution this path computes (3x3, stride 1, dilation 1, one group,
 * padding <= 2) and large enough for it to pay (see winograd.c). */
bool mn_winograd_applies(const mn_conv2d_dims *d);
/* Floats of scratch for mn_winograd_forward (backward = false) or mn_winograd_backward_data. */
size_t mn_winograd_workspace_floats(const mn_conv2d_dims *d, bool backward);

/* y (N, Cout, Ho, Wo) = conv(x (N, Cin, H, W), w (Cout, Cin, 3, 3) with row stride d->ldw)
 * + b (Cout, or NULL), then, when scale is given, y = clamp(y * scale[o] + shift[o], lo, hi)
 * per output channel o. */
void mn_winograd_forward(float *y, const float *x, const float *w, const float *b, const float *scale,
                         const float *shift, float lo, float hi, float *ws, const mn_conv2d_dims *d);
/* dx (N, Cin, H, W) += the input gradient of that convolution for dy (N, Cout, Ho, Wo). */
void mn_winograd_backward_data(float *dx, const float *dy, const float *w, float *ws, const mn_conv2d_dims *d);
/* dw (Cout, Cin, 3, 3), row stride d->ldw, += the weight gradient for dy and x (N, Cin, H, W). */
void mn_winograd_backward_weight(float *dw, const float *dy, const float *x, float *ws, const mn_conv2d_dims *d);

#endif
