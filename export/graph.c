/* A traced pass as a graph: each op event becomes a node, each tensor a value, and every weight
 * the pass read (a leading block of a parameter, or the first C entries of a BN statistic) a
 * constant copied out at once, while the tape's views are alive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/internal.h"

static void *grow(void *p, int *cap, int need, size_t size)
{
    if (need <= *cap) return p;
    int c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *q = realloc(p, (size_t)c * size);
    if (q) *cap = c;
    return q;
}

static int record(mn_tracer *self, const mn_trace_event *e);

int ex_graph_init(ex_graph *g, const mn_param_set *ps)
{
    memset(g, 0, sizeof *g);
    g->tracer.record = record;
    g->ps = ps;
    g->keep = calloc((size_t)ps->n + 1, sizeof *g->keep);
    return g->keep ? 0 : mn_error(MN_ENOMEM, "export: out of memory");
}

void ex_graph_free(ex_graph *g)
{
    for (int i = 0; i < g->nc; i++) free(g->c[i].data);
    for (int i = 0; i < g->nn; i++) free(g->n[i].in_many);
    free(g->c);
    free(g->n);
    free(g->v);
    free(g->keep);
    memset(g, 0, sizeof *g);
}

static int find_value(const ex_graph *g, const mn_var *x)
{
    for (int i = g->nv - 1; i >= 0; i--) /* recent values are the likely ones */
        if (g->v[i].var == x) return i;
    return -1;
}

static int add_value(ex_graph *g, const mn_var *x, int ndim, const int64_t *shape, int konst, int producer)
{
    ex_value *v = grow(g->v, &g->cap_v, g->nv + 1, sizeof *g->v);
    if (!v) return mn_error(MN_ENOMEM, "export: out of memory"), -1;
    g->v = v;
    ex_value *e = &g->v[g->nv];
    memset(e, 0, sizeof *e);
    e->var = x;
    e->ndim = ndim;
    memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
    e->konst = konst;
    e->producer = producer;
    if (konst >= 0) snprintf(e->name, sizeof e->name, "%.63s", g->c[konst].name);
    else snprintf(e->name, sizeof e->name, "t%d", g->nv);
    return g->nv++;
}

int ex_graph_input(ex_graph *g, const mn_var *x, const char *name)
{
    int k = add_value(g, x, x->val.ndim, x->val.shape, -1, -1);
    if (k >= 0) snprintf(g->v[k].name, sizeof g->v[k].name, "%s", name);
    return k;
}

int ex_graph_value(const ex_graph *g, const mn_var *x, const char *what)
{
    int k = x ? find_value(g, x) : -1;
    if (k < 0) mn_error(MN_EINVAL, "export: %s was not computed by the traced pass", what);
    return k;
}

/* The parameter whose memory holds p, or -1. */
static int param_of(const ex_graph *g, const float *p)
{
    for (int i = 0; i < g->ps->n; i++) {
        const mn_tensor *t = &g->ps->items[i]->var.val;
        if (p >= t->data && p < t->data + mn_tensor_numel(t)) return i;
    }
    return -1;
}

