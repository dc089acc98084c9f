/* Query tables (spec §3, §7): for every configuration of a grid, BN statistics re-estimated by
 * the model layer, then the configuration scored on the validation split here and costed, the
 * statistics kept with the entry. One loop; each task brings its loader, its calibration, its
 * score and how it names a size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/calibrate.h"
#include "mn/comm.h"
#include "mn/query.h"
#include "mn/cls_eval.h"
#include "mn/det_eval.h"
#include "mn/progress.h"
#include "mn/seg_eval.h"

typedef struct ev_calib_ops {
    const char *metric; /* the table's: "mIoU" | "AP" */
    /* Opens a loader of training batches with these options. */
    int (*open)(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld);
    /* Calibrates the BN statistics at (width, size), then costs and scores that configuration. */
    int (*point)(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score);
    /* How a progress line names a size. */
    void (*size_text)(char *buf, size_t n, const int *size /* (2) */);
} ev_calib_ops;

/* Calibrates, scores and costs every configuration of g into a fresh table of ops->metric,
 * keyed by (width, g->sizes[s]), and leaves the BN layers with the trained statistics. With comm
 * (NULL: one process) the loader gives this rank its slice of every batch and ops->point works
 * over the ranks, agreeing on every failure: all ranks end with the same table. */
static int ev_calib_table(const ev_calib_ops *ops, void *self, mn_query_table *table, mn_slim_bn *const *bns /* (nb) */,
                    int nb, const float *train_stats /* (table->n_stats) */, mn_dataset *train_set,
                    const mn_calib_config *g, int batch_size, int workers, uint64_t seed,
                          const mn_reporter *rep, mn_comm *comm)
{
    float *stats = malloc(sizeof(float) * (size_t)(table->n_stats + 1)); /* + 1: never malloc(0) */
    if (!stats) return mn_error(MN_ENOMEM, "calibration: out of memory");
    mn_loader_options lo = {.batch_size = batch_size, .shuffle = true, .drop_last = true, .workers = workers,
                            .prefetch = 2, .seed = seed, .rank = mn_comm_rank(comm), .ranks = mn_comm_size(comm)};
    if (mn_dataset_size(train_set) < batch_size) lo.batch_size = mn_dataset_size(train_set);
    mn_loader *ld = NULL;
    int rc = mn_comm_agree(comm, ops->open(self, train_set, &lo, &ld));
    int64_t n_stats = table->n_stats;
    mn_query_free(table);
    mn_query_init(table, ops->metric);
    table->n_stats = n_stats;
    mn_progress pg;
    int total = g->n_widths * g->n_sizes, done = 0;
    mn_progress_begin(&pg, rep, "calibrate", total, 0, 1);
    for (int s = 0; s < g->n_sizes && !rc; s++)
        for (int k = 0; k < g->n_widths && !rc; k++) {
            float w = g->widths[k];
            int64_t macs = 0;
            double score = 0;
            rc = ops->point(self, ld, w, g->sizes[s], g->batches, &macs, &score);
            double shown = rc ? 0.0 : score;
            if (!rc) {
                mn_query_save_stats(stats, bns, nb);
                rc = mn_query_add(table, w, g->sizes[s][0], g->sizes[s][1], macs, score, stats);
            }
            char size[48], extra[96];
            ops->size_text(size, sizeof size, g->sizes[s]);
            snprintf(extra, sizeof extra, "width %.2f %s %s %.2f%%", (double)w, size, ops->metric, 100 * shown);
            mn_progress_update(&pg, ++done, 0, extra); /* a configuration is no fixed number of images */
        }
    mn_progress_end(&pg);
    /* leave the model with the statistics it was trained with */
    mn_query_load_stats(train_stats, bns, nb);
    mn_loader_close(ld);
    free(stats);
    return rc;
}

/* ---- segmentation ---- */

/* What the calibration loop needs to score a segmentation configuration. */
typedef struct seg_calib {
    mn_seg_model *m;
    mn_dataset *val;
    int max_val_images;
    mn_comm *comm;
} seg_calib;

static int seg_open_loader(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld)
{
    mn_seg_aug aug = mn_config_seg_aug(&((seg_calib *)self)->m->cfg, true);
    return mn_loader_open(ld, train_set, &aug, lo);
}

static int seg_point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    seg_calib *sc = self;
    mn_seg_scores s;
    /* each step ends agreed, so that no rank goes on to a collective the others skip */
    int rc = mn_seg_calibrate_one_ranks(sc->m, ld, width, size[0], size[1], batches, sc->comm);
    if (!rc) rc = mn_comm_agree(sc->comm, mn_seg_flops(sc->m->net, width, size[0], size[1], macs, NULL));
    if (!rc) rc = mn_seg_evaluate_ranks(sc->m, sc->val, width, size[0], size[1], sc->max_val_images, NULL, sc->comm, &s);
    if (!rc) *score = s.miou;
    return rc;
}

static void seg_size_text(char *buf, size_t n, const int *size /* (2) */)
{
    snprintf(buf, n, "%dx%d", size[0], size[1]);
}

static const ev_calib_ops seg_calib_ops = {
    .metric = "mIoU", .open = seg_open_loader, .point = seg_point, .size_text = seg_size_text};

int mn_seg_build_table(mn_seg_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                       int batch_size, int max_val_images, uint64_t seed,
                              const mn_reporter *rep, FILE *report)
{
    return mn_seg_build_table_ranks(m, train_set, val_set, g, batch_size, max_val_images, seed, rep, report, NULL);
}

