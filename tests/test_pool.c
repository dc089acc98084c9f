/* Max, average and global average pooling: kernels against their reference twins, values and
 * gradients against PyTorch (tools/fixtures/gen_pool.py), finite differences, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/pool.h"
#include "mn/ops.h"
#include "mn/rng.h"

static mn_safetensors fx;

static void load(void) { tc_fixture("pool", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(pool, .init = load, .fini = unload);

static mn_tensor get(const char *kase, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return tc_get(&fx, name);
}

/* ---- optimised kernels against their reference twins ---- */

typedef struct window {
    int k, stride, pad;
    int64_t h, w;
} window;

static const window windows[] = {
    {1, 1, 0, 5, 7},  {2, 2, 0, 7, 9},  {3, 2, 1, 9, 8},  {3, 1, 1, 6, 5},   {5, 3, 2, 11, 8},
    {3, 3, 0, 10, 10}, {2, 1, 1, 4, 4}, {7, 2, 3, 15, 13}, {3, 2, 1, 2, 2}, {4, 1, 2, 3, 9},
    {3, 2, 1, 64, 96}, /* large enough for the multithreaded path */
};

/* integers: inputs in [0, 3) rounded down, so windows hold ties */
static void kernels_case(const window *wd, bool ties, uint64_t seed)
{
    const int64_t n = 2, c = 3, h = wd->h, w = wd->w;
    const int64_t ho = mn_pool2d_out(h, wd->k, wd->stride, wd->pad), wo = mn_pool2d_out(w, wd->k, wd->stride, wd->pad);
    const int64_t nx = n * c * h * w, ny = n * c * ho * wo;
    char what[128];
    snprintf(what, sizeof what, "k%d s%d p%d on %lldx%lld%s", wd->k, wd->stride, wd->pad, (long long)h, (long long)w,
             ties ? " with ties" : "");
    cr_assert(ho >= 1 && wo >= 1, "%s: bad test window", what);
    float *x = tc_random(seed, nx, ties ? 0.0f : -2.0f, ties ? 3.0f : 2.0f);
    if (ties)
        for (int64_t i = 0; i < nx; i++) x[i] = floorf(x[i]);
    float *dy = tc_random(seed + 1, ny, -1.0f, 1.0f);
    float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    int32_t *a0 = malloc(sizeof(int32_t) * ny), *a1 = malloc(sizeof(int32_t) * ny);
    float *d0 = tc_random(seed + 2, nx, -1.0f, 1.0f), *d1 = malloc(sizeof(float) * nx);
    memcpy(d1, d0, sizeof(float) * nx);

    mn_max_pool2d_forward(y0, a0, x, n, c, h, w, wd->k, wd->stride, wd->pad);
    mn_max_pool2d_forward_ref(y1, a1, x, n, c, h, w, wd->k, wd->stride, wd->pad);
    tc_expect_close(y0, y1, ny, 0.0f, 0.0f, what);
    for (int64_t i = 0; i < ny; i++) cr_assert_eq(a0[i], a1[i], "%s: argmax %lld", what, (long long)i);
    mn_max_pool2d_backward(d0, a0, dy, n, c, h, w, ho, wo);
    mn_max_pool2d_backward_ref(d1, a1, dy, n, c, h, w, ho, wo);
    tc_expect_close(d0, d1, nx, 0.0f, 0.0f, what);

    mn_avg_pool2d_forward(y0, x, n, c, h, w, wd->k, wd->stride, wd->pad);
    mn_avg_pool2d_forward_ref(y1, x, n, c, h, w, wd->k, wd->stride, wd->pad);
    tc_expect_close(y0, y1, ny, 1e-6f, 1e-5f, what);
    mn_avg_pool2d_backward(d0, dy, n, c, h, w, wd->k, wd->stride, wd->pad);
    mn_avg_pool2d_backward_ref(d1, dy, n, c, h, w, wd->k, wd->stride, wd->pad);
    tc_expect_close(d0, d1, nx, 1e-6f, 1e-5f, what);

    mn_global_avg_pool_forward(y0, x, n, c, h * w);
    mn_global_avg_pool_forward_ref(y1, x, n, c, h * w);
    tc_expect_close(y0, y1, n * c, 1e-6f, 1e-5f, what);
    mn_global_avg_pool_backward(d0, dy, n, c, h * w);
    mn_global_avg_pool_backward_ref(d1, dy, n, c, h * w);
    tc_expect_close(d0, d1, nx, 1e-6f, 1e-5f, what);

    free(x);
    free(dy);
    free(y0);
    free(y1);
    free(a0);
    free(a1);
    free(d0);
    free(d1);
}

