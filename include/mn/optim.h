/* Stochastic gradient descent with momentum over a parameter set (torch.optim.SGD semantics).
 *
 * For each trainable parameter (MN_PARAM_BUFFER entries are skipped), with g its gradient:
 *   d = g + weight_decay * p            (weight decay only where MN_PARAM_DECAY is set)
 *   buf = d on the first step, else momentum * buf + (1 - dampening) * d
 *   d = d + momentum * buf (nesterov), else d = buf
 *   p -= lr * p->lr_mult * d            (lr_mult 1 unless a model set it: a param group's lr)
 * With momentum == 0 no buffers exist and d is applied directly. A parameter whose
 * var.requires_grad is false (frozen) or whose lr_mult is 0 is not stepped at all: its value
 * and its momentum buffer stay as they are (PyTorch skips a parameter without a gradient).
 *
 * Momentum buffers are allocated once, in the optimiser's own arena, at init; a step never
 * allocates. The learning rate is an argument of each step, so schedules live with the
 * caller. Unlike PyTorch, a parameter whose gradient stayed zero is still stepped (decay and
 * momentum apply): every registered parameter has a gradient buffer here.
 *
 * Checkpoints: mn_sgd_momentum(o, i) is the buffer of ps->items[i] (store it under the
 * parameter's name), mn_sgd_steps() the step count; restore the buffers by writing into those
 * tensors and the count with mn_sgd_set_steps(). */
#ifndef MN_OPTIM_H
#define MN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "param.h"

typedef struct mn_sgd_config {
    float lr;            /* base learning rate, for schedules to read; mn_sgd_step takes the current one */
    float momentum;      /* 0: plain SGD, no buffers */
    float dampening;
    bool nesterov;       /* needs momentum > 0 and dampening == 0 */
    float weight_decay;  /* L2 coefficient for MN_PARAM_DECAY parameters */
} mn_sgd_config;

typedef struct mn_sgd {
    mn_sgd_config cfg;
    mn_param_set *ps;
    int n;               /* ps->n at init: parameters added later are not optimised */
    float **buf;         /* (n) momentum buffers, NULL for buffers and when momentum == 0 */
    int64_t steps;       /* steps taken (0: the next step initialises the buffers) */
    mn_arena state;      /* buf and the buffers it points to; sized once at init */
} mn_sgd;

/* Validates cfg and allocates one zeroed momentum buffer per trainable parameter of ps.
 * ps must outlive the optimiser. */
MN_API int mn_sgd_init(mn_sgd *o, mn_param_set *ps, const mn_sgd_config *cfg);
MN_API void mn_sgd_free(mn_sgd *o);
/* One update of every trainable parameter from its accumulated gradient, at rate lr. The
 * gradients are left as they are (zero them with mn_param_zero_grad). */
MN_API int mn_sgd_step(mn_sgd *o, float lr);
/* Parameter i's momentum buffer, shaped like its value; data == NULL when it has none
 * (a buffer, momentum == 0, or i out of range). */
MN_API mn_tensor mn_sgd_momentum(const mn_sgd *o, int i);
MN_API int64_t mn_sgd_steps(const mn_sgd *o);
/* Sets the step count after the buffers were restored from a checkpoint (negative: error). */
MN_API int mn_sgd_set_steps(mn_sgd *o, int64_t steps);
/* torch.nn.utils.clip_grad_norm_: the L2 norm of every trainable gradient of ps taken together
 * (accumulated in double) into *norm; when it exceeds max_norm > 0, every gradient is scaled by
 * max_norm / (norm + 1e-6). A non-finite norm is an error naming the first non-finite
 * gradient, and nothing is scaled. */
MN_API int mn_grad_clip_norm(mn_param_set *ps, float max_norm, double *norm);

#endif
