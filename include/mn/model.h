/* Any task model behind one handle: what the three have in common (task, configuration, class
 * names, parameters, query table, the BN statistics as trained) and the operations every one of
 * them has (open a checkpoint, select a configuration, count its cost, save, free). The per-task
 * parts stay in mn/seg_model.h, mn/det_model.h and mn/cls_model.h; m->seg, m->det or m->cls
 * reaches them. */
#ifndef MN_MODEL_H
#define MN_MODEL_H

#include <stdint.h>

#include "cls_model.h"
#include "config.h"
#include "det_model.h"
#include "optim.h"
#include "param.h"
#include "query.h"
#include "seg_model.h"

typedef struct mn_model {
    enum mn_task_kind task;
    union {
        mn_seg_model seg;
        mn_det_model det;
        mn_cls_model cls;
    };
} mn_model;

/* The task a checkpoint holds, from its header alone (the file is not read whole). */
MN_API int mn_model_task(const char *path, enum mn_task_kind *task);
/* Opens a checkpoint of any task. */
MN_API int mn_model_open(mn_model *m, const char *path);
/* Saves as the task's own save does (opt and iteration for resuming; NULL and 0 otherwise). */
MN_API int mn_model_save(const mn_model *m, const char *path, const mn_sgd *opt, int64_t iteration);
MN_API void mn_model_free(mn_model *m);

/* The common part. */
MN_API const mn_config *mn_model_config(const mn_model *m);
/* Classes the model predicts: segmentation and detection count the background (index 0). */
MN_API int mn_model_num_classes(const mn_model *m);
MN_API const char *mn_model_class_name(const mn_model *m, int k);
MN_API mn_param_set *mn_model_params(mn_model *m);
/* The query table (n == 0 until calibrated); its metric names the score ("mIoU", "AP", "top-1"). */
MN_API const mn_query_table *mn_model_table(const mn_model *m);
/* BN running statistics as trained, table->n_stats floats. */
MN_API const float *mn_model_train_stats(const mn_model *m);

/* A configuration: width and input size (h, w) for segmentation and classification; for
 * detection h is the short side and w is ignored (the model's det.max_side caps the long side).
 * select loads the calibrated BN statistics of that entry of the table when there is one, else
 * the statistics as trained; flops counts its multiply-accumulates per image. */
MN_API int mn_model_select(mn_model *m, float width, int h, int w);
MN_API int mn_model_flops(mn_model *m, float width, int h, int w, int64_t *macs);

/* A checkpoint of the configuration (width, h x w) alone, with the BN statistics select gives it:
 * an ordinary checkpoint of a one-width model ("independent" mode at that width, that evaluation
 * size or detection short side) holding of each parameter i only the leading block keep[i] that
 * the width reads (keep[i][0] == 0: all of it; mn/export.h traces a pass to find them), and a
 * one-entry query table. Opening it fills what was cut with zeros, which that width never reads:
 * eval, predict and calibrate run it as any checkpoint. source (may be NULL) is recorded. */
MN_API int mn_model_save_fixed(mn_model *m, const char *path, float width, int h, int w,
                               const int64_t (*keep)[MN_MAX_DIMS] /* (params->n) */, const char *source);

/* What a checkpoint says of itself when it holds one configuration (fixed false otherwise). */
typedef struct mn_fixed_info {
    bool fixed;
    float width;
    int h, w;                       /* as the query table keys it */
    bool calibrated;                /* its BN statistics came from calibration (else from training) */
    char source[256];               /* the checkpoint it was cut from */
    char source_mode[32];           /* how that one was trained, and its width range */
    float source_width_min, source_width_max;
} mn_fixed_info;
MN_API int mn_model_fixed(const char *path, mn_fixed_info *out);

#endif
