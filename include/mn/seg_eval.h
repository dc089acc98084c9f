/* Evaluating and running a segmentation model on images. */
#ifndef MN_SEG_EVAL_H
#define MN_SEG_EVAL_H

#include <stdio.h>

#include "calibrate.h"
#include "dataset.h"
#include "comm.h"
#include "seg_model.h"

typedef struct mn_seg_scores {
    double miou, aacc, macc;      /* fractions in [0, 1] */
    double iou[256];              /* per class; NaN where the class never occurs */
    int num_classes;
} mn_seg_scores;

/* Predicted class index per pixel of an RGB image: the image is resized (bilinear) to the
 * model input h x w, the logits back to the image's own size. labels (img->h, img->w).
 * The caller selects BN statistics (mn_seg_model_select) and width. */
MN_API int mn_seg_predict(mn_seg_model *m, mn_tape *t, const mn_image *img, float width, int h, int w,
                          uint8_t *labels);

/* Scores the model at (width, h x w) on every sample of a data set, at each label's original
 * resolution; max_images > 0 limits the count. Progress to rep (NULL: none). */
MN_API int mn_seg_evaluate(mn_seg_model *m, mn_dataset *d, float width, int h, int w, int max_images,
                           const mn_reporter *rep, mn_seg_scores *out);
/* The same over the ranks of comm (NULL: one process): rank r scores images r, r + R, ... and the
 * confusion matrices are summed, so every rank gets exactly the one-process numbers. */
MN_API int mn_seg_evaluate_ranks(mn_seg_model *m, mn_dataset *d, float width, int h, int w, int max_images,
                                 const mn_reporter *rep, mn_comm *comm, mn_seg_scores *out);

/* Calibrates, scores (mIoU on val_set, at most max_val_images when > 0) and costs every
 * configuration of g into m->table; progress to rep; prints the table to report when non-NULL. */
MN_API int mn_seg_build_table(mn_seg_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                              int batch_size, int max_val_images, uint64_t seed,
                              const mn_reporter *rep, FILE *report);
/* The same as one rank of a data-parallel job (comm NULL: one process), every rank calling it:
 * each takes its slice of every calibration batch (batch_size, the global batch, must split
 * evenly over the ranks) and BN statistics are reduced over all of them (mn_seg_calibrate_one_ranks),
 * each configuration is scored over the ranks (mn_seg_evaluate_ranks), and a failure on any rank
 * fails it on all. Every rank ends with the same table: one process's scores exactly, its BN
 * statistics up to float summation order. Pass rep and report on one rank only. */
MN_API int mn_seg_build_table_ranks(mn_seg_model *m, mn_dataset *train_set, mn_dataset *val_set,
                                    const mn_calib_config *g, int batch_size, int max_val_images, uint64_t seed,
                                    const mn_reporter *rep, FILE *report, mn_comm *comm);

#endif
