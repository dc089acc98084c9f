#include <math.h>
#include <stdlib.h>

#include "core/kernels/bn.h"
#include "core/grad.h"
#include "mn/comm.h"
#include "mn/ops.h"
#include "mn/trace.h"

typedef struct bn_ctx {
    float *mean;    /* (C) batch mean (training) or a copy of the running mean (eval) */
    float *invstd;  /* (C) 1 / sqrt(var + eps) of the same statistics */
    int64_t n, c, s;
    bool training;
    int ig, ib;     /* positions of gamma and beta in the node's inputs, -1 when absent */
    bool clamp;     /* mn_batch_norm_act: the output is clamped to [lo, hi] */
    float lo, hi;
    mn_comm *sync;  /* synchronised batch statistics: the backward sums are reduced too */
    int64_t count;  /* values per channel over all ranks */
} bn_ctx;

/* Synchronised BN (mn_bn_params.sync), written out plainly: the per-channel sums of every rank
 * are reduced, then each rank normalises its own values with the global statistics. */
static int sync_stats(mn_comm *sync, const float *x /* (N, C, S) */, int64_t n, int64_t c, int64_t s, float eps,
                      float *mean /* (C) */, float *invstd /* (C) */, float *var /* (C) biased */, int64_t *count)
{
    double *acc = malloc(sizeof(double) * (size_t)(2 * c + 1));
    if (!acc) return mn_error(MN_ENOMEM, "batch_norm: out of memory");
#pragma omp parallel for schedule(static)
    for (int64_t ci = 0; ci < c; ci++) {
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *r = x + (i * c + ci) * s;
            for (int64_t k = 0; k < s; k++) s1 += r[k], s2 += (double)r[k] * r[k];
        }
        acc[ci] = s1;
        acc[c + ci] = s2;
    }
    acc[2 * c] = (double)(n * s);
    int rc = mn_comm_sum_f64(sync, acc, 2 * c + 1);
    if (!rc) {
        const double total = acc[2 * c];
        for (int64_t ci = 0; ci < c; ci++) {
            const double m = acc[ci] / total, v = fmax(acc[c + ci] / total - m * m, 0.0);
            mean[ci] = (float)m;
            var[ci] = (float)v;
            invstd[ci] = (float)(1.0 / sqrt(v + eps));
        }
        *count = (int64_t)total;
    }
    free(acc);
    return rc;
}

/* The statistics BN calibration keeps (cumulative averaging) as one process computes them:
 * each rank's image-by-image sums (the kernel's own, mn_bn_channel_sums) added up, the float mean,
 * then the deviations around it the same way. The partial sums are sums of a few floats each, so
 * adding them in double in another grouping is exact in practice, and R ranks store one process's
 * statistics to the last bit, at the price of a second reduction per layer, which training (whose
 * statistics serve one step) does not pay. */
static int sync_stats_exact(mn_comm *sync, const float *x /* (N, C, S) */, int64_t n, int64_t c, int64_t s, float eps,
                            float *mean /* (C) */, float *invstd /* (C) */, float *var /* (C) biased */, int64_t *count)
{
    double *acc = malloc(sizeof(double) * (size_t)(c + 1));
    if (!acc) return mn_error(MN_ENOMEM, "batch_norm: out of memory");
    mn_bn_channel_sums(acc, x, n, c, s);
    acc[c] = (double)(n * s);
    int rc = mn_comm_sum_f64(sync, acc, c + 1);
    const double total = acc[c];
    for (int64_t ci = 0; !rc && ci < c; ci++) mean[ci] = (float)(acc[ci] / total);
    if (!rc) mn_bn_channel_sqdev(acc, x, mean, n, c, s);
    if (!rc) rc = mn_comm_sum_f64(sync, acc, c);
    for (int64_t ci = 0; !rc && ci < c; ci++) {
        var[ci] = (float)(acc[ci] / total);
        invstd[ci] = 1.0f / sqrtf(var[ci] + eps);
    }
    if (!rc) *count = (int64_t)total;
    free(acc);
    return rc;
}

