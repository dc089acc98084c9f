#include <stdbool.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/checkpoint.h"

int mn_check_finite(const float *v /* (n) */, int64_t n, const char *file, const char *tensor)
{
    int64_t first = -1, bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            if (first < 0) first = i;
            bad++;
        }
    if (!bad) return 0;
    return mn_error(MN_ENUMERIC, "%s: tensor %s holds %s at element %lld (%lld of %lld values are not finite)", file,
                    tensor, isnan(v[first]) ? "NaN" : "Inf", (long long)first, (long long)bad, (long long)n);
}

static int64_t item_count(const mn_st_item *it)
{
    int64_t n = 1;
    for (int d = 0; d < it->ndim; d++) n *= it->shape[d];
    return n;
}

/* The leading block `keep` (ndim dims) of a contiguous tensor t into a new contiguous buffer. */
static float *cut_block(const mn_tensor *t, const int64_t *keep)
{
    int64_t n = 1, inner = 1;
    for (int d = 0; d < t->ndim; d++) n *= keep[d];
    float *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!out) return NULL;
    /* rows of the last dim: walk the block's index in row-major order */
    int64_t idx[MN_MAX_DIMS] = {0}, row = keep[t->ndim - 1];
    for (int d = 0; d < t->ndim - 1; d++) inner *= keep[d];
    for (int64_t r = 0; n && r < inner; r++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim - 1; d++) off += idx[d] * t->stride[d];
        memcpy(out + r * row, t->data + off, sizeof(float) * (size_t)row);
        for (int d = t->ndim - 2; d >= 0; d--) {
            if (++idx[d] < keep[d]) break;
            idx[d] = 0;
        }
    }
    return out;
}

int mn_checkpoint_save_cut(const char *path, const mn_param_set *ps, const int64_t (*keep)[MN_MAX_DIMS],
                           const mn_st_item *extra, int n_extra, const char *const *meta_keys,
                           const char *const *meta_values, int n_meta)
{
    mn_st_item *items = calloc((size_t)(ps->n + n_extra + 1), sizeof *items);
    float **cut = calloc((size_t)(ps->n + 1), sizeof *cut);
    int rc = 0;
    if (!items || !cut) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    for (int i = 0; !rc && i < ps->n; i++) {
        const mn_param *p = ps->items[i];
        items[i] = (mn_st_item){p->name, MN_ST_F32, p->var.val.ndim, p->var.val.shape, p->var.val.data};
        if (!keep || !keep[i][0]) continue;
        for (int d = 0; d < p->var.val.ndim; d++)
            if (keep[i][d] < 1 || keep[i][d] > p->var.val.shape[d])
                rc = mn_error(MN_EINVAL, "%s: cannot keep %lld of %lld entries of %s along dim %d", path,
                              (long long)keep[i][d], (long long)p->var.val.shape[d], p->name, d);
        if (!rc && !(cut[i] = cut_block(&p->var.val, keep[i]))) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        if (!rc) items[i].shape = keep[i], items[i].data = cut[i];
    }
    for (int i = 0; !rc && i < n_extra; i++) items[ps->n + i] = extra[i];
    for (int i = 0; !rc && i < ps->n + n_extra; i++)
        if (items[i].dtype == MN_ST_F32) rc = mn_check_finite(items[i].data, item_count(&items[i]), path, items[i].name);
    if (!rc) rc = mn_st_write(path, items, ps->n + n_extra, meta_keys, meta_values, n_meta);
    for (int i = 0; cut && i < ps->n; i++) free(cut[i]);
    free(cut);
    free(items);
    return rc;
}

int mn_checkpoint_save(const char *path, const mn_param_set *ps, const mn_st_item *extra, int n_extra,
                       const char *const *meta_keys, const char *const *meta_values, int n_meta)
{
    return mn_checkpoint_save_cut(path, ps, NULL, extra, n_extra, meta_keys, meta_values, n_meta);
}

