/* Batch norm: kernels against their reference twins, forward / gradients / running statistics
 * against PyTorch (tools/fixtures/gen_bn.py), cumulative averaging, finite differences, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/bn.h"
#include "mn/ops.h"

static mn_safetensors fx;

static void load(void) { tc_fixture("bn", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(bn, .init = load, .fini = unload);

static mn_tensor get(const char *kase, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return tc_get(&fx, name);
}

static bool has(const char *kase, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return mn_st_find(&fx, name) != NULL;
}

/* ---- optimised kernels against their reference twins ---- */

static void kernels_case(int64_t n, int64_t c, int64_t s, bool affine, uint64_t seed)
{
    const int64_t len = n * c * s;
    char what[96];
    float *x = tc_random(seed, len, -3.0f, 5.0f);
    float *dy = tc_random(seed + 1, len, -1.0f, 1.0f);
    float *gamma = affine ? tc_random(seed + 2, c, 0.5f, 1.5f) : NULL;
    float *beta = affine ? tc_random(seed + 3, c, -1.0f, 1.0f) : NULL;
    float *y[2], *stats[2], *dx[2], *dgb[2];
    for (int k = 0; k < 2; k++) {
        y[k] = malloc(sizeof(float) * (size_t)len);
        stats[k] = malloc(sizeof(float) * (size_t)c * 3); /* mean, invstd, var */
        dx[k] = tc_random(seed + 4, len, -0.5f, 0.5f);    /* non-zero: backward must accumulate */
        dgb[k] = tc_random(seed + 5, 2 * c, -0.5f, 0.5f);
    }
    mn_bn_forward_train(y[0], stats[0], stats[0] + c, stats[0] + 2 * c, x, gamma, beta, n, c, s, 1e-5f);
    mn_bn_forward_train_ref(y[1], stats[1], stats[1] + c, stats[1] + 2 * c, x, gamma, beta, n, c, s, 1e-5f);
    snprintf(what, sizeof what, "train forward y (%lld, %lld, %lld)", (long long)n, (long long)c, (long long)s);
    tc_expect_close(y[0], y[1], len, 1e-5f, 1e-5f, what);
    tc_expect_close(stats[0], stats[1], 3 * c, 1e-6f, 1e-5f, "train forward mean, invstd, var");

    /* both backward twins from the reference statistics */
    const float *mean = stats[1], *invstd = stats[1] + c;
    float *dg0 = affine ? dgb[0] : NULL, *db0 = dgb[0] + c, *dg1 = affine ? dgb[1] : NULL, *db1 = dgb[1] + c;
    mn_bn_backward_train(dx[0], dg0, db0, mean, invstd, dy, x, gamma, n, c, s);
    mn_bn_backward_train_ref(dx[1], dg1, db1, mean, invstd, dy, x, gamma, n, c, s);
    tc_expect_close(dx[0], dx[1], len, 1e-5f, 1e-4f, "train backward dx");
    tc_expect_close(dgb[0], dgb[1], 2 * c, 1e-4f, 1e-5f, "train backward dgamma, dbeta");

    mn_bn_forward_eval(y[0], x, mean, invstd, gamma, beta, n, c, s);
    mn_bn_forward_eval_ref(y[1], x, mean, invstd, gamma, beta, n, c, s);
    tc_expect_close(y[0], y[1], len, 1e-5f, 1e-5f, "eval forward y");
    mn_bn_backward_eval(dx[0], dg0, db0, mean, invstd, dy, x, gamma, n, c, s);
    mn_bn_backward_eval_ref(dx[1], dg1, db1, mean, invstd, dy, x, gamma, n, c, s);
    tc_expect_close(dx[0], dx[1], len, 1e-5f, 1e-4f, "eval backward dx");
    tc_expect_close(dgb[0], dgb[1], 2 * c, 1e-4f, 1e-5f, "eval backward dgamma, dbeta");

    /* NULL outputs are skipped */
    mn_bn_backward_train(NULL, NULL, db0, mean, invstd, dy, x, gamma, n, c, s);
    mn_bn_backward_train_ref(NULL, NULL, db1, mean, invstd, dy, x, gamma, n, c, s);
    tc_expect_close(db0, db1, c, 1e-4f, 1e-5f, "train backward dbeta only");

    for (int k = 0; k < 2; k++) {
        free(y[k]);
        free(stats[k]);
        free(dx[k]);
        free(dgb[k]);
    }
    free(x);
    free(dy);
    free(gamma);
    free(beta);
}

