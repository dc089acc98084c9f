#include <math.h>

#include "core/kernels/loss.h"

/* Positions handled together: the class loop then runs over contiguous rows of TILE floats,
 * which vectorise, while the running max and sum stay in two small stack arrays. */
#define TILE 256
/* Below this many logits a parallel region costs more than it saves. */
#define PAR_MIN 32768

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Running max m and sum s of exp(x - m) over classes for len positions starting at xb. */
static void tile_max_sum(float *m /* (len) */, float *s /* (len) */, const float *xb /* (C, HW) from p0 */,
                         int64_t c, int64_t hw, int64_t len)
{
    for (int64_t i = 0; i < len; i++) m[i] = xb[i];
    for (int64_t k = 1; k < c; k++) {
        const float *row = xb + k * hw;
        for (int64_t i = 0; i < len; i++) m[i] = row[i] > m[i] ? row[i] : m[i];
    }
    for (int64_t i = 0; i < len; i++) s[i] = 0.0f;
    for (int64_t k = 0; k < c; k++) {
        const float *row = xb + k * hw;
        for (int64_t i = 0; i < len; i++) s[i] += expf(row[i] - m[i]);
    }
}

void mn_logsumexp_c(float *lse, const float *x, int64_t n, int64_t c, int64_t hw)
{
    int64_t tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (n * c * hw > PAR_MIN)
    for (int64_t job = 0; job < n * tiles; job++) {
        int64_t b = job / tiles, p0 = job % tiles * TILE, len = min64(TILE, hw - p0);
        float m[TILE], s[TILE];
        tile_max_sum(m, s, x + b * c * hw + p0, c, hw, len);
        for (int64_t i = 0; i < len; i++) lse[b * hw + p0 + i] = m[i] + logf(s[i]);
    }
}

void mn_logsumexp_c_ref(float *lse, const float *x, int64_t n, int64_t c, int64_t hw)
{
    for (int64_t b = 0; b < n; b++)
        for (int64_t p = 0; p < hw; p++) {
            const float *xp = x + b * c * hw + p;
            float m = xp[0];
            for (int64_t k = 1; k < c; k++)
                if (xp[k * hw] > m) m = xp[k * hw];
            double s = 0;
            for (int64_t k = 0; k < c; k++) s += exp((double)xp[k * hw] - m);
            lse[b * hw + p] = (float)(m + log(s));
        }
}

void mn_softmax_c(float *y, const float *x, int64_t n, int64_t c, int64_t hw)
{
    int64_t tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (n * c * hw > PAR_MIN)
    for (int64_t job = 0; job < n * tiles; job++) {
        int64_t b = job / tiles, p0 = job % tiles * TILE, len = min64(TILE, hw - p0);
        float m[TILE], s[TILE];
        const float *xb = x + b * c * hw + p0;
        float *yb = y + b * c * hw + p0;
        tile_max_sum(m, s, xb, c, hw, len);
        for (int64_t i = 0; i < len; i++) s[i] = 1.0f / s[i];
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < len; i++) yb[k * hw + i] = expf(xb[k * hw + i] - m[i]) * s[i];
    }
}

void mn_softmax_c_ref(float *y, const float *x, int64_t n, int64_t c, int64_t hw)
{
    for (int64_t b = 0; b < n; b++)
        for (int64_t p = 0; p < hw; p++) {
            const float *xp = x + b * c * hw + p;
            float m = xp[0];
            for (int64_t k = 1; k < c; k++)
                if (xp[k * hw] > m) m = xp[k * hw];
            double s = 0;
            for (int64_t k = 0; k < c; k++) s += exp((double)xp[k * hw] - m);
            for (int64_t k = 0; k < c; k++) y[b * c * hw + k * hw + p] = (float)(exp((double)xp[k * hw] - m) / s);
        }
}

void mn_ce_forward(float *lpos, float *lse, const float *x, const int32_t *target, int ignore_index, int64_t n,
                   int64_t c, int64_t hw)
{
    mn_logsumexp_c(lse, x, n, c, hw);
#pragma omp parallel for schedule(static) if (n * hw > PAR_MIN)
    for (int64_t b = 0; b < n; b++)
        for (int64_t p = 0; p < hw; p++) {
            int32_t t = target[b * hw + p];
            lpos[b * hw + p] = t == ignore_index ? 0.0f : lse[b * hw + p] - x[(b * c + t) * hw + p];
        }
}

void mn_ce_forward_ref(float *lpos, float *lse, const float *x, const int32_t *target, int ignore_index, int64_t n,
                       int64_t c, int64_t hw)
{
    mn_logsumexp_c_ref(lse, x, n, c, hw);
    for (int64_t b = 0; b < n; b++)
        for (int64_t p = 0; p < hw; p++) {
            int32_t t = target[b * hw + p];
            lpos[b * hw + p] = t == ignore_index ? 0.0f : lse[b * hw + p] - x[(b * c + t) * hw + p];
        }
}

void mn_ce_backward(float *dx, const float *lse, const float *x, const int32_t *target, int ignore_index,
                    float scale, int64_t n, int64_t c, int64_t hw)
{
    /* one job per (sample, class) row: rows are disjoint in dx and contiguous over positions */
#pragma omp parallel for schedule(static) if (n * c * hw > PAR_MIN)
    for (int64_t row = 0; row < n * c; row++) {
        int64_t b = row / c, k = row % c;
        const float *xr = x + row * hw, *l = lse + b * hw;
        const int32_t *tr = target + b * hw;
        float *dr = dx + row * hw;
        for (int64_t p = 0; p < hw; p++) {
            if (tr[p] == ignore_index) continue;
            dr[p] += scale * (expf(xr[p] - l[p]) - (tr[p] == k ? 1.0f : 0.0f));
        }
    }
}

