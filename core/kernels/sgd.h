/* The SGD update of one parameter tensor (torch.optim.SGD semantics; see include/mn/optim.h). */
#ifndef MN_KERNELS_SGD_H
#define MN_KERNELS_SGD_H

#include <stdbool.h>
#include <stdint.h>

#include "mn/error.h"

typedef struct mn_sgd_hyper {
    float lr, momentum, dampening, weight_decay;
    bool nesterov;
    bool first;          /* first step: buf = d instead of the momentum average */
} mn_sgd_hyper;

/* p -= lr * d with d from g, p and buf as torch.optim.SGD computes it; buf is updated in
 * place and ignored (may be NULL) when momentum == 0. Branches are hoisted out of the
 * element loop; OpenMP over elements for large tensors. */
void mn_sgd_update(float *p /* (M) */, float *buf /* (M) or NULL */, const float *g /* (M) */, int64_t m,
                          const mn_sgd_hyper *h);
/* The same, one element at a time following the formula line by line. */
void mn_sgd_update_ref(float *p /* (M) */, float *buf /* (M) or NULL */, const float *g /* (M) */, int64_t m,
                              const mn_sgd_hyper *h);

#endif
