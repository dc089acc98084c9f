/* BN calibration per configuration and the query table of a segmentation model. */
#ifndef MN_CALIBRATE_H
#define MN_CALIBRATE_H

#include <stdio.h>

#include "dataset.h"
#include "seg_eval.h"
#include "seg_model.h"

#define MN_CALIB_MAX 64

typedef struct mn_calib_config {
    float widths[MN_CALIB_MAX];
    int n_widths;
    int sizes[MN_MAX_SCALES][2];   /* (h, w) */
    int n_sizes;
    int batches;                   /* calibration batches per configuration */
} mn_calib_config;

/* The grid of a run: widths from width_max down to width_min by calibrate.width_step (both
 * ends included) x input scales applied to data.eval_size (data.eval_size itself at scale 1,
 * multiples of 32 otherwise). The scales are scales[n_scales], or when scales is NULL the
 * run's training scales (a MutualNet's list, 1 for the other modes). */
MN_API int mn_calib_grid(const mn_config *c, const float *scales, int n_scales, mn_calib_config *g);
/* Resets every BN layer and averages the statistics of `batches` training batches seen at
 * (width, h x w) without gradients. */
MN_API int mn_seg_calibrate_one(mn_seg_model *m, mn_loader *train, float width, int h, int w, int batches);
/* Calibrates, scores (mIoU on val_set, at most max_val_images when > 0) and costs every
 * configuration of g into m->table; prints the table to report when non-NULL. */
MN_API int mn_seg_build_table(mn_seg_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                              int batch_size, int max_val_images, uint64_t seed, FILE *report);

#endif
