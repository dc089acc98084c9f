#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
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

double tc_hash_uniform(uint32_t seed, int64_t k)
{
    uint32_t h = (uint32_t)((uint64_t)k * 2654435761u + seed);
    for (int i = 0; i < 2; i++) {
        h ^= h >> 16;
        h *= 0x45d9f3bu;
    }
    h ^= h >> 16;
    return (double)h / 2147483648.0 - 1.0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

void tc_det_fill(mn_param_set *ps)
{
    for (int i = 0; i < ps->n; i++) {
        mn_param *p = ps->items[i];
        uint32_t h = 2166136261u;
        for (const char *c = p->name; *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
        const mn_tensor *t = &p->var.val;
        int64_t n = mn_tensor_numel(t);
        for (int64_t k = 0; k < n; k++) {
            double b = tc_hash_uniform(h, k), v;
            if (ends_with(p->name, "running_var")) v = 1.0 + 0.5 * fabs(b);
            else if (ends_with(p->name, "running_mean")) v = 0.1 * b;
            else if (t->ndim == 1 && ends_with(p->name, "weight")) v = 1.0 + 0.1 * b;
            else if (ends_with(p->name, "bias")) v = 0.05 * b;
            else if (t->ndim == 4) v = sqrt(2.0 / (double)(t->shape[2] * t->shape[3] * t->shape[0])) * b * 1.7;
            else v = 0.05 * b;
            t->data[k] = (float)v;
        }
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(mn_param *const *)a)->name, (*(mn_param *const *)b)->name);
}

void tc_check_param_grads(const mn_safetensors *st, const char *tag, const mn_param_set *ps, float kink_frac)
{
    mn_param **sorted = malloc(sizeof *sorted * (size_t)ps->n);
    int np = 0;
    for (int i = 0; i < ps->n; i++)
        if (!(ps->items[i]->flags & MN_PARAM_BUFFER)) sorted[np++] = ps->items[i];
    qsort(sorted, (size_t)np, sizeof *sorted, by_name);
    char key[256];
    snprintf(key, sizeof key, "%s.grad_samples", tag);
    mn_tensor samples = tc_get(st, key);
    snprintf(key, sizeof key, "%s.grad_norms", tag);
    mn_tensor norms = tc_get(st, key);
    snprintf(key, sizeof key, "%s.grad_noise", tag);
    mn_tensor noise = tc_get(st, key);
    cr_assert_eq(samples.shape[0], np, "fixture has %lld parameters, model %d", (long long)samples.shape[0], np);
    int loose = 0;
    for (int i = 0; i < np; i++) {
        const float *g = sorted[i]->var.grad.data;
        int64_t n = mn_tensor_numel(&sorted[i]->var.grad);
        double norm = 0;
        for (int64_t k = 0; k < n; k++) norm += (double)g[k] * g[k];
        float got[16], nrm = (float)sqrt(norm);
        for (int j = 0; j < 16; j++) got[j] = g[(j * n) / 16];
        const float *want = samples.data + 16 * i;
        char what[256];
        snprintf(what, sizeof what, "%s gradient of %s", tag, sorted[i]->name);
        /* expected values are float64; PyTorch float32's own error against them ("noise") is
         * the scale of what summation order alone explains, and the tight tolerance is 8x it
         * (BN statistics and reductions here sum in another order; the floor covers gradients
         * that are zero in exact arithmetic, such as a BN bias feeding a training-mode BN
         * through a linear layer, and come out as rounding residue). A ReLU input within
         * float32 rounding of 0 (inputs of 1e-6 occur in every deep layer here) may land on
         * the other side than in PyTorch and move a gradient by one term of its sum; which ones
         * flip depends on the compiler and optimisation level. Such parameters (at most 1 in 4)
         * may instead be within kink_frac of the gradient's RMS. A wrong formula misses by far
         * more, everywhere. */
        float tight = 8 * noise.data[i] + 1e-4f, rms = norms.data[i] / sqrtf((float)n);
        bool ok = fabsf(nrm - norms.data[i]) <= tight * sqrtf((float)n) + 1e-4f * norms.data[i];
        for (int j = 0; j < 16; j++) ok = ok && fabsf(got[j] - want[j]) <= tight + 1e-4f * fabsf(want[j]);
        if (ok) continue;
        loose++;
        tc_expect_close(got, want, 16, tight + kink_frac * rms, 1e-4f, what);
        tc_expect_close(&nrm, norms.data + i, 1, (tight + kink_frac * rms) * sqrtf((float)n), 1e-4f, what);
    }
    cr_assert_leq(4 * loose, np, "%s: %d of %d parameter gradients are beyond float32 noise", tag, loose, np);
    free(sorted);
}

int tc_metrics_lines(const char *out_dir, char lines[][TC_METRICS_LINE], int max)
{
    char path[1024], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", path);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        long long it;
        char *sec = strstr(line, ", \"seconds\"");
        /* validation lines carry no "lr" and no timing */
        if (sscanf(line, "{\"iter\": %lld, \"lr\"", &it) != 1 || !sec || it >= max) continue;
        /* the timing tail: the interval, then the part of it spent waiting for the data loader */
        double seconds = -1, data = -1;
        cr_assert_eq(sscanf(sec, ", \"seconds\": %lf, \"data_seconds\": %lf}", &seconds, &data), 2, "%s: %s", path,
                     line);
        cr_assert(data >= 0 && data <= seconds + 1e-3, "%s: data_seconds %g outside [0, seconds %g]", path, data,
                  seconds);
        *sec = 0;
        snprintf(lines[it], TC_METRICS_LINE, "%.2047s", line);
        if (it > n) n = (int)it;
    }
    fclose(f);
    return n;
}

