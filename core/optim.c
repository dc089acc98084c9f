#include <math.h>
#include <string.h>

#include "core/kernels/sgd.h"
#include "mn/optim.h"

static bool trainable(const mn_param *p) { return !(p->flags & MN_PARAM_BUFFER) && p->var.grad.data; }

/* What mn_arena_alloc takes for a request of this size (64-byte granules, at least one). */
static size_t arena_size(size_t bytes) { return bytes ? (bytes + 63) / 64 * 64 : 64; }

int mn_sgd_init(mn_sgd *o, mn_param_set *ps, const mn_sgd_config *cfg)
{
    memset(o, 0, sizeof *o);
    if (!ps || !cfg) return mn_error(MN_EINVAL, "mn_sgd_init: no parameter set or configuration");
    if (!(cfg->lr >= 0.0f) || !(cfg->momentum >= 0.0f) || !(cfg->weight_decay >= 0.0f) || !isfinite(cfg->lr) ||
        !isfinite(cfg->momentum) || !isfinite(cfg->weight_decay) || !isfinite(cfg->dampening))
        return mn_error(MN_EINVAL, "mn_sgd_init: lr %g, momentum %g and weight_decay %g must be finite and >= 0",
                        (double)cfg->lr, (double)cfg->momentum, (double)cfg->weight_decay);
    if (cfg->nesterov && (cfg->momentum <= 0.0f || cfg->dampening != 0.0f))
        return mn_error(MN_EINVAL, "mn_sgd_init: nesterov needs momentum > 0 and dampening 0 (got %g and %g)",
                        (double)cfg->momentum, (double)cfg->dampening);
    o->cfg = *cfg;
    o->ps = ps;
    o->n = ps->n;

    /* size the arena for everything up front, so it is one block and never grows */
    size_t bytes = arena_size((size_t)(o->n ? o->n : 1) * sizeof(float *));
    if (cfg->momentum != 0.0f)
        for (int i = 0; i < o->n; i++)
            if (trainable(ps->items[i]))
                bytes += arena_size((size_t)mn_tensor_numel(&ps->items[i]->var.val) * sizeof(float));
    mn_arena_init(&o->state, "optimiser state", bytes);
    o->buf = mn_arena_zalloc(&o->state, (size_t)(o->n ? o->n : 1) * sizeof(float *));
    if (!o->buf) goto fail;
    if (cfg->momentum != 0.0f)
        for (int i = 0; i < o->n; i++) {
            if (!trainable(ps->items[i])) continue;
            o->buf[i] = mn_arena_zalloc(&o->state, (size_t)mn_tensor_numel(&ps->items[i]->var.val) * sizeof(float));
            if (!o->buf[i]) goto fail;
        }
    return 0;
fail:
    mn_arena_free(&o->state);
    memset(o, 0, sizeof *o);
    return mn_error(MN_ENOMEM, "mn_sgd_init: cannot allocate %zu bytes of momentum buffers", bytes);
}

void mn_sgd_free(mn_sgd *o)
{
    mn_arena_free(&o->state);
    memset(o, 0, sizeof *o);
}

int mn_sgd_step(mn_sgd *o, float lr)
{
    if (!o->ps) return mn_error(MN_EINVAL, "mn_sgd_step: optimiser not initialised");
    if (!(lr >= 0.0f) || !isfinite(lr)) return mn_error(MN_EINVAL, "mn_sgd_step: learning rate %g", (double)lr);
    if (o->ps->n < o->n)
        return mn_error(MN_EINVAL, "mn_sgd_step: the parameter set shrank from %d to %d entries", o->n, o->ps->n);
    for (int i = 0; i < o->n; i++) {
        mn_param *p = o->ps->items[i];
        if (!(p->lr_mult >= 0.0f) || !isfinite(p->lr_mult))
            return mn_error(MN_EINVAL, "mn_sgd_step: parameter %s has learning-rate multiplier %g", p->name,
                            (double)p->lr_mult);
        /* frozen (no gradient) or multiplier 0: not stepped at all, so decay and momentum leave it alone too */
        if (!trainable(p) || !p->var.requires_grad || p->lr_mult == 0.0f) continue;
        if (!mn_tensor_is_contiguous(&p->var.val) || !mn_tensor_is_contiguous(&p->var.grad))
            return mn_error(MN_EINVAL, "mn_sgd_step: parameter %s is not contiguous", p->name);
        mn_sgd_hyper h = {
            .lr = lr * p->lr_mult,
            .momentum = o->cfg.momentum,
            .dampening = o->cfg.dampening,
            .weight_decay = (p->flags & MN_PARAM_DECAY) ? o->cfg.weight_decay : 0.0f,
            .nesterov = o->cfg.nesterov,
            .first = o->steps == 0,
        };
        mn_sgd_update(p->var.val.data, o->buf[i], p->var.grad.data, mn_tensor_numel(&p->var.val), &h);
    }
    o->steps++;
    return 0;
}

mn_tensor mn_sgd_momentum(const mn_sgd *o, int i)
{
    if (i < 0 || i >= o->n || !o->buf || !o->buf[i]) {
        const int64_t zero = 0;
        return mn_tensor_view(NULL, 1, &zero);
    }
    mn_tensor t = mn_tensor_view(o->buf[i], o->ps->items[i]->var.val.ndim, o->ps->items[i]->var.val.shape);
    return t;
}

int64_t mn_sgd_steps(const mn_sgd *o) { return o->steps; }

int mn_sgd_set_steps(mn_sgd *o, int64_t steps)
{
    if (steps < 0) return mn_error(MN_EINVAL, "mn_sgd_set_steps: negative step count %lld", (long long)steps);
    o->steps = steps;
    return 0;
}

int mn_grad_clip_norm(mn_param_set *ps, float max_norm, double *norm)
{
    if (!(max_norm > 0.0f) || !isfinite(max_norm))
        return mn_error(MN_EINVAL, "mn_grad_clip_norm: max_norm %g (must be positive)", (double)max_norm);
    double sum = 0.0;
    for (int i = 0; i < ps->n; i++) {
        const mn_param *p = ps->items[i];
        if (!trainable(p)) continue;
        const float *g = p->var.grad.data;
        double s = 0.0;
        int64_t n = mn_tensor_numel(&p->var.grad);
        for (int64_t k = 0; k < n; k++) s += (double)g[k] * g[k];
        if (!isfinite(s)) return mn_error(MN_EINVAL, "gradient of %s is not finite", p->name);
        sum += s;
    }
    *norm = sqrt(sum);
    double coef = max_norm / (*norm + 1e-6);
    if (coef >= 1.0) return 0;
    for (int i = 0; i < ps->n; i++) {
        mn_param *p = ps->items[i];
        if (!trainable(p)) continue;
        float *g = p->var.grad.data;
        int64_t n = mn_tensor_numel(&p->var.grad);
        for (int64_t k = 0; k < n; k++) g[k] = (float)(g[k] * coef);
    }
    return 0;
}
