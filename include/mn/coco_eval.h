/* COCO bounding-box evaluation that gives the numbers of pycocotools' COCOeval (iouType "bbox").
 *
 * The stages follow COCOeval and are separate functions so each can be tested on its own:
 *   mn_coco_bbox_iou      IoU of detections against ground truth (crowd: intersection / detection area)
 *   mn_coco_evaluate_img  greedy matching for one image, one category and one area range (evaluateImg)
 *   mn_coco_accumulate    concatenation across images, stable sort by score, cumulative TP/FP (accumulate)
 *   mn_coco_interp        precision envelope sampled at the recall thresholds
 *   mn_coco_summarize     the 12 summary numbers (summarize), means summed as numpy sums them
 * and mn_coco_evaluate runs them all over a data set.
 *
 * Semantics kept from pycocotools (every figure is a double, as numpy computes it):
 * - IoU thresholds are np.linspace(.5, .95, 10) and recall thresholds np.linspace(0, 1, 101), bit for bit.
 * - Area ranges all [0, 1e10], small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10], both ends included,
 *   tested on the ground truth's `area` field and on the detection's w * h.
 * - maxDets 1, 10, 100: detections are sorted by score with a stable sort (ties keep file order) and cut to
 *   100 per image and category before matching.
 * - A ground truth is ignored when it is a crowd (`iscrowd` != 0) or outside the area range. An `ignore` key
 *   in the file has no effect (COCOeval overwrites it with iscrowd).
 * - Categories are evaluated in ascending id order and images in ascending id order (ties across images keep
 *   that order); -1 marks a figure with no ground truth, and such entries are left out of every mean.
 * - A matched detection records the ground truth's annotation id, and 0 means "unmatched", exactly as
 *   COCOeval does: so, as there, a ground truth whose id is 0 never counts as a true positive. Use ids > 0.
 * Where pycocotools would crash or silently drop data this code refuses with an error instead: results on
 * images that are not in the ground truth, duplicate ids, malformed fields. Results in categories that are
 * not in the ground truth are left out, as COCOeval leaves them out, and counted for the caller to report. */
#ifndef MN_COCO_EVAL_H
#define MN_COCO_EVAL_H

#include <stdint.h>

#include "error.h"

enum { MN_COCO_T = 10, MN_COCO_R = 101, MN_COCO_A = 4, MN_COCO_M = 3 };
enum { MN_COCO_AREA_ALL = 0, MN_COCO_AREA_SMALL = 1, MN_COCO_AREA_MEDIUM = 2, MN_COCO_AREA_LARGE = 3 };
/* Indices of mn_coco_summarize's output. */
enum {
    MN_COCO_AP, MN_COCO_AP50, MN_COCO_AP75, MN_COCO_APS, MN_COCO_APM, MN_COCO_APL,
    MN_COCO_AR1, MN_COCO_AR10, MN_COCO_AR100, MN_COCO_ARS, MN_COCO_ARM, MN_COCO_ARL, MN_COCO_NSTATS
};
/* Their names, as the command prints them ("AP", "AP50", ...). */
MN_API const char *mn_coco_stat_name(int i);

typedef struct mn_coco_params {
    double iou_thrs[MN_COCO_T];     /* np.linspace(.5, .95, 10) */
    double rec_thrs[MN_COCO_R];     /* np.linspace(0, 1, 101) */
    double area_rng[MN_COCO_A][2];  /* [lo, hi], both included: all, small, medium, large */
    int max_dets[MN_COCO_M];        /* ascending: 1, 10, 100 */
} mn_coco_params;

/* COCOeval's default bbox parameters. */
MN_API void mn_coco_params_default(mn_coco_params *p);

/* One box: a ground-truth annotation or a detection. */
typedef struct mn_coco_ann {
    int64_t id;           /* gt: annotation id; detection: its position in the results + 1 (as loadRes) */
    int64_t image_id;
    int64_t category_id;
    double bbox[4];       /* x, y, w, h in pixels */
    double area;          /* gt: the `area` field; detection: w * h */
    double score;         /* detection confidence; 0 for ground truth */
    int iscrowd;          /* gt only: a crowd region, ignored and matched by intersection / detection area */
} mn_coco_ann;

