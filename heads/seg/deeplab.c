/* DeepLabV3 / V3+ (Chen et al. 2017, 2018) heads over a slimmable backbone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backbone/internal.h"
#include "mn/seg.h"

enum { N_ATROUS = 3 };

struct mn_segmenter {
    mn_seg_config cfg;
    mn_backbone *bb;
    mn_slim_cba aspp_1x1, aspp_atrous[N_ATROUS], aspp_pool, aspp_proj;
    mn_slim_cba low_proj, dec1, dec2;     /* V3+ decoder */
    mn_slim_cba v3_conv;                  /* V3: 3x3 after ASPP */
    mn_slim_conv classifier;              /* 1x1 with bias; outputs never sliced */
    mn_bn_list bns;                       /* head BN layers followed by the backbone's */
};

void mn_seg_config_default(mn_seg_config *cfg, int num_classes)
{
    *cfg = (mn_seg_config){
        .backbone = {MN_ARCH_MOBILENET_V2, 0, 16},
        .num_classes = num_classes,
        .v3plus = true,
        .slim_head = true,
        .aspp_channels = 256,
        .low_level_channels = 48,
    };
}

static int unit(mn_slim_cba *u, mn_param_set *ps, mn_rng *rng, const char *name, int cin, int cout, int k, int dil,
                mn_bn_list *bns)
{
    int rc = mn_slim_cba_init(u, ps, rng, name, cin, cout, k, 1, dil, false, 1);
    return rc ? rc : mn_bn_list_add(bns, &u->bn);
}

