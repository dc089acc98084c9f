/* The grid of configurations a query table covers (every task); each task model re-estimates its
 * BN statistics for one configuration (mn_seg_calibrate_one, ...), and evaluation builds the
 * table (mn_seg_build_table, ...). */
#ifndef MN_CALIBRATE_H
#define MN_CALIBRATE_H

#include "config.h"

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

#endif
