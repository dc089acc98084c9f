#include <math.h>
#include <stdbool.h>

#include "core/kernels/pool.h"

/* Below this many input elements a kernel runs on one thread: waking the team would cost more. */
#define POOL_PAR_MIN 32768

int64_t mn_pool2d_out(int64_t in, int k, int stride, int pad)
{
    int64_t span = in + 2 * (int64_t)pad - k;
    return span < 0 ? 0 : span / stride + 1;
}

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

/* Output columns [*lo, *hi) whose whole window lies inside the input row: there the window
 * loops need no clipping and run across output columns as vectors. */
static void interior_cols(int64_t w, int64_t wo, int k, int stride, int pad, int64_t *lo, int64_t *hi)
{
    int64_t a = (pad + stride - 1) / stride;
    int64_t b = w - k + pad >= 0 ? (w - k + pad) / stride + 1 : 0;
    b = imin(b, wo);
    *lo = imin(a, b);
    *hi = b;
}

/* ---- max pooling ---- */

/* One output of a max pool with its window clipped to the input. */
static void max_window(float *y /* (1) */, int32_t *am /* (1) */, const float *xp /* (H, W) */, int64_t w, int64_t hs,
                       int64_t he, int64_t ws, int64_t we)
{
    float best = -INFINITY;
    int64_t idx = hs * w + ws;
    for (int64_t ih = hs; ih < he; ih++)
        for (int64_t iw = ws; iw < we; iw++) {
            float v = xp[ih * w + iw];
            if (v > best || isnan(v)) {
                best = v;
                idx = ih * w + iw;
            }
        }
    *y = best;
    *am = (int32_t)idx;
}

void mn_max_pool2d_forward(float *y, int32_t *argmax, const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                           int k, int stride, int pad)
{
    const int64_t ho = mn_pool2d_out(h, k, stride, pad), wo = mn_pool2d_out(w, k, stride, pad);
    int64_t ca, cb;
    interior_cols(w, wo, k, stride, pad, &ca, &cb);
#pragma omp parallel for schedule(static) if (n * c * h * w >= POOL_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        const float *xp = x + p * h * w;
        for (int64_t oh = 0; oh < ho; oh++) {
            const int64_t h0 = oh * stride - pad, hs = imax(h0, 0), he = imin(h0 + k, h);
            float *yr = y + (p * ho + oh) * wo;
            int32_t *ar = argmax + (p * ho + oh) * wo;
            for (int64_t ow = 0; ow < wo; ow++) {
                if (ow == ca) ow = cb; /* skip the interior, done below */
                if (ow >= wo) break;
                const int64_t w0 = ow * stride - pad;
                max_window(&yr[ow], &ar[ow], xp, w, hs, he, imax(w0, 0), imin(w0 + k, w));
            }
            for (int64_t ow = ca; ow < cb; ow++) {
                yr[ow] = -INFINITY;
                ar[ow] = (int32_t)(hs * w + ow * stride - pad);
            }
            /* visiting the window in scan order with a strict '>' keeps the first maximum */
            for (int64_t ih = hs; ih < he; ih++) {
                const float *xr = xp + ih * w;
                for (int kw = 0; kw < k; kw++) {
#pragma omp simd
                    for (int64_t ow = ca; ow < cb; ow++) {
                        const int64_t iw = ow * stride - pad + kw;
                        const float v = xr[iw];
                        const bool take = v > yr[ow] || v != v;
                        yr[ow] = take ? v : yr[ow];
                        ar[ow] = take ? (int32_t)(ih * w + iw) : ar[ow];
                    }
                }
            }
        }
    }
}

void mn_max_pool2d_backward(float *dx, const int32_t *argmax, const float *dy, int64_t n, int64_t c, int64_t h,
                            int64_t w, int64_t ho, int64_t wo)
{
    /* argmax points inside its own plane, so planes never collide across threads */
#pragma omp parallel for schedule(static) if (n * c * h * w >= POOL_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        float *dp = dx + p * h * w;
        const float *g = dy + p * ho * wo;
        const int32_t *a = argmax + p * ho * wo;
        for (int64_t o = 0; o < ho * wo; o++) dp[a[o]] += g[o];
    }
}

