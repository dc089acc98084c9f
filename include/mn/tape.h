/* Define-by-run reverse-mode autodiff.
 *
 * An mn_var is a value plus (optionally) its gradient. Ops (mn_relu, mn_conv2d, ...) compute
 * their forward pass with a kernel and, when gradients are enabled and some input requires
 * one, append a node to the tape holding a backward function and whatever it saved.
 * mn_backward(tape, loss) walks the nodes in reverse; gradients of parameters accumulate into
 * their own arena, so several forward/backward passes may run before one optimiser step.
 *
 * Activations, their gradients and the nodes themselves live in the tape's arena, which
 * mn_tape_reset() empties after each pass: memory holds one sub-network graph at a time.
 *
 * Errors are sticky: every op returns NULL on failure (message in mn_last_error()) and returns
 * NULL at once when given a NULL input, so a forward pass checks only its final result. */
#ifndef MN_TAPE_H
#define MN_TAPE_H

#include "tensor.h"

typedef struct mn_tape mn_tape;
typedef struct mn_node mn_node;
struct mn_tracer;

typedef struct mn_var {
    mn_tensor val;
    mn_tensor grad;     /* same shape as val; data == NULL until a gradient reaches it */
    mn_node *node;      /* the op that produced it, NULL for leaves and detached values */
    bool requires_grad;
} mn_var;

typedef int (*mn_backward_fn)(mn_node *n, mn_tape *t);

struct mn_node {
    mn_backward_fn backward;
    mn_var *out;
    mn_var **in;        /* n_in inputs, as given to the op */
    int n_in;
    void *ctx;          /* op-specific saved state, in the tape arena */
    mn_node *prev;      /* the node recorded before this one */
    const char *op;     /* op name, for error messages */
};

struct mn_tape {
    mn_arena arena;     /* activations, activation gradients, nodes; reset per pass */
    mn_node *last;      /* most recently recorded node */
    bool grad_enabled;  /* false: ops record nothing (inference, BN calibration) */
    int n_nodes;
    struct mn_tracer *tracer; /* NULL, or told of every op as it runs (mn/trace.h) */
};

MN_API void mn_tape_init(mn_tape *t, size_t initial_bytes);
MN_API void mn_tape_free(mn_tape *t);
/* Forgets every node and activation (all mn_var pointers from this tape become invalid). */
MN_API void mn_tape_reset(mn_tape *t);
/* Turns recording on or off; returns the previous setting. */
MN_API bool mn_tape_set_grad(mn_tape *t, bool enabled);

/* A new variable in the tape arena with a contiguous value (contents undefined). */
MN_API mn_var *mn_var_new(mn_tape *t, int ndim, const int64_t *shape);
/* A leaf wrapping caller-owned memory (inputs, targets); never requires a gradient. */
MN_API mn_var *mn_var_wrap(mn_tape *t, mn_tensor val);
/* The same value cut off from the graph. */
MN_API mn_var *mn_detach(mn_tape *t, mn_var *x);
/* The view x[..., :len] along dim sharing x's value and gradient memory; gradients that
 * flow into the view land in the matching slice of x's gradient. x must be a leaf whose
 * gradient (if it requires one) is allocated: this is how a slimmable layer takes the
 * first c channels of a full-width parameter. */
MN_API mn_var *mn_var_prefix(mn_tape *t, mn_var *x, int dim, int64_t len);
/* x itself when contiguous, else a contiguous copy (differentiable). */
MN_API mn_var *mn_contiguous(mn_tape *t, mn_var *x);

/* Seeds d(loss)/d(loss) = 1 for a one-element loss and runs every backward function in
 * reverse order. Returns 0 or a negative code. */
MN_API int mn_backward(mn_tape *t, mn_var *loss);
/* The same from any output y with an upstream gradient dy (same numel as y), as
 * d(sum(y * dy))/d(inputs): for gradient checks and parity tests. */
MN_API int mn_backward_grad(mn_tape *t, mn_var *y, const float *dy);

/* ---- for op implementations ---- */

/* True when the op's output needs a node: recording is on and some input requires grad. */
MN_API bool mn_tape_wants(const mn_tape *t, mn_var *const *in, int n_in);
/* Appends a node producing out from in[0..n_in) (the array is copied) with ctx_bytes of
 * zeroed saved state; marks out as requiring grad. Returns the node or NULL (error set). */
MN_API mn_node *mn_tape_record(mn_tape *t, const char *op, mn_var *out, mn_var *const *in, int n_in,
                               mn_backward_fn backward, size_t ctx_bytes);
/* Before a node's backward function runs, mn_backward gives every input that requires a
 * gradient a zeroed contiguous gradient buffer (leaves keep their own, possibly strided,
 * gradient views). A backward function therefore accumulates (+=) into in[i]->grad.data
 * for each input with requires_grad set and skips the others. */

#endif