int tc_metrics_losses(const char *out_dir, double *loss, int max)
{
    char(*lines)[TC_METRICS_LINE] = calloc((size_t)max, TC_METRICS_LINE);
    cr_assert(lines);
    int n = tc_metrics_lines(out_dir, lines, max);
    for (int i = 1; i <= n; i++)
        cr_assert_eq(sscanf(lines[i], "{\"iter\": %*d, \"lr\": %*g, \"loss\": %lf", &loss[i]), 1, "%s line %d: %s",
                     out_dir, i, lines[i]);
    free(lines);
    return n;
}

void tc_expect_resume_matches(int (*train)(const mn_config *c, const char *resume, int64_t stop_at), const mn_config *a,
                              const mn_config *b, int stop)
{
    cr_assert_eq(train(a, NULL, 0), 0, "%s", mn_last_error());
    cr_assert_eq(train(b, NULL, stop), 0, "%s", mn_last_error());
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", b->train.out_dir);
    cr_assert_eq(train(b, ckpt, 0), 0, "%s", mn_last_error());
    int n = a->train.iterations;
    double *la = calloc((size_t)n + 1, sizeof *la), *lb = calloc((size_t)n + 1, sizeof *lb);
    cr_assert(la && lb);
    cr_assert_eq(tc_metrics_losses(a->train.out_dir, la, n + 1), n);
    cr_assert_eq(tc_metrics_losses(b->train.out_dir, lb, n + 1), n);
    for (int i = 1; i <= n; i++) cr_assert_eq(la[i], lb[i], "iteration %d: %.9g vs %.9g", i, la[i], lb[i]);
    free(la);
    free(lb);
}

void tc_remove_tree(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

int tc_run_cmd(int (*cmd)(int, char **), const char *stderr_path, char **err, int argc, char **argv)
{
    FILE *f = fopen(stderr_path, "w+");
    cr_assert(f, "%s", stderr_path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(f), 2);
    int status = cmd(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *err = malloc((size_t)n + 1);
    cr_assert_eq(fread(*err, 1, (size_t)n, f), (size_t)n);
    (*err)[n] = 0;
    fclose(f);
    remove(stderr_path);
    return status;
}
