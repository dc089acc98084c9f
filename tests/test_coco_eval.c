/* COCO bbox evaluator: every stage on hand-worked cases whose numbers are derived in the comments from
 * pycocotools' rules, JSON loading errors, the coco-eval command, and a sanity run on COCO128.
 *
 * A note used throughout: pycocotools' precision is tp / (fp + tp + eps) with eps = 2^-52, so a single true
 * positive has precision 1 / (1 + 2^-52) = 1 - 2^-52 (ONE_TP below), not 1; from 2 on, tp + eps rounds to
 * tp and the precision of a perfect ranking is exactly 1. Hence "AP = 1" cases are checked to 1e-12. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "mn/coco_eval.h"
/* the command is compiled into this test so it can be run in-process */
#include "tools/cmd_coco_eval.c"

#define ONE_TP (1.0 / (1.0 + DBL_EPSILON))

static mn_coco_params P;

static void setup(void) { mn_coco_params_default(&P); }

/* ---- helpers ---------------------------------------------------------------------------------------- */

static mn_coco_ann box(int64_t id, double x, double y, double w, double h, double area, int crowd, double score)
{
    mn_coco_ann a = {.id = id, .image_id = 1, .category_id = 1, .bbox = {x, y, w, h}, .area = area,
                     .score = score, .iscrowd = crowd};
    return a;
}

/* A detection as loadRes makes it: area = w * h. */
static mn_coco_ann det(int64_t id, double x, double y, double w, double h, double score)
{
    return box(id, x, y, w, h, w * h, 0, score);
}

static void eval_img(mn_coco_img_eval *e, const mn_coco_ann *gt, int ng, const mn_coco_ann *dt, int nd, int area,
                     int max_det)
{
    const mn_coco_ann *gp[64], *dp[256];
    cr_assert(ng <= 64 && nd <= 256);
    for (int i = 0; i < ng; i++) gp[i] = &gt[i];
    for (int i = 0; i < nd; i++) dp[i] = &dt[i];
    int rc = mn_coco_evaluate_img(e, gp, ng, dp, nd, P.area_rng[area], max_det, P.iou_thrs, MN_COCO_T);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
}

static void load_gt(mn_coco_gt *gt, const char *json)
{
    int rc = mn_coco_gt_parse(gt, json, "test-gt");
    cr_assert_eq(rc, 0, "%s", mn_last_error());
}

/* Evaluates dets against gt and returns the 12 summary numbers in stats. */
static void run_eval(mn_coco_eval *ev, double *stats, const mn_coco_gt *gt, const mn_coco_dets *d)
{
    int rc = mn_coco_evaluate(ev, gt, d, NULL);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    mn_coco_summarize(stats, ev);
}

static void add(mn_coco_dets *d, int64_t img, int64_t cat, double x, double y, double w, double h, double s)
{
    double bb[4] = {x, y, w, h};
    cr_assert_eq(mn_coco_dets_add(d, img, cat, bb, s), 0, "%s", mn_last_error());
}

static void expect_stat(const double *stats, int i, double want, double tol)
{
    cr_expect(fabs(stats[i] - want) <= tol, "%s = %.17g, expected %.17g", mn_coco_stat_name(i), stats[i], want);
}

/* One image (id 1), one category (id 1, "a"), and the given annotations. */
#define GT1(anns) \
    "{\"images\": [{\"id\": 1}], \"categories\": [{\"id\": 1, \"name\": \"a\"}], \"annotations\": [" anns "]}"

/* ---- parameters ------------------------------------------------------------------------------------- */

Test(coco_params, thresholds_are_numpy_linspace, .init = setup)
{
    /* np.linspace(.5, .95, 10) and np.linspace(0, 1, 101) as numpy 1.24 prints them with float.hex() */
    static const double iou[10] = {0x1.0000000000000p-1, 0x1.199999999999ap-1, 0x1.3333333333333p-1,
                                   0x1.4cccccccccccdp-1, 0x1.6666666666666p-1, 0x1.8000000000000p-1,
                                   0x1.999999999999ap-1, 0x1.b333333333333p-1, 0x1.cccccccccccccp-1,
                                   0x1.e666666666666p-1};
    for (int t = 0; t < 10; t++) cr_expect_eq(P.iou_thrs[t], iou[t], "iou_thrs[%d] = %a", t, P.iou_thrs[t]);
    /* summarize looks AP50 and AP75 up by equality: they must be exactly .5 and .75 */
    cr_expect_eq(P.iou_thrs[0], 0.5);
    cr_expect_eq(P.iou_thrs[5], 0.75);
    cr_expect_eq(P.iou_thrs[9], 0.95);
    /* recall thresholds: i * 0.01, the last exactly 1; 0.57 is one of those slightly above i / 100 */
    for (int r = 0; r < 100; r++) cr_expect_eq(P.rec_thrs[r], r * 0.01, "rec_thrs[%d]", r);
    cr_expect_eq(P.rec_thrs[100], 1.0);
    cr_expect_eq(P.rec_thrs[57], 0x1.23d70a3d70a3ep-1);
    cr_expect_gt(P.rec_thrs[57], 57.0 / 100.0);
    cr_expect_eq(P.area_rng[MN_COCO_AREA_SMALL][1], 1024.0);
    cr_expect_eq(P.area_rng[MN_COCO_AREA_MEDIUM][0], 1024.0);
    cr_expect_eq(P.area_rng[MN_COCO_AREA_MEDIUM][1], 9216.0);
    cr_expect_eq(P.area_rng[MN_COCO_AREA_LARGE][0], 9216.0);
    cr_expect_eq(P.area_rng[MN_COCO_AREA_ALL][1], 1e10);
    cr_expect(P.max_dets[0] == 1 && P.max_dets[1] == 10 && P.max_dets[2] == 100);
}

/* ---- IoU ---------------------------------------------------------------------------------------------- */

Test(coco_iou, regular_crowd_and_disjoint)
{
    /* gts: A [0,0,10,10] regular, B the same box as a crowd, C [10,0,5,5] touching A's right edge */
    const double gt[3][4] = {{0, 0, 10, 10}, {0, 0, 10, 10}, {10, 0, 5, 5}};
    const uint8_t crowd[3] = {0, 1, 0};
    /* dets: D [5,0,10,10] half over A; E [2,2,4,4] inside A; F [0,0,0,10] zero width */
    const double dt[3][4] = {{5, 0, 10, 10}, {2, 2, 4, 4}, {0, 0, 0, 10}};
    double o[3][3];
    mn_coco_bbox_iou(&o[0][0], &dt[0][0], &gt[0][0], crowd, 3, 3);
    /* D-A: 5x10 = 50 over 100 + 100 - 50 = 150; D-B (crowd): 50 over D's own 100 */
    cr_expect_eq(o[0][0], 50.0 / 150.0);
    cr_expect_eq(o[0][1], 0.5);
    /* D-C: x overlap [10,15) w = 5, y [0,5) h = 5: 25 / (100 + 25 - 25) */
    cr_expect_eq(o[0][2], 0.25);
    /* E inside A: 16 / 100; inside the crowd: 16 / 16 */
    cr_expect_eq(o[1][0], 0.16);
    cr_expect_eq(o[1][1], 1.0);
    /* E and C do not overlap; A and C only touch (w = 0), which counts as no overlap */
    cr_expect_eq(o[1][2], 0.0);
    /* zero-width detection: no overlap anywhere, even with the crowd (no 0 / 0) */
    for (int g = 0; g < 3; g++) cr_expect_eq(o[2][g], 0.0);
    /* NULL iscrowd: all regular */
    mn_coco_bbox_iou(&o[0][0], &dt[0][0], &gt[0][0], NULL, 3, 3);
    cr_expect_eq(o[1][1], 0.16);
}

/* ---- matching one image ------------------------------------------------------------------------------ */

