/* A traced graph as an ONNX model (opset 13), built as protobuf-c messages generated from
 * onnx.proto and packed by libprotobuf-c. Every message and buffer comes from one pool freed
 * after packing. Batch norm in eval mode is folded into the convolution before it:
 * w' = w gamma / sqrt(var + eps), b' = (b - mean) gamma / sqrt(var + eps) + beta. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/internal.h"
#include "export/onnx.pb-c.h"
#include "mn/export.h"
#include "mn/fileio.h"

#define OPSET 13

typedef struct pool {
    void **p;
    int n, cap;
    bool failed;
} pool;

static void *palloc(pool *o, size_t n)
{
    if (o->failed) return NULL;
    if (o->n == o->cap) {
        int c = o->cap ? o->cap * 2 : 256;
        void **q = realloc(o->p, sizeof *q * (size_t)c);
        if (!q) return o->failed = true, NULL;
        o->p = q, o->cap = c;
    }
    void *m = calloc(1, n ? n : 1);
    if (!m) return o->failed = true, NULL;
    return o->p[o->n++] = m;
}

static char *pstr(pool *o, const char *s)
{
    char *d = palloc(o, strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static void pool_free(pool *o)
{
    for (int i = 0; i < o->n; i++) free(o->p[i]);
    free(o->p);
}

/* The model under construction: nodes and initializers appended as the graph is walked. */
typedef struct builder {
    pool *o;
    Onnx__NodeProto **node;
    int nn, cap_n;
    Onnx__TensorProto **init;
    int ni, cap_i;
    int tmp;                     /* counter for intermediate names */
} builder;

static bool push(pool *o, void ***arr, int *n, int *cap, void *item)
{
    if (!item) return false;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 64;
        void **q = palloc(o, sizeof *q * (size_t)c);
        if (!q) return false;
        if (*n) memcpy(q, *arr, sizeof *q * (size_t)*n);
        *arr = q, *cap = c;
    }
    (*arr)[(*n)++] = item;
    return true;
}

static Onnx__TensorProto *tensor(builder *b, const char *name, int32_t type, int ndim, const int64_t *shape,
                                 const void *data, size_t elem)
{
    Onnx__TensorProto *t = palloc(b->o, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    t->name = pstr(b->o, name);
    t->has_data_type = true;
    t->data_type = type;
    t->n_dims = (size_t)ndim;
    t->dims = palloc(b->o, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    t->has_raw_data = true;
    t->raw_data.len = n * elem;
    t->raw_data.data = palloc(b->o, n * elem);
    if (!t->name || !t->dims || !t->raw_data.data) return NULL;
    if (ndim) memcpy(t->dims, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->raw_data.data, data, n * elem); /* x86-64 is little-endian, as raw_data is */
    return t;
}

static bool add_float_init(builder *b, const char *name, int ndim, const int64_t *shape, const float *data)
{
    return push(b->o, (void ***)&b->init, &b->ni, &b->cap_i,
                tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, shape, data, sizeof(float)));
}

static bool add_int64_init(builder *b, const char *name, int n, const int64_t *data)
{
    int64_t shape[1] = {n};
    return push(b->o, (void ***)&b->init, &b->ni, &b->cap_i,
                tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, shape, data, sizeof(int64_t)));
}

/* ---- attributes ---- */

static Onnx__AttributeProto *attr(builder *b, const char *name, Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = palloc(b->o, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = pstr(b->o, name);
    a->has_type = true;
    a->type = type;
    return a->name ? a : NULL;
}

static Onnx__AttributeProto *attr_int(builder *b, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = true, a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_float(builder *b, const char *name, float v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = true, a->f = v;
    return a;
}

static Onnx__AttributeProto *attr_ints(builder *b, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a || !(a->ints = palloc(b->o, sizeof(int64_t) * (size_t)n))) return NULL;
    a->n_ints = (size_t)n;
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)n);
    return a;
}

