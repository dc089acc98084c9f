#include <math.h>
#include <stdio.h>

#include "mn/slim.h"

int mn_make_divisible(double v, int divisor, int min_value)
{
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < min_value) nv = min_value;
    if (nv < 0.9 * v) nv += divisor;
    return nv;
}

int mn_slim_channels(int base, float w, float ratio)
{
    /* the float product mirrors the reference's Python float arithmetic closely enough:
     * the rounding points (multiples of 4 around 8-multiples) are far from ties */
    return (int)(mn_make_divisible((double)base * (double)w / (double)ratio, 8, 1) * (double)ratio);
}

static mn_param *add(mn_param_set *ps, const char *name, const char *suffix, int ndim, const int64_t *shape,
                     int flags)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", name, suffix);
    return mn_param_add(ps, full, ndim, shape, flags);
}

int mn_slim_conv_init(mn_slim_conv *c, mn_param_set *ps, mn_rng *rng, const char *name, int cin_max, int cout_max,
                      int k, int stride, int dil, bool depthwise, bool bias)
{
    c->cin_max = cin_max;
    c->cout_max = cout_max;
    c->k = k;
    c->stride = stride;
    c->dil = dil;
    c->pad = dil * (k - 1) / 2;
    c->depthwise = depthwise;
    int64_t shape[4] = {cout_max, depthwise ? 1 : cin_max, k, k};
    /* depthwise kernels take no weight decay (spec §5); dense ones do */
    c->weight = add(ps, name, "weight", 4, shape, depthwise ? 0 : MN_PARAM_DECAY);
    if (!c->weight) return mn_last_error_code();
    float std = sqrtf(2.0f / (float)(k * k * cout_max));
    int64_t n = mn_tensor_numel(&c->weight->var.val);
    for (int64_t i = 0; i < n; i++) c->weight->var.val.data[i] = std * mn_rng_normal(rng);
    c->bias = NULL;
    if (bias) {
        int64_t bs[1] = {cout_max};
        c->bias = add(ps, name, "bias", 1, bs, 0);
        if (!c->bias) return mn_last_error_code();
    }
    return 0;
}

/* The weight and bias views of c for x at cout output channels (cout is updated for a
 * depthwise layer) and its parameters; false (error set) when the widths do not fit. */
static bool conv_views(const mn_slim_conv *c, mn_tape *t, const mn_var *x, int *cout, mn_var **w, mn_var **b,
                       mn_conv2d_params *p)
{
    int cin = (int)x->val.shape[1];
    if (c->depthwise) *cout = cin;
    if (cin > c->cin_max || *cout > c->cout_max || *cout < 1) {
        mn_error(MN_ESHAPE, "%s: %d -> %d channels exceeds the layer's %d -> %d", c->weight->name, cin, *cout,
                 c->cin_max, c->cout_max);
        return false;
    }
    *w = mn_var_prefix(t, &c->weight->var, 0, *cout);
    if (!c->depthwise) *w = mn_var_prefix(t, *w, 1, cin);
    *b = c->bias ? mn_var_prefix(t, &c->bias->var, 0, *cout) : NULL;
    *p = (mn_conv2d_params){c->stride, c->stride, c->pad, c->pad, c->dil, c->dil, c->depthwise ? cin : 1};
    return true;
}

/* Adds the multiply-accumulates and parameters of c producing y from cin channels to r. */
static void count_conv(const mn_slim_conv *c, mn_run *r, const mn_var *y, int cin, int cout)
{
    int64_t per_out = (int64_t)(c->depthwise ? 1 : cin) * c->k * c->k;
    r->macs += y->val.shape[2] * y->val.shape[3] * cout * per_out; /* per image */
    r->params += cout * per_out + (c->bias ? cout : 0);
}

mn_var *mn_slim_conv_forward(const mn_slim_conv *c, mn_run *r, mn_var *x, int cout)
{
    if (!x) return NULL;
    mn_var *w, *b;
    mn_conv2d_params p;
    if (!conv_views(c, r->tape, x, &cout, &w, &b, &p)) return NULL;
    mn_var *y = mn_conv2d(r->tape, x, w, b, &p);
    if (y) count_conv(c, r, y, (int)x->val.shape[1], cout);
    return y;
}

int mn_slim_bn_init(mn_slim_bn *bn, mn_param_set *ps, const char *name, int c_max)
{
    int64_t s[1] = {c_max};
    bn->frozen_stats = false; /* a layer in a caller's uninitialised struct normalises as trained */
    bn->gamma = add(ps, name, "weight", 1, s, 0);
    bn->beta = add(ps, name, "bias", 1, s, 0);
    bn->mean = add(ps, name, "running_mean", 1, s, MN_PARAM_BUFFER);
    bn->var = add(ps, name, "running_var", 1, s, MN_PARAM_BUFFER);
    if (!bn->gamma || !bn->beta || !bn->mean || !bn->var) return mn_last_error_code();
    for (int i = 0; i < c_max; i++) bn->gamma->var.val.data[i] = 1.0f;
    mn_slim_bn_reset(bn);
    return 0;
}

void mn_slim_bn_reset(mn_slim_bn *bn)
{
    int64_t c = bn->mean->var.val.shape[0];
    for (int64_t i = 0; i < c; i++) {
        bn->mean->var.val.data[i] = 0.0f;
        bn->var->var.val.data[i] = 1.0f;
    }
    bn->num_batches = 0;
}