int mn_seg_build_table_ranks(mn_seg_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                             int batch_size, int max_val_images, uint64_t seed, const mn_reporter *rep, FILE *report,
                             mn_comm *comm)
{
    mn_slim_bn **bns;
    int nb = mn_seg_bn_layers(m->net, &bns);
    seg_calib sc = {m, val_set, max_val_images, comm};
    int rc = ev_calib_table(&seg_calib_ops, &sc, &m->table, bns, nb, m->train_stats, train_set, g, batch_size,
                             m->cfg.data.workers, seed, rep, comm);
    if (!rc && report) mn_query_print(&m->table, report);
    return rc;
}

/* ---- detection ---- */

/* What the calibration loop needs to score a detection configuration. */
typedef struct det_calib {
    mn_det_model *m;
    mn_dataset *val;
    const char *val_annotations;
    int max_val_images;
    mn_comm *comm;
} det_calib;

static int det_open_loader(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld)
{
    const mn_config *c = &((det_calib *)self)->m->cfg;
    mn_det_aug aug;
    mn_det_aug_default(&aug, c->det.short_side, c->det.max_side, c->data.hflip);
    return mn_loader_open_det(ld, train_set, &aug, lo);
}

/* size: (short side, max side); the max side must be the model's. */
static int det_point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    det_calib *dc = self;
    mn_det_model *m = dc->m;
    int side = size[0], rc = 0;
    mn_det_scores sc;
    if (size[1] != m->cfg.det.max_side)
        rc = mn_error(MN_EINVAL, "calibration: grid size %d/%d has another max side than det.max_side %d", side, size[1],
                      m->cfg.det.max_side);
    if (!rc) rc = mn_det_calibrate_one_ranks(m, ld, width, side, batches, dc->comm);
    if (!rc) rc = mn_comm_agree(dc->comm, mn_det_model_flops(m, width, side, macs));
    if (!rc)
        rc = mn_det_evaluate_ranks(m, dc->val, dc->val_annotations, width, side, dc->max_val_images, NULL, NULL,
                                   dc->comm, &sc);
    /* no ground truth at all gives -1: store 0 so the table stays in [0, 1] */
    if (!rc) *score = fmax(sc.stats[MN_COCO_AP], 0.0);
    return rc;
}

static void det_size_text(char *buf, size_t n, const int *size /* (2) */)
{
    snprintf(buf, n, "short side %d", size[0]);
}

static const ev_calib_ops det_calib_ops = {
    .metric = "AP", .open = det_open_loader, .point = det_point, .size_text = det_size_text};

int mn_det_build_table(mn_det_model *m, mn_dataset *train_set, mn_dataset *val_set, const char *val_annotations,
                       const mn_calib_config *g, int batch_size, int max_val_images, uint64_t seed,
                              const mn_reporter *rep, FILE *report)
{
    return mn_det_build_table_ranks(m, train_set, val_set, val_annotations, g, batch_size, max_val_images, seed, rep,
                                    report, NULL);
}

int mn_det_build_table_ranks(mn_det_model *m, mn_dataset *train_set, mn_dataset *val_set, const char *val_annotations,
                             const mn_calib_config *g, int batch_size, int max_val_images, uint64_t seed,
                             const mn_reporter *rep, FILE *report, mn_comm *comm)
{
    mn_slim_bn **bns;
    int nb = mn_det_bn_layers(m->net, &bns);
    det_calib dc = {m, val_set, val_annotations, max_val_images, comm};
    int rc = ev_calib_table(&det_calib_ops, &dc, &m->table, bns, nb, m->train_stats, train_set, g, batch_size,
                             m->cfg.data.workers, seed, rep, comm);
    if (!rc && report) mn_det_table_print(m, report);
    return rc;
}

/* ---- classification ---- */

typedef struct cls_calib {
    mn_cls_model *m;
    mn_dataset *val;
    int max_val_images;
    mn_comm *comm;
} cls_calib;

static int cls_open_loader(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld)
{
    mn_cls_aug aug = mn_config_cls_aug(&((cls_calib *)self)->m->cfg, true);
    return mn_loader_open_cls(ld, train_set, &aug, lo);
}

static int cls_point(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score)
{
    cls_calib *cc = self;
    mn_cls_scores s;
    int rc = mn_cls_calibrate_one_ranks(cc->m, ld, width, size[0], size[1], batches, cc->comm);
    if (!rc) rc = mn_comm_agree(cc->comm, mn_cls_model_flops(cc->m, width, size[0], size[1], macs));
    if (!rc) rc = mn_cls_evaluate_ranks(cc->m, cc->val, width, size[0], size[1], cc->max_val_images, NULL, cc->comm, &s);
    if (!rc) *score = s.top1;
    return rc;
}

static void cls_size_text(char *buf, size_t n, const int *size /* (2) */)
{
    snprintf(buf, n, "%dx%d", size[0], size[1]);
}

static const ev_calib_ops cls_calib_ops = {.metric = "top-1", .open = cls_open_loader, .point = cls_point, .size_text = cls_size_text};

int mn_cls_build_table(mn_cls_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                       int batch_size, int max_val_images, uint64_t seed,
                              const mn_reporter *rep, FILE *report)
{
    return mn_cls_build_table_ranks(m, train_set, val_set, g, batch_size, max_val_images, seed, rep, report, NULL);
}

int mn_cls_build_table_ranks(mn_cls_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                             int batch_size, int max_val_images, uint64_t seed, const mn_reporter *rep, FILE *report,
                             mn_comm *comm)
{
    mn_slim_bn **bns;
    int nb = mn_backbone_bn_layers(m->net, &bns);
    cls_calib cc = {m, val_set, max_val_images, comm};
    int rc = ev_calib_table(&cls_calib_ops, &cc, &m->table, bns, nb, m->train_stats, train_set, g, batch_size,
                             m->cfg.data.workers, seed, rep, comm);
    if (!rc && report) mn_query_print(&m->table, report);
    return rc;
}
