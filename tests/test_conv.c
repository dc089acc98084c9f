/* Convolution, linear and GEMM: optimised kernels against their reference twins on random
 * inputs (both threading modes, strided weights, accumulation), ops against PyTorch fixtures
 * (tools/fixtures/gen_conv.py), finite differences, slimmable prefix views, shape errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/conv.h"
#include "core/kernels/conv_taps.h"
#include "core/kernels/winograd.h"
#include "core/kernels/gemm.h"
#include "mn/ops.h"

static mn_conv2d_params conv_p(int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w, int groups)
{
    return (mn_conv2d_params){stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups};
}

static mn_conv2d_params conv_sq(int stride, int pad, int dil, int groups)
{
    return conv_p(stride, stride, pad, pad, dil, dil, groups);
}

/* ---------------------------------------------------------------------------------------- */
/* GEMM                                                                                      */

Test(gemm, blas_matches_reference_for_every_transpose)
{
    const int m = 13, n = 29, k = 17, pad = 5;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int acc = 0; acc < 2; acc++) {
                int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
                float *a = tc_random(1, (int64_t)(ta ? k : m) * lda, -1, 1);
                float *b = tc_random(2, (int64_t)(tb ? n : k) * ldb, -1, 1);
                float *c1 = tc_random(3, (int64_t)m * ldc, -1, 1);
                float *c2 = malloc(sizeof(float) * (size_t)(m * ldc));
                memcpy(c2, c1, sizeof(float) * (size_t)(m * ldc));
                mn_gemm(c1, a, b, m, n, k, lda, ldb, ldc, ta, tb, acc);
                mn_gemm_ref(c2, a, b, m, n, k, lda, ldb, ldc, ta, tb, acc);
                char what[64];
                snprintf(what, sizeof what, "gemm ta=%d tb=%d acc=%d", ta, tb, acc);
                /* the padding columns of C are compared too: neither may touch them */
                tc_expect_close(c1, c2, (int64_t)m * ldc, 1e-5f, 1e-5f, what);
                free(a), free(b), free(c1), free(c2);
            }
}

Test(gemm, reference_is_a_plain_product)
{
    const float a[6] = {1, 2, 3, 4, 5, 6};        /* (2, 3) */
    const float b[6] = {1, 0, -1, 2, 0.5f, 1};    /* (3, 2) */
    float c[4] = {10, 10, 10, 10};
    mn_gemm_ref(c, a, b, 2, 2, 3, 3, 2, 2, false, false, true);
    const float want[4] = {10 + 1 - 2 + 1.5f, 10 + 0 + 4 + 3, 10 + 4 - 5 + 3, 10 + 0 + 10 + 6};
    tc_expect_close(c, want, 4, 0, 0, "gemm_ref accumulate");
}

/* ---------------------------------------------------------------------------------------- */
/* kernels against their reference twins                                                    */

typedef struct ref_case {
    int n, cin, h, w, cout, kh, kw;
    mn_conv2d_params p;
} ref_case;

#define GUARD 64

/* Scratch of exactly `floats` floats followed by a sentinel guard (checked by guard_intact). */
static float *guarded(size_t floats)
{
    float *p = malloc(sizeof(float) * (floats + GUARD));
    for (int i = 0; i < GUARD; i++) p[floats + i] = -777.0f;
    return p;
}

static void guard_intact(const float *p, size_t floats, const char *what)
{
    for (int i = 0; i < GUARD; i++)
        cr_assert_eq(p[floats + i], -777.0f, "%s: the kernel wrote past its %zu-float workspace", what, floats);
}

/* The fast kernels against the direct loops: forward, then backward into buffers that already
 * hold values (both must add). The weight rows are ldw = row + 7 apart with NaN in the unused
 * tail (a read there would poison the result) and the weight gradient's tails must stay as
 * they were. Run with `threads` OpenMP threads (images spread over threads when n >= threads). */
static void check_against_ref(const ref_case *c, bool bias, int threads)
{
    mn_conv2d_dims d;
    int64_t row = (int64_t)(c->cin / c->p.groups) * c->kh * c->kw, ldw = row + 7;
    cr_assert_eq(mn_conv2d_dims_init(&d, c->n, c->cin, c->h, c->w, c->cout, c->kh, c->kw, &c->p, ldw), 0, "%s",
                 mn_last_error());
    d.nthreads = threads;
    int64_t nx = (int64_t)c->n * c->cin * c->h * c->w, ny = (int64_t)c->n * c->cout * d.ho * d.wo;
    int64_t nw = c->cout * ldw;
    float *x = tc_random(11, nx, -1, 1), *w = tc_random(12, nw, -1, 1), *b = tc_random(13, c->cout, -1, 1);
    float *dy = tc_random(14, ny, -1, 1);
    for (int64_t o = 0; o < c->cout; o++)
        for (int64_t k = row; k < ldw; k++) w[o * ldw + k] = NAN;
    float *y1 = malloc(sizeof(float) * (size_t)ny), *y2 = malloc(sizeof(float) * (size_t)ny);
    const size_t nwf = mn_conv2d_workspace_floats(&d, false), nwb = mn_conv2d_workspace_floats(&d, true);
    float *wsf = guarded(nwf), *ws = guarded(nwb);
    mn_conv2d_forward(y1, x, w, bias ? b : NULL, wsf, &d);
    mn_conv2d_forward_ref(y2, x, w, bias ? b : NULL, &d);
    char what[160];
    snprintf(what, sizeof what, "%dx%d s(%d,%d) p(%d,%d) d(%d,%d) g%d in (%d,%d,%d,%d) out %d bias %d threads %d: ",
             c->kh, c->kw, c->p.stride_h, c->p.stride_w, c->p.pad_h, c->p.pad_w, c->p.dil_h, c->p.dil_w, c->p.groups,
             c->n, c->cin, c->h, c->w, c->cout, bias, threads);
    size_t len = strlen(what);
    snprintf(what + len, sizeof what - len, "forward");
    /* Winograd's transforms round at about 1e-5 of the outputs' scale (here up to ~10) */
    const float fast_atol = mn_winograd_applies(&d) ? 2e-4f : 2e-5f;
    tc_expect_close(y1, y2, ny, fast_atol, 2e-5f, what);
    guard_intact(wsf, nwf, what);

    float *dx1 = tc_random(15, nx, -1, 1), *dw1 = tc_random(16, nw, -1, 1), *db1 = tc_random(17, c->cout, -1, 1);
    float *dx2 = malloc(sizeof(float) * (size_t)nx), *dw2 = malloc(sizeof(float) * (size_t)nw);
    float *db2 = malloc(sizeof(float) * (size_t)c->cout);
    memcpy(dx2, dx1, sizeof(float) * (size_t)nx);
    memcpy(dw2, dw1, sizeof(float) * (size_t)nw);
    memcpy(db2, db1, sizeof(float) * (size_t)c->cout);
    float *dw0 = malloc(sizeof(float) * (size_t)nw);
    memcpy(dw0, dw1, sizeof(float) * (size_t)nw);
    mn_conv2d_backward(dx1, dw1, bias ? db1 : NULL, dy, x, w, ws, &d);
    mn_conv2d_backward_ref(dx2, dw2, bias ? db2 : NULL, dy, x, w, &d);
    snprintf(what + len, sizeof what - len, "dx");
    tc_expect_close(dx1, dx2, nx, fmaxf(fast_atol, 5e-5f), 5e-5f, what);
    guard_intact(ws, nwb, what);
    /* float sums of N*Ho*Wo products: allow rounding that grows with their number */
    const float dw_atol = 1e-4f + (mn_winograd_applies(&d) ? 2e-7f : 2e-8f) * (float)(c->n * d.ho * d.wo);
    snprintf(what + len, sizeof what - len, "dw");
    tc_expect_close(dw1, dw2, nw, dw_atol, 5e-5f, what);
    snprintf(what + len, sizeof what - len, "db");
    tc_expect_close(db1, db2, c->cout, dw_atol, 5e-5f, what);
    for (int64_t o = 0; o < c->cout; o++)
        for (int64_t k = row; k < ldw; k++)
            cr_assert_eq(dw1[o * ldw + k], dw0[o * ldw + k], "%s: weight-gradient padding (%lld, %lld) was written",
                         what, (long long)o, (long long)k);

    /* each gradient alone (the others NULL) gives the same values */
    memcpy(dx2, dx1, sizeof(float) * (size_t)nx);
    mn_conv2d_backward(dx1, NULL, NULL, dy, x, w, ws, &d);
    for (int64_t i = 0; i < nx; i++) dx2[i] = dx1[i] - dx2[i]; /* the added part alone */
    float *dxa = calloc((size_t)nx, sizeof(float));
    mn_conv2d_backward_ref(dxa, NULL, NULL, dy, x, w, &d);
    snprintf(what + len, sizeof what - len, "dx only");
    tc_expect_close(dx2, dxa, nx, fmaxf(fast_atol, 1e-4f), 1e-4f, what);
    float *dwa = calloc((size_t)nw, sizeof(float)), *dwb = calloc((size_t)nw, sizeof(float));
    mn_conv2d_backward(NULL, dwa, NULL, dy, x, w, ws, &d);
    mn_conv2d_backward_ref(NULL, dwb, NULL, dy, x, w, &d);
    snprintf(what + len, sizeof what - len, "dw only");
    tc_expect_close(dwa, dwb, nw, dw_atol, 5e-5f, what);
    free(dwa), free(dwb);

    guard_intact(ws, nwb, what);
    free(x), free(w), free(b), free(dy), free(y1), free(y2), free(wsf), free(ws), free(dx1), free(dw1), free(db1);
    free(dx2), free(dw2), free(db2), free(dw0), free(dxa);
}

