/* mn_conv2d and mn_linear: shape checks, tape nodes, and the kernels of core/kernels/conv.c.
 *
 * Weights may be channel-prefix views of full-width parameters: the kernels take the row
 * stride (stride[0]) and the weight gradient is written through the gradient view with the
 * same stride, so it lands in the matching slice of the full gradient buffer. Scratch memory
 * comes from the tape arena. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/kernels/conv.h"
#include "core/grad.h"
#include "mn/ops.h"
#include "mn/trace.h"

typedef struct conv_ctx {
    mn_conv2d_dims d;
} conv_ctx;

/* Row stride of a weight whose dims after the first are packed row-major (a prefix view is),
 * or -1. Dims of size 1 may carry any stride. */
static int64_t row_stride(const mn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 1; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return -1;
        s *= t->shape[i];
    }
    if (t->shape[0] == 1) return s;
    return t->stride[0] >= s ? t->stride[0] : -1;
}

/* A float buffer from the tape arena (NULL for 0 floats is fine; error set on failure). */
static float *scratch(mn_tape *t, size_t floats, bool *ok)
{
    *ok = true;
    if (!floats) return NULL;
    float *p = mn_arena_alloc(&t->arena, floats * sizeof(float));
    if (!p) *ok = false;
    return p;
}

/* The weight as the kernels read it when its gradient view has another row stride than its
 * value (a weight that is not a leaf slice): a copy with the gradient's row stride. */
static const float *weight_for_grad(mn_tape *t, const mn_tensor *w, int64_t rows, int64_t row, int64_t ld_val,
                                    int64_t ld_grad)
{
    if (ld_val == ld_grad) return w->data;
    float *c = mn_arena_alloc(&t->arena, (size_t)(rows * ld_grad) * sizeof(float));
    if (!c) return NULL;
    for (int64_t r = 0; r < rows; r++) memcpy(c + r * ld_grad, w->data + r * ld_val, (size_t)row * sizeof(float));
    return c;
}

/* ---- conv2d ---- */

static int conv2d_backward(mn_node *nd, mn_tape *t)
{
    const conv_ctx *c = nd->ctx;
    mn_conv2d_dims d = c->d;
    mn_var *x = nd->in[0], *w = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    int rc;
    if ((rc = core_grad_dense(x, "conv2d", "input", NULL)) || (rc = core_grad_dense(b, "conv2d", "bias", NULL)))
        return rc;
    const float *wv = w->val.data;
    float *dw = NULL;
    if (w->requires_grad) {
        int64_t ldg = row_stride(&w->grad);
        if (ldg < 0) {
            char s[64];
            return mn_error(MN_EINVAL, "conv2d: weight gradient view %s has an unsupported layout",
                            mn_shape_str(&w->grad, s, sizeof s));
        }
        int64_t row = (int64_t)(d.cin / d.groups) * d.kh * d.kw;
        wv = weight_for_grad(t, &w->val, d.cout, row, d.ldw, ldg);
        if (!wv) return MN_ENOMEM;
        d.ldw = ldg;
        dw = w->grad.data;
    }
    bool ok;
    float *ws = scratch(t, mn_conv2d_workspace_floats(&d, true), &ok);
    if (!ok) return MN_ENOMEM;
    mn_conv2d_backward(x->requires_grad ? x->grad.data : NULL, dw, b && b->requires_grad ? b->grad.data : NULL,
                       nd->out->grad.data, x->val.data, wv, ws, &d);
    return 0;
}

/* What mn_conv2d_bn_act folds into the convolution's output pass (eval-mode batch norm and
 * a clamp); NULL: a plain, recorded convolution. */
typedef struct conv_fuse {
    mn_var *gamma, *beta;   /* (Cout) or NULL */
    const mn_bn_state *st;  /* running statistics */
    float eps, lo, hi;
} conv_fuse;

/* scale, shift (C): the per-channel affine map of eval-mode batch norm, computed with the
 * same float expressions as mn_batch_norm and mn_bn_forward_eval (so the values agree). */
