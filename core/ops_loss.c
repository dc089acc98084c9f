/* Loss ops: validation, reductions and tape nodes around core/kernels/loss.c.
 *
 * Every loss returns a (1) variable. Per-position losses are summed serially in double, so a
 * loss does not change with the thread count. Targets given as raw pointers are copied into
 * the tape arena, so callers may reuse their buffers before backward runs. */
#include <string.h>

#include "core/kernels/loss.h"
#include "mn/ops.h"
#include "mn/trace.h"

/* Adds the contiguous src into the (possibly strided, up to 4-d) gradient view dst. */
static void add_into_view(mn_tensor *dst /* any shape, strided */, const float *src /* numel(dst), contiguous */)
{
    int64_t sh[4] = {1, 1, 1, 1}, st[4] = {0, 0, 0, 0};
    int pad = MN_MAX_DIMS - dst->ndim;
    for (int i = 0; i < dst->ndim; i++) {
        sh[i + pad] = dst->shape[i];
        st[i + pad] = dst->stride[i];
    }
    int64_t k = 0;
    for (int64_t a = 0; a < sh[0]; a++)
        for (int64_t b = 0; b < sh[1]; b++)
            for (int64_t c = 0; c < sh[2]; c++)
                for (int64_t d = 0; d < sh[3]; d++)
                    dst->data[a * st[0] + b * st[1] + c * st[2] + d * st[3]] += src[k++];
}

/* Where a backward kernel may accumulate v's gradient: v's own buffer when contiguous, else
 * zeroed scratch that grad_end() adds into the strided view (a leaf slice's gradient). */
static float *grad_begin(mn_tape *t, mn_var *v)
{
    if (!v->requires_grad) return NULL;
    if (mn_tensor_is_contiguous(&v->grad)) return v->grad.data;
    return mn_arena_zalloc(&t->arena, (size_t)mn_tensor_numel(&v->grad) * sizeof(float));
}

static void grad_end(mn_var *v, float *buf)
{
    if (buf && buf != v->grad.data) add_into_view(&v->grad, buf);
}