static void check_ref_cases(const ref_case *cases, int n_cases)
{
    for (int i = 0; i < n_cases; i++)
        for (int bias = 0; bias < 2; bias++) {
            ref_case c = cases[i];
            check_against_ref(&c, bias, 1);
            check_against_ref(&c, bias, 3); /* n < threads: images in turn, BLAS threads the GEMMs */
            c.n = 4;
            check_against_ref(&c, bias, 3); /* n >= threads: images spread over threads */
        }
}

Test(conv_ref, dense_and_grouped)
{
    const ref_case cases[] = {
        {1, 3, 13, 17, 8, 3, 3, conv_sq(1, 1, 1, 1)},
        {1, 3, 13, 17, 8, 3, 3, conv_sq(2, 1, 1, 1)},
        {1, 4, 12, 11, 5, 3, 3, conv_sq(1, 2, 2, 1)},
        {1, 3, 11, 14, 4, 5, 5, conv_sq(1, 2, 1, 1)},
        {1, 3, 11, 14, 4, 5, 5, conv_sq(3, 0, 1, 1)},
        {1, 6, 9, 10, 4, 3, 3, conv_sq(1, 1, 1, 2)},
        {1, 6, 9, 10, 9, 3, 3, conv_sq(2, 1, 1, 3)},
        {1, 3, 10, 13, 4, 3, 2, conv_p(2, 1, 1, 0, 1, 2, 1)},
        {1, 2, 8, 9, 3, 2, 4, conv_p(1, 3, 0, 2, 2, 1, 1)},
        {1, 3, 61, 67, 8, 3, 3, conv_sq(1, 1, 1, 1)},   /* 4087 pixels: forward in 2 blocks split mid-row */
    };
    check_ref_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Every case takes the path `applies` names, and not when im2col is asked for: otherwise a change
 * of threshold would leave the tests below checking im2col twice. */
static void expect_path(const ref_case *cases, int n_cases, bool (*applies)(const mn_conv2d_dims *), const char *path)
{
    for (int i = 0; i < n_cases; i++) {
        mn_conv2d_dims d;
        const ref_case *c = &cases[i];
        cr_assert_eq(mn_conv2d_dims_init(&d, c->n, c->cin, c->h, c->w, c->cout, c->kh, c->kw, &c->p,
                                         (int64_t)c->cin * c->kh * c->kw), 0);
        cr_assert(applies(&d), "case %d does not take the %s path", i, path);
        d.im2col_only = true;
        cr_assert(!applies(&d), "case %d: im2col_only is not honoured by the %s path", i, path);
    }
}

/* 3x3, stride 1, one group, 32+ channels, 64+ tiles of 4x4 outputs: Winograd F(4x4, 3x3)
 * (winograd.c), over planes that are not multiples of the tile, paddings 0-2, several blocks
 * of tile rows per image, and one tile row longer than a block. */
Test(conv_ref, winograd_3x3)
{
    const ref_case cases[] = {
        {1, 32, 29, 35, 40, 3, 3, conv_sq(1, 1, 1, 1)},
        {1, 33, 34, 34, 32, 3, 3, conv_sq(1, 0, 1, 1)},
        {1, 40, 31, 30, 36, 3, 3, conv_sq(1, 2, 1, 1)},
        {1, 32, 30, 33, 32, 3, 3, conv_p(1, 1, 1, 0, 1, 1, 1)},
        {1, 48, 67, 61, 32, 3, 3, conv_sq(1, 1, 1, 1)},
        {1, 32, 5, 1030, 32, 3, 3, conv_sq(1, 1, 1, 1)},
    };
    const int n_cases = sizeof cases / sizeof cases[0];
    expect_path(cases, n_cases, mn_winograd_applies, "Winograd");
    check_ref_cases(cases, n_cases);
}

/* Dilated, stride 1, one group, most products on padding: one GEMM per tap (conv_taps.c). The
 * ASPP's rates on small maps, a rate past the map (only the centre tap reads it), padding that
 * differs from the dilation (no tap in place), rectangular kernels and dilations. */
Test(conv_ref, dilated_taps)
{
    const ref_case cases[] = {
        {1, 16, 11, 14, 12, 3, 3, conv_sq(1, 12, 12, 1)},
        {1, 8, 9, 10, 6, 3, 3, conv_sq(1, 18, 18, 1)},
        {1, 10, 32, 32, 8, 3, 3, conv_sq(1, 18, 18, 1)},
        {1, 6, 13, 17, 5, 3, 3, conv_p(1, 1, 3, 7, 6, 6, 1)},
        {1, 5, 12, 15, 7, 2, 3, conv_p(1, 1, 4, 2, 5, 3, 1)},
        {1, 4, 12, 11, 5, 3, 3, conv_sq(1, 2, 2, 1)},
    };
    const int n_cases = sizeof cases / sizeof cases[0];
    expect_path(cases, n_cases, mn_taps_applies, "per-tap");
    check_ref_cases(cases, n_cases);
}

Test(conv_ref, pointwise)
{
    const ref_case cases[] = {
        {1, 7, 9, 11, 5, 1, 1, conv_sq(1, 0, 1, 1)},  /* direct GEMM */
        {1, 8, 9, 11, 6, 1, 1, conv_sq(1, 0, 1, 2)},  /* direct GEMM, grouped */
        {1, 7, 9, 11, 5, 1, 1, conv_sq(2, 0, 1, 1)},  /* strided: im2col */
        {1, 7, 5, 6, 5, 1, 1, conv_sq(1, 1, 1, 1)},   /* padded: im2col */
        {1, 20, 61, 67, 16, 1, 1, conv_sq(1, 0, 1, 1)}, /* forward in 2 pixel blocks */
    };
    check_ref_cases(cases, sizeof cases / sizeof cases[0]);
}

Test(conv_ref, depthwise)
{
    const ref_case cases[] = {
        {1, 5, 13, 37, 5, 3, 3, conv_sq(1, 1, 1, 5)},
        {1, 5, 14, 14, 5, 3, 3, conv_sq(1, 0, 1, 5)},
        {1, 5, 7, 9, 5, 3, 3, conv_sq(1, 2, 1, 5)},
        {1, 3, 1, 1, 3, 3, 3, conv_sq(1, 1, 1, 3)},
        {1, 5, 13, 37, 5, 3, 3, conv_sq(2, 1, 1, 5)},
        {1, 5, 14, 16, 5, 3, 3, conv_sq(2, 1, 1, 5)},
        {1, 5, 12, 15, 5, 3, 3, conv_sq(2, 0, 1, 5)},
        {1, 5, 12, 15, 5, 3, 3, conv_sq(2, 2, 1, 5)},
        {1, 4, 9, 8, 4, 3, 3, conv_p(2, 2, 0, 1, 1, 1, 4)},
        {1, 4, 9, 8, 4, 3, 3, conv_p(2, 2, 3, 2, 1, 1, 4)},
        {1, 4, 2, 3, 4, 3, 3, conv_sq(2, 1, 1, 4)},
        {1, 4, 11, 12, 4, 5, 5, conv_sq(1, 2, 1, 4)},   /* the generic path from here on */
        {1, 4, 11, 12, 4, 3, 3, conv_sq(1, 2, 2, 4)},
        {1, 4, 11, 12, 4, 3, 3, conv_sq(3, 1, 1, 4)},
        {1, 4, 11, 12, 4, 3, 3, conv_p(1, 2, 1, 1, 1, 1, 4)},
        {1, 4, 11, 12, 4, 3, 1, conv_p(2, 1, 1, 0, 1, 1, 4)},
    };
    check_ref_cases(cases, sizeof cases / sizeof cases[0]);
}

Test(conv_ref, reference_is_a_plain_convolution)
{
    /* 1 image, 1 channel 3x3, 2x2 kernel, stride 1, no padding: worked by hand */
    const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const float w[4] = {1, 0, 0, -1};
    const float b = 0.5f;
    mn_conv2d_params p = conv_sq(1, 0, 1, 1);
    mn_conv2d_dims d;
    cr_assert_eq(mn_conv2d_dims_init(&d, 1, 1, 3, 3, 1, 2, 2, &p, 4), 0);
    cr_assert_eq(d.ho, 2);
    cr_assert_eq(d.wo, 2);
    float y[4];
    mn_conv2d_forward_ref(y, x, w, &b, &d);
    const float want[4] = {1 - 5 + 0.5f, 2 - 6 + 0.5f, 4 - 8 + 0.5f, 5 - 9 + 0.5f};
    tc_expect_close(y, want, 4, 0, 0, "hand-worked convolution");
}

Test(linear_ref, blas_matches_reference)
{
    const int n = 6, in = 19, out = 11;
    const int64_t ldw = in + 4;
    float *x = tc_random(1, n * in, -1, 1), *w = tc_random(2, out * ldw, -1, 1), *b = tc_random(3, out, -1, 1);
    float *dy = tc_random(4, n * out, -1, 1);
    float y1[6 * 11], y2[6 * 11];
    mn_linear_forward(y1, x, w, b, n, in, out, ldw);
    mn_linear_forward_ref(y2, x, w, b, n, in, out, ldw);
    tc_expect_close(y1, y2, n * out, 1e-5f, 1e-5f, "linear forward");
    mn_linear_forward(y1, x, w, NULL, n, in, out, ldw);
    mn_linear_forward_ref(y2, x, w, NULL, n, in, out, ldw);
    tc_expect_close(y1, y2, n * out, 1e-5f, 1e-5f, "linear forward, no bias");
    float *dx1 = tc_random(5, n * in, -1, 1), *dw1 = tc_random(6, out * ldw, -1, 1), *db1 = tc_random(7, out, -1, 1);
    float *dx2 = tc_random(5, n * in, -1, 1), *dw2 = tc_random(6, out * ldw, -1, 1), *db2 = tc_random(7, out, -1, 1);
    mn_linear_backward(dx1, dw1, db1, dy, x, w, n, in, out, ldw);
    mn_linear_backward_ref(dx2, dw2, db2, dy, x, w, n, in, out, ldw);
    tc_expect_close(dx1, dx2, n * in, 1e-5f, 1e-5f, "linear dx");
    tc_expect_close(dw1, dw2, out * ldw, 1e-5f, 1e-5f, "linear dw (padding included)");
    tc_expect_close(db1, db2, out, 1e-5f, 1e-5f, "linear db");
    free(x), free(w), free(b), free(dy), free(dx1), free(dw1), free(db1), free(dx2), free(dw2), free(db2);
}

/* ---------------------------------------------------------------------------------------- */
/* ops against PyTorch                                                                       */

static mn_tensor fx(const mn_safetensors *st, const char *cs, const char *key)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", cs, key);
    return tc_get(st, name);
}