/* BN over x's channels followed by act (0 none, 1 ReLU, 6 ReLU6) as one op. */
static mn_var *bn_act_forward(mn_slim_bn *bn, mn_run *r, mn_var *x, int act)
{
    if (!x) return NULL;
    int64_t c = x->val.shape[1];
    if (c > bn->gamma->var.val.shape[0]) {
        mn_error(MN_ESHAPE, "%s: %lld channels exceeds the layer's %lld", bn->gamma->name, (long long)c,
                 (long long)bn->gamma->var.val.shape[0]);
        return NULL;
    }
    mn_run frozen;
    if (bn->frozen_stats && r->training && r->bn_momentum >= 0.0f) { /* eval mode inside a training pass */
        frozen = *r;
        frozen.training = false;
        r = &frozen;
    }
    mn_tape *t = r->tape;
    bool track = r->training && r->bn_momentum != 0.0f;
    mn_bn_state st = {bn->mean->var.val.data, bn->var->var.val.data, &bn->num_batches};
    mn_bn_state none = {NULL, NULL, NULL};
    mn_bn_params p = {1e-5f, r->bn_momentum, r->training, r->sync_bn};
    return mn_batch_norm_act(t, x, mn_var_prefix(t, &bn->gamma->var, 0, c), mn_var_prefix(t, &bn->beta->var, 0, c),
                             (track || !r->training) ? &st : &none, &p, act);
}

mn_var *mn_slim_bn_forward(mn_slim_bn *bn, mn_run *r, mn_var *x) { return bn_act_forward(bn, r, x, 0); }

int mn_slim_linear_init(mn_slim_linear *l, mn_param_set *ps, mn_rng *rng, const char *name, int in_max, int out_max)
{
    int64_t ws[2] = {out_max, in_max}, bs[1] = {out_max};
    l->weight = add(ps, name, "weight", 2, ws, MN_PARAM_DECAY);
    l->bias = add(ps, name, "bias", 1, bs, 0);
    if (!l->weight || !l->bias) return mn_last_error_code();
    int64_t n = (int64_t)out_max * in_max;
    for (int64_t i = 0; i < n; i++) l->weight->var.val.data[i] = 0.01f * mn_rng_normal(rng);
    return 0;
}

mn_var *mn_slim_linear_forward(const mn_slim_linear *l, mn_run *r, mn_var *x, int out)
{
    if (!x) return NULL;
    int in = (int)x->val.shape[1];
    mn_tape *t = r->tape;
    mn_var *w = mn_var_prefix(t, mn_var_prefix(t, &l->weight->var, 0, out), 1, in);
    mn_var *y = mn_linear(t, x, w, mn_var_prefix(t, &l->bias->var, 0, out));
    if (y) {
        r->macs += (int64_t)in * out;
        r->params += (int64_t)in * out + out;
    }
    return y;
}

int mn_slim_cba_init(mn_slim_cba *u, mn_param_set *ps, mn_rng *rng, const char *name, int cin_max, int cout_max,
                     int k, int stride, int dil, bool depthwise, int act)
{
    char sub[128];
    u->act = act;
    snprintf(sub, sizeof sub, "%s.0", name);
    int rc = mn_slim_conv_init(&u->conv, ps, rng, sub, cin_max, cout_max, k, stride, dil, depthwise, false);
    if (rc) return rc;
    snprintf(sub, sizeof sub, "%s.1", name);
    return mn_slim_bn_init(&u->bn, ps, sub, cout_max);
}

mn_var *mn_slim_conv_bn_forward(const mn_slim_conv *c, mn_slim_bn *bn, int act, mn_run *r, mn_var *x, int cout)
{
    if (!x) return NULL;
    if (r->training) /* BN and the activation as one op (mn_batch_norm_act) */
        return bn_act_forward(bn, r, mn_slim_conv_forward(c, r, x, cout), act == 6 || act == 1 ? act : 0);
    /* eval mode: one pass (mn_conv2d_bn_act), the same values as the three ops above */
    mn_tape *t = r->tape;
    mn_var *w, *b;
    mn_conv2d_params p;
    if (!conv_views(c, t, x, &cout, &w, &b, &p)) return NULL;
    if (cout > bn->gamma->var.val.shape[0]) {
        mn_error(MN_ESHAPE, "%s: %d channels exceeds the layer's %lld", bn->gamma->name, cout,
                 (long long)bn->gamma->var.val.shape[0]);
        return NULL;
    }
    mn_bn_state st = {bn->mean->var.val.data, bn->var->var.val.data, &bn->num_batches};
    mn_var *y = mn_conv2d_bn_act(t, x, w, b, &p, mn_var_prefix(t, &bn->gamma->var, 0, cout),
                                 mn_var_prefix(t, &bn->beta->var, 0, cout), &st, 1e-5f, act == 6 || act == 1 ? act : 0);
    if (y) count_conv(c, r, y, (int)x->val.shape[1], cout);
    return y;
}

mn_var *mn_slim_cba_forward(mn_slim_cba *u, mn_run *r, mn_var *x, int cout)
{
    return mn_slim_conv_bn_forward(&u->conv, &u->bn, u->act, r, x, cout);
}