void mn_ce_backward_ref(float *dx, const float *lse, const float *x, const int32_t *target, int ignore_index,
                        float scale, int64_t n, int64_t c, int64_t hw)
{
    for (int64_t b = 0; b < n; b++)
        for (int64_t p = 0; p < hw; p++) {
            int32_t t = target[b * hw + p];
            if (t == ignore_index) continue;
            for (int64_t k = 0; k < c; k++) {
                int64_t i = (b * c + k) * hw + p;
                double sm = exp((double)x[i] - lse[b * hw + p]);
                dx[i] += (float)(scale * (sm - (k == t ? 1.0 : 0.0)));
            }
        }
}

void mn_kl_forward(float *lpos, float *lse, const float *x, const float *p, int64_t n, int64_t c, int64_t hw)
{
    int64_t tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (n * c * hw > PAR_MIN)
    for (int64_t job = 0; job < n * tiles; job++) {
        int64_t b = job / tiles, p0 = job % tiles * TILE, len = min64(TILE, hw - p0);
        float m[TILE], s[TILE], acc[TILE];
        const float *xb = x + b * c * hw + p0, *pb = p + b * c * hw + p0;
        tile_max_sum(m, s, xb, c, hw, len);
        for (int64_t i = 0; i < len; i++) {
            m[i] += logf(s[i]); /* m now holds the log-sum-exp */
            acc[i] = 0.0f;
        }
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < len; i++) {
                float pv = pb[k * hw + i];
                /* p == 0 contributes 0 (xlogy); a NaN or negative p still poisons the sum */
                acc[i] += pv == 0.0f ? 0.0f : pv * (logf(pv) - xb[k * hw + i] + m[i]);
            }
        for (int64_t i = 0; i < len; i++) {
            lse[b * hw + p0 + i] = m[i];
            lpos[b * hw + p0 + i] = acc[i];
        }
    }
}

void mn_kl_forward_ref(float *lpos, float *lse, const float *x, const float *p, int64_t n, int64_t c, int64_t hw)
{
    mn_logsumexp_c_ref(lse, x, n, c, hw);
    for (int64_t b = 0; b < n; b++)
        for (int64_t q = 0; q < hw; q++) {
            double acc = 0;
            for (int64_t k = 0; k < c; k++) {
                int64_t i = (b * c + k) * hw + q;
                if (p[i] != 0.0f) acc += (double)p[i] * (log((double)p[i]) - ((double)x[i] - lse[b * hw + q]));
            }
            lpos[b * hw + q] = (float)acc;
        }
}

void mn_kl_backward(float *dx, const float *lse, const float *x, const float *p, float scale, int64_t n, int64_t c,
                    int64_t hw)
{
    int64_t tiles = (hw + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (n * c * hw > PAR_MIN)
    for (int64_t job = 0; job < n * tiles; job++) {
        int64_t b = job / tiles, p0 = job % tiles * TILE, len = min64(TILE, hw - p0);
        float ps[TILE];
        const float *xb = x + b * c * hw + p0, *pb = p + b * c * hw + p0, *l = lse + b * hw + p0;
        float *db = dx + b * c * hw + p0;
        for (int64_t i = 0; i < len; i++) ps[i] = 0.0f;
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < len; i++) ps[i] += pb[k * hw + i];
        for (int64_t k = 0; k < c; k++)
            for (int64_t i = 0; i < len; i++) {
                int64_t j = k * hw + i;
                db[j] += scale * (expf(xb[j] - l[i]) * ps[i] - pb[j]);
            }
    }
}

void mn_kl_backward_ref(float *dx, const float *lse, const float *x, const float *p, float scale, int64_t n,
                        int64_t c, int64_t hw)
{
    for (int64_t b = 0; b < n; b++)
        for (int64_t q = 0; q < hw; q++) {
            double ps = 0;
            for (int64_t k = 0; k < c; k++) ps += p[(b * c + k) * hw + q];
            for (int64_t k = 0; k < c; k++) {
                int64_t i = (b * c + k) * hw + q;
                double sm = exp((double)x[i] - lse[b * hw + q]);
                dx[i] += (float)(scale * (sm * ps - p[i]));
            }
        }
}

void mn_bce_logits_forward(float *l, const float *x, const float *t, int64_t m)
{
#pragma omp parallel for schedule(static) if (m > PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        float v = x[i];
        l[i] = (v > 0.0f ? v : 0.0f) - v * t[i] + log1pf(expf(-fabsf(v)));
    }
}

void mn_bce_logits_backward(float *dx, float *dt, const float *x, const float *t, float scale, int64_t m)
{
#pragma omp parallel for schedule(static) if (m > PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        float v = x[i];
        if (dx) {
            /* sigmoid without overflow: exp of a non-positive number only */
            float e = expf(-fabsf(v));
            float sig = v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
            dx[i] += scale * (sig - t[i]);
        }
        if (dt) dt[i] -= scale * v;
    }
}

void mn_smooth_l1_forward(float *l, const float *a, const float *b, float beta, int64_t m)
{
#pragma omp parallel for schedule(static) if (m > PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        float d = fabsf(a[i] - b[i]);
        l[i] = d < beta ? 0.5f * d * d / beta : d - 0.5f * beta;
    }
}

void mn_smooth_l1_backward(float *da, float *db, const float *a, const float *b, float beta, float scale, int64_t m)
{
#pragma omp parallel for schedule(static) if (m > PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        float d = a[i] - b[i];
        float g = fabsf(d) < beta ? d / beta : (d > 0.0f ? 1.0f : d < 0.0f ? -1.0f : 0.0f);
        if (da) da[i] += scale * g;
        if (db) db[i] -= scale * g;
    }
}
