/* ReLU, ReLU6, add, scale and concat: kernels against their reference twins, values and
 * gradients against PyTorch (tools/fixtures/gen_eltwise.py), finite differences, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/eltwise.h"
#include "mn/ops.h"

static mn_safetensors fx;

static void load(void) { tc_fixture("eltwise", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(eltwise, .init = load, .fini = unload);

static mn_tensor get(const char *kase, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return tc_get(&fx, name);
}

static mn_var *leaf_of(mn_tensor v, bool grad) { return tc_leaf(v.data, v.ndim, v.shape, grad); }

/* ---- optimised kernels against their reference twins ---- */

Test(eltwise, flat_kernels_match_ref)
{
    const int64_t n = 3 * 16384 + 37; /* several chunks and a ragged tail */
    float *x = tc_random(1, n, -3.0f, 9.0f), *b = tc_random(2, n, -1.0f, 1.0f), *dy = tc_random(3, n, -1.0f, 1.0f);
    x[0] = 0.0f;
    x[1] = 6.0f;
    x[n - 1] = -0.0f;
    float *y0 = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n);
    float *d0 = tc_random(4, n, -1.0f, 1.0f), *d1 = malloc(sizeof(float) * n);
    memcpy(d1, d0, sizeof(float) * n);

    mn_relu_forward(y0, x, n);
    mn_relu_forward_ref(y1, x, n);
    tc_expect_close(y0, y1, n, 0.0f, 0.0f, "relu forward");
    mn_relu_backward(d0, dy, x, n);
    mn_relu_backward_ref(d1, dy, x, n);
    tc_expect_close(d0, d1, n, 0.0f, 0.0f, "relu backward");

    mn_relu6_forward(y0, x, n);
    mn_relu6_forward_ref(y1, x, n);
    tc_expect_close(y0, y1, n, 0.0f, 0.0f, "relu6 forward");
    mn_relu6_backward(d0, dy, x, n);
    mn_relu6_backward_ref(d1, dy, x, n);
    tc_expect_close(d0, d1, n, 0.0f, 0.0f, "relu6 backward");

    mn_add_forward(y0, x, b, n);
    mn_add_forward_ref(y1, x, b, n);
    tc_expect_close(y0, y1, n, 0.0f, 0.0f, "add forward");

    mn_scale_forward(y0, x, -1.7f, n);
    mn_scale_forward_ref(y1, x, -1.7f, n);
    tc_expect_close(y0, y1, n, 0.0f, 0.0f, "scale forward");
    mn_scale_backward(d0, dy, 0.3f, n);
    mn_scale_backward_ref(d1, dy, 0.3f, n);
    tc_expect_close(d0, d1, n, 1e-6f, 0.0f, "scale backward");

    free(x);
    free(b);
    free(dy);
    free(y0);
    free(y1);
    free(d0);
    free(d1);
}

Test(eltwise, concat_kernels_match_ref)
{
    enum { K = 3, N = 3, S = 1400 }; /* large enough for the multithreaded path */
    const int64_t cs[K] = {3, 1, 5}, ctot = 9;
    float *xs[K], *d0[K], *d1[K];
    for (int i = 0; i < K; i++) {
        xs[i] = tc_random(10 + i, N * cs[i] * S, -1.0f, 1.0f);
        d0[i] = tc_random(20 + i, N * cs[i] * S, -1.0f, 1.0f);
        d1[i] = malloc(sizeof(float) * N * cs[i] * S);
        memcpy(d1[i], d0[i], sizeof(float) * N * cs[i] * S);
    }
    float *y0 = malloc(sizeof(float) * N * ctot * S), *y1 = malloc(sizeof(float) * N * ctot * S);
    float *dy = tc_random(30, N * ctot * S, -1.0f, 1.0f);
    mn_concat_forward(y0, (const float *const *)xs, cs, K, N, S);
    mn_concat_forward_ref(y1, (const float *const *)xs, cs, K, N, S);
    tc_expect_close(y0, y1, N * ctot * S, 0.0f, 0.0f, "concat forward");
    /* the middle input takes no gradient */
    float *skip0[K] = {d0[0], NULL, d0[2]}, *skip1[K] = {d1[0], NULL, d1[2]};
    mn_concat_backward(skip0, dy, cs, K, N, S);
    mn_concat_backward_ref(skip1, dy, cs, K, N, S);
    for (int i = 0; i < K; i++) tc_expect_close(d0[i], d1[i], N * cs[i] * S, 0.0f, 0.0f, "concat backward");
    for (int i = 0; i < K; i++) {
        free(xs[i]);
        free(d0[i]);
        free(d1[i]);
    }
    free(y0);
    free(y1);
    free(dy);
}

