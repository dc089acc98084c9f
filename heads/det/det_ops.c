/* Differentiable row gathers the detector needs and ops.h does not offer: picking sampled
 * anchors out of the RPN maps, class-specific deltas out of the box regression, and merging
 * per-level RoIAlign outputs back into RoI order. Both gathers are plain loops (they move a
 * few thousand rows), so the kernels double as their own references. */
#include <string.h>

#include "internal.h"

/* Input and local row of virtual row v; rows[i] rows in input i. */
static void locate(int64_t v, const int64_t *rows /* (n) */, int n, int *input, int64_t *row)
{
    int i = 0;
    while (i < n - 1 && v >= rows[i]) v -= rows[i++];
    *input = i;
    *row = v;
}

void det_take_rows_forward(float *y /* (m, k) */, const float *const *xs /* n arrays */,
                           const int64_t *rows /* (n) rows of each */, int n, int k, const int64_t *idx /* (m) */,
                           int64_t m)
{
    for (int64_t j = 0; j < m; j++) {
        int i;
        int64_t r;
        locate(idx[j], rows, n, &i, &r);
        memcpy(y + j * k, xs[i] + r * k, sizeof(float) * (size_t)k);
    }
}

void det_take_rows_backward(float *const *dxs /* n arrays */, const int64_t *rows /* (n) */, int n, int k,
                            const float *dy /* (m, k) */, const int64_t *idx /* (m) */, int64_t m)
{
    for (int64_t j = 0; j < m; j++) {
        int i;
        int64_t r;
        locate(idx[j], rows, n, &i, &r);
        if (!dxs[i]) continue; /* that input needs no gradient */
        float *d = dxs[i] + r * k;
        for (int c = 0; c < k; c++) d[c] += dy[j * k + c];
    }
}

typedef struct take_ctx {
    int64_t *idx, *rows, m;
    int k;
} take_ctx;

static int take_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    take_ctx *cx = nd->ctx;
    float *dxs[16];
    for (int i = 0; i < nd->n_in; i++) {
        mn_var *x = nd->in[i];
        dxs[i] = NULL;
        if (!x->requires_grad) continue;
        if (!mn_tensor_is_contiguous(&x->grad))
            return mn_error(MN_EINVAL, "det_take_rows backward: input %d has a strided gradient", i);
        dxs[i] = x->grad.data;
    }
    det_take_rows_backward(dxs, cx->rows, nd->n_in, cx->k, nd->out->grad.data, cx->idx, cx->m);
    return 0;
}

mn_var *det_take_rows(mn_tape *t, mn_var *const *xs, int n, int k, const int64_t *idx /* (m) */, int64_t m)
{
    if (n < 1 || n > 16 || k < 1 || m < 0) {
        mn_error(MN_EINVAL, "det_take_rows: %d inputs (1..16), row size %d, %lld rows", n, k, (long long)m);
        return NULL;
    }
    int64_t rows[16], total = 0;
    const float *src[16];
    for (int i = 0; i < n; i++) {
        if (!xs[i]) return NULL;
        char buf[64];
        int64_t numel = mn_tensor_numel(&xs[i]->val);
        if (!mn_tensor_is_contiguous(&xs[i]->val) || numel % k) {
            mn_error(MN_ESHAPE, "det_take_rows: input %d %s is not contiguous rows of %d", i,
                     mn_shape_str(&xs[i]->val, buf, sizeof buf), k);
            return NULL;
        }
        rows[i] = numel / k;
        src[i] = xs[i]->val.data;
        total += rows[i];
    }
    for (int64_t j = 0; j < m; j++)
        if (idx[j] < 0 || idx[j] >= total) {
            mn_error(MN_EINVAL, "det_take_rows: row %lld asked for, the inputs have %lld", (long long)idx[j],
                     (long long)total);
            return NULL;
        }
    int64_t shape[2] = {m, k};
    mn_var *y = mn_var_new(t, 2, shape);
    if (!y) return NULL;
    det_take_rows_forward(y->val.data, src, rows, n, k, idx, m);
    if (mn_tape_wants(t, xs, n)) {
        mn_node *nd = mn_tape_record(t, "det_take_rows", y, xs, n, take_backward, sizeof(take_ctx));
        if (!nd) return NULL;
        take_ctx *cx = nd->ctx;
        cx->idx = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)(m ? m : 1));
        cx->rows = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)n);
        if (!cx->idx || !cx->rows) return NULL;
        memcpy(cx->idx, idx, sizeof(int64_t) * (size_t)m);
        memcpy(cx->rows, rows, sizeof(int64_t) * (size_t)n);
        cx->m = m;
        cx->k = k;
    }
    return y;
}

