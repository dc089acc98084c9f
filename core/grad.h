/* Core-internal: how the ops' backward passes reach an input's gradient buffer. */
#ifndef MN_CORE_GRAD_H
#define MN_CORE_GRAD_H

#include "mn/tape.h"

/* The gradient of v as a dense array that a kernel may write at *out (NULL when v needs no
 * gradient; out may be NULL for the check alone), or an error naming the op and what v is
 * ("input", "gamma") when the gradient is a strided view. */
int core_grad_dense(mn_var *v, const char *op, const char *what, float **out);

#endif
