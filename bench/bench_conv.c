/* Convolution kernel throughput on MobileNetV2 (224x224) layer shapes, forward and backward
 * (dx + dw), batch 1 and 8, against cblas_sgemm on a large square product measured in the
 * same run. GFLOPS = 2 * multiply-adds / seconds, the median of several timed repetitions
 * after a warm-up.
 *
 *   meson compile -C build && ./build/bench/bench_conv       (or: meson benchmark -C build conv)
 *
 * Targets (issue "Core engine"): dense and 1x1 forward >= 70 % of the sgemm figure,
 * depthwise forward >= 25 %. A second table times the whole models' layers that have a path
 * of their own (dense 3x3 stride 1: Winograd F(4x4, 3x3); the ASPP's dilated 3x3: a GEMM per
 * tap) against im2col, in the same run. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kernels/conv.h"
#include "mn/rng.h"

#define REPS 7              /* timed repetitions; the median is reported */
#define MIN_REP_SECONDS 0.02 /* each repetition loops the kernel at least this long */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *alloc_random(mn_rng *r, size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64 + 64);
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = mn_rng_range(r, -1.0f, 1.0f);
    return p;
}

typedef void (*bench_fn)(void *ctx);

/* Median seconds per call of fn(ctx): one untimed warm-up call, iterations per repetition
 * chosen so a repetition lasts MIN_REP_SECONDS, then REPS repetitions. */
static double time_median(bench_fn fn, void *ctx)
{
    fn(ctx);
    int iters = 1;
    for (;;) {
        double t = now();
        for (int i = 0; i < iters; i++) fn(ctx);
        t = now() - t;
        if (t >= MIN_REP_SECONDS || iters >= 1 << 20) break;
        iters = t > 0 ? (int)(iters * 1.3 * MIN_REP_SECONDS / t) + 1 : iters * 10;
    }
    double s[REPS];
    for (int r = 0; r < REPS; r++) {
        double t = now();
        for (int i = 0; i < iters; i++) fn(ctx);
        s[r] = (now() - t) / iters;
    }
    qsort(s, REPS, sizeof s[0], cmp_double);
    return s[REPS / 2];
}

typedef struct sgemm_ctx {
    int n;
    float *a, *b, *c;
} sgemm_ctx;

static void run_sgemm(void *p)
{
    sgemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n, 0.0f, g->c,
                g->n);
}

typedef struct conv_ctx {
    mn_conv2d_dims d;
    float *x, *w, *b, *y, *dy, *dx, *dw, *ws;
} conv_ctx;

static void run_forward(void *p)
{
    conv_ctx *c = p;
    mn_conv2d_forward(c->y, c->x, c->w, c->b, c->ws, &c->d);
}

static void run_backward(void *p)
{
    conv_ctx *c = p;
    mn_conv2d_backward(c->dx, c->dw, NULL, c->dy, c->x, c->w, c->ws, &c->d);
}

/* Random operands for c->d, and scratch for every path of it (im2col and the fast one, both passes). */
static void ctx_alloc(conv_ctx *c, mn_rng *rng)
{
    const mn_conv2d_dims *d = &c->d;
    size_t nx = (size_t)d->n * d->cin * d->h * d->w, ny = (size_t)d->n * d->cout * d->ho * d->wo;
    size_t nw = (size_t)d->cout * (size_t)d->ldw, nws = 0;
    mn_conv2d_dims v = *d;
    for (int k = 0; k < 2; k++) {
        v.im2col_only = k == 0;
        for (int bwd = 0; bwd < 2; bwd++) {
            size_t f = mn_conv2d_workspace_floats(&v, bwd);
            if (f > nws) nws = f;
        }
    }
    c->x = alloc_random(rng, nx);
    c->w = alloc_random(rng, nw);
    c->b = alloc_random(rng, (size_t)d->cout);
    c->y = alloc_random(rng, ny);
    c->dy = alloc_random(rng, ny);
    c->dx = alloc_random(rng, nx);
    c->dw = alloc_random(rng, nw);
    c->ws = alloc_random(rng, nws);
}

