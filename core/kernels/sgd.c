#include "core/kernels/sgd.h"

/* Parameters smaller than this are updated by one thread: most layers are small, and a
 * parallel region per tensor would cost more than the update. */
#define PAR_MIN 65536

void mn_sgd_update(float *p, float *buf, const float *g, int64_t m, const mn_sgd_hyper *h)
{
    const float lr = h->lr, mom = h->momentum, damp = 1.0f - h->dampening, wd = h->weight_decay;
    /* one loop per case, so each inner loop is branch-free and vectorises */
    if (mom == 0.0f || !buf) {
#pragma omp parallel for simd schedule(static) if (m > PAR_MIN)
        for (int64_t i = 0; i < m; i++) p[i] -= lr * (g[i] + wd * p[i]);
    } else if (h->first && h->nesterov) {
#pragma omp parallel for simd schedule(static) if (m > PAR_MIN)
        for (int64_t i = 0; i < m; i++) {
            float d = g[i] + wd * p[i];
            buf[i] = d;
            p[i] -= lr * (d + mom * d);
        }
    } else if (h->first) {
#pragma omp parallel for simd schedule(static) if (m > PAR_MIN)
        for (int64_t i = 0; i < m; i++) {
            float d = g[i] + wd * p[i];
            buf[i] = d;
            p[i] -= lr * d;
        }
    } else if (h->nesterov) {
#pragma omp parallel for simd schedule(static) if (m > PAR_MIN)
        for (int64_t i = 0; i < m; i++) {
            float d = g[i] + wd * p[i];
            float b = mom * buf[i] + damp * d;
            buf[i] = b;
            p[i] -= lr * (d + mom * b);
        }
    } else {
#pragma omp parallel for simd schedule(static) if (m > PAR_MIN)
        for (int64_t i = 0; i < m; i++) {
            float b = mom * buf[i] + damp * (g[i] + wd * p[i]);
            buf[i] = b;
            p[i] -= lr * b;
        }
    }
}

void mn_sgd_update_ref(float *p, float *buf, const float *g, int64_t m, const mn_sgd_hyper *h)
{
    for (int64_t i = 0; i < m; i++) {
        float d = g[i];
        if (h->weight_decay != 0.0f) d = d + h->weight_decay * p[i];
        if (h->momentum != 0.0f && buf) {
            if (h->first)
                buf[i] = d;
            else
                buf[i] = h->momentum * buf[i] + (1.0f - h->dampening) * d;
            if (h->nesterov)
                d = d + h->momentum * buf[i];
            else
                d = buf[i];
        }
        p[i] = p[i] - h->lr * d;
    }
}
