/* Running a detection model: detections of an image, COCO evaluation of a data set, and the
 * query table built from a calibration grid (eval/det_eval.c, eval/calibrate.c). */
#ifndef MN_DET_EVAL_H
#define MN_DET_EVAL_H

#include <stdio.h>

#include "coco_eval.h"
#include "comm.h"
#include "det_model.h"

typedef struct mn_det_scores {
    double stats[MN_COCO_NSTATS]; /* AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl */
    int n_images;                 /* images evaluated */
    int64_t n_detections;
} mn_det_scores;

/* Detections of one decoded RGB image at (width, short side), boxes in the image's pixels, by
 * score descending; *out is malloc'd (NULL when none). The caller selects BN statistics. */
MN_API int mn_det_predict(mn_det_model *m, mn_tape *t, const mn_image *img, float width, int short_side,
                          mn_detection **out, int *n);

/* Runs the detector at (width, short side) over the first max_images (0: all) images of a coco
 * data set, one image per pass; writes the COCO results JSON ([{image_id, category_id,
 * bbox [x, y, w, h], score}], original pixels, category ids from the data set) to results_path
 * when non-NULL, and scores the detections in memory against annotations_path (restricted to the
 * images evaluated). BN statistics are whatever the model holds (see mn_det_model_select). */
MN_API int mn_det_evaluate(mn_det_model *m, mn_dataset *d, const char *annotations_path, float width,
                           int short_side, int max_images, const mn_reporter *rep, const char *results_path,
                           mn_det_scores *out);
/* The same over the ranks of comm (NULL: one process): rank r runs images r, r + R, ...; the
 * detections are gathered in one process's order and scored on every rank (the same numbers);
 * rank 0 writes results_path. */
MN_API int mn_det_evaluate_ranks(mn_det_model *m, mn_dataset *d, const char *annotations_path, float width,
                                 int short_side, int max_images, const mn_reporter *rep, const char *results_path,
                                 mn_comm *comm, mn_det_scores *out);

/* Calibrates, scores (AP on val_set, at most max_val_images when > 0) and costs every
 * configuration of g into m->table; progress to rep; prints the table to report when non-NULL. */
MN_API int mn_det_build_table(mn_det_model *m, mn_dataset *train_set, mn_dataset *val_set,
                              const char *val_annotations, const mn_calib_config *g, int batch_size,
                              int max_val_images, uint64_t seed,
                              const mn_reporter *rep, FILE *report);
/* The same over the ranks of comm (NULL: one process), as mn_seg_build_table_ranks. */
MN_API int mn_det_build_table_ranks(mn_det_model *m, mn_dataset *train_set, mn_dataset *val_set,
                                    const char *val_annotations, const mn_calib_config *g, int batch_size,
                                    int max_val_images, uint64_t seed, const mn_reporter *rep, FILE *report,
                                    mn_comm *comm);

#endif
