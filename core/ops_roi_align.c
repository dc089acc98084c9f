/* RoIAlign op: validation and the tape node around core/kernels/roi_align.c. */
#include <math.h>
#include <string.h>

#include "core/kernels/roi_align.h"
#include "mn/ops.h"
#include "mn/trace.h"

typedef struct roi_ctx {
    float *rois;          /* (K, 5), copy in the tape arena */
    void *ws;             /* kernel workspace, reused by backward */
    mn_roi_align_dims d;
} roi_ctx;

static int roi_backward(mn_node *nd, mn_tape *t)
{
    roi_ctx *cx = nd->ctx;
    mn_var *x = nd->in[0];
    if (!x->requires_grad) return 0;
    if (mn_tensor_is_contiguous(&x->grad)) {
        mn_roi_align_backward(x->grad.data, cx->ws, nd->out->grad.data, cx->rois, &cx->d);
        return 0;
    }
    /* a leaf slice with a strided gradient: accumulate densely, then add into the view */
    mn_tensor tmp = mn_tensor_alloc(&t->arena, 4, x->val.shape);
    if (!tmp.data) return mn_last_error_code();
    memset(tmp.data, 0, (size_t)mn_tensor_numel(&tmp) * sizeof(float));
    mn_roi_align_backward(tmp.data, cx->ws, nd->out->grad.data, cx->rois, &cx->d);
    const int64_t *s = x->grad.stride;
    int64_t k = 0;
    for (int64_t a = 0; a < tmp.shape[0]; a++)
        for (int64_t b = 0; b < tmp.shape[1]; b++)
            for (int64_t c = 0; c < tmp.shape[2]; c++)
                for (int64_t e = 0; e < tmp.shape[3]; e++)
                    x->grad.data[a * s[0] + b * s[1] + c * s[2] + e * s[3]] += tmp.data[k++];
    return 0;
}

static mn_var *roi_align_untraced(mn_tape *t, mn_var *x, const float *rois, int k, const mn_roi_align_params *p)
{
    static const char *op = "mn_roi_align";
    if (!x) return NULL;
    char buf[64];
    if (x->val.ndim != 4) {
        mn_error(MN_ESHAPE, "%s: x must be (N, C, H, W), not %s", op, mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    if (x->val.shape[2] < 1 || x->val.shape[3] < 1) {
        mn_error(MN_ESHAPE, "%s: x %s has an empty feature map", op, mn_shape_str(&x->val, buf, sizeof buf));
        return NULL;
    }
    if (!p || p->out_h < 1 || p->out_w < 1 || p->sampling_ratio < 0 || !(p->spatial_scale > 0.0f) ||
        !isfinite(p->spatial_scale)) {
        if (!p)
            mn_error(MN_EINVAL, "%s: no parameters", op);
        else
            mn_error(MN_EINVAL, "%s: bad parameters: output %dx%d, spatial_scale %g, sampling_ratio %d", op, p->out_h,
                     p->out_w, (double)p->spatial_scale, p->sampling_ratio);
        return NULL;
    }
    if (k < 0 || (k > 0 && !rois)) {
        mn_error(MN_EINVAL, "%s: %d rois%s", op, k, k < 0 ? "" : " but no rois array");
        return NULL;
    }
    for (int r = 0; r < k; r++) {
        const float *row = rois + (int64_t)r * 5;
        for (int j = 0; j < 5; j++)
            if (!isfinite(row[j])) {
                mn_error(MN_ENUMERIC, "%s: roi %d has a non-finite value in column %d", op, r, j);
                return NULL;
            }
        if (row[0] != floorf(row[0]) || row[0] < 0.0f || row[0] >= (float)x->val.shape[0]) {
            mn_error(MN_EINVAL, "%s: roi %d has batch index %g, outside the %lld images of x", op, r, (double)row[0],
                     (long long)x->val.shape[0]);
            return NULL;
        }
    }

    x = mn_contiguous(t, x);
    if (!x) return NULL;
    mn_roi_align_dims d = {
        .n = x->val.shape[0], .c = x->val.shape[1], .h = x->val.shape[2], .w = x->val.shape[3], .k = k,
        .out_h = p->out_h, .out_w = p->out_w, .spatial_scale = p->spatial_scale,
        .sampling_ratio = p->sampling_ratio, .aligned = p->aligned,
    };
    int64_t shape[4] = {k, d.c, p->out_h, p->out_w};
    mn_var *y = mn_var_new(t, 4, shape);
    float *rcopy = mn_arena_alloc(&t->arena, (size_t)k * 5 * sizeof(float));
    void *ws = mn_arena_alloc(&t->arena, mn_roi_align_ws_bytes(rois, &d));
    if (!y || !rcopy || !ws) return NULL;
    if (k) memcpy(rcopy, rois, (size_t)k * 5 * sizeof(float));
    mn_roi_align_forward(y->val.data, ws, x->val.data, rcopy, &d);

    if (mn_tape_wants(t, &x, 1)) {
        mn_node *nd = mn_tape_record(t, "roi_align", y, &x, 1, roi_backward, sizeof(roi_ctx));
        if (!nd) return NULL;
        roi_ctx *cx = nd->ctx;
        cx->rois = rcopy;
        cx->ws = ws;
        cx->d = d;
    }
    return y;
}

mn_var *mn_roi_align(mn_tape *t, mn_var *x, const float *rois, int k, const mn_roi_align_params *p)
{
    mn_var *y = roi_align_untraced(t, x, rois, k, p), *in[1] = {x};
    if (!y || !t->tracer) return y;
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_ROI_ALIGN, .name = "roi_align", .out = y, .in = in, .n_in = 1, .roi = *p});
}
