/* Post-training BN calibration and the query table (spec §3, §7): for every (width, input
 * size) of a grid, recompute every BN layer's statistics as the exact average over a few
 * training batches seen at that configuration, score it on the validation split, count its
 * multiply-accumulates, and keep the statistics with the entry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/calibrate.h"
#include "mn/ops.h"
#include "mn/train.h"
#include "train/driver.h"

static int round32(double v)
{
    int r = (int)(v / 32.0 + 0.5) * 32;
    return r < 32 ? 32 : r;
}

const float *drv_calib_scales(const mn_config *c, const float *scales, int *n_scales)
{
    if (scales) return scales;
    *n_scales = c->mutual.mode == MN_MODE_MUTUALNET ? c->mutual.n_scales : 1;
    return c->mutual.scales;
}

int mn_calib_grid(const mn_config *c, const float *scales, int n_scales, mn_calib_config *g)
{
    memset(g, 0, sizeof *g);
    float lo = c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_min;
    float hi = c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_max;
    /* from the top down so the full width is always present, then the narrowest */
    for (float w = hi; w > lo + 1e-4f && g->n_widths < MN_CALIB_MAX; w -= c->calibrate.width_step)
        g->widths[g->n_widths++] = roundf(w * 1000.0f) / 1000.0f;
    if (g->n_widths < MN_CALIB_MAX) g->widths[g->n_widths++] = lo;
    if (scales && (n_scales < 1 || n_scales > MN_MAX_SCALES))
        return mn_error(MN_EINVAL, "calibration grid: %d input scales (1 to %d)", n_scales, MN_MAX_SCALES);
    scales = drv_calib_scales(c, scales, &n_scales);
    for (int s = 0; s < n_scales; s++) {
        if (!(scales[s] > 0.0f && scales[s] <= 4.0f))
            return mn_error(MN_EINVAL, "calibration grid: input scale %g is outside (0, 4]", (double)scales[s]);
        /* the evaluation size itself, and other scales rounded to multiples of 32 */
        bool full = scales[s] == 1.0f;
        int h = full ? c->data.eval_size[0] : round32(c->data.eval_size[0] * (double)scales[s]);
        int w = full ? c->data.eval_size[1] : round32(c->data.eval_size[1] * (double)scales[s]);
        bool dup = false;
        for (int k = 0; k < g->n_sizes; k++) dup |= g->sizes[k][0] == h && g->sizes[k][1] == w;
        if (dup) continue;
        g->sizes[g->n_sizes][0] = h;
        g->sizes[g->n_sizes][1] = w;
        g->n_sizes++;
    }
    g->batches = c->calibrate.batches;
    return 0;
}

static int seg_forward(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */)
{
    return mn_seg_forward_raw(net, r, x) ? 0 : mn_last_error_code();
}

int mn_seg_calibrate_one(mn_seg_model *m, mn_loader *train, float width, int h, int w, int batches)
{
    mn_slim_bn **bns;
    int n = mn_seg_bn_layers(m->net, &bns);
    return drv_calib_image_bn(train, bns, n, width, h, w, batches, seg_forward, m->net);
}

/* What the calibration loop needs to score a segmentation configuration. */
typedef struct seg_calib {
    mn_seg_model *m;
    mn_dataset *val;
    int max_val_images;
} seg_calib;

static int open_loader(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld)
{
    mn_seg_aug aug = drv_seg_aug(&((seg_calib *)self)->m->cfg, true);
    return mn_loader_open(ld, train_set, &aug, lo);
}

static int point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    seg_calib *sc = self;
    mn_seg_scores s;
    int rc = mn_seg_calibrate_one(sc->m, ld, width, size[0], size[1], batches);
    if (!rc) rc = mn_seg_flops(sc->m->net, width, size[0], size[1], macs, NULL);
    if (!rc) rc = mn_seg_evaluate(sc->m, sc->val, width, size[0], size[1], sc->max_val_images, false, &s);
    if (!rc) *score = s.miou;
    return rc;
}

static void size_text(char *buf, size_t n, const int *size /* (2) */)
{
    snprintf(buf, n, "%dx%d", size[0], size[1]);
}

static const drv_calib_ops seg_calib_ops = {
    .metric = "mIoU", .open = open_loader, .point = point, .size_text = size_text};

int mn_seg_build_table(mn_seg_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                       int batch_size, int max_val_images, uint64_t seed, FILE *report)
{
    mn_slim_bn **bns;
    int nb = mn_seg_bn_layers(m->net, &bns);
    seg_calib sc = {m, val_set, max_val_images};
    int rc = drv_calib_table(&seg_calib_ops, &sc, &m->table, bns, nb, m->train_stats, train_set, g, batch_size,
                             m->cfg.data.workers, seed);
    if (!rc && report) mn_query_print(&m->table, report);
    return rc;
}