static bool has_prefix(const char *name, const char *const *prefixes, int n)
{
    for (int i = 0; i < n; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return true;
    return false;
}

/* Whether the file's tensor e fits param p: its shape, or with cut a leading block of it. */
static int check_entry(const mn_safetensors *st, const mn_st_entry *e, const mn_param *p, bool cut)
{
    const mn_tensor *v = &p->var.val;
    mn_tensor t;
    if (!cut) {
        int rc = mn_st_get_f32(st, p->name, v->ndim, v->shape, &t);
        return rc ? rc : mn_check_finite(t.data, mn_tensor_numel(&t), st->path, p->name);
    }
    bool ok = e->ndim == v->ndim;
    for (int d = 0; ok && d < e->ndim; d++) ok = e->shape[d] <= v->shape[d];
    if (!ok) {
        char want[64];
        return mn_error(MN_ESHAPE, "%s: tensor %s is no leading block of the model's %s", st->path, p->name,
                        mn_shape_str(v, want, sizeof want));
    }
    int rc = mn_st_get_f32(st, p->name, e->ndim, e->shape, &t);
    return rc ? rc : mn_check_finite(t.data, mn_tensor_numel(&t), st->path, p->name);
}

static int apply(const mn_safetensors *st, mn_param_set *ps, const char *const *extra_prefixes, int n_prefixes, bool cut)
{
    /* validate everything first: a bad file must not leave the model half-loaded */
    for (int i = 0; i < st->n; i++)
        if (!mn_param_find(ps, st->entries[i].name) && !has_prefix(st->entries[i].name, extra_prefixes, n_prefixes))
            return mn_error(MN_EFORMAT, "%s: unknown tensor %s (not a parameter of this model)", st->path,
                            st->entries[i].name);
    for (int i = 0; i < ps->n; i++) {
        const mn_st_entry *e = mn_st_find(st, ps->items[i]->name);
        int rc = !e && cut ? mn_error(MN_EFORMAT, "%s: tensor %s is missing", st->path, ps->items[i]->name) : 0;
        if (!rc) rc = check_entry(st, e, ps->items[i], cut);
        if (rc) return rc;
    }
    for (int i = 0; i < ps->n; i++) {
        mn_param *p = ps->items[i];
        const mn_st_entry *e = mn_st_find(st, p->name);
        mn_tensor *v = &p->var.val;
        if (!cut) {
            memcpy(v->data, e->data, e->nbytes);
            continue;
        }
        mn_tensor_fill(v, 0.0f);
        mn_tensor block = mn_tensor_view(e->data, e->ndim, e->shape), dst = *v;
        for (int d = 0; d < e->ndim; d++) dst.shape[d] = e->shape[d]; /* the leading block, v's strides */
        if (mn_tensor_numel(&block)) mn_tensor_copy(&dst, &block);
    }
    return 0;
}

int mn_checkpoint_apply(const mn_safetensors *st, mn_param_set *ps, const char *const *extra_prefixes, int n_prefixes)
{
    return apply(st, ps, extra_prefixes, n_prefixes, false);
}

int mn_checkpoint_apply_cut(const mn_safetensors *st, mn_param_set *ps, const char *const *extra_prefixes,
                            int n_prefixes)
{
    return apply(st, ps, extra_prefixes, n_prefixes, true);
}

int mn_checkpoint_load(const char *path, mn_param_set *ps)
{
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    rc = mn_checkpoint_apply(&st, ps, NULL, 0);
    mn_st_free(&st);
    return rc;
}

/* Whether a file's tensor has the shape of the parameter it would fill. */
static bool same_shape(const mn_st_entry *e, const mn_tensor *t)
{
    if (e->ndim != t->ndim) return false;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] != t->shape[d]) return false;
    return true;
}

int mn_checkpoint_apply_head(const char *path, mn_param_set *ps, const char *prefix, const char *head_prefix, int *copied,
                             int *skipped)
{
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    int matched = 0, left = 0;
    char name[256];
    for (int pass = 0; pass < 2 && !rc; pass++) /* check everything, then copy */
        for (int i = 0; i < st.n && !rc; i++) {
            snprintf(name, sizeof name, "%s%s", prefix, st.entries[i].name);
            mn_param *p = mn_param_find(ps, name);
            if (!p) continue;
            if (head_prefix && !strncmp(name, head_prefix, strlen(head_prefix)) && !same_shape(&st.entries[i], &p->var.val)) {
                left += pass == 1; /* another head (class count): it keeps its initial values */
                continue;
            }
            mn_tensor t;
            rc = mn_st_get_f32(&st, st.entries[i].name, p->var.val.ndim, p->var.val.shape, &t);
            if (!rc && pass == 0) rc = mn_check_finite(t.data, mn_tensor_numel(&t), path, st.entries[i].name);
            if (!rc && pass == 1) {
                memcpy(p->var.val.data, t.data, sizeof(float) * (size_t)mn_tensor_numel(&t));
                matched++;
            }
        }
    if (!rc && matched == 0)
        rc = mn_error(MN_EFORMAT, "%s: no tensor matches a parameter under \"%s\" (expected torchvision names such as "
                                  "features.0.0.weight)", path, prefix);
    if (!rc && copied) *copied = matched;
    if (!rc && skipped) *skipped = left;
    mn_st_free(&st);
    return rc;
}

int mn_checkpoint_apply_prefixed(const char *path, mn_param_set *ps, const char *prefix, int *copied)
{
    return mn_checkpoint_apply_head(path, ps, prefix, NULL, copied, NULL);
}