Test(coco_match, perfect_detection, .init = setup)
{
    mn_coco_ann gt = box(7, 10, 10, 20, 20, 400, 0, 0);
    mn_coco_ann dt = det(3, 10, 10, 20, 20, 0.9);
    mn_coco_img_eval e;
    eval_img(&e, &gt, 1, &dt, 1, MN_COCO_AREA_ALL, 100);
    cr_assert_eq(e.n_gt, 1);
    cr_assert_eq(e.n_dt, 1);
    for (int t = 0; t < MN_COCO_T; t++) {
        cr_expect_eq(e.dt_match[t], 7, "threshold %d: the dt records the gt's id", t);
        cr_expect_eq(e.gt_match[t], 3, "threshold %d: the gt records the dt's id", t);
        cr_expect_eq(e.dt_ignore[t], 0);
    }
    cr_expect_eq(e.gt_ignore[0], 0);
    mn_coco_img_eval_free(&e);
}

Test(coco_match, iou_060_matches_three_thresholds, .init = setup)
{
    /* gt [0,0,10,10]; dt [0,0,6,10]: 60 / (60 + 100 - 60) = 0.6, the same double as the threshold .60, and
     * a match needs IoU >= threshold: matched at .50 .55 .60, not from .65 on */
    mn_coco_ann gt = box(1, 0, 0, 10, 10, 100, 0, 0);
    mn_coco_ann dt = det(1, 0, 0, 6, 10, 0.9);
    mn_coco_img_eval e;
    eval_img(&e, &gt, 1, &dt, 1, MN_COCO_AREA_ALL, 100);
    for (int t = 0; t < MN_COCO_T; t++) cr_expect_eq(e.dt_match[t] != 0, t <= 2, "threshold %d", t);
    mn_coco_img_eval_free(&e);
    /* dt [0,0,5.8,10]: 58 / 100 = 0.58: .50 and .55 only */
    dt = det(1, 0, 0, 5.8, 10, 0.9);
    eval_img(&e, &gt, 1, &dt, 1, MN_COCO_AREA_ALL, 100);
    for (int t = 0; t < MN_COCO_T; t++) cr_expect_eq(e.dt_match[t] != 0, t <= 1, "threshold %d", t);
    mn_coco_img_eval_free(&e);
}

Test(coco_match, ignored_gts_sort_last_stably, .init = setup)
{
    /* input: crowd, regular (area 100), too big for "small" (area 5000), regular (area 200) */
    mn_coco_ann gt[4] = {box(1, 0, 0, 10, 10, 100, 1, 0), box(2, 20, 0, 10, 10, 100, 0, 0),
                         box(3, 40, 0, 50, 100, 5000, 0, 0), box(4, 60, 0, 10, 20, 200, 0, 0)};
    mn_coco_img_eval e;
    eval_img(&e, gt, 4, NULL, 0, MN_COCO_AREA_SMALL, 100);
    /* regular ones first in input order (2, 4), then the ignored ones in input order (1, 3) */
    const int order[4] = {1, 3, 0, 2};
    const uint8_t ig[4] = {0, 0, 1, 1};
    for (int g = 0; g < 4; g++) {
        cr_expect_eq(e.gt_order[g], order[g], "position %d", g);
        cr_expect_eq(e.gt_ignore[g], ig[g], "position %d", g);
    }
    cr_expect_eq(e.n_dt, 0);
    mn_coco_img_eval_free(&e);
}

Test(coco_match, regular_gt_preferred_over_ignored, .init = setup)
{
    /* crowd C [0,0,100,100] listed first, regular R [0,0,10,10]; dt [0,0,10,6]: IoU with R = 60 / 100 = 0.6,
     * with C (intersection / dt area) = 1. R sorts first; once the dt holds R, the loop stops at the first
     * ignored gt, so at .50-.60 it takes R although C scores higher. From .65 R fails and the dt lands on
     * the crowd: matched but ignored. */
    mn_coco_ann gt[2] = {box(10, 0, 0, 100, 100, 10000, 1, 0), box(20, 0, 0, 10, 10, 100, 0, 0)};
    mn_coco_ann dt = det(1, 0, 0, 10, 6, 0.9);
    mn_coco_img_eval e;
    eval_img(&e, gt, 2, &dt, 1, MN_COCO_AREA_ALL, 100);
    for (int t = 0; t < MN_COCO_T; t++) {
        cr_expect_eq(e.dt_match[t], t <= 2 ? 20 : 10, "threshold %d", t);
        cr_expect_eq(e.dt_ignore[t], t <= 2 ? 0 : 1, "threshold %d", t);
    }
    mn_coco_img_eval_free(&e);
}

Test(coco_match, equal_iou_goes_to_the_later_gt, .init = setup)
{
    /* gts [0,0,10,10] and [2,0,10,10]; dt [1,0,10,10] overlaps both by 9x10: 90 / 110 = .818 each. The loop
     * takes a gt when its IoU is >= the best so far, so the later one wins the tie (thresholds .50-.80;
     * from .85 on neither qualifies). */
    mn_coco_ann gt[2] = {box(1, 0, 0, 10, 10, 100, 0, 0), box(2, 2, 0, 10, 10, 100, 0, 0)};
    mn_coco_ann dt = det(1, 1, 0, 10, 10, 0.9);
    mn_coco_img_eval e;
    eval_img(&e, gt, 2, &dt, 1, MN_COCO_AREA_ALL, 100);
    for (int t = 0; t < MN_COCO_T; t++) cr_expect_eq(e.dt_match[t], t <= 6 ? 2 : 0, "threshold %d", t);
    mn_coco_img_eval_free(&e);
}

Test(coco_match, regular_gt_taken_once_crowd_many, .init = setup)
{
    /* two identical dets on one regular gt: the higher score takes it, the other stays unmatched (an FP).
     * Three dets inside a crowd region: all three are absorbed by it. */
    mn_coco_ann gt[2] = {box(1, 200, 200, 10, 10, 100, 0, 0), box(2, 0, 0, 100, 100, 10000, 1, 0)};
    mn_coco_ann dt[5] = {det(1, 200, 200, 10, 10, 0.5), det(2, 200, 200, 10, 10, 0.6),
                         det(3, 10, 10, 20, 20, 0.9), det(4, 50, 50, 20, 20, 0.8), det(5, 30, 60, 10, 10, 0.7)};
    mn_coco_img_eval e;
    eval_img(&e, gt, 2, dt, 5, MN_COCO_AREA_ALL, 100);
    /* score order: dets 3, 4, 5 (crowd), 2 (0.6), 1 (0.5) */
    const int order[5] = {2, 3, 4, 1, 0};
    for (int d = 0; d < 5; d++) cr_expect_eq(e.dt_order[d], order[d]);
    for (int t = 0; t < MN_COCO_T; t++) {
        const int64_t *dm = e.dt_match + t * 5;
        const uint8_t *di = e.dt_ignore + t * 5;
        cr_expect(dm[0] == 2 && dm[1] == 2 && dm[2] == 2, "threshold %d: crowd absorbs all three", t);
        cr_expect(di[0] && di[1] && di[2], "threshold %d: and they are ignored", t);
        cr_expect(dm[3] == 1 && !di[3], "threshold %d: score 0.6 takes the gt", t);
        cr_expect(dm[4] == 0 && !di[4], "threshold %d: score 0.5 is a false positive", t);
        /* the crowd records the last detection it absorbed (id 5) */
        cr_expect_eq(e.gt_match[t * 2 + 1], 5);
    }
    mn_coco_img_eval_free(&e);
}

