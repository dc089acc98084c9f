/* Trainable parameters: full-width values in one arena, gradients in another.
 *
 * A model registers each parameter once, at its largest width; slimmable layers take
 * channel-prefix views of it with mn_var_prefix. The optimiser walks the set. */
#ifndef MN_PARAM_H
#define MN_PARAM_H

#include "tape.h"

enum mn_param_flags {
    MN_PARAM_DECAY = 1,      /* weight decay applies (conv and linear kernels, not BN/bias/depthwise) */
    MN_PARAM_BUFFER = 2,     /* not trained (BN running statistics): no gradient */
};

typedef struct mn_param {
    char name[96];           /* e.g. "features.3.conv.0.weight" */
    mn_var var;              /* val in the values arena, grad in the gradients arena */
    int flags;
    /* The optimiser steps it at lr * lr_mult: 1 as registered; a fine-tuning model sets its
     * backbone's (optim.backbone_lr_mult); 0 leaves it as it is. A frozen parameter has
     * var.requires_grad false: no gradient reaches it and the optimiser skips it. */
    float lr_mult;
} mn_param;

typedef struct mn_param_set {
    mn_param **items;        /* n entries, in registration order */
    int n, cap;
    mn_arena values;         /* parameter and buffer values */
    mn_arena grads;          /* parameter gradients */
} mn_param_set;

MN_API void mn_param_set_init(mn_param_set *ps);
MN_API void mn_param_set_free(mn_param_set *ps);
/* Registers a zero-initialised parameter; NULL (error set) on duplicate name or OOM. */
MN_API mn_param *mn_param_add(mn_param_set *ps, const char *name, int ndim, const int64_t *shape, int flags);
MN_API mn_param *mn_param_find(const mn_param_set *ps, const char *name);
/* Zeroes every gradient (before the first backward of an iteration). */
MN_API void mn_param_zero_grad(mn_param_set *ps);
/* Number of trainable scalars (buffers excluded). */
MN_API int64_t mn_param_count(const mn_param_set *ps);

#endif
