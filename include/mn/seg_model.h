/* A segmentation model as a run knows it: configuration, class names, parameters, network,
 * and (after calibration) the query table with its per-configuration BN statistics. The
 * checkpoint carries all of it, so eval / predict / calibrate need nothing but the file. */
#ifndef MN_SEG_MODEL_H
#define MN_SEG_MODEL_H

#include "calibrate.h"
#include "checkpoint.h"
#include "classes.h"
#include "comm.h"
#include "config.h"
#include "dataset.h"
#include "optim.h"
#include "query.h"
#include "seg.h"

typedef struct mn_seg_model {
    mn_config cfg;
    mn_init_report init;          /* what cfg.model.init gave when created (all zero without one) */
    int num_classes;
    mn_class_name *class_names;   /* (num_classes) */
    mn_param_set ps;
    mn_segmenter *net;
    mn_query_table table;         /* n == 0 until calibrated */
    float *train_stats;           /* BN running statistics as trained (table.n_stats floats) */
} mn_seg_model;

/* Builds the network of cfg for num_classes classes, initialised from seed, then from
 * cfg->model.init when set: every tensor whose name (or "backbone." + name: backbone weights
 * under torchvision's names) and shape match, the rest left as initialised, all of it told in
 * m->init; a file that fills under 10% of the backbone is refused with its likely cause. Then
 * the fine-tuning controls (model.frozen_stages, model.norm_eval, optim.backbone_lr_mult). */
MN_API int mn_seg_model_create(mn_seg_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                               uint64_t seed);
/* Rebuilds the model stored in a checkpoint (configuration, classes, weights, query table). */
MN_API int mn_seg_model_open(mn_seg_model *m, const char *path);
/* Writes weights, BN statistics, configuration, classes and query table to path atomically;
 * with opt, also its momentum buffers ("optim.<name>") and the iteration, for resuming. */
MN_API int mn_seg_model_save(const mn_seg_model *m, const char *path, const mn_sgd *opt, int64_t iteration);
/* Restores optimiser buffers and returns the iteration stored by mn_seg_model_save. */
MN_API int mn_seg_model_resume(mn_seg_model *m, const char *path, mn_sgd *opt, int64_t *iteration);
MN_API void mn_seg_model_free(mn_seg_model *m);

/* Loads the BN statistics for (width, h x w): the query table entry's calibrated ones when
 * there is one, else the running statistics the model was trained with. */
MN_API int mn_seg_model_select(mn_seg_model *m, float width, int h, int w);

/* Resets every BN layer and averages the statistics of `batches` training batches seen at
 * (width, h x w) without gradients. */
MN_API int mn_seg_calibrate_one(mn_seg_model *m, mn_loader *train, float width, int h, int w, int batches);
/* The same as one rank of a data-parallel job (comm NULL: one process): train gives this rank's
 * slice of every batch (mn_loader_options.rank, ranks) and each batch's statistics are those of
 * all the slices together (SyncBN), so that every rank ends with one process's statistics (up to
 * float summation order). Every rank must call it; a failure on any rank fails it on all. */
MN_API int mn_seg_calibrate_one_ranks(mn_seg_model *m, mn_loader *train, float width, int h, int w, int batches,
                                      mn_comm *comm);

#endif