Test(coco_match, stable_score_order_and_max_det, .init = setup)
{
    /* scores .5 .9 .5 .7 .5: descending, equal scores keep input order -> 1, 3, 0, 2, 4 */
    mn_coco_ann dt[5] = {det(1, 0, 0, 1, 1, .5), det(2, 0, 0, 1, 1, .9), det(3, 0, 0, 1, 1, .5),
                         det(4, 0, 0, 1, 1, .7), det(5, 0, 0, 1, 1, .5)};
    mn_coco_img_eval e;
    eval_img(&e, NULL, 0, dt, 5, MN_COCO_AREA_ALL, 100);
    const int order[5] = {1, 3, 0, 2, 4};
    for (int d = 0; d < 5; d++) cr_expect_eq(e.dt_order[d], order[d], "rank %d", d);
    mn_coco_img_eval_free(&e);
    /* maxDet 3 keeps the first three of that order */
    eval_img(&e, NULL, 0, dt, 5, MN_COCO_AREA_ALL, 3);
    cr_assert_eq(e.n_dt, 3);
    cr_expect(e.dt_score[0] == .9 && e.dt_score[1] == .7 && e.dt_score[2] == .5);
    cr_expect_eq(e.dt_order[2], 0);
    mn_coco_img_eval_free(&e);
}

Test(coco_match, unmatched_dets_outside_the_range_are_ignored, .init = setup)
{
    /* "medium" [1024, 9216]. gt 40x40 (1600, in range). dt A exact on it but only 32x50 = 1600... keep it
     * simple: A [0,0,40,40] matched (area 1600). B [100,100,10,10] unmatched, area 100 < 1024: ignored.
     * C [200,200,50,50] unmatched, area 2500 in range: a false positive (not ignored). D [0,0,20,40],
     * IoU 800/1600 = .5 with the gt but the gt is taken by A: unmatched, area 800: ignored. */
    mn_coco_ann gt = box(1, 0, 0, 40, 40, 1600, 0, 0);
    mn_coco_ann dt[4] = {det(1, 0, 0, 40, 40, .9), det(2, 100, 100, 10, 10, .8), det(3, 200, 200, 50, 50, .7),
                         det(4, 0, 0, 20, 40, .6)};
    mn_coco_img_eval e;
    eval_img(&e, &gt, 1, dt, 4, MN_COCO_AREA_MEDIUM, 100);
    for (int t = 0; t < MN_COCO_T; t++) {
        const uint8_t *di = e.dt_ignore + t * 4;
        cr_expect(e.dt_match[t * 4] == 1 && !di[0], "threshold %d", t);
        cr_expect(di[1] && !di[2] && di[3], "threshold %d: ignore flags %d %d %d", t, di[1], di[2], di[3]);
    }
    mn_coco_img_eval_free(&e);
}

/* ---- interpolation ----------------------------------------------------------------------------------- */

Test(coco_interp, envelope_and_recall_sampling, .init = setup)
{
    /* ranks: TP, FP, TP with 2 gts: tp 1 1 2, fp 0 1 1, recall .5 .5 1, precision 1-2^-52, 1/2, 2/3.
     * Envelope: 1-2^-52, 2/3, 2/3. Thresholds 0 .. .50 (r <= 50) first reach recall at rank 0, the rest at
     * rank 2. */
    const double tp[3] = {1, 1, 2}, fp[3] = {0, 1, 1};
    double q[MN_COCO_R], work[3];
    double rc = mn_coco_interp(q, work, tp, fp, 3, 2, P.rec_thrs, MN_COCO_R);
    cr_expect_eq(rc, 1.0);
    for (int r = 0; r <= 50; r++) cr_expect_eq(q[r], ONE_TP, "q[%d] = %.17g", r, q[r]);
    for (int r = 51; r <= 100; r++) cr_expect_eq(q[r], 2.0 / 3.0, "q[%d] = %.17g", r, q[r]);
}

Test(coco_interp, unreached_recall_is_zero, .init = setup)
{
    /* one TP out of 4 gts: recall .25; thresholds up to .25 (r <= 25) get 1-2^-52, the rest 0 */
    const double tp[1] = {1}, fp[1] = {0};
    double q[MN_COCO_R], work[1];
    cr_expect_eq(mn_coco_interp(q, work, tp, fp, 1, 4, P.rec_thrs, MN_COCO_R), 0.25);
    for (int r = 0; r < MN_COCO_R; r++) cr_expect_eq(q[r], r <= 25 ? ONE_TP : 0.0, "q[%d]", r);
    /* recall 57 / 100 is just below the threshold np.linspace puts at 0.57 (0.5700000000000001): pycocotools
     * does not credit it, and neither do we */
    const double tp57[1] = {57};
    cr_expect_eq(mn_coco_interp(q, work, tp57, fp, 1, 100, P.rec_thrs, MN_COCO_R), 0.57);
    cr_expect_gt(q[56], 0.99);
    cr_expect_eq(q[57], 0.0);
    /* no detections: nothing reached, recall 0 */
    cr_expect_eq(mn_coco_interp(q, work, NULL, NULL, 0, 3, P.rec_thrs, MN_COCO_R), 0.0);
    for (int r = 0; r < MN_COCO_R; r++) cr_expect_eq(q[r], 0.0);
}

/* ---- accumulation --------------------------------------------------------------------------------------- */

Test(coco_accumulate, concatenates_images_in_order_with_stable_ties, .init = setup)
{
    /* image A: 1 gt and a far-off det (FP), score .5; image B: 1 gt and an exact det (TP), score .5. With A
     * first the tie keeps FP before TP: tp 0 1, fp 1 1, precision 0 and 1/(2+eps) = .5 (2 + eps rounds to
     * 2), envelope .5 .5, recall 0 .5: thresholds r <= 50 get .5, the other 50 get 0. */
    mn_coco_ann ga = box(1, 0, 0, 10, 10, 100, 0, 0), gb = box(2, 0, 0, 10, 10, 100, 0, 0);
    mn_coco_ann da = det(1, 50, 50, 10, 10, .5), db = det(2, 0, 0, 10, 10, .5);
    mn_coco_img_eval e[2];
    eval_img(&e[0], &ga, 1, &da, 1, MN_COCO_AREA_ALL, 100);
    eval_img(&e[1], &gb, 1, &db, 1, MN_COCO_AREA_ALL, 100);
    double prec[MN_COCO_T * MN_COCO_R], rec[MN_COCO_T];
    cr_assert_eq(mn_coco_accumulate(prec, rec, e, 2, 100, P.rec_thrs, MN_COCO_R, MN_COCO_T), 1);
    for (int t = 0; t < MN_COCO_T; t++) {
        cr_expect_eq(rec[t], 0.5);
        for (int r = 0; r < MN_COCO_R; r++) cr_expect_eq(prec[t * MN_COCO_R + r], r <= 50 ? 0.5 : 0.0);
    }
    /* B first: TP then FP: precision 1-2^-52 then .5, recall .5 .5: thresholds r <= 50 get 1-2^-52 */
    mn_coco_img_eval swapped[2] = {e[1], e[0]};
    cr_assert_eq(mn_coco_accumulate(prec, rec, swapped, 2, 100, P.rec_thrs, MN_COCO_R, MN_COCO_T), 1);
    cr_expect_eq(prec[0], ONE_TP);
    cr_expect_eq(prec[50], ONE_TP);
    cr_expect_eq(prec[51], 0.0);
    /* maxDet 1 still sees both (one per image) */
    cr_assert_eq(mn_coco_accumulate(prec, rec, e, 2, 1, P.rec_thrs, MN_COCO_R, MN_COCO_T), 1);
    cr_expect_eq(rec[0], 0.5);
    mn_coco_img_eval_free(&e[0]);
    mn_coco_img_eval_free(&e[1]);
}