typedef struct mn_coco_category {
    int64_t id;
    char *name;           /* "" when the file has none */
} mn_coco_category;

typedef struct mn_coco_gt {
    int64_t *img_ids;         /* (n_imgs) ascending */
    int n_imgs;
    mn_coco_category *cats;   /* (n_cats) ascending by id: pycocotools' category order */
    int n_cats;
    mn_coco_ann *anns;        /* (n_anns) in file order */
    int n_anns;
} mn_coco_gt;

typedef struct mn_coco_dets {
    mn_coco_ann *dets;        /* (n) in file / insertion order */
    int n, cap;
    /* Results mn_coco_dets_parse left out because their category_id is not a category of the ground truth
     * (COCOeval evaluates only the ground truth's categories, so pycocotools leaves them out too): how many,
     * the results-array index of the first, and their distinct category ids, ascending. */
    int n_skipped;
    int first_skipped;
    int64_t *skipped_cat_ids; /* (n_skipped_cat_ids) */
    int n_skipped_cat_ids;
} mn_coco_dets;

/* Ground truth from a COCO instances JSON: `images` (id), `categories` (id, optional name) and
 * `annotations` (id, image_id, category_id, bbox [x,y,w,h] with w,h >= 0, area, optional iscrowd).
 * Errors name the file (`name` for the text variant) and the offending array index and key; annotations
 * that point at unknown images or categories and duplicate ids are refused. */
MN_API int mn_coco_gt_load(mn_coco_gt *gt, const char *path);
MN_API int mn_coco_gt_parse(mn_coco_gt *gt, const char *text, const char *name);
MN_API void mn_coco_gt_free(mn_coco_gt *gt);
/* Index of a category id in gt->cats, or -1. */
MN_API int mn_coco_gt_cat_index(const mn_coco_gt *gt, int64_t category_id);
/* Index of an image id in gt->img_ids, or -1. */
MN_API int mn_coco_gt_img_index(const mn_coco_gt *gt, int64_t image_id);

/* Detections from a COCO results JSON: an array of {image_id, category_id, bbox, score}; other keys
 * (segmentation, area, id) are ignored. As pycocotools' loadRes: ids count from 1 over the whole array in
 * file order, area = w * h. Every image_id must be an image of gt (loadRes asserts the same): the error
 * names the result's index and the unknown id. A category_id that is not one of gt's categories is not
 * an error: the result is left out and counted in d->n_skipped / skipped_cat_ids (COCOeval ignores it;
 * the usual cause is a 0..K-1 numbering instead of the file's ids, so callers should say so). An empty
 * array is allowed. */
MN_API int mn_coco_dets_load(mn_coco_dets *d, const char *path, const mn_coco_gt *gt);
MN_API int mn_coco_dets_parse(mn_coco_dets *d, const char *text, const char *name, const mn_coco_gt *gt);
/* Appends one detection in memory (for the detector's evaluator): sets id = position + 1 and area = w * h.
 * bbox is (4) x, y, w, h. Ids are checked against the ground truth by mn_coco_evaluate. */
MN_API int mn_coco_dets_add(mn_coco_dets *d, int64_t image_id, int64_t category_id, const double *bbox,
                            double score);
MN_API void mn_coco_dets_free(mn_coco_dets *d);

/* IoU of every detection against every ground truth, as pycocotools' maskApi bbIou: for a crowd gt the
 * union is the detection's own area. Boxes that do not overlap with positive width and height give 0. */
MN_API void mn_coco_bbox_iou(double *iou /* (n_dt, n_gt) */, const double *dt /* (n_dt, 4) xywh */,
                             const double *gt /* (n_gt, 4) xywh */, const uint8_t *iscrowd /* (n_gt) or NULL */,
                             int n_dt, int n_gt);

/* The result of matching one image and category in one area range (COCOeval.evaluateImg). Ground truths
 * appear regular first, then ignored (stable); detections by descending score (stable), cut to max_det. */
