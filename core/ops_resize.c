#include "core/kernels/resize.h"
#include "core/grad.h"
#include "mn/ops.h"
#include "mn/trace.h"

typedef struct resize_ctx {
    int64_t *h0, *h1, *w0, *w1; /* (OH), (OH), (OW), (OW) source rows / columns */
    float *hl, *wl;             /* (OH), (OW) upper-neighbour weights (bilinear only) */
} resize_ctx;

/* Checks the input and output size; returns the contiguous input or NULL (error set). */
static mn_var *check_resize(mn_tape *t, const char *op, mn_var *x, int oh, int ow)
{
    if (!x) return NULL;
    char buf[64];
    if (x->val.ndim != 4 || x->val.shape[2] < 1 || x->val.shape[3] < 1) {
        mn_error(MN_ESHAPE, "%s: input %s must be (N, C, H, W) with H, W >= 1", op,
                 mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    if (oh < 1 || ow < 1) {
        mn_error(MN_EINVAL, "%s: output size %dx%d for input %s must be at least 1x1", op, oh, ow,
                 mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    return mn_contiguous(t, x);
}

/* ---- bilinear ---- */

static int bilinear_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    resize_ctx *c = nd->ctx;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    const int64_t *xs = x->val.shape, *ys = nd->out->val.shape;
    mn_resize_bilinear_backward(dx, c->h0, c->h1, c->hl, c->w0, c->w1, c->wl, nd->out->grad.data, xs[0], xs[1], xs[2],
                                xs[3], ys[2], ys[3]);
    return 0;
}

static mn_var *resize_bilinear_untraced(mn_tape *t, mn_var *x, int oh, int ow, bool align_corners)
{
    if (!(x = check_resize(t, "mn_resize_bilinear", x, oh, ow))) return NULL;
    const int64_t *xs = x->val.shape;
    int64_t shape[4] = {xs[0], xs[1], oh, ow};
    mn_var *y = mn_var_new(t, 4, shape);
    int64_t *idx = mn_arena_alloc(&t->arena, sizeof(int64_t) * 2 * (size_t)(oh + ow));
    float *wts = mn_arena_alloc(&t->arena, sizeof(float) * (size_t)(oh + ow));
    if (!y || !idx || !wts) return NULL;
    resize_ctx c = {idx, idx + oh, idx + 2 * oh, idx + 2 * oh + ow, wts, wts + oh};
    mn_resize_linear_taps(c.h0, c.h1, c.hl, xs[2], oh, align_corners);
    mn_resize_linear_taps(c.w0, c.w1, c.wl, xs[3], ow, align_corners);
    mn_resize_bilinear_forward(y->val.data, c.h0, c.h1, c.hl, c.w0, c.w1, c.wl, x->val.data, xs[0], xs[1], xs[2],
                               xs[3], oh, ow);
    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "resize_bilinear", y, &x, 1, bilinear_backward, sizeof(resize_ctx));
        if (!nd) return NULL;
        *(resize_ctx *)nd->ctx = c;
    }
    return y;
}

mn_var *mn_resize_bilinear(mn_tape *t, mn_var *x, int oh, int ow, bool align_corners)
{
    mn_var *y = resize_bilinear_untraced(t, x, oh, ow, align_corners), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_RESIZE_BILINEAR, .name = "resize_bilinear", .out = y, .in = in, .n_in = 1, .align_corners = align_corners});
}

/* ---- nearest ---- */

static int nearest_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    resize_ctx *c = nd->ctx;
    mn_var *x = nd->in[0];
    float *dx;
    int rc = core_grad_dense(x, nd->op, "input", &dx);
    if (rc || !dx) return rc;
    const int64_t *xs = x->val.shape, *ys = nd->out->val.shape;
    mn_resize_nearest_backward(dx, c->h0, c->w0, nd->out->grad.data, xs[0], xs[1], xs[2], xs[3], ys[2], ys[3]);
    return 0;
}

static mn_var *resize_nearest_untraced(mn_tape *t, mn_var *x, int oh, int ow)
{
    if (!(x = check_resize(t, "mn_resize_nearest", x, oh, ow))) return NULL;
    const int64_t *xs = x->val.shape;
    int64_t shape[4] = {xs[0], xs[1], oh, ow};
    mn_var *y = mn_var_new(t, 4, shape);
    int64_t *idx = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)(oh + ow));
    if (!y || !idx) return NULL;
    resize_ctx c = {.h0 = idx, .w0 = idx + oh};
    mn_resize_nearest_taps(c.h0, xs[2], oh);
    mn_resize_nearest_taps(c.w0, xs[3], ow);
    mn_resize_nearest_forward(y->val.data, c.h0, c.w0, x->val.data, xs[0], xs[1], xs[2], xs[3], oh, ow);
    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "resize_nearest", y, &x, 1, nearest_backward, sizeof(resize_ctx));
        if (!nd) return NULL;
        *(resize_ctx *)nd->ctx = c;
    }
    return y;
}

mn_var *mn_resize_nearest(mn_tape *t, mn_var *x, int oh, int ow)
{
    mn_var *y = resize_nearest_untraced(t, x, oh, ow), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_RESIZE_NEAREST, .name = "resize_nearest", .out = y, .in = in, .n_in = 1});
}