static mn_var *leaf_of(const mn_tensor *t, bool requires_grad) { return tc_leaf(t->data, t->ndim, t->shape, requires_grad); }

static void expect_tensor(const mn_tensor *got, const mn_tensor *want, float atol, float rtol, const char *cs,
                          const char *what)
{
    char msg[96], gs[64], ws[64];
    cr_assert(mn_tensor_same_shape(got, want), "%s %s: shape %s, expected %s", cs, what,
              mn_shape_str(got, gs, sizeof gs), mn_shape_str(want, ws, sizeof ws));
    snprintf(msg, sizeof msg, "%s %s", cs, what);
    tc_expect_close(got->data, want->data, mn_tensor_numel(want), atol, rtol, msg);
}

/* Forward and the three gradients of mn_conv2d against torch for fixture case cs. */
static void check_torch(const char *cs, mn_conv2d_params p, bool bias)
{
    mn_safetensors st;
    tc_fixture("conv", &st);
    mn_tensor xt = fx(&st, cs, "x"), wt = fx(&st, cs, "w"), dyt = fx(&st, cs, "dy"), yt = fx(&st, cs, "y");
    mn_var *x = leaf_of(&xt, true), *w = leaf_of(&wt, true), *b = NULL;
    if (bias) {
        mn_tensor bt = fx(&st, cs, "b");
        b = leaf_of(&bt, true);
    }
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_conv2d(&t, x, w, b, &p);
    cr_assert(y, "%s: %s", cs, mn_last_error());
    expect_tensor(&y->val, &yt, 1e-5f, 1e-4f, cs, "forward");
    cr_assert_eq(mn_backward_grad(&t, y, dyt.data), 0, "%s", mn_last_error());
    mn_tensor dxt = fx(&st, cs, "dx"), dwt = fx(&st, cs, "dw");
    expect_tensor(&x->grad, &dxt, 1e-5f, 1e-4f, cs, "dx");
    expect_tensor(&w->grad, &dwt, 2e-5f, 1e-4f, cs, "dw");
    if (bias) {
        mn_tensor dbt = fx(&st, cs, "db");
        expect_tensor(&b->grad, &dbt, 2e-5f, 1e-4f, cs, "db");
    }
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(w), tc_leaf_free(b);
    mn_st_free(&st);
}

