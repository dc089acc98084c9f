/* Feature pyramid (torchvision.ops.FeaturePyramidNetwork with LastLevelMaxPool): lateral 1x1
 * convs, nearest top-down upsampling added to the laterals, 3x3 output convs, all with bias and
 * no normalisation; P6 subsamples P5 (max-pool, kernel 1, stride 2). */
#include <math.h>
#include <stdio.h>

#include "internal.h"

/* torchvision initialises FPN convs kaiming_uniform_(a = 1): U(-b, b), b = sqrt(3 / fan_in),
 * with zero bias (mn_slim_conv_init leaves the bias at 0). */
static void kaiming_uniform_a1(mn_slim_conv *c, mn_rng *rng)
{
    mn_tensor *w = &c->weight->var.val;
    float bound = sqrtf(3.0f / (float)(w->shape[1] * w->shape[2] * w->shape[3]));
    int64_t n = mn_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) w->data[i] = mn_rng_range(rng, -bound, bound);
}

int det_fpn_init(det_fpn *f, mn_param_set *ps, mn_rng *rng, const int *in_channels, int channels)
{
    char nm[64];
    for (int l = 0; l < DET_BACKBONE_LEVELS; l++) {
        snprintf(nm, sizeof nm, "neck.inner_blocks.%d", l);
        int rc = mn_slim_conv_init(&f->inner[l], ps, rng, nm, in_channels[l], channels, 1, 1, 1, false, true);
        if (rc) return rc;
        kaiming_uniform_a1(&f->inner[l], rng);
        snprintf(nm, sizeof nm, "neck.layer_blocks.%d", l);
        rc = mn_slim_conv_init(&f->layer[l], ps, rng, nm, channels, channels, 3, 1, 1, false, true);
        if (rc) return rc;
        kaiming_uniform_a1(&f->layer[l], rng);
    }
    return 0;
}

int det_fpn_forward(const det_fpn *f, mn_run *r, const mn_features *x, int c, mn_var **p)
{
    mn_tape *t = r->tape;
    enum { TOP = DET_BACKBONE_LEVELS - 1 };
    for (int l = 0; l < MN_DET_LEVELS; l++) p[l] = NULL;
    mn_var *last = mn_slim_conv_forward(&f->inner[TOP], r, x->map[TOP], c);
    p[TOP] = mn_slim_conv_forward(&f->layer[TOP], r, last, c);
    for (int l = TOP - 1; l >= 0 && last; l--) {
        mn_var *lateral = mn_slim_conv_forward(&f->inner[l], r, x->map[l], c);
        if (!lateral) return mn_last_error_code();
        mn_var *up = mn_resize_nearest(t, last, (int)lateral->val.shape[2], (int)lateral->val.shape[3]);
        last = mn_add(t, lateral, up);
        p[l] = mn_slim_conv_forward(&f->layer[l], r, last, c);
    }
    p[TOP + 1] = mn_max_pool2d(t, p[TOP], 1, 2, 0);
    for (int l = 0; l < MN_DET_LEVELS; l++)
        if (!p[l]) return mn_last_error_code();
    return 0;
}