static int bn_eval_affine(float *scale, float *shift, mn_tape *t, const conv_fuse *f, const mn_var *y, int64_t c)
{
    char ys[64], gs[64];
    if (!f->st || !f->st->running_mean || !f->st->running_var)
        return mn_error(MN_EINVAL, "conv2d_bn_act: eval-mode batch norm of %s needs running_mean and running_var",
                        mn_shape_str(&y->val, ys, sizeof ys));
    mn_var *ab[2] = {f->gamma, f->beta};
    const char *names[2] = {"gamma", "beta"};
    for (int i = 0; i < 2; i++) {
        if (!ab[i]) continue;
        if (ab[i]->val.ndim != 1 || ab[i]->val.shape[0] != c)
            return mn_error(MN_ESHAPE, "conv2d_bn_act: %s has shape %s, expected [%lld] for convolution output %s",
                            names[i], mn_shape_str(&ab[i]->val, gs, sizeof gs), (long long)c,
                            mn_shape_str(&y->val, ys, sizeof ys));
        if (!(ab[i] = mn_contiguous(t, ab[i]))) return mn_last_error_code();
    }
    const float *g = ab[0] ? ab[0]->val.data : NULL, *be = ab[1] ? ab[1]->val.data : NULL;
    for (int64_t i = 0; i < c; i++) {
        const float m = f->st->running_mean[i], v = f->st->running_var[i];
        if (!isfinite(m) || !isfinite(v) || !(v + f->eps > 0.0f))
            return mn_error(MN_ENUMERIC, "conv2d_bn_act: channel %lld of %s has unusable running statistics (mean %g, "
                            "var %g)", (long long)i, mn_shape_str(&y->val, ys, sizeof ys), (double)m, (double)v);
        const float invstd = 1.0f / sqrtf(v + f->eps);
        scale[i] = invstd * (g ? g[i] : 1.0f);
        shift[i] = (be ? be[i] : 0.0f) - m * scale[i];
    }
    return 0;
}

static mn_var *conv_forward(mn_tape *t, mn_var *x, mn_var *w, mn_var *b, const mn_conv2d_params *p,
                            const conv_fuse *f)
{
    if (!x || !w) return NULL;
    char xs[64], wsh[64], bs[64];
    if (!p) {
        mn_error(MN_EINVAL, "conv2d: no parameters given");
        return NULL;
    }
    /* the shapes are formatted only for an error message: this runs for every layer */
#define CONV_SHAPES() (mn_shape_str(&x->val, xs, sizeof xs), mn_shape_str(&w->val, wsh, sizeof wsh))
    if (x->val.ndim != 4 || w->val.ndim != 4) {
        CONV_SHAPES();
        mn_error(MN_ESHAPE, "conv2d: input %s and weight %s must both be 4-D (N, C, H, W) and (Cout, Cin/groups, KH, KW)",
                 xs, wsh);
        return NULL;
    }
    if (p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1 || p->pad_h < 0 || p->pad_w < 0 ||
        p->groups < 1) {
        CONV_SHAPES();
        mn_error(MN_EINVAL, "conv2d: input %s, weight %s: stride (%d, %d) and dilation (%d, %d) must be >= 1, padding "
                 "(%d, %d) >= 0, groups %d >= 1", xs, wsh, p->stride_h, p->stride_w, p->dil_h, p->dil_w, p->pad_h,
                 p->pad_w, p->groups);
        return NULL;
    }
    const int64_t n = x->val.shape[0], cin = x->val.shape[1], h = x->val.shape[2], wd = x->val.shape[3];
    const int64_t cout = w->val.shape[0], kh = w->val.shape[2], kw = w->val.shape[3];
    if (w->val.shape[1] * p->groups != cin) {
        CONV_SHAPES();
        mn_error(MN_ESHAPE, "conv2d: input %s has %lld channels but weight %s with groups %d expects %lld", xs,
                 (long long)cin, wsh, p->groups, (long long)(w->val.shape[1] * p->groups));
        return NULL;
    }
    if (cout % p->groups) {
        CONV_SHAPES();
        mn_error(MN_ESHAPE, "conv2d: weight %s has %lld output channels, not a multiple of groups %d", wsh,
                 (long long)cout, p->groups);
        return NULL;
    }
    if (b && (b->val.ndim != 1 || b->val.shape[0] != cout)) {
        CONV_SHAPES();
        mn_error(MN_ESHAPE, "conv2d: bias %s does not match weight %s (expected [%lld])",
                 mn_shape_str(&b->val, bs, sizeof bs), wsh, (long long)cout);
        return NULL;
    }
    int64_t eh = h + 2 * p->pad_h - (int64_t)p->dil_h * (kh - 1) - 1;
    int64_t ew = wd + 2 * p->pad_w - (int64_t)p->dil_w * (kw - 1) - 1;
    if (eh < 0 || ew < 0) {
        CONV_SHAPES();
        mn_error(MN_ESHAPE, "conv2d: weight %s (dilation %d, %d) is larger than input %s padded by (%d, %d)", wsh,
                 p->dil_h, p->dil_w, xs, p->pad_h, p->pad_w);
        return NULL;
    }
    if (n > INT32_MAX || cin > INT32_MAX || h > INT32_MAX || wd > INT32_MAX || cout > INT32_MAX) {
        CONV_SHAPES();
        mn_error(MN_ESHAPE, "conv2d: input %s or weight %s is too large", xs, wsh);
        return NULL;
    }
#undef CONV_SHAPES
    /* activations must be contiguous; a weight needs packed rows (any row stride) */
    x = mn_contiguous(t, x);
    if (row_stride(&w->val) < 0) w = mn_contiguous(t, w);
    const bool has_b = b != NULL;
    if (b && b->val.stride[0] != 1) b = mn_contiguous(t, b);
    if (!x || !w || (has_b && !b)) return NULL;

    mn_conv2d_dims d;
    if (mn_conv2d_dims_init(&d, (int)n, (int)cin, (int)h, (int)wd, (int)cout, (int)kh, (int)kw, p,
                            row_stride(&w->val)))
        return NULL;
    int64_t shape[4] = {n, cout, d.ho, d.wo};
    mn_var *y = mn_var_new(t, 4, shape);
    if (!y) return NULL;
    bool ok;
    float *ws = scratch(t, mn_conv2d_workspace_floats(&d, false), &ok);
    if (!ok) return NULL;
    if (f) {
        float *scale = scratch(t, 2 * (size_t)cout, &ok);
        if (!ok || bn_eval_affine(scale, scale + cout, t, f, y, cout)) return NULL;
        mn_conv2d_forward_affine(y->val.data, x->val.data, w->val.data, b ? b->val.data : NULL, scale, scale + cout,
                                 f->lo, f->hi, ws, &d);
        return y; /* the caller made sure that nothing is recorded */
    }
    mn_conv2d_forward(y->val.data, x->val.data, w->val.data, b ? b->val.data : NULL, ws, &d);

    mn_var *in[3] = {x, w, b};
    int n_in = b ? 3 : 2;
    if (mn_tape_wants(t, in, n_in)) {
        mn_node *nd = mn_tape_record(t, "conv2d", y, in, n_in, conv2d_backward, sizeof(conv_ctx));
        if (!nd) return NULL;
        ((conv_ctx *)nd->ctx)->d = d;
    }
    return y;
}

