#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/kernels/bn.h"

/* Below this many elements a kernel runs on one thread: waking the team would cost more. */
#define BN_PAR_MIN 32768

/* Rows are summed in float blocks (vectorised) and the block sums added in double, which keeps
 * the error of a 100k-element channel near that of a double sum at float speed. */
#define BN_BLOCK 1024

/* Out of line: synchronised BN's statistics (mn_bn_channel_sums, mn_bn_channel_sqdev) add rows
 * with these very functions, one copy of the code, so R ranks get one process's bits. */
#if defined(__GNUC__)
#define BN_ROW __attribute__((noinline)) static
#else
#define BN_ROW static
#endif

BN_ROW double row_sum(const float *r /* (S) */, int64_t s)
{
    double total = 0;
    for (int64_t k0 = 0; k0 < s; k0 += BN_BLOCK) {
        int64_t k1 = k0 + BN_BLOCK < s ? k0 + BN_BLOCK : s;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = k0; k < k1; k++) acc += r[k];
        total += acc;
    }
    return total;
}

BN_ROW double row_sqdev(const float *r /* (S) */, int64_t s, float mu)
{
    double total = 0;
    for (int64_t k0 = 0; k0 < s; k0 += BN_BLOCK) {
        int64_t k1 = k0 + BN_BLOCK < s ? k0 + BN_BLOCK : s;
        float acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t k = k0; k < k1; k++) {
            float d = r[k] - mu;
            acc += d * d;
        }
        total += acc;
    }
    return total;
}

/* y = (x - mean) invstd gamma + beta, then clamped to [lo, hi] when clamp is set (the clamp
 * uses the expressions of mn_relu_forward / mn_relu6_forward, so a NaN passes through). */
static void normalise(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                      const float *beta, bool clamp, float lo, float hi, int64_t n, int64_t c, int64_t s)
{
    if (s == 1) {
        /* (N, C): channels are the contiguous dimension */
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
        for (int64_t ni = 0; ni < n; ni++) {
            const float *xr = x + ni * c;
            float *yr = y + ni * c;
#pragma omp simd
            for (int64_t ci = 0; ci < c; ci++) {
                float a = invstd[ci] * (gamma ? gamma[ci] : 1.0f);
                float b = (beta ? beta[ci] : 0.0f) - mean[ci] * a;
                float v = xr[ci] * a + b;
                if (clamp) {
                    v = v < lo ? lo : v;
                    v = v > hi ? hi : v;
                }
                yr[ci] = v;
            }
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t i = 0; i < n * c; i++) {
        int64_t ci = i % c;
        float a = invstd[ci] * (gamma ? gamma[ci] : 1.0f);
        float b = (beta ? beta[ci] : 0.0f) - mean[ci] * a;
        const float *xr = x + i * s;
        float *yr = y + i * s;
        if (clamp) {
#pragma omp simd
            for (int64_t k = 0; k < s; k++) {
                float v = xr[k] * a + b;
                v = v < lo ? lo : v;
                yr[k] = v > hi ? hi : v;
            }
        } else {
#pragma omp simd
            for (int64_t k = 0; k < s; k++) yr[k] = xr[k] * a + b;
        }
    }
}

void mn_bn_forward_eval(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                        const float *beta, int64_t n, int64_t c, int64_t s)
{
    normalise(y, x, mean, invstd, gamma, beta, false, 0.0f, 0.0f, n, c, s);
}

void mn_bn_forward_eval_clamp(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                              const float *beta, float lo, float hi, int64_t n, int64_t c, int64_t s)
{
    normalise(y, x, mean, invstd, gamma, beta, true, lo, hi, n, c, s);
}

/* mean, invstd, var (C): the batch statistics of x (N, C, S). */
static void batch_stats(float *mean, float *invstd, float *var, const float *x, int64_t n, int64_t c, int64_t s,
                        float eps)
{
    const double m = (double)(n * s);
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        double sum = 0;
        for (int64_t ni = 0; ni < n; ni++) sum += row_sum(x + (ni * c + ci) * s, s);
        float mu = (float)(sum / m);
        /* second pass around the mean: no cancellation when |mean| >> std */
        double sq = 0;
        for (int64_t ni = 0; ni < n; ni++) sq += row_sqdev(x + (ni * c + ci) * s, s, mu);
        float v = (float)(sq / m);
        mean[ci] = mu;
        var[ci] = v;
        invstd[ci] = 1.0f / sqrtf(v + eps);
    }
}

void mn_bn_channel_sums(double *sum, const float *x, int64_t n, int64_t c, int64_t s)
{
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        double t = 0; /* image by image, as batch_stats */
        for (int64_t ni = 0; ni < n; ni++) t += row_sum(x + (ni * c + ci) * s, s);
        sum[ci] = t;
    }
}

