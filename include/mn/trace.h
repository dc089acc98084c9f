/* Tracing: what a forward pass computed, op by op, for tools that rebuild the network elsewhere
 * (ONNX export, the compact checkpoint's channel count).
 *
 * When a tape carries a tracer (t->tracer != NULL), every op in mn/ops.h that succeeds hands it one
 * event: the op, its output variable, its input variables (activations and weight views alike),
 * and the settings that are not variables (convolution geometry, BN statistics, pool sizes). The
 * tracer sees the pass exactly as it ran: a configuration is whatever the run's width and input
 * size made of the layers, so nothing about the network has to be described twice.
 *
 * An op that is built from other ops may report those too, before its own event with the same
 * output: a consumer keeps the first producer of each variable. Events are delivered only while
 * the op's variables are alive (until mn_tape_reset). */
#ifndef MN_TRACE_H
#define MN_TRACE_H

#include "ops.h"

enum mn_trace_op {
    MN_TRACE_CONV,            /* in: x, w, b (b may be NULL); conv */
    MN_TRACE_CONV_BN_ACT,     /* in: x, w, b, gamma, beta (b, gamma, beta may be NULL); conv, bn, act */
    MN_TRACE_BN_ACT,          /* in: x, gamma, beta; bn, act */
    MN_TRACE_LINEAR,          /* in: x, w, b */
    MN_TRACE_RELU,            /* in: x */
    MN_TRACE_RELU6,           /* in: x */
    MN_TRACE_ADD,             /* in: a, b */
    MN_TRACE_SCALE,           /* in: x; scale */
    MN_TRACE_CONCAT,          /* in: n_in maps, along channels */
    MN_TRACE_RESHAPE,         /* in: x; the output's shape is the new one */
    MN_TRACE_COPY,            /* in: x; a contiguous copy (same values) */
    MN_TRACE_MAX_POOL,        /* in: x; k, stride, pad */
    MN_TRACE_AVG_POOL,        /* in: x; k, stride, pad (padding counts in the mean) */
    MN_TRACE_GLOBAL_AVG_POOL, /* in: x */
    MN_TRACE_RESIZE_BILINEAR, /* in: x; align_corners; the output's shape gives the size */
    MN_TRACE_RESIZE_NEAREST,  /* in: x */
    MN_TRACE_SOFTMAX,         /* in: x; over dim 1 */
    MN_TRACE_ROI_ALIGN,       /* in: x; roi (rois are plain floats, not a variable) */
    MN_TRACE_OTHER,           /* anything else (losses): a pass that holds one cannot be exported */
};

typedef struct mn_trace_event {
    enum mn_trace_op op;
    const char *name;               /* the op's own name, for messages */
    mn_var *out;
    mn_var *const *in;              /* (n_in), entries may be NULL (absent optional inputs) */
    int n_in;
    mn_conv2d_params conv;          /* CONV, CONV_BN_ACT */
    mn_bn_state bn;                 /* CONV_BN_ACT, BN_ACT: running statistics, first C entries used */
    float eps;                      /* CONV_BN_ACT, BN_ACT */
    bool bn_training;               /* BN_ACT: normalised with batch statistics (not exportable) */
    int act;                        /* 0 none, 1 ReLU, 6 ReLU6 */
    int k, stride, pad;             /* MAX_POOL, AVG_POOL */
    float scale;                    /* SCALE */
    bool align_corners;             /* RESIZE_BILINEAR */
    mn_roi_align_params roi;        /* ROI_ALIGN */
} mn_trace_event;

typedef struct mn_tracer mn_tracer;
struct mn_tracer {
    /* Returns 0, or an error code with the message set: the op then fails with it. */
    int (*record)(mn_tracer *self, const mn_trace_event *e);
};

/* For op implementations: hands e to t's tracer, if any; y on success, NULL when the tracer
 * refused the event. */
MN_API mn_var *mn_trace_emit(mn_tape *t, mn_var *y, const mn_trace_event *e);

#endif
