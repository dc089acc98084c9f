#include <stdio.h>
#include <string.h>

#include "mn/tensor.h"

mn_tensor mn_tensor_view(float *data, int ndim, const int64_t *shape)
{
    MN_ASSERT(ndim >= 1 && ndim <= MN_MAX_DIMS);
    mn_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

mn_tensor mn_tensor_4d(float *data, int64_t n, int64_t c, int64_t h, int64_t w)
{
    int64_t shape[4] = {n, c, h, w};
    return mn_tensor_view(data, 4, shape);
}

int64_t mn_tensor_numel(const mn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

mn_tensor mn_tensor_alloc(mn_arena *a, int ndim, const int64_t *shape)
{
    mn_tensor t = mn_tensor_view(NULL, ndim, shape);
    t.data = mn_arena_alloc(a, (size_t)mn_tensor_numel(&t) * sizeof(float));
    return t;
}

bool mn_tensor_is_contiguous(const mn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool mn_tensor_same_shape(const mn_tensor *a, const mn_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

mn_tensor mn_tensor_narrow(mn_tensor t, int dim, int64_t start, int64_t len)
{
    MN_ASSERT(dim >= 0 && dim < t.ndim && start >= 0 && len >= 0 && start + len <= t.shape[dim]);
    t.data += start * t.stride[dim];
    t.shape[dim] = len;
    return t;
}

/* Pads a tensor's shape and strides to 4 dims (leading 1s) so the loops below are fixed. */
static void as4(const mn_tensor *t, int64_t sh[4], int64_t st[4])
{
    int pad = MN_MAX_DIMS - t->ndim;
    for (int i = 0; i < MN_MAX_DIMS; i++) {
        sh[i] = i < pad ? 1 : t->shape[i - pad];
        st[i] = i < pad ? 0 : t->stride[i - pad];
    }
}

void mn_tensor_copy(mn_tensor *dst, const mn_tensor *src)
{
    MN_ASSERT(mn_tensor_same_shape(dst, src));
    int64_t sh[4], ds[4], ss[4];
    as4(dst, sh, ds);
    as4(src, sh, ss);
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++) {
                float *d = dst->data + a * ds[0] + b * ds[1] + c * ds[2];
                const float *s = src->data + a * ss[0] + b * ss[1] + c * ss[2];
                if (ds[3] == 1 && ss[3] == 1)
                    memcpy(d, s, (size_t)sh[3] * sizeof(float));
                else
                    for (int64_t e = 0; e < sh[3]; e++) d[e * ds[3]] = s[e * ss[3]];
            }
}

void mn_tensor_fill(mn_tensor *t, float v)
{
    int64_t sh[4], st[4];
    as4(t, sh, st);
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t e = 0; e < sh[3]; e++) t->data[a * st[0] + b * st[1] + c * st[2] + e * st[3]] = v;
}

const char *mn_shape_str(const mn_tensor *t, char *buf, int size)
{
    int n = snprintf(buf, (size_t)size, "[");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += snprintf(buf + n, (size_t)(size - n), i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n < size) snprintf(buf + n, (size_t)(size - n), "]");
    return buf;
}