/* ---- against PyTorch ---- */

typedef mn_var *(*unary_fn)(mn_tape *t, mn_var *x);

static void check_unary(const char *kase, unary_fn fn)
{
    mn_tensor xt = get(kase, "x");
    const int64_t n = mn_tensor_numel(&xt);
    mn_var *x = leaf_of(xt, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = fn(&t, x);
    cr_assert(y, "%s: %s", kase, mn_last_error());
    tc_expect_close(y->val.data, get(kase, "y").data, n, 0.0f, 0.0f, kase);
    cr_assert_eq(mn_backward_grad(&t, y, get(kase, "dy").data), 0, "%s", mn_last_error());
    tc_expect_close(x->grad.data, get(kase, "dx").data, n, 0.0f, 0.0f, kase);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(eltwise, relu_vs_torch) { check_unary("relu", mn_relu); }
Test(eltwise, relu6_vs_torch) { check_unary("relu6", mn_relu6); }

Test(eltwise, relu_and_relu6_boundaries)
{
    /* the fixture's first values: 0, 6, -0, 1e-4, -1e-4, 6.0001, 5.9999, 3 */
    const float *x = get("relu", "x").data, *dy = get("relu", "dy").data;
    cr_assert(x[0] == 0.0f && x[1] == 6.0f && x[7] == 3.0f);
    const int64_t shape[1] = {8};
    mn_var *v = tc_leaf(x, 1, shape, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_relu(&t, v);
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0);
    const float relu_want[8] = {0, dy[1], 0, dy[3], 0, dy[5], dy[6], dy[7]};
    tc_expect_close(v->grad.data, relu_want, 8, 0.0f, 0.0f, "relu gradient at the kink");

    mn_tape_reset(&t);
    memset(v->grad.data, 0, sizeof(float) * 8);
    y = mn_relu6(&t, v);
    const float fwd_want[8] = {0, 6, 0, 1e-4f, 0, 6, 5.9999f, 3};
    tc_expect_close(y->val.data, fwd_want, 8, 0.0f, 0.0f, "relu6 forward at the boundaries");
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0);
    const float relu6_want[8] = {0, 0, 0, dy[3], 0, 0, dy[6], dy[7]};
    tc_expect_close(v->grad.data, relu6_want, 8, 0.0f, 0.0f, "relu6 gradient at 0 and 6");
    mn_tape_free(&t);
    tc_leaf_free(v);
}

Test(eltwise, add_vs_torch)
{
    mn_var *a = leaf_of(get("add", "a"), true), *b = leaf_of(get("add", "b"), true);
    const int64_t n = mn_tensor_numel(&a->val);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_add(&t, a, b);
    cr_assert(y, "%s", mn_last_error());
    tc_expect_close(y->val.data, get("add", "y").data, n, 0.0f, 0.0f, "add y");
    cr_assert_eq(mn_backward_grad(&t, y, get("add", "dy").data), 0);
    tc_expect_close(a->grad.data, get("add", "da").data, n, 0.0f, 0.0f, "add da");
    tc_expect_close(b->grad.data, get("add", "db").data, n, 0.0f, 0.0f, "add db");
    mn_tape_free(&t);
    tc_leaf_free(a);
    tc_leaf_free(b);
}

Test(eltwise, scale_vs_torch)
{
    mn_var *x = leaf_of(get("scale", "x"), true);
    const int64_t n = mn_tensor_numel(&x->val);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_scale(&t, x, -0.7f);
    cr_assert(y, "%s", mn_last_error());
    tc_expect_close(y->val.data, get("scale", "y").data, n, 0.0f, 1e-7f, "scale y");
    cr_assert_eq(mn_backward_grad(&t, y, get("scale", "dy").data), 0);
    tc_expect_close(x->grad.data, get("scale", "dx").data, n, 0.0f, 1e-7f, "scale dx");
    mn_tape_free(&t);
    tc_leaf_free(x);
}

static void check_concat(bool middle_grad)
{
    static const char *names[3] = {"x0", "x1", "x2"}, *dnames[3] = {"dx0", "dx1", "dx2"};
    mn_var *xs[3];
    for (int i = 0; i < 3; i++) xs[i] = leaf_of(get("concat", names[i]), i != 1 || middle_grad);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_concat(&t, xs, 3);
    cr_assert(y, "%s", mn_last_error());
    mn_tensor yt = get("concat", "y");
    cr_assert(mn_tensor_same_shape(&y->val, &yt), "concat output shape");
    tc_expect_close(y->val.data, yt.data, mn_tensor_numel(&yt), 0.0f, 0.0f, "concat y");
    cr_assert_eq(mn_backward_grad(&t, y, get("concat", "dy").data), 0, "%s", mn_last_error());
    for (int i = 0; i < 3; i++) {
        if (i == 1 && !middle_grad) {
            cr_assert_null(xs[i]->grad.data, "an input without requires_grad got a gradient");
            continue;
        }
        tc_expect_close(xs[i]->grad.data, get("concat", dnames[i]).data, mn_tensor_numel(&xs[i]->val), 0.0f, 0.0f,
                        dnames[i]);
    }
    mn_tape_free(&t);
    for (int i = 0; i < 3; i++) tc_leaf_free(xs[i]);
}

Test(eltwise, concat_three_inputs_vs_torch) { check_concat(true); }
Test(eltwise, concat_gradient_split_with_a_frozen_input) { check_concat(false); }

Test(eltwise, non_contiguous_input_is_copied_and_its_gradient_lands_in_the_slice)
{
    /* a (2, 5, 3, 2) leaf viewed as its first 3 channels: not contiguous */
    const int64_t shape[4] = {2, 5, 3, 2};
    float *v = tc_random(5, 60, -2.0f, 2.0f), *dy = tc_random(6, 36, -1.0f, 1.0f);
    mn_var *full = tc_leaf(v, 4, shape, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x = mn_var_prefix(&t, full, 1, 3);
    cr_assert(!mn_tensor_is_contiguous(&x->val));
    mn_var *y = mn_relu6(&t, x);
    cr_assert(y, "%s", mn_last_error());
    cr_assert_eq(mn_backward_grad(&t, y, dy), 0, "%s", mn_last_error());
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 5; c++)
            for (int k = 0; k < 6; k++) {
                float xv = v[(n * 5 + c) * 6 + k], g = full->grad.data[(n * 5 + c) * 6 + k];
                if (c >= 3) {
                    cr_assert(g == 0.0f, "gradient outside the slice");
                    continue;
                }
                float want = xv > 0.0f && xv < 6.0f ? dy[(n * 3 + c) * 6 + k] : 0.0f;
                float yv = y->val.data[(n * 3 + c) * 6 + k];
                cr_assert(g == want, "gradient at (%d, %d, %d): %g, expected %g", n, c, k, (double)g, (double)want);
                cr_assert(yv == (xv < 0.0f ? 0.0f : xv), "value at (%d, %d, %d)", n, c, k);
            }
    mn_tape_free(&t);
    tc_leaf_free(full);
    free(v);
    free(dy);
}

/* ---- finite differences ---- */

/* Values in (-2.9, -0.1), (0.1, 2.9), (3.1, 5.9) and (6.1, 8.9): at least 0.1 from 0 and 6. */
static float *away_from_kinks(uint64_t seed, int64_t n)
{
    static const float offset[4] = {-3.0f, 0.0f, 3.0f, 6.0f};
    float *x = tc_random(seed, n, 0.1f, 2.9f);
    for (int64_t i = 0; i < n; i++) x[i] += offset[i % 4];
    return x;
}

static mn_var *op_relu(mn_tape *t, mn_var *const *in, void *ctx) { return mn_relu(t, in[0]); }
static mn_var *op_relu6(mn_tape *t, mn_var *const *in, void *ctx) { return mn_relu6(t, in[0]); }
static mn_var *op_add(mn_tape *t, mn_var *const *in, void *ctx) { return mn_add(t, in[0], in[1]); }
static mn_var *op_scale(mn_tape *t, mn_var *const *in, void *ctx) { return mn_scale(t, in[0], *(float *)ctx); }
static mn_var *op_concat(mn_tape *t, mn_var *const *in, void *ctx) { return mn_concat(t, in, 3); }

static const tc_gradcheck_opts gc = {1e-2f, 1e-4f, 1e-3f, 0};

Test(eltwise, gradcheck_relu_relu6)
{
    const int64_t shape[4] = {2, 3, 4, 3};
    float *x = away_from_kinks(3, 72);
    mn_var *v = tc_leaf(x, 4, shape, true);
    tc_gradcheck(op_relu, NULL, &v, 1, &gc);
    tc_gradcheck(op_relu6, NULL, &v, 1, &gc);
    tc_leaf_free(v);
    free(x);
}

Test(eltwise, gradcheck_add_scale)
{
    const int64_t shape[4] = {2, 3, 2, 3};
    float *a = tc_random(4, 36, -2.0f, 2.0f), *b = tc_random(5, 36, -2.0f, 2.0f);
    mn_var *in[2] = {tc_leaf(a, 4, shape, true), tc_leaf(b, 4, shape, true)};
    tc_gradcheck(op_add, NULL, in, 2, &gc);
    float s = -1.3f;
    tc_gradcheck(op_scale, &s, in, 1, &gc);
    tc_leaf_free(in[0]);
    tc_leaf_free(in[1]);
    free(a);
    free(b);
}

Test(eltwise, gradcheck_concat)
{
    const int64_t s0[4] = {2, 1, 2, 3}, s1[4] = {2, 3, 2, 3}, s2[4] = {2, 2, 2, 3};
    float *a = tc_random(6, 12, -1.0f, 1.0f), *b = tc_random(7, 36, -1.0f, 1.0f), *c = tc_random(8, 24, -1.0f, 1.0f);
    mn_var *in[3] = {tc_leaf(a, 4, s0, true), tc_leaf(b, 4, s1, true), tc_leaf(c, 4, s2, true)};
    tc_gradcheck(op_concat, NULL, in, 3, &gc);
    for (int i = 0; i < 3; i++) tc_leaf_free(in[i]);
    free(a);
    free(b);
    free(c);
}

/* ---- bad input ---- */

Test(eltwise, shape_errors_name_the_shapes)
{
    float *buf = tc_random(9, 200, -1.0f, 1.0f);
    const int64_t sa[2] = {2, 3}, sb[2] = {3, 2}, x0[4] = {2, 2, 4, 4}, x1[4] = {2, 3, 4, 4}, x2[4] = {2, 1, 5, 4},
                  xn[4] = {3, 1, 4, 4}, x3[3] = {2, 4, 4};
    mn_tape t;
    mn_tape_init(&t, 0);

    mn_var *a = mn_var_wrap(&t, mn_tensor_view(buf, 2, sa)), *b = mn_var_wrap(&t, mn_tensor_view(buf, 2, sb));
    cr_assert_null(mn_add(&t, a, b));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert(strstr(mn_last_error(), "[2, 3]") && strstr(mn_last_error(), "[3, 2]"), "message: %s",
              mn_last_error());

    mn_var *xs[3] = {mn_var_wrap(&t, mn_tensor_view(buf, 4, x0)), mn_var_wrap(&t, mn_tensor_view(buf, 4, x1)),
                     mn_var_wrap(&t, mn_tensor_view(buf, 4, x2))};
    cr_assert_null(mn_concat(&t, xs, 3));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert(strstr(mn_last_error(), "input 2") && strstr(mn_last_error(), "[2, 1, 5, 4]") &&
                  strstr(mn_last_error(), "[2, 2, 4, 4]"),
              "message: %s", mn_last_error());

    xs[2] = mn_var_wrap(&t, mn_tensor_view(buf, 4, xn)); /* batch size differs */
    cr_assert_null(mn_concat(&t, xs, 3));
    cr_assert(strstr(mn_last_error(), "input 2") && strstr(mn_last_error(), "[3, 1, 4, 4]"), "message: %s",
              mn_last_error());

    xs[1] = mn_var_wrap(&t, mn_tensor_view(buf, 3, x3));
    cr_assert_null(mn_concat(&t, xs, 3));
    cr_assert(strstr(mn_last_error(), "input 1") && strstr(mn_last_error(), "[2, 4, 4]"), "message: %s",
              mn_last_error());

    cr_assert_null(mn_concat(&t, xs, 0));
    xs[1] = NULL;
    cr_assert_null(mn_concat(&t, xs, 3));
    cr_assert_null(mn_relu(&t, NULL));
    cr_assert_null(mn_relu6(&t, NULL));
    cr_assert_null(mn_scale(&t, NULL, 2.0f));
    cr_assert_null(mn_add(&t, a, NULL));
    mn_tape_free(&t);
    free(buf);
}
