/* A detection model as a run knows it (configuration, class names and their COCO category ids,
 * parameters, detector, query table with per-configuration BN statistics) and its BN
 * calibration; include/mn/det_eval.h runs it (predictions, COCO evaluation, the query table). The checkpoint carries all of it, so
 * eval / predict / calibrate need nothing but the file (and the data set for scoring).
 *
 * Input sizes. A detector's input is set by a short side S and a long-side cap M (torchvision's
 * rule: scale = min(S / short, M / long), padded to a multiple of 32), so the size differs per
 * image. The query table therefore keys each entry by (width, S, M): entry.h = S, entry.w = M.
 * Its cost is mn_det_flops at one typical padded input: the median original height and the
 * median original width over the validation split's images (from the annotations file), resized
 * by the rule at S and padded. Mixed aspect ratios make a real image cost more or less than
 * that; the ordering of configurations, which is what a budget needs, is the same. */
#ifndef MN_DET_MODEL_H
#define MN_DET_MODEL_H

#include <stdio.h>

#include "calibrate.h"
#include "comm.h"
#include "checkpoint.h"
#include "classes.h"
#include "config.h"
#include "det.h"
#include "optim.h"
#include "query.h"

typedef struct mn_det_model {
    mn_config cfg;
    mn_init_report init;          /* what cfg.model.init gave when created (all zero without one) */
    int num_classes;              /* including background (label 0) */
    mn_class_name *class_names;   /* (num_classes); [0] = "background" */
    int category_ids[256];        /* the data set's category id of label k (k >= 1) for results files */
    int typical_h, typical_w;     /* median original image size of the validation split (for MACs) */
    mn_param_set ps;
    mn_detector *net;
    mn_query_table table;         /* metric "AP"; n == 0 until calibrated; e[i].h / .w = short / max side */
    float *train_stats;           /* BN running statistics as trained (table.n_stats floats) */
} mn_det_model;

/* The detector configuration a run's configuration describes (backbone, slim head, det.*). */
MN_API int mn_det_config_from(const mn_config *c, int num_classes, mn_det_config *out);

/* Builds the detector of cfg for num_classes labels (background included), initialised from seed
 * (then from cfg->model.init and with the fine-tuning controls, as mn_seg_model_create). category_ids and
 * class_names have num_classes entries (entry 0 unused / "background"); typical size as above. */
MN_API int mn_det_model_create(mn_det_model *m, const mn_config *cfg, int num_classes,
                               const char *const *class_names, const int *category_ids, int typical_h,
                               int typical_w, uint64_t seed);
/* Rebuilds the model stored in a detection checkpoint; refuses other tasks' checkpoints. */
MN_API int mn_det_model_open(mn_det_model *m, const char *path);
/* Writes weights, BN statistics, configuration, classes, category ids, typical size and query
 * table atomically (metadata task "detection"); with opt, also the momentum buffers and the
 * iteration, for resuming. */
MN_API int mn_det_model_save(const mn_det_model *m, const char *path, const mn_sgd *opt, int64_t iteration);
/* Restores weights, optimiser buffers and the iteration stored by mn_det_model_save. */
MN_API int mn_det_model_resume(mn_det_model *m, const char *path, mn_sgd *opt, int64_t *iteration);
MN_API void mn_det_model_free(mn_det_model *m);

/* Loads the BN statistics for (width, short side): the query table's calibrated ones when the
 * table has the configuration, else the running statistics the model was trained with. */
MN_API int mn_det_model_select(mn_det_model *m, float width, int short_side);
/* The padded input size of the typical image at this short side (see above). */
MN_API int mn_det_model_input_size(const mn_det_model *m, int short_side, int *h, int *w);
/* Whole-detector MACs per image at (width, short side) for the typical image. */
MN_API int mn_det_model_flops(mn_det_model *m, float width, int short_side, int64_t *macs);


/* The median image height and width (each on its own) of the "images" of a COCO instances file. */
MN_API int mn_coco_median_size(const char *annotations_path, int *h, int *w);
/* root/annotations with "{split}" replaced (the coco kind's rule). */
MN_API void mn_det_annotations_path(char *out, size_t size, const mn_config *c, const char *split);

/* ---- BN calibration (model/calibrate.c) ---- */

/* The grid of a detection run: widths as mn_calib_grid, sizes (det.short_side x each scale,
 * rounded; det.max_side) as (short, max) pairs; scales NULL means the run's training scales. */
MN_API int mn_det_calib_grid(const mn_config *c, const float *scales, int n_scales, mn_calib_config *g);
/* Resets every BN layer and averages the statistics of `batches` training batches resized to the
 * short side, seen at width without gradients (backbone and neck only: the heads have no BN). */
MN_API int mn_det_calibrate_one(mn_det_model *m, mn_loader *train, float width, int short_side, int batches);
/* The same over the ranks of comm (NULL: one process): the loader gives each rank its slice of every
 * batch, each resized batch is padded as the whole batch is, and the BN statistics are reduced over the
 * ranks (mn_bn_params.sync): one process's statistics. */
MN_API int mn_det_calibrate_one_ranks(mn_det_model *m, mn_loader *train, float width, int short_side, int batches,
                                      mn_comm *comm);
/* Prints the table cheapest first with short side, typical input, GMACs and AP. */
MN_API void mn_det_table_print(const mn_det_model *m, FILE *f);

#endif
