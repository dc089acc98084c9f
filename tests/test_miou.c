/* mIoU evaluator: hand-computed confusion matrices, ignore handling, absent classes, invalid predictions,
 * and the miou command on folders of PNGs written here (plus its refusals). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "mn/image.h"
#include "mn/miou.h"
/* the command is compiled into this test so it can be run in-process */
#include "tools/args.c"
#include "tools/cmd_miou.c"

static void expect_near(double got, double want, const char *what)
{
    cr_expect(fabs(got - want) <= 1e-15, "%s = %.17g, expected %.17g", what, got, want);
}

/* ---- the accumulator and the scores --------------------------------------------------------------------- */

/* 3 classes, 10 pixels, 2 of them ignored (255):
 *   gt    0 0 0 1 1 1 2 2 255 255
 *   pred  0 0 1 1 1 0 2 1  0   2
 * rows = gt, columns = pred:  gt0 [2 1 0]  gt1 [1 2 0]  gt2 [0 1 1]
 * TP 2 2 1; gt pixels 3 3 2; predicted pixels (column sums) 3 4 1
 * IoU = TP / (gt + pred - TP): 2/4, 2/5, 1/2 -> mIoU = (.5 + .4 + .5) / 3
 * Acc = TP / gt: 2/3, 2/3, 1/2 -> mAcc = 11/18; aAcc = 5/8 */
static const uint8_t GT10[10] = {0, 0, 0, 1, 1, 1, 2, 2, 255, 255};
static const uint8_t PR10[10] = {0, 0, 1, 1, 1, 0, 2, 1, 0, 2};

Test(miou, hand_computed_matrix)
{
    mn_confusion c;
    cr_assert_eq(mn_confusion_init(&c, 3), 0);
    cr_assert_eq(mn_confusion_add_u8(&c, PR10, GT10, 10, 255), 0, "%s", mn_last_error());
    const int64_t want[3][4] = {{2, 1, 0, 0}, {1, 2, 0, 0}, {0, 1, 1, 0}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) cr_expect_eq(c.count[i * 4 + j], want[i][j], "count[%d][%d]", i, j);
    mn_miou_result r;
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    expect_near(r.iou[0], 0.5, "IoU0");
    expect_near(r.iou[1], 0.4, "IoU1");
    expect_near(r.iou[2], 0.5, "IoU2");
    expect_near(r.miou, (0.5 + 0.4 + 0.5) / 3, "mIoU");
    expect_near(r.acc[0], 2.0 / 3, "Acc0");
    expect_near(r.acc[2], 0.5, "Acc2");
    expect_near(r.macc, 11.0 / 18, "mAcc");
    expect_near(r.aacc, 5.0 / 8, "aAcc");
    cr_expect_eq(r.pixels, 8);
    mn_miou_result_free(&r);
    /* accumulating the same batch twice doubles the counts, not the scores */
    cr_assert_eq(mn_confusion_add_u8(&c, PR10, GT10, 10, 255), 0);
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    cr_expect_eq(c.count[0], 4);
    expect_near(r.miou, (0.5 + 0.4 + 0.5) / 3, "mIoU after two batches");
    mn_miou_result_free(&r);
    mn_confusion_free(&c);
}

Test(miou, absent_class_is_nan_and_left_out)
{
    /* same pixels with 5 classes: classes 3 and 4 never occur -> NaN IoU and Acc, means unchanged */
    mn_confusion c;
    cr_assert_eq(mn_confusion_init(&c, 5), 0);
    cr_assert_eq(mn_confusion_add_u8(&c, PR10, GT10, 10, 255), 0);
    mn_miou_result r;
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    cr_expect(isnan(r.iou[3]) && isnan(r.iou[4]) && isnan(r.acc[3]));
    expect_near(r.miou, (0.5 + 0.4 + 0.5) / 3, "mIoU");
    expect_near(r.macc, 11.0 / 18, "mAcc");
    mn_miou_result_free(&r);
    /* a class only predicted (a gt-0 pixel predicted 3): union 1, IoU 0, so it joins the mIoU mean; it has
     * no gt pixels, so it stays out of mAcc. gt0 now [2 1 0 1]: IoU0 = 2/(4+3-2) = .4, Acc0 = 2/4 */
    const uint8_t g = 0, p = 3;
    cr_assert_eq(mn_confusion_add_u8(&c, &p, &g, 1, 255), 0);
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    expect_near(r.iou[3], 0.0, "IoU3");
    cr_expect(isnan(r.acc[3]));
    expect_near(r.miou, (0.4 + 0.4 + 0.5 + 0.0) / 4, "mIoU with a predicted-only class");
    expect_near(r.macc, (0.5 + 2.0 / 3 + 0.5) / 3, "mAcc");
    expect_near(r.aacc, 5.0 / 9, "aAcc");
    mn_miou_result_free(&r);
    mn_confusion_free(&c);
}