/* dx, dgamma, dbeta of synchronised BN: dx = gamma invstd (dy - sum(dy) / M - xhat sum(dy xhat) / M)
 * with the sums over every rank (M values per channel); dgamma and dbeta are this rank's sums (the
 * gradient averaging across ranks adds them up). dy is masked where a clamp cut the output. */
static int sync_backward(const bn_ctx *c, float *dx, float *dg, float *db, const float *dy, const float *y,
                         const float *x, const float *g)
{
    const int64_t n = c->n, C = c->c, s = c->s;
    double *acc = malloc(sizeof(double) * (size_t)(2 * C));
    if (!acc) return mn_error(MN_ENOMEM, "batch_norm: out of memory");
#pragma omp parallel for schedule(static)
    for (int64_t ci = 0; ci < C; ci++) {
        double a = 0, b = 0;
        const double mu = c->mean[ci], is = c->invstd[ci];
        for (int64_t i = 0; i < n; i++) {
            const int64_t off = (i * C + ci) * s;
            for (int64_t k = 0; k < s; k++) {
                float d = dy[off + k];
                if (c->clamp && !(y[off + k] > c->lo && y[off + k] < c->hi)) d = 0.0f;
                a += d;
                b += d * (x[off + k] - mu) * is;
            }
        }
        acc[ci] = a;
        acc[C + ci] = b;
    }
    for (int64_t ci = 0; ci < C; ci++) {
        if (db) db[ci] += (float)acc[ci];
        if (dg) dg[ci] += (float)acc[C + ci];
    }
    int rc = mn_comm_sum_f64(c->sync, acc, 2 * C);
    if (!rc && dx) {
        const double M = (double)c->count;
#pragma omp parallel for schedule(static)
        for (int64_t ci = 0; ci < C; ci++) {
            const double mu = c->mean[ci], is = c->invstd[ci], gi = g ? g[ci] : 1.0;
            const double mdy = acc[ci] / M, mdyx = acc[C + ci] / M;
            for (int64_t i = 0; i < n; i++) {
                const int64_t off = (i * C + ci) * s;
                for (int64_t k = 0; k < s; k++) {
                    float d = dy[off + k];
                    if (c->clamp && !(y[off + k] > c->lo && y[off + k] < c->hi)) d = 0.0f;
                    const double xh = (x[off + k] - mu) * is;
                    dx[off + k] += (float)(gi * is * (d - mdy - xh * mdyx));
                }
            }
        }
    }
    free(acc);
    return rc;
}

static int bn_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    bn_ctx *c = nd->ctx;
    mn_var *x = nd->in[0];
    mn_var *gamma = c->ig >= 0 ? nd->in[c->ig] : NULL;
    mn_var *beta = c->ib >= 0 ? nd->in[c->ib] : NULL;
    float *dx, *dg, *db;
    int rc;
    if ((rc = core_grad_dense(x, "batch_norm", "x", &dx)) || (rc = core_grad_dense(gamma, "batch_norm", "gamma", &dg)) ||
        (rc = core_grad_dense(beta, "batch_norm", "beta", &db)))
        return rc;
    const float *g = gamma ? gamma->val.data : NULL, *dy = nd->out->grad.data, *y = nd->out->val.data;
    if (c->sync && c->training) return sync_backward(c, dx, dg, db, dy, y, x->val.data, g);
    if (c->clamp && c->training)
        mn_bn_backward_train_masked(dx, dg, db, c->mean, c->invstd, dy, y, x->val.data, g, c->lo, c->hi, c->n, c->c,
                                    c->s);
    else if (c->clamp)
        mn_bn_backward_eval_masked(dx, dg, db, c->mean, c->invstd, dy, y, x->val.data, g, c->lo, c->hi, c->n, c->c,
                                   c->s);
    else if (c->training)
        mn_bn_backward_train(dx, dg, db, c->mean, c->invstd, dy, x->val.data, g, c->n, c->c, c->s);
    else
        mn_bn_backward_eval(dx, dg, db, c->mean, c->invstd, dy, x->val.data, g, c->n, c->c, c->s);
    return 0;
}

/* gamma or beta must be a (C) vector; returns it contiguous (a prefix view of a full-width
 * parameter already is), or NULL with the error set. */