Test(coco_accumulate, no_regular_gt_is_undefined, .init = setup)
{
    /* only a crowd gt: nothing to find, precision and recall -1 however many detections there are */
    mn_coco_ann g = box(1, 0, 0, 10, 10, 100, 1, 0), d = det(1, 0, 0, 5, 5, .9);
    mn_coco_img_eval e;
    eval_img(&e, &g, 1, &d, 1, MN_COCO_AREA_ALL, 100);
    double prec[MN_COCO_T * MN_COCO_R], rec[MN_COCO_T];
    cr_expect_eq(mn_coco_accumulate(prec, rec, &e, 1, 100, P.rec_thrs, MN_COCO_R, MN_COCO_T), 0);
    for (int i = 0; i < MN_COCO_T * MN_COCO_R; i++) cr_expect_eq(prec[i], -1.0);
    for (int t = 0; t < MN_COCO_T; t++) cr_expect_eq(rec[t], -1.0);
    /* and with no images at all */
    cr_expect_eq(mn_coco_accumulate(prec, rec, NULL, 0, 100, P.rec_thrs, MN_COCO_R, MN_COCO_T), 0);
    mn_coco_img_eval_free(&e);
}

/* ---- summary means ------------------------------------------------------------------------------------- */

Test(coco_summary, np_sum_blocks)
{
    /* values 1/(i+1); expected sums from numpy 1.24 np.sum, which sums 8192-value blocks pairwise and adds
     * the block sums in order. n = 80800 is T x R x 80 categories, the size of an AP mean on COCO. A
     * left-to-right loop (0x1.7c10020a1db12p+3) and one pairwise sum over all of it (0x1.7c10020a1dafcp+3)
     * both differ from it in the last bits. */
    const int64_t n = 80800;
    double *v = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) v[i] = 1.0 / (double)(i + 1);
    cr_expect_eq(mn_coco_np_sum(v, 7), 0x1.4be2be2be2be2p+1, "%a", mn_coco_np_sum(v, 7));
    cr_expect_eq(mn_coco_np_sum(v, 100), 0x1.4bfdfe4591243p+2, "%a", mn_coco_np_sum(v, 100));
    cr_expect_eq(mn_coco_np_sum(v, 20000), 0x1.4f62202468759p+3, "%a", mn_coco_np_sum(v, 20000));
    cr_expect_eq(mn_coco_np_sum(v, n), 0x1.7c10020a1daffp+3, "%a", mn_coco_np_sum(v, n));
    double seq = 0;
    for (int64_t i = 0; i < n; i++) seq += v[i];
    cr_expect_neq(seq, mn_coco_np_sum(v, n), "the test data must tell the orders apart");
    free(v);
}

/* ---- whole evaluations (hand-worked) ---------------------------------------------------------------------- */

