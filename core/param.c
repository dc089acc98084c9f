#include <stdlib.h>
#include <string.h>

#include "mn/param.h"

void mn_param_set_init(mn_param_set *ps)
{
    memset(ps, 0, sizeof *ps);
    mn_arena_init(&ps->values, "parameters", 0);
    mn_arena_init(&ps->grads, "gradients", 0);
}

void mn_param_set_free(mn_param_set *ps)
{
    free(ps->items);
    mn_arena_free(&ps->values);
    mn_arena_free(&ps->grads);
    memset(ps, 0, sizeof *ps);
}

mn_param *mn_param_find(const mn_param_set *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->items[i]->name, name)) return ps->items[i];
    return NULL;
}

mn_param *mn_param_add(mn_param_set *ps, const char *name, int ndim, const int64_t *shape, int flags)
{
    if (strlen(name) >= sizeof ps->items[0]->name) {
        mn_error(MN_EINVAL, "parameter name too long: %s", name);
        return NULL;
    }
    if (mn_param_find(ps, name)) {
        mn_error(MN_EINVAL, "parameter %s registered twice", name);
        return NULL;
    }
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 64;
        mn_param **items = realloc(ps->items, sizeof *items * (size_t)cap);
        if (!items) {
            mn_error(MN_ENOMEM, "cannot register parameter %s", name);
            return NULL;
        }
        ps->items = items;
        ps->cap = cap;
    }
    /* the struct lives in the values arena, which never resets, so pointers stay valid */
    mn_param *p = mn_arena_zalloc(&ps->values, sizeof *p);
    if (!p) return NULL;
    strcpy(p->name, name);
    p->flags = flags;
    p->lr_mult = 1.0f;
    p->var.val = mn_tensor_view(NULL, ndim, shape);
    size_t bytes = (size_t)mn_tensor_numel(&p->var.val) * sizeof(float);
    p->var.val.data = mn_arena_zalloc(&ps->values, bytes);
    if (!p->var.val.data) return NULL;
    p->var.grad = p->var.val;
    p->var.grad.data = NULL;
    if (!(flags & MN_PARAM_BUFFER)) {
        p->var.grad.data = mn_arena_zalloc(&ps->grads, bytes);
        if (!p->var.grad.data) return NULL;
        p->var.requires_grad = true;
    }
    ps->items[ps->n++] = p;
    return p;
}

void mn_param_zero_grad(mn_param_set *ps)
{
    for (int i = 0; i < ps->n; i++)
        if (ps->items[i]->var.grad.data)
            memset(ps->items[i]->var.grad.data, 0, (size_t)mn_tensor_numel(&ps->items[i]->var.grad) * sizeof(float));
}

int64_t mn_param_count(const mn_param_set *ps)
{
    int64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (!(ps->items[i]->flags & MN_PARAM_BUFFER)) n += mn_tensor_numel(&ps->items[i]->var.val);
    return n;
}
