#include "core/kernels/eltwise.h"
#include "core/grad.h"
#include "mn/ops.h"
#include "mn/trace.h"

/* ---- ReLU, ReLU6 ---- */

static int relu_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    mn_relu_backward(dx, nd->out->grad.data, x->val.data, mn_tensor_numel(&x->val));
    return 0;
}

static int relu6_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    mn_relu6_backward(dx, nd->out->grad.data, x->val.data, mn_tensor_numel(&x->val));
    return 0;
}

static mn_var *relu_untraced(mn_tape *t, mn_var *x)
{
    x = mn_contiguous(t, x);
    if (!x) return NULL;
    mn_var *y = mn_var_new(t, x->val.ndim, x->val.shape);
    if (!y) return NULL;
    mn_relu_forward(y->val.data, x->val.data, mn_tensor_numel(&x->val));
    if (mn_tape_wants(t, &x, 1) && !mn_tape_record(t, "relu", y, &x, 1, relu_backward, 0)) return NULL;
    return y;
}

mn_var *mn_relu(mn_tape *t, mn_var *x)
{
    mn_var *y = relu_untraced(t, x), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_RELU, .name = "relu", .out = y, .in = in, .n_in = 1});
}

static mn_var *relu6_untraced(mn_tape *t, mn_var *x)
{
    x = mn_contiguous(t, x);
    if (!x) return NULL;
    mn_var *y = mn_var_new(t, x->val.ndim, x->val.shape);
    if (!y) return NULL;
    mn_relu6_forward(y->val.data, x->val.data, mn_tensor_numel(&x->val));
    if (mn_tape_wants(t, &x, 1) && !mn_tape_record(t, "relu6", y, &x, 1, relu6_backward, 0)) return NULL;
    return y;
}

mn_var *mn_relu6(mn_tape *t, mn_var *x)
{
    mn_var *y = relu6_untraced(t, x), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_RELU6, .name = "relu6", .out = y, .in = in, .n_in = 1});
}

/* ---- add, scale ---- */

static int add_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    const float *gy = nd->out->grad.data;
    int64_t n = mn_tensor_numel(&nd->out->val);
    for (int i = 0; i < 2; i++) {
        float *d;
        int rc = core_grad_dense(nd->in[i], nd->op, "input", &d);
        if (rc) return rc;
        if (d) mn_scale_backward(d, gy, 1.0f, n);
    }
    return 0;
}

static mn_var *add_untraced(mn_tape *t, mn_var *a, mn_var *b)
{
    if (!a || !b) return NULL;
    if (!mn_tensor_same_shape(&a->val, &b->val)) {
        char b1[64], b2[64];
        mn_error(MN_ESHAPE, "mn_add: shapes %s and %s differ", mn_shape_str(&a->val, b1, sizeof b1),
                 mn_shape_str(&b->val, b2, sizeof b2));
        return NULL;
    }
    a = mn_contiguous(t, a);
    b = mn_contiguous(t, b);
    if (!a || !b) return NULL;
    mn_var *y = mn_var_new(t, a->val.ndim, a->val.shape);
    if (!y) return NULL;
    mn_add_forward(y->val.data, a->val.data, b->val.data, mn_tensor_numel(&a->val));
    mn_var *in[2] = {a, b};
    if (mn_tape_wants(t, in, 2) && !mn_tape_record(t, "add", y, in, 2, add_backward, 0)) return NULL;
    return y;
}

mn_var *mn_add(mn_tape *t, mn_var *a, mn_var *b)
{
    mn_var *y = add_untraced(t, a, b), *in[2] = {a, b};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_ADD, .name = "add", .out = y, .in = in, .n_in = 2});
}

static int scale_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    float *dx;
    int rc = core_grad_dense(nd->in[0], nd->op, "input", &dx);
    if (rc || !dx) return rc;
    mn_scale_backward(dx, nd->out->grad.data, *(const float *)nd->ctx, mn_tensor_numel(&nd->out->val));
    return 0;
}