static double sum_f64(const float *x /* (n) */, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static mn_var *scalar_out(mn_tape *t, double v)
{
    const int64_t one = 1;
    mn_var *y = mn_var_new(t, 1, &one);
    if (y) y->val.data[0] = (float)v;
    return y;
}

/* Splits a contiguous (N, C) or (N, C, H, W) tensor into n, c and hw. */
static int class_dims(const char *op, const char *what, const mn_tensor *x, int64_t *n, int64_t *c, int64_t *hw)
{
    char buf[64];
    if (x->ndim != 2 && x->ndim != 4)
        return mn_error(MN_ESHAPE, "%s: %s must be (N, C) or (N, C, H, W), not %s", op, what,
                        mn_shape_str(x, buf, sizeof buf));
    if (x->shape[1] < 1)
        return mn_error(MN_ESHAPE, "%s: %s %s has no classes", op, what, mn_shape_str(x, buf, sizeof buf));
    *n = x->shape[0];
    *c = x->shape[1];
    *hw = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    return 0;
}

static int same_shape(const char *op, const mn_var *a, const mn_var *b, const char *na, const char *nb)
{
    if (mn_tensor_same_shape(&a->val, &b->val)) return 0;
    char ba[64], bb[64];
    return mn_error(MN_ESHAPE, "%s: %s %s and %s %s differ in shape", op, na, mn_shape_str(&a->val, ba, sizeof ba), nb,
                    mn_shape_str(&b->val, bb, sizeof bb));
}

/* ---- cross-entropy ---- */

typedef struct ce_ctx {
    float *lse;          /* (N, HW) */
    int32_t *target;     /* (N, HW), copy */
    int ignore_index;
    int64_t n, c, hw, n_valid;
} ce_ctx;

static int ce_backward(mn_node *nd, mn_tape *t)
{
    ce_ctx *cx = nd->ctx;
    mn_var *x = nd->in[0];
    if (!x->requires_grad || cx->n_valid == 0) return 0; /* all ignored: zero gradient */
    float *dx = grad_begin(t, x);
    if (!dx) return mn_last_error_code();
    float scale = nd->out->grad.data[0] / (float)cx->n_valid;
    mn_ce_backward(dx, cx->lse, x->val.data, cx->target, cx->ignore_index, scale, cx->n, cx->c, cx->hw);
    grad_end(x, dx);
    return 0;
}

static mn_var *cross_entropy_untraced(mn_tape *t, mn_var *logits, const int32_t *target, int ignore_index)
{
    static const char *op = "mn_cross_entropy";
    if (!logits) return NULL;
    if (!target) {
        mn_error(MN_EINVAL, "%s: no target", op);
        return NULL;
    }
    int64_t n = 0, c = 0, hw = 0;
    if (class_dims(op, "logits", &logits->val, &n, &c, &hw)) return NULL;
    mn_var *x = mn_contiguous(t, logits);
    if (!x) return NULL;

    int64_t m = n * hw, n_valid = 0;
    for (int64_t i = 0; i < m; i++) {
        int32_t v = target[i];
        if (v == ignore_index) continue;
        if (v < 0 || v >= c) {
            if (hw == 1)
                mn_error(MN_EINVAL,
                         "%s: target %d at position (%lld) is outside [0, %lld) and is not the ignore index %d", op,
                         (int)v, (long long)i, (long long)c, ignore_index);
            else
                mn_error(MN_EINVAL,
                         "%s: target %d at position (n=%lld, h=%lld, w=%lld) is outside [0, %lld) and is not the "
                         "ignore index %d",
                         op, (int)v, (long long)(i / hw), (long long)(i % hw / logits->val.shape[3]),
                         (long long)(i % logits->val.shape[3]), (long long)c, ignore_index);
            return NULL;
        }
        n_valid++;
    }

    float *lse = mn_arena_alloc(&t->arena, (size_t)m * sizeof(float));
    float *lpos = mn_arena_alloc(&t->arena, (size_t)m * sizeof(float));
    if (!lse || !lpos) return NULL;
    mn_ce_forward(lpos, lse, x->val.data, target, ignore_index, n, c, hw);
    mn_var *y = scalar_out(t, n_valid ? sum_f64(lpos, m) / (double)n_valid : 0.0);
    if (!y) return NULL;

    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "cross_entropy", y, &x, 1, ce_backward, sizeof(ce_ctx));
        if (!nd) return NULL;
        ce_ctx *cx = nd->ctx;
        cx->target = mn_arena_alloc(&t->arena, (size_t)m * sizeof(int32_t));
        if (!cx->target) return NULL;
        memcpy(cx->target, target, (size_t)m * sizeof(int32_t));
        cx->lse = lse;
        cx->ignore_index = ignore_index;
        cx->n = n;
        cx->c = c;
        cx->hw = hw;
        cx->n_valid = n_valid;
    }
    return y;
}

mn_var *mn_cross_entropy(mn_tape *t, mn_var *logits, const int32_t *target, int ignore_index)
{
    mn_var *y = cross_entropy_untraced(t, logits, target, ignore_index), *in[1] = {logits};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_OTHER, .name = "cross_entropy", .out = y, .in = in, .n_in = 1});
}

/* ---- KL divergence against a fixed distribution ---- */

typedef struct kl_ctx {
    float *lse;          /* (N, HW) */
    const float *p;      /* (N, C, HW): the teacher's values, never differentiated */
    int64_t n, c, hw;
} kl_ctx;

static int kl_backward(mn_node *nd, mn_tape *t)
{
    kl_ctx *cx = nd->ctx;
    mn_var *x = nd->in[0];
    if (!x->requires_grad) return 0;
    float *dx = grad_begin(t, x);
    if (!dx) return mn_last_error_code();
    float scale = nd->out->grad.data[0] / (float)(cx->n * cx->hw);
    mn_kl_backward(dx, cx->lse, x->val.data, cx->p, scale, cx->n, cx->c, cx->hw);
    grad_end(x, dx);
    return 0;
}