/* ---- anchor rows ---- */

typedef struct anchor_geom {
    int L, a, k;
    int64_t off[MN_DET_LEVELS + 1];
    int64_t h[MN_DET_LEVELS], w[MN_DET_LEVELS];
} anchor_geom;

/* Offset of element j of anchor id g inside map *level. */
static int64_t anchor_at(const anchor_geom *g, int64_t id, int j, int *level)
{
    int64_t total = g->off[g->L], img = id / total, rem = id % total;
    int l = 0;
    while (l < g->L - 1 && rem >= g->off[l + 1]) l++;
    int64_t p = rem - g->off[l], cell = p / g->a, ai = p % g->a;
    int64_t y = cell / g->w[l], x = cell % g->w[l];
    *level = l;
    return ((img * g->a * g->k + ai * g->k + j) * g->h[l] + y) * g->w[l] + x;
}

typedef struct anchor_ctx {
    anchor_geom g;
    int64_t *ids, m;
} anchor_ctx;

static int anchor_backward(mn_node *nd, mn_tape *t)
{
    (void)t;
    anchor_ctx *cx = nd->ctx;
    for (int l = 0; l < nd->n_in; l++)
        if (nd->in[l]->requires_grad && !mn_tensor_is_contiguous(&nd->in[l]->grad))
            return mn_error(MN_EINVAL, "det_anchor_rows backward: level %d has a strided gradient", l);
    const float *dy = nd->out->grad.data;
    for (int64_t r = 0; r < cx->m; r++)
        for (int j = 0; j < cx->g.k; j++) {
            int l;
            int64_t o = anchor_at(&cx->g, cx->ids[r], j, &l);
            if (nd->in[l]->requires_grad) nd->in[l]->grad.data[o] += dy[r * cx->g.k + j];
        }
    return 0;
}

mn_var *det_anchor_rows(mn_tape *t, mn_var *const *maps, int L, int a, int k, const int64_t *off /* (L + 1) */,
                        const int64_t *ids /* (m) */, int64_t m)
{
    if (L < 1 || L > MN_DET_LEVELS || a < 1 || k < 1 || m < 0) {
        mn_error(MN_EINVAL, "det_anchor_rows: %d levels, %d anchors per cell, row size %d", L, a, k);
        return NULL;
    }
    anchor_geom g = {.L = L, .a = a, .k = k};
    int64_t n = 0;
    for (int l = 0; l < L; l++) {
        if (!maps[l]) return NULL;
        const mn_tensor *v = &maps[l]->val;
        char buf[64];
        if (v->ndim != 4 || v->shape[1] != (int64_t)a * k || !mn_tensor_is_contiguous(v) || (l && v->shape[0] != n) ||
            off[l + 1] - off[l] != v->shape[2] * v->shape[3] * a) {
            mn_error(MN_ESHAPE, "det_anchor_rows: level %d map %s does not hold %d x %d values per cell", l,
                     mn_shape_str(v, buf, sizeof buf), a, k);
            return NULL;
        }
        n = v->shape[0];
        g.h[l] = v->shape[2];
        g.w[l] = v->shape[3];
    }
    memcpy(g.off, off, sizeof(int64_t) * (size_t)(L + 1));
    for (int64_t r = 0; r < m; r++)
        if (ids[r] < 0 || ids[r] >= n * off[L]) {
            mn_error(MN_EINVAL, "det_anchor_rows: anchor %lld asked for, the batch has %lld", (long long)ids[r],
                     (long long)(n * off[L]));
            return NULL;
        }
    int64_t shape[2] = {m, k};
    mn_var *y = mn_var_new(t, 2, shape);
    if (!y) return NULL;
    for (int64_t r = 0; r < m; r++)
        for (int j = 0; j < k; j++) {
            int l;
            int64_t o = anchor_at(&g, ids[r], j, &l);
            y->val.data[r * k + j] = maps[l]->val.data[o];
        }
    if (mn_tape_wants(t, maps, L)) {
        mn_node *nd = mn_tape_record(t, "det_anchor_rows", y, maps, L, anchor_backward, sizeof(anchor_ctx));
        if (!nd) return NULL;
        anchor_ctx *cx = nd->ctx;
        cx->g = g;
        cx->m = m;
        cx->ids = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)(m ? m : 1));
        if (!cx->ids) return NULL;
        memcpy(cx->ids, ids, sizeof(int64_t) * (size_t)m);
    }
    return y;
}