void mn_bn_channel_sqdev(double *sq, const float *x, const float *mean, int64_t n, int64_t c, int64_t s)
{
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        double t = 0;
        for (int64_t ni = 0; ni < n; ni++) t += row_sqdev(x + (ni * c + ci) * s, s, mean[ci]);
        sq[ci] = t;
    }
}

void mn_bn_forward_train(float *y, float *mean, float *invstd, float *var, const float *x, const float *gamma,
                         const float *beta, int64_t n, int64_t c, int64_t s, float eps)
{
    batch_stats(mean, invstd, var, x, n, c, s, eps);
    normalise(y, x, mean, invstd, gamma, beta, false, 0.0f, 0.0f, n, c, s);
}

void mn_bn_forward_train_clamp(float *y, float *mean, float *invstd, float *var, const float *x, const float *gamma,
                               const float *beta, float lo, float hi, int64_t n, int64_t c, int64_t s, float eps)
{
    batch_stats(mean, invstd, var, x, n, c, s, eps);
    normalise(y, x, mean, invstd, gamma, beta, true, lo, hi, n, c, s);
}

void mn_bn_backward_train(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                          const float *dy, const float *x, const float *gamma, int64_t n, int64_t c, int64_t s)
{
    const double m = (double)(n * s);
    /* one channel per iteration: its two reductions feed its own dx rows, so no scratch is needed */
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        const float mu = mean[ci], is = invstd[ci];
        double sdy = 0, sdyx = 0;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *g = dy + (ni * c + ci) * s, *xr = x + (ni * c + ci) * s;
            for (int64_t k0 = 0; k0 < s; k0 += BN_BLOCK) {
                int64_t k1 = k0 + BN_BLOCK < s ? k0 + BN_BLOCK : s;
                float a1 = 0, a2 = 0;
#pragma omp simd reduction(+ : a1, a2)
                for (int64_t k = k0; k < k1; k++) {
                    a1 += g[k];
                    a2 += g[k] * (xr[k] - mu);
                }
                sdy += a1;
                sdyx += a2;
            }
        }
        if (dgamma) dgamma[ci] += (float)(sdyx * is);
        if (dbeta) dbeta[ci] += (float)sdy;
        if (!dx) continue;
        /* dx = p dy - q (x - mean) - r, the batch-statistics gradient expanded per channel */
        const double gi = (double)(gamma ? gamma[ci] : 1.0f) * is;
        const float p = (float)gi;
        const float q = (float)(gi * is * is * sdyx / m);
        const float r = (float)(gi * sdy / m);
        for (int64_t ni = 0; ni < n; ni++) {
            const float *g = dy + (ni * c + ci) * s, *xr = x + (ni * c + ci) * s;
            float *d = dx + (ni * c + ci) * s;
#pragma omp simd
            for (int64_t k = 0; k < s; k++) d[k] += p * g[k] - q * (xr[k] - mu) - r;
        }
    }
}

void mn_bn_backward_eval(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                         const float *dy, const float *x, const float *gamma, int64_t n, int64_t c, int64_t s)
{
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
        for (int64_t ci = 0; ci < c; ci++) {
            const float mu = mean[ci];
            double sdy = 0, sdyx = 0;
            for (int64_t ni = 0; ni < n; ni++) {
                const float *g = dy + (ni * c + ci) * s, *xr = x + (ni * c + ci) * s;
                float a1 = 0, a2 = 0;
#pragma omp simd reduction(+ : a1, a2)
                for (int64_t k = 0; k < s; k++) {
                    a1 += g[k];
                    a2 += g[k] * (xr[k] - mu);
                }
                sdy += a1;
                sdyx += a2;
            }
            if (dgamma) dgamma[ci] += (float)(sdyx * invstd[ci]);
            if (dbeta) dbeta[ci] += (float)sdy;
        }
    }
    if (!dx) return;
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t i = 0; i < n * c; i++) {
        int64_t ci = i % c;
        const float a = invstd[ci] * (gamma ? gamma[ci] : 1.0f);
        const float *g = dy + i * s;
        float *d = dx + i * s;
#pragma omp simd
        for (int64_t k = 0; k < s; k++) d[k] += a * g[k];
    }
}

/* The gradient that reaches the batch norm's output z through y = clamp(z, lo, hi): dy where
 * lo < y < hi, else 0 (zero at both ends, as mn_relu_backward and mn_relu6_backward). */
static inline float masked(float dy, float y, float lo, float hi) { return y > lo && y < hi ? dy : 0.0f; }