Test(bn, kernels_match_ref_4d) { kernels_case(3, 5, 42, true, 11); }
Test(bn, kernels_match_ref_2d) { kernels_case(7, 9, 1, true, 21); }
/* large enough for the kernels' multithreaded path */
Test(bn, kernels_match_ref_large_plane_no_affine) { kernels_case(4, 5, 3001, false, 31); }

/* ---- against PyTorch ---- */

/* Runs fixture case `kase` through mn_batch_norm and compares everything it stored. */
static void check_case(const char *kase, bool training)
{
    mn_tensor xt = get(kase, "x");
    const int64_t c = xt.shape[1], nx = mn_tensor_numel(&xt);
    const bool affine = has(kase, "gamma"), state = has(kase, "rm0");
    mn_var *x = tc_leaf(xt.data, xt.ndim, xt.shape, true);
    mn_var *gamma = NULL, *beta = NULL;
    int64_t cfull = c;
    if (affine) {
        mn_tensor g = get(kase, "gamma");
        cfull = g.shape[0];
        gamma = tc_leaf(g.data, 1, g.shape, true);
        beta = tc_leaf(get(kase, "beta").data, 1, g.shape, true);
    }
    float *rm = NULL, *rv = NULL;
    int64_t nb = 5;
    mn_bn_state st = {NULL, NULL, NULL};
    if (state) {
        mn_tensor r = get(kase, "rm0");
        cfull = r.shape[0];
        rm = malloc(sizeof(float) * (size_t)cfull);
        rv = malloc(sizeof(float) * (size_t)cfull);
        memcpy(rm, r.data, sizeof(float) * (size_t)cfull);
        memcpy(rv, get(kase, "rv0").data, sizeof(float) * (size_t)cfull);
        st = (mn_bn_state){rm, rv, &nb};
    }
    mn_bn_params p = {1e-5f, 0.1f, training, NULL};
    mn_tape t;
    mn_tape_init(&t, 0);
    /* a slimmable layer: the first C entries of full-width parameters */
    mn_var *gp = affine ? mn_var_prefix(&t, gamma, 0, c) : NULL;
    mn_var *bp = affine ? mn_var_prefix(&t, beta, 0, c) : NULL;
    mn_var *y = mn_batch_norm(&t, x, gp, bp, state ? &st : NULL, &p);
    cr_assert(y, "%s: %s", kase, mn_last_error());
    cr_assert(mn_tensor_same_shape(&y->val, &xt));
    char what[96];
    snprintf(what, sizeof what, "%s y", kase);
    tc_expect_close(y->val.data, get(kase, "y").data, nx, 1e-5f, 1e-5f, what);
    cr_assert_eq(mn_backward_grad(&t, y, get(kase, "dy").data), 0, "%s", mn_last_error());
    snprintf(what, sizeof what, "%s dx", kase);
    tc_expect_close(x->grad.data, get(kase, "dx").data, nx, 2e-5f, 1e-4f, what);
    if (affine) {
        snprintf(what, sizeof what, "%s dgamma", kase);
        tc_expect_close(gamma->grad.data, get(kase, "dgamma").data, cfull, 1e-4f, 1e-5f, what);
        snprintf(what, sizeof what, "%s dbeta", kase);
        tc_expect_close(beta->grad.data, get(kase, "dbeta").data, cfull, 1e-4f, 1e-5f, what);
    }
    if (state) {
        snprintf(what, sizeof what, "%s running_mean", kase);
        tc_expect_close(rm, get(kase, "rm1").data, cfull, 1e-6f, 1e-5f, what);
        snprintf(what, sizeof what, "%s running_var", kase);
        tc_expect_close(rv, get(kase, "rv1").data, cfull, 1e-6f, 1e-5f, what);
        cr_assert_eq(nb, training ? 6 : 5, "%s: num_batches %lld", kase, (long long)nb);
    }
    mn_tape_free(&t);
    tc_leaf_free(x);
    tc_leaf_free(gamma);
    tc_leaf_free(beta);
    free(rm);
    free(rv);
}

