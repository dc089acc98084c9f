/* BN calibration and the query table of a detection model: for every (width, short side) of a
 * grid, recompute every BN layer's statistics as the exact average over a few training batches
 * resized to that short side, score COCO AP on the validation split, count the MACs at the
 * typical input (include/mn/det_model.h), and keep the statistics with the entry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heads/det/internal.h" /* det_features: calibration needs no RPN or box head (no BN there) */
#include "mn/det_model.h"
#include "mn/train.h"
#include "train/driver.h"

int mn_det_calib_grid(const mn_config *c, const float *scales, int n_scales, mn_calib_config *g)
{
    int rc = mn_calib_grid(c, scales, n_scales, g); /* widths, batches, checks of the scales */
    if (rc) return rc;
    g->n_sizes = 0;
    scales = drv_calib_scales(c, scales, &n_scales);
    for (int s = 0; s < n_scales; s++) {
        int side = (int)lroundf((float)c->det.short_side * scales[s]);
        if (side < 32) side = 32;
        bool dup = false;
        for (int k = 0; k < g->n_sizes; k++) dup |= g->sizes[k][0] == side;
        if (dup) continue;
        g->sizes[g->n_sizes][0] = side;
        g->sizes[g->n_sizes][1] = c->det.max_side;
        g->n_sizes++;
    }
    return 0;
}

int mn_det_calibrate_one(mn_det_model *m, mn_loader *train, float width, int short_side, int batches)
{
    mn_slim_bn **bns;
    int n = mn_det_bn_layers(m->net, &bns);
    for (int i = 0; i < n; i++) mn_slim_bn_reset(bns[i]);
    mn_det_aug a;
    mn_det_aug_default(&a, short_side, m->cfg.det.max_side, false);
    mn_det_batch small;
    memset(&small, 0, sizeof small);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int rc = mn_loader_start(train, 0, 0);
    for (int b = 0; b < batches && !rc; b++) {
        const mn_det_batch *bt;
        rc = mn_loader_next_det(train, &bt);
        if (!rc && !bt) { /* fewer batches than asked: the epoch is over, start again */
            rc = mn_loader_start(train, b, 0);
            if (!rc) rc = mn_loader_next_det(train, &bt);
            if (!rc && !bt) rc = mn_error(MN_EINVAL, "calibration: the training loader produced an empty epoch");
        }
        if (rc) break;
        /* to the short side from the original sizes, as a sub-network sees it in training (a
         * batch already at that side is copied unchanged: the resampling is then the identity) */
        rc = mn_det_batch_resize(&small, bt, &a, short_side);
        if (rc) break;
        bt = &small;
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(bt->images, bt->n, 3, bt->h, bt->w));
        /* training-mode BN with momentum 1/(t+1): the exact mean of the per-batch statistics */
        mn_run r = {.tape = &t, .width = width, .training = true, .bn_momentum = -1.0f};
        mn_var *p[MN_DET_LEVELS];
        rc = det_features(m->net, &r, x, p);
    }
    mn_tape_free(&t);
    mn_det_batch_free(&small);
    return rc;
}

static int by_macs(const void *a, const void *b)
{
    const mn_query_entry *x = *(mn_query_entry *const *)a, *y = *(mn_query_entry *const *)b;
    return (x->macs > y->macs) - (x->macs < y->macs);
}

void mn_det_table_print(const mn_det_model *m, FILE *f)
{
    const mn_query_table *q = &m->table;
    const mn_query_entry **order = malloc(sizeof *order * (size_t)(q->n + 1));
    if (!order) return;
    for (int i = 0; i < q->n; i++) order[i] = &q->e[i];
    qsort(order, (size_t)q->n, sizeof *order, by_macs);
    fprintf(f, "  MACs at the typical %dx%d image (median of the validation split), resized and padded\n",
            m->typical_h, m->typical_w);
    fprintf(f, "  %-7s %-11s %-9s %12s %8s  %s\n", "width", "short/max", "input", "MACs", q->metric, "best for its budget");
    for (int i = 0; i < q->n; i++) {
        const mn_query_entry *e = order[i];
        char side[24], input[24];
        int h = 0, w = 0;
        mn_det_model_input_size(m, e->h, &h, &w);
        snprintf(side, sizeof side, "%d/%d", e->h, e->w);
        snprintf(input, sizeof input, "%dx%d", h, w);
        fprintf(f, "  %-7.2f %-11s %-9s %11.3fG %7.2f%%  %s\n", (double)e->width, side, input, (double)e->macs / 1e9,
                100 * e->score, e->frontier ? "*" : "");
    }
    free(order);
}

/* What the calibration loop needs to score a detection configuration. */
typedef struct det_calib {
    mn_det_model *m;
    mn_dataset *val;
    const char *val_annotations;
    int max_val_images;
} det_calib;

static int open_loader(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld)
{
    const mn_config *c = &((det_calib *)self)->m->cfg;
    mn_det_aug aug;
    mn_det_aug_default(&aug, c->det.short_side, c->det.max_side, c->data.hflip);
    return mn_loader_open_det(ld, train_set, &aug, lo);
}

/* size: (short side, max side); the max side must be the model's. */
static int point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    det_calib *dc = self;
    mn_det_model *m = dc->m;
    int side = size[0], rc = 0;
    mn_det_scores sc;
    if (size[1] != m->cfg.det.max_side)
        rc = mn_error(MN_EINVAL, "calibration: grid size %d/%d has another max side than det.max_side %d", side, size[1],
                      m->cfg.det.max_side);
    if (!rc) rc = mn_det_calibrate_one(m, ld, width, side, batches);
    if (!rc) rc = mn_det_model_flops(m, width, side, macs);
    if (!rc) rc = mn_det_evaluate(m, dc->val, dc->val_annotations, width, side, dc->max_val_images, false, NULL, &sc);
    /* no ground truth at all gives -1: store 0 so the table stays in [0, 1] */
    if (!rc) *score = fmax(sc.stats[MN_COCO_AP], 0.0);
    return rc;
}

static void size_text(char *buf, size_t n, const int *size /* (2) */)
{
    snprintf(buf, n, "short side %d", size[0]);
}

static const drv_calib_ops det_calib_ops = {
    .metric = "AP", .open = open_loader, .point = point, .size_text = size_text};

int mn_det_build_table(mn_det_model *m, mn_dataset *train_set, mn_dataset *val_set, const char *val_annotations,
                       const mn_calib_config *g, int batch_size, int max_val_images, uint64_t seed, FILE *report)
{
    mn_slim_bn **bns;
    int nb = mn_det_bn_layers(m->net, &bns);
    det_calib dc = {m, val_set, val_annotations, max_val_images};
    int rc = drv_calib_table(&det_calib_ops, &dc, &m->table, bns, nb, m->train_stats, train_set, g, batch_size,
                             m->cfg.data.workers, seed);
    if (!rc && report) mn_det_table_print(m, report);
    return rc;
}
