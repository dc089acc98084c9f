/* Slimmable MobileNetV2 (Sandler et al. 2018) with MutualNet's width rules (spec §2): every
 * layer is sliced except the stem's 3 input channels, the 1280-channel tail's output and the
 * classifier's outputs; an inverted residual's expansion is t times its (rounded) input. */
#include <stdlib.h>

#include "internal.h"

enum { N_BLOCKS = 17, TAIL = 1280 };

/* t (expansion), c (output channels at width 1), n (repeats), s (first stride) */
static const int settings[7][4] = {
    {1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
};
/* blocks whose outputs are the stride 4, 8, 16, 32 feature maps (1-based, as features.i) */
static const int level_block[4] = {3, 6, 13, 17};

typedef struct ir_block {
    int inp, out, t;            /* full-width channels */
    bool residual;
    mn_slim_cba expand;         /* 1x1, absent when t == 1 */
    mn_slim_cba dw;             /* 3x3 depthwise */
    mn_slim_conv project;       /* 1x1, linear bottleneck */
    mn_slim_bn project_bn;
} ir_block;

typedef struct mbv2 {
    mn_slim_cba stem;
    ir_block blocks[N_BLOCKS];
    mn_slim_cba tail;
    mn_slim_linear fc;
    int num_classes;
    int level_stride[4];
} mbv2;

static int create(void **out, const mn_backbone_config *cfg, mn_param_set *ps, const char *prefix, mn_rng *rng,
                  mn_bn_list *bns)
{
    mbv2 *m = calloc(1, sizeof *m);
    if (!m) return mn_error(MN_ENOMEM, "mobilenet_v2: out of memory");
    *out = m;
    char nm[128];
    int rc = mn_slim_cba_init(&m->stem, ps, rng, mn_pname(nm, sizeof nm, prefix, "features.0"), 3, 32, 3, 2, 1,
                              false, 6);
    if (rc) return rc;
    mn_bn_list_add(bns, &m->stem.bn);
    int inp = 32, stride = 2, dil = 1, b = 0;
    for (int s = 0; s < 7; s++) {
        int t = settings[s][0], c = settings[s][1], n = settings[s][2], first_stride = settings[s][3];
        int prev_dil = dil;
        if (first_stride == 2 && stride >= cfg->output_stride) {
            dil *= 2; /* keep the resolution, widen the receptive field instead */
            first_stride = 1;
        } else {
            stride *= first_stride;
        }
        for (int i = 0; i < n; i++, b++) {
            ir_block *k = &m->blocks[b];
            int st = i == 0 ? first_stride : 1, d = i == 0 ? prev_dil : dil, part = 0;
            k->inp = inp;
            k->out = c;
            k->t = t;
            k->residual = st == 1 && inp == c;
            if (t != 1) {
                rc = mn_slim_cba_init(&k->expand, ps, rng, mn_pname(nm, sizeof nm, prefix, "features.%d.conv.%d", b + 1, part++),
                                      inp, inp * t, 1, 1, 1, false, 6);
                if (rc) return rc;
                mn_bn_list_add(bns, &k->expand.bn);
            }
            rc = mn_slim_cba_init(&k->dw, ps, rng, mn_pname(nm, sizeof nm, prefix, "features.%d.conv.%d", b + 1, part++),
                                  inp * t, inp * t, 3, st, d, true, 6);
            if (rc) return rc;
            mn_bn_list_add(bns, &k->dw.bn);
            rc = mn_slim_conv_init(&k->project, ps, rng, mn_pname(nm, sizeof nm, prefix, "features.%d.conv.%d", b + 1, part++),
                                   inp * t, c, 1, 1, 1, false, false);
            if (rc) return rc;
            rc = mn_slim_bn_init(&k->project_bn, ps, mn_pname(nm, sizeof nm, prefix, "features.%d.conv.%d", b + 1, part++), c);
            if (rc) return rc;
            mn_bn_list_add(bns, &k->project_bn);
            inp = c;
            for (int l = 0; l < 4; l++)
                if (level_block[l] == b + 1) m->level_stride[l] = stride;
        }
    }
    m->num_classes = cfg->num_classes;
    if (cfg->num_classes <= 0) return 0; /* a feature extractor: no 1280-channel tail, no classifier */
    rc = mn_slim_cba_init(&m->tail, ps, rng, mn_pname(nm, sizeof nm, prefix, "features.18"), 320, TAIL, 1, 1, 1, false, 6);
    if (rc) return rc;
    mn_bn_list_add(bns, &m->tail.bn);
    return mn_slim_linear_init(&m->fc, ps, rng, mn_pname(nm, sizeof nm, prefix, "classifier.1"), TAIL, cfg->num_classes);
}

static void destroy(void *impl) { free(impl); }

static int channels(const void *impl, float w, int level)
{
    (void)impl;
    return mn_slim_channels(settings[level == 0 ? 1 : level == 1 ? 2 : level == 2 ? 4 : 6][1], w, 1.0f);
}

static int forward(void *impl, mn_run *r, mn_var *x, mn_features *f, mn_var **logits)
{
    mbv2 *m = impl;
    float w = r->width;
    mn_var *h = mn_slim_cba_forward(&m->stem, r, x, mn_slim_channels(32, w, 1.0f));
    int level = 0;
    for (int b = 0; b < N_BLOCKS; b++) {
        ir_block *k = &m->blocks[b];
        int hidden = mn_slim_channels(k->inp, w, 1.0f) * k->t, out = mn_slim_channels(k->out, w, 1.0f);
        mn_var *y = k->t != 1 ? mn_slim_cba_forward(&k->expand, r, h, hidden) : h;
        y = mn_slim_cba_forward(&k->dw, r, y, hidden);
        y = mn_slim_conv_bn_forward(&k->project, &k->project_bn, 0, r, y, out);
        h = k->residual ? mn_add(r->tape, h, y) : y;
        if (level < 4 && level_block[level] == b + 1) {
            if (f) {
                f->map[level] = h;
                f->stride[level] = m->level_stride[level];
            }
            level++;
        }
    }
    if (logits) {
        if (m->num_classes <= 0) return mn_error(MN_EINVAL, "mobilenet_v2: built without a classifier");
        int64_t s[2] = {x->val.shape[0], TAIL};
        mn_var *p = mn_reshape(r->tape, mn_global_avg_pool(r->tape, mn_slim_cba_forward(&m->tail, r, h, TAIL)), 2, s);
        *logits = mn_slim_linear_forward(&m->fc, r, p, m->num_classes);
        if (!*logits) return mn_last_error_code();
    }
    return h ? 0 : mn_last_error_code();
}

static int stage(const char *name) { return mn_features_stage(name, level_block); }

const mn_arch_impl mn_arch_mobilenet_v2 = {"mobilenet_v2", create, destroy, forward, channels, stage};