int mn_seg_create(mn_segmenter **out, const mn_seg_config *cfg, mn_param_set *ps, mn_rng *rng)
{
    *out = NULL;
    if (cfg->num_classes < 1 || cfg->num_classes > 255)
        return mn_error(MN_EINVAL, "segmenter: num_classes must be in [1, 255], not %d", cfg->num_classes);
    if (cfg->backbone.output_stride != 16 && cfg->backbone.output_stride != 8)
        return mn_error(MN_EINVAL, "segmenter: output_stride must be 16 or 8, not %d", cfg->backbone.output_stride);
    if (cfg->aspp_channels < 8 || cfg->low_level_channels < 8)
        return mn_error(MN_EINVAL, "segmenter: aspp_channels and low_level_channels must be at least 8");
    mn_segmenter *s = calloc(1, sizeof *s);
    if (!s) return mn_error(MN_ENOMEM, "segmenter: out of memory");
    s->cfg = *cfg;
    s->cfg.backbone.num_classes = 0;
    int rc = mn_backbone_create(&s->bb, &s->cfg.backbone, ps, "backbone.", rng);
    int A = cfg->aspp_channels, L = cfg->low_level_channels;
    int high = rc ? 0 : mn_backbone_channels(s->bb, 1.0f, 3), low = rc ? 0 : mn_backbone_channels(s->bb, 1.0f, 0);
    int base = cfg->backbone.output_stride == 8 ? 12 : 6; /* atrous rates 6/12/18 at OS 16, doubled at OS 8 */
    if (!rc) rc = unit(&s->aspp_1x1, ps, rng, "head.aspp.0", high, A, 1, 1, &s->bns);
    char nm[64];
    for (int i = 0; i < N_ATROUS && !rc; i++) {
        snprintf(nm, sizeof nm, "head.aspp.%d", i + 1);
        rc = unit(&s->aspp_atrous[i], ps, rng, nm, high, A, 3, base * (i + 1), &s->bns);
    }
    if (!rc) rc = unit(&s->aspp_pool, ps, rng, "head.aspp.4", high, A, 1, 1, &s->bns);
    if (!rc) rc = unit(&s->aspp_proj, ps, rng, "head.aspp.project", 5 * A, A, 1, 1, &s->bns);
    int cls_in = A;
    if (cfg->v3plus) {
        if (!rc) rc = unit(&s->low_proj, ps, rng, "head.low_level", low, L, 1, 1, &s->bns);
        if (!rc) rc = unit(&s->dec1, ps, rng, "head.decoder.0", A + L, A, 3, 1, &s->bns);
        if (!rc) rc = unit(&s->dec2, ps, rng, "head.decoder.1", A, A, 3, 1, &s->bns);
    } else if (!rc) {
        rc = unit(&s->v3_conv, ps, rng, "head.conv", A, A, 3, 1, &s->bns);
    }
    if (!rc)
        rc = mn_slim_conv_init(&s->classifier, ps, rng, "head.classifier", cls_in, cfg->num_classes, 1, 1, 1, false,
                               true);
    if (!rc) {
        /* the last layer starts small (N(0, 0.01), like the spec's linear classifier): with the
         * He-style std of sqrt(2/K) the first logits are ~8 nats off and the first steps'
         * gradients two orders of magnitude larger than later ones */
        mn_tensor *w = &s->classifier.weight->var.val;
        float scale = 0.01f / sqrtf(2.0f / (float)cfg->num_classes);
        for (int64_t i = 0; i < mn_tensor_numel(w); i++) w->data[i] *= scale;
    }
    if (!rc) {
        mn_slim_bn **bb;
        int n = mn_backbone_bn_layers(s->bb, &bb);
        for (int i = 0; i < n && !rc; i++) rc = mn_bn_list_add(&s->bns, bb[i]);
    }
    if (rc) {
        mn_seg_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void mn_seg_free(mn_segmenter *s)
{
    if (!s) return;
    mn_backbone_free(s->bb);
    free(s->bns.items);
    free(s);
}

const mn_seg_config *mn_seg_cfg(const mn_segmenter *s) { return &s->cfg; }

int mn_seg_bn_layers(mn_segmenter *s, mn_slim_bn ***layers)
{
    *layers = s->bns.items;
    return s->bns.n;
}

mn_var *mn_seg_forward_raw(mn_segmenter *s, mn_run *r, mn_var *x)
{
    mn_features f;
    if (mn_backbone_forward(s->bb, r, x, &f, NULL)) return NULL;
    mn_tape *t = r->tape;
    float hw = s->cfg.slim_head ? r->width : 1.0f;
    int A = mn_slim_channels(s->cfg.aspp_channels, hw, 1.0f);
    mn_var *h = f.map[3];
    mn_var *br[5];
    br[0] = mn_slim_cba_forward(&s->aspp_1x1, r, h, A);
    for (int i = 0; i < N_ATROUS; i++) br[i + 1] = mn_slim_cba_forward(&s->aspp_atrous[i], r, h, A);
    mn_var *pooled = mn_slim_cba_forward(&s->aspp_pool, r, mn_global_avg_pool(t, h), A);
    br[4] = mn_resize_bilinear(t, pooled, (int)h->val.shape[2], (int)h->val.shape[3], false);
    for (int i = 0; i < 5; i++)
        if (!br[i]) return NULL;
    mn_var *y = mn_slim_cba_forward(&s->aspp_proj, r, mn_concat(t, br, 5), A);
    if (s->cfg.v3plus) {
        mn_var *low = mn_slim_cba_forward(&s->low_proj, r, f.map[0],
                                          mn_slim_channels(s->cfg.low_level_channels, hw, 1.0f));
        if (!low || !y) return NULL;
        mn_var *cat[2] = {mn_resize_bilinear(t, y, (int)low->val.shape[2], (int)low->val.shape[3], false), low};
        y = mn_slim_cba_forward(&s->dec1, r, mn_concat(t, cat, 2), A);
        y = mn_slim_cba_forward(&s->dec2, r, y, A);
    } else {
        y = mn_slim_cba_forward(&s->v3_conv, r, y, A);
    }
    return mn_slim_conv_forward(&s->classifier, r, y, s->cfg.num_classes);
}

mn_var *mn_seg_forward(mn_segmenter *s, mn_run *r, mn_var *x)
{
    mn_var *logits = mn_seg_forward_raw(s, r, x);
    if (!logits) return NULL;
    return mn_resize_bilinear(r->tape, logits, (int)x->val.shape[2], (int)x->val.shape[3], false);
}

int mn_seg_flops(mn_segmenter *s, float width, int h, int w_px, int64_t *macs, int64_t *params)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int64_t shape[4] = {1, 3, h, w_px};
    mn_var *x = mn_var_new(&t, 4, shape);
    mn_run r = {.tape = &t, .width = width, .training = false};
    int rc = 0;
    if (!x) rc = mn_last_error_code();
    else {
        mn_tensor_fill(&x->val, 0.0f);
        if (!mn_seg_forward_raw(s, &r, x)) rc = mn_last_error_code();
    }
    mn_tape_free(&t);
    if (!rc) {
        *macs = r.macs;
        if (params) *params = r.params;
    }
    return rc;
}
