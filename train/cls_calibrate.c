/* BN calibration and the query table of a classifier: for every (width, input size) of the grid,
 * BN statistics averaged over a few training batches at that configuration, top-1 accuracy on
 * the validation split and the multiply-accumulates (spec §3, §7). */
#include <stdio.h>

#include "mn/cls_model.h"
#include "mn/ops.h"
#include "train/driver.h"

typedef struct cls_calib {
    mn_cls_model *m;
    mn_dataset *val;
    int max_val_images;
} cls_calib;

static int open_loader(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld)
{
    const mn_config *c = &((cls_calib *)self)->m->cfg;
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, c->data.crop[0], c->data.crop[1], true);
    aug.scale_min = c->data.scale_range[0];
    aug.scale_max = c->data.scale_range[1];
    return mn_loader_open(ld, train_set, &aug, lo);
}

/* Resets every BN layer, then averages the statistics of `batches` training batches resized to
 * h x w, seen at width in training mode without gradients. */
static int calibrate_one(mn_cls_model *m, mn_loader *train, float width, int h, int w, int batches)
{
    mn_slim_bn **bns;
    int n = mn_backbone_bn_layers(m->net, &bns);
    for (int i = 0; i < n; i++) mn_slim_bn_reset(bns[i]);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int rc = mn_loader_start(train, 0, 0);
    for (int b = 0; b < batches && !rc; b++) {
        const mn_seg_batch *bt;
        rc = mn_loader_next(train, &bt);
        if (!rc && !bt) { /* fewer batches than asked: the epoch is over, start again */
            rc = mn_loader_start(train, b, 0);
            if (!rc) rc = mn_loader_next(train, &bt);
            if (!rc && !bt) rc = mn_error(MN_EINVAL, "calibration: the training loader produced an empty epoch");
        }
        if (rc) break;
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(bt->images, bt->n, 3, bt->h, bt->w));
        if (bt->h != h || bt->w != w) x = mn_resize_bilinear(&t, x, h, w, true);
        /* momentum 1/(t+1): the exact mean of the per-batch statistics */
        mn_run r = {.tape = &t, .width = width, .training = true, .bn_momentum = -1.0f};
        rc = mn_backbone_forward(m->net, &r, x, NULL, NULL);
    }
    mn_tape_free(&t);
    return rc;
}

static int point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    cls_calib *cc = self;
    mn_cls_scores s;
    int rc = calibrate_one(cc->m, ld, width, size[0], size[1], batches);
    if (!rc) rc = mn_cls_model_flops(cc->m, width, size[0], size[1], macs);
    if (!rc) rc = mn_cls_evaluate(cc->m, cc->val, width, size[0], size[1], cc->max_val_images, false, &s);
    if (!rc) *score = s.top1;
    return rc;
}

static void size_text(char *buf, size_t n, const int *size /* (2) */)
{
    snprintf(buf, n, "%dx%d", size[0], size[1]);
}

static const drv_calib_ops cls_calib_ops = {.metric = "top-1", .open = open_loader, .point = point, .size_text = size_text};

int mn_cls_build_table(mn_cls_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                       int batch_size, int max_val_images, uint64_t seed, FILE *report)
{
    mn_slim_bn **bns;
    int nb = mn_backbone_bn_layers(m->net, &bns);
    cls_calib cc = {m, val_set, max_val_images};
    int rc = drv_calib_table(&cls_calib_ops, &cc, &m->table, bns, nb, m->train_stats, train_set, g, batch_size,
                             m->cfg.data.workers, seed);
    if (!rc && report) mn_query_print(&m->table, report);
    return rc;
}