/* ---- average pooling ---- */

/* The divisor of the window starting at h0 (or w0): its extent clipped to the padded input. */
static int64_t padded_extent(int64_t h0, int k, int64_t h, int pad) { return imin(h0 + k, h + pad) - h0; }

void mn_avg_pool2d_forward(float *y, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int k, int stride,
                           int pad)
{
    const int64_t ho = mn_pool2d_out(h, k, stride, pad), wo = mn_pool2d_out(w, k, stride, pad);
    int64_t ca, cb;
    interior_cols(w, wo, k, stride, pad, &ca, &cb);
#pragma omp parallel for schedule(static) if (n * c * h * w >= POOL_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        const float *xp = x + p * h * w;
        for (int64_t oh = 0; oh < ho; oh++) {
            const int64_t h0 = oh * stride - pad, hs = imax(h0, 0), he = imin(h0 + k, h);
            const int64_t ph = padded_extent(h0, k, h, pad);
            float *yr = y + (p * ho + oh) * wo;
            for (int64_t ow = 0; ow < wo; ow++) {
                if (ow == ca) ow = cb;
                if (ow >= wo) break;
                const int64_t w0 = ow * stride - pad, ws = imax(w0, 0), we = imin(w0 + k, w);
                float sum = 0;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) sum += xp[ih * w + iw];
                yr[ow] = hs < he && ws < we ? sum / (float)(ph * padded_extent(w0, k, w, pad)) : 0.0f;
            }
            for (int64_t ow = ca; ow < cb; ow++) yr[ow] = 0.0f;
            for (int64_t ih = hs; ih < he; ih++) {
                const float *xr = xp + ih * w;
                for (int kw = 0; kw < k; kw++) {
#pragma omp simd
                    for (int64_t ow = ca; ow < cb; ow++) yr[ow] += xr[ow * stride - pad + kw];
                }
            }
            const float div = (float)(ph * k); /* interior columns span k */
#pragma omp simd
            for (int64_t ow = ca; ow < cb; ow++) yr[ow] /= div;
        }
    }
}

void mn_avg_pool2d_backward(float *dx, const float *dy, int64_t n, int64_t c, int64_t h, int64_t w, int k,
                            int stride, int pad)
{
    const int64_t ho = mn_pool2d_out(h, k, stride, pad), wo = mn_pool2d_out(w, k, stride, pad);
    int64_t ca, cb;
    interior_cols(w, wo, k, stride, pad, &ca, &cb);
#pragma omp parallel for schedule(static) if (n * c * h * w >= POOL_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        float *dp = dx + p * h * w;
        for (int64_t oh = 0; oh < ho; oh++) {
            const int64_t h0 = oh * stride - pad, hs = imax(h0, 0), he = imin(h0 + k, h);
            const int64_t ph = padded_extent(h0, k, h, pad);
            const float *g = dy + (p * ho + oh) * wo;
            for (int64_t ow = 0; ow < wo; ow++) {
                if (ow == ca) ow = cb;
                if (ow >= wo) break;
                const int64_t w0 = ow * stride - pad, ws = imax(w0, 0), we = imin(w0 + k, w);
                const float v = g[ow] / (float)(ph * padded_extent(w0, k, w, pad));
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) dp[ih * w + iw] += v;
            }
            const float div = (float)(ph * k);
            for (int64_t ih = hs; ih < he; ih++) {
                float *dr = dp + ih * w;
                /* for a fixed kw distinct output columns hit distinct inputs: no conflicts */
                for (int kw = 0; kw < k; kw++) {
#pragma omp simd
                    for (int64_t ow = ca; ow < cb; ow++) dr[ow * stride - pad + kw] += g[ow] / div;
                }
            }
        }
    }
}

/* ---- global average pooling ---- */