typedef struct mn_coco_img_eval {
    int n_gt, n_dt, n_thr;
    double *dt_score;     /* (n_dt) */
    int64_t *dt_match;    /* (n_thr, n_dt) id of the matched gt, 0 when unmatched */
    uint8_t *dt_ignore;   /* (n_thr, n_dt) matched to an ignored gt, or unmatched and outside the area range */
    int64_t *gt_match;    /* (n_thr, n_gt) id of the matching detection, 0 when unmatched */
    uint8_t *gt_ignore;   /* (n_gt) crowd or outside the area range */
    int *gt_order;        /* (n_gt) position of each gt in the input array */
    int *dt_order;        /* (n_dt) position of each detection in the input array */
    void *mem_;           /* one block behind all the arrays */
} mn_coco_img_eval;

/* Matches the detections of one image and category against its ground truth at each IoU threshold: each
 * detection, best score first, takes the unmatched gt (crowds may be taken again) of highest IoU >= the
 * threshold, preferring regular to ignored gts. gt and dt hold pointers to boxes in file order. */
MN_API int mn_coco_evaluate_img(mn_coco_img_eval *out, const mn_coco_ann *const *gt /* (n_gt) */, int n_gt,
                                const mn_coco_ann *const *dt /* (n_dt) */, int n_dt, const double *area_rng /* (2) */,
                                int max_det, const double *iou_thrs /* (n_thr) */, int n_thr);
MN_API void mn_coco_img_eval_free(mn_coco_img_eval *e);

/* Samples the interpolated precision of one ranked list: pr = tp / (tp + fp + eps) made non-increasing from
 * the right, then q[r] = pr at the first rank whose recall tp / npig reaches rec_thrs[r] (0 past the last).
 * work holds nd doubles. Returns the final recall (0 when nd is 0). */
MN_API double mn_coco_interp(double *q /* (n_rec) */, double *work /* (nd) */, const double *tp_cum /* (nd) */,
                             const double *fp_cum /* (nd) */, int nd, int64_t npig,
                             const double *rec_thrs /* (n_rec) */, int n_rec);

/* Accumulates the per-image results of one category and area range at one maxDet (COCOeval.accumulate):
 * the first max_det detections of each image are concatenated in the given order, stably sorted by
 * descending score, and turned into cumulative TP/FP counts at each threshold. Returns 1 when the set has
 * a non-ignored gt, else 0 with precision and recall set to -1; a negative code on error. */
MN_API int mn_coco_accumulate(double *precision /* (n_thr, n_rec) */, double *recall /* (n_thr) */,
                              const mn_coco_img_eval *evals /* (n_evals) */, int n_evals, int max_det,
                              const double *rec_thrs /* (n_rec) */, int n_rec, int n_thr);

/* The sum numpy gives for a contiguous float64 array (np.add.reduce, hence np.mean): pairwise sums of
 * blocks of 8192 values (numpy's buffer size), added in order. Means computed with it match np.mean. */
MN_API double mn_coco_np_sum(const double *v /* (n) */, int64_t n);

typedef struct mn_coco_eval {
    mn_coco_params p;
    int n_cats;               /* K */
    int64_t *cat_ids;         /* (K) ascending */
    double *precision;        /* (T, R, K, A, M) as COCOeval.eval['precision'] */
    double *recall;           /* (T, K, A, M) as COCOeval.eval['recall'] */
} mn_coco_eval;

/* Evaluates all images and categories of gt (params NULL: the defaults). */
MN_API int mn_coco_evaluate(mn_coco_eval *ev, const mn_coco_gt *gt, const mn_coco_dets *dets,
                            const mn_coco_params *params);
MN_API void mn_coco_eval_free(mn_coco_eval *ev);
/* One summary figure: the mean over the entries > -1 of precision (ap != 0) or recall at IoU threshold
 * iou_thr (a value compared for equality, as COCOeval does; a negative value: all thresholds), area range
 * index `area` and maxDets value `max_det`; -1 when there is no such entry. */
MN_API double mn_coco_summary_stat(const mn_coco_eval *ev, int ap, double iou_thr, int area, int max_det);
/* The 12 numbers of COCOeval.summarize: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl. */
MN_API void mn_coco_summarize(double *stats /* (12) */, const mn_coco_eval *ev);
/* AP of category index k (IoU .50:.95, all areas, the largest maxDets); -1 when it has no ground truth. */
MN_API double mn_coco_category_ap(const mn_coco_eval *ev, int k);

#endif