static mn_var *kl_div_untraced(mn_tape *t, mn_var *logits, mn_var *p)
{
    static const char *op = "mn_kl_div";
    if (!logits || !p) return NULL;
    int64_t n = 0, c = 0, hw = 0;
    if (class_dims(op, "logits", &logits->val, &n, &c, &hw) || same_shape(op, logits, p, "logits", "p")) return NULL;
    mn_var *x = mn_contiguous(t, logits);
    if (!x) return NULL;
    /* p is a constant: take its value only, so no gradient buffer is ever made for it. Its
     * memory must stay valid until backward has run (it is not copied). */
    const float *pv = p->val.data;
    if (!mn_tensor_is_contiguous(&p->val)) {
        mn_tensor pc = mn_tensor_alloc(&t->arena, p->val.ndim, p->val.shape);
        if (!pc.data) return NULL;
        mn_tensor_copy(&pc, &p->val);
        pv = pc.data;
    }

    int64_t m = n * hw;
    float *lse = mn_arena_alloc(&t->arena, (size_t)m * sizeof(float));
    float *lpos = mn_arena_alloc(&t->arena, (size_t)m * sizeof(float));
    if (!lse || !lpos) return NULL;
    mn_kl_forward(lpos, lse, x->val.data, pv, n, c, hw);
    mn_var *y = scalar_out(t, m ? sum_f64(lpos, m) / (double)m : 0.0);
    if (!y) return NULL;

    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "kl_div", y, &x, 1, kl_backward, sizeof(kl_ctx));
        if (!nd) return NULL;
        kl_ctx *cx = nd->ctx;
        cx->lse = lse;
        cx->p = pv;
        cx->n = n;
        cx->c = c;
        cx->hw = hw;
    }
    return y;
}

mn_var *mn_kl_div(mn_tape *t, mn_var *logits, mn_var *p)
{
    mn_var *y = kl_div_untraced(t, logits, p), *in[2] = {logits, p};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_OTHER, .name = "kl_div", .out = y, .in = in, .n_in = 2});
}

/* ---- elementwise losses ---- */

enum elt_kind { ELT_BCE, ELT_SMOOTH_L1 };

typedef struct elt_ctx {
    enum elt_kind kind;
    float beta;
    double factor;       /* 1 / numel for means, 1 for sums */
    int64_t m;
} elt_ctx;

static int elt_backward(mn_node *nd, mn_tape *t)
{
    elt_ctx *cx = nd->ctx;
    mn_var *a = nd->in[0], *b = nd->in[1];
    float *da = grad_begin(t, a), *db = grad_begin(t, b);
    if ((a->requires_grad && !da) || (b->requires_grad && !db)) return mn_last_error_code();
    float scale = (float)(nd->out->grad.data[0] * cx->factor);
    if (cx->kind == ELT_BCE)
        mn_bce_logits_backward(da, db, a->val.data, b->val.data, scale, cx->m);
    else
        mn_smooth_l1_backward(da, db, a->val.data, b->val.data, cx->beta, scale, cx->m);
    grad_end(a, da);
    grad_end(b, db);
    return 0;
}

static mn_var *elementwise_loss(mn_tape *t, const char *op, enum elt_kind kind, mn_var *a, mn_var *b, float beta,
                                enum mn_reduction r)
{
    if (!a || !b) return NULL;
    if (r != MN_REDUCE_MEAN && r != MN_REDUCE_SUM) {
        mn_error(MN_EINVAL, "%s: unknown reduction %d", op, (int)r);
        return NULL;
    }
    if (!(beta >= 0.0f)) {
        mn_error(MN_EINVAL, "%s: beta must be >= 0, not %g", op, (double)beta);
        return NULL;
    }
    if (same_shape(op, a, b, kind == ELT_BCE ? "logits" : "pred", "target")) return NULL;
    a = mn_contiguous(t, a);
    b = mn_contiguous(t, b);
    if (!a || !b) return NULL;

