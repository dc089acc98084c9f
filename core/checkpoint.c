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

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t size)
{
    int n = snprintf(buf, size, "[");
    for (int d = 0; d < ndim && n > 0 && (size_t)n < size; d++)
        n += snprintf(buf + n, size - (size_t)n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n > 0 && (size_t)n < size) snprintf(buf + n, size - (size_t)n, "]");
}

void mn_init_report_free(mn_init_report *r)
{
    char **lists[] = {r->loaded, r->missing, r->mismatched, r->unused};
    int counts[] = {r->n_loaded, r->n_missing, r->n_mismatched, r->n_unused};
    for (int l = 0; l < 4; l++) {
        for (int i = 0; lists[l] && i < counts[l]; i++) free(lists[l][i]);
        free(lists[l]);
    }
    memset(r, 0, sizeof *r);
}

static int add_name(char **list, int *n, const char *name, const char *path)
{
    if (!(list[*n] = strdup(name))) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    (*n)++;
    return 0;
}

/* Which parameter entry i of the file fills (by its own name, or with prefix in front), or NULL.
 * An exact name wins over a prefixed one, so a file holding both is read without ambiguity. */
static mn_param *target_of(const mn_safetensors *st, int i, mn_param_set *ps, const char *prefix, bool *prefixed)
{
    const char *name = st->entries[i].name;
    mn_param *p = mn_param_find(ps, name);
    *prefixed = false;
    if (p || !prefix || !prefix[0]) return p;
    char full[256];
    if ((size_t)snprintf(full, sizeof full, "%s%s", prefix, name) >= sizeof full) return NULL;
    p = mn_param_find(ps, full);
    if (p && mn_st_find(st, full)) return NULL; /* the file has the exact name too: that one fills it */
    *prefixed = p != NULL;
    return p;
}

static bool is_float(const mn_st_entry *e) { return e->dtype == MN_ST_F32 || e->dtype == MN_ST_F16; }

int mn_checkpoint_init(const char *path, mn_param_set *ps, const char *prefix, const char *const *skip_prefixes,
                       int n_skip, mn_init_report *rep)
{
    memset(rep, 0, sizeof *rep);
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    mn_param **target = calloc((size_t)st.n + 1, sizeof *target);
    bool *claimed = calloc((size_t)ps->n + 1, sizeof *claimed);
    rep->loaded = calloc((size_t)ps->n + 1, sizeof *rep->loaded);
    rep->missing = calloc((size_t)ps->n + 1, sizeof *rep->missing);
    rep->mismatched = calloc((size_t)ps->n + 1, sizeof *rep->mismatched);
    rep->unused = calloc((size_t)st.n + 1, sizeof *rep->unused);
    if (!target || !claimed || !rep->loaded || !rep->missing || !rep->mismatched || !rep->unused)
        rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    /* validate everything first: a file with a non-finite value must not leave the model half-loaded */
    for (int i = 0; !rc && i < st.n; i++) {
        const mn_st_entry *e = &st.entries[i];
        size_t len = strlen(e->name), tail = strlen("num_batches_tracked");
        bool counter = len >= tail && !strcmp(e->name + len - tail, "num_batches_tracked");
        if (has_prefix(e->name, skip_prefixes, n_skip) || counter) {
            rep->n_skipped++; /* optimiser state, per-configuration statistics, PyTorch's BN counters */
            continue;
        }
        bool prefixed;
        mn_param *p = target_of(&st, i, ps, prefix, &prefixed);
        if (!p) {
            rc = add_name(rep->unused, &rep->n_unused, e->name, path);
            continue;
        }
        int k = 0;
        while (ps->items[k] != p) k++;
        claimed[k] = true;
        if (!is_float(e) || !same_shape(e, &p->var.val)) {
            char file[96], model[96], text[400];
            shape_text(e->shape, e->ndim, file, sizeof file);
            shape_text(p->var.val.shape, p->var.val.ndim, model, sizeof model);
            snprintf(text, sizeof text, "%s (file %s%s, model %s)", p->name, file, is_float(e) ? "" : " not float",
                     model);
            rc = add_name(rep->mismatched, &rep->n_mismatched, text, path);
            continue;
        }
        mn_tensor t;
        rc = mn_st_get_f32(&st, e->name, p->var.val.ndim, p->var.val.shape, &t);
        if (!rc) rc = mn_check_finite(t.data, mn_tensor_numel(&t), path, e->name);
        if (!rc) target[i] = p;
    }
    for (int i = 0; !rc && i < st.n; i++) {
        mn_param *p = target[i];
        if (!p) continue;
        mn_tensor t;
        rc = mn_st_get_f32(&st, st.entries[i].name, p->var.val.ndim, p->var.val.shape, &t);
        if (!rc) memcpy(p->var.val.data, t.data, sizeof(float) * (size_t)mn_tensor_numel(&t));
        if (!rc) rc = add_name(rep->loaded, &rep->n_loaded, p->name, path);
    }
    for (int k = 0; !rc && k < ps->n; k++)
        if (!claimed[k]) rc = add_name(rep->missing, &rep->n_missing, ps->items[k]->name, path);
    free(target);
    free(claimed);
    mn_st_free(&st);
    if (rc) mn_init_report_free(rep);
    return rc;
}
