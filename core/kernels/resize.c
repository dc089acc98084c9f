#include <math.h>

#include "core/kernels/resize.h"

/* Below this many output elements a kernel runs on one thread: waking the team would cost more. */
#define RESIZE_PAR_MIN 32768

/* The arithmetic below follows PyTorch's CPU kernels step for step (a float scale, the source
 * coordinate of align_corners=False formed in double and rounded to float), so the taps are
 * those of F.interpolate. */

void mn_resize_linear_taps(int64_t *i0, int64_t *i1, float *l1, int64_t in, int64_t out, bool align_corners)
{
    float scale;
    if (align_corners)
        scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    else
        scale = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        if (in == out) {
            i0[o] = i1[o] = o;
            l1[o] = 0.0f;
            continue;
        }
        float src = align_corners ? scale * (float)o : (float)((double)scale * ((double)o + 0.5) - 0.5);
        if (src < 0.0f) src = 0.0f;
        int64_t a = (int64_t)src;
        i0[o] = a;
        i1[o] = a < in - 1 ? a + 1 : a;
        float l = src - (float)a;
        l1[o] = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
    }
}

void mn_resize_nearest_taps(int64_t *idx, int64_t in, int64_t out)
{
    const float scale = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        int64_t s = (int64_t)floorf((float)o * scale);
        idx[o] = s < in - 1 ? s : in - 1;
    }
}

void mn_resize_bilinear_forward(float *y, const int64_t *h0, const int64_t *h1, const float *hl, const int64_t *w0,
                                const int64_t *w1, const float *wl, const float *x, int64_t n, int64_t c, int64_t h,
                                int64_t w, int64_t oh, int64_t ow)
{
#pragma omp parallel for schedule(static) if (n * c * oh * ow >= RESIZE_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        const float *xp = x + p * h * w;
        for (int64_t oy = 0; oy < oh; oy++) {
            const float *r0 = xp + h0[oy] * w, *r1 = xp + h1[oy] * w;
            const float b1 = hl[oy], b0 = 1.0f - b1;
            float *yr = y + (p * oh + oy) * ow;
#pragma omp simd
            for (int64_t ox = 0; ox < ow; ox++) {
                const float a1 = wl[ox], a0 = 1.0f - a1;
                yr[ox] = (r0[w0[ox]] * a0 + r0[w1[ox]] * a1) * b0 + (r1[w0[ox]] * a0 + r1[w1[ox]] * a1) * b1;
            }
        }
    }
}

void mn_resize_bilinear_backward(float *dx, const int64_t *h0, const int64_t *h1, const float *hl, const int64_t *w0,
                                 const int64_t *w1, const float *wl, const float *dy, int64_t n, int64_t c, int64_t h,
                                 int64_t w, int64_t oh, int64_t ow)
{
    /* neighbouring outputs share inputs, so the scatter stays serial within a plane */
#pragma omp parallel for schedule(static) if (n * c * oh * ow >= RESIZE_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        float *dp = dx + p * h * w;
        for (int64_t oy = 0; oy < oh; oy++) {
            float *r0 = dp + h0[oy] * w, *r1 = dp + h1[oy] * w;
            const float b1 = hl[oy], b0 = 1.0f - b1;
            const float *g = dy + (p * oh + oy) * ow;
            for (int64_t ox = 0; ox < ow; ox++) {
                const float a1 = wl[ox], a0 = 1.0f - a1;
                r0[w0[ox]] += b0 * a0 * g[ox];
                r0[w1[ox]] += b0 * a1 * g[ox];
                r1[w0[ox]] += b1 * a0 * g[ox];
                r1[w1[ox]] += b1 * a1 * g[ox];
            }
        }
    }
}

void mn_resize_nearest_forward(float *y, const int64_t *hi, const int64_t *wi, const float *x, int64_t n, int64_t c,
                               int64_t h, int64_t w, int64_t oh, int64_t ow)
{
#pragma omp parallel for schedule(static) if (n * c * oh * ow >= RESIZE_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < oh; oy++) {
            const float *xr = x + (p * h + hi[oy]) * w;
            float *yr = y + (p * oh + oy) * ow;
#pragma omp simd
            for (int64_t ox = 0; ox < ow; ox++) yr[ox] = xr[wi[ox]];
        }
}

