#include "core/kernels/pool.h"
#include "core/grad.h"
#include "mn/ops.h"
#include "mn/trace.h"

typedef struct pool_ctx {
    int32_t *argmax; /* (N, C, Ho, Wo), max pooling only */
    int k, stride, pad;
} pool_ctx;

/* Checks a pooling op's input and window; returns the contiguous input or NULL (error set). */
static mn_var *check_pool(mn_tape *t, const char *op, mn_var *x, int k, int stride, int pad, int64_t *ho,
                          int64_t *wo)
{
    if (!x) return NULL;
    char buf[64];
    if (x->val.ndim != 4) {
        mn_error(MN_ESHAPE, "%s: input %s must be (N, C, H, W)", op, mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    if (k < 1 || stride < 1 || pad < 0 || 2 * pad > k) {
        mn_error(MN_EINVAL, "%s: bad window k=%d stride=%d pad=%d (need k, stride >= 1 and 0 <= pad <= k/2)", op, k,
                 stride, pad);
        return NULL;
    }
    *ho = mn_pool2d_out(x->val.shape[2], k, stride, pad);
    *wo = mn_pool2d_out(x->val.shape[3], k, stride, pad);
    if (*ho < 1 || *wo < 1) {
        mn_error(MN_ESHAPE, "%s: input %s is smaller than a %dx%d window with padding %d", op,
                 mn_shape_str(&x->val, buf, sizeof buf), k, k, pad);
        return NULL;
    }
    if (x->val.shape[2] * x->val.shape[3] > INT32_MAX) {
        mn_error(MN_ESHAPE, "%s: input plane %s has more than 2^31 elements", op,
                 mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    return mn_contiguous(t, x);
}

/* ---- max pooling ---- */

static int max_pool_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    pool_ctx *c = nd->ctx;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    const int64_t *xs = x->val.shape, *ys = nd->out->val.shape;
    mn_max_pool2d_backward(dx, c->argmax, nd->out->grad.data, xs[0], xs[1], xs[2], xs[3], ys[2], ys[3]);
    return 0;
}

static mn_var *max_pool2d_untraced(mn_tape *t, mn_var *x, int k, int stride, int pad)
{
    int64_t ho, wo;
    if (!(x = check_pool(t, "mn_max_pool2d", x, k, stride, pad, &ho, &wo))) return NULL;
    const int64_t *xs = x->val.shape;
    int64_t shape[4] = {xs[0], xs[1], ho, wo};
    mn_var *y = mn_var_new(t, 4, shape);
    if (!y) return NULL;
    /* the kernel always writes the argmax; only backward reads it */
    int32_t *am = mn_arena_alloc(&t->arena, sizeof(int32_t) * (size_t)mn_tensor_numel(&y->val));
    if (!am) return NULL;
    mn_max_pool2d_forward(y->val.data, am, x->val.data, xs[0], xs[1], xs[2], xs[3], k, stride, pad);
    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "max_pool2d", y, &x, 1, max_pool_backward, sizeof(pool_ctx));
        if (!nd) return NULL;
        pool_ctx *c = nd->ctx;
        c->argmax = am;
        c->k = k;
        c->stride = stride;
        c->pad = pad;
    }
    return y;
}

mn_var *mn_max_pool2d(mn_tape *t, mn_var *x, int k, int stride, int pad)
{
    mn_var *y = max_pool2d_untraced(t, x, k, stride, pad), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_MAX_POOL, .name = "max_pool2d", .out = y, .in = in, .n_in = 1, .k = k, .stride = stride, .pad = pad});
}

/* ---- average pooling ---- */

static int avg_pool_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    pool_ctx *c = nd->ctx;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    const int64_t *xs = x->val.shape;
    mn_avg_pool2d_backward(dx, nd->out->grad.data, xs[0], xs[1], xs[2], xs[3], c->k, c->stride, c->pad);
    return 0;
}

static mn_var *avg_pool2d_untraced(mn_tape *t, mn_var *x, int k, int stride, int pad)
{
    int64_t ho, wo;
    if (!(x = check_pool(t, "mn_avg_pool2d", x, k, stride, pad, &ho, &wo))) return NULL;
    const int64_t *xs = x->val.shape;
    int64_t shape[4] = {xs[0], xs[1], ho, wo};
    mn_var *y = mn_var_new(t, 4, shape);
    if (!y) return NULL;
    mn_avg_pool2d_forward(y->val.data, x->val.data, xs[0], xs[1], xs[2], xs[3], k, stride, pad);
    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "avg_pool2d", y, &x, 1, avg_pool_backward, sizeof(pool_ctx));
        if (!nd) return NULL;
        pool_ctx *c = nd->ctx;
        c->k = k;
        c->stride = stride;
        c->pad = pad;
    }
    return y;
}

mn_var *mn_avg_pool2d(mn_tape *t, mn_var *x, int k, int stride, int pad)
{
    mn_var *y = avg_pool2d_untraced(t, x, k, stride, pad), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_AVG_POOL, .name = "avg_pool2d", .out = y, .in = in, .n_in = 1, .k = k, .stride = stride, .pad = pad});
}

/* ---- global average pooling ---- */

static int global_avg_pool_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    const int64_t *xs = x->val.shape;
    mn_global_avg_pool_backward(dx, nd->out->grad.data, xs[0], xs[1], xs[2] * xs[3]);
    return 0;
}

static mn_var *global_avg_pool_untraced(mn_tape *t, mn_var *x)
{
    if (!x) return NULL;
    if (x->val.ndim != 4 || x->val.shape[2] * x->val.shape[3] < 1) {
        char buf[64];
        mn_error(MN_ESHAPE, "mn_global_avg_pool: input %s must be (N, C, H, W) with H, W >= 1",
                 mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    if (!(x = mn_contiguous(t, x))) return NULL;
    const int64_t *xs = x->val.shape;
    int64_t shape[4] = {xs[0], xs[1], 1, 1};
    mn_var *y = mn_var_new(t, 4, shape);
    if (!y) return NULL;
    mn_global_avg_pool_forward(y->val.data, x->val.data, xs[0], xs[1], xs[2] * xs[3]);
    if (mn_tape_wants(t, &x, 1) && !mn_tape_record(t, "global_avg_pool", y, &x, 1, global_avg_pool_backward, 0))
        return NULL;
    return y;
}

mn_var *mn_global_avg_pool(mn_tape *t, mn_var *x)
{
    mn_var *y = global_avg_pool_untraced(t, x), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_GLOBAL_AVG_POOL, .name = "global_avg_pool", .out = y, .in = in, .n_in = 1});
}
