#include <string.h>

#include "core/kernels/eltwise.h"

/* Flat loops are cut into chunks of this many elements: one chunk runs on one thread, so small
 * tensors pay no threading cost and large ones split evenly. */
#define EW_CHUNK 16384

static int64_t n_chunks(int64_t n) { return (n + EW_CHUNK - 1) / EW_CHUNK; }
static int64_t chunk_end(int64_t lo, int64_t n) { return lo + EW_CHUNK < n ? lo + EW_CHUNK : n; }

void mn_relu_forward(float *y, const float *x, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
}

void mn_relu_backward(float *dx, const float *dy, const float *x, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
    }
}

void mn_relu6_forward(float *y, const float *x, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) {
            float v = x[i] < 0.0f ? 0.0f : x[i];
            y[i] = v > 6.0f ? 6.0f : v;
        }
    }
}

void mn_relu6_backward(float *dx, const float *dy, const float *x, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) dx[i] += (x[i] > 0.0f && x[i] < 6.0f) ? dy[i] : 0.0f;
    }
}

void mn_add_forward(float *y, const float *a, const float *b, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t c = 0; c < nb; c++) {
        const int64_t lo = c * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) y[i] = a[i] + b[i];
    }
}

void mn_scale_forward(float *y, const float *x, float s, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) y[i] = s * x[i];
    }
}

void mn_scale_backward(float *dx, const float *dy, float s, int64_t n)
{
    const int64_t nb = n_chunks(n);
#pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * EW_CHUNK, hi = chunk_end(lo, n);
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) dx[i] += s * dy[i];
    }
}

static int64_t total_channels(const int64_t *cs, int k)
{
    int64_t t = 0;
    for (int i = 0; i < k; i++) t += cs[i];
    return t;
}

void mn_concat_forward(float *y, const float *const *xs, const int64_t *cs, int k, int64_t n, int64_t s)
{
    const int64_t ctot = total_channels(cs, k);
    /* one (sample, input) block per iteration: a single contiguous copy */
#pragma omp parallel for schedule(static) if (n * ctot * s >= EW_CHUNK)
    for (int64_t j = 0; j < n * k; j++) {
        const int64_t ni = j / k;
        const int i = (int)(j % k);
        int64_t off = 0;
        for (int q = 0; q < i; q++) off += cs[q];
        memcpy(y + (ni * ctot + off) * s, xs[i] + ni * cs[i] * s, sizeof(float) * (size_t)(cs[i] * s));
    }
}

void mn_concat_backward(float *const *dxs, const float *dy, const int64_t *cs, int k, int64_t n, int64_t s)
{
    const int64_t ctot = total_channels(cs, k);
#pragma omp parallel for schedule(static) if (n * ctot * s >= EW_CHUNK)
    for (int64_t j = 0; j < n * k; j++) {
        const int64_t ni = j / k;
        const int i = (int)(j % k);
        if (!dxs[i]) continue;
        int64_t off = 0;
        for (int q = 0; q < i; q++) off += cs[q];
        const float *g = dy + (ni * ctot + off) * s;
        float *d = dxs[i] + ni * cs[i] * s;
        const int64_t len = cs[i] * s;
#pragma omp simd
        for (int64_t e = 0; e < len; e++) d[e] += g[e];
    }
}

/* ---- reference twins ---- */

void mn_relu_forward_ref(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f || x[i] != x[i] ? x[i] : 0.0f;
}

void mn_relu_backward_ref(float *dx, const float *dy, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] > 0.0f) dx[i] += dy[i];
}

void mn_relu6_forward_ref(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (x[i] <= 0.0f)
            y[i] = 0.0f;
        else if (x[i] >= 6.0f)
            y[i] = 6.0f;
        else
            y[i] = x[i]; /* also NaN */
    }
}

void mn_relu6_backward_ref(float *dx, const float *dy, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] > 0.0f && x[i] < 6.0f) dx[i] += dy[i];
}

void mn_add_forward_ref(float *y, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void mn_scale_forward_ref(float *y, const float *x, float s, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = s * x[i];
}

void mn_scale_backward_ref(float *dx, const float *dy, float s, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dx[i] += s * dy[i];
}

void mn_concat_forward_ref(float *y, const float *const *xs, const int64_t *cs, int k, int64_t n, int64_t s)
{
    const int64_t ctot = total_channels(cs, k);
    for (int64_t ni = 0; ni < n; ni++) {
        int64_t co = 0;
        for (int i = 0; i < k; i++)
            for (int64_t ci = 0; ci < cs[i]; ci++, co++)
                for (int64_t e = 0; e < s; e++) y[(ni * ctot + co) * s + e] = xs[i][(ni * cs[i] + ci) * s + e];
    }
}

void mn_concat_backward_ref(float *const *dxs, const float *dy, const int64_t *cs, int k, int64_t n, int64_t s)
{
    const int64_t ctot = total_channels(cs, k);
    for (int64_t ni = 0; ni < n; ni++) {
        int64_t co = 0;
        for (int i = 0; i < k; i++)
            for (int64_t ci = 0; ci < cs[i]; ci++, co++)
                for (int64_t e = 0; e < s; e++)
                    if (dxs[i]) dxs[i][(ni * cs[i] + ci) * s + e] += dy[(ni * ctot + co) * s + e];
    }
}
