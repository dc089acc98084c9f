/* Slimmable ResNet-50 (He et al. 2016, torchvision's v1.5: stride on the 3x3). Bottleneck
 * widths are tied to their outputs (mid = out / 4, ratio 0.25) and the stem to the first
 * stage (64 = make_divisible(256 w) / 4), so residual adds always agree (spec §2). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const int stage_blocks[4] = {3, 4, 6, 3};
static const int stage_out[4] = {256, 512, 1024, 2048};

typedef struct bottleneck {
    int inp, out;                   /* full-width channels */
    mn_slim_cba c1, c2, c3;         /* 1x1 reduce, 3x3, 1x1 expand (c3 without activation) */
    bool has_down;
    mn_slim_cba down;               /* 1x1 projection shortcut */
} bottleneck;

typedef struct resnet {
    mn_slim_cba stem;
    bottleneck blocks[16];
    int n_blocks;
    int stage_end[4];               /* index of each stage's last block */
    int level_stride[4];
    mn_slim_linear fc;
    int num_classes;
} resnet;

/* The slimmable unit with torchvision's flat names ("layer1.0.conv1", "layer1.0.bn1"). */
static int cba(mn_slim_cba *u, mn_param_set *ps, mn_rng *rng, const char *conv, const char *bn, int cin, int cout,
               int k, int stride, int dil, int act, mn_bn_list *bns)
{
    u->act = act;
    int rc = mn_slim_conv_init(&u->conv, ps, rng, conv, cin, cout, k, stride, dil, false, false);
    if (!rc) rc = mn_slim_bn_init(&u->bn, ps, bn, cout);
    if (!rc) rc = mn_bn_list_add(bns, &u->bn);
    return rc;
}

static int create(void **out, const mn_backbone_config *cfg, mn_param_set *ps, const char *prefix, mn_rng *rng,
                  mn_bn_list *bns)
{
    resnet *m = calloc(1, sizeof *m);
    if (!m) return mn_error(MN_ENOMEM, "resnet50: out of memory");
    *out = m;
    char a[128], b[128];
    int rc = cba(&m->stem, ps, rng, mn_pname(a, sizeof a, prefix, "conv1"), mn_pname(b, sizeof b, prefix, "bn1"), 3, 64,
                 7, 2, 1, 1, bns);
    if (rc) return rc;
    int inp = 64, stride = 4, dil = 1, n = 0; /* stride 4 after the stem's conv and max-pool */
    for (int s = 0; s < 4; s++) {
        int first_stride = s == 0 ? 1 : 2, prev_dil = dil;
        if (first_stride == 2 && stride >= cfg->output_stride) {
            dil *= 2;
            first_stride = 1;
        } else {
            stride *= first_stride;
        }
        for (int i = 0; i < stage_blocks[s]; i++, n++) {
            bottleneck *k = &m->blocks[n];
            int st = i == 0 ? first_stride : 1, d = i == 0 ? prev_dil : dil, mid = stage_out[s] / 4;
            k->inp = inp;
            k->out = stage_out[s];
#define NAME(buf, part) mn_pname(buf, sizeof buf, prefix, "layer%d.%d.%s", s + 1, i, part)
            rc = cba(&k->c1, ps, rng, NAME(a, "conv1"), NAME(b, "bn1"), inp, mid, 1, 1, 1, 1, bns);
            if (!rc) rc = cba(&k->c2, ps, rng, NAME(a, "conv2"), NAME(b, "bn2"), mid, mid, 3, st, d, 1, bns);
            if (!rc) rc = cba(&k->c3, ps, rng, NAME(a, "conv3"), NAME(b, "bn3"), mid, k->out, 1, 1, 1, 0, bns);
            k->has_down = i == 0;
            if (!rc && k->has_down)
                rc = cba(&k->down, ps, rng, NAME(a, "downsample.0"), NAME(b, "downsample.1"), inp, k->out, 1, st, 1, 0,
                         bns);
#undef NAME
            if (rc) return rc;
            inp = k->out;
        }
        m->stage_end[s] = n - 1;
        m->level_stride[s] = stride;
    }
    m->n_blocks = n;
    m->num_classes = cfg->num_classes;
    if (cfg->num_classes > 0)
        rc = mn_slim_linear_init(&m->fc, ps, rng, mn_pname(a, sizeof a, prefix, "fc"), 2048, cfg->num_classes);
    return rc;
}

static void destroy(void *impl) { free(impl); }

static int channels(const void *impl, float w, int level)
{
    (void)impl;
    return mn_slim_channels(stage_out[level], w, 1.0f);
}

static int forward(void *impl, mn_run *r, mn_var *x, mn_features *f, mn_var **logits)
{
    resnet *m = impl;
    float w = r->width;
    mn_var *h = mn_slim_cba_forward(&m->stem, r, x, mn_slim_channels(64, w, 0.25f));
    h = mn_max_pool2d(r->tape, h, 3, 2, 1);
    int level = 0;
    for (int n = 0; n < m->n_blocks; n++) {
        bottleneck *k = &m->blocks[n];
        int mid = mn_slim_channels(k->out / 4, w, 0.25f), out = mn_slim_channels(k->out, w, 1.0f);
        mn_var *y = mn_slim_cba_forward(&k->c1, r, h, mid);
        y = mn_slim_cba_forward(&k->c2, r, y, mid);
        y = mn_slim_cba_forward(&k->c3, r, y, out);
        mn_var *skip = k->has_down ? mn_slim_cba_forward(&k->down, r, h, out) : h;
        h = mn_relu(r->tape, mn_add(r->tape, y, skip));
        if (n == m->stage_end[level]) {
            if (f) {
                f->map[level] = h;
                f->stride[level] = m->level_stride[level];
            }
            level++;
        }
    }
    if (logits) {
        if (m->num_classes <= 0) return mn_error(MN_EINVAL, "resnet50: built without a classifier");
        int64_t s[2] = {x->val.shape[0], h ? h->val.shape[1] : 0};
        *logits = mn_slim_linear_forward(&m->fc, r, mn_reshape(r->tape, mn_global_avg_pool(r->tape, h), 2, s),
                                         m->num_classes);
        if (!*logits) return mn_last_error_code();
    }
    return h ? 0 : mn_last_error_code();
}

/* torchvision's names: conv1/bn1 the stem, layer1..layer4 the stages, fc the classifier */
static int stage(const char *name)
{
    if (!strncmp(name, "conv1.", 6) || !strncmp(name, "bn1.", 4)) return 0;
    if (!strncmp(name, "fc.", 3)) return MN_BACKBONE_STAGES;
    if (!strncmp(name, "layer", 5) && name[5] >= '1' && name[5] <= '4' && name[6] == '.') return name[5] - '0';
    return -1;
}

const mn_arch_impl mn_arch_resnet50 = {"resnet50", create, destroy, forward, channels, stage};
