/* Running a classifier: class probabilities of an image, top-1 / top-5 accuracy of a data set,
 * and the query table built from a calibration grid (eval/cls_eval.c, eval/calibrate.c). */
#ifndef MN_CLS_EVAL_H
#define MN_CLS_EVAL_H

#include <stdio.h>

#include "cls_model.h"
#include "comm.h"

typedef struct mn_cls_scores {
    double top1, top5;            /* fractions in [0, 1] */
    int n;                        /* images scored */
} mn_cls_scores;

/* Class probabilities of an RGB image resized (bilinear) to h x w: probs (num_classes). The
 * caller selects BN statistics (mn_cls_model_select) and width. */
MN_API int mn_cls_predict(mn_cls_model *m, mn_tape *t, const mn_image *img, float width, int h, int w,
                          float *probs /* (num_classes) */);
/* The k most probable classes of probs, most probable first, ties to the lower index (predict's
 * order): idx (k), k <= n. */
MN_API void mn_cls_topk(const float *probs /* (n) */, int n, int k, int *idx /* (k) */);
/* Top-1 and top-5 accuracy (top-k with k = min(5, num_classes)) at (width, h x w) on a data set
 * of image-level labels; max_images > 0 limits the count. Progress to rep (NULL: none). */
/* mn_cls_evaluate over the ranks of comm (NULL: one process): each rank scores its slice of every
 * batch and the counts are summed: the one-process numbers on every rank. */
MN_API int mn_cls_evaluate_ranks(mn_cls_model *m, mn_dataset *d, float width, int h, int w, int max_images,
                                 const mn_reporter *rep, mn_comm *comm, mn_cls_scores *out);
MN_API int mn_cls_evaluate(mn_cls_model *m, mn_dataset *d, float width, int h, int w, int max_images,
                           const mn_reporter *rep, mn_cls_scores *out);

/* Calibrates (BN statistics over `batches` training batches per configuration), scores (top-1)
 * and costs every configuration of g into m->table; progress to rep; prints the table to report when non-NULL. */
MN_API int mn_cls_build_table(mn_cls_model *m, mn_dataset *train_set, mn_dataset *val_set, const mn_calib_config *g,
                              int batch_size, int max_val_images, uint64_t seed,
                              const mn_reporter *rep, FILE *report);
/* The same as one rank of a data-parallel job (comm NULL: one process), every rank calling it:
 * each takes its slice of every calibration batch (batch_size, the global batch, must split
 * evenly over the ranks) and BN statistics are reduced over all of them (mn_cls_calibrate_one_ranks),
 * each configuration is scored over the ranks (mn_cls_evaluate_ranks), and a failure on any rank
 * fails it on all. Every rank ends with the same table: one process's scores exactly, its BN
 * statistics up to float summation order. Pass rep and report on one rank only. */
MN_API int mn_cls_build_table_ranks(mn_cls_model *m, mn_dataset *train_set, mn_dataset *val_set,
                                    const mn_calib_config *g, int batch_size, int max_val_images, uint64_t seed,
                                    const mn_reporter *rep, FILE *report, mn_comm *comm);

#endif