    int64_t m = mn_tensor_numel(&a->val);
    float *l = mn_arena_alloc(&t->arena, (size_t)m * sizeof(float));
    if (!l) return NULL;
    if (kind == ELT_BCE)
        mn_bce_logits_forward(l, a->val.data, b->val.data, m);
    else
        mn_smooth_l1_forward(l, a->val.data, b->val.data, beta, m);
    /* the mean of nothing is 0 here (PyTorch says NaN): an empty batch must not poison training */
    double factor = r == MN_REDUCE_SUM ? 1.0 : m ? 1.0 / (double)m : 0.0;
    mn_var *y = scalar_out(t, sum_f64(l, m) * factor);
    if (!y) return NULL;

    mn_var *in[2] = {a, b};
    if (mn_tape_wants(t, in, 2)) {
        mn_node *nd = mn_tape_record(t, op, y, in, 2, elt_backward, sizeof(elt_ctx));
        if (!nd) return NULL;
        elt_ctx *cx = nd->ctx;
        cx->kind = kind;
        cx->beta = beta;
        cx->factor = factor;
        cx->m = m;
    }
    return y;
}

static mn_var *bce_with_logits_untraced(mn_tape *t, mn_var *logits, mn_var *target, enum mn_reduction r)
{
    return elementwise_loss(t, "bce_with_logits", ELT_BCE, logits, target, 0.0f, r);
}

mn_var *mn_bce_with_logits(mn_tape *t, mn_var *logits, mn_var *target, enum mn_reduction r)
{
    mn_var *y = bce_with_logits_untraced(t, logits, target, r), *in[2] = {logits, target};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_OTHER, .name = "bce_with_logits", .out = y, .in = in, .n_in = 2});
}

static mn_var *smooth_l1_untraced(mn_tape *t, mn_var *pred, mn_var *target, float beta, enum mn_reduction r)
{
    return elementwise_loss(t, "smooth_l1", ELT_SMOOTH_L1, pred, target, beta, r);
}

mn_var *mn_smooth_l1(mn_tape *t, mn_var *pred, mn_var *target, float beta, enum mn_reduction r)
{
    mn_var *y = smooth_l1_untraced(t, pred, target, beta, r), *in[2] = {pred, target};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_OTHER, .name = "smooth_l1", .out = y, .in = in, .n_in = 2});
}

static mn_var *l1_untraced(mn_tape *t, mn_var *pred, mn_var *target, enum mn_reduction r)
{
    return elementwise_loss(t, "l1", ELT_SMOOTH_L1, pred, target, 0.0f, r);
}

mn_var *mn_l1(mn_tape *t, mn_var *pred, mn_var *target, enum mn_reduction r)
{
    mn_var *y = l1_untraced(t, pred, target, r), *in[2] = {pred, target};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_OTHER, .name = "l1", .out = y, .in = in, .n_in = 2});
}

/* ---- softmax ---- */

/* Records no node, even when logits require a gradient: softmax here serves teachers (whose
 * outputs are detached by definition) and inference. The result never requires a gradient. */
static mn_var *softmax_untraced(mn_tape *t, mn_var *logits)
{
    if (!logits) return NULL;
    int64_t n = 0, c = 0, hw = 0;
    if (class_dims("mn_softmax", "logits", &logits->val, &n, &c, &hw)) return NULL;
    const float *xv = logits->val.data;
    if (!mn_tensor_is_contiguous(&logits->val)) {
        mn_tensor xc = mn_tensor_alloc(&t->arena, logits->val.ndim, logits->val.shape);
        if (!xc.data) return NULL;
        mn_tensor_copy(&xc, &logits->val);
        xv = xc.data;
    }
    mn_var *y = mn_var_new(t, logits->val.ndim, logits->val.shape);
    if (!y) return NULL;
    mn_softmax_c(y->val.data, xv, n, c, hw);
    return y;
}

mn_var *mn_softmax(mn_tape *t, mn_var *logits)
{
    mn_var *y = softmax_untraced(t, logits), *in[1] = {logits};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_SOFTMAX, .name = "softmax", .out = y, .in = in, .n_in = 1});
}