/* ---- finite differences ---- */

typedef struct conv_op_ctx {
    mn_conv2d_params p;
    int64_t prefix[2];   /* > 0: the weight (and bias) are used through prefix views */
} conv_op_ctx;

static mn_var *conv_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    const conv_op_ctx *c = ctx;
    mn_var *w = in[1], *b = in[2];
    if (c->prefix[0]) {
        w = mn_var_prefix(t, mn_var_prefix(t, w, 0, c->prefix[0]), 1, c->prefix[1]);
        if (b) b = mn_var_prefix(t, b, 0, c->prefix[0]);
    }
    return mn_conv2d(t, in[0], w, b, &c->p);
}

static const tc_gradcheck_opts conv_fd = {.eps = 1e-2f, .atol = 2e-3f, .rtol = 1e-2f, .max_checks = 40};

/* Central differences on the fixture's inputs (conv is linear in each, so the only error is rounding). */
static void check_fd(const char *cs, mn_conv2d_params p, bool bias)
{
    mn_safetensors st;
    tc_fixture("conv", &st);
    mn_tensor xt = fx(&st, cs, "x"), wt = fx(&st, cs, "w");
    mn_var *in[3] = {leaf_of(&xt, true), leaf_of(&wt, true), NULL};
    if (bias) {
        mn_tensor bt = fx(&st, cs, "b");
        in[2] = leaf_of(&bt, true);
    }
    conv_op_ctx c = {.p = p};
    tc_gradcheck(conv_op, &c, in, bias ? 3 : 2, &conv_fd);
    for (int i = 0; i < 3; i++) tc_leaf_free(in[i]);
    mn_st_free(&st);
}