/* The constant for a view t (any strides) of parameter pi starting at its first element. */
static int add_const(ex_graph *g, int pi, const mn_tensor *t)
{
    const mn_param *p = g->ps->items[pi];
    for (int i = 0; i < g->nc; i++) { /* a layer run again (the RPN head on each level) reads the same block */
        const ex_const *c = &g->c[i];
        if (c->src == t->data && c->ndim == t->ndim && !memcmp(c->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim))
            return i;
    }
    if (t->ndim != p->var.val.ndim)
        return mn_error(MN_EINVAL, "export: a %d-dim view of the %d-dim parameter %s", t->ndim, p->var.val.ndim, p->name),
               -1;
    ex_const *c = grow(g->c, &g->cap_c, g->nc + 1, sizeof *g->c);
    if (!c) return mn_error(MN_ENOMEM, "export: out of memory"), -1;
    g->c = c;
    c = &g->c[g->nc];
    memset(c, 0, sizeof *c);
    int same = 0; /* another block of the same parameter gets a suffix: names must be unique */
    for (int i = 0; i < g->nc; i++) same += !strncmp(g->c[i].name, p->name, strlen(p->name));
    if (same) snprintf(c->name, sizeof c->name, "%.140s.%d", p->name, same);
    else snprintf(c->name, sizeof c->name, "%.159s", p->name);
    c->ndim = t->ndim;
    memcpy(c->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    c->src = t->data;
    mn_tensor dst;
    int64_t n = mn_tensor_numel(t);
    if (!(c->data = malloc(sizeof(float) * (size_t)(n ? n : 1)))) return mn_error(MN_ENOMEM, "export: out of memory"), -1;
    dst = mn_tensor_view(c->data, t->ndim, t->shape);
    mn_tensor_copy(&dst, t);
    for (int d = 0; d < t->ndim; d++)
        if (g->keep[pi][d] < t->shape[d]) g->keep[pi][d] = t->shape[d];
    return g->nc++;
}

/* The value index of input x of event e (a weight becomes a constant), or -1 with the error set. */
static int input_value(ex_graph *g, const mn_trace_event *e, int i)
{
    const mn_var *x = e->in[i];
    int k = find_value(g, x);
    if (k >= 0) return k;
    int pi = param_of(g, x->val.data);
    if (pi < 0 || x->val.data != g->ps->items[pi]->var.val.data)
        return mn_error(MN_EINVAL,
                        "export: input %d of %s is neither the network's input, nor an op's output, nor a weight "
                        "(a value computed outside the traced ops)",
                        i, e->name),
               -1;
    int c = add_const(g, pi, &x->val);
    return c < 0 ? -1 : add_value(g, x, x->val.ndim, x->val.shape, c, -1);
}

/* The constant of a BN statistic: its first c entries. */
static int stat_const(ex_graph *g, const float *p, int64_t c, const char *what)
{
    int pi = p ? param_of(g, p) : -1;
    if (pi < 0 || p != g->ps->items[pi]->var.val.data)
        return mn_error(MN_EINVAL, "export: batch norm without a running %s among the model's parameters", what), -1;
    mn_tensor t = mn_tensor_view((float *)p, 1, &c);
    return add_const(g, pi, &t);
}

static int record(mn_tracer *self, const mn_trace_event *e)
{
    ex_graph *g = (ex_graph *)self;
    if (find_value(g, e->out) >= 0) return 0; /* the ops it was built from were kept */
    if (e->op == MN_TRACE_OTHER || e->op == MN_TRACE_ROI_ALIGN)
        return mn_error(MN_EINVAL, "export: the traced pass ran %s, which is not part of an exported network", e->name);
    if (e->op == MN_TRACE_BN_ACT && e->bn_training)
        return mn_error(MN_EINVAL, "export: a batch norm ran with batch statistics (the pass must run in eval mode)");
    if (e->n_in > 8 && e->op != MN_TRACE_CONCAT)
        return mn_error(MN_EINVAL, "export: %s has %d inputs", e->name, e->n_in);
    int in[8], *many = e->n_in > 8 ? malloc(sizeof(int) * (size_t)e->n_in) : NULL;
    int *ins = many ? many : in;
    if (e->n_in > 8 && !many) return mn_error(MN_ENOMEM, "export: out of memory");
    for (int i = 0; i < e->n_in; i++) {
        ins[i] = e->in[i] ? input_value(g, e, i) : -1;
        if (e->in[i] && ins[i] < 0) {
            free(many);
            return mn_last_error_code();
        }
    }
    /* a copy of a weight is that weight (linear copies a view whose rows it cannot stride) */
    if (e->op == MN_TRACE_COPY && g->v[ins[0]].konst >= 0) {
        free(many);
        return add_value(g, e->out, e->out->val.ndim, e->out->val.shape, g->v[ins[0]].konst, -1) < 0 ? mn_last_error_code()
                                                                                                : 0;
    }
    int mean = -1, var = -1;
    if (e->op == MN_TRACE_CONV_BN_ACT || e->op == MN_TRACE_BN_ACT) {
        int64_t c = e->out->val.shape[1];
        if ((mean = stat_const(g, e->bn.running_mean, c, "mean")) < 0 ||
            (var = stat_const(g, e->bn.running_var, c, "variance")) < 0) {
            free(many);
            return mn_last_error_code();
        }
    }
    ex_node *n = grow(g->n, &g->cap_n, g->nn + 1, sizeof *g->n);
    if (!n) {
        free(many);
        return mn_error(MN_ENOMEM, "export: out of memory");
    }
    g->n = n;
    n = &g->n[g->nn];
    memset(n, 0, sizeof *n);
    n->e = *e;
    n->e.in = NULL;
    n->e.out = NULL;
    if (many) n->in_many = many;
    else memcpy(n->in, in, sizeof(int) * (size_t)e->n_in);
    n->mean = mean;
    n->var = var;
    n->out = add_value(g, e->out, e->out->val.ndim, e->out->val.shape, -1, g->nn);
    if (n->out < 0) return mn_last_error_code();
    g->nn++;
    return 0;
}

int ex_node_inputs(const ex_node *k, const int **in)
{
    *in = k->in_many ? k->in_many : k->in;
    return k->e.n_in;
}

void ex_graph_mark(ex_graph *g, const int *outs, int n)
{
    for (int i = 0; i < n; i++) {
        int p = g->v[outs[i]].producer;
        if (p >= 0) g->n[p].live = true;
    }
    for (int k = g->nn - 1; k >= 0; k--) { /* producers come before their consumers */
        if (!g->n[k].live) continue;
        const int *in;
        int m = ex_node_inputs(&g->n[k], &in);
        for (int i = 0; i < m; i++)
            if (in[i] >= 0 && g->v[in[i]].producer >= 0) g->n[g->v[in[i]].producer].live = true;
    }
}