Test(coco_evaluate, one_perfect_detection, .init = setup)
{
    /* one small gt (area 400), one exact det: matched at every threshold, precision 1-2^-52 at all 101 recall
     * points, recall 1. Medium and large have no gt: -1. */
    mn_coco_gt gt;
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [10, 10, 20, 20], \"area\": 400}"));
    mn_coco_dets d = {0};
    add(&d, 1, 1, 10, 10, 20, 20, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 1, 1e-12);
    expect_stat(s, MN_COCO_AP50, 1, 1e-12);
    expect_stat(s, MN_COCO_AP75, 1, 1e-12);
    expect_stat(s, MN_COCO_APS, 1, 1e-12);
    expect_stat(s, MN_COCO_APM, -1, 0);
    expect_stat(s, MN_COCO_APL, -1, 0);
    for (int i = MN_COCO_AR1; i <= MN_COCO_ARS; i++) expect_stat(s, i, 1, 0);
    expect_stat(s, MN_COCO_ARM, -1, 0);
    expect_stat(s, MN_COCO_ARL, -1, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, iou_060_gives_ap_030, .init = setup)
{
    /* IoU exactly .6 (see coco_match): 3 of 10 thresholds matched, each with precision 1-2^-52 at every
     * recall point, the other 7 with 0 -> AP = .3 (to 1e-12), AP50 = 1, AP75 = 0; recall 1 1 1 0 0 0 0 0 0 0
     * -> AR100 = 3 / 10 exactly. */
    mn_coco_gt gt;
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100}"));
    mn_coco_dets d = {0};
    add(&d, 1, 1, 0, 0, 6, 10, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 0.3, 1e-12);
    expect_stat(s, MN_COCO_AP50, 1, 1e-12);
    expect_stat(s, MN_COCO_AP75, 0, 0);
    expect_stat(s, MN_COCO_AR100, 3.0 / 10.0, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    /* IoU .58: 2 of 10 -> AP = .2, AR100 = 2 / 10 */
    add(&d, 1, 1, 0, 0, 5.8, 10, 0.9);
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 0.2, 1e-12);
    expect_stat(s, MN_COCO_AR100, 2.0 / 10.0, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

static const char *const TWO_IMAGES =
    "{\"images\": [{\"id\": 1}, {\"id\": 2}], \"categories\": [{\"id\": 1}], \"annotations\": ["
    "{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100},"
    "{\"id\": 2, \"image_id\": 2, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100}]}";

Test(coco_evaluate, tied_scores_follow_image_then_file_order, .init = setup)
{
    /* A far-off det on image 1 (FP) and an exact det on image 2 (TP), both score .5, the TP listed first in
     * the results. Images are concatenated by id, so the FP ranks first (coco_accumulate): at each
     * threshold 51 recall points of precision .5 and 50 of 0 -> AP = 255 / 1010 exactly (sums of .5 are
     * exact). Were the TP first, AP would be 51/101 * (1-2^-52). */
    mn_coco_gt gt;
    load_gt(&gt, TWO_IMAGES);
    mn_coco_dets d = {0};
    add(&d, 2, 1, 0, 0, 10, 10, 0.5);
    add(&d, 1, 1, 50, 50, 10, 10, 0.5);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 255.0 / 1010.0, 0);
    expect_stat(s, MN_COCO_AR100, 0.5, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    /* the same tie inside one image: file order decides. FP listed first -> 255/1010; TP first -> 51/101 */
    add(&d, 2, 1, 50, 50, 10, 10, 0.5);
    add(&d, 2, 1, 0, 0, 10, 10, 0.5);
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 255.0 / 1010.0, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    add(&d, 2, 1, 0, 0, 10, 10, 0.5);
    add(&d, 2, 1, 50, 50, 10, 10, 0.5);
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 51.0 / 101.0, 1e-12);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, detection_on_image_without_gt_is_a_false_positive, .init = setup)
{
    /* images 1 and 2, one gt on image 1 only. Exact det on image 1 (score .5), a det on image 2 (score .9).
     * Ranked: FP, TP -> precision 0, .5; envelope .5 .5; recall 0, 1: all 101 points .5 -> AP = .5 exactly */
    mn_coco_gt gt;
    load_gt(&gt, "{\"images\": [{\"id\": 1}, {\"id\": 2}], \"categories\": [{\"id\": 1}], \"annotations\": ["
                 "{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100}]}");
    mn_coco_dets d = {0};
    add(&d, 1, 1, 0, 0, 10, 10, 0.5);
    add(&d, 2, 1, 0, 0, 10, 10, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 0.5, 0);
    /* AR1 still 1: maxDets applies per image, and image 1's best det is the TP */
    expect_stat(s, MN_COCO_AR1, 1, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, crowd_absorbs_several_detections, .init = setup)
{
    /* crowd [0,0,100,100] and a regular gt [200,200,10,10]; three dets inside the crowd (scores .9 .8 .7)
     * and an exact one on the regular gt (.6). The crowd dets are matched-and-ignored, so the ranking is
     * just the TP: AP = 1 (to 1e-12), AR = 1. Counted as false positives they would give AP .25. */
    mn_coco_gt gt;
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 100, 100], \"area\": 10000,"
                     " \"iscrowd\": 1},"
                     "{\"id\": 2, \"image_id\": 1, \"category_id\": 1, \"bbox\": [200, 200, 10, 10], \"area\": 100}"));
    mn_coco_dets d = {0};
    add(&d, 1, 1, 10, 10, 20, 20, 0.9);
    add(&d, 1, 1, 50, 50, 20, 20, 0.8);
    add(&d, 1, 1, 30, 60, 10, 10, 0.7);
    add(&d, 1, 1, 200, 200, 10, 10, 0.6);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 1, 1e-12);
    expect_stat(s, MN_COCO_AR100, 1, 0);
    /* AR1: image's top det is a crowd one; the TP is cut -> recall 0 */
    expect_stat(s, MN_COCO_AR1, 0, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, area_boundaries_are_inclusive, .init = setup)
{
    /* gt A 32x32 area 1024 with an exact det; gt B 96x96 area 9216 with none (far apart). Both ends count:
     * small [0,1024] = {A}: recall 1; medium [1024,9216] = {A,B}: recall .5; large [9216,1e10] = {B}:
     * recall 0 and AP 0 (A's det matches A, ignored in this range, so it is ignored too). With open ends A
     * would not be small, and medium would be empty. */
    mn_coco_gt gt;
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 32, 32], \"area\": 1024},"
                     "{\"id\": 2, \"image_id\": 1, \"category_id\": 1, \"bbox\": [100, 100, 96, 96], \"area\": 9216}"));
    mn_coco_dets d = {0};
    add(&d, 1, 1, 0, 0, 32, 32, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_ARS, 1, 0);
    expect_stat(s, MN_COCO_ARM, 0.5, 0);
    expect_stat(s, MN_COCO_ARL, 0, 0);
    expect_stat(s, MN_COCO_APS, 1, 1e-12);
    expect_stat(s, MN_COCO_APL, 0, 0);
    /* medium: TP at rank 0 with 2 gts -> recall .5: 51 points at 1-2^-52, 50 at 0 -> 51/101 */
    expect_stat(s, MN_COCO_APM, 51.0 / 101.0, 1e-12);
    mn_coco_eval_free(&ev);
    mn_coco_gt_free(&gt);
    /* just past the ends: 1024.5 is medium only, 9215.5 medium only -> small and large have no gt */
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 32, 32], \"area\": 1024.5},"
                     "{\"id\": 2, \"image_id\": 1, \"category_id\": 1, \"bbox\": [100, 100, 96, 96], \"area\": 9215.5}"));
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_ARS, -1, 0);
    expect_stat(s, MN_COCO_ARL, -1, 0);
    expect_stat(s, MN_COCO_ARM, 0.5, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, category_without_gt_is_minus_one_and_left_out, .init = setup)
{
    /* category 1: one gt, exact det (AP ~1). Category 2: no gt but a det: -1, excluded from the mean, so
     * AP stays ~1 rather than ~.5 */
    mn_coco_gt gt;
    load_gt(&gt, "{\"images\": [{\"id\": 1}], \"categories\": [{\"id\": 2, \"name\": \"b\"}, {\"id\": 1, "
                 "\"name\": \"a\"}], \"annotations\": ["
                 "{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100}]}");
    mn_coco_dets d = {0};
    add(&d, 1, 1, 0, 0, 10, 10, 0.9);
    add(&d, 1, 2, 0, 0, 10, 10, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 1, 1e-12);
    expect_stat(s, MN_COCO_AR100, 1, 0);
    /* categories come out sorted by id */
    cr_assert_eq(ev.n_cats, 2);
    cr_expect(ev.cat_ids[0] == 1 && ev.cat_ids[1] == 2);
    cr_expect(fabs(mn_coco_category_ap(&ev, 0) - 1) < 1e-12);
    cr_expect_eq(mn_coco_category_ap(&ev, 1), -1.0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, max_dets_truncation, .init = setup)
{
    /* one gt; an FP at .9 ranked above the exact TP at .8. maxDets 1 keeps only the FP: AR1 = 0;
     * AR10 = AR100 = 1. AP (maxDets 100): FP, TP -> precision .5 everywhere -> .5 exactly. */
    mn_coco_gt gt;
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100}"));
    mn_coco_dets d = {0};
    add(&d, 1, 1, 50, 50, 10, 10, 0.9);
    add(&d, 1, 1, 0, 0, 10, 10, 0.8);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AR1, 0, 0);
    expect_stat(s, MN_COCO_AR10, 1, 0);
    expect_stat(s, MN_COCO_AR100, 1, 0);
    expect_stat(s, MN_COCO_AP, 0.5, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    /* 100 FPs at .9 push the TP (.1) out of the 100 kept per image: recall 0, AP 0 */
    for (int i = 0; i < 100; i++) add(&d, 1, 1, 50 + i, 50, 10, 10, 0.9);
    add(&d, 1, 1, 0, 0, 10, 10, 0.1);
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AR100, 0, 0);
    expect_stat(s, MN_COCO_AP, 0, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    /* with 99 FPs it is kept (rank 100): recall 1, precision 1/100 at the end -> AP 0.01 * (1 - tiny) */
    for (int i = 0; i < 99; i++) add(&d, 1, 1, 50 + i, 50, 10, 10, 0.9);
    add(&d, 1, 1, 0, 0, 10, 10, 0.1);
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AR100, 1, 0);
    expect_stat(s, MN_COCO_AP, 0.01, 1e-12);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, no_annotations_all_undefined, .init = setup)
{
    mn_coco_gt gt;
    load_gt(&gt, GT1(""));
    mn_coco_dets d = {0};
    add(&d, 1, 1, 0, 0, 10, 10, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    for (int i = 0; i < MN_COCO_NSTATS; i++) expect_stat(s, i, -1, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
    /* no detections at all: every figure with gt is 0 */
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100}"));
    run_eval(&ev, s, &gt, NULL);
    expect_stat(s, MN_COCO_AP, 0, 0);
    expect_stat(s, MN_COCO_AR100, 0, 0);
    expect_stat(s, MN_COCO_APM, -1, 0);
    mn_coco_eval_free(&ev);
    mn_coco_gt_free(&gt);
}

Test(coco_evaluate, ignore_key_has_no_effect_and_iscrowd_defaults_to_0, .init = setup)
{
    /* pycocotools overwrites 'ignore' with iscrowd: this gt (ignore 1, no iscrowd) is regular: AP ~1 */
    mn_coco_gt gt;
    load_gt(&gt, GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100,"
                     " \"ignore\": 1}"));
    cr_expect_eq(gt.anns[0].iscrowd, 0);
    mn_coco_dets d = {0};
    add(&d, 1, 1, 0, 0, 10, 10, 0.9);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 1, 1e-12);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}

/* ---- loading errors ---------------------------------------------------------------------------------------- */

static void expect_gt_error(const char *json, int code, const char *needle1, const char *needle2)
{
    mn_coco_gt gt;
    int rc = mn_coco_gt_parse(&gt, json, "bad-gt.json");
    cr_expect_eq(rc, code, "rc %d for %s (%s)", rc, json, mn_last_error());
    cr_expect(strstr(mn_last_error(), "bad-gt.json"), "message names the file: %s", mn_last_error());
    cr_expect(strstr(mn_last_error(), needle1), "message '%s' lacks '%s'", mn_last_error(), needle1);
    if (needle2) cr_expect(strstr(mn_last_error(), needle2), "message '%s' lacks '%s'", mn_last_error(), needle2);
    cr_expect_null(gt.anns);
}

#define ANN(extra) "{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"area\": 100" extra "}"