void mn_global_avg_pool_forward(float *y, const float *x, int64_t n, int64_t c, int64_t s)
{
#pragma omp parallel for schedule(static) if (n * c * s >= POOL_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        const float *xp = x + p * s;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < s; k++) acc += xp[k];
        y[p] = acc / (float)s;
    }
}

void mn_global_avg_pool_backward(float *dx, const float *dy, int64_t n, int64_t c, int64_t s)
{
#pragma omp parallel for schedule(static) if (n * c * s >= POOL_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        float *dp = dx + p * s;
        const float v = dy[p] / (float)s;
#pragma omp simd
        for (int64_t k = 0; k < s; k++) dp[k] += v;
    }
}

/* ---- reference twins: every window element visited with explicit bounds checks ---- */

void mn_max_pool2d_forward_ref(float *y, int32_t *argmax, const float *x, int64_t n, int64_t c, int64_t h,
                               int64_t w, int k, int stride, int pad)
{
    const int64_t ho = mn_pool2d_out(h, k, stride, pad), wo = mn_pool2d_out(w, k, stride, pad);
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oh = 0; oh < ho; oh++)
            for (int64_t ow = 0; ow < wo; ow++) {
                float best = -INFINITY;
                int64_t idx = -1;
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        int64_t ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                        if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                        float v = x[(p * h + ih) * w + iw];
                        if (idx < 0) idx = ih * w + iw; /* first in-bounds cell, kept for an all -inf window */
                        if (v > best || isnan(v)) {
                            best = v;
                            idx = ih * w + iw;
                        }
                    }
                y[(p * ho + oh) * wo + ow] = best;
                argmax[(p * ho + oh) * wo + ow] = (int32_t)idx;
            }
}

void mn_max_pool2d_backward_ref(float *dx, const int32_t *argmax, const float *dy, int64_t n, int64_t c, int64_t h,
                                int64_t w, int64_t ho, int64_t wo)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t o = 0; o < ho * wo; o++) dx[p * h * w + argmax[p * ho * wo + o]] += dy[p * ho * wo + o];
}

void mn_avg_pool2d_forward_ref(float *y, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int k,
                               int stride, int pad)
{
    const int64_t ho = mn_pool2d_out(h, k, stride, pad), wo = mn_pool2d_out(w, k, stride, pad);
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oh = 0; oh < ho; oh++)
            for (int64_t ow = 0; ow < wo; ow++) {
                double sum = 0;
                int64_t count = 0; /* window cells inside the padded input */
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        int64_t ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                        if (ih >= h + pad || iw >= w + pad) continue;
                        count++;
                        if (ih >= 0 && ih < h && iw >= 0 && iw < w) sum += x[(p * h + ih) * w + iw];
                    }
                y[(p * ho + oh) * wo + ow] = (float)(sum / (double)count);
            }
}

void mn_avg_pool2d_backward_ref(float *dx, const float *dy, int64_t n, int64_t c, int64_t h, int64_t w, int k,
                                int stride, int pad)
{
    const int64_t ho = mn_pool2d_out(h, k, stride, pad), wo = mn_pool2d_out(w, k, stride, pad);
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oh = 0; oh < ho; oh++)
            for (int64_t ow = 0; ow < wo; ow++) {
                int64_t count = 0;
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++)
                        if (oh * stride - pad + kh < h + pad && ow * stride - pad + kw < w + pad) count++;
                double g = dy[(p * ho + oh) * wo + ow] / (double)count;
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        int64_t ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
                        if (ih >= 0 && ih < h && iw >= 0 && iw < w) dx[(p * h + ih) * w + iw] += (float)g;
                    }
            }
}

void mn_global_avg_pool_forward_ref(float *y, const float *x, int64_t n, int64_t c, int64_t s)
{
    for (int64_t p = 0; p < n * c; p++) {
        double sum = 0;
        for (int64_t k = 0; k < s; k++) sum += x[p * s + k];
        y[p] = (float)(sum / (double)s);
    }
}

void mn_global_avg_pool_backward_ref(float *dx, const float *dy, int64_t n, int64_t c, int64_t s)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t k = 0; k < s; k++) dx[p * s + k] += dy[p] / (float)s;
}
