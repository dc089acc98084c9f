#include <string.h>

#include "core/grad.h"
#include "mn/tape.h"
#include "mn/trace.h"

void mn_tape_init(mn_tape *t, size_t initial_bytes)
{
    memset(t, 0, sizeof *t);
    mn_arena_init(&t->arena, "activations", initial_bytes);
    t->grad_enabled = true;
}

void mn_tape_free(mn_tape *t) { mn_arena_free(&t->arena); }

void mn_tape_reset(mn_tape *t)
{
    mn_arena_reset(&t->arena);
    t->last = NULL;
    t->n_nodes = 0;
}

bool mn_tape_set_grad(mn_tape *t, bool enabled)
{
    bool old = t->grad_enabled;
    t->grad_enabled = enabled;
    return old;
}

mn_var *mn_var_new(mn_tape *t, int ndim, const int64_t *shape)
{
    mn_var *v = mn_arena_zalloc(&t->arena, sizeof *v);
    if (!v) return NULL;
    v->val = mn_tensor_alloc(&t->arena, ndim, shape);
    if (!v->val.data) return NULL;
    v->grad = v->val;
    v->grad.data = NULL;
    return v;
}

mn_var *mn_var_wrap(mn_tape *t, mn_tensor val)
{
    mn_var *v = mn_arena_zalloc(&t->arena, sizeof *v);
    if (!v) return NULL;
    v->val = val;
    v->grad = val;
    v->grad.data = NULL;
    return v;
}

mn_var *mn_detach(mn_tape *t, mn_var *x)
{
    if (!x) return NULL;
    return mn_var_wrap(t, x->val);
}

mn_var *mn_var_prefix(mn_tape *t, mn_var *x, int dim, int64_t len)
{
    if (!x) return NULL;
    if (x->node) {
        mn_error(MN_EINVAL, "mn_var_prefix: only leaves (parameters) can be sliced in place");
        return NULL;
    }
    if (len < 1 || len > x->val.shape[dim]) {
        mn_error(MN_ESHAPE, "mn_var_prefix: cannot take %lld of %lld along dim %d", (long long)len,
                 (long long)x->val.shape[dim], dim);
        return NULL;
    }
    mn_var *v = mn_arena_zalloc(&t->arena, sizeof *v);
    if (!v) return NULL;
    v->val = mn_tensor_narrow(x->val, dim, 0, len);
    v->grad = v->val;
    v->grad.data = NULL;
    if (x->grad.data) v->grad = mn_tensor_narrow(x->grad, dim, 0, len);
    v->requires_grad = x->requires_grad && t->grad_enabled;
    return v;
}

static int contiguous_backward(mn_node *n, mn_tape *t)
{
    (void)t;
    mn_var *x = n->in[0];
    if (!x->requires_grad) return 0;
    /* x->grad may be a strided view (leaf slice): accumulate element by element */
    int64_t sh[4] = {1, 1, 1, 1}, gs[4] = {0, 0, 0, 0};
    int pad = MN_MAX_DIMS - x->grad.ndim;
    for (int i = 0; i < x->grad.ndim; i++) {
        sh[i + pad] = x->grad.shape[i];
        gs[i + pad] = x->grad.stride[i];
    }
    const float *gy = n->out->grad.data;
    int64_t k = 0;
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t d = 0; d < sh[3]; d++)
                    x->grad.data[a * gs[0] + b * gs[1] + c * gs[2] + d * gs[3]] += gy[k++];
    return 0;
}

mn_var *mn_contiguous(mn_tape *t, mn_var *x)
{
    if (!x) return NULL;
    if (mn_tensor_is_contiguous(&x->val)) return x;
    mn_var *y = mn_var_new(t, x->val.ndim, x->val.shape);
    if (!y) return NULL;
    mn_tensor_copy(&y->val, &x->val);
    if (mn_tape_wants(t, &x, 1) && !mn_tape_record(t, "contiguous", y, &x, 1, contiguous_backward, 0)) return NULL;
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_COPY, .name = "contiguous", .out = y, .in = &x, .n_in = 1});
}

