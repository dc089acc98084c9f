/* Slimmable MobileNetV1 (Howard et al. 2017): a 3x3 stem and 13 depthwise-separable blocks,
 * every layer sliced but the stem's input and the classifier's outputs (spec §2). */
#include <stdlib.h>

#include "internal.h"

enum { N_BLOCKS = 13 };

/* output channels (width 1) and stride of each depthwise-separable block */
static const int blocks[N_BLOCKS][2] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2}, {512, 1},
                                        {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}};
static const int level_block[4] = {3, 5, 11, 13}; /* 1-based: outputs at strides 4, 8, 16, 32 */

typedef struct mbv1 {
    mn_slim_cba stem;
    mn_slim_cba dw[N_BLOCKS], pw[N_BLOCKS];
    mn_slim_linear fc;
    int num_classes;
    int level_stride[4];
} mbv1;

static int create(void **out, const mn_backbone_config *cfg, mn_param_set *ps, const char *prefix, mn_rng *rng,
                  mn_bn_list *bns)
{
    mbv1 *m = calloc(1, sizeof *m);
    if (!m) return mn_error(MN_ENOMEM, "mobilenet_v1: out of memory");
    *out = m;
    char nm[128];
    int rc = mn_slim_cba_init(&m->stem, ps, rng, mn_pname(nm, sizeof nm, prefix, "features.0"), 3, 32, 3, 2, 1, false, 1);
    if (rc) return rc;
    mn_bn_list_add(bns, &m->stem.bn);
    int inp = 32, stride = 2, dil = 1, level = 0;
    for (int b = 0; b < N_BLOCKS; b++) {
        int c = blocks[b][0], st = blocks[b][1], d = dil;
        if (st == 2 && stride >= cfg->output_stride) {
            dil *= 2;
            st = 1;
        } else {
            stride *= st;
        }
        rc = mn_slim_cba_init(&m->dw[b], ps, rng, mn_pname(nm, sizeof nm, prefix, "features.%d.dw", b + 1), inp, inp, 3,
                              st, d, true, 1);
        if (!rc)
            rc = mn_slim_cba_init(&m->pw[b], ps, rng, mn_pname(nm, sizeof nm, prefix, "features.%d.pw", b + 1), inp, c, 1,
                                  1, 1, false, 1);
        if (rc) return rc;
        mn_bn_list_add(bns, &m->dw[b].bn);
        mn_bn_list_add(bns, &m->pw[b].bn);
        if (level < 4 && level_block[level] == b + 1) m->level_stride[level++] = stride;
        inp = c;
    }
    m->num_classes = cfg->num_classes;
    if (cfg->num_classes > 0)
        rc = mn_slim_linear_init(&m->fc, ps, rng, mn_pname(nm, sizeof nm, prefix, "classifier"), 1024, cfg->num_classes);
    return rc;
}

static void destroy(void *impl) { free(impl); }

static int channels(const void *impl, float w, int level)
{
    (void)impl;
    return mn_slim_channels(blocks[level_block[level] - 1][0], w, 1.0f);
}

static int forward(void *impl, mn_run *r, mn_var *x, mn_features *f, mn_var **logits)
{
    mbv1 *m = impl;
    mn_var *h = mn_slim_cba_forward(&m->stem, r, x, mn_slim_channels(32, r->width, 1.0f));
    int level = 0;
    for (int b = 0; b < N_BLOCKS; b++) {
        h = mn_slim_cba_forward(&m->dw[b], r, h, 0);
        h = mn_slim_cba_forward(&m->pw[b], r, h, mn_slim_channels(blocks[b][0], r->width, 1.0f));
        if (level < 4 && level_block[level] == b + 1) {
            if (f) {
                f->map[level] = h;
                f->stride[level] = m->level_stride[level];
            }
            level++;
        }
    }
    if (logits) {
        if (m->num_classes <= 0) return mn_error(MN_EINVAL, "mobilenet_v1: built without a classifier");
        int64_t s[2] = {x->val.shape[0], h ? h->val.shape[1] : 0};
        *logits = mn_slim_linear_forward(&m->fc, r, mn_reshape(r->tape, mn_global_avg_pool(r->tape, h), 2, s),
                                         m->num_classes);
        if (!*logits) return mn_last_error_code();
    }
    return h ? 0 : mn_last_error_code();
}

static int stage(const char *name) { return mn_features_stage(name, level_block); }

const mn_arch_impl mn_arch_mobilenet_v1 = {"mobilenet_v1", create, destroy, forward, channels, stage};