void mn_bn_backward_train_masked(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                                 const float *dy, const float *y, const float *x, const float *gamma, float lo,
                                 float hi, int64_t n, int64_t c, int64_t s)
{
    const double m = (double)(n * s);
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        const float mu = mean[ci], is = invstd[ci];
        double sdy = 0, sdyx = 0;
        for (int64_t ni = 0; ni < n; ni++) {
            const int64_t off = (ni * c + ci) * s;
            const float *g = dy + off, *yr = y + off, *xr = x + off;
            for (int64_t k0 = 0; k0 < s; k0 += BN_BLOCK) {
                int64_t k1 = k0 + BN_BLOCK < s ? k0 + BN_BLOCK : s;
                float a1 = 0, a2 = 0;
#pragma omp simd reduction(+ : a1, a2)
                for (int64_t k = k0; k < k1; k++) {
                    const float gk = masked(g[k], yr[k], lo, hi);
                    a1 += gk;
                    a2 += gk * (xr[k] - mu);
                }
                sdy += a1;
                sdyx += a2;
            }
        }
        if (dgamma) dgamma[ci] += (float)(sdyx * is);
        if (dbeta) dbeta[ci] += (float)sdy;
        if (!dx) continue;
        const double gi = (double)(gamma ? gamma[ci] : 1.0f) * is;
        const float p = (float)gi;
        const float q = (float)(gi * is * is * sdyx / m);
        const float r = (float)(gi * sdy / m);
        for (int64_t ni = 0; ni < n; ni++) {
            const int64_t off = (ni * c + ci) * s;
            const float *g = dy + off, *yr = y + off, *xr = x + off;
            float *d = dx + off;
#pragma omp simd
            for (int64_t k = 0; k < s; k++) d[k] += p * masked(g[k], yr[k], lo, hi) - q * (xr[k] - mu) - r;
        }
    }
}

void mn_bn_backward_eval_masked(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                                const float *dy, const float *y, const float *x, const float *gamma, float lo,
                                float hi, int64_t n, int64_t c, int64_t s)
{
    /* one channel per iteration: its reductions and its dx rows */
#pragma omp parallel for schedule(static) if (n * c * s >= BN_PAR_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        const float mu = mean[ci], a = invstd[ci] * (gamma ? gamma[ci] : 1.0f);
        double sdy = 0, sdyx = 0;
        for (int64_t ni = 0; ni < n; ni++) {
            const int64_t off = (ni * c + ci) * s;
            const float *g = dy + off, *yr = y + off, *xr = x + off;
            float *d = dx ? dx + off : NULL;
            float a1 = 0, a2 = 0;
#pragma omp simd reduction(+ : a1, a2)
            for (int64_t k = 0; k < s; k++) {
                const float gk = masked(g[k], yr[k], lo, hi);
                a1 += gk;
                a2 += gk * (xr[k] - mu);
            }
            sdy += a1;
            sdyx += a2;
            if (d) {
#pragma omp simd
                for (int64_t k = 0; k < s; k++) d[k] += a * masked(g[k], yr[k], lo, hi);
            }
        }
        if (dgamma) dgamma[ci] += (float)(sdyx * invstd[ci]);
        if (dbeta) dbeta[ci] += (float)sdy;
    }
}

/* ---- reference twins: one element at a time, double accumulation ---- */

void mn_bn_forward_train_ref(float *y, float *mean, float *invstd, float *var, const float *x, const float *gamma,
                             const float *beta, int64_t n, int64_t c, int64_t s, float eps)
{
    for (int64_t ci = 0; ci < c; ci++) {
        double sum = 0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) sum += x[(ni * c + ci) * s + k];
        double mu = sum / (double)(n * s);
        double sq = 0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                double d = x[(ni * c + ci) * s + k] - mu;
                sq += d * d;
            }
        mean[ci] = (float)mu;
        var[ci] = (float)(sq / (double)(n * s));
        invstd[ci] = (float)(1.0 / sqrt(sq / (double)(n * s) + eps));
    }
    mn_bn_forward_eval_ref(y, x, mean, invstd, gamma, beta, n, c, s);
}

void mn_bn_forward_eval_ref(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                            const float *beta, int64_t n, int64_t c, int64_t s)
{
    for (int64_t ni = 0; ni < n; ni++)
        for (int64_t ci = 0; ci < c; ci++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                double xhat = ((double)x[i] - mean[ci]) * invstd[ci];
                y[i] = (float)(xhat * (gamma ? gamma[ci] : 1.0) + (beta ? beta[ci] : 0.0));
            }
}

