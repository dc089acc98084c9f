/* Bilinear and nearest resizing: kernels against their reference twins, values and gradients
 * against PyTorch's F.interpolate (tools/fixtures/gen_resize.py), finite differences, bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/resize.h"
#include "mn/ops.h"

static mn_safetensors fx;

static void load(void) { tc_fixture("resize", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(resize, .init = load, .fini = unload);

static mn_tensor get(const char *kase, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", kase, what);
    return tc_get(&fx, name);
}

/* ---- optimised kernels against their reference twins ---- */

static const int64_t sizes[][4] = {
    /* h, w, oh, ow */
    {5, 7, 9, 13}, {9, 13, 4, 6}, {6, 4, 3, 11}, {5, 5, 5, 5}, {1, 1, 4, 3},
    {4, 3, 1, 1},  {3, 8, 3, 17}, {17, 5, 2, 5}, {2, 2, 7, 7}, {10, 12, 20, 24},
    {30, 40, 80, 96}, /* large enough for the multithreaded path */
};

static void kernels_case(const int64_t *sz, uint64_t seed)
{
    const int64_t n = 2, c = 3, h = sz[0], w = sz[1], oh = sz[2], ow = sz[3];
    const int64_t nx = n * c * h * w, ny = n * c * oh * ow;
    float *x = tc_random(seed, nx, -2.0f, 2.0f), *dy = tc_random(seed + 1, ny, -1.0f, 1.0f);
    float *y0 = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    float *d0 = tc_random(seed + 2, nx, -1.0f, 1.0f), *d1 = malloc(sizeof(float) * nx);
    int64_t *hi = malloc(sizeof(int64_t) * 2 * oh), *wi = malloc(sizeof(int64_t) * 2 * ow);
    float *hl = malloc(sizeof(float) * oh), *wl = malloc(sizeof(float) * ow);
    char what[128];
    for (int ac = 0; ac < 2; ac++) {
        snprintf(what, sizeof what, "bilinear %lldx%lld -> %lldx%lld align_corners=%d", (long long)h, (long long)w,
                 (long long)oh, (long long)ow, ac);
        mn_resize_linear_taps(hi, hi + oh, hl, h, oh, ac);
        mn_resize_linear_taps(wi, wi + ow, wl, w, ow, ac);
        for (int64_t o = 0; o < oh; o++)
            cr_assert(hi[o] >= 0 && hi[oh + o] < h && hi[o] <= hi[oh + o] && hl[o] >= 0.0f && hl[o] <= 1.0f,
                      "%s: row tap %lld", what, (long long)o);
        for (int64_t o = 0; o < ow; o++)
            cr_assert(wi[o] >= 0 && wi[ow + o] < w && wi[o] <= wi[ow + o] && wl[o] >= 0.0f && wl[o] <= 1.0f,
                      "%s: column tap %lld", what, (long long)o);
        mn_resize_bilinear_forward(y0, hi, hi + oh, hl, wi, wi + ow, wl, x, n, c, h, w, oh, ow);
        mn_resize_bilinear_forward_ref(y1, x, n, c, h, w, oh, ow, ac);
        tc_expect_close(y0, y1, ny, 1e-6f, 1e-6f, what);
        memcpy(d1, d0, sizeof(float) * nx);
        mn_resize_bilinear_backward(d0, hi, hi + oh, hl, wi, wi + ow, wl, dy, n, c, h, w, oh, ow);
        mn_resize_bilinear_backward_ref(d1, dy, n, c, h, w, oh, ow, ac);
        tc_expect_close(d0, d1, nx, 1e-6f, 1e-6f, what);
    }
    snprintf(what, sizeof what, "nearest %lldx%lld -> %lldx%lld", (long long)h, (long long)w, (long long)oh,
             (long long)ow);
    mn_resize_nearest_taps(hi, h, oh);
    mn_resize_nearest_taps(wi, w, ow);
    mn_resize_nearest_forward(y0, hi, wi, x, n, c, h, w, oh, ow);
    mn_resize_nearest_forward_ref(y1, x, n, c, h, w, oh, ow);
    tc_expect_close(y0, y1, ny, 0.0f, 0.0f, what);
    memcpy(d1, d0, sizeof(float) * nx);
    mn_resize_nearest_backward(d0, hi, wi, dy, n, c, h, w, oh, ow);
    mn_resize_nearest_backward_ref(d1, dy, n, c, h, w, oh, ow);
    tc_expect_close(d0, d1, nx, 0.0f, 0.0f, what);
    free(x);
    free(dy);
    free(y0);
    free(y1);
    free(d0);
    free(d1);
    free(hi);
    free(wi);
    free(hl);
    free(wl);
}

Test(resize, kernels_match_ref)
{
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) kernels_case(sizes[i], 300 + 10 * i);
}

Test(resize, taps_by_hand)
{
    /* 2 -> 4, align_corners=False: src = (o + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 */
    int64_t i0[5], i1[5];
    float l1[5];
    mn_resize_linear_taps(i0, i1, l1, 2, 4, false);
    const int64_t w0[4] = {0, 0, 0, 1}, w1[4] = {1, 1, 1, 1};
    const float wl[4] = {0.0f, 0.25f, 0.75f, 0.25f}; /* the last one weights i1 == i0 */
    for (int o = 0; o < 4; o++)
        cr_assert(i0[o] == w0[o] && i1[o] == w1[o], "tap %d: %lld %lld", o, (long long)i0[o], (long long)i1[o]);
    tc_expect_close(l1, wl, 4, 0.0f, 0.0f, "align_corners=False weights");
    /* 3 -> 5, align_corners=True: src = o / 2 */
    mn_resize_linear_taps(i0, i1, l1, 3, 5, true);
    const float al[5] = {0.0f, 0.5f, 0.0f, 0.5f, 0.0f};
    tc_expect_close(l1, al, 5, 0.0f, 0.0f, "align_corners=True weights");
    cr_assert(i0[3] == 1 && i1[3] == 2 && i0[4] == 2 && i1[4] == 2);
    /* nearest 3 -> 7: floor(o * 3 / 7) */
    int64_t idx[7];
    mn_resize_nearest_taps(idx, 3, 7);
    const int64_t want[7] = {0, 0, 0, 1, 1, 2, 2};
    for (int o = 0; o < 7; o++) cr_assert_eq(idx[o], want[o], "nearest tap %d", o);
}