Test(bn, train_4d_slimmable_vs_torch) { check_case("train4d", true); }
Test(bn, train_2d_vs_torch) { check_case("train2d", true); }
Test(bn, train_no_affine_vs_torch) { check_case("noaffine", true); }
Test(bn, eval_slimmable_vs_torch) { check_case("eval", false); }

/* ---- cumulative averaging (BN calibration) ---- */

Test(bn, cumulative_average_over_three_batches)
{
    enum { N = 3, C = 4, H = 3, W = 3, CF = 6, S = H * W };
    /* trailing entries belong to wider layers: they must stay untouched */
    float rm[CF] = {0, 0, 0, 0, 7, 7}, rv[CF] = {1, 1, 1, 1, 7, 7};
    int64_t nb = 0;
    mn_bn_state st = {rm, rv, &nb};
    mn_bn_params p = {1e-5f, -1.0f, true, NULL};
    double want_mean[C] = {0}, want_var[C] = {0};
    const int64_t shape[4] = {N, C, H, W};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false); /* calibration runs without a tape */
    for (int b = 0; b < 3; b++) {
        float *x = tc_random(100 + b, N * C * S, -1.0f - b, 2.0f + 3.0f * b);
        for (int c = 0; c < C; c++) {
            double sum = 0, sq = 0;
            for (int n = 0; n < N; n++)
                for (int k = 0; k < S; k++) sum += x[(n * C + c) * S + k];
            double mu = sum / (N * S);
            for (int n = 0; n < N; n++)
                for (int k = 0; k < S; k++) sq += (x[(n * C + c) * S + k] - mu) * (x[(n * C + c) * S + k] - mu);
            want_mean[c] += mu / 3.0;
            want_var[c] += sq / (N * S - 1) / 3.0;
        }
        mn_tape_reset(&t);
        mn_var *y = mn_batch_norm(&t, mn_var_wrap(&t, mn_tensor_view(x, 4, shape)), NULL, NULL, &st, &p);
        cr_assert(y, "%s", mn_last_error());
        cr_assert_eq(nb, b + 1);
        free(x);
    }
    float wm[C], wv[C];
    for (int c = 0; c < C; c++) {
        wm[c] = (float)want_mean[c];
        wv[c] = (float)want_var[c];
    }
    tc_expect_close(rm, wm, C, 1e-6f, 1e-5f, "cumulative running_mean");
    tc_expect_close(rv, wv, C, 1e-6f, 1e-5f, "cumulative running_var");
    cr_assert(rm[4] == 7 && rm[5] == 7 && rv[4] == 7 && rv[5] == 7, "entries past C changed");
    mn_tape_free(&t);
}

/* ---- finite differences ----
 * Float forward passes with a step of 1e-2: the observed error was below 5e-5 + 2e-4 |g| at
 * these sizes, so the tolerances leave a margin of about 5x while still catching a wrong term. */

typedef struct gc_ctx {
    int64_t c;            /* channels used of the full-width gamma / beta */
    const mn_bn_state *st;
    mn_bn_params p;
    bool affine;
} gc_ctx;

static mn_var *bn_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    gc_ctx *g = ctx;
    mn_var *gamma = g->affine ? mn_var_prefix(t, in[1], 0, g->c) : NULL;
    mn_var *beta = g->affine ? mn_var_prefix(t, in[2], 0, g->c) : NULL;
    return mn_batch_norm(t, in[0], gamma, beta, g->st, &g->p);
}