static mn_var *check_affine(mn_tape *t, mn_var *v, const char *what, const mn_var *x, int64_t c)
{
    if (v->val.ndim != 1 || v->val.shape[0] != c) {
        char b1[64], b2[64];
        mn_error(MN_ESHAPE, "mn_batch_norm: %s has shape %s, expected [%lld] for input %s", what,
                 mn_shape_str(&v->val, b1, sizeof b1), (long long)c, mn_shape_str(&x->val, b2, sizeof b2));
        return NULL;
    }
    return mn_contiguous(t, v);
}

/* running = (1 - m) running + m batch, with the unbiased batch variance, as PyTorch. */
static void update_running(const mn_bn_state *st, float momentum, const float *mean, const float *var, int64_t c,
                           int64_t count)
{
    double m = momentum;
    if (momentum < 0) m = 1.0 / (double)(*st->num_batches + 1);
    const double unbias = (double)count / (double)(count - 1);
    for (int64_t i = 0; i < c; i++) {
        st->running_mean[i] = (float)((1.0 - m) * st->running_mean[i] + m * mean[i]);
        st->running_var[i] = (float)((1.0 - m) * st->running_var[i] + m * (var[i] * unbias));
    }
}

/* mn_batch_norm, and with clamp set mn_batch_norm_act (output clamped to [lo, hi]). */
static mn_var *bn_op(mn_tape *t, mn_var *x, mn_var *gamma, mn_var *beta, const mn_bn_state *st,
                     const mn_bn_params *p, bool clamp, float lo, float hi)
{
    if (!x) return NULL;
    char buf[64];
    if (!p) {
        mn_error(MN_EINVAL, "mn_batch_norm: no parameters given");
        return NULL;
    }
    if (x->val.ndim != 2 && x->val.ndim != 4) {
        mn_error(MN_ESHAPE, "mn_batch_norm: input %s must be (N, C) or (N, C, H, W)",
                 mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    x = mn_contiguous(t, x);
    if (!x) return NULL;
    const int64_t n = x->val.shape[0], c = x->val.shape[1];
    const int64_t s = x->val.ndim == 4 ? x->val.shape[2] * x->val.shape[3] : 1;
    if (gamma && !(gamma = check_affine(t, gamma, "gamma", x, c))) return NULL;
    if (beta && !(beta = check_affine(t, beta, "beta", x, c))) return NULL;

    const bool track = st && st->running_mean;
    if (p->training) {
        if (n * s < 2) {
            mn_error(MN_EINVAL, "mn_batch_norm: input %s has one value per channel; training needs more",
                     mn_shape_str(&x->val, buf, sizeof buf));
            return NULL;
        }
        if (track && !st->running_var) {
            mn_error(MN_EINVAL, "mn_batch_norm: running_mean given without running_var");
            return NULL;
        }
        if (track && p->momentum < 0 && !st->num_batches) {
            mn_error(MN_EINVAL, "mn_batch_norm: cumulative averaging (momentum < 0) needs num_batches");
            return NULL;
        }
    } else if (!st || !st->running_mean || !st->running_var) {
        mn_error(MN_EINVAL, "mn_batch_norm: eval mode on input %s needs running_mean and running_var",
                 mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }

    mn_comm *sync = p->training && p->sync && p->sync->size > 1 ? p->sync : NULL;
    int64_t count = n * s;
    mn_var *y = mn_var_new(t, x->val.ndim, x->val.shape);
    float *mean = mn_arena_alloc(&t->arena, sizeof(float) * (size_t)c * 2);
    if (!y || !mean) return NULL;
    float *invstd = mean + c;
    const float *g = gamma ? gamma->val.data : NULL, *b = beta ? beta->val.data : NULL;
    if (p->training) {
        float *var = mn_arena_alloc(&t->arena, sizeof(float) * (size_t)c);
        if (!var) return NULL;
        if (sync) {
            /* the statistics of every rank's batch, then this rank's values normalised with them */
            int e = p->momentum < 0 ? sync_stats_exact(sync, x->val.data, n, c, s, p->eps, mean, invstd, var, &count)
                                    : sync_stats(sync, x->val.data, n, c, s, p->eps, mean, invstd, var, &count);
            if (e) return NULL;
            if (clamp) mn_bn_forward_eval_clamp(y->val.data, x->val.data, mean, invstd, g, b, lo, hi, n, c, s);
            else mn_bn_forward_eval(y->val.data, x->val.data, mean, invstd, g, b, n, c, s);
        } else if (clamp) {
            mn_bn_forward_train_clamp(y->val.data, mean, invstd, var, x->val.data, g, b, lo, hi, n, c, s, p->eps);
        } else {
            mn_bn_forward_train(y->val.data, mean, invstd, var, x->val.data, g, b, n, c, s, p->eps);
        }
        if (track) update_running(st, p->momentum, mean, var, c, count);
        if (st && st->num_batches) (*st->num_batches)++;
    } else {
        /* copies: backward must see the statistics this forward used even if they change later */
        for (int64_t i = 0; i < c; i++) {
            const float m = st->running_mean[i], v = st->running_var[i];
            if (!isfinite(m) || !isfinite(v) || !(v + p->eps > 0.0f)) {
                mn_error(MN_ENUMERIC, "mn_batch_norm: channel %lld has unusable running statistics (mean %g, var %g)",
                         (long long)i, (double)m, (double)v);
                return NULL;
            }
            mean[i] = m;
            invstd[i] = 1.0f / sqrtf(v + p->eps);
        }
        if (clamp)
            mn_bn_forward_eval_clamp(y->val.data, x->val.data, mean, invstd, g, b, lo, hi, n, c, s);
        else
            mn_bn_forward_eval(y->val.data, x->val.data, mean, invstd, g, b, n, c, s);
    }

    mn_var *in[3] = {x, NULL, NULL};
    int k = 1, ig = -1, ib = -1;
    if (gamma) in[ig = k++] = gamma;
    if (beta) in[ib = k++] = beta;
    if (mn_tape_wants(t, in, k)) {
        mn_node *nd = mn_tape_record(t, clamp ? "batch_norm_act" : "batch_norm", y, in, k, bn_backward, sizeof(bn_ctx));
        if (!nd) return NULL;
        bn_ctx *cx = nd->ctx;
        cx->mean = mean;
        cx->invstd = invstd;
        cx->n = n;
        cx->c = c;
        cx->s = s;
        cx->training = p->training;
        cx->ig = ig;
        cx->ib = ib;
        cx->clamp = clamp;
        cx->lo = lo;
        cx->hi = hi;
        cx->sync = sync;
        cx->count = count;
    }
    return y;
}

static mn_var *bn_traced(mn_tape *t, mn_var *y, mn_var *x, mn_var *gamma, mn_var *beta, const mn_bn_state *st,
                         const mn_bn_params *p, int act)
{
    if (!y || !t->tracer) return y;
    mn_var *in[3] = {x, gamma, beta};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_BN_ACT, .name = "batch_norm", .out = y, .in = in,
                                                 .n_in = 3, .bn = st ? *st : (mn_bn_state){0}, .eps = p->eps, .bn_training = p->training,
                                                 .act = act});
}

mn_var *mn_batch_norm(mn_tape *t, mn_var *x, mn_var *gamma, mn_var *beta, const mn_bn_state *st,
                      const mn_bn_params *p)
{
    return bn_traced(t, bn_op(t, x, gamma, beta, st, p, false, 0.0f, 0.0f), x, gamma, beta, st, p, 0);
}

mn_var *mn_batch_norm_act(mn_tape *t, mn_var *x, mn_var *gamma, mn_var *beta, const mn_bn_state *st,
                          const mn_bn_params *p, int act)
{
    if (!x) return NULL;
    if (act == 0) return mn_batch_norm(t, x, gamma, beta, st, p);
    if (act != 1 && act != 6) {
        mn_error(MN_EINVAL, "mn_batch_norm_act: activation %d is not 0 (none), 1 (ReLU) or 6 (ReLU6)", act);
        return NULL;
    }
    return bn_traced(t, bn_op(t, x, gamma, beta, st, p, true, 0.0f, act == 6 ? 6.0f : INFINITY), x, gamma, beta, st, p,
                     act);
}
