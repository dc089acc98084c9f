#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "mn/train.h"

float mn_lr_at(const mn_config *c, int64_t iter)
{
    double base = c->optim.lr, total = c->train.iterations, warm = c->optim.warmup_iters;
    if (iter < c->optim.warmup_iters) {
        double a = (double)iter / warm;
        return (float)(base * (c->optim.warmup_factor * (1.0 - a) + a));
    }
    double t = ((double)iter - warm) / fmax(1.0, total - warm);
    if (t > 1) t = 1;
    if (c->optim.schedule == MN_SCHED_COSINE) return (float)(base * 0.5 * (1.0 + cos(3.14159265358979323846 * t)));
    return (float)(base * pow(1.0 - t, c->optim.power));
}

static int by_width_desc(const void *a, const void *b)
{
    float x = ((const mn_subnet *)a)->width, y = ((const mn_subnet *)b)->width;
    return (x < y) - (x > y);
}

int mn_sandwich(const mn_config *c, uint64_t seed, int64_t iter, mn_subnet *out)
{
    if (c->mutual.mode == MN_MODE_INDEPENDENT) {
        out[0] = (mn_subnet){c->mutual.width, 1.0f};
        return 1;
    }
    mn_rng base, r;
    mn_rng_seed(&base, seed ^ 0x5a4e4457u); /* a stream of its own, apart from data and init */
    r = mn_rng_split(&base, (uint64_t)iter);
    int n = c->mutual.num_subnets;
    if (n > MN_MAX_SUBNETS) n = MN_MAX_SUBNETS;
    out[0] = (mn_subnet){c->mutual.width_max, 1.0f};
    for (int i = 1; i < n; i++) {
        float w = i == 1 ? c->mutual.width_min : mn_rng_range(&r, c->mutual.width_min, c->mutual.width_max);
        /* every sub-network may draw any scale, the full one's included (spec §1) */
        float s = c->mutual.mode == MN_MODE_MUTUALNET ? c->mutual.scales[mn_rng_int(&r, 0, c->mutual.n_scales - 1)] : 1.0f;
        out[i] = (mn_subnet){w, s};
    }
    if (n > 2) qsort(out + 1, (size_t)(n - 1), sizeof *out, by_width_desc);
    return n;
}
