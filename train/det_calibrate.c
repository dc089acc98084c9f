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

int mn_det_calib_grid(const mn_config *c, mn_calib_config *g)
{
    int rc = mn_calib_grid(c, g); /* widths, batches */
    if (rc) return rc;
    g->n_sizes = 0;
    int n_scales = c->mutual.mode == MN_MODE_MUTUALNET ? c->mutual.n_scales : 1;
    for (int s = 0; s < n_scales; s++) {
        int side = (int)lroundf((float)c->det.short_side * c->mutual.scales[s]);
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

int mn_det_build_table(mn_det_model *m, mn_dataset *train_set, mn_dataset *val_set, const char *val_annotations,
                       const mn_calib_config *g, int batch_size, int max_val_images, uint64_t seed, FILE *report)
{
    mn_slim_bn **bns;
    int nb = mn_det_bn_layers(m->net, &bns);
    float *stats = malloc(sizeof(float) * (size_t)(m->table.n_stats + 1));
    if (!stats) return mn_error(MN_ENOMEM, "calibration: out of memory");
    mn_det_aug aug;
    mn_det_aug_default(&aug, m->cfg.det.short_side, m->cfg.det.max_side, m->cfg.data.hflip);
    mn_loader_options lo = {.batch_size = batch_size, .shuffle = true, .drop_last = true, .workers = m->cfg.data.workers,
                            .prefetch = 2, .seed = seed};
    if (mn_dataset_size(train_set) < batch_size) lo.batch_size = mn_dataset_size(train_set);
    mn_loader *ld = NULL;
    int rc = mn_loader_open_det(&ld, train_set, &aug, &lo);
    int64_t n_stats = m->table.n_stats;
    mn_query_free(&m->table);
    mn_query_init(&m->table, "AP");
    m->table.n_stats = n_stats;
    mn_progress pg;
    int total = g->n_widths * g->n_sizes, done = 0;
    mn_progress_begin(&pg, "calibrate", total, 0, 1);
    for (int s = 0; s < g->n_sizes && !rc; s++)
        for (int k = 0; k < g->n_widths && !rc; k++) {
            float w = g->widths[k];
            int side = g->sizes[s][0];
            int64_t macs = 0;
            mn_det_scores sc;
            if (g->sizes[s][1] != m->cfg.det.max_side)
                rc = mn_error(MN_EINVAL, "calibration: grid size %d/%d has another max side than det.max_side %d", side,
                              g->sizes[s][1], m->cfg.det.max_side);
            if (!rc) rc = mn_det_calibrate_one(m, ld, w, side, g->batches);
            if (!rc) rc = mn_det_model_flops(m, w, side, &macs);
            if (!rc) rc = mn_det_evaluate(m, val_set, val_annotations, w, side, max_val_images, false, NULL, &sc);
            /* no ground truth at all gives -1: store 0 so the table stays in [0, 1] */
            double ap = rc ? 0.0 : fmax(sc.stats[MN_COCO_AP], 0.0);
            if (!rc) {
                mn_query_save_stats(stats, bns, nb);
                rc = mn_query_add(&m->table, w, side, m->cfg.det.max_side, macs, ap, stats);
            }
            char extra[96];
            snprintf(extra, sizeof extra, "width %.2f short side %d AP %.2f%%", (double)w, side, 100 * ap);
            mn_progress_update(&pg, ++done, 1, extra);
        }
    mn_progress_end(&pg);
    /* leave the model with the statistics it was trained with */
    mn_query_load_stats(m->train_stats, bns, nb);
    mn_loader_close(ld);
    free(stats);
    if (!rc && report) mn_det_table_print(m, report);
    return rc;
}