Test(coco_json, gt_errors_name_the_place)
{
    expect_gt_error("{\"images\": [", MN_EFORMAT, "line 1", NULL);
    expect_gt_error("{\"images\": []} trailing", MN_EFORMAT, "invalid JSON", NULL);
    expect_gt_error("[]", MN_EFORMAT, "top level", NULL);
    expect_gt_error("{\"images\": [], \"categories\": []}", MN_EFORMAT, "'annotations'", NULL);
    expect_gt_error(GT1(ANN(", \"bbox\": [0, 0, 1, 1]") "," ANN("")), MN_EFORMAT, "annotations[1]", "'bbox'");
    expect_gt_error(GT1(ANN(", \"bbox\": [0, 0, 1]")), MN_EFORMAT, "annotations[0]", "4 numbers");
    expect_gt_error(GT1(ANN(", \"bbox\": [0, 0, \"1\", 1]")), MN_EFORMAT, "'bbox'[2]", NULL);
    expect_gt_error(GT1(ANN(", \"bbox\": [0, 0, -1, 1]")), MN_EFORMAT, "negative", NULL);
    expect_gt_error(GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 1, 1]}"), MN_EFORMAT,
                    "annotations[0]", "'area'");
    expect_gt_error(GT1("{\"id\": 1.5, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}"),
                    MN_EFORMAT, "'id' must be an integer", NULL);
    expect_gt_error(GT1("{\"id\": 1, \"image_id\": 9, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"area\": 1}"),
                    MN_EFORMAT, "image_id 9", "'images'");
    expect_gt_error(GT1("{\"id\": 1, \"image_id\": 1, \"category_id\": 4, \"bbox\": [0, 0, 1, 1], \"area\": 1}"),
                    MN_EFORMAT, "category_id 4", NULL);
    expect_gt_error(GT1(ANN(", \"bbox\": [0, 0, 1, 1]") "," ANN(", \"bbox\": [0, 0, 1, 1]")), MN_EFORMAT,
                    "id 1 appears more than once", NULL);
    expect_gt_error("{\"images\": [{\"id\": 1}, {\"id\": 1}], \"categories\": [], \"annotations\": []}", MN_EFORMAT,
                    "images: id 1", NULL);
    expect_gt_error("{\"images\": [{\"idx\": 1}], \"categories\": [], \"annotations\": []}", MN_EFORMAT,
                    "images[0]", "'id'");
    expect_gt_error(GT1(ANN(", \"bbox\": [0, 0, 1, 1], \"iscrowd\": \"no\"")), MN_EFORMAT, "'iscrowd'", NULL);
}

static void expect_res_error(const mn_coco_gt *gt, const char *json, int code, const char *needle1,
                             const char *needle2)
{
    mn_coco_dets d;
    int rc = mn_coco_dets_parse(&d, json, "bad-res.json", gt);
    cr_expect_eq(rc, code, "rc %d for %s (%s)", rc, json, mn_last_error());
    cr_expect(strstr(mn_last_error(), "bad-res.json"), "message names the file: %s", mn_last_error());
    cr_expect(strstr(mn_last_error(), needle1), "message '%s' lacks '%s'", mn_last_error(), needle1);
    if (needle2) cr_expect(strstr(mn_last_error(), needle2), "message '%s' lacks '%s'", mn_last_error(), needle2);
    cr_expect_eq(d.n, 0);
    cr_expect_null(d.dets);
}

#define RES(img, cat, score) "{\"image_id\": " #img ", \"category_id\": " #cat ", \"bbox\": [0, 0, 5, 4], " score "}"

Test(coco_json, results_errors_and_loadres_fields)
{
    mn_coco_gt gt;
    load_gt(&gt, GT1(""));
    expect_res_error(&gt, "{}", MN_EFORMAT, "JSON array", NULL);
    expect_res_error(&gt, "[" RES(1, 1, "\"score\": 1") ", " RES(1, 1, "\"score\": 1") ", " RES(99, 1, "\"score\": 1")
                     "]", MN_EINVAL, "results[2]", "image_id 99");
    expect_res_error(&gt, "[" RES(1, 1, "\"score\": 1") ", " RES(1, 1, "\"s\": 1") "]", MN_EFORMAT, "results[1]",
                     "'score'");
    expect_res_error(&gt, "[" RES(1, 1, "\"score\": null") "]", MN_EFORMAT, "results[0]", "'score'");
    expect_res_error(&gt, "[1]", MN_EFORMAT, "results[0]", "not an object");
    /* loadRes: ids count from 1 in file order, area = w * h whatever the file says, iscrowd 0 */
    mn_coco_dets d;
    int rc = mn_coco_dets_parse(&d,
                                "[" RES(1, 1, "\"score\": 0.25, \"area\": 7, \"id\": 40") ", " RES(1, 1, "\"score\": 1")
                                "]",
                                "ok.json", &gt);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_assert_eq(d.n, 2);
    cr_expect(d.dets[0].id == 1 && d.dets[1].id == 2);
    cr_expect_eq(d.dets[0].area, 20.0);
    cr_expect_eq(d.dets[0].score, 0.25);
    cr_expect_eq(d.dets[0].iscrowd, 0);
    mn_coco_dets_free(&d);
    /* an empty result list is valid */
    cr_expect_eq(mn_coco_dets_parse(&d, "[]", "empty.json", &gt), 0);
    cr_expect_eq(d.n, 0);
    mn_coco_dets_free(&d);
    /* evaluating in-memory detections on an unknown image is refused too */
    add(&d, 42, 1, 0, 0, 1, 1, 0.5);
    mn_coco_eval ev;
    cr_expect_eq(mn_coco_evaluate(&ev, &gt, &d, NULL), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "image_id 42"), "%s", mn_last_error());
    mn_coco_dets_free(&d);
    double bad[4] = {0, 0, NAN, 1};
    cr_expect_eq(mn_coco_dets_add(&d, 1, 1, bad, 0.5), MN_ENUMERIC);
    mn_coco_gt_free(&gt);
}

/* Two categories, a (id 1) with gt A = [0, 0, 10, 10] and b (id 2) with gt B = [50, 50, 10, 10], on image 1. */
static const char *const TWO_CATS =
    "{\"images\": [{\"id\": 1}], \"categories\": [{\"id\": 1, \"name\": \"a\"}, {\"id\": 2, \"name\": \"b\"}],"
    " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"area\": 100},"
    " {\"id\": 2, \"image_id\": 1, \"category_id\": 2, \"bbox\": [50, 50, 10, 10], \"area\": 100}]}";
/* Results numbered 0..K-1 (a -> 0, b -> 1), plus one right id: category 0 is not in the ground truth. */
static const char *const SHIFTED_RESULTS =
    "[{\"image_id\": 1, \"category_id\": 0, \"bbox\": [0, 0, 10, 10], \"score\": 0.9},"
    " {\"image_id\": 1, \"category_id\": 1, \"bbox\": [50, 50, 10, 10], \"score\": 0.8},"
    " {\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 10, 10], \"score\": 0.5}]";

