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
    mn_seg_aug aug = drv_seg_aug(&((cls_calib *)self)->m->cfg, true);
    return mn_loader_open(ld, train_set, &aug, lo);
}

static int cls_forward(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */)
{
    return mn_backbone_forward(net, r, x, NULL, NULL);
}

static int point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    cls_calib *cc = self;
    mn_cls_scores s;
    mn_slim_bn **bns;
    int nb = mn_backbone_bn_layers(cc->m->net, &bns);
    int rc = drv_calib_image_bn(ld, bns, nb, width, size[0], size[1], batches, cls_forward, cc->m->net);
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
