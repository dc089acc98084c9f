/* float32 strided tensor views.
 *
 * A tensor does not own memory: data points into an arena (or a caller's buffer). Strides
 * are in elements. Activations are contiguous NCHW; views make channel-prefix slices of
 * full-width weights (the slimmable case) and spatial crops without copying. */
#ifndef MN_TENSOR_H
#define MN_TENSOR_H

/* Images per batch: every per-image array of a batch (loader, transforms, detector, targets) is
 * sized for this many. */
#define MN_MAX_BATCH 64

#include <stdbool.h>
#include <stdint.h>
#include "arena.h"

#define MN_MAX_DIMS 4

typedef struct mn_tensor {
    float *data;
    int ndim;
    int64_t shape[MN_MAX_DIMS];
    int64_t stride[MN_MAX_DIMS]; /* elements between neighbours along each dim */
} mn_tensor;

/* A contiguous (row-major) view of data with the given shape. */
MN_API mn_tensor mn_tensor_view(float *data, int ndim, const int64_t *shape);
MN_API mn_tensor mn_tensor_4d(float *data, int64_t n, int64_t c, int64_t h, int64_t w);
/* A contiguous tensor in arena memory (contents undefined); data == NULL on failure. */
MN_API mn_tensor mn_tensor_alloc(mn_arena *a, int ndim, const int64_t *shape);
MN_API int64_t mn_tensor_numel(const mn_tensor *t);
MN_API bool mn_tensor_is_contiguous(const mn_tensor *t);
MN_API bool mn_tensor_same_shape(const mn_tensor *a, const mn_tensor *b);
/* The view t[..., start:start+len, ...] along dim. */
MN_API mn_tensor mn_tensor_narrow(mn_tensor t, int dim, int64_t start, int64_t len);
/* Copies src into dst element by element (any strides, same shape). */
MN_API void mn_tensor_copy(mn_tensor *dst, const mn_tensor *src);
MN_API void mn_tensor_fill(mn_tensor *t, float v);
/* Writes "[2, 3, 4]" into buf (for error messages). */
MN_API const char *mn_shape_str(const mn_tensor *t, char *buf, int size);

#endif
