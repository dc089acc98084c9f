#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/rng.h"

void tc_fixture(const char *name, mn_safetensors *st)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s.safetensors", MN_SOURCE_DIR, name);
    int rc = mn_st_read(path, st);
    cr_assert_eq(rc, 0, "fixture %s: %s (regenerate with tools/fixtures/gen_%s.py)", name, mn_last_error(), name);
}

mn_tensor tc_get(const mn_safetensors *st, const char *name)
{
    mn_tensor t;
    int rc = mn_st_get_any_f32(st, name, &t);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    return t;
}

void tc_expect_close(const float *got, const float *want, int64_t n, float atol, float rtol, const char *what)
{
    int64_t worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs((double)want[i]);
        double err = fabs((double)got[i] - (double)want[i]);
        if (!(err <= tol) && (worst < 0 || err - tol > worst_excess || isnan(err))) {
            worst = i;
            worst_excess = isnan(err) ? INFINITY : err - tol;
        }
    }
    if (worst >= 0)
        cr_assert_fail("%s: element %lld of %lld is %.8g, expected %.8g (atol %g, rtol %g)", what, (long long)worst,
                       (long long)n, (double)got[worst], (double)want[worst], (double)atol, (double)rtol);
}

mn_var *tc_leaf(const float *val, int ndim, const int64_t *shape, bool requires_grad)
{
    mn_var *v = calloc(1, sizeof *v);
    cr_assert(v);
    v->val = mn_tensor_view(NULL, ndim, shape);
    int64_t n = mn_tensor_numel(&v->val);
    v->val.data = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (val) memcpy(v->val.data, val, sizeof(float) * (size_t)n);
    v->grad = v->val;
    v->grad.data = requires_grad ? calloc((size_t)(n ? n : 1), sizeof(float)) : NULL;
    v->requires_grad = requires_grad;
    return v;
}

void tc_leaf_free(mn_var *v)
{
    if (!v) return;
    free(v->val.data);
    free(v->grad.data);
    free(v);
}

float *tc_random(uint64_t seed, int64_t n, float lo, float hi)
{
    mn_rng r;
    mn_rng_seed(&r, seed);
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = mn_rng_range(&r, lo, hi);
    return p;
}

/* L = sum(op(in) * R) in double, with recording off. */
static double eval_loss(tc_op_fn op, void *ctx, mn_var *const *in, const float *R, mn_tape *t)
{
    mn_tape_reset(t);
    bool old = mn_tape_set_grad(t, false);
    mn_var *y = op(t, in, ctx);
    mn_tape_set_grad(t, old);
    cr_assert(y, "forward failed: %s", mn_last_error());
    double L = 0;
    int64_t n = mn_tensor_numel(&y->val);
    for (int64_t i = 0; i < n; i++) L += (double)y->val.data[i] * R[i];
    return L;
}

void tc_gradcheck(tc_op_fn op, void *ctx, mn_var *const *in, int n_in, const tc_gradcheck_opts *o)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = op(&t, in, ctx);
    cr_assert(y, "forward failed: %s", mn_last_error());
    int64_t ny = mn_tensor_numel(&y->val);
    float *R = tc_random(12345, ny, -1.0f, 1.0f);
    for (int i = 0; i < n_in; i++)
        if (in[i]->requires_grad) memset(in[i]->grad.data, 0, sizeof(float) * (size_t)mn_tensor_numel(&in[i]->val));
    cr_assert_eq(mn_backward_grad(&t, y, R), 0, "backward failed: %s", mn_last_error());

    mn_rng pick;
    mn_rng_seed(&pick, 777);
    for (int i = 0; i < n_in; i++) {
        if (!in[i]->requires_grad) continue;
        int64_t n = mn_tensor_numel(&in[i]->val);
        float *analytic = malloc(sizeof(float) * (size_t)n);
        memcpy(analytic, in[i]->grad.data, sizeof(float) * (size_t)n);
        int64_t checks = o->max_checks && o->max_checks < n ? o->max_checks : n;
        for (int64_t c = 0; c < checks; c++) {
            int64_t k = checks == n ? c : mn_rng_int(&pick, 0, (int)(n - 1));
            float *x = &in[i]->val.data[k];
            float x0 = *x;
            *x = x0 + o->eps;
            double lp = eval_loss(op, ctx, in, R, &t);
            *x = x0 - o->eps;
            double lm = eval_loss(op, ctx, in, R, &t);
            *x = x0;
            double numeric = (lp - lm) / (2.0 * o->eps);
            double tol = o->atol + o->rtol * fabs(numeric);
            cr_assert(fabs(analytic[k] - numeric) <= tol,
                      "input %d element %lld: analytic gradient %.7g, numeric %.7g (atol %g, rtol %g)", i,
                      (long long)k, (double)analytic[k], numeric, (double)o->atol, (double)o->rtol);
        }
        free(analytic);
    }
    free(R);
    mn_tape_free(&t);
}