static Onnx__AttributeProto *attr_string(builder *b, const char *name, const char *s)
{
    Onnx__AttributeProto *a = attr(b, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (!a || !(a->s.data = (uint8_t *)pstr(b->o, s))) return NULL;
    a->has_s = true;
    a->s.len = strlen(s);
    return a;
}

/* Appends node op(inputs) -> out with n_attr attributes (NULL entries mean out of memory). An
 * input "" is an absent optional one. */
static bool node(builder *b, const char *op, const char *const *in, int n_in, const char *out,
                 Onnx__AttributeProto *const *attrs, int n_attr)
{
    Onnx__NodeProto *n = palloc(b->o, sizeof *n);
    if (!n) return false;
    onnx__node_proto__init(n);
    char name[32];
    snprintf(name, sizeof name, "n%d", b->nn);
    n->name = pstr(b->o, name);
    n->op_type = pstr(b->o, op);
    n->n_input = (size_t)n_in;
    n->input = palloc(b->o, sizeof(char *) * (size_t)(n_in ? n_in : 1));
    n->n_output = 1;
    n->output = palloc(b->o, sizeof(char *));
    n->n_attribute = (size_t)n_attr;
    n->attribute = palloc(b->o, sizeof *n->attribute * (size_t)(n_attr ? n_attr : 1));
    if (!n->name || !n->op_type || !n->input || !n->output || !n->attribute) return false;
    for (int i = 0; i < n_in; i++)
        if (!(n->input[i] = pstr(b->o, in[i]))) return false;
    if (!(n->output[0] = pstr(b->o, out))) return false;
    for (int i = 0; i < n_attr; i++)
        if (!(n->attribute[i] = attrs[i])) return false;
    return push(b->o, (void ***)&b->node, &b->nn, &b->cap_n, n);
}

/* act (0 none, 1 ReLU, 6 ReLU6) from `from` into `to`. */
static bool activation(builder *b, int act, const char *from, const char *to)
{
    if (act == 1) return node(b, "Relu", (const char *[]){from}, 1, to, NULL, 0);
    return node(b, "Clip", (const char *[]){from, "relu6.min", "relu6.max"}, 3, to, NULL, 0);
}

/* ---- one traced node ---- */

typedef struct walk {
    builder *b;
    const ex_graph *g;
    bool dynamic_batch;
    bool clip_consts;            /* relu6.min / relu6.max added */
} walk;

static const char *vname(const walk *w, int v) { return v >= 0 ? w->g->v[v].name : ""; }

static const ex_const *vconst(const walk *w, int v)
{
    return v >= 0 && w->g->v[v].konst >= 0 ? &w->g->c[w->g->v[v].konst] : NULL;
}

/* The name the convolution's output gets: the node's own when no activation follows. */
static const char *pre_name(walk *w, const ex_node *k, char *buf, int size)
{
    if (!k->e.act) return vname(w, k->out);
    snprintf(buf, (size_t)size, "%s.pre", vname(w, k->out));
    return buf;
}

static bool conv_attrs(walk *w, const mn_conv2d_params *p, const ex_const *wt, Onnx__AttributeProto **a)
{
    builder *b = w->b;
    int64_t ks[2] = {wt->shape[2], wt->shape[3]}, st[2] = {p->stride_h, p->stride_w},
            pads[4] = {p->pad_h, p->pad_w, p->pad_h, p->pad_w}, dil[2] = {p->dil_h, p->dil_w};
    a[0] = attr_ints(b, "kernel_shape", 2, ks);
    a[1] = attr_ints(b, "strides", 2, st);
    a[2] = attr_ints(b, "pads", 4, pads);
    a[3] = attr_ints(b, "dilations", 2, dil);
    a[4] = attr_int(b, "group", p->groups);
    return true;
}

static int conv(walk *w, const ex_node *k, const int *in)
{
    const ex_const *wt = vconst(w, in[0 + 1]), *bias = vconst(w, in[2]);
    if (!wt || wt->ndim != 4 || (in[2] >= 0 && !bias))
        return mn_error(MN_EINVAL, "export: a convolution whose weights are not constants");
    Onnx__AttributeProto *a[5];
    conv_attrs(w, &k->e.conv, wt, a);
    char pre[96];
    const char *ins[3] = {vname(w, in[0]), wt->name, bias ? bias->name : ""};
    int n_in = bias ? 3 : 2;
    if (k->e.op == MN_TRACE_CONV_BN_ACT) {
        /* fold the BN into a new weight and bias */
        const ex_const *gamma = vconst(w, in[3]), *beta = vconst(w, in[4]), *mean = &w->g->c[k->mean],
                       *var = &w->g->c[k->var];
        int64_t cout = wt->shape[0], per = wt->shape[1] * wt->shape[2] * wt->shape[3];
        float *fw = malloc(sizeof(float) * (size_t)(cout * per)), *fb = malloc(sizeof(float) * (size_t)cout);
        if (!fw || !fb) {
            free(fw), free(fb);
            return mn_error(MN_ENOMEM, "export: out of memory");
        }
        for (int64_t c = 0; c < cout; c++) {
            double s = (gamma ? gamma->data[c] : 1.0) / sqrt((double)var->data[c] + k->e.eps);
            for (int64_t j = 0; j < per; j++) fw[c * per + j] = (float)(wt->data[c * per + j] * s);
            fb[c] = (float)(((bias ? bias->data[c] : 0.0) - mean->data[c]) * s + (beta ? beta->data[c] : 0.0));
        }
        char wn[200], bn[200];
        snprintf(wn, sizeof wn, "%s.w%d", vname(w, k->out), w->b->tmp);
        snprintf(bn, sizeof bn, "%s.b%d", vname(w, k->out), w->b->tmp++);
        bool ok = add_float_init(w->b, wn, 4, wt->shape, fw) && add_float_init(w->b, bn, 1, &cout, fb);
        free(fw), free(fb);
        ins[1] = wn, ins[2] = bn, n_in = 3;
        if (!ok || !node(w->b, "Conv", ins, n_in, pre_name(w, k, pre, sizeof pre), a, 5)) return MN_ENOMEM;
        return k->e.act && !activation(w->b, k->e.act, pre, vname(w, k->out)) ? MN_ENOMEM : 0;
    }
    return node(w->b, "Conv", ins, n_in, vname(w, k->out), a, 5) ? 0 : MN_ENOMEM;
}

static int batch_norm(walk *w, const ex_node *k, const int *in)
{
    const ex_const *gamma = vconst(w, in[1]), *beta = vconst(w, in[2]);
    int64_t c = w->g->v[k->out].shape[1];
    char gn[200], bn[200], pre[96];
    snprintf(gn, sizeof gn, "%s.scale", vname(w, k->out));
    snprintf(bn, sizeof bn, "%s.shift", vname(w, k->out));
    float *ones = malloc(sizeof(float) * (size_t)c * 2);
    if (!ones) return mn_error(MN_ENOMEM, "export: out of memory");
    for (int64_t i = 0; i < c; i++) ones[i] = gamma ? gamma->data[i] : 1.0f, ones[c + i] = beta ? beta->data[i] : 0.0f;
    bool ok = add_float_init(w->b, gn, 1, &c, ones) && add_float_init(w->b, bn, 1, &c, ones + c);
    free(ones);
    Onnx__AttributeProto *a[1] = {attr_float(w->b, "epsilon", k->e.eps)};
    const char *ins[5] = {vname(w, in[0]), gn, bn, w->g->c[k->mean].name, w->g->c[k->var].name};
    if (!ok || !node(w->b, "BatchNormalization", ins, 5, pre_name(w, k, pre, sizeof pre), a, 1)) return MN_ENOMEM;
    return k->e.act && !activation(w->b, k->e.act, pre, vname(w, k->out)) ? MN_ENOMEM : 0;
}

static int linear(walk *w, const ex_node *k, const int *in)
{
    const ex_const *wt = vconst(w, in[1]), *bias = vconst(w, in[2]);
    if (!wt) return mn_error(MN_EINVAL, "export: a linear layer whose weight is not a constant");
    const char *x = vname(w, in[0]);
    char flat[96];
    if (w->g->v[in[0]].ndim == 4) { /* (N, C, 1, 1) read as (N, C) */
        snprintf(flat, sizeof flat, "%s.flat", x);
        Onnx__AttributeProto *a[1] = {attr_int(w->b, "axis", 1)};
        if (!node(w->b, "Flatten", (const char *[]){x}, 1, flat, a, 1)) return MN_ENOMEM;
        x = flat;
    }
    Onnx__AttributeProto *a[1] = {attr_int(w->b, "transB", 1)};
    const char *ins[3] = {x, wt->name, bias ? bias->name : ""};
    return node(w->b, "Gemm", ins, bias ? 3 : 2, vname(w, k->out), a, 1) ? 0 : MN_ENOMEM;
}

static int resize(walk *w, const ex_node *k, const int *in)
{
    const ex_value *y = &w->g->v[k->out];
    if (w->dynamic_batch) return mn_error(MN_EINVAL, "export: a resize in a graph of any batch size");
    char sizes[96];
    snprintf(sizes, sizeof sizes, "%s.sizes", y->name);
    bool lin = k->e.op == MN_TRACE_RESIZE_BILINEAR;
    /* torch's bilinear without align_corners is ONNX's pytorch_half_pixel; torch's nearest picks
     * floor(dst * in / out), which is asymmetric with floor rounding */
    Onnx__AttributeProto *a[3] = {
        attr_string(w->b, "mode", lin ? "linear" : "nearest"),
        attr_string(w->b, "coordinate_transformation_mode",
                    lin ? (k->e.align_corners ? "align_corners" : "pytorch_half_pixel") : "asymmetric"),
        attr_string(w->b, "nearest_mode", "floor"),
    };
    const char *ins[4] = {vname(w, in[0]), "", "", sizes};
    return add_int64_init(w->b, sizes, 4, y->shape) && node(w->b, "Resize", ins, 4, y->name, a, lin ? 2 : 3)
               ? 0
               : MN_ENOMEM;
}

static int pool2d(walk *w, const ex_node *k, const int *in)
{
    int64_t ks[2] = {k->e.k, k->e.k}, st[2] = {k->e.stride, k->e.stride}, pads[4] = {k->e.pad, k->e.pad, k->e.pad, k->e.pad};
    Onnx__AttributeProto *a[4] = {attr_ints(w->b, "kernel_shape", 2, ks), attr_ints(w->b, "strides", 2, st),
                                  attr_ints(w->b, "pads", 4, pads), attr_int(w->b, "count_include_pad", 1)};
    bool avg = k->e.op == MN_TRACE_AVG_POOL;
    return node(w->b, avg ? "AveragePool" : "MaxPool", (const char *[]){vname(w, in[0])}, 1, vname(w, k->out), a,
                avg ? 4 : 3)
               ? 0
               : MN_ENOMEM;
}

static int emit(walk *w, const ex_node *k)
{
    const int *in;
    int n = ex_node_inputs(k, &in);
    const char *x = vname(w, in[0]), *y = vname(w, k->out);
    builder *b = w->b;
    if ((k->e.act == 6 || k->e.op == MN_TRACE_RELU6) && !w->clip_consts) {
        float lo = 0.0f, hi = 6.0f;
        if (!add_float_init(b, "relu6.min", 0, NULL, &lo) || !add_float_init(b, "relu6.max", 0, NULL, &hi)) return MN_ENOMEM;
        w->clip_consts = true;
    }
    switch (k->e.op) {
    case MN_TRACE_CONV:
    case MN_TRACE_CONV_BN_ACT: return conv(w, k, in);
    case MN_TRACE_BN_ACT: return batch_norm(w, k, in);
    case MN_TRACE_LINEAR: return linear(w, k, in);
    case MN_TRACE_RELU: return activation(b, 1, x, y) ? 0 : MN_ENOMEM;
    case MN_TRACE_RELU6: return activation(b, 6, x, y) ? 0 : MN_ENOMEM;
    case MN_TRACE_ADD: return node(b, "Add", (const char *[]){x, vname(w, in[1])}, 2, y, NULL, 0) ? 0 : MN_ENOMEM;
    case MN_TRACE_SCALE: {
        char s[96];
        snprintf(s, sizeof s, "%s.factor", y);
        return add_float_init(b, s, 0, NULL, &k->e.scale) && node(b, "Mul", (const char *[]){x, s}, 2, y, NULL, 0)
                   ? 0
                   : MN_ENOMEM;
    }
    case MN_TRACE_CONCAT: {
        const char **ins = palloc(b->o, sizeof(char *) * (size_t)n);
        if (!ins) return MN_ENOMEM;
        for (int i = 0; i < n; i++) ins[i] = vname(w, in[i]);
        Onnx__AttributeProto *a[1] = {attr_int(b, "axis", 1)};
        return node(b, "Concat", ins, n, y, a, 1) ? 0 : MN_ENOMEM;
    }
    case MN_TRACE_RESHAPE: {
        const ex_value *v = &w->g->v[k->out];
        int64_t shape[MN_MAX_DIMS];
        memcpy(shape, v->shape, sizeof shape);
        if (w->dynamic_batch) shape[0] = -1; /* the rows are the batch */
        char s[96];
        snprintf(s, sizeof s, "%s.shape", y);
        return add_int64_init(b, s, v->ndim, shape) && node(b, "Reshape", (const char *[]){x, s}, 2, y, NULL, 0)
                   ? 0
                   : MN_ENOMEM;
    }
    case MN_TRACE_COPY: return node(b, "Identity", (const char *[]){x}, 1, y, NULL, 0) ? 0 : MN_ENOMEM;
    case MN_TRACE_MAX_POOL:
    case MN_TRACE_AVG_POOL: return pool2d(w, k, in);
    case MN_TRACE_GLOBAL_AVG_POOL: return node(b, "GlobalAveragePool", (const char *[]){x}, 1, y, NULL, 0) ? 0 : MN_ENOMEM;
    case MN_TRACE_RESIZE_BILINEAR:
    case MN_TRACE_RESIZE_NEAREST: return resize(w, k, in);
    case MN_TRACE_SOFTMAX: {
        Onnx__AttributeProto *a[1] = {attr_int(b, "axis", 1)};
        return node(b, "Softmax", (const char *[]){x}, 1, y, a, 1) ? 0 : MN_ENOMEM;
    }
    case MN_TRACE_ROI_ALIGN:
    case MN_TRACE_OTHER: break;
    }
    return mn_error(MN_EINVAL, "export: %s has no ONNX counterpart here", k->e.name);
}

/* ---- the model ---- */

static Onnx__ValueInfoProto *value_info(builder *b, const ex_value *v, bool dynamic_batch)
{
    Onnx__ValueInfoProto *vi = palloc(b->o, sizeof *vi);
    Onnx__TypeProto *tp = palloc(b->o, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = palloc(b->o, sizeof *tt);
    Onnx__TensorShapeProto *sh = palloc(b->o, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = palloc(b->o, sizeof *dims * (size_t)v->ndim);
    if (!vi || !tp || !tt || !sh || !dims) return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int d = 0; d < v->ndim; d++) {
        if (!(dims[d] = palloc(b->o, sizeof **dims))) return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[d]);
        if (d == 0 && dynamic_batch) {
            dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[d]->dim_param = pstr(b->o, "N");
        } else {
            dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[d]->dim_value = v->shape[d];
        }
    }
    sh->n_dim = (size_t)v->ndim;
    sh->dim = dims;
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = pstr(b->o, v->name);
    vi->type = tp;
    return vi->name ? vi : NULL;
}

int ex_onnx_write(const char *path, ex_graph *g, const int *inputs, int n_in, const int *outputs, int n_out,
                  bool dynamic_batch, const char *graph_name, const char *const *meta_keys,
                  const char *const *meta_values, int n_meta)
{
    pool o = {0};
    builder b = {.o = &o};
    walk w = {.b = &b, .g = g, .dynamic_batch = dynamic_batch};
    int rc = 0;
    ex_graph_mark(g, outputs, n_out);
    /* the weights the live nodes read as they are (folded ones are added by conv) */
    bool *used = calloc((size_t)g->nc + 1, sizeof *used);
    if (!used) return mn_error(MN_ENOMEM, "export: out of memory");
    for (int k = 0; k < g->nn && !rc; k++) {
        const ex_node *nd = &g->n[k];
        if (!nd->live) continue;
        const int *in;
        int n = ex_node_inputs(nd, &in);
        bool folded = nd->e.op == MN_TRACE_CONV_BN_ACT;
        for (int i = 0; i < n; i++)
            if (in[i] >= 0 && g->v[in[i]].konst >= 0 && !folded) used[g->v[in[i]].konst] = true;
        if (nd->e.op == MN_TRACE_BN_ACT) used[nd->mean] = used[nd->var] = true;
        rc = emit(&w, nd);
    }
    for (int i = 0; i < g->nc && !rc; i++)
        if (used[i] && !add_float_init(&b, g->c[i].name, g->c[i].ndim, g->c[i].shape, g->c[i].data)) rc = MN_ENOMEM;
    free(used);

    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets[1] = {&opset};
    if (!rc) {
        graph.name = (char *)graph_name;
        graph.n_node = (size_t)b.nn;
        graph.node = b.node;
        graph.n_initializer = (size_t)b.ni;
        graph.initializer = b.init;
        graph.n_input = (size_t)n_in;
        graph.input = palloc(&o, sizeof *graph.input * (size_t)n_in);
        graph.n_output = (size_t)n_out;
        graph.output = palloc(&o, sizeof *graph.output * (size_t)n_out);
        for (int i = 0; graph.input && i < n_in; i++) graph.input[i] = value_info(&b, &g->v[inputs[i]], dynamic_batch);
        for (int i = 0; graph.output && i < n_out; i++)
            graph.output[i] = value_info(&b, &g->v[outputs[i]], dynamic_batch);
        model.has_ir_version = true;
        model.ir_version = 7; /* the IR of opset 13 */
        opset.domain = "";
        opset.has_version = true;
        opset.version = OPSET;
        model.n_opset_import = 1;
        model.opset_import = opsets;
        model.producer_name = "mutualnet";
        model.producer_version = MN_VERSION_STRING;
        model.graph = &graph;
        model.n_metadata_props = (size_t)n_meta;
        model.metadata_props = palloc(&o, sizeof *model.metadata_props * (size_t)(n_meta ? n_meta : 1));
        for (int i = 0; model.metadata_props && i < n_meta; i++) {
            Onnx__StringStringEntryProto *e = palloc(&o, sizeof *e);
            if (!e) break;
            onnx__string_string_entry_proto__init(e);
            e->key = (char *)meta_keys[i];
            e->value = (char *)meta_values[i];
            model.metadata_props[i] = e;
        }
        if (o.failed) rc = MN_ENOMEM;
    }
    if (rc == MN_ENOMEM || o.failed) rc = mn_error(MN_ENOMEM, "%s: out of memory building the ONNX model", path);
    if (!rc) {
        size_t size = onnx__model_proto__get_packed_size(&model);
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf) rc = mn_error(MN_ENOMEM, "%s: out of memory (%zu bytes)", path, size);
        else {
            onnx__model_proto__pack(&model, buf);
            rc = mn_write_file_atomic(path, buf, size);
        }
        free(buf);
    }
    pool_free(&o);
    return rc;
}

bool mn_export_has_onnx(void) { return true; }