Test(miou, out_of_range_predictions_are_wrong)
{
    /* 2 classes; gt 0 1 1, pred 0 7 -3 (i32): both class-1 pixels are errors that predict no class.
     * Class 0: TP 1, gt 1, pred 1 -> IoU 1. Class 1: TP 0, gt 2, pred 0 -> IoU 0 (union 2), Acc 0.
     * mIoU .5, aAcc 1/3, mAcc .5 */
    mn_confusion c;
    cr_assert_eq(mn_confusion_init(&c, 2), 0);
    const int32_t gt[3] = {0, 1, 1}, pred[3] = {0, 7, -3};
    cr_assert_eq(mn_confusion_add_i32(&c, pred, gt, 3, 255), 0, "%s", mn_last_error());
    cr_expect_eq(c.count[1 * 3 + 2], 2, "the extra column holds invalid predictions");
    mn_miou_result r;
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    expect_near(r.iou[0], 1.0, "IoU0");
    expect_near(r.iou[1], 0.0, "IoU1");
    expect_near(r.miou, 0.5, "mIoU");
    expect_near(r.aacc, 1.0 / 3, "aAcc");
    expect_near(r.macc, 0.5, "mAcc");
    mn_miou_result_free(&r);
    mn_confusion_free(&c);
}

Test(miou, ignore_values_and_bad_ground_truth)
{
    mn_confusion c;
    cr_assert_eq(mn_confusion_init(&c, 3), 0);
    /* without an ignore value, 255 is not a class: refused, naming pixel 8, and nothing counted */
    cr_expect_eq(mn_confusion_add_u8(&c, PR10, GT10, 10, -1), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "value 255 at pixel 8"), "%s", mn_last_error());
    for (int i = 0; i < 12; i++) cr_expect_eq(c.count[i], 0);
    /* ignoring class 0 instead: gt-0 pixels skipped, and 255 is again an error */
    cr_expect_eq(mn_confusion_add_u8(&c, PR10, GT10, 10, 0), MN_EINVAL);
    cr_assert_eq(mn_confusion_add_u8(&c, PR10 + 3, GT10 + 3, 5, 0), 0);
    /* gt 1 1 1 2 2 / pred 1 1 0 2 1: rows gt1 [1 2 0], gt2 [0 1 1]; no gt0 row */
    const int64_t want[3][4] = {{0, 0, 0, 0}, {1, 2, 0, 0}, {0, 1, 1, 0}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) cr_expect_eq(c.count[i * 4 + j], want[i][j], "count[%d][%d]", i, j);
    /* class 0 is still predicted once: IoU0 = 0 / (0 + 1 - 0) = 0, Acc0 undefined */
    mn_miou_result r;
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    expect_near(r.iou[0], 0.0, "IoU0");
    cr_expect(isnan(r.acc[0]));
    mn_miou_result_free(&r);
    /* nothing counted at all: every figure undefined */
    mn_confusion_reset(&c);
    cr_assert_eq(mn_miou_compute(&r, &c), 0);
    cr_expect(isnan(r.miou) && isnan(r.aacc) && isnan(r.macc));
    mn_miou_result_free(&r);
    mn_confusion_free(&c);
    cr_expect_eq(mn_confusion_init(&c, 0), MN_EINVAL);
}

Test(miou, merge_adds_matrices)
{
    mn_confusion a, b, whole;
    cr_assert_eq(mn_confusion_init(&a, 3), 0);
    cr_assert_eq(mn_confusion_init(&b, 3), 0);
    cr_assert_eq(mn_confusion_init(&whole, 3), 0);
    cr_assert_eq(mn_confusion_add_u8(&a, PR10, GT10, 4, 255), 0);
    cr_assert_eq(mn_confusion_add_u8(&b, PR10 + 4, GT10 + 4, 6, 255), 0);
    cr_assert_eq(mn_confusion_add_u8(&whole, PR10, GT10, 10, 255), 0);
    cr_assert_eq(mn_confusion_merge(&a, &b), 0);
    for (int i = 0; i < 12; i++) cr_expect_eq(a.count[i], whole.count[i], "count %d", i);
    mn_confusion_free(&b);
    cr_assert_eq(mn_confusion_init(&b, 4), 0);
    cr_expect_eq(mn_confusion_merge(&a, &b), MN_EINVAL);
    mn_confusion_free(&a);
    mn_confusion_free(&b);
    mn_confusion_free(&whole);
}