static void ctx_free(conv_ctx *c)
{
    free(c->x), free(c->w), free(c->b), free(c->y), free(c->dy), free(c->dx), free(c->dw), free(c->ws);
}

typedef struct layer {
    const char *name;
    int cin, h, w, cout, k, stride, pad, groups;
    double target; /* forward target as a fraction of sgemm */
} layer;

int main(void)
{
    mn_rng rng;
    mn_rng_seed(&rng, 2024);
    printf("bench_conv: openblas_get_parallel() = %d (2 = OpenMP build), omp_get_max_threads() = %d\n",
           openblas_get_parallel(), omp_get_max_threads());
    printf("OpenBLAS %s, core %s\n", openblas_get_config(), openblas_get_corename());

    sgemm_ctx g = {.n = 2048};
    size_t nn = (size_t)g.n * g.n;
    g.a = alloc_random(&rng, nn);
    g.b = alloc_random(&rng, nn);
    g.c = alloc_random(&rng, nn);
    const double gemm_flops = 2.0 * g.n * g.n * (double)g.n;
    double sgemm_gflops = gemm_flops / time_median(run_sgemm, &g) * 1e-9;
    printf("cblas_sgemm %dx%dx%d: %.1f GFLOPS (the 100 %% reference below)\n\n", g.n, g.n, g.n, sgemm_gflops);

    const layer layers[] = {
        {"stem 3x3 s2 3->32 @224", 3, 224, 224, 32, 3, 2, 1, 1, 0.70},
        {"1x1 expand 24->144 @56", 24, 56, 56, 144, 1, 1, 0, 1, 0.70},
        {"1x1 project 144->24 @56", 144, 56, 56, 24, 1, 1, 0, 1, 0.70},
        {"1x1 expand 96->576 @14", 96, 14, 14, 576, 1, 1, 0, 1, 0.70},
        {"dw 3x3 s1 144ch @56", 144, 56, 56, 144, 3, 1, 1, 144, 0.25},
        {"dw 3x3 s2 144ch 56->28", 144, 56, 56, 144, 3, 2, 1, 144, 0.25},
        {"dw 3x3 s1 576ch @14", 576, 14, 14, 576, 3, 1, 1, 576, 0.25},
    };
    const int batches[2] = {1, 8};
    printf("| layer | N | fwd GFLOPS | fwd %% sgemm | target | bwd (dx+dw) GFLOPS | bwd %% sgemm |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    int missed = 0;
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++)
        for (int bi = 0; bi < 2; bi++) {
            const layer *L = &layers[li];
            conv_ctx c;
            mn_conv2d_params p = {L->stride, L->stride, L->pad, L->pad, 1, 1, L->groups};
            int64_t row = (int64_t)(L->cin / L->groups) * L->k * L->k;
            if (mn_conv2d_dims_init(&c.d, batches[bi], L->cin, L->h, L->w, L->cout, L->k, L->k, &p, row)) {
                fprintf(stderr, "bench_conv: %s\n", mn_last_error());
                return 1;
            }
            ctx_alloc(&c, &rng);
            double macs = (double)c.d.n * L->cout * c.d.ho * c.d.wo * (double)row;
            double fwd = 2.0 * macs / time_median(run_forward, &c) * 1e-9;
            double bwd = 4.0 * macs / time_median(run_backward, &c) * 1e-9;
            double pf = 100.0 * fwd / sgemm_gflops, pb = 100.0 * bwd / sgemm_gflops;
            bool met = pf >= 100.0 * L->target;
            missed += !met;
            printf("| %s | %d | %.1f | %.0f %% | %.0f %% %s | %.1f | %.0f %% |\n", L->name, c.d.n, fwd, pf,
                   100.0 * L->target, met ? "met" : "MISSED", bwd, pb);
            fflush(stdout);
            ctx_free(&c);
        }
    printf("\n%d of 14 forward rows below target\n", missed);

    /* Layers of the whole models with a fast path of their own, against im2col in the same run
     * (d.im2col_only), milliseconds per call; backward = dx + dw. Dense 3x3 stride 1: Winograd
     * F(4x4, 3x3); the ASPP's dilated 3x3: one GEMM per tap (the `k` field holds the rate). */
    const layer dense[] = {
        {"ASPP 3x3 rate 6 320->256 @32x32", 320, 32, 32, 256, 6, 1, 6, 1, 0},
        {"ASPP 3x3 rate 12 320->256 @32x32", 320, 32, 32, 256, 12, 1, 12, 1, 0},
        {"ASPP 3x3 rate 18 320->256 @32x32", 320, 32, 32, 256, 18, 1, 18, 1, 0},
        {"ASPP 3x3 rate 12 320->128 @11x14 (CamVid)", 320, 11, 14, 128, 12, 1, 12, 1, 0},
        {"V3+ decoder 3x3 304->256 @128x128", 304, 128, 128, 256, 3, 1, 1, 1, 0},
        {"V3+ decoder 3x3 256->256 @128x128", 256, 128, 128, 256, 3, 1, 1, 1, 0},
        {"FPN / RPN 3x3 256->256 @128x176", 256, 128, 176, 256, 3, 1, 1, 1, 0},
        {"FPN 3x3 256->256 @16x22", 256, 16, 22, 256, 3, 1, 1, 1, 0},
        {"FPN 3x3 64->64 @32x32", 64, 32, 32, 64, 3, 1, 1, 1, 0},
        {"ResNet-50 3x3 64->64 @56", 64, 56, 56, 64, 3, 1, 1, 1, 0},
        {"ResNet-50 3x3 256->256 @14", 256, 14, 14, 256, 3, 1, 1, 1, 0},
    };
    printf("\n| layer | N | im2col fwd ms | fast path fwd ms | ratio | im2col bwd ms | fast path bwd ms | ratio |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t li = 0; li < sizeof dense / sizeof dense[0]; li++)
        for (int n = 1; n <= 2; n++) {
            const layer *L = &dense[li];
            conv_ctx c;
            const int rate = L->k == 3 ? 1 : L->k;
            mn_conv2d_params p = {1, 1, L->pad, L->pad, rate, rate, 1};
            int64_t row = (int64_t)L->cin * 9;
            if (mn_conv2d_dims_init(&c.d, n, L->cin, L->h, L->w, L->cout, 3, 3, &p, row)) {
                fprintf(stderr, "bench_conv: %s\n", mn_last_error());
                return 1;
            }
            ctx_alloc(&c, &rng);
            double ms[2][2];
            for (int k = 0; k < 2; k++) {
                c.d.im2col_only = k == 0;
                ms[k][0] = 1e3 * time_median(run_forward, &c);
                ms[k][1] = 1e3 * time_median(run_backward, &c);
            }
            printf("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", L->name, n, ms[0][0], ms[1][0],
                   ms[1][0] / ms[0][0], ms[0][1], ms[1][1], ms[1][1] / ms[0][1]);
            fflush(stdout);
            ctx_free(&c);
        }
    /* other processes on the cores distort every figure: the sgemm rate measured again at the
     * end shows whether the machine stayed quiet */
    double again = gemm_flops / time_median(run_sgemm, &g) * 1e-9;
    double drift = 100.0 * (again - sgemm_gflops) / sgemm_gflops;
    printf("cblas_sgemm again at the end: %.1f GFLOPS (%+.0f %%)%s\n", again, drift,
           drift < -10 || drift > 10 ? ": the machine was busy during this run, rerun it" : "");
    free(g.a), free(g.b), free(g.c);
    return 0;
}