static mn_var *scale_untraced(mn_tape *t, mn_var *x, float s)
{
    x = mn_contiguous(t, x);
    if (!x) return NULL;
    mn_var *y = mn_var_new(t, x->val.ndim, x->val.shape);
    if (!y) return NULL;
    mn_scale_forward(y->val.data, x->val.data, s, mn_tensor_numel(&x->val));
    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "scale", y, &x, 1, scale_backward, sizeof(float));
        if (!nd) return NULL;
        *(float *)nd->ctx = s;
    }
    return y;
}

mn_var *mn_scale(mn_tape *t, mn_var *x, float s)
{
    mn_var *y = scale_untraced(t, x, s), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_SCALE, .name = "scale", .out = y, .in = in, .n_in = 1, .scale = s});
}

/* ---- concat along channels ---- */

typedef struct concat_ctx {
    int64_t *cs;  /* (k) channels of each input */
    int64_t n, s; /* batch size, H * W */
} concat_ctx;

static int concat_backward(mn_node *nd, mn_tape *t)
{
    concat_ctx *c = nd->ctx;
    float **dxs = mn_arena_alloc(&t->arena, sizeof(float *) * (size_t)nd->n_in);
    if (!dxs) return MN_ENOMEM;
    for (int i = 0; i < nd->n_in; i++) {
        int rc = core_grad_dense(nd->in[i], nd->op, "input", &dxs[i]);
        if (rc) return rc;
    }
    mn_concat_backward(dxs, nd->out->grad.data, c->cs, nd->n_in, c->n, c->s);
    return 0;
}

static mn_var *concat_untraced(mn_tape *t, mn_var *const *xs, int n)
{
    if (!xs || n < 1) {
        mn_error(MN_EINVAL, "mn_concat: no inputs (n = %d)", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!xs[i]) return NULL;
    char b1[64], b2[64];
    const mn_tensor *x0 = &xs[0]->val;
    int64_t ctot = 0;
    for (int i = 0; i < n; i++) {
        const mn_tensor *xi = &xs[i]->val;
        if (xi->ndim != 4 || xi->shape[0] != x0->shape[0] || xi->shape[2] != x0->shape[2] ||
            xi->shape[3] != x0->shape[3]) {
            if (xi->ndim != 4)
                mn_error(MN_ESHAPE, "mn_concat: input %d has shape %s, expected (N, C, H, W)", i,
                         mn_shape_str(xi, b1, sizeof b1));
            else
                mn_error(MN_ESHAPE, "mn_concat: input %d has shape %s but input 0 has %s (N, H and W must match)",
                         i, mn_shape_str(xi, b1, sizeof b1), mn_shape_str(x0, b2, sizeof b2));
            return NULL;
        }
        ctot += xi->shape[1];
    }
    mn_var **in = mn_arena_alloc(&t->arena, sizeof(mn_var *) * (size_t)n);
    const float **src = mn_arena_alloc(&t->arena, sizeof(float *) * (size_t)n);
    int64_t *cs = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)n);
    if (!in || !src || !cs) return NULL;
    for (int i = 0; i < n; i++) {
        if (!(in[i] = mn_contiguous(t, xs[i]))) return NULL;
        src[i] = in[i]->val.data;
        cs[i] = in[i]->val.shape[1];
    }
    int64_t shape[4] = {x0->shape[0], ctot, x0->shape[2], x0->shape[3]};
    mn_var *y = mn_var_new(t, 4, shape);
    if (!y) return NULL;
    const int64_t s = shape[2] * shape[3];
    mn_concat_forward(y->val.data, src, cs, n, shape[0], s);
    if (mn_tape_wants(t, in, n)) {
        mn_node *nd = mn_tape_record(t, "concat", y, in, n, concat_backward, sizeof(concat_ctx));
        if (!nd) return NULL;
        concat_ctx *c = nd->ctx;
        c->cs = cs;
        c->n = shape[0];
        c->s = s;
    }
    return y;
}

mn_var *mn_concat(mn_tape *t, mn_var *const *xs, int n)
{
    mn_var *y = concat_untraced(t, xs, n);
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_CONCAT, .name = "concat", .out = y, .in = xs, .n_in = n});
}