bool mn_tape_wants(const mn_tape *t, mn_var *const *in, int n_in)
{
    if (!t->grad_enabled) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

mn_node *mn_tape_record(mn_tape *t, const char *op, mn_var *out, mn_var *const *in, int n_in,
                        mn_backward_fn backward, size_t ctx_bytes)
{
    mn_node *n = mn_arena_zalloc(&t->arena, sizeof *n);
    if (!n) return NULL;
    n->in = mn_arena_alloc(&t->arena, sizeof(mn_var *) * (size_t)(n_in ? n_in : 1));
    if (!n->in) return NULL;
    memcpy(n->in, in, sizeof(mn_var *) * (size_t)n_in);
    if (ctx_bytes) {
        n->ctx = mn_arena_zalloc(&t->arena, ctx_bytes);
        if (!n->ctx) return NULL;
    }
    n->n_in = n_in;
    n->backward = backward;
    n->out = out;
    n->op = op;
    n->prev = t->last;
    t->last = n;
    t->n_nodes++;
    out->node = n;
    out->requires_grad = true;
    return n;
}

/* Gives v a zeroed contiguous gradient buffer if it has none. */
static int ensure_grad(mn_tape *t, mn_var *v)
{
    if (v->grad.data) return 0;
    v->grad = v->val;
    v->grad = mn_tensor_view(NULL, v->val.ndim, v->val.shape);
    v->grad.data = mn_arena_zalloc(&t->arena, (size_t)mn_tensor_numel(&v->val) * sizeof(float));
    return v->grad.data ? 0 : MN_ENOMEM;
}

static int run_backward(mn_tape *t)
{
    int rc;
    for (mn_node *n = t->last; n; n = n->prev) {
        if (!n->out->grad.data) continue; /* no gradient reached this node */
        for (int i = 0; i < n->n_in; i++)
            if (n->in[i]->requires_grad && (rc = ensure_grad(t, n->in[i]))) return rc;
        rc = n->backward(n, t);
        if (rc) return rc;
    }
    return 0;
}

int mn_backward_grad(mn_tape *t, mn_var *y, const float *dy)
{
    if (!y) return mn_error(MN_EINVAL, "mn_backward: no output (the forward pass failed: %s)", mn_last_error());
    if (!y->requires_grad) return 0; /* nothing trainable reached y */
    int rc = ensure_grad(t, y);
    if (rc) return rc;
    int64_t n = mn_tensor_numel(&y->val);
    for (int64_t i = 0; i < n; i++) y->grad.data[i] += dy[i];
    return run_backward(t);
}

int mn_backward(mn_tape *t, mn_var *loss)
{
    if (!loss) return mn_error(MN_EINVAL, "mn_backward: no loss (the forward pass failed: %s)", mn_last_error());
    if (mn_tensor_numel(&loss->val) != 1)
        return mn_error(MN_ESHAPE, "mn_backward: the loss must have one element, not %lld",
                        (long long)mn_tensor_numel(&loss->val));
    const float one = 1.0f;
    return mn_backward_grad(t, loss, &one);
}

int core_grad_dense(mn_var *v, const char *op, const char *what, float **out)
{
    if (out) *out = NULL;
    if (!v || !v->requires_grad) return 0;
    if (!mn_tensor_is_contiguous(&v->grad)) {
        char shape[64];
        return mn_error(MN_EINVAL, "%s backward: the gradient of %s %s is a strided view; it must be contiguous", op, what,
                        mn_shape_str(&v->grad, shape, sizeof shape));
    }
    if (out) *out = v->grad.data;
    return 0;
}

mn_var *mn_trace_emit(mn_tape *t, mn_var *y, const mn_trace_event *e)
{
    if (!y || !t->tracer) return y;
    return t->tracer->record(t->tracer, e) ? NULL : y;
}
