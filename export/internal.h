/* The export layer's own parts: a traced pass as a graph (export/graph.c) and its ONNX writer
 * (export/onnx.c). Nothing here is exported from the library. */
#ifndef MN_EXPORT_INTERNAL_H
#define MN_EXPORT_INTERNAL_H

#include "mn/param.h"
#include "mn/trace.h"

/* A weight as the pass read it: a leading block of a parameter, copied out contiguous. */
typedef struct ex_const {
    char name[160];
    int ndim;
    int64_t shape[MN_MAX_DIMS];
    float *data;                 /* (shape), owned */
    const float *src;            /* the parameter memory it was read from (to share repeats) */
} ex_const;

/* A tensor of the pass: an input, an op's output, or a weight (konst >= 0). */
typedef struct ex_value {
    const mn_var *var;
    int ndim;
    int64_t shape[MN_MAX_DIMS];
    int konst;                   /* index into consts, or -1 */
    int producer;                /* node index, or -1 (an input or a weight) */
    char name[64];
} ex_value;

typedef struct ex_node {
    mn_trace_event e;            /* e.in and e.out are not to be used after the pass: see in / out */
    int in[8];                   /* value indices (-1: absent); concat may have more: see in_many */
    int *in_many;                /* (e.n_in) when e.n_in > 8, owned */
    int out;
    int mean, var;               /* constants of the BN statistics (CONV_BN_ACT, BN_ACT), else -1 */
    bool live;                   /* an output depends on it */
} ex_node;

typedef struct ex_graph {
    mn_tracer tracer;            /* first: the tape holds a pointer to it */
    const mn_param_set *ps;
    int64_t (*keep)[MN_MAX_DIMS]; /* (ps->n) leading block of each parameter read; 0: unread */
    ex_value *v;
    int nv, cap_v;
    ex_node *n;
    int nn, cap_n;
    ex_const *c;
    int nc, cap_c;
} ex_graph;

int ex_graph_init(ex_graph *g, const mn_param_set *ps);
void ex_graph_free(ex_graph *g);
/* Declares x a graph input (before the pass) called name; returns its value index or -1. */
int ex_graph_input(ex_graph *g, const mn_var *x, const char *name);
/* The value index of x after the pass, or -1 with an error naming what. */
int ex_graph_value(const ex_graph *g, const mn_var *x, const char *what);
/* Marks the nodes the values outs (n) depend on. */
void ex_graph_mark(ex_graph *g, const int *outs, int n);
/* The inputs of node k: *in (n). */
int ex_node_inputs(const ex_node *k, const int **in);

/* Writes the live nodes of g as an ONNX model: inputs (n_in values) and outputs (n_out values)
 * named by their value's name; a value's first dim is left symbolic ("N") when dynamic_batch.
 * Metadata (n_meta pairs) go into the model's metadata_props. */
int ex_onnx_write(const char *path, ex_graph *g, const int *inputs, int n_in, const int *outputs, int n_out,
                  bool dynamic_batch, const char *graph_name, const char *const *meta_keys,
                  const char *const *meta_values, int n_meta);

#endif