mn_var *mn_conv2d(mn_tape *t, mn_var *x, mn_var *w, mn_var *b, const mn_conv2d_params *p)
{
    mn_var *y = conv_forward(t, x, w, b, p, NULL);
    if (!y || !t->tracer) return y;
    mn_var *in[3] = {x, w, b};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_CONV, .name = "conv2d", .out = y, .in = in, .n_in = 3,
                                                 .conv = *p});
}

mn_var *mn_conv2d_bn_act(mn_tape *t, mn_var *x, mn_var *w, mn_var *b, const mn_conv2d_params *p, mn_var *gamma,
                         mn_var *beta, const mn_bn_state *st, float eps, int act)
{
    if (!x || !w) return NULL;
    if (act != 0 && act != 1 && act != 6) {
        mn_error(MN_EINVAL, "conv2d_bn_act: activation %d is not 0 (none), 1 (ReLU) or 6 (ReLU6)", act);
        return NULL;
    }
    mn_var *in[5] = {x, w, b, gamma, beta};
    if (mn_tape_wants(t, in, 5)) {
        /* gradients wanted: recorded ops (the fused pass keeps nothing for backward) */
        const mn_bn_params bp = {eps, 0.0f, false, NULL};
        return mn_batch_norm_act(t, mn_conv2d(t, x, w, b, p), gamma, beta, st, &bp, act);
    }
    const conv_fuse f = {gamma, beta, st, eps, act ? 0.0f : -INFINITY, act == 6 ? 6.0f : INFINITY};
    mn_var *y = conv_forward(t, x, w, b, p, &f);
    if (!y || !t->tracer) return y;
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_CONV_BN_ACT, .name = "conv2d_bn_act", .out = y,
                                                 .in = in, .n_in = 5, .conv = *p, .bn = *st, .eps = eps, .act = act});
}