#define CONV_CASE(cs, params, bias)                                                                                   \
    Test(conv_torch, cs) { check_torch(#cs, params, bias); }                                                         \
    Test(conv_gradcheck, cs) { check_fd(#cs, params, bias); }

CONV_CASE(d3s1, conv_sq(1, 1, 1, 1), true)
CONV_CASE(d3s2, conv_sq(2, 1, 1, 1), false)
CONV_CASE(d3dil2, conv_sq(1, 2, 2, 1), true)
CONV_CASE(d5, conv_sq(1, 2, 1, 1), true)
CONV_CASE(g2, conv_sq(1, 1, 1, 2), true)
CONV_CASE(dws1, conv_sq(1, 1, 1, 3), true)
CONV_CASE(dws2, conv_sq(2, 1, 1, 3), false)
CONV_CASE(dwk5, conv_sq(1, 2, 1, 4), true)
CONV_CASE(dwdil, conv_sq(1, 2, 2, 4), false)
CONV_CASE(pw, conv_sq(1, 0, 1, 1), true)
CONV_CASE(pws2, conv_sq(2, 0, 1, 1), false)
CONV_CASE(rect, conv_p(2, 1, 1, 0, 1, 2, 1), true)

/* ---------------------------------------------------------------------------------------- */
/* slimmable: prefix views of full-width parameters                                          */

/* After backward, the full gradient buffer must equal its initial values g0 plus torch's full
 * gradient, which is zero outside the used slice: bit-exact there (nothing may be written). */
static void expect_full_grad(const float *got, const float *g0, const mn_tensor *torch_full,
                             bool (*inside)(const int64_t *idx), const char *what)
{
    int64_t n = mn_tensor_numel(torch_full), idx[4] = {0, 0, 0, 0};
    int nd = torch_full->ndim;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = i;
        for (int k = nd - 1; k >= 0; k--) {
            idx[k] = r % torch_full->shape[k];
            r /= torch_full->shape[k];
        }
        if (inside(idx)) {
            float want = g0[i] + torch_full->data[i];
            cr_assert(fabsf(got[i] - want) <= 2e-5f + 1e-4f * fabsf(want), "%s: element %lld is %.8g, expected %.8g",
                      what, (long long)i, (double)got[i], (double)want);
        } else {
            cr_assert(torch_full->data[i] == 0.0f, "%s: torch's gradient is not zero outside the slice", what);
            cr_assert(got[i] == g0[i], "%s: element %lld outside the slice changed from %.8g to %.8g", what,
                      (long long)i, (double)g0[i], (double)got[i]);
        }
    }
}

static bool in_slim(const int64_t *idx) { return idx[0] < 10 && idx[1] < 8; }
static bool in_first10(const int64_t *idx) { return idx[0] < 10; }
static bool in_first5(const int64_t *idx) { return idx[0] < 5; }
static bool in_lin(const int64_t *idx) { return idx[0] < 5 && idx[1] < 7; }

/* wfull/bfull of case cs used through views [:rows] (and [:, :cols] when cols > 0). */
static void check_slim(const char *cs, bool is_linear, mn_conv2d_params p, int64_t rows, int64_t cols,
                       bool (*w_inside)(const int64_t *), bool (*b_inside)(const int64_t *))
{
    mn_safetensors st;
    tc_fixture("conv", &st);
    mn_tensor xt = fx(&st, cs, "x"), wt = fx(&st, cs, "wfull"), bt = fx(&st, cs, "bfull");
    mn_var *x = leaf_of(&xt, true), *wf = leaf_of(&wt, true), *bf = leaf_of(&bt, true);
    int64_t nw = mn_tensor_numel(&wt), nb = mn_tensor_numel(&bt);
    float *gw0 = tc_random(31, nw, -1, 1), *gb0 = tc_random(32, nb, -1, 1);
    memcpy(wf->grad.data, gw0, sizeof(float) * (size_t)nw);
    memcpy(bf->grad.data, gb0, sizeof(float) * (size_t)nb);

    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *w = mn_var_prefix(&t, wf, 0, rows);
    if (cols) w = mn_var_prefix(&t, w, 1, cols);
    mn_var *b = mn_var_prefix(&t, bf, 0, rows);
    cr_assert(w && b, "%s", mn_last_error());
    cr_assert(!mn_tensor_is_contiguous(&w->val) || !cols, "%s: the weight view should be strided", cs);
    mn_var *y = is_linear ? mn_linear(&t, x, w, b) : mn_conv2d(&t, x, w, b, &p);
    cr_assert(y, "%s: %s", cs, mn_last_error());
    mn_tensor yt = fx(&st, cs, "y"), dyt = fx(&st, cs, "dy"), dxt = fx(&st, cs, "dx");
    expect_tensor(&y->val, &yt, 1e-5f, 1e-4f, cs, "forward");
    cr_assert_eq(mn_backward_grad(&t, y, dyt.data), 0, "%s", mn_last_error());
    expect_tensor(&x->grad, &dxt, 1e-5f, 1e-4f, cs, "dx");
    mn_tensor dwt = fx(&st, cs, "dwfull"), dbt = fx(&st, cs, "dbfull");
    char what[64];
    snprintf(what, sizeof what, "%s full weight gradient", cs);
    expect_full_grad(wf->grad.data, gw0, &dwt, w_inside, what);
    snprintf(what, sizeof what, "%s full bias gradient", cs);
    expect_full_grad(bf->grad.data, gb0, &dbt, b_inside, what);
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(wf), tc_leaf_free(bf);
    free(gw0), free(gb0);
    mn_st_free(&st);
}

Test(slim, dense_prefix_view)
{
    check_slim("slim", false, conv_sq(1, 1, 1, 1), 10, 8, in_slim, in_first10);
}

Test(slim, depthwise_prefix_view)
{
    check_slim("dwslim", false, conv_sq(2, 1, 1, 10), 10, 0, in_first10, in_first10);
}

Test(slim, linear_prefix_view)
{
    check_slim("linslim", true, conv_sq(1, 0, 1, 1), 5, 7, in_lin, in_first5);
}

Test(slim, gradcheck_through_prefix_views)
{
    /* finite differences over every element of the full parameters: zero outside the view */
    const int64_t wshape[4] = {6, 5, 3, 3}, xshape[4] = {1, 4, 5, 6}, bshape[1] = {6};
    float *xv = tc_random(41, 120, -1, 1), *wv = tc_random(42, 270, -1, 1), *bv = tc_random(43, 6, -1, 1);
    mn_var *in[3] = {tc_leaf(xv, 4, xshape, true), tc_leaf(wv, 4, wshape, true), tc_leaf(bv, 1, bshape, true)};
    conv_op_ctx c = {.p = conv_sq(2, 1, 1, 1), .prefix = {3, 4}};
    tc_gradcheck_opts o = conv_fd;
    o.max_checks = 0;
    tc_gradcheck(conv_op, &c, in, 3, &o);
    for (int i = 0; i < 3; i++) tc_leaf_free(in[i]);
    free(xv), free(wv), free(bv);
}

/* ---------------------------------------------------------------------------------------- */
/* linear against torch                                                                      */

Test(linear, torch_forward_and_gradients)
{
    mn_safetensors st;
    tc_fixture("conv", &st);
    mn_tensor xt = fx(&st, "linear", "x"), wt = fx(&st, "linear", "w"), bt = fx(&st, "linear", "b");
    mn_var *x = leaf_of(&xt, true), *w = leaf_of(&wt, true), *b = leaf_of(&bt, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_linear(&t, x, w, b);
    cr_assert(y, "%s", mn_last_error());
    mn_tensor yt = fx(&st, "linear", "y"), dyt = fx(&st, "linear", "dy");
    expect_tensor(&y->val, &yt, 1e-5f, 1e-4f, "linear", "forward");
    cr_assert_eq(mn_backward_grad(&t, y, dyt.data), 0, "%s", mn_last_error());
    mn_tensor dxt = fx(&st, "linear", "dx"), dwt = fx(&st, "linear", "dw"), dbt = fx(&st, "linear", "db");
    expect_tensor(&x->grad, &dxt, 1e-5f, 1e-4f, "linear", "dx");
    expect_tensor(&w->grad, &dwt, 1e-5f, 1e-4f, "linear", "dw");
    expect_tensor(&b->grad, &dbt, 1e-5f, 1e-4f, "linear", "db");
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(w), tc_leaf_free(b);
    mn_st_free(&st);
}

static mn_var *linear_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    (void)ctx;
    return mn_linear(t, in[0], in[1], in[2]);
}

Test(linear, gradcheck)
{
    const int64_t xs[2] = {4, 9}, ws[2] = {6, 9}, bs[1] = {6};
    float *xv = tc_random(51, 36, -1, 1), *wv = tc_random(52, 54, -1, 1), *bv = tc_random(53, 6, -1, 1);
    mn_var *in[3] = {tc_leaf(xv, 2, xs, true), tc_leaf(wv, 2, ws, true), tc_leaf(bv, 1, bs, true)};
    tc_gradcheck(linear_op, NULL, in, 3, &conv_fd);
    for (int i = 0; i < 3; i++) tc_leaf_free(in[i]);
    free(xv), free(wv), free(bv);
}

Test(linear, pooled_4d_input_reads_as_2d)
{
    const int64_t xs4[4] = {2, 3, 1, 1}, xs2[2] = {2, 3}, ws[2] = {4, 3};
    float *xv = tc_random(61, 6, -1, 1), *wv = tc_random(62, 12, -1, 1);
    mn_var *x4 = tc_leaf(xv, 4, xs4, false), *x2 = tc_leaf(xv, 2, xs2, false), *w = tc_leaf(wv, 2, ws, false);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y4 = mn_linear(&t, x4, w, NULL), *y2 = mn_linear(&t, x2, w, NULL);
    cr_assert(y4 && y2, "%s", mn_last_error());
    cr_assert_eq(y4->val.ndim, 2);
    tc_expect_close(y4->val.data, y2->val.data, 8, 0, 0, "linear on (N, C, 1, 1)");
    mn_tape_free(&t);
    tc_leaf_free(x4), tc_leaf_free(x2), tc_leaf_free(w);
    free(xv), free(wv);
}

/* ---------------------------------------------------------------------------------------- */
/* errors, graph recording and memory                                                        */

static mn_var *zeros(int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    const int64_t shape[4] = {a, b, c, d};
    mn_var *v = tc_leaf(NULL, ndim, shape, false);
    memset(v->val.data, 0, sizeof(float) * (size_t)mn_tensor_numel(&v->val));
    return v;
}

static void expect_error_at(int line, mn_var *y, int code, const char *part1, const char *part2)
{
    cr_assert_null(y, "line %d: expected a failure", line);
    cr_assert_eq(mn_last_error_code(), code, "code %d, expected %d (%s)", mn_last_error_code(), code,
                 mn_last_error());
    cr_assert(strstr(mn_last_error(), part1), "message \"%s\" does not mention \"%s\"", mn_last_error(), part1);
    if (part2)
        cr_assert(strstr(mn_last_error(), part2), "message \"%s\" does not mention \"%s\"", mn_last_error(), part2);
}
#define expect_error(...) expect_error_at(__LINE__, __VA_ARGS__)

Test(conv_errors, shapes_and_parameters)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x = zeros(4, 2, 3, 7, 9), *w = zeros(4, 4, 2, 3, 3), *w3 = zeros(4, 4, 3, 3, 3);
    mn_var *b5 = zeros(1, 5, 0, 0, 0), *x3d = zeros(3, 3, 7, 9, 0), *w_odd = zeros(4, 4, 1, 3, 3);
    mn_var *w_big = zeros(4, 4, 3, 9, 9);
    mn_conv2d_params p = conv_sq(1, 1, 1, 1);
    expect_error(mn_conv2d(&t, x, w, NULL, &p), MN_ESHAPE, "[2, 3, 7, 9]", "[4, 2, 3, 3]");
    expect_error(mn_conv2d(&t, x, w3, b5, &p), MN_ESHAPE, "[5]", "[4, 3, 3, 3]");
    expect_error(mn_conv2d(&t, x3d, w3, NULL, &p), MN_ESHAPE, "[3, 7, 9]", "4-D");
    mn_conv2d_params p0 = conv_sq(1, 0, 1, 1);
    expect_error(mn_conv2d(&t, x, w_big, NULL, &p0), MN_ESHAPE, "[4, 3, 9, 9]", "larger than input [2, 3, 7, 9]");
    mn_conv2d_params g3 = conv_sq(1, 1, 1, 3);
    expect_error(mn_conv2d(&t, x, w_odd, NULL, &g3), MN_ESHAPE, "[4, 1, 3, 3]", "groups 3");
    mn_conv2d_params s0 = conv_sq(0, 1, 1, 1);
    expect_error(mn_conv2d(&t, x, w3, NULL, &s0), MN_EINVAL, "stride (0, 0)", "[2, 3, 7, 9]");
    mn_conv2d_params neg = conv_sq(1, -1, 1, 1);
    expect_error(mn_conv2d(&t, x, w3, NULL, &neg), MN_EINVAL, "padding (-1, -1)", NULL);
    expect_error(mn_conv2d(&t, x, w3, NULL, NULL), MN_EINVAL, "no parameters", NULL);
    /* a failed op upstream propagates as NULL */
    cr_assert_null(mn_conv2d(&t, NULL, w3, NULL, &p));
    cr_assert_null(mn_conv2d(&t, x, NULL, NULL, &p));
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(w), tc_leaf_free(w3), tc_leaf_free(b5), tc_leaf_free(x3d), tc_leaf_free(w_odd);
    tc_leaf_free(w_big);
}

Test(conv_errors, linear_shapes)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x = zeros(2, 3, 7, 0, 0), *w = zeros(2, 5, 6, 0, 0), *w7 = zeros(2, 5, 7, 0, 0);
    mn_var *b4 = zeros(1, 4, 0, 0, 0), *x4 = zeros(4, 3, 7, 2, 2);
    expect_error(mn_linear(&t, x, w, NULL), MN_ESHAPE, "[3, 7]", "[5, 6]");
    expect_error(mn_linear(&t, x, w7, b4), MN_ESHAPE, "[4]", "[5, 7]");
    expect_error(mn_linear(&t, x4, w7, NULL), MN_ESHAPE, "[3, 7, 2, 2]", NULL);
    cr_assert_null(mn_linear(&t, NULL, w7, NULL));
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(w), tc_leaf_free(w7), tc_leaf_free(b4), tc_leaf_free(x4);
}

Test(conv_graph, records_only_when_needed_and_reuses_the_arena)
{
    const int64_t xs[4] = {2, 4, 12, 12}, wsh[4] = {6, 4, 3, 3};
    float *xv = tc_random(71, 2 * 4 * 144, -1, 1), *wv = tc_random(72, 216, -1, 1);
    mn_var *x = tc_leaf(xv, 4, xs, false), *w = tc_leaf(wv, 4, wsh, true);
    mn_conv2d_params p = conv_sq(1, 1, 1, 1);
    mn_tape t;
    mn_tape_init(&t, 0);
    bool old = mn_tape_set_grad(&t, false);
    mn_var *y = mn_conv2d(&t, x, w, NULL, &p);
    cr_assert(y && !y->node && t.n_nodes == 0, "no node may be recorded with gradients off");
    mn_tape_set_grad(&t, old);
    mn_tape_reset(&t);
    float *dy = tc_random(73, 2 * 6 * 144, -1, 1);
    size_t grows = 0;
    for (int pass = 0; pass < 3; pass++) {
        y = mn_conv2d(&t, x, w, NULL, &p);
        cr_assert(y && y->node && t.n_nodes == 1);
        cr_assert_eq(mn_backward_grad(&t, y, dy), 0, "%s", mn_last_error());
        if (pass == 1) grows = t.arena.n_grow;
        if (pass == 2) cr_assert_eq(t.arena.n_grow, grows, "the arena grew on a repeated pass");
        mn_tape_reset(&t);
    }
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(w);
    free(xv), free(wv), free(dy);
}

/* ---------------------------------------------------------------------------------------- */
/* convolution with a fused eval-mode batch norm and clamp (mn_conv2d_forward_affine,        */
/* mn_conv2d_bn_act)                                                                         */

/* The fused kernel against its reference twin for one case, threads, clamp [lo, hi] and bias.
 * Scales in [-4, 4] and shifts in [-3, 3] push many outputs past both ends of the clamp. */
static void check_affine_case(const ref_case *c, bool bias, int threads, float lo, float hi)
{
    mn_conv2d_dims d;
    int64_t row = (int64_t)(c->cin / c->p.groups) * c->kh * c->kw, ldw = row + 3;
    cr_assert_eq(mn_conv2d_dims_init(&d, c->n, c->cin, c->h, c->w, c->cout, c->kh, c->kw, &c->p, ldw), 0, "%s",
                 mn_last_error());
    d.nthreads = threads;
    int64_t nx = (int64_t)c->n * c->cin * c->h * c->w, ny = (int64_t)c->n * c->cout * d.ho * d.wo;
    float *x = tc_random(21, nx, -1, 1), *w = tc_random(22, c->cout * ldw, -1, 1), *b = tc_random(23, c->cout, -1, 1);
    float *scale = tc_random(24, c->cout, -4, 4), *shift = tc_random(25, c->cout, -3, 3);
    float *y1 = malloc(sizeof(float) * (size_t)ny), *y2 = malloc(sizeof(float) * (size_t)ny);
    const size_t nws = mn_conv2d_workspace_floats(&d, false);
    float *ws = guarded(nws);
    mn_conv2d_forward_affine(y1, x, w, bias ? b : NULL, scale, shift, lo, hi, ws, &d);
    mn_conv2d_forward_affine_ref(y2, x, w, bias ? b : NULL, scale, shift, lo, hi, &d);
    char what[160];
    snprintf(what, sizeof what, "affine %dx%d s%d g%d in (%d,%d,%d,%d) out %d bias %d threads %d clamp [%g, %g]",
             c->kh, c->kw, c->p.stride_h, c->p.groups, c->n, c->cin, c->h, c->w, c->cout, bias, threads, (double)lo,
             (double)hi);
    /* Winograd: rounding of ~1e-5 of the convolution's scale, times the scale factor (up to 4) */
    tc_expect_close(y1, y2, ny, mn_winograd_applies(&d) ? 1e-3f : 1e-4f, 2e-5f, what);
    guard_intact(ws, nws, what);
    /* the clamp is really exercised: values at both ends when they are finite */
    int64_t at_lo = 0, at_hi = 0;
    for (int64_t i = 0; i < ny; i++) {
        cr_assert(y1[i] >= lo && y1[i] <= hi, "%s: y[%lld] = %g outside the clamp", what, (long long)i, (double)y1[i]);
        at_lo += y1[i] == lo;
        at_hi += y1[i] == hi;
    }
    if (isfinite(lo)) cr_assert_gt(at_lo, 0, "%s: no output was clamped at %g", what, (double)lo);
    if (isfinite(hi)) cr_assert_gt(at_hi, 0, "%s: no output was clamped at %g", what, (double)hi);
    free(x), free(w), free(b), free(scale), free(shift), free(y1), free(y2), free(ws);
}

Test(conv_affine, matches_reference_on_every_path)
{
    const ref_case cases[] = {
        {1, 7, 9, 11, 12, 1, 1, conv_sq(1, 0, 1, 1)},    /* 1x1: direct GEMM */
        {2, 20, 61, 67, 16, 1, 1, conv_sq(1, 0, 1, 1)},  /* 1x1 in several pixel blocks */
        {1, 8, 9, 11, 6, 1, 1, conv_sq(1, 0, 1, 2)},     /* 1x1 grouped */
        {2, 3, 32, 30, 16, 3, 3, conv_sq(2, 1, 1, 1)},   /* a stem: im2col */
        {1, 6, 9, 10, 9, 3, 3, conv_sq(2, 1, 1, 3)},     /* grouped im2col */
        {2, 12, 14, 14, 12, 3, 3, conv_sq(1, 1, 1, 12)}, /* depthwise 3x3 s1 */
        {2, 12, 14, 16, 12, 3, 3, conv_sq(2, 1, 1, 12)}, /* depthwise 3x3 s2, even width */
        {1, 5, 13, 37, 5, 3, 3, conv_sq(2, 1, 1, 5)},    /* depthwise 3x3 s2, polyphase */
        {1, 4, 11, 12, 4, 5, 5, conv_sq(1, 2, 1, 4)},    /* depthwise, generic */
        {2, 32, 29, 35, 40, 3, 3, conv_sq(1, 1, 1, 1)},  /* 3x3 s1, 32+ channels: Winograd */
        {2, 16, 11, 14, 12, 3, 3, conv_sq(1, 12, 12, 1)}, /* ASPP rate 12 on a small map: per tap */
    };
    const float clamps[3][2] = {{0.0f, 6.0f}, {0.0f, INFINITY}, {-INFINITY, INFINITY}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int k = 0; k < 3; k++)
            for (int bias = 0; bias < 2; bias++) {
                check_affine_case(&cases[i], bias, 1, clamps[k][0], clamps[k][1]);
                check_affine_case(&cases[i], bias, 3, clamps[k][0], clamps[k][1]);
            }
}

Test(conv_affine, reference_is_conv_then_affine_then_clamp)
{
    /* 1 image, 2 output channels of a 1x1 convolution on 1 input channel, by hand */
    const float x[3] = {1, -2, 3}, w[2] = {2, -1}, scale[2] = {3, 0.5f}, shift[2] = {-1, 2};
    mn_conv2d_params p = conv_sq(1, 0, 1, 1);
    mn_conv2d_dims d;
    cr_assert_eq(mn_conv2d_dims_init(&d, 1, 1, 1, 3, 2, 1, 1, &p, 1), 0);
    float y[6];
    mn_conv2d_forward_affine_ref(y, x, w, NULL, scale, shift, 0.0f, 6.0f, &d);
    /* channel 0: 3 (2x) - 1 = 5, -13 -> 0, 17 -> 6; channel 1: 0.5 (-x) + 2 = 1.5, 3, 0.5 */
    const float want[6] = {5, 0, 6, 1.5f, 3, 0.5f};
    tc_expect_close(y, want, 6, 0, 0, "affine reference by hand");
}

typedef struct cba_case {
    int n, cin, h, w, cout, k;
    mn_conv2d_params p;
} cba_case;

/* mn_conv2d_bn_act with gradients off against mn_conv2d -> mn_batch_norm (eval) -> activation:
 * the same values, for every activation; weights are prefix views of larger parameters, as
 * in a slimmable layer. */
static void check_cba(const cba_case *c, int act)
{
    const int64_t cin_g = c->cin / c->p.groups, big = c->cout + 5;
    const int64_t xs[4] = {c->n, c->cin, c->h, c->w}, wsh[4] = {big, cin_g, c->k, c->k}, cs[1] = {big};
    float *xv = tc_random(81, c->n * c->cin * c->h * c->w, -1, 1), *wv = tc_random(82, big * cin_g * c->k * c->k, -1, 1);
    float *gv = tc_random(83, big, -3, 3), *bv = tc_random(84, big, -2, 2), *bias = tc_random(85, big, -1, 1);
    float *mean = tc_random(86, big, -0.5f, 0.5f), *var = tc_random(87, big, 0.01f, 2);
    mn_var *x = tc_leaf(xv, 4, xs, false), *wf = tc_leaf(wv, 4, wsh, false);
    mn_var *gf = tc_leaf(gv, 1, cs, false), *bf = tc_leaf(bv, 1, cs, false), *cbf = tc_leaf(bias, 1, cs, false);
    mn_bn_state st = {mean, var, NULL};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        mn_var *w = mn_var_prefix(&t, wf, 0, c->cout), *g = mn_var_prefix(&t, gf, 0, c->cout);
        mn_var *be = mn_var_prefix(&t, bf, 0, c->cout), *cb = with_bias ? mn_var_prefix(&t, cbf, 0, c->cout) : NULL;
        mn_var *fused = mn_conv2d_bn_act(&t, x, w, cb, &c->p, g, be, &st, 1e-5f, act);
        cr_assert_not_null(fused, "%s", mn_last_error());
        const mn_bn_params bp = {1e-5f, 0.1f, false, NULL};
        mn_var *y = mn_batch_norm(&t, mn_conv2d(&t, x, w, cb, &c->p), g, be, &st, &bp);
        y = act == 6 ? mn_relu6(&t, y) : act == 1 ? mn_relu(&t, y) : y;
        cr_assert_not_null(y, "%s", mn_last_error());
        cr_assert(mn_tensor_same_shape(&fused->val, &y->val));
        cr_assert_eq(t.n_nodes, 0, "nothing may be recorded with gradients off");
        char what[96];
        snprintf(what, sizeof what, "conv2d_bn_act k%d s%d g%d act %d bias %d", c->k, c->p.stride_h, c->p.groups,
                 act, with_bias);
        tc_expect_close(fused->val.data, y->val.data, mn_tensor_numel(&y->val), 1e-6f, 1e-6f, what);
    }
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(wf), tc_leaf_free(gf), tc_leaf_free(bf), tc_leaf_free(cbf);
    free(xv), free(wv), free(gv), free(bv), free(bias), free(mean), free(var);
}

