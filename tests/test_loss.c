/* Losses: values and gradients against PyTorch (tools/fixtures/gen_loss.py), finite
 * differences, the optimised kernels against their reference twins, and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/loss.h"
#include "mn/ops.h"

#define IGNORE 255

static mn_safetensors fx;

static void load(void) { tc_fixture("loss", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(loss, .init = load, .fini = unload);

static mn_tensor get(const char *kase, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return tc_get(&fx, name);
}

static const int32_t *get_i32(const char *kase, const char *what, int64_t want)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    const mn_st_entry *e = mn_st_find(&fx, name);
    cr_assert(e && e->dtype == MN_ST_I32, "fixture tensor %s missing or not int32", name);
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    cr_assert_eq(n, want, "%s has %lld elements, expected %lld", name, (long long)n, (long long)want);
    return e->data;
}

static mn_var *leaf_of(mn_tensor v, bool grad) { return tc_leaf(v.data, v.ndim, v.shape, grad); }

static void all_finite(const float *v, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert(isfinite(v[i]), "%s: element %lld is %g", what, (long long)i, (double)v[i]);
}

/* ---- against PyTorch ---- */

static void check_ce(const char *kase, float loss_atol)
{
    mn_tensor xv = get(kase, "x");
    int64_t positions = mn_tensor_numel(&xv) / xv.shape[1];
    const int32_t *target = get_i32(kase, "target", positions);
    mn_var *x = leaf_of(xv, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *l = mn_cross_entropy(&t, x, target, IGNORE);
    cr_assert(l, "%s: %s", kase, mn_last_error());
    cr_assert_eq(mn_tensor_numel(&l->val), 1);
    cr_assert_eq(mn_backward(&t, l), 0, "%s", mn_last_error());
    tc_expect_close(l->val.data, get(kase, "loss").data, 1, loss_atol, 1e-5f, kase);
    all_finite(x->grad.data, mn_tensor_numel(&xv), kase);
    tc_expect_close(x->grad.data, get(kase, "dx").data, mn_tensor_numel(&xv), 1e-6f, 1e-4f, kase);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(loss, ce_2d_vs_torch) { check_ce("ce2d", 1e-6f); }
Test(loss, ce_4d_vs_torch) { check_ce("ce4d", 1e-6f); }
Test(loss, ce_large_logits_vs_torch) { check_ce("ce_big", 1e-3f); }

static void check_kl(const char *kase, float loss_atol)
{
    mn_tensor xv = get(kase, "x");
    mn_var *x = leaf_of(xv, true), *p = leaf_of(get(kase, "p"), false);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *l = mn_kl_div(&t, x, p);
    cr_assert(l, "%s: %s", kase, mn_last_error());
    cr_assert_eq(mn_backward(&t, l), 0, "%s", mn_last_error());
    tc_expect_close(l->val.data, get(kase, "loss").data, 1, loss_atol, 1e-5f, kase);
    all_finite(x->grad.data, mn_tensor_numel(&xv), kase);
    tc_expect_close(x->grad.data, get(kase, "dx").data, mn_tensor_numel(&xv), 1e-6f, 1e-4f, kase);
    cr_assert_null(p->grad.data, "the teacher distribution must get no gradient");
    mn_tape_free(&t);
    tc_leaf_free(x);
    tc_leaf_free(p);
}

Test(loss, kl_2d_vs_torch) { check_kl("kl2d", 1e-6f); }
Test(loss, kl_4d_vs_torch) { check_kl("kl4d", 1e-6f); }
Test(loss, kl_large_logits_vs_torch) { check_kl("kl_big", 1e-2f); }

typedef mn_var *(*pair_fn)(mn_tape *t, mn_var *a, mn_var *b);

static mn_var *bce_mean(mn_tape *t, mn_var *a, mn_var *b) { return mn_bce_with_logits(t, a, b, MN_REDUCE_MEAN); }
static mn_var *bce_sum(mn_tape *t, mn_var *a, mn_var *b) { return mn_bce_with_logits(t, a, b, MN_REDUCE_SUM); }
static mn_var *sl1_b1_mean(mn_tape *t, mn_var *a, mn_var *b) { return mn_smooth_l1(t, a, b, 1.0f, MN_REDUCE_MEAN); }
static mn_var *sl1_b05_sum(mn_tape *t, mn_var *a, mn_var *b) { return mn_smooth_l1(t, a, b, 0.5f, MN_REDUCE_SUM); }
static mn_var *sl1_b0_mean(mn_tape *t, mn_var *a, mn_var *b) { return mn_smooth_l1(t, a, b, 0.0f, MN_REDUCE_MEAN); }
static mn_var *l1_mean(mn_tape *t, mn_var *a, mn_var *b) { return mn_l1(t, a, b, MN_REDUCE_MEAN); }
static mn_var *l1_sum(mn_tape *t, mn_var *a, mn_var *b) { return mn_l1(t, a, b, MN_REDUCE_SUM); }

static void check_pair(const char *kase, pair_fn fn)
{
    mn_tensor xv = get(kase, "x");
    int64_t n = mn_tensor_numel(&xv);
    mn_var *a = leaf_of(xv, true), *b = leaf_of(get(kase, "t"), true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *l = fn(&t, a, b);
    cr_assert(l, "%s: %s", kase, mn_last_error());
    cr_assert_eq(mn_backward(&t, l), 0, "%s", mn_last_error());
    tc_expect_close(l->val.data, get(kase, "loss").data, 1, 1e-5f, 1e-5f, kase);
    tc_expect_close(a->grad.data, get(kase, "dx").data, n, 1e-6f, 1e-4f, kase);
    tc_expect_close(b->grad.data, get(kase, "dt").data, n, 1e-6f, 1e-4f, kase);
    mn_tape_free(&t);
    tc_leaf_free(a);
    tc_leaf_free(b);
}

Test(loss, bce_mean_vs_torch) { check_pair("bce_mean", bce_mean); }
Test(loss, bce_sum_vs_torch) { check_pair("bce_sum", bce_sum); }
Test(loss, smooth_l1_beta1_mean_vs_torch) { check_pair("sl1_b1_mean", sl1_b1_mean); }
Test(loss, smooth_l1_beta05_sum_vs_torch) { check_pair("sl1_b05_sum", sl1_b05_sum); }
Test(loss, smooth_l1_beta0_is_l1_vs_torch) { check_pair("sl1_b0_mean", sl1_b0_mean); }
Test(loss, l1_mean_vs_torch) { check_pair("l1_mean", l1_mean); }
Test(loss, l1_sum_vs_torch) { check_pair("l1_sum", l1_sum); }

static void check_softmax(const char *kase)
{
    mn_tensor xv = get(kase, "x");
    mn_var *x = leaf_of(xv, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_softmax(&t, x);
    cr_assert(y, "%s", mn_last_error());
    cr_assert(mn_tensor_same_shape(&y->val, &xv));
    tc_expect_close(y->val.data, get(kase, "y").data, mn_tensor_numel(&xv), 1e-7f, 1e-5f, kase);
    /* documented: no gradient node, even for an input that requires one */
    cr_assert_eq(t.n_nodes, 0);
    cr_assert(!y->requires_grad);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(loss, softmax_4d_vs_torch) { check_softmax("softmax4d"); }
Test(loss, softmax_2d_vs_torch) { check_softmax("softmax2d"); }

/* ---- special cases ---- */

Test(loss, ce_all_ignored_is_zero_with_zero_gradient)
{
    int64_t shape[4] = {2, 3, 2, 2};
    float *xv = tc_random(5, 24, -3.0f, 3.0f);
    mn_var *x = tc_leaf(xv, 4, shape, true);
    int32_t target[8];
    for (int i = 0; i < 8; i++) target[i] = -100;
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *l = mn_cross_entropy(&t, x, target, -100);
    cr_assert(l, "%s", mn_last_error());
    cr_assert_eq(l->val.data[0], 0.0f);
    for (int i = 0; i < 24; i++) x->grad.data[i] = 0.5f; /* backward must leave these alone */
    cr_assert_eq(mn_backward(&t, l), 0, "%s", mn_last_error());
    for (int i = 0; i < 24; i++) cr_assert_eq(x->grad.data[i], 0.5f, "element %d changed", i);
    mn_tape_free(&t);
    tc_leaf_free(x);
    free(xv);
}

Test(loss, ce_ignored_positions_get_no_gradient_and_mean_counts_valid_only)
{
    /* two positions, one ignored: the loss equals the single valid position's loss */
    int64_t shape[2] = {2, 3};
    float xv[6] = {1.0f, 2.0f, 0.5f, -1.0f, 4.0f, 0.0f};
    mn_var *x = tc_leaf(xv, 2, shape, true);
    int32_t target[2] = {2, 7};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *l = mn_cross_entropy(&t, x, target, 7);
    cr_assert(l, "%s", mn_last_error());
    double lse = log(exp(1.0) + exp(2.0) + exp(0.5));
    float want = (float)(lse - 0.5);
    tc_expect_close(l->val.data, &want, 1, 1e-6f, 1e-6f, "loss");
    cr_assert_eq(mn_backward(&t, l), 0);
    for (int k = 0; k < 3; k++) {
        float g = (float)(exp(xv[k] - lse) - (k == 2));
        tc_expect_close(&x->grad.data[k], &g, 1, 1e-6f, 1e-5f, "valid row gradient");
        cr_assert_eq(x->grad.data[3 + k], 0.0f, "ignored row got a gradient");
    }
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(loss, ce_bad_target_names_value_and_position)
{
    int64_t shape[4] = {2, 3, 2, 4};
    mn_var *x = tc_leaf(NULL, 4, shape, true);
    memset(x->val.data, 0, sizeof(float) * 48);
    int32_t target[16] = {0};
    target[13] = 3; /* n = 1, h = 1, w = 1 */
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_clear_error();
    cr_assert_null(mn_cross_entropy(&t, x, target, 255));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "target 3"), "message: %s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "n=1, h=1, w=1"), "message: %s", mn_last_error());

    target[13] = 0;
    target[2] = -1;
    cr_assert_null(mn_cross_entropy(&t, x, target, 255));
    cr_assert(strstr(mn_last_error(), "target -1"), "message: %s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "n=0, h=0, w=2"), "message: %s", mn_last_error());
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(loss, shape_errors)
{
    int64_t s3[3] = {2, 3, 4}, s2[2] = {2, 3}, s2b[2] = {3, 2};
    mn_var *x3 = tc_leaf(NULL, 3, s3, false), *a = tc_leaf(NULL, 2, s2, false), *b = tc_leaf(NULL, 2, s2b, false);
    memset(a->val.data, 0, sizeof(float) * 6);
    memset(b->val.data, 0, sizeof(float) * 6);
    int32_t target[8] = {0};
    mn_tape t;
    mn_tape_init(&t, 0);
    cr_assert_null(mn_cross_entropy(&t, x3, target, 255));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert_null(mn_kl_div(&t, a, b));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert_null(mn_smooth_l1(&t, a, b, 1.0f, MN_REDUCE_MEAN));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert_null(mn_smooth_l1(&t, a, a, -1.0f, MN_REDUCE_MEAN));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);
    cr_assert_null(mn_l1(&t, NULL, a, MN_REDUCE_SUM), "a NULL input must propagate");
    mn_tape_free(&t);
    tc_leaf_free(x3);
    tc_leaf_free(a);
    tc_leaf_free(b);
}

Test(loss, ce_on_channel_prefix_of_wider_logits)
{
    /* logits as the first 3 of 5 channels: the gradient lands in that slice only */
    int64_t wide[2] = {4, 5};
    float *v = tc_random(8, 20, -2.0f, 2.0f);
    mn_var *full = tc_leaf(v, 2, wide, true);
    int32_t target[4] = {0, 2, 1, 2};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x = mn_var_prefix(&t, full, 1, 3);
    mn_var *l = mn_cross_entropy(&t, x, target, 255);
    cr_assert(l, "%s", mn_last_error());
    cr_assert_eq(mn_backward(&t, l), 0);
    double want = 0;
    for (int b = 0; b < 4; b++) {
        double s = 0;
        for (int k = 0; k < 3; k++) s += exp(v[b * 5 + k]);
        want += log(s) - v[b * 5 + target[b]];
        for (int k = 0; k < 5; k++) {
            float g = k < 3 ? (float)((exp(v[b * 5 + k]) / s - (k == target[b])) / 4) : 0.0f;
            tc_expect_close(&full->grad.data[b * 5 + k], &g, 1, 1e-6f, 1e-5f, "prefix gradient");
        }
    }
    float wl = (float)(want / 4);
    tc_expect_close(l->val.data, &wl, 1, 1e-6f, 1e-6f, "prefix loss");
    mn_tape_free(&t);
    tc_leaf_free(full);
    free(v);
}

/* ---- finite differences ---- */

typedef struct ce_gc {
    const int32_t *target;
} ce_gc;

static mn_var *op_ce(mn_tape *t, mn_var *const *in, void *ctx)
{
    return mn_cross_entropy(t, in[0], ((ce_gc *)ctx)->target, IGNORE);
}
static mn_var *op_kl(mn_tape *t, mn_var *const *in, void *ctx) { return mn_kl_div(t, in[0], in[1]); }
static mn_var *op_bce(mn_tape *t, mn_var *const *in, void *ctx)
{
    return mn_bce_with_logits(t, in[0], in[1], MN_REDUCE_MEAN);
}
static mn_var *op_sl1(mn_tape *t, mn_var *const *in, void *ctx)
{
    return mn_smooth_l1(t, in[0], in[1], *(float *)ctx, MN_REDUCE_SUM);
}
static mn_var *op_l1(mn_tape *t, mn_var *const *in, void *ctx) { return mn_l1(t, in[0], in[1], MN_REDUCE_MEAN); }

Test(loss, ce_gradcheck)
{
    int64_t shape[4] = {2, 4, 3, 3};
    float *v = tc_random(11, 72, -2.0f, 2.0f);
    mn_var *x = tc_leaf(v, 4, shape, true);
    int32_t target[18];
    for (int i = 0; i < 18; i++) target[i] = i % 5 == 4 ? IGNORE : i % 4;
    ce_gc ctx = {target};
    tc_gradcheck_opts o = {.eps = 1e-2f, .atol = 2e-4f, .rtol = 1e-2f, .max_checks = 0};
    tc_gradcheck(op_ce, &ctx, &x, 1, &o);
    tc_leaf_free(x);
    free(v);
}

Test(loss, kl_gradcheck)
{
    int64_t shape[4] = {2, 4, 3, 2};
    float *v = tc_random(12, 48, -2.0f, 2.0f), *q = tc_random(13, 48, 0.0f, 1.0f);
    /* normalise q per position, with one exact zero */
    q[5] = 0.0f;
    for (int b = 0; b < 2; b++)
        for (int p = 0; p < 6; p++) {
            float s = 0;
            for (int k = 0; k < 4; k++) s += q[(b * 4 + k) * 6 + p];
            for (int k = 0; k < 4; k++) q[(b * 4 + k) * 6 + p] /= s;
        }
    mn_var *in[2] = {tc_leaf(v, 4, shape, true), tc_leaf(q, 4, shape, false)};
    tc_gradcheck_opts o = {.eps = 1e-2f, .atol = 2e-4f, .rtol = 1e-2f, .max_checks = 0};
    tc_gradcheck(op_kl, NULL, in, 2, &o);
    tc_leaf_free(in[0]);
    tc_leaf_free(in[1]);
    free(v);
    free(q);
}

Test(loss, bce_gradcheck_logits_and_targets)
{
    int64_t shape[2] = {3, 5};
    float *v = tc_random(14, 15, -4.0f, 4.0f), *q = tc_random(15, 15, 0.0f, 1.0f);
    mn_var *in[2] = {tc_leaf(v, 2, shape, true), tc_leaf(q, 2, shape, true)};
    tc_gradcheck_opts o = {.eps = 1e-2f, .atol = 1e-4f, .rtol = 1e-2f, .max_checks = 0};
    tc_gradcheck(op_bce, NULL, in, 2, &o);
    tc_leaf_free(in[0]);
    tc_leaf_free(in[1]);
    free(v);
    free(q);
}

/* pred - target stays at least 0.05 away from 0 and from +-beta, so eps never crosses a kink */
static void smooth_inputs(float *a, const float *b, int n, float beta)
{
    for (int i = 0; i < n; i++) {
        float d = a[i] - b[i];
        if (fabsf(d) < 0.05f) a[i] += 0.1f;
        d = a[i] - b[i];
        if (fabsf(fabsf(d) - beta) < 0.05f) a[i] += 0.1f;
    }
}

Test(loss, smooth_l1_gradcheck)
{
    int64_t shape[2] = {4, 6};
    for (int j = 0; j < 2; j++) {
        float beta = j ? 0.5f : 1.0f;
        float *a = tc_random(16 + j, 24, -2.0f, 2.0f), *b = tc_random(18 + j, 24, -2.0f, 2.0f);
        smooth_inputs(a, b, 24, beta);
        mn_var *in[2] = {tc_leaf(a, 2, shape, true), tc_leaf(b, 2, shape, true)};
        tc_gradcheck_opts o = {.eps = 1e-3f, .atol = 1e-3f, .rtol = 1e-2f, .max_checks = 0};
        tc_gradcheck(op_sl1, &beta, in, 2, &o);
        tc_leaf_free(in[0]);
        tc_leaf_free(in[1]);
        free(a);
        free(b);
    }
}

Test(loss, l1_gradcheck)
{
    int64_t shape[2] = {4, 6};
    float *a = tc_random(20, 24, -2.0f, 2.0f), *b = tc_random(21, 24, -2.0f, 2.0f);
    smooth_inputs(a, b, 24, 0.0f);
    mn_var *in[2] = {tc_leaf(a, 2, shape, true), tc_leaf(b, 2, shape, true)};
    tc_gradcheck_opts o = {.eps = 1e-3f, .atol = 1e-4f, .rtol = 1e-2f, .max_checks = 0};
    tc_gradcheck(op_l1, NULL, in, 2, &o);
    tc_leaf_free(in[0]);
    tc_leaf_free(in[1]);
    free(a);
    free(b);
}

/* ---- optimised kernels against their reference twins ---- */

/* Big enough for the parallel path (> 32768 logits) and for a partial last tile (899 = 3 * 256 + 131). */
static void twins_for(int64_t n, int64_t c, int64_t hw, uint64_t seed)
{
    int64_t m = n * c * hw, np = n * hw;
    float *x = tc_random(seed, m, -20.0f, 20.0f);
    float *q = tc_random(seed + 1, m, 0.0f, 1.0f);
    for (int64_t i = 0; i < m; i += 7) q[i] = 0.0f;
    int32_t *target = malloc(sizeof(int32_t) * (size_t)np);
    float *u = tc_random(seed + 2, np, 0.0f, 1.0f);
    for (int64_t i = 0; i < np; i++) target[i] = u[i] < 0.1f ? IGNORE : (int32_t)(u[i] * 1000) % (int32_t)c;

    float *a1 = malloc(sizeof(float) * (size_t)m), *a2 = malloc(sizeof(float) * (size_t)m);
    float *l1 = malloc(sizeof(float) * (size_t)np), *l2 = malloc(sizeof(float) * (size_t)np);
    float *s1 = malloc(sizeof(float) * (size_t)np), *s2 = malloc(sizeof(float) * (size_t)np);

    mn_logsumexp_c(s1, x, n, c, hw);
    mn_logsumexp_c_ref(s2, x, n, c, hw);
    tc_expect_close(s1, s2, np, 1e-5f, 1e-6f, "logsumexp");

    mn_softmax_c(a1, x, n, c, hw);
    mn_softmax_c_ref(a2, x, n, c, hw);
    tc_expect_close(a1, a2, m, 1e-7f, 1e-5f, "softmax");

    mn_ce_forward(l1, s1, x, target, IGNORE, n, c, hw);
    mn_ce_forward_ref(l2, s2, x, target, IGNORE, n, c, hw);
    tc_expect_close(l1, l2, np, 1e-5f, 1e-5f, "ce forward");
    /* gradients accumulate: start both from the same non-zero values */
    for (int64_t i = 0; i < m; i++) a1[i] = a2[i] = x[i] * 0.01f;
    mn_ce_backward(a1, s2, x, target, IGNORE, 0.37f, n, c, hw);
    mn_ce_backward_ref(a2, s2, x, target, IGNORE, 0.37f, n, c, hw);
    tc_expect_close(a1, a2, m, 1e-6f, 1e-5f, "ce backward");

    mn_kl_forward(l1, s1, x, q, n, c, hw);
    mn_kl_forward_ref(l2, s2, x, q, n, c, hw);
    tc_expect_close(l1, l2, np, 1e-4f, 1e-5f, "kl forward");
    tc_expect_close(s1, s2, np, 1e-5f, 1e-6f, "kl saved lse");
    for (int64_t i = 0; i < m; i++) a1[i] = a2[i] = x[i] * 0.01f;
    mn_kl_backward(a1, s2, x, q, 0.37f, n, c, hw);
    mn_kl_backward_ref(a2, s2, x, q, 0.37f, n, c, hw);
    tc_expect_close(a1, a2, m, 1e-6f, 1e-5f, "kl backward");

    free(x), free(q), free(target), free(u), free(a1), free(a2), free(l1), free(l2), free(s1), free(s2);
}

Test(loss, kernels_match_reference_dense) { twins_for(3, 21, 29 * 31, 100); }
Test(loss, kernels_match_reference_rows) { twins_for(1500, 30, 1, 200); }

Test(loss, strided_leaf_gradient_view_receives_the_gradient)
{
    /* a leaf whose value is contiguous but whose gradient is a slice of a wider buffer */
    int64_t shape[2] = {4, 3}, wide[2] = {4, 5};
    float *v = tc_random(30, 12, -2.0f, 2.0f);
    int32_t target[4] = {1, 0, 2, 2};
    mn_var *dense = tc_leaf(v, 2, shape, true), *strided = tc_leaf(v, 2, shape, true);
    float *gbuf = calloc(20, sizeof(float));
    for (int i = 0; i < 20; i++) gbuf[i] = 1.0f; /* gradients accumulate onto this */
    free(strided->grad.data);
    strided->grad = mn_tensor_narrow(mn_tensor_view(gbuf, 2, wide), 1, 0, 3);
    mn_tape t;
    mn_tape_init(&t, 0);
    cr_assert_eq(mn_backward(&t, mn_cross_entropy(&t, dense, target, IGNORE)), 0, "%s", mn_last_error());
    mn_tape_reset(&t);
    cr_assert_eq(mn_backward(&t, mn_cross_entropy(&t, strided, target, IGNORE)), 0, "%s", mn_last_error());
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 5; k++) {
            float want = 1.0f + (k < 3 ? dense->grad.data[b * 3 + k] : 0.0f);
            tc_expect_close(&gbuf[b * 5 + k], &want, 1, 1e-7f, 1e-6f, "strided gradient");
        }
    strided->grad.data = NULL;
    mn_tape_free(&t);
    tc_leaf_free(dense);
    tc_leaf_free(strided);
    free(gbuf);
    free(v);
}