static void gradcheck_case(int ndim, const int64_t *xshape, bool affine, bool training, float atol, float rtol)
{
    const int64_t c = xshape[1], cf = c + 1, nx = ndim == 4 ? xshape[0] * c * xshape[2] * xshape[3] : xshape[0] * c;
    float *x = tc_random(7, nx, -2.0f, 2.0f);
    float *g = tc_random(8, cf, 0.5f, 1.5f), *b = tc_random(9, cf, -1.0f, 1.0f);
    float rm[8], rv[8];
    for (int i = 0; i < 8; i++) {
        rm[i] = 0.3f * (float)i - 0.5f;
        rv[i] = 0.5f + 0.2f * (float)i;
    }
    mn_bn_state st = {rm, rv, NULL};
    mn_var *in[3] = {tc_leaf(x, ndim, xshape, true), tc_leaf(g, 1, &cf, true), tc_leaf(b, 1, &cf, true)};
    gc_ctx ctx = {c, training ? NULL : &st, {1e-5f, 0.1f, training, NULL}, affine};
    tc_gradcheck_opts o = {1e-2f, atol, rtol, 0};
    tc_gradcheck(bn_op, &ctx, in, affine ? 3 : 1, &o);
    /* the slice past C never reaches the output */
    if (affine) cr_assert(in[1]->grad.data[c] == 0 && in[2]->grad.data[c] == 0, "gradient past C");
    for (int i = 0; i < 3; i++) tc_leaf_free(in[i]);
    free(x);
    free(g);
    free(b);
}

Test(bn, gradcheck_train_4d)
{
    const int64_t shape[4] = {3, 3, 2, 2};
    gradcheck_case(4, shape, true, true, 3e-4f, 2e-3f);
}

Test(bn, gradcheck_train_2d)
{
    const int64_t shape[2] = {5, 3};
    gradcheck_case(2, shape, true, true, 3e-4f, 2e-3f);
}

Test(bn, gradcheck_train_no_affine)
{
    const int64_t shape[4] = {2, 2, 3, 2};
    gradcheck_case(4, shape, false, true, 3e-4f, 2e-3f);
}

Test(bn, gradcheck_eval)
{
    const int64_t shape[4] = {2, 3, 3, 2};
    gradcheck_case(4, shape, true, false, 1e-4f, 1e-3f);
}

/* ---- bad input ---- */

Test(bn, bad_input_is_rejected_with_a_message)
{
    const int64_t s4[4] = {2, 4, 3, 3}, s3[3] = {2, 4, 3}, s2[2] = {1, 4}, g5 = 5;
    float *buf = tc_random(1, 72, -1.0f, 1.0f);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_bn_params train = {1e-5f, 0.1f, true, NULL}, eval = {1e-5f, 0.1f, false, NULL};
    mn_var *x = mn_var_wrap(&t, mn_tensor_view(buf, 4, s4));

    cr_assert_null(mn_batch_norm(&t, x, NULL, NULL, NULL, &eval));
    cr_assert(strstr(mn_last_error(), "running_mean"), "message: %s", mn_last_error());
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);

    mn_var *g = mn_var_wrap(&t, mn_tensor_view(buf, 1, &g5));
    cr_assert_null(mn_batch_norm(&t, x, g, NULL, NULL, &train));
    cr_assert(strstr(mn_last_error(), "gamma") && strstr(mn_last_error(), "[5]") &&
                  strstr(mn_last_error(), "[2, 4, 3, 3]"),
              "message: %s", mn_last_error());
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);

    cr_assert_null(mn_batch_norm(&t, mn_var_wrap(&t, mn_tensor_view(buf, 3, s3)), NULL, NULL, NULL, &train));
    cr_assert(strstr(mn_last_error(), "[2, 4, 3]"), "message: %s", mn_last_error());

    cr_assert_null(mn_batch_norm(&t, mn_var_wrap(&t, mn_tensor_view(buf, 2, s2)), NULL, NULL, NULL, &train));
    cr_assert(strstr(mn_last_error(), "[1, 4]"), "message: %s", mn_last_error());

    float rm[4] = {0};
    mn_bn_state half = {rm, NULL, NULL};
    cr_assert_null(mn_batch_norm(&t, x, NULL, NULL, &half, &train));
    mn_bn_state no_count = {rm, rm, NULL};
    mn_bn_params cumulative = {1e-5f, -1.0f, true, NULL};
    cr_assert_null(mn_batch_norm(&t, x, NULL, NULL, &no_count, &cumulative));
    cr_assert(strstr(mn_last_error(), "num_batches"), "message: %s", mn_last_error());

    float bad_mean[4] = {0, 0, 0, 0}, bad_var[4] = {1, 1, -1, 1};
    mn_bn_state bad = {bad_mean, bad_var, NULL};
    cr_assert_null(mn_batch_norm(&t, x, NULL, NULL, &bad, &eval));
    cr_assert_eq(mn_last_error_code(), MN_ENUMERIC);
    cr_assert(strstr(mn_last_error(), "channel 2"), "message: %s", mn_last_error());

    cr_assert_null(mn_batch_norm(&t, NULL, NULL, NULL, NULL, &train));
    mn_tape_free(&t);
    free(buf);
}

