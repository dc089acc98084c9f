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

int mn_checkpoint_save(const char *path, const mn_param_set *ps, const mn_st_item *extra, int n_extra,
                       const char *const *meta_keys, const char *const *meta_values, int n_meta)
{
    mn_st_item *items = malloc(sizeof *items * (size_t)(ps->n + n_extra + 1));
    if (!items) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < ps->n; i++) {
        const mn_param *p = ps->items[i];
        items[i] = (mn_st_item){p->name, MN_ST_F32, p->var.val.ndim, p->var.val.shape, p->var.val.data};
    }
    for (int i = 0; i < n_extra; i++) items[ps->n + i] = extra[i];
    int rc = 0;
    for (int i = 0; !rc && i < ps->n + n_extra; i++)
        if (items[i].dtype == MN_ST_F32) rc = mn_check_finite(items[i].data, item_count(&items[i]), path, items[i].name);
    if (!rc) rc = mn_st_write(path, items, ps->n + n_extra, meta_keys, meta_values, n_meta);
    free(items);
    return rc;
}

static bool has_prefix(const char *name, const char *const *prefixes, int n)
{
    for (int i = 0; i < n; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return true;
    return false;
}

int mn_checkpoint_apply(const mn_safetensors *st, mn_param_set *ps, const char *const *extra_prefixes, int n_prefixes)
{
    /* validate everything first: a bad file must not leave the model half-loaded */
    for (int i = 0; i < st->n; i++)
        if (!mn_param_find(ps, st->entries[i].name) && !has_prefix(st->entries[i].name, extra_prefixes, n_prefixes))
            return mn_error(MN_EFORMAT, "%s: unknown tensor %s (not a parameter of this model)", st->path,
                            st->entries[i].name);
    for (int i = 0; i < ps->n; i++) {
        mn_tensor t;
        const mn_param *p = ps->items[i];
        int rc = mn_st_get_f32(st, p->name, p->var.val.ndim, p->var.val.shape, &t);
        if (!rc) rc = mn_check_finite(t.data, mn_tensor_numel(&t), st->path, p->name);
        if (rc) return rc;
    }
    for (int i = 0; i < ps->n; i++) {
        mn_param *p = ps->items[i];
        const mn_st_entry *e = mn_st_find(st, p->name);
        memcpy(p->var.val.data, e->data, e->nbytes);
    }
    return 0;
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
