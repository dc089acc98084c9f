/* RoIAlign: forward and backward against torchvision.ops.roi_align
 * (tools/fixtures/gen_roi_align.py), finite differences, optimised against reference
 * kernels, and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "core/kernels/roi_align.h"
#include "mn/ops.h"

static mn_safetensors fx;

static void load(void) { tc_fixture("roi_align", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(roi_align, .init = load, .fini = unload);

static mn_roi_align_params params(bool aligned, int sr)
{
    mn_roi_align_params p = {.out_h = 3, .out_w = 4, .spatial_scale = 0.25f, .sampling_ratio = sr, .aligned = aligned};
    return p;
}

/* The op (forward, then backward with the fixture's dy) against torchvision. */
static void check_case(bool aligned, int sr)
{
    char name[64], kase[16];
    snprintf(kase, sizeof kase, "a%d_s%d", aligned ? 1 : 0, sr);
    mn_tensor xv = tc_get(&fx, "x"), rois = tc_get(&fx, "rois"), dy = tc_get(&fx, "dy");
    int k = (int)rois.shape[0];
    mn_var *x = tc_leaf(xv.data, 4, xv.shape, true);
    mn_roi_align_params p = params(aligned, sr);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_roi_align(&t, x, rois.data, k, &p);
    cr_assert(y, "%s: %s", kase, mn_last_error());
    cr_assert(y->val.ndim == 4 && y->val.shape[0] == k && y->val.shape[1] == 3 && y->val.shape[2] == 3 &&
              y->val.shape[3] == 4);
    snprintf(name, sizeof name, "%s.y", kase);
    tc_expect_close(y->val.data, tc_get(&fx, name).data, mn_tensor_numel(&y->val), 1e-5f, 1e-4f, name);
    cr_assert_eq(mn_backward_grad(&t, y, dy.data), 0, "%s", mn_last_error());
    snprintf(name, sizeof name, "%s.dx", kase);
    tc_expect_close(x->grad.data, tc_get(&fx, name).data, mn_tensor_numel(&xv), 1e-5f, 1e-4f, name);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(roi_align, aligned_sr2_vs_torchvision) { check_case(true, 2); }
Test(roi_align, aligned_adaptive_vs_torchvision) { check_case(true, 0); }
Test(roi_align, unaligned_sr2_vs_torchvision) { check_case(false, 2); }
Test(roi_align, unaligned_adaptive_vs_torchvision) { check_case(false, 0); }

Test(roi_align, reference_kernels_vs_torchvision)
{
    mn_tensor xv = tc_get(&fx, "x"), rois = tc_get(&fx, "rois"), dy = tc_get(&fx, "dy");
    int64_t k = rois.shape[0], nx = mn_tensor_numel(&xv);
    float *y = malloc(sizeof(float) * (size_t)(k * 3 * 12)), *dx = calloc((size_t)nx, sizeof(float));
    for (int a = 0; a < 2; a++)
        for (int sr = 0; sr <= 2; sr += 2) {
            char name[64];
            mn_roi_align_dims d = {.n = 2, .c = 3, .h = 10, .w = 12, .k = k, .out_h = 3, .out_w = 4,
                                   .spatial_scale = 0.25f, .sampling_ratio = sr, .aligned = a};
            mn_roi_align_forward_ref(y, xv.data, rois.data, &d);
            snprintf(name, sizeof name, "a%d_s%d.y", a, sr);
            tc_expect_close(y, tc_get(&fx, name).data, k * 36, 1e-5f, 1e-4f, name);
            memset(dx, 0, sizeof(float) * (size_t)nx);
            mn_roi_align_backward_ref(dx, dy.data, rois.data, &d);
            snprintf(name, sizeof name, "a%d_s%d.dx", a, sr);
            tc_expect_close(dx, tc_get(&fx, name).data, nx, 1e-5f, 1e-4f, name);
        }
    free(y);
    free(dx);
}

Test(roi_align, fixture_exercises_the_edge_cases)
{
    /* the roi entirely outside the map pools to exactly 0, and so does the inverted aligned one */
    mn_tensor y = tc_get(&fx, "a1_s0.y");
    for (int i = 0; i < 36; i++) {
        cr_assert_eq(y.data[6 * 36 + i], 0.0f, "outside roi, element %d", i);
        cr_assert_eq(y.data[5 * 36 + i], 0.0f, "inverted roi, element %d", i);
    }
    /* without `aligned` the inverted roi becomes 1x1 and samples real pixels */
    mn_tensor yu = tc_get(&fx, "a0_s0.y");
    float s = 0;
    for (int i = 0; i < 36; i++) s += fabsf(yu.data[5 * 36 + i]);
    cr_assert_gt(s, 0.0f);
}

/* ---- optimised against reference on a larger random case ---- */

static void twins(bool aligned, int sr, uint64_t seed)
{
    mn_roi_align_dims d = {.n = 2, .c = 16, .h = 25, .w = 31, .k = 40, .out_h = 7, .out_w = 5,
                           .spatial_scale = 0.125f, .sampling_ratio = sr, .aligned = aligned};
    int64_t nx = d.n * d.c * d.h * d.w, ny = d.k * d.c * d.out_h * d.out_w;
    float *x = tc_random(seed, nx, -1.0f, 1.0f), *dy = tc_random(seed + 1, ny, -1.0f, 1.0f);
    float *u = tc_random(seed + 2, d.k * 4, -40.0f, 280.0f);
    float *rois = malloc(sizeof(float) * (size_t)d.k * 5);
    for (int64_t r = 0; r < d.k; r++) {
        float x1 = u[r * 4], y1 = u[r * 4 + 1] * 0.8f, w = fabsf(u[r * 4 + 2]) * 0.5f, h = fabsf(u[r * 4 + 3]) * 0.4f;
        rois[r * 5] = (float)(r % 2);
        rois[r * 5 + 1] = x1;
        rois[r * 5 + 2] = y1;
        rois[r * 5 + 3] = x1 + w;
        rois[r * 5 + 4] = y1 + h;
    }
    void *ws = malloc(mn_roi_align_ws_bytes(rois, &d));
    float *y1 = malloc(sizeof(float) * (size_t)ny), *y2 = malloc(sizeof(float) * (size_t)ny);
    mn_roi_align_forward(y1, ws, x, rois, &d);
    mn_roi_align_forward_ref(y2, x, rois, &d);
    tc_expect_close(y1, y2, ny, 1e-6f, 1e-5f, "forward");
    float *g1 = tc_random(seed + 3, nx, -1.0f, 1.0f), *g2 = malloc(sizeof(float) * (size_t)nx);
    memcpy(g2, g1, sizeof(float) * (size_t)nx); /* backward accumulates onto what is there */
    mn_roi_align_backward(g1, ws, dy, rois, &d);
    mn_roi_align_backward_ref(g2, dy, rois, &d);
    tc_expect_close(g1, g2, nx, 1e-5f, 1e-5f, "backward");
    free(x), free(dy), free(u), free(rois), free(ws), free(y1), free(y2), free(g1), free(g2);
}

Test(roi_align, optimised_matches_reference_aligned_sr2) { twins(true, 2, 10); }
Test(roi_align, optimised_matches_reference_aligned_adaptive) { twins(true, 0, 20); }
Test(roi_align, optimised_matches_reference_unaligned_sr2) { twins(false, 2, 30); }
Test(roi_align, optimised_matches_reference_unaligned_adaptive) { twins(false, 0, 40); }

/* ---- finite differences ---- */

typedef struct gc_ctx {
    const float *rois;
    int k;
    mn_roi_align_params p;
} gc_ctx;

static mn_var *op_roi(mn_tape *t, mn_var *const *in, void *ctx)
{
    gc_ctx *c = ctx;
    return mn_roi_align(t, in[0], c->rois, c->k, &c->p);
}

Test(roi_align, gradcheck)
{
    /* The output is linear in x, so differences are exact up to rounding whatever the step;
     * coordinates have odd fractions so no sample lands exactly on a pixel boundary. */
    const float rois[4 * 5] = {
        0, 1.37f, 2.11f, 17.93f, 19.29f,
        1, -3.13f, 5.71f, 11.47f, 26.83f,
        1, 14.21f, -2.63f, 31.57f, 9.19f,
        0, 6.07f, 7.33f, 8.41f, 8.97f,
    };
    int64_t shape[4] = {2, 2, 6, 7};
    float *v = tc_random(50, 168, -1.0f, 1.0f);
    mn_var *x = tc_leaf(v, 4, shape, true);
    for (int a = 0; a < 2; a++)
        for (int sr = 0; sr <= 2; sr += 2) {
            gc_ctx c = {rois, 4, {.out_h = 2, .out_w = 3, .spatial_scale = 0.25f, .sampling_ratio = sr, .aligned = a}};
            tc_gradcheck_opts o = {.eps = 0.1f, .atol = 1e-4f, .rtol = 1e-3f, .max_checks = 0};
            tc_gradcheck(op_roi, &c, &x, 1, &o);
        }
    tc_leaf_free(x);
    free(v);
}

/* ---- bad input and edge cases ---- */

Test(roi_align, rejects_bad_rois_and_parameters)
{
    int64_t shape[4] = {2, 1, 4, 4};
    mn_var *x = tc_leaf(NULL, 4, shape, false);
    memset(x->val.data, 0, sizeof(float) * 32);
    mn_roi_align_params p = params(true, 2);
    mn_tape t;
    mn_tape_init(&t, 0);

    float r_batch[10] = {0, 0, 0, 4, 4, 2, 0, 0, 4, 4};
    cr_assert_null(mn_roi_align(&t, x, r_batch, 2, &p));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "roi 1"), "message: %s", mn_last_error());

    float r_frac[5] = {0.5f, 0, 0, 4, 4};
    cr_assert_null(mn_roi_align(&t, x, r_frac, 1, &p));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);

    float r_nan[5] = {0, 0, NAN, 4, 4};
    cr_assert_null(mn_roi_align(&t, x, r_nan, 1, &p));
    cr_assert_eq(mn_last_error_code(), MN_ENUMERIC);
    cr_assert(strstr(mn_last_error(), "roi 0"), "message: %s", mn_last_error());

    float ok[5] = {1, 0, 0, 4, 4};
    mn_roi_align_params bad = p;
    bad.sampling_ratio = -1;
    cr_assert_null(mn_roi_align(&t, x, ok, 1, &bad));
    bad = p;
    bad.out_h = 0;
    cr_assert_null(mn_roi_align(&t, x, ok, 1, &bad));
    bad = p;
    bad.spatial_scale = 0.0f;
    cr_assert_null(mn_roi_align(&t, x, ok, 1, &bad));
    cr_assert_eq(mn_last_error_code(), MN_EINVAL);

    int64_t s3[3] = {1, 4, 4};
    mn_var *x3 = tc_leaf(NULL, 3, s3, false);
    cr_assert_null(mn_roi_align(&t, x3, ok, 1, &p));
    cr_assert_eq(mn_last_error_code(), MN_ESHAPE);
    cr_assert_null(mn_roi_align(&t, NULL, ok, 1, &p));
    mn_tape_free(&t);
    tc_leaf_free(x);
    tc_leaf_free(x3);
}