/* ---- batch norm followed by ReLU / ReLU6 as one op (mn_batch_norm_act) ---- */

/* The fused kernels against their reference twins; gamma in [2, 4] so that many outputs pass
 * both ends of [0, 6]. Backward kernels get the same (reference) y, so the masks agree. */
static void act_kernels_case(int64_t n, int64_t c, int64_t s, float lo, float hi, bool affine, uint64_t seed)
{
    const int64_t len = n * c * s;
    char what[128];
    float *x = tc_random(seed, len, -3.0f, 5.0f), *dy = tc_random(seed + 1, len, -1.0f, 1.0f);
    float *gamma = affine ? tc_random(seed + 2, c, 2.0f, 4.0f) : NULL;
    float *beta = affine ? tc_random(seed + 3, c, -1.0f, 2.0f) : NULL;
    float *y[2], *stats[2], *dx[2], *dgb[2];
    for (int k = 0; k < 2; k++) {
        y[k] = malloc(sizeof(float) * (size_t)len);
        stats[k] = malloc(sizeof(float) * (size_t)c * 3);
        dx[k] = tc_random(seed + 4, len, -0.5f, 0.5f); /* non-zero: backward must accumulate */
        dgb[k] = tc_random(seed + 5, 2 * c, -0.5f, 0.5f);
    }
    snprintf(what, sizeof what, "(%lld, %lld, %lld) clamp [%g, %g] affine %d", (long long)n, (long long)c,
             (long long)s, (double)lo, (double)hi, affine);
    mn_bn_forward_train_clamp(y[0], stats[0], stats[0] + c, stats[0] + 2 * c, x, gamma, beta, lo, hi, n, c, s, 1e-5f);
    mn_bn_forward_train_clamp_ref(y[1], stats[1], stats[1] + c, stats[1] + 2 * c, x, gamma, beta, lo, hi, n, c, s,
                                  1e-5f);
    tc_expect_close(y[0], y[1], len, 1e-5f, 1e-5f, what);
    tc_expect_close(stats[0], stats[1], 3 * c, 1e-6f, 1e-5f, what);
    int64_t at_lo = 0, at_hi = 0;
    for (int64_t i = 0; i < len; i++) {
        at_lo += y[1][i] == lo;
        at_hi += y[1][i] == hi;
    }
    cr_assert(at_lo > 0 && (isinf(hi) || at_hi > 0), "%s: the clamp was not exercised", what);

    const float *mean = stats[1], *invstd = stats[1] + c;
    float *dg0 = affine ? dgb[0] : NULL, *db0 = dgb[0] + c, *dg1 = affine ? dgb[1] : NULL, *db1 = dgb[1] + c;
    mn_bn_backward_train_masked(dx[0], dg0, db0, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    mn_bn_backward_train_masked_ref(dx[1], dg1, db1, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    tc_expect_close(dx[0], dx[1], len, 1e-5f, 1e-4f, what);
    tc_expect_close(dgb[0], dgb[1], 2 * c, 1e-4f, 1e-5f, what);

    mn_bn_forward_eval_clamp(y[0], x, mean, invstd, gamma, beta, lo, hi, n, c, s);
    mn_bn_forward_eval_clamp_ref(y[1], x, mean, invstd, gamma, beta, lo, hi, n, c, s);
    tc_expect_close(y[0], y[1], len, 1e-5f, 1e-5f, what);
    mn_bn_backward_eval_masked(dx[0], dg0, db0, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    mn_bn_backward_eval_masked_ref(dx[1], dg1, db1, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    tc_expect_close(dx[0], dx[1], len, 1e-5f, 1e-4f, what);
    tc_expect_close(dgb[0], dgb[1], 2 * c, 1e-4f, 1e-5f, what);

    /* NULL outputs are skipped */
    mn_bn_backward_train_masked(NULL, NULL, db0, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    mn_bn_backward_train_masked_ref(NULL, NULL, db1, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    mn_bn_backward_eval_masked(NULL, NULL, db0, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    mn_bn_backward_eval_masked_ref(NULL, NULL, db1, mean, invstd, dy, y[1], x, gamma, lo, hi, n, c, s);
    tc_expect_close(db0, db1, c, 1e-4f, 1e-5f, what);
    for (int k = 0; k < 2; k++) free(y[k]), free(stats[k]), free(dx[k]), free(dgb[k]);
    free(x), free(dy), free(gamma), free(beta);
}

Test(bn_act, kernels_match_ref)
{
    act_kernels_case(3, 5, 42, 0.0f, 6.0f, true, 41);
    act_kernels_case(3, 5, 42, 0.0f, INFINITY, true, 51);
    act_kernels_case(7, 9, 1, 0.0f, 6.0f, true, 61);
    /* large enough for the multithreaded path */
    act_kernels_case(4, 5, 3001, 0.0f, 6.0f, true, 71);
    act_kernels_case(4, 5, 3001, 0.0f, INFINITY, false, 81);
}

Test(bn_act, reference_kernels_by_hand)
{
    /* one channel, x = {-1, 1, 3}: mean 1, biased var 8/3; gamma 3, beta 1 -> z = 1 + 3 (x - 1) / sqrt(8/3 + eps) */
    const float x[3] = {-1, 1, 3}, g = 3, b = 1;
    float y[3], mean, invstd, var;
    mn_bn_forward_train_clamp_ref(y, &mean, &invstd, &var, x, &g, &b, 0.0f, 2.0f, 1, 1, 3, 0.0f);
    const float want[3] = {0.0f, 1.0f, 2.0f}; /* z = -2.67, 1, 4.67 clamped to [0, 2] */
    tc_expect_close(y, want, 3, 0, 0, "clamped forward");
    /* only the middle element passes the mask: dz = {0, 1, 0} */
    const float dy[3] = {1, 1, 1};
    float dx[3] = {0, 0, 0}, dg = 0, db = 0;
    mn_bn_backward_train_masked_ref(dx, &dg, &db, &mean, &invstd, dy, y, x, &g, 0.0f, 2.0f, 1, 1, 3);
    /* dbeta = sum dz = 1; dgamma = sum dz xhat = 0 (xhat of the middle element is 0);
     * dx = g invstd (dz - 1/3) */
    const float want_dx[3] = {-(float)(3 * sqrt(3.0 / 8.0) / 3), (float)(3 * sqrt(3.0 / 8.0) * 2 / 3),
                              -(float)(3 * sqrt(3.0 / 8.0) / 3)};
    tc_expect_close(dx, want_dx, 3, 1e-6f, 1e-6f, "masked backward dx");
    cr_assert_float_eq(db, 1.0f, 1e-6f);
    cr_assert_float_eq(dg, 0.0f, 1e-6f);
}

/* mn_batch_norm_act against mn_batch_norm followed by mn_relu / mn_relu6: output, running
 * statistics, gradients of x, gamma and beta; one node instead of two. */
static void act_vs_composition(bool training, int act)
{
    const int64_t xs[4] = {4, 6, 7, 5}, cf = 8, nx = 4 * 6 * 35;
    float *xv = tc_random(101, nx, -2.0f, 3.0f), *gv = tc_random(102, cf, 1.5f, 4.0f);
    float *bv = tc_random(103, cf, -1.0f, 2.0f), *dy = tc_random(104, nx, -1.0f, 1.0f);
    float rm[2][8], rv[2][8], *out[2], *grads[2][3];
    int64_t nb[2] = {0, 0};
    int nodes[2];
    for (int fused = 0; fused < 2; fused++) {
        for (int i = 0; i < 8; i++) {
            rm[fused][i] = 0.1f * (float)i - 0.3f;
            rv[fused][i] = 0.6f + 0.3f * (float)i;
        }
        mn_bn_state st = {rm[fused], rv[fused], &nb[fused]};
        mn_var *x = tc_leaf(xv, 4, xs, true), *g = tc_leaf(gv, 1, &cf, true), *b = tc_leaf(bv, 1, &cf, true);
        mn_tape t;
        mn_tape_init(&t, 0);
        const mn_bn_params p = {1e-5f, 0.1f, training, NULL};
        mn_var *gs = mn_var_prefix(&t, g, 0, 6), *bs = mn_var_prefix(&t, b, 0, 6), *y;
        if (fused) {
            y = mn_batch_norm_act(&t, x, gs, bs, &st, &p, act);
        } else {
            y = mn_batch_norm(&t, x, gs, bs, &st, &p);
            y = act == 6 ? mn_relu6(&t, y) : mn_relu(&t, y);
        }
        cr_assert_not_null(y, "%s", mn_last_error());
        nodes[fused] = t.n_nodes;
        out[fused] = malloc(sizeof(float) * (size_t)nx);
        memcpy(out[fused], y->val.data, sizeof(float) * (size_t)nx);
        cr_assert_eq(mn_backward_grad(&t, y, dy), 0, "%s", mn_last_error());
        mn_var *v[3] = {x, g, b};
        for (int i = 0; i < 3; i++) {
            int64_t n = mn_tensor_numel(&v[i]->val);
            grads[fused][i] = malloc(sizeof(float) * (size_t)n);
            memcpy(grads[fused][i], v[i]->grad.data, sizeof(float) * (size_t)n);
        }
        mn_tape_free(&t);
        tc_leaf_free(x), tc_leaf_free(g), tc_leaf_free(b);
    }
    char what[96];
    snprintf(what, sizeof what, "batch_norm_act training %d act %d", training, act);
    cr_assert_eq(nodes[0], 2, "%s: the composition records 2 nodes", what);
    cr_assert_eq(nodes[1], 1, "%s: the fused op records 1 node, not %d", what, nodes[1]);
    tc_expect_close(out[1], out[0], nx, 1e-6f, 1e-6f, what);
    int64_t clamped = 0;
    for (int64_t i = 0; i < nx; i++) clamped += out[0][i] == 0.0f || (act == 6 && out[0][i] == 6.0f);
    cr_assert(clamped > 0 && clamped < nx, "%s: the inputs should cover both sides of the kinks", what);
    tc_expect_close(grads[1][0], grads[0][0], nx, 1e-5f, 1e-5f, what);
    tc_expect_close(grads[1][1], grads[0][1], cf, 1e-5f, 1e-5f, what);
    tc_expect_close(grads[1][2], grads[0][2], cf, 1e-5f, 1e-5f, what);
    tc_expect_close(rm[1], rm[0], 8, 0, 0, "running_mean");
    tc_expect_close(rv[1], rv[0], 8, 0, 0, "running_var");
    cr_assert_eq(nb[0], nb[1]);
    for (int k = 0; k < 2; k++) {
        free(out[k]);
        for (int i = 0; i < 3; i++) free(grads[k][i]);
    }
    free(xv), free(gv), free(bv), free(dy);
}

Test(bn_act, same_as_batch_norm_then_activation)
{
    for (int training = 0; training < 2; training++) {
        act_vs_composition(training, 6);
        act_vs_composition(training, 1);
    }
}

typedef struct act_gc_ctx {
    const mn_bn_state *st;
    mn_bn_params p;
    int act;
} act_gc_ctx;

static mn_var *bn_act_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    act_gc_ctx *g = ctx;
    return mn_batch_norm_act(t, in[0], in[1], in[2], g->st, &g->p, g->act);
}

/* Finite differences through the fused op. Inputs are drawn until every pre-activation is at
 * least 0.15 from the kinks at 0 and 6 (a step of 1e-2 moves it by less than 0.05), and some
 * lie on each side of both kinks. */
static void act_gradcheck(bool training)
{
    const int64_t xs[4] = {3, 3, 2, 2}, c = 3, nx = 36;
    float rm[3] = {0.2f, -0.3f, 0.1f}, rv[3] = {0.8f, 1.3f, 0.6f};
    mn_bn_state st = {rm, rv, NULL};
    for (uint64_t seed = 1; seed < 400; seed++) {
        float *x = tc_random(seed * 3, nx, -2.0f, 2.0f), *g = tc_random(seed * 3 + 1, c, 2.0f, 4.5f);
        float *b = tc_random(seed * 3 + 2, c, -1.0f, 3.0f), z[36], mean[3], invstd[3], var[3];
        if (training) {
            mn_bn_forward_train_ref(z, mean, invstd, var, x, g, b, 3, 3, 4, 1e-5f);
        } else {
            for (int i = 0; i < 3; i++) invstd[i] = 1.0f / sqrtf(rv[i] + 1e-5f);
            mn_bn_forward_eval_ref(z, x, rm, invstd, g, b, 3, 3, 4);
        }
        bool clear = true;
        int below = 0, above = 0;
        for (int i = 0; i < nx; i++) {
            clear = clear && fabsf(z[i]) > 0.15f && fabsf(z[i] - 6.0f) > 0.15f;
            below += z[i] < 0;
            above += z[i] > 6;
        }
        if (!clear || below == 0 || above == 0) {
            free(x), free(g), free(b);
            continue;
        }
        mn_var *in[3] = {tc_leaf(x, 4, xs, true), tc_leaf(g, 1, &c, true), tc_leaf(b, 1, &c, true)};
        act_gc_ctx ctx = {training ? NULL : &st, {1e-5f, 0.1f, training, NULL}, 6};
        tc_gradcheck_opts o = {1e-2f, 3e-4f, 2e-3f, 0};
        tc_gradcheck(bn_act_op, &ctx, in, 3, &o);
        ctx.act = 1;
        tc_gradcheck(bn_act_op, &ctx, in, 3, &o);
        for (int i = 0; i < 3; i++) tc_leaf_free(in[i]);
        free(x), free(g), free(b);
        return;
    }
    cr_assert_fail("no seed gave pre-activations clear of the kinks");
}

Test(bn_act, gradcheck_train) { act_gradcheck(true); }
Test(bn_act, gradcheck_eval) { act_gradcheck(false); }

Test(bn_act, bad_input)
{
    const int64_t s4[4] = {2, 4, 3, 3}, g5 = 5;
    float *buf = tc_random(1, 72, -1.0f, 1.0f);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_bn_params train = {1e-5f, 0.1f, true, NULL}, eval = {1e-5f, 0.1f, false, NULL};
    mn_var *x = mn_var_wrap(&t, mn_tensor_view(buf, 4, s4));
    cr_assert_null(mn_batch_norm_act(&t, x, NULL, NULL, NULL, &train, 3));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "activation 3"), "message: %s", mn_last_error());
    cr_assert_null(mn_batch_norm_act(&t, x, NULL, NULL, NULL, &eval, 6));
    cr_assert(strstr(mn_last_error(), "running_mean"), "message: %s", mn_last_error());
    mn_var *g = mn_var_wrap(&t, mn_tensor_view(buf, 1, &g5));
    cr_assert_null(mn_batch_norm_act(&t, x, g, NULL, NULL, &train, 1));
    cr_assert(strstr(mn_last_error(), "gamma") && strstr(mn_last_error(), "[5]"), "message: %s", mn_last_error());
    cr_assert_null(mn_batch_norm_act(&t, NULL, NULL, NULL, NULL, &train, 6));
    /* act 0 is plain batch norm */
    mn_var *y = mn_batch_norm_act(&t, x, NULL, NULL, NULL, &train, 0);
    cr_assert_not_null(y, "%s", mn_last_error());
    int64_t neg = 0;
    for (int i = 0; i < 72; i++) neg += y->val.data[i] < 0;
    cr_assert_gt(neg, 0, "act 0 must not clamp");
    mn_tape_free(&t);
    free(buf);
}
