#include "mn/ops.h"
#include "mn/trace.h"

static int reshape_backward(mn_node *n, mn_tape *t)
{
    (void)t;
    mn_var *x = n->in[0];
    if (!x->requires_grad) return 0;
    int64_t k = mn_tensor_numel(&x->val);
    const float *gy = n->out->grad.data;
    for (int64_t i = 0; i < k; i++) x->grad.data[i] += gy[i];
    return 0;
}

static mn_var *reshape_untraced(mn_tape *t, mn_var *x, int ndim, const int64_t *shape)
{
    if (!x) return NULL;
    mn_tensor v = mn_tensor_view(x->val.data, ndim, shape);
    if (mn_tensor_numel(&v) != mn_tensor_numel(&x->val) || !mn_tensor_is_contiguous(&x->val)) {
        char a[64];
        mn_error(MN_ESHAPE, "reshape: cannot view %s as %d dims of %lld elements", mn_shape_str(&x->val, a, sizeof a),
                 ndim, (long long)mn_tensor_numel(&v));
        return NULL;
    }
    mn_var *y = mn_var_wrap(t, v);
    if (y && mn_tape_wants(t, &x, 1) && !mn_tape_record(t, "reshape", y, &x, 1, reshape_backward, 0)) return NULL;
    return y;
}

mn_var *mn_reshape(mn_tape *t, mn_var *x, int ndim, const int64_t *shape)
{
    mn_var *y = reshape_untraced(t, x, ndim, shape), *in[1] = {x};
    return mn_trace_emit(t, y, &(mn_trace_event){.op = MN_TRACE_RESHAPE, .name = "reshape", .out = y, .in = in, .n_in = 1});
}