Test(roi_align, no_rois_gives_empty_output)
{
    int64_t shape[4] = {1, 3, 4, 4};
    mn_var *x = tc_leaf(NULL, 4, shape, true);
    memset(x->val.data, 0, sizeof(float) * 48);
    mn_roi_align_params p = params(true, 2);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_roi_align(&t, x, NULL, 0, &p);
    cr_assert(y, "%s", mn_last_error());
    cr_assert_eq(y->val.shape[0], 0);
    cr_assert_eq(y->val.shape[1], 3);
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(roi_align, constant_map_pools_to_the_constant_inside)
{
    /* a roi well inside a constant map averages to that constant, whatever the grid */
    int64_t shape[4] = {1, 2, 8, 8};
    mn_var *x = tc_leaf(NULL, 4, shape, false);
    for (int i = 0; i < 128; i++) x->val.data[i] = i < 64 ? 3.0f : -2.0f;
    float roi[5] = {0, 5.3f, 6.1f, 21.7f, 19.9f};
    mn_roi_align_params p = {.out_h = 2, .out_w = 2, .spatial_scale = 0.25f, .sampling_ratio = 0, .aligned = true};
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = mn_roi_align(&t, x, roi, 1, &p);
    cr_assert(y, "%s", mn_last_error());
    float want[8] = {3, 3, 3, 3, -2, -2, -2, -2};
    tc_expect_close(y->val.data, want, 8, 1e-6f, 1e-6f, "constant map");
    mn_tape_free(&t);
    tc_leaf_free(x);
}

Test(roi_align, strided_leaf_gradient_view_receives_the_gradient)
{
    /* x's value is contiguous, its gradient the first 2 of 3 channels of a wider buffer */
    int64_t shape[4] = {2, 2, 5, 6}, wide[4] = {2, 3, 5, 6};
    float *v = tc_random(60, 120, -1.0f, 1.0f);
    const float rois[10] = {0, 1.3f, 2.7f, 15.1f, 17.9f, 1, -2.2f, 3.4f, 9.8f, 21.6f};
    mn_roi_align_params p = params(true, 0);
    mn_var *dense = tc_leaf(v, 4, shape, true), *strided = tc_leaf(v, 4, shape, true);
    float *gbuf = calloc(180, sizeof(float));
    free(strided->grad.data);
    strided->grad = mn_tensor_narrow(mn_tensor_view(gbuf, 4, wide), 1, 0, 2);
    float *dy = tc_random(61, 2 * 2 * 12, -1.0f, 1.0f);
    mn_tape t;
    mn_tape_init(&t, 0);
    cr_assert_eq(mn_backward_grad(&t, mn_roi_align(&t, dense, rois, 2, &p), dy), 0, "%s", mn_last_error());
    mn_tape_reset(&t);
    cr_assert_eq(mn_backward_grad(&t, mn_roi_align(&t, strided, rois, 2, &p), dy), 0, "%s", mn_last_error());
    for (int n = 0; n < 2; n++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 30; i++) {
                float want = c < 2 ? dense->grad.data[(n * 2 + c) * 30 + i] : 0.0f;
                tc_expect_close(&gbuf[(n * 3 + c) * 30 + i], &want, 1, 1e-7f, 1e-6f, "strided gradient");
            }
    float s = 0;
    for (int i = 0; i < 120; i++) s += fabsf(dense->grad.data[i]);
    cr_assert_gt(s, 0.0f);
    strided->grad.data = NULL;
    mn_tape_free(&t);
    tc_leaf_free(dense);
    tc_leaf_free(strided);
    free(gbuf);
    free(dy);
    free(v);
}