/* ---- against PyTorch ---- */

static void check_case(const char *kase, int mode /* 0 nearest, 1 bilinear, 2 bilinear align_corners */)
{
    mn_tensor xt = get(kase, "x"), yt = get(kase, "y");
    mn_var *x = tc_leaf(xt.data, 4, xt.shape, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    const int oh = (int)yt.shape[2], ow = (int)yt.shape[3];
    mn_var *y = mode ? mn_resize_bilinear(&t, x, oh, ow, mode == 2) : mn_resize_nearest(&t, x, oh, ow);
    cr_assert(y, "%s: %s", kase, mn_last_error());
    cr_assert(mn_tensor_same_shape(&y->val, &yt), "%s: output shape", kase);
    char what[96];
    snprintf(what, sizeof what, "%s y", kase);
    tc_expect_close(y->val.data, yt.data, mn_tensor_numel(&yt), 1e-6f, 1e-6f, what);
    cr_assert_eq(mn_backward_grad(&t, y, get(kase, "dy").data), 0, "%s", mn_last_error());
    snprintf(what, sizeof what, "%s dx", kase);
    tc_expect_close(x->grad.data, get(kase, "dx").data, mn_tensor_numel(&xt), 1e-6f, 1e-5f, what);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(resize, bilinear_up_vs_torch) { check_case("bl_up", 1); }
Test(resize, bilinear_up_align_corners_vs_torch) { check_case("bl_up_ac", 2); }
Test(resize, bilinear_down_vs_torch) { check_case("bl_down", 1); }
Test(resize, bilinear_down_align_corners_vs_torch) { check_case("bl_down_ac", 2); }
Test(resize, bilinear_down_and_up_vs_torch) { check_case("bl_mixed", 1); }
Test(resize, bilinear_to_one_row_align_corners_vs_torch) { check_case("bl_to_one_ac", 2); }
Test(resize, nearest_up_vs_torch) { check_case("nn_up", 0); }
Test(resize, nearest_down_vs_torch) { check_case("nn_down", 0); }
Test(resize, nearest_exact_2x_vs_torch) { check_case("nn_2x", 0); }
Test(resize, nearest_down_and_up_vs_torch) { check_case("nn_mixed", 0); }

/* ---- finite differences (both ops are linear in x) ---- */

typedef struct gc_ctx {
    int mode, oh, ow;
} gc_ctx;

static mn_var *resize_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    gc_ctx *g = ctx;
    if (g->mode) return mn_resize_bilinear(t, in[0], g->oh, g->ow, g->mode == 2);
    return mn_resize_nearest(t, in[0], g->oh, g->ow);
}

static void gradcheck_case(gc_ctx g, int64_t h, int64_t w)
{
    const int64_t shape[4] = {1, 2, h, w};
    float *x = tc_random(51, 2 * h * w, -2.0f, 2.0f);
    mn_var *v = tc_leaf(x, 4, shape, true);
    tc_gradcheck_opts o = {1e-2f, 1e-4f, 1e-3f, 0};
    tc_gradcheck(resize_op, &g, &v, 1, &o);
    tc_leaf_free(v);
    free(x);
}

Test(resize, gradcheck_bilinear)
{
    gradcheck_case((gc_ctx){1, 7, 9}, 4, 5);
    gradcheck_case((gc_ctx){2, 7, 9}, 4, 5);
    gradcheck_case((gc_ctx){1, 3, 2}, 6, 5);
    gradcheck_case((gc_ctx){2, 3, 2}, 6, 5);
}

Test(resize, gradcheck_nearest)
{
    gradcheck_case((gc_ctx){0, 7, 9}, 4, 5);
    gradcheck_case((gc_ctx){0, 3, 2}, 6, 5);
}

/* ---- bad input ---- */

Test(resize, bad_input_is_rejected_with_a_message)
{
    float *buf = tc_random(3, 64, -1.0f, 1.0f);
    const int64_t ok[4] = {1, 2, 4, 4}, flat[3] = {2, 4, 4};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x = mn_var_wrap(&t, mn_tensor_view(buf, 4, ok)), *f = mn_var_wrap(&t, mn_tensor_view(buf, 3, flat));
    cr_assert_null(mn_resize_bilinear(&t, x, 0, 5, false));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "0x5") && strstr(mn_last_error(), "[1, 2, 4, 4]"), "message: %s",
              mn_last_error());
    cr_assert_null(mn_resize_nearest(&t, x, 3, -1));
    cr_assert(strstr(mn_last_error(), "3x-1"), "message: %s", mn_last_error());
    cr_assert_null(mn_resize_bilinear(&t, f, 8, 8, true));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert(strstr(mn_last_error(), "[2, 4, 4]"), "message: %s", mn_last_error());
    cr_assert_null(mn_resize_nearest(&t, f, 8, 8));
    cr_assert(strstr(mn_last_error(), "[2, 4, 4]"), "message: %s", mn_last_error());
    cr_assert_null(mn_resize_bilinear(&t, NULL, 8, 8, false));
    mn_tape_free(&t);
    free(buf);
}