/* ---- linear ---- */

static int linear_backward(mn_node *nd, mn_tape *t)
{
    mn_var *x = nd->in[0], *w = nd->in[1], *b = nd->n_in > 2 ? nd->in[2] : NULL;
    int rc;
    if ((rc = core_grad_dense(x, "linear", "input", NULL)) || (rc = core_grad_dense(b, "linear", "bias", NULL)))
        return rc;
    const int n = (int)x->val.shape[0], out = (int)w->val.shape[0], in = (int)w->val.shape[1];
    int64_t ldw = row_stride(&w->val);
    const float *wv = w->val.data;
    float *dw = NULL;
    if (w->requires_grad) {
        int64_t ldg = row_stride(&w->grad);
        if (ldg < 0) {
            char s[64];
            return mn_error(MN_EINVAL, "linear: weight gradient view %s has an unsupported layout",
                            mn_shape_str(&w->grad, s, sizeof s));
        }
        wv = weight_for_grad(t, &w->val, out, in, ldw, ldg);
        if (!wv) return MN_ENOMEM;
        ldw = ldg;
        dw = w->grad.data;
    }
    mn_linear_backward(x->requires_grad ? x->grad.data : NULL, dw, b && b->requires_grad ? b->grad.data : NULL,
                       nd->out->grad.data, x->val.data, wv, n, in, out, ldw);
    return 0;
}

mn_var *mn_linear(mn_tape *t, mn_var *x, mn_var *w, mn_var *b)
{
    if (!x || !w) return NULL;
    char xs[64], wsh[64], bs[64];
    mn_shape_str(&x->val, xs, sizeof xs);
    mn_shape_str(&w->val, wsh, sizeof wsh);
    /* (N, C, 1, 1), what global pooling yields, is read as (N, C) */
    bool pooled = x->val.ndim == 4 && x->val.shape[2] == 1 && x->val.shape[3] == 1;
    if ((x->val.ndim != 2 && !pooled) || w->val.ndim != 2) {
        mn_error(MN_ESHAPE, "linear: input %s must be (N, IN) or (N, IN, 1, 1) and weight %s (OUT, IN)", xs, wsh);
        return NULL;
    }
    const int64_t n = x->val.shape[0], in = x->val.shape[1], out = w->val.shape[0];
    if (w->val.shape[1] != in) {
        mn_error(MN_ESHAPE, "linear: input %s has %lld features but weight %s expects %lld", xs, (long long)in, wsh,
                 (long long)w->val.shape[1]);
        return NULL;
    }
    if (b && (b->val.ndim != 1 || b->val.shape[0] != out)) {
        mn_error(MN_ESHAPE, "linear: bias %s does not match weight %s (expected [%lld])",
                 mn_shape_str(&b->val, bs, sizeof bs), wsh, (long long)out);
        return NULL;
    }
    if (n < 1 || in < 1 || out < 1 || n > INT32_MAX || in > INT32_MAX || out > INT32_MAX) {
        mn_error(MN_ESHAPE, "linear: input %s or weight %s is empty or too large", xs, wsh);
        return NULL;
    }
    x = mn_contiguous(t, x);
    if (row_stride(&w->val) < 0) w = mn_contiguous(t, w);
    if (b && b->val.stride[0] != 1) b = mn_contiguous(t, b);
    if (!x || !w) return NULL;
    int64_t ldw = row_stride(&w->val);
    if (ldw > INT32_MAX) {
        mn_error(MN_ESHAPE, "linear: weight %s row stride %lld is too large", wsh, (long long)ldw);
        return NULL;
    }
    int64_t shape[2] = {n, out};
    mn_var *y = mn_var_new(t, 2, shape);
    if (!y) return NULL;
    mn_linear_forward(y->val.data, x->val.data, w->val.data, b ? b->val.data : NULL, (int)n, (int)in, (int)out, ldw);

    mn_var *inp[3] = {x, w, b};
    int n_in = b ? 3 : 2;
    if (mn_tape_wants(t, inp, n_in) && !mn_tape_record(t, "linear", y, inp, n_in, linear_backward, 0)) return NULL;
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_LINEAR, .name = "linear", .out = y, .in = inp,
                                                 .n_in = 3});
}