/* ---- the command on folders ----------------------------------------------------------------------------- */

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/mn_test_miou_XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_dir(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void sub(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static void write_png(const char *sub_dir, const char *name, int w, int h, int c, const uint8_t *px)
{
    char d[512], path[600];
    sub(d, sizeof d, sub_dir);
    mkdir(d, 0755);
    snprintf(path, sizeof path, "%s/%s", d, name);
    mn_image img;
    cr_assert_eq(mn_image_alloc(&img, w, h, c), 0);
    memcpy(img.data, px, (size_t)w * h * c);
    cr_assert_eq(mn_image_save(path, &img, 0), 0, "%s", mn_last_error());
    mn_image_free(&img);
}

/* Two pairs, 4 classes:
 *   a.png 4x2  gt 0 0 1 1 / 2 2 255 255   pred 0 1 1 1 / 2 0 2 2
 *   b.png 2x2  gt 0 1 / 1 1               pred 0 1 / 1 0
 * rows gt0 [2 1 0] gt1 [1 4 0] gt2 [1 0 1]; TP 2 4 1, gt 3 5 2, pred 4 5 1 (10 pixels counted)
 * IoU 2/5, 4/6, 1/2, class 3 absent (null); mIoU = (.4 + 2/3 + .5) / 3
 * Acc 2/3, 4/5, 1/2; mAcc = (2/3 + .8 + .5) / 3; aAcc = 7/10 */
static const uint8_t GA[8] = {0, 0, 1, 1, 2, 2, 255, 255}, PA[8] = {0, 1, 1, 1, 2, 0, 2, 2};
static const uint8_t GB[4] = {0, 1, 1, 1}, PB[4] = {0, 1, 1, 0};

static void write_pairs(void)
{
    write_png("gt", "a.png", 4, 2, 1, GA);
    write_png("gt", "b.png", 2, 2, 1, GB);
    write_png("pred", "a.png", 4, 2, 1, PA);
    write_png("pred", "b.png", 2, 2, 1, PB);
}

/* Runs `mutualnet miou args...` in-process with stdout captured; returns the exit status. */
static int run_cmd(char **out, int argc, char **argv)
{
    char opath[600];
    sub(opath, sizeof opath, "stdout.txt");
    FILE *f = fopen(opath, "w+");
    cr_assert(f);
    fflush(stdout);
    int saved = dup(1);
    dup2(fileno(f), 1);
    int status = mn_cmd_miou(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long n = ftell(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    cr_assert_eq(fread(*out, 1, (size_t)n, f), (size_t)n);
    (*out)[n] = 0;
    fclose(f);
    remove(opath);
    return status;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "key %s missing or not a number", key);
    return v->valuedouble;
}

TestSuite(miou_cmd, .init = make_dir, .fini = remove_dir);

Test(miou_cmd, scores_a_folder)
{
    write_pairs();
    char gt[300], pred[300];
    sub(gt, sizeof gt, "gt");
    sub(pred, sizeof pred, "pred");
    char *argv[] = {"miou", "--gt", gt, "--pred", pred, "--num-classes", "4", "--ignore", "255", NULL};
    char *out;
    cr_assert_eq(run_cmd(&out, 9, argv), MN_EXIT_OK);
    cJSON *o = cJSON_Parse(out);
    cr_assert(o, "not JSON: %s", out);
    expect_near(num(o, "mIoU"), (0.4 + 2.0 / 3 + 0.5) / 3, "mIoU");
    expect_near(num(o, "aAcc"), 0.7, "aAcc");
    expect_near(num(o, "mAcc"), (2.0 / 3 + 0.8 + 0.5) / 3, "mAcc");
    cr_expect_eq(num(o, "images"), 2);
    const cJSON *iou = cJSON_GetObjectItemCaseSensitive(o, "IoU");
    cr_assert(cJSON_IsArray(iou) && cJSON_GetArraySize(iou) == 4);
    const double want[3] = {0.4, 2.0 / 3, 0.5};
    for (int k = 0; k < 3; k++) expect_near(cJSON_GetArrayItem(iou, k)->valuedouble, want[k], "IoU[k]");
    cr_expect(cJSON_IsNull(cJSON_GetArrayItem(iou, 3)), "class 3 never occurs: null");
    cJSON_Delete(o);
    free(out);
    /* the default ignore value is 255 too */
    char *argv2[] = {"miou", "--gt", gt, "--pred", pred, "--num-classes", "4", NULL};
    cr_assert_eq(run_cmd(&out, 7, argv2), MN_EXIT_OK);
    o = cJSON_Parse(out);
    cr_assert(o);
    expect_near(num(o, "aAcc"), 0.7, "aAcc");
    cJSON_Delete(o);
    free(out);
    /* --ignore -1: 255 in the ground truth is then an error naming the file and pixel */
    char *argv3[] = {"miou", "--gt", gt, "--pred", pred, "--num-classes", "4", "--ignore", "-1", NULL};
    cr_expect_eq(run_cmd(&out, 9, argv3), MN_EXIT_FAIL);
    cr_expect(strstr(mn_last_error(), "a.png") && strstr(mn_last_error(), "(x 2, y 1)"), "%s", mn_last_error());
    free(out);
}

Test(miou_cmd, refuses_mismatched_sizes)
{
    write_pairs();
    const uint8_t px[6] = {0};
    write_png("pred", "b.png", 3, 2, 1, px);
    char gt[300], pred[300];
    sub(gt, sizeof gt, "gt");
    sub(pred, sizeof pred, "pred");
    char *argv[] = {"miou", "--gt", gt, "--pred", pred, "--num-classes", "4", NULL};
    char *out;
    cr_expect_eq(run_cmd(&out, 7, argv), MN_EXIT_FAIL);
    cr_expect_eq(out[0], 0, "nothing printed on failure");
    cr_expect(strstr(mn_last_error(), "pred/b.png") && strstr(mn_last_error(), "3x2") && strstr(mn_last_error(), "2x2"),
              "%s", mn_last_error());
    free(out);
}

Test(miou_cmd, refuses_missing_and_extra_files)
{
    write_pairs();
    char gt[300], pred[300], path[400];
    sub(gt, sizeof gt, "gt");
    sub(pred, sizeof pred, "pred");
    snprintf(path, sizeof path, "%s/b.png", pred);
    cr_assert_eq(remove(path), 0);
    char *argv[] = {"miou", "--gt", gt, "--pred", pred, "--num-classes", "4", NULL};
    char *out;
    cr_expect_eq(run_cmd(&out, 7, argv), MN_EXIT_FAIL);
    cr_expect(strstr(mn_last_error(), "missing prediction") && strstr(mn_last_error(), "pred/b.png"), "%s",
              mn_last_error());
    free(out);
    /* a prediction with no ground truth */
    write_png("pred", "b.png", 2, 2, 1, PB);
    write_png("pred", "c.png", 2, 2, 1, PB);
    cr_expect_eq(run_cmd(&out, 7, argv), MN_EXIT_FAIL);
    cr_expect(strstr(mn_last_error(), "pred/c.png") && strstr(mn_last_error(), "no ground truth"), "%s",
              mn_last_error());
    free(out);
    /* an RGB prediction is not an index image */
    snprintf(path, sizeof path, "%s/c.png", pred);
    remove(path);
    const uint8_t rgb[12] = {0};
    write_png("pred", "b.png", 2, 2, 3, rgb);
    cr_expect_eq(run_cmd(&out, 7, argv), MN_EXIT_FAIL);
    cr_expect(strstr(mn_last_error(), "b.png") && strstr(mn_last_error(), "channels"), "%s", mn_last_error());
    free(out);
    /* a folder that does not exist */
    char *argv2[] = {"miou", "--gt", "/nonexistent/gt", "--pred", pred, "--num-classes", "4", NULL};
    cr_expect_eq(run_cmd(&out, 7, argv2), MN_EXIT_FAIL);
    cr_expect(strstr(mn_last_error(), "/nonexistent/gt"), "%s", mn_last_error());
    free(out);
}

Test(miou_cmd, usage_errors)
{
    char *out;
    char *help[] = {"miou", "--help", NULL};
    cr_expect_eq(run_cmd(&out, 2, help), MN_EXIT_OK);
    cr_expect(strstr(out, "usage: mutualnet miou"), "%s", out);
    free(out);
    char *no_n[] = {"miou", "--gt", "a", "--pred", "b", NULL};
    cr_expect_eq(run_cmd(&out, 5, no_n), MN_EXIT_USAGE);
    free(out);
    char *zero[] = {"miou", "--gt", "a", "--pred", "b", "--num-classes", "0", NULL};
    cr_expect_eq(run_cmd(&out, 7, zero), MN_EXIT_USAGE);
    free(out);
    char *big_ignore[] = {"miou", "--gt", "a", "--pred", "b", "--num-classes", "3", "--ignore", "300", NULL};
    cr_expect_eq(run_cmd(&out, 9, big_ignore), MN_EXIT_USAGE);
    free(out);
    char *dangling[] = {"miou", "--gt", NULL};
    cr_expect_eq(run_cmd(&out, 2, dangling), MN_EXIT_USAGE);
    free(out);
    char *unknown[] = {"miou", "--frobnicate", NULL};
    cr_expect_eq(run_cmd(&out, 2, unknown), MN_EXIT_USAGE);
    free(out);
}
