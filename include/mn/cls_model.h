/* An image classifier as a run knows it (spec §1, the paper's ImageNet setting): the backbone
 * with its global-pool + linear head, the class names, and (after calibration) the query table
 * with per-configuration BN statistics. The checkpoint carries all of it. */
#ifndef MN_CLS_MODEL_H
#define MN_CLS_MODEL_H

#include <stdbool.h>

#include "backbone.h"
#include "calibrate.h"
#include "checkpoint.h"
#include "classes.h"
#include "comm.h"
#include "config.h"
#include "dataset.h"
#include "optim.h"
#include "query.h"

#define MN_CLS_MAX_CLASSES 100000

typedef struct mn_cls_model {
    mn_config cfg;
    mn_init_report init;          /* what cfg.model.init gave when created (all zero without one) */
    int num_classes;
    mn_class_name *class_names;   /* (num_classes) */
    mn_param_set ps;
    mn_backbone *net;             /* output stride 32, classifier of num_classes outputs */
    mn_query_table table;         /* metric "top-1"; n == 0 until calibrated */
    float *train_stats;           /* BN running statistics as trained (table.n_stats floats) */
} mn_cls_model;

/* Builds the classifier of cfg for num_classes classes, initialised from seed, then from
 * cfg->model.init when set: torchvision-named weights (an ImageNet file, or a mutualnet
 * checkpoint) wherever name and shape match, as mn_seg_model_create; a classifier of another
 * class count is left at its initialisation and listed in m->init.mismatched. Then the
 * fine-tuning controls (the classifier is never frozen nor given the backbone's lr_mult). */
MN_API int mn_cls_model_create(mn_cls_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                               uint64_t seed);
/* Rebuilds the model stored in a checkpoint (configuration, classes, weights, query table). */
MN_API int mn_cls_model_open(mn_cls_model *m, const char *path);
/* Writes the model (and, with opt, the optimiser state and iteration) to path atomically. */
MN_API int mn_cls_model_save(const mn_cls_model *m, const char *path, const mn_sgd *opt, int64_t iteration);
/* Restores optimiser buffers and returns the iteration stored by mn_cls_model_save. */
MN_API int mn_cls_model_resume(mn_cls_model *m, const char *path, mn_sgd *opt, int64_t *iteration);
MN_API void mn_cls_model_free(mn_cls_model *m);
/* Loads the BN statistics for (width, h x w): the calibrated ones when the table has the
 * configuration, else those the model was trained with. */
MN_API int mn_cls_model_select(mn_cls_model *m, float width, int h, int w);
/* Multiply-accumulates per image at (width, h x w), classifier included. */
MN_API int mn_cls_model_flops(mn_cls_model *m, float width, int h, int w, int64_t *macs);

/* Resets every BN layer and averages the statistics of `batches` training batches seen at
 * (width, h x w) without gradients. */
MN_API int mn_cls_calibrate_one(mn_cls_model *m, mn_loader *train, float width, int h, int w, int batches);
/* The same as one rank of a data-parallel job (comm NULL: one process): train gives this rank's
 * slice of every batch (mn_loader_options.rank, ranks) and each batch's statistics are those of
 * all the slices together (SyncBN), so that every rank ends with one process's statistics (up to
 * float summation order). Every rank must call it; a failure on any rank fails it on all. */
MN_API int mn_cls_calibrate_one_ranks(mn_cls_model *m, mn_loader *train, float width, int h, int w, int batches,
                                      mn_comm *comm);

#endif