void mn_bn_backward_train_ref(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                              const float *dy, const float *x, const float *gamma, int64_t n, int64_t c, int64_t s)
{
    const double m = (double)(n * s);
    for (int64_t ci = 0; ci < c; ci++) {
        double sdy = 0, sdyxhat = 0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                sdy += dy[i];
                sdyxhat += dy[i] * ((double)x[i] - mean[ci]) * invstd[ci];
            }
        if (dgamma) dgamma[ci] += (float)sdyxhat;
        if (dbeta) dbeta[ci] += (float)sdy;
        if (!dx) continue;
        double g = gamma ? gamma[ci] : 1.0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                double xhat = ((double)x[i] - mean[ci]) * invstd[ci];
                dx[i] += (float)(g * invstd[ci] * (dy[i] - sdy / m - xhat * sdyxhat / m));
            }
    }
}

void mn_bn_backward_eval_ref(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                             const float *dy, const float *x, const float *gamma, int64_t n, int64_t c, int64_t s)
{
    for (int64_t ci = 0; ci < c; ci++) {
        double sdy = 0, sdyxhat = 0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                sdy += dy[i];
                sdyxhat += dy[i] * ((double)x[i] - mean[ci]) * invstd[ci];
                if (dx) dx[i] += (float)(dy[i] * (gamma ? gamma[ci] : 1.0) * invstd[ci]);
            }
        if (dgamma) dgamma[ci] += (float)sdyxhat;
        if (dbeta) dbeta[ci] += (float)sdy;
    }
}

static float clamp_ref(float v, float lo, float hi)
{
    if (v < lo) return lo;
    if (v > hi) return hi;
    return v;
}

void mn_bn_forward_train_clamp_ref(float *y, float *mean, float *invstd, float *var, const float *x,
                                   const float *gamma, const float *beta, float lo, float hi, int64_t n, int64_t c,
                                   int64_t s, float eps)
{
    mn_bn_forward_train_ref(y, mean, invstd, var, x, gamma, beta, n, c, s, eps);
    for (int64_t i = 0; i < n * c * s; i++) y[i] = clamp_ref(y[i], lo, hi);
}

void mn_bn_forward_eval_clamp_ref(float *y, const float *x, const float *mean, const float *invstd,
                                  const float *gamma, const float *beta, float lo, float hi, int64_t n, int64_t c,
                                  int64_t s)
{
    mn_bn_forward_eval_ref(y, x, mean, invstd, gamma, beta, n, c, s);
    for (int64_t i = 0; i < n * c * s; i++) y[i] = clamp_ref(y[i], lo, hi);
}

void mn_bn_backward_train_masked_ref(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                                     const float *dy, const float *y, const float *x, const float *gamma, float lo,
                                     float hi, int64_t n, int64_t c, int64_t s)
{
    const double m = (double)(n * s);
    for (int64_t ci = 0; ci < c; ci++) {
        double sdy = 0, sdyxhat = 0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                double g = y[i] > lo && y[i] < hi ? dy[i] : 0.0;
                sdy += g;
                sdyxhat += g * ((double)x[i] - mean[ci]) * invstd[ci];
            }
        if (dgamma) dgamma[ci] += (float)sdyxhat;
        if (dbeta) dbeta[ci] += (float)sdy;
        if (!dx) continue;
        double gm = gamma ? gamma[ci] : 1.0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                double g = y[i] > lo && y[i] < hi ? dy[i] : 0.0;
                double xhat = ((double)x[i] - mean[ci]) * invstd[ci];
                dx[i] += (float)(gm * invstd[ci] * (g - sdy / m - xhat * sdyxhat / m));
            }
    }
}

void mn_bn_backward_eval_masked_ref(float *dx, float *dgamma, float *dbeta, const float *mean, const float *invstd,
                                    const float *dy, const float *y, const float *x, const float *gamma, float lo,
                                    float hi, int64_t n, int64_t c, int64_t s)
{
    for (int64_t ci = 0; ci < c; ci++) {
        double sdy = 0, sdyxhat = 0;
        for (int64_t ni = 0; ni < n; ni++)
            for (int64_t k = 0; k < s; k++) {
                int64_t i = (ni * c + ci) * s + k;
                double g = y[i] > lo && y[i] < hi ? dy[i] : 0.0;
                sdy += g;
                sdyxhat += g * ((double)x[i] - mean[ci]) * invstd[ci];
                if (dx) dx[i] += (float)(g * (gamma ? gamma[ci] : 1.0) * invstd[ci]);
            }
        if (dgamma) dgamma[ci] += (float)sdyxhat;
        if (dbeta) dbeta[ci] += (float)sdy;
    }
}