Test(conv_bn_act, same_values_as_the_three_ops)
{
    const cba_case cases[] = {
        {1, 3, 33, 35, 16, 3, conv_sq(2, 1, 1, 1)},   /* stem */
        {2, 16, 14, 14, 40, 1, conv_sq(1, 0, 1, 1)},  /* expansion */
        {2, 24, 14, 14, 24, 3, conv_sq(1, 1, 1, 24)}, /* depthwise */
        {1, 24, 14, 14, 24, 3, conv_sq(2, 1, 1, 24)}, /* depthwise, stride 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int act = 0; act <= 6; act += act ? 5 : 1) check_cba(&cases[i], act);
}

Test(conv_bn_act, records_conv_and_bn_act_when_gradients_are_wanted)
{
    const int64_t xs[4] = {2, 4, 9, 9}, wsh[4] = {6, 4, 3, 3}, cs[1] = {6};
    float *xv = tc_random(91, 2 * 4 * 81, -1, 1), *wv = tc_random(92, 6 * 36, -1, 1);
    float *gv = tc_random(93, 6, 0.5f, 2), *bv = tc_random(94, 6, -1, 1);
    float mean[6] = {0.1f, -0.2f, 0.3f, 0, 0.05f, -0.1f}, var[6] = {1, 0.5f, 2, 0.8f, 1.5f, 0.3f};
    mn_bn_state st = {mean, var, NULL};
    mn_conv2d_params p = conv_sq(1, 1, 1, 1);
    float *dy = tc_random(95, 2 * 6 * 81, -1, 1);
    float *grads[2][2];
    for (int fused = 0; fused < 2; fused++) {
        mn_var *x = tc_leaf(xv, 4, xs, true), *w = tc_leaf(wv, 4, wsh, true);
        mn_var *g = tc_leaf(gv, 1, cs, true), *b = tc_leaf(bv, 1, cs, true);
        mn_tape t;
        mn_tape_init(&t, 0);
        mn_var *y;
        if (fused) {
            y = mn_conv2d_bn_act(&t, x, w, NULL, &p, g, b, &st, 1e-5f, 6);
            cr_assert_eq(t.n_nodes, 2, "expected conv2d and batch_norm_act nodes, got %d", t.n_nodes);
        } else {
            const mn_bn_params bp = {1e-5f, 0.1f, false, NULL};
            y = mn_relu6(&t, mn_batch_norm(&t, mn_conv2d(&t, x, w, NULL, &p), g, b, &st, &bp));
        }
        cr_assert_not_null(y, "%s", mn_last_error());
        cr_assert_eq(mn_backward_grad(&t, y, dy), 0, "%s", mn_last_error());
        grads[fused][0] = malloc(sizeof(float) * 2 * 4 * 81);
        grads[fused][1] = malloc(sizeof(float) * 6 * 36);
        memcpy(grads[fused][0], x->grad.data, sizeof(float) * 2 * 4 * 81);
        memcpy(grads[fused][1], w->grad.data, sizeof(float) * 6 * 36);
        mn_tape_free(&t);
        tc_leaf_free(x), tc_leaf_free(w), tc_leaf_free(g), tc_leaf_free(b);
    }
    tc_expect_close(grads[1][0], grads[0][0], 2 * 4 * 81, 1e-6f, 1e-5f, "dx through conv2d_bn_act");
    tc_expect_close(grads[1][1], grads[0][1], 6 * 36, 1e-6f, 1e-5f, "dw through conv2d_bn_act");
    for (int i = 0; i < 2; i++) free(grads[i][0]), free(grads[i][1]);
    free(xv), free(wv), free(gv), free(bv), free(dy);
}

Test(conv_bn_act, errors)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    mn_var *x = zeros(4, 1, 3, 7, 9), *w = zeros(4, 4, 3, 3, 3), *g4 = zeros(1, 4, 0, 0, 0), *g5 = zeros(1, 5, 0, 0, 0);
    mn_var *w2 = zeros(4, 4, 2, 3, 3);
    float mean[4] = {0, 0, 0, 0}, var[4] = {1, 1, 1, 1}, bad[4] = {1, NAN, 1, 1};
    mn_bn_state st = {mean, var, NULL}, nost = {NULL, NULL, NULL}, badst = {mean, bad, NULL};
    mn_conv2d_params p = conv_sq(1, 1, 1, 1);
    expect_error(mn_conv2d_bn_act(&t, x, w, NULL, &p, g4, g4, &st, 1e-5f, 3), MN_EINVAL, "activation 3", NULL);
    expect_error(mn_conv2d_bn_act(&t, x, w, NULL, &p, g4, g4, &nost, 1e-5f, 6), MN_EINVAL, "running_mean",
                 "[1, 4, 7, 9]");
    expect_error(mn_conv2d_bn_act(&t, x, w, NULL, &p, g4, g4, NULL, 1e-5f, 6), MN_EINVAL, "running_mean", NULL);
    expect_error(mn_conv2d_bn_act(&t, x, w, NULL, &p, g5, g4, &st, 1e-5f, 6), MN_ESHAPE, "gamma", "[5]");
    expect_error(mn_conv2d_bn_act(&t, x, w, NULL, &p, g4, g5, &st, 1e-5f, 1), MN_ESHAPE, "beta", "[5]");
    expect_error(mn_conv2d_bn_act(&t, x, w, NULL, &p, g4, g4, &badst, 1e-5f, 0), MN_ENUMERIC, "channel 1", NULL);
    /* convolution errors read as those of mn_conv2d */
    expect_error(mn_conv2d_bn_act(&t, x, w2, NULL, &p, g4, g4, &st, 1e-5f, 6), MN_ESHAPE, "[1, 3, 7, 9]",
                 "[4, 2, 3, 3]");
    cr_assert_null(mn_conv2d_bn_act(&t, NULL, w, NULL, &p, g4, g4, &st, 1e-5f, 6));
    mn_tape_free(&t);
    tc_leaf_free(x), tc_leaf_free(w), tc_leaf_free(g4), tc_leaf_free(g5), tc_leaf_free(w2);
}

Test(conv_ref, pointwise_split_over_output_channels)
{
    /* fewer pixels than output channels at batch 1: threads take chunks of output channels */
    const ref_case cases[] = {
        {1, 16, 5, 5, 100, 1, 1, conv_sq(1, 0, 1, 1)},
        {1, 24, 4, 4, 130, 1, 1, conv_sq(1, 0, 1, 1)},
        {1, 32, 7, 7, 200, 1, 1, conv_sq(1, 0, 1, 2)}, /* grouped: 2 images x groups < 3 threads */
    };
    check_ref_cases(cases, sizeof cases / sizeof cases[0]);
    const float clamps[2][2] = {{0.0f, 6.0f}, {-INFINITY, INFINITY}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int k = 0; k < 2; k++) {
            check_affine_case(&cases[i], true, 2, clamps[k][0], clamps[k][1]);
            check_affine_case(&cases[i], false, 3, clamps[k][0], clamps[k][1]);
        }
}