Test(pool, kernels_match_ref)
{
    for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
        kernels_case(&windows[i], false, 100 + i);
        kernels_case(&windows[i], true, 200 + i);
    }
}

Test(pool, max_kernel_propagates_nan_like_torch)
{
    /* PyTorch lets a NaN win its window (and the gradient goes there) */
    const int64_t h = 4, w = 4;
    float x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    x[5] = NAN;
    float y0[4], y1[4];
    int32_t a0[4], a1[4];
    mn_max_pool2d_forward(y0, a0, x, 1, 1, h, w, 2, 2, 0);
    mn_max_pool2d_forward_ref(y1, a1, x, 1, 1, h, w, 2, 2, 0);
    cr_assert(isnan(y0[0]) && isnan(y1[0]) && a0[0] == 5 && a1[0] == 5, "NaN window");
    cr_assert(y0[3] == 15.0f && y1[3] == 15.0f && a0[3] == 15 && a1[3] == 15);
}

/* ---- against PyTorch ---- */

enum kind { MAX, AVG, GLOBAL };

static void check_case(const char *kase, enum kind kind, int k, int stride, int pad)
{
    mn_tensor xt = get(kase, "x"), yt = get(kase, "y");
    mn_var *x = tc_leaf(xt.data, 4, xt.shape, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = kind == MAX   ? mn_max_pool2d(&t, x, k, stride, pad)
                : kind == AVG ? mn_avg_pool2d(&t, x, k, stride, pad)
                              : mn_global_avg_pool(&t, x);
    cr_assert(y, "%s: %s", kase, mn_last_error());
    cr_assert(mn_tensor_same_shape(&y->val, &yt), "%s: output shape", kase);
    char what[96];
    snprintf(what, sizeof what, "%s y", kase);
    tc_expect_close(y->val.data, yt.data, mn_tensor_numel(&yt), 1e-6f, 1e-6f, what);
    cr_assert_eq(mn_backward_grad(&t, y, get(kase, "dy").data), 0, "%s", mn_last_error());
    snprintf(what, sizeof what, "%s dx", kase);
    /* max pooling routes each gradient whole: exact unless two land on one input */
    tc_expect_close(x->grad.data, get(kase, "dx").data, mn_tensor_numel(&xt), 1e-6f, 1e-6f, what);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(pool, max_k3_s2_p1_vs_torch) { check_case("max_k3s2p1", MAX, 3, 2, 1); }
Test(pool, max_k2_s2_floor_vs_torch) { check_case("max_k2s2p0", MAX, 2, 2, 0); }
Test(pool, max_padding_never_wins_vs_torch) { check_case("max_neg_k3s1p1", MAX, 3, 1, 1); }
Test(pool, max_ties_go_to_the_first_vs_torch) { check_case("max_ties_k3s1p1", MAX, 3, 1, 1); }
Test(pool, max_ties_k2_vs_torch) { check_case("max_ties_k2s2p0", MAX, 2, 2, 0); }
Test(pool, avg_k3_s2_p1_vs_torch) { check_case("avg_k3s2p1", AVG, 3, 2, 1); }
Test(pool, avg_k2_s2_floor_vs_torch) { check_case("avg_k2s2p0", AVG, 2, 2, 0); }
Test(pool, avg_k3_s1_p1_vs_torch) { check_case("avg_k3s1p1", AVG, 3, 1, 1); }
Test(pool, avg_k5_s3_p2_vs_torch) { check_case("avg_k5s3p2", AVG, 5, 3, 2); }
Test(pool, global_avg_vs_torch) { check_case("global", GLOBAL, 0, 0, 0); }

/* ---- finite differences ---- */

typedef struct gc_ctx {
    enum kind kind;
    int k, stride, pad;
} gc_ctx;

static mn_var *pool_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    gc_ctx *g = ctx;
    if (g->kind == MAX) return mn_max_pool2d(t, in[0], g->k, g->stride, g->pad);
    if (g->kind == AVG) return mn_avg_pool2d(t, in[0], g->k, g->stride, g->pad);
    return mn_global_avg_pool(t, in[0]);
}

/* Values 0.1 apart in a shuffled order: a step of 1e-2 never changes which input is the max. */
static float *spaced(uint64_t seed, int n)
{
    int *perm = malloc(sizeof(int) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) perm[i] = i;
    mn_rng r;
    mn_rng_seed(&r, seed);
    mn_rng_shuffle(&r, perm, n);
    for (int i = 0; i < n; i++) x[i] = 0.1f * (float)(perm[i] - n / 2);
    free(perm);
    return x;
}

static void gradcheck_case(gc_ctx g, int64_t h, int64_t w)
{
    const int64_t shape[4] = {2, 2, h, w};
    const int n = (int)(4 * h * w);
    float *x = spaced(41, n);
    mn_var *v = tc_leaf(x, 4, shape, true);
    tc_gradcheck_opts o = {1e-2f, 1e-4f, 1e-3f, 0};
    tc_gradcheck(pool_op, &g, &v, 1, &o);
    tc_leaf_free(v);
    free(x);
}

Test(pool, gradcheck_max)
{
    gradcheck_case((gc_ctx){MAX, 3, 2, 1}, 5, 6);
    gradcheck_case((gc_ctx){MAX, 2, 1, 0}, 4, 3);
}

Test(pool, gradcheck_avg)
{
    gradcheck_case((gc_ctx){AVG, 3, 2, 1}, 5, 6);
    gradcheck_case((gc_ctx){AVG, 2, 2, 0}, 5, 4);
}

Test(pool, gradcheck_global_avg) { gradcheck_case((gc_ctx){GLOBAL, 0, 0, 0}, 3, 4); }

/* ---- bad input ---- */

Test(pool, bad_input_is_rejected_with_a_message)
{
    float *buf = tc_random(3, 64, -1.0f, 1.0f);
    const int64_t small[4] = {1, 2, 2, 2}, flat[3] = {2, 4, 4}, ok[4] = {1, 1, 8, 8};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x = mn_var_wrap(&t, mn_tensor_view(buf, 4, small));
    cr_assert_null(mn_max_pool2d(&t, x, 3, 1, 0));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert(strstr(mn_last_error(), "[1, 2, 2, 2]") && strstr(mn_last_error(), "3x3"), "message: %s",
              mn_last_error());
    cr_assert_null(mn_avg_pool2d(&t, x, 3, 1, 0));
    cr_assert(strstr(mn_last_error(), "mn_avg_pool2d") && strstr(mn_last_error(), "[1, 2, 2, 2]"), "message: %s",
              mn_last_error());

    mn_var *f = mn_var_wrap(&t, mn_tensor_view(buf, 3, flat));
    cr_assert_null(mn_max_pool2d(&t, f, 2, 2, 0));
    cr_assert(strstr(mn_last_error(), "[2, 4, 4]"), "message: %s", mn_last_error());
    cr_assert_null(mn_global_avg_pool(&t, f));
    cr_assert(strstr(mn_last_error(), "[2, 4, 4]"), "message: %s", mn_last_error());

    mn_var *g = mn_var_wrap(&t, mn_tensor_view(buf, 4, ok));
    cr_assert_null(mn_max_pool2d(&t, g, 3, 1, 2)); /* padding over half the window */
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);
    cr_assert_null(mn_avg_pool2d(&t, g, 0, 1, 0));
    cr_assert_null(mn_max_pool2d(&t, g, 2, 0, 0));
    cr_assert_null(mn_max_pool2d(&t, NULL, 2, 2, 0));
    cr_assert_not_null(mn_max_pool2d(&t, g, 3, 2, 1), "%s", mn_last_error());
    mn_tape_free(&t);
    free(buf);
}
