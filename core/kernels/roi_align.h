/* RoIAlign (torchvision.ops.roi_align semantics), forward and backward.
 *
 * Each roi row is (batch_index, x1, y1, x2, y2) in image coordinates. Scaled by
 * spatial_scale (and shifted by -0.5 when aligned), the roi is cut into out_h x out_w bins;
 * each bin averages bilinear samples on a regular grid of gy x gx points (sampling_ratio per
 * side, or ceil(roi size / bins) when sampling_ratio is 0). A sample with y outside [-1, H] or
 * x outside [-1, W] counts as 0; others are clamped into the map. Without `aligned`, rois are
 * at least 1x1. Batch indices must already be checked to lie in [0, N).
 *
 * The bilinear weight of a sample is the product of a row part and a column part, so the
 * optimised kernels precompute, per roi, one table of row (index, weight) pairs for every
 * (bin row, sample row) and one for columns, reuse them over all channels, and interpolate
 * each bin row in two passes: along y over the roi's columns, then along x. */
#ifndef MN_KERNELS_ROI_ALIGN_H
#define MN_KERNELS_ROI_ALIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mn/error.h"

typedef struct mn_roi_align_dims {
    int64_t n, c, h, w;   /* input (N, C, H, W) */
    int64_t k;            /* number of rois */
    int out_h, out_w;     /* bins per roi */
    float spatial_scale;
    int sampling_ratio;   /* > 0 fixed; 0 adaptive */
    bool aligned;
} mn_roi_align_dims;

/* Bytes of workspace mn_roi_align_forward / _backward need for these rois. */
size_t mn_roi_align_ws_bytes(const float *rois /* (K, 5) */, const mn_roi_align_dims *d);

/* y = roi_align(x). OpenMP over channels (each thread's planes stay in cache while every roi
 * reads them). ws: mn_roi_align_ws_bytes() bytes of scratch. */
void mn_roi_align_forward(float *y /* (K, C, out_h, out_w) */, void *ws, const float *x /* (N, C, H, W) */,
                                 const float *rois /* (K, 5) */, const mn_roi_align_dims *d);
/* The same, one sample at a time with the bilinear weights recomputed for each channel. */
void mn_roi_align_forward_ref(float *y /* (K, C, out_h, out_w) */, const float *x /* (N, C, H, W) */,
                                     const float *rois /* (K, 5) */, const mn_roi_align_dims *d);

/* dx += the bilinear weights of every sample times dy / samples per bin. OpenMP over
 * channels (rois of one image scatter into the same pixels; channels never collide), so the
 * order of accumulation, and hence the result, does not depend on the thread count. */
void mn_roi_align_backward(float *dx /* (N, C, H, W) */, void *ws, const float *dy /* (K, C, out_h, out_w) */,
                                  const float *rois /* (K, 5) */, const mn_roi_align_dims *d);
void mn_roi_align_backward_ref(float *dx /* (N, C, H, W) */, const float *dy /* (K, C, out_h, out_w) */,
                                      const float *rois /* (K, 5) */, const mn_roi_align_dims *d);

#endif
