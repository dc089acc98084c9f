/* Post-training BN calibration (spec §3, §7): the grid of (width, input size) configurations a
 * query table covers, and for one configuration every BN layer's statistics recomputed as the
 * exact average over a few training batches seen at it. Scoring the configurations and filling
 * the table is evaluation's (eval/calibrate.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heads/det/internal.h" /* det_features: calibration needs no RPN or box head (no BN there) */
#include "mn/calibrate.h"
#include "mn/cls_model.h"
#include "mn/comm.h"
#include "mn/det_model.h"
#include "mn/ops.h"
#include "mn/seg_model.h"
#include "model/internal.h"

const float *mdl_calib_scales(const mn_config *c, const float *scales, int *n_scales)
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
    scales = mdl_calib_scales(c, scales, &n_scales);
    for (int s = 0; s < n_scales; s++) {
        if (!(scales[s] > 0.0f && scales[s] <= 4.0f))
            return mn_error(MN_EINVAL, "calibration grid: input scale %g is outside (0, 4]", (double)scales[s]);
        /* the evaluation size itself, and other scales rounded to multiples of 32 */
        bool full = scales[s] == 1.0f;
        int h = full ? c->data.eval_size[0] : mn_round32(c->data.eval_size[0] * (double)scales[s]);
        int w = full ? c->data.eval_size[1] : mn_round32(c->data.eval_size[1] * (double)scales[s]);
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
    return mn_seg_calibrate_one_ranks(m, train, width, h, w, batches, NULL);
}

int mn_seg_calibrate_one_ranks(mn_seg_model *m, mn_loader *train, float width, int h, int w, int batches,
                               mn_comm *comm)
{
    mn_slim_bn **bns;
    int n = mn_seg_bn_layers(m->net, &bns);
    return mdl_calib_image_bn(train, bns, n, width, h, w, batches, seg_forward, m->net, comm);
}

int mdl_calib_image_bn(mn_loader *ld, mn_slim_bn *const *bns /* (nb) */, int nb, float width, int h, int w, int batches,
                       int (*forward)(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */), void *net, mn_comm *comm)
{
    /* with ranks, every BN layer reduces its statistics over them: a rank that cannot go on
     * must say so before the next forward, or the others wait in it forever */
    for (int i = 0; i < nb; i++) mn_slim_bn_reset(bns[i]);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int rc = mn_comm_agree(comm, mn_loader_start(ld, 0, 0));
    for (int b = 0; b < batches && !rc; b++) {
        int bn = 0, bh = 0, bw = 0;
        const float *images = NULL;
        rc = mn_loader_next_images(ld, &bn, &bh, &bw, &images);
        if (!rc && !bn) { /* fewer batches than asked: the epoch is over, start again */
            rc = mn_loader_start(ld, b, 0);
            if (!rc) rc = mn_loader_next_images(ld, &bn, &bh, &bw, &images);
            if (!rc && !bn) rc = mn_error(MN_EINVAL, "calibration: the training loader produced an empty epoch");
        }
        rc = mn_comm_agree(comm, rc);
        if (rc) break;
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d((float *)images, bn, 3, bh, bw));
        if (bh != h || bw != w) x = mn_resize_bilinear(&t, x, h, w, true);
        /* training-mode BN with momentum 1/(t+1): the exact mean of the per-batch statistics,
         * each batch's over every rank's slice of it (the global batch) */
        mn_run r = {.tape = &t, .width = width, .training = true, .bn_momentum = -1.0f, .sync_bn = comm};
        rc = mn_comm_agree(comm, x ? forward(net, &r, x) : mn_last_error_code());
    }
    mn_tape_free(&t);
    return rc;
}

/* ---- detection ---- */

int mn_det_calib_grid(const mn_config *c, const float *scales, int n_scales, mn_calib_config *g)
{
    int rc = mn_calib_grid(c, scales, n_scales, g); /* widths, batches, checks of the scales */
    if (rc) return rc;
    g->n_sizes = 0;
    scales = mdl_calib_scales(c, scales, &n_scales);
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
    return mn_det_calibrate_one_ranks(m, train, width, short_side, batches, NULL);
}