Test(coco_json, unknown_categories_are_left_out_as_pycocotools_does, .init = setup)
{
    /* COCOeval evaluates only the ground truth's categories, so the category-0 result never counts. Category
     * a: B-box (.8) is a false positive, A-box (.5) a true positive: precision 0 then 1 / (2 + eps) = .5
     * exactly, recall 0 then 1, so all 101 points are .5 at every threshold: AP(a) = .5. Category b has a gt
     * and no detection: AP(b) = 0. AP = .25; AR100 = (1 + 0) / 2; AR1 = 0 (a's best-scored result is the
     * false positive). Kept results keep loadRes' ids, which count the left-out one: 2 and 3. */
    mn_coco_gt gt;
    load_gt(&gt, TWO_CATS);
    mn_coco_dets d;
    cr_assert_eq(mn_coco_dets_parse(&d, SHIFTED_RESULTS, "res.json", &gt), 0, "%s", mn_last_error());
    cr_assert_eq(d.n, 2);
    cr_expect(d.dets[0].id == 2 && d.dets[1].id == 3, "ids %lld %lld", (long long)d.dets[0].id,
              (long long)d.dets[1].id);
    cr_expect_eq(d.n_skipped, 1);
    cr_expect_eq(d.first_skipped, 0);
    cr_assert_eq(d.n_skipped_cat_ids, 1);
    cr_expect_eq(d.skipped_cat_ids[0], 0);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    expect_stat(s, MN_COCO_AP, 0.25, 0);
    expect_stat(s, MN_COCO_AP50, 0.25, 0);
    expect_stat(s, MN_COCO_AR1, 0, 0);
    expect_stat(s, MN_COCO_AR100, 0.5, 0);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);

    /* several unknown ids, repeated and out of order: counted once each, ascending; image ids still refused */
    cr_assert_eq(mn_coco_dets_parse(&d,
                                    "[" RES(1, 90, "\"score\": 1") ", " RES(1, 0, "\"score\": 1") ", "
                                    RES(1, 90, "\"score\": 1") ", " RES(1, 2, "\"score\": 1") ", "
                                    RES(1, -3, "\"score\": 1") ", " RES(1, 0, "\"score\": 1") "]",
                                    "res.json", &gt), 0, "%s", mn_last_error());
    cr_expect_eq(d.n, 1);
    cr_expect_eq(d.n_skipped, 5);
    cr_assert_eq(d.n_skipped_cat_ids, 3);
    cr_expect(d.skipped_cat_ids[0] == -3 && d.skipped_cat_ids[1] == 0 && d.skipped_cat_ids[2] == 90);
    mn_coco_dets_free(&d);
    cr_expect_null(d.skipped_cat_ids);
    expect_res_error(&gt, "[" RES(1, 7, "\"score\": 1") ", " RES(3, 1, "\"score\": 1") "]", MN_EINVAL, "results[1]",
                     "image_id 3 is not an image");
    mn_coco_gt_free(&gt);
}

Test(coco_json, missing_file_names_it)
{
    mn_coco_gt gt;
    cr_expect_eq(mn_coco_gt_load(&gt, "/nonexistent/gt.json"), MN_EIO);
    cr_expect(strstr(mn_last_error(), "/nonexistent/gt.json"), "%s", mn_last_error());
}

/* ---- the command ---------------------------------------------------------------------------------------------- */

/* Runs `mutualnet coco-eval args...` in-process; returns its exit status, stdout in out and stderr in err
 * (malloc'd; err may be NULL). */
static int run_cmd_err(char **out, char **err, int argc, char **argv)
{
    char opath[] = "/tmp/mn_coco_out_XXXXXX", epath[] = "/tmp/mn_coco_err_XXXXXX";
    int ofd = mkstemp(opath), efd = mkstemp(epath);
    cr_assert(ofd >= 0 && efd >= 0);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(ofd, 1);
    dup2(efd, 2);
    int status = mn_cmd_coco_eval(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    for (int pass = 0; pass < 2; pass++) {
        int fd = pass ? efd : ofd;
        off_t n = lseek(fd, 0, SEEK_END);
        lseek(fd, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        cr_assert_eq(read(fd, buf, (size_t)n), n);
        buf[n] = 0;
        close(fd);
        if (pass) {
            /* keep stderr visible in the test log */
            fputs(buf, stderr);
            if (err) *err = buf;
            else free(buf);
        } else {
            *out = buf;
        }
    }
    unlink(opath);
    unlink(epath);
    return status;
}

static int run_cmd(char **out, int argc, char **argv) { return run_cmd_err(out, NULL, argc, argv); }

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "key %s missing", key);
    return v->valuedouble;
}

Test(coco_cmd, prints_the_summary_and_per_category)
{
    /* tests/data/coco_eval: cat (id 1) = the tie case (AP 255/1010), dog (id 2) one exact det on a 40x40 gt
     * (AP 1-2^-52), bird (id 3) no gt but a det (-1). Means over the (T, R, K) entries: AP = (255 +
     * 1010 (1-2^-52)) / 2020 ~ 1265/2020; small: cat only (255/1010); medium: dog only; no large.
     * Recalls: cat .5, dog 1 at every threshold and maxDets -> AR = .75. */
    char gt[512], res[512];
    snprintf(gt, sizeof gt, "%s/tests/data/coco_eval/gt.json", MN_SOURCE_DIR);
    snprintf(res, sizeof res, "%s/tests/data/coco_eval/results.json", MN_SOURCE_DIR);
    char *argv[] = {"coco-eval", gt, res, "--per-category", NULL};
    char *out;
    cr_assert_eq(run_cmd(&out, 4, argv), MN_EXIT_OK);
    cJSON *o = cJSON_Parse(out);
    cr_assert(o, "output is not JSON: %s", out);
    static const char *const keys[] = {"AP", "AP50", "AP75", "APs", "APm", "APl",
                                       "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
    const double want[12] = {1265.0 / 2020, 1265.0 / 2020, 1265.0 / 2020, 255.0 / 1010, 1, -1, .75, .75, .75, .5, 1, -1};
    for (int i = 0; i < 12; i++)
        cr_expect(fabs(num(o, keys[i]) - want[i]) < 1e-12, "%s = %.17g, expected %.17g", keys[i], num(o, keys[i]),
                  want[i]);
    /* the JSON carries full precision: the tie case is exact */
    cr_expect_eq(num(o, "APs"), 255.0 / 1010.0);
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(o, "per_category");
    cr_assert(cJSON_IsArray(pc) && cJSON_GetArraySize(pc) == 3);
    const char *names[3] = {"cat", "dog", "bird"};
    const double ap[3] = {255.0 / 1010, 1, -1};
    for (int k = 0; k < 3; k++) {
        const cJSON *e = cJSON_GetArrayItem(pc, k);
        cr_expect_eq(num(e, "category_id"), k + 1);
        cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, names[k]);
        cr_expect(fabs(num(e, "AP") - ap[k]) < 1e-12, "category %d AP %.17g", k + 1, num(e, "AP"));
    }
    cJSON_Delete(o);
    free(out);
    /* without --per-category there is no list */
    char *argv2[] = {"coco-eval", gt, res, NULL};
    cr_assert_eq(run_cmd(&out, 3, argv2), MN_EXIT_OK);
    o = cJSON_Parse(out);
    cr_assert(o);
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "per_category"));
    cr_expect_eq(cJSON_GetArraySize(o), 12);
    cJSON_Delete(o);
    free(out);
}

Test(coco_cmd, exit_statuses)
{
    char gt[512], bad_img[512], no_score[512];
    snprintf(gt, sizeof gt, "%s/tests/data/coco_eval/gt.json", MN_SOURCE_DIR);
    snprintf(bad_img, sizeof bad_img, "%s/tests/data/coco_eval/results_unknown_image.json", MN_SOURCE_DIR);
    snprintf(no_score, sizeof no_score, "%s/tests/data/coco_eval/results_missing_score.json", MN_SOURCE_DIR);
    char *out;
    char *help[] = {"coco-eval", "--help", NULL};
    cr_expect_eq(run_cmd(&out, 2, help), MN_EXIT_OK);
    cr_expect(strstr(out, "usage: mutualnet coco-eval"), "%s", out);
    free(out);
    char *one[] = {"coco-eval", gt, NULL};
    cr_expect_eq(run_cmd(&out, 2, one), MN_EXIT_USAGE);
    free(out);
    char *opt[] = {"coco-eval", gt, gt, "--bogus", NULL};
    cr_expect_eq(run_cmd(&out, 4, opt), MN_EXIT_USAGE);
    free(out);
    char *three[] = {"coco-eval", gt, gt, gt, NULL};
    cr_expect_eq(run_cmd(&out, 4, three), MN_EXIT_USAGE);
    free(out);
    char *unk[] = {"coco-eval", gt, bad_img, NULL};
    cr_expect_eq(run_cmd(&out, 3, unk), MN_EXIT_FAIL);
    cr_expect_eq(out[0], 0, "nothing on stdout on failure");
    cr_expect(strstr(mn_last_error(), "image_id 7"), "%s", mn_last_error());
    free(out);
    char *nos[] = {"coco-eval", gt, no_score, NULL};
    cr_expect_eq(run_cmd(&out, 3, nos), MN_EXIT_FAIL);
    cr_expect(strstr(mn_last_error(), "results[1]"), "%s", mn_last_error());
    free(out);
    char *missing[] = {"coco-eval", "/nonexistent/gt.json", no_score, NULL};
    cr_expect_eq(run_cmd(&out, 3, missing), MN_EXIT_FAIL);
    free(out);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "create %s", path);
    fputs(text, f);
    fclose(f);
}

