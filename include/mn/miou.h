/* Semantic segmentation scores from a confusion matrix: per-class IoU, mIoU, aAcc, mAcc.
 *
 * Conventions (mmsegmentation's): pixels whose ground truth equals the ignore value are skipped; a class's
 * IoU is TP / (gt pixels + predicted pixels - TP); mIoU is the mean over classes whose union is above zero,
 * so a class absent from both ground truth and prediction is left out (its IoU is NaN, printed as null);
 * aAcc = all TP / all counted pixels; mAcc is the mean of TP / gt pixels over classes with gt pixels.
 * A prediction outside [0, n) is always wrong: it counts against the pixel's true class but as no class's
 * prediction. A ground-truth value outside [0, n) other than the ignore value is an error (usually a wrong
 * class count). Counts are int64, so any number of images can be accumulated. */
#ifndef MN_MIOU_H
#define MN_MIOU_H

#include <stdint.h>

#include "error.h"

typedef struct mn_confusion {
    int n;              /* number of classes */
    int64_t *count;     /* (n, n + 1): row = true class, column = predicted class; column n = invalid prediction */
} mn_confusion;

MN_API int mn_confusion_init(mn_confusion *c, int n_classes);
MN_API void mn_confusion_reset(mn_confusion *c);
MN_API void mn_confusion_free(mn_confusion *c);
/* Adds n_px (pred, gt) pairs; ignore is the gt value to skip (-1: none). On a bad gt value nothing is
 * added and the error names the pixel index and value. */
MN_API int mn_confusion_add_u8(mn_confusion *c, const uint8_t *pred /* (n_px) */, const uint8_t *gt /* (n_px) */,
                               int64_t n_px, int ignore);
MN_API int mn_confusion_add_i32(mn_confusion *c, const int32_t *pred /* (n_px) */, const int32_t *gt /* (n_px) */,
                                int64_t n_px, int ignore);
/* dst += src (same class count), e.g. to combine per-thread matrices. */
MN_API int mn_confusion_merge(mn_confusion *dst, const mn_confusion *src);

typedef struct mn_miou_result {
    int n;
    double *iou;        /* (n) NaN where the union is 0 */
    double *acc;        /* (n) NaN where the class has no gt pixels */
    double miou;        /* NaN when no class has a union */
    double aacc;        /* NaN when no pixel was counted */
    double macc;        /* NaN when no class has gt pixels */
    int64_t pixels;     /* pixels counted (not ignored) */
} mn_miou_result;

/* Scores a confusion matrix; free the result with mn_miou_result_free. */
MN_API int mn_miou_compute(mn_miou_result *r, const mn_confusion *c);
MN_API void mn_miou_result_free(mn_miou_result *r);

/* Accumulates every *.png of gt_dir against the file of the same name in pred_dir (both 8-bit single-
 * channel index PNGs) into c. Refuses, naming the file: a missing prediction, a prediction without ground
 * truth, different sizes, unreadable images, an empty gt_dir. *n_files receives the number of pairs. */
MN_API int mn_miou_score_dirs(mn_confusion *c, const char *gt_dir, const char *pred_dir, int ignore, int *n_files);

#endif