int mn_det_calibrate_one_ranks(mn_det_model *m, mn_loader *train, float width, int short_side, int batches,
                               mn_comm *comm)
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
    /* with ranks (each its slice of every batch) a rank that cannot go on says so before the next
     * collective, or the others wait in it forever */
    int rc = mn_comm_agree(comm, mn_loader_start(train, 0, 0));
    for (int b = 0; b < batches && !rc; b++) {
        const mn_det_batch *bt;
        rc = mn_loader_next_det(train, &bt);
        if (!rc && !bt) { /* fewer batches than asked: the epoch is over, start again */
            rc = mn_loader_start(train, b, 0);
            if (!rc) rc = mn_loader_next_det(train, &bt);
            if (!rc && !bt) rc = mn_error(MN_EINVAL, "calibration: the training loader produced an empty epoch");
        }
        /* to the short side from the original sizes, as a sub-network sees it in training (a
         * batch already at that side is copied unchanged: the resampling is then the identity),
         * padded as the whole batch is over the ranks */
        int ph = 0, pw = 0;
        if (!rc && mn_comm_size(comm) > 1) rc = mn_det_batch_resized_size(bt, &a, short_side, &ph, &pw);
        rc = mn_comm_agree(comm, rc);
        double pad[2] = {ph, pw};
        if (!rc) rc = mn_comm_reduce_f64(comm, pad, 2, MN_COMM_MAX);
        if (!rc) rc = mn_comm_agree(comm, mn_det_batch_resize_pad(&small, bt, &a, short_side, (int)pad[0], (int)pad[1]));
        if (rc) break;
        bt = &small;
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(bt->images, bt->n, 3, bt->h, bt->w));
        /* training-mode BN with momentum 1/(t+1): the exact mean of the per-batch statistics, each
         * batch's over every rank's slice of it */
        mn_run r = {.tape = &t, .width = width, .training = true, .bn_momentum = -1.0f, .sync_bn = comm};
        mn_var *p[MN_DET_LEVELS];
        rc = mn_comm_agree(comm, det_features(m->net, &r, x, p));
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
    bool timed = mn_query_has_ms(q);
    fprintf(f, "  MACs%s at the typical %dx%d image (median of the validation split), resized and padded\n",
            timed ? " and ms" : "", m->typical_h, m->typical_w);
    mn_query_print_timing(q, f);
    fprintf(f, "  %-7s %-11s %-9s %12s %*s%8s  %s\n", "width", "short/max", "input", "MACs", timed ? 10 : 0,
            timed ? "ms" : "", q->metric, timed ? "best for its budget (* in MACs, + in ms)" : "best for its budget");
    for (int i = 0; i < q->n; i++) {
        const mn_query_entry *e = order[i];
        char side[24], input[24], ms[24], best[4];
        int h = 0, w = 0;
        mn_det_model_input_size(m, e->h, &h, &w);
        snprintf(side, sizeof side, "%d/%d", e->h, e->w);
        snprintf(input, sizeof input, "%dx%d", h, w);
        mn_query_entry_text(q, e, ms, sizeof ms, best);
        fprintf(f, "  %-7.2f %-11s %-9s %11.3fG %s%7.2f%%  %s\n", (double)e->width, side, input, (double)e->macs / 1e9,
                ms, 100 * e->score, best);
    }
    free(order);
}

/* ---- classification ---- */

/* With the classifier: its 1280-channel tail has a BN of its own, which the features alone skip. */
static int cls_forward(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */)
{
    mn_var *logits = NULL;
    return mn_backbone_forward(net, r, x, NULL, &logits);
}

int mn_cls_calibrate_one(mn_cls_model *m, mn_loader *train, float width, int h, int w, int batches)
{
    return mn_cls_calibrate_one_ranks(m, train, width, h, w, batches, NULL);
}

int mn_cls_calibrate_one_ranks(mn_cls_model *m, mn_loader *train, float width, int h, int w, int batches,
                               mn_comm *comm)
{
    mn_slim_bn **bns;
    int nb = mn_backbone_bn_layers(m->net, &bns);
    return mdl_calib_image_bn(train, bns, nb, width, h, w, batches, cls_forward, m->net, comm);
}