void mn_resize_nearest_backward(float *dx, const int64_t *hi, const int64_t *wi, const float *dy, int64_t n,
                                int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow)
{
#pragma omp parallel for schedule(static) if (n * c * oh * ow >= RESIZE_PAR_MIN)
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < oh; oy++) {
            float *dr = dx + (p * h + hi[oy]) * w;
            const float *g = dy + (p * oh + oy) * ow;
            for (int64_t ox = 0; ox < ow; ox++) dr[wi[ox]] += g[ox];
        }
}

/* ---- reference twins: the source position of every output element computed on the spot ---- */

/* Source coordinate, lower and upper neighbour and upper weight of output o along one axis. */
static void linear_src(int64_t o, int64_t in, int64_t out, bool align_corners, int64_t *a, int64_t *b, float *l)
{
    if (in == out) {
        *a = *b = o;
        *l = 0.0f;
        return;
    }
    float src;
    if (align_corners) {
        float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
        src = scale * (float)o;
    } else {
        float scale = (float)in / (float)out;
        src = (float)((double)scale * ((double)o + 0.5) - 0.5);
        if (src < 0.0f) src = 0.0f;
    }
    *a = (int64_t)floorf(src);
    *b = *a + 1 < in ? *a + 1 : in - 1;
    *l = fminf(fmaxf(src - (float)*a, 0.0f), 1.0f);
}

void mn_resize_bilinear_forward_ref(float *y, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                                    int64_t ow, bool align_corners)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t ya, yb, xa, xb;
                float ly, lx;
                linear_src(oy, h, oh, align_corners, &ya, &yb, &ly);
                linear_src(ox, w, ow, align_corners, &xa, &xb, &lx);
                const float *xp = x + p * h * w;
                float top = xp[ya * w + xa] * (1.0f - lx) + xp[ya * w + xb] * lx;
                float bottom = xp[yb * w + xa] * (1.0f - lx) + xp[yb * w + xb] * lx;
                y[(p * oh + oy) * ow + ox] = top * (1.0f - ly) + bottom * ly;
            }
}

void mn_resize_bilinear_backward_ref(float *dx, const float *dy, int64_t n, int64_t c, int64_t h, int64_t w,
                                     int64_t oh, int64_t ow, bool align_corners)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t ya, yb, xa, xb;
                float ly, lx;
                linear_src(oy, h, oh, align_corners, &ya, &yb, &ly);
                linear_src(ox, w, ow, align_corners, &xa, &xb, &lx);
                float g = dy[(p * oh + oy) * ow + ox];
                float *dp = dx + p * h * w;
                dp[ya * w + xa] += (1.0f - ly) * (1.0f - lx) * g;
                dp[ya * w + xb] += (1.0f - ly) * lx * g;
                dp[yb * w + xa] += ly * (1.0f - lx) * g;
                dp[yb * w + xb] += ly * lx * g;
            }
}

static int64_t nearest_src(int64_t o, int64_t in, int64_t out)
{
    int64_t s = (int64_t)floorf((float)o * ((float)in / (float)out));
    return s > in - 1 ? in - 1 : s;
}

void mn_resize_nearest_forward_ref(float *y, const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                                   int64_t ow)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                y[(p * oh + oy) * ow + ox] = x[(p * h + nearest_src(oy, h, oh)) * w + nearest_src(ox, w, ow)];
}

void mn_resize_nearest_backward_ref(float *dx, const float *dy, int64_t n, int64_t c, int64_t h, int64_t w,
                                    int64_t oh, int64_t ow)
{
    for (int64_t p = 0; p < n * c; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++)
                dx[(p * h + nearest_src(oy, h, oh)) * w + nearest_src(ox, w, ow)] += dy[(p * oh + oy) * ow + ox];
}