Test(coco_cmd, unknown_categories_warn_or_fail_with_strict)
{
    char gt[] = "/tmp/mn_coco_gt_XXXXXX", res[] = "/tmp/mn_coco_res_XXXXXX";
    close(mkstemp(gt));
    close(mkstemp(res));
    write_file(gt, TWO_CATS);
    write_file(res, SHIFTED_RESULTS);
    char *out, *err;
    char *argv[] = {"coco-eval", gt, res, NULL};
    cr_assert_eq(run_cmd_err(&out, &err, 3, argv), MN_EXIT_OK);
    cJSON *o = cJSON_Parse(out);
    cr_assert(o, "output is not JSON: %s", out);
    cr_expect_eq(num(o, "AP"), 0.25, "the numbers of the hand-worked case above");
    cr_expect_eq(num(o, "AR100"), 0.5);
    cJSON_Delete(o);
    cr_expect(strstr(err, "warning") && strstr(err, res) && strstr(err, "1 of 3 results") && strstr(err, "(id 0)") &&
                  strstr(err, gt) && strstr(err, "--strict"),
              "%s", err);
    free(out);
    free(err);

    char *strict[] = {"coco-eval", gt, res, "--strict", NULL};
    cr_assert_eq(run_cmd_err(&out, &err, 4, strict), MN_EXIT_FAIL);
    cr_expect_eq(out[0], 0, "nothing on stdout on failure");
    cr_expect(strstr(err, "1 of 3 results") && strstr(err, "results[0]") && strstr(err, "--strict refuses"), "%s",
              err);
    cr_expect_null(strstr(err, "warning"), "%s", err);
    free(out);
    free(err);

    /* more than 20 distinct ids: the first 20 and a count */
    char text[8192];
    int n = snprintf(text, sizeof text, "[");
    for (int k = 0; k < 25; k++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"image_id\": 1, \"category_id\": %d, \"bbox\": [0, 0, 1, "
                      "1], \"score\": 0.5}", k ? ", " : "", 100 + k);
    snprintf(text + n, sizeof text - (size_t)n, "]");
    write_file(res, text);
    cr_assert_eq(run_cmd_err(&out, &err, 3, argv), MN_EXIT_OK);
    cr_expect(strstr(err, "25 of 25 results") && strstr(err, "(ids 100, 101,") && strstr(err, "119 and 5 more"), "%s",
              err);
    free(out);
    free(err);
    unlink(gt);
    unlink(res);
}

/* ---- real data ------------------------------------------------------------------------------------------------ */

Test(coco_real, coco128_gt_boxes_as_results, .init = setup)
{
    char path[512];
    snprintf(path, sizeof path, "%s/coco128/annotations/instances_val2017.json", MN_SHARED_DATA);
    if (access(path, R_OK) != 0) cr_skip_test("COCO128 not found at %s (shared data absent)", path);
    mn_coco_gt gt;
    cr_assert_eq(mn_coco_gt_load(&gt, path), 0, "%s", mn_last_error());
    cr_assert_eq(gt.n_imgs, 128);
    cr_assert_eq(gt.n_cats, 80);
    cr_assert_eq(gt.n_anns, 939);
    /* every non-crowd gt box becomes a result with score 1, in file order */
    mn_coco_dets d = {0};
    for (int i = 0; i < gt.n_anns; i++)
        if (!gt.anns[i].iscrowd) add(&d, gt.anns[i].image_id, gt.anns[i].category_id, gt.anns[i].bbox[0],
                                     gt.anns[i].bbox[1], gt.anns[i].bbox[2], gt.anns[i].bbox[3], 1.0);
    mn_coco_eval ev;
    double s[MN_COCO_NSTATS];
    run_eval(&ev, s, &gt, &d);
    /* "all" areas: every regular gt is the best match (IoU ~1) of its own box at every threshold, so the
     * ranking has no false positive: AP = AP50 = AP75 = 1 up to the 1-2^-52 of single-gt categories, and
     * AR100 = 1 exactly (no image has more than 100 boxes of one category). Categories without gt (9 of 80
     * here; none is crowd-only) are -1 and left out. */
    expect_stat(s, MN_COCO_AP, 1, 1e-12);
    expect_stat(s, MN_COCO_AP50, 1, 1e-12);
    expect_stat(s, MN_COCO_AP75, 1, 1e-12);
    expect_stat(s, MN_COCO_AR100, 1, 0);
    /* by area range: boxes whose gt is out of range land on their own (ignored) gt, so these are 1 as well
     * (checked against a numpy transcription of COCOeval while writing this test) */
    expect_stat(s, MN_COCO_APS, 1, 1e-12);
    expect_stat(s, MN_COCO_APM, 1, 1e-12);
    expect_stat(s, MN_COCO_APL, 1, 1e-12);
    expect_stat(s, MN_COCO_ARS, 1, 0);
    expect_stat(s, MN_COCO_ARM, 1, 0);
    expect_stat(s, MN_COCO_ARL, 1, 0);
    /* AR1 / AR10: with tied scores each image keeps its first 1 / 10 boxes per category, each a TP, so a
     * category's recall is sum over images of min(n_img, maxDet) / n; averaged over the categories with gt
     * (the same at all 10 thresholds) */
    int *n = calloc((size_t)gt.n_cats, sizeof(int));
    int *per_img = calloc((size_t)gt.n_cats * gt.n_imgs, sizeof(int));
    for (int i = 0; i < gt.n_anns; i++) {
        if (gt.anns[i].iscrowd) continue;
        int k = mn_coco_gt_cat_index(&gt, gt.anns[i].category_id), im = mn_coco_gt_img_index(&gt, gt.anns[i].image_id);
        n[k]++;
        per_img[k * gt.n_imgs + im]++;
    }
    double ar1 = 0, ar10 = 0;
    int with_gt = 0;
    for (int k = 0; k < gt.n_cats; k++) {
        if (!n[k]) {
            cr_expect_eq(mn_coco_category_ap(&ev, k), -1.0, "category %lld has no gt", (long long)gt.cats[k].id);
            continue;
        }
        cr_expect(fabs(mn_coco_category_ap(&ev, k) - 1) < 1e-12, "category %lld", (long long)gt.cats[k].id);
        int c1 = 0, c10 = 0;
        for (int im = 0; im < gt.n_imgs; im++) {
            int c = per_img[k * gt.n_imgs + im];
            c1 += c < 1 ? c : 1;
            c10 += c < 10 ? c : 10;
        }
        ar1 += (double)c1 / n[k];
        ar10 += (double)c10 / n[k];
        with_gt++;
    }
    cr_expect_eq(with_gt, 71);
    expect_stat(s, MN_COCO_AR1, ar1 / with_gt, 1e-12);
    expect_stat(s, MN_COCO_AR10, ar10 / with_gt, 1e-12);
    cr_expect_lt(s[MN_COCO_AR1], 0.7, "AR1 must reflect the per-image cut (%g)", s[MN_COCO_AR1]);
    free(n);
    free(per_img);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&d);
    mn_coco_gt_free(&gt);
}
