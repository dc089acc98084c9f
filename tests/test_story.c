/* mutualnet story: the picture is the documented grid (mn_viz_grid) of exactly the overlays predict
 * writes for each image at each budget, for a segmenter and a detector whose query tables make
 * each budget pick another configuration; a classifier, a budget nothing fits, missing arguments
 * and too many budgets or images are refused with the documented exit statuses and no picture. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"

#include "mn/cls_model.h"
#include "mn/det_model.h"
#include "mn/image.h"
#include "mn/seg_model.h"
#include "mn/viz.h"
/* story and predict are compiled into this test (tests/meson.build) and run in-process */
#include "tools/commands.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_story_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(story, .init = make_dir, .fini = remove_dir);

static void sub(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Runs a command in-process; returns its exit status, its stderr in *err (malloc'd). */
static int run_cmd(int (*cmd)(int, char **), char **err, int argc, char **argv)
{
    char epath[128];
    sub(epath, sizeof epath, "stderr.txt");
    return tc_run_cmd(cmd, epath, err, argc, argv);
}

static void write_image(const char *name, int w, int h, uint8_t seed)
{
    mn_image img;
    cr_assert_eq(mn_image_alloc(&img, w, h, 3), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img.data[i] = (uint8_t)(i * 31 + seed + (i / 97) * 7);
    char p[256];
    sub(p, sizeof p, name);
    cr_assert_eq(mn_image_save(p, &img, 90), 0, "%s", mn_last_error());
    mn_image_free(&img);
}

static void small_config(mn_config *c, enum mn_task_kind task)
{
    mn_config_default(c);
    c->task = task;
    const char *kind = task == MN_TASK_DETECTION ? "coco" : task == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder";
    strcpy(c->data.kind, kind);
    strcpy(c->train.out_dir, "runs/tiny_story/");
    c->model.aspp_channels = 16;
    c->model.low_level_channels = 16;
    c->det.fpn_channels = 16;
    c->det.box_hidden = 32;
    c->det.short_side = 64;
    c->det.max_side = 96;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
}

/* A configuration of the query table and the budget (MACs, as text) that picks it. */
typedef struct entry {
    float width;
    int h, w;              /* segmentation input; detection: short side, max side */
    char budget[32];
} entry;

/* Each entry scores better than the one before, so a budget of exactly entry k's cost picks entry k. */
static void add_entries(mn_query_table *q, const float *stats, entry *e /* (3) */, const int64_t *macs /* (3) */)
{
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(mn_query_add(q, e[k].width, e[k].h, e[k].w, macs[k], 0.2 + 0.1 * k, stats), 0);
        snprintf(e[k].budget, sizeof e[k].budget, "%lld", (long long)macs[k]);
    }
}

static void save_segmenter(const char *path, entry *e /* (3) */)
{
    mn_config c;
    small_config(&c, MN_TASK_SEGMENTATION);
    const char *names[2] = {"background", "thing"};
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 2, names, 1), 0, "%s", mn_last_error());
    int64_t macs[3];
    for (int k = 0; k < 3; k++) cr_assert_eq(mn_seg_flops(m.net, e[k].width, e[k].h, e[k].w, &macs[k], NULL), 0);
    add_entries(&m.table, m.train_stats, e, macs);
    cr_assert_eq(mn_seg_model_save(&m, path, NULL, 0), 0, "%s", mn_last_error());
    mn_seg_model_free(&m);
}

static void save_detector(const char *path, entry *e /* (3) */)
{
    mn_config c;
    small_config(&c, MN_TASK_DETECTION);
    const char *names[3] = {"background", "cat", "dog"};
    int ids[3] = {0, 17, 18};
    mn_det_model m;
    cr_assert_eq(mn_det_model_create(&m, &c, 3, names, ids, 48, 64, 1), 0, "%s", mn_last_error());
    int64_t macs[3];
    for (int k = 0; k < 3; k++) cr_assert_eq(mn_det_model_flops(&m, e[k].width, e[k].h, &macs[k]), 0);
    add_entries(&m.table, m.train_stats, e, macs);
    cr_assert_eq(mn_det_model_save(&m, path, NULL, 0), 0, "%s", mn_last_error());
    mn_det_model_free(&m);
}

/* Where the documented grid layout puts things (mn/viz.h, mn_viz_grid). */
typedef struct grid_place {
    int col_x[3], col_w[3], row_y[2], row_h[2];
    int cap_h, top, w, h;
} grid_place;

static grid_place place_of(const mn_image *cells /* (rows, cols) */, int rows, int cols, const char *caption)
{
    grid_place g = {0};
    const int G = MN_VIZ_GRID_GAP;
    int max_w = 0, max_h = 0, x = 0, y = 0;
    for (int c = 0; c < cols; c++) {
        for (int r = 0; r < rows; r++)
            if (cells[r * cols + c].w > g.col_w[c]) g.col_w[c] = cells[r * cols + c].w;
        if (g.col_w[c] > max_w) max_w = g.col_w[c];
        g.col_x[c] = x;
        x += g.col_w[c] + G;
    }
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++)
            if (cells[r * cols + c].h > g.row_h[r]) g.row_h[r] = cells[r * cols + c].h;
        if (g.row_h[r] > max_h) max_h = g.row_h[r];
        y += g.row_h[r] + G;
    }
    int s = mn_viz_text_scale(max_w, max_h);
    g.cap_h = 17 * s;
    g.top = g.cap_h + G;
    for (int r = 0, yy = g.top; r < rows; r++) {
        g.row_y[r] = yy;
        yy += g.row_h[r] + G;
    }
    g.w = x - G;
    int tw = mn_viz_text_width(caption, s) + 8 * s;
    if (tw > g.w) g.w = tw;
    g.h = g.top + y - G;
    return g;
}

static bool is_panel(const uint8_t *p) { return p[0] == 248 && p[1] == 248 && p[2] == 248; }

/* The caption bar is dark grey with white text; the gap below it is panel colour. */
static void expect_caption_bar(const mn_image *pic, const grid_place *g)
{
    int white = 0, other = 0;
    for (int y = 0; y < g->cap_h; y++)
        for (int x = 0; x < pic->w; x++) {
            const uint8_t *p = pic->data + ((size_t)y * pic->w + x) * 3;
            bool dark = p[0] == 40 && p[1] == 40 && p[2] == 40, light = p[0] == 255 && p[1] == 255 && p[2] == 255;
            white += light;
            other += !dark && !light;
        }
    cr_expect_gt(white, 50, "the caption is written in white");
    cr_expect_eq(other, 0, "the caption bar holds only its grey and white");
    for (int y = g->cap_h; y < g->top; y++)
        for (int x = 0; x < pic->w; x++)
            cr_assert(is_panel(pic->data + ((size_t)y * pic->w + x) * 3), "gap under the caption at (%d, %d)", x, y);
}

/* Every pixel of the picture outside the caption bar and the cells is panel colour. */
static void expect_panel_elsewhere(const mn_image *pic, const mn_image *cells /* (rows, cols) */, int rows, int cols,
                                   const grid_place *g)
{
    for (int y = g->top; y < pic->h; y++)
        for (int x = 0; x < pic->w; x++) {
            bool in_cell = false;
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    const mn_image *cell = &cells[r * cols + c];
                    in_cell |= x >= g->col_x[c] && x < g->col_x[c] + cell->w && y >= g->row_y[r] &&
                               y < g->row_y[r] + cell->h;
                }
            if (!in_cell)
                cr_assert(is_panel(pic->data + ((size_t)y * pic->w + x) * 3), "(%d, %d) is not panel colour", x, y);
        }
}

/* Runs story on two images at the three entries' budgets and checks its picture against predict's
 * overlays of the same images at the same budgets. */
static void expect_story_is_predicts_overlays(const char *ckpt, const entry *e /* (3) */, const char *caption)
{
    char pic_path[256], img0[256], img1[256];
    sub(pic_path, sizeof pic_path, "story.png");
    sub(img0, sizeof img0, "img0.png");
    sub(img1, sizeof img1, "img1.png");
    char *argv[] = {"story", "--checkpoint", (char *)ckpt, "--budget", (char *)e[0].budget, "--budget",
                    (char *)e[2].budget, "--budget", (char *)e[1].budget, "--score-threshold", "0.0",
                    "--out", pic_path, img0, img1};
    char *err;
    int status = run_cmd(mn_cmd_story, &err, 15, argv);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    free(err);
    const int order[3] = {0, 2, 1}; /* columns in the order the budgets were given */
    mn_image cells[6];
    for (int c = 0; c < 3; c++) {
        char out[256];
        snprintf(out, sizeof out, "%s/predict%d", dir, c);
        char *pargv[] = {"predict", "--checkpoint", (char *)ckpt, "--budget", (char *)e[order[c]].budget,
                         "--score-threshold", "0.0", "--out", out, img0, img1};
        status = run_cmd(mn_cmd_predict, &err, 11, pargv);
        cr_assert_eq(status, MN_EXIT_OK, "predict: status %d: %s", status, err);
        free(err);
        for (int r = 0; r < 2; r++) {
            char p[300];
            snprintf(p, sizeof p, "%s/img%d_overlay.png", out, r);
            cr_assert_eq(mn_image_load(p, 3, &cells[r * 3 + c]), 0, "%s", mn_last_error());
        }
    }
    mn_image pic;
    cr_assert_eq(mn_image_load(pic_path, 3, &pic), 0, "%s", mn_last_error());
    grid_place g = place_of(cells, 2, 3, caption);
    cr_assert_eq(pic.w, g.w);
    cr_assert_eq(pic.h, g.h);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 3; c++) {
            const mn_image *cell = &cells[r * 3 + c];
            for (int y = 0; y < cell->h; y++)
                cr_assert_eq(memcmp(pic.data + ((size_t)(g.row_y[r] + y) * pic.w + g.col_x[c]) * 3,
                                    cell->data + (size_t)y * cell->w * 3, (size_t)cell->w * 3), 0,
                             "row %d of cell (%d, %d) is not predict's overlay", y, r, c);
        }
    /* the budgets picked different configurations: their titles differ */
    cr_expect(cells[0].w != cells[1].w || memcmp(cells[0].data, cells[1].data, (size_t)cells[0].w * 17 * 3),
              "columns 0 and 1 show the same configuration");
    expect_caption_bar(&pic, &g);
    expect_panel_elsewhere(&pic, cells, 2, 3, &g);
    mn_image_free(&pic);
    for (int i = 0; i < 6; i++) mn_image_free(&cells[i]);
}

Test(story, segmenter_cells_are_predicts_overlays)
{
    char ckpt[256];
    sub(ckpt, sizeof ckpt, "seg.safetensors");
    entry e[3] = {{0.35f, 32, 32, ""}, {0.7f, 48, 48, ""}, {1.0f, 64, 64, ""}};
    save_segmenter(ckpt, e);
    write_image("img0.png", 40, 32, 1);
    write_image("img1.png", 56, 44, 2);
    expect_story_is_predicts_overlays(ckpt, e, "one set of weights at 3 budgets: tiny_story / seg.safetensors");
}

Test(story, detector_cells_are_predicts_overlays)
{
    char ckpt[256];
    sub(ckpt, sizeof ckpt, "det.safetensors");
    entry e[3] = {{0.35f, 32, 96, ""}, {0.7f, 48, 96, ""}, {1.0f, 64, 96, ""}};
    save_detector(ckpt, e);
    write_image("img0.png", 64, 48, 1);
    write_image("img1.png", 48, 60, 2);
    expect_story_is_predicts_overlays(ckpt, e, "one set of weights at 3 budgets: tiny_story / det.safetensors");
}

/* Runs story with argv and expects the exit status, a message containing want, and no picture. */
static void expect_refused(int argc, char **argv, int want_status, const char *want)
{
    char *err, pic[256];
    sub(pic, sizeof pic, "story.png");
    remove(pic);
    int status = run_cmd(mn_cmd_story, &err, argc, argv);
    cr_expect_eq(status, want_status, "status %d, expected %d: %s", status, want_status, err);
    cr_expect(strstr(err, want), "stderr lacks \"%s\":\n%s", want, err);
    cr_expect(!exists(pic), "a picture was written");
    free(err);
}

Test(story, refusals_and_their_exit_statuses)
{
    char seg[256], cls[256], pic[256], img[256];
    sub(seg, sizeof seg, "seg.safetensors");
    sub(cls, sizeof cls, "cls.safetensors");
    sub(pic, sizeof pic, "story.png");
    sub(img, sizeof img, "img0.png");
    entry e[3] = {{0.35f, 32, 32, ""}, {0.7f, 48, 48, ""}, {1.0f, 64, 64, ""}};
    save_segmenter(seg, e);
    write_image("img0.png", 40, 32, 1);
    mn_config c;
    small_config(&c, MN_TASK_CLASSIFICATION);
    const char *names[2] = {"cat", "dog"};
    mn_cls_model m;
    cr_assert_eq(mn_cls_model_create(&m, &c, 2, names, 1), 0, "%s", mn_last_error());
    cr_assert_eq(mn_cls_model_save(&m, cls, NULL, 0), 0, "%s", mn_last_error());
    mn_cls_model_free(&m);

    char *classifier[] = {"story", "--checkpoint", cls, "--budget", "1G", "--out", pic, img};
    expect_refused(8, classifier, MN_EXIT_USAGE, "is a classifier");
    char *too_small[] = {"story", "--checkpoint", seg, "--budget", "1G", "--budget", "1k", "--out", pic, img};
    expect_refused(10, too_small, MN_EXIT_FAIL, "no configuration fits 1e-06G MACs");
    char *no_budget[] = {"story", "--checkpoint", seg, "--out", pic, img};
    expect_refused(6, no_budget, MN_EXIT_USAGE, "at least one --budget");
    char *no_out[] = {"story", "--checkpoint", seg, "--budget", "1G", img};
    expect_refused(6, no_out, MN_EXIT_USAGE, "--out FILE");
    char *no_image[] = {"story", "--checkpoint", seg, "--budget", "1G", "--out", pic};
    expect_refused(7, no_image, MN_EXIT_USAGE, "at least one IMAGE");
    char *seven[] = {"story", "--checkpoint", seg, "--out", pic, "--budget", "1G", "--budget", "1G", "--budget", "1G",
                     "--budget", "1G", "--budget", "1G", "--budget", "1G", "--budget", "1G", img};
    expect_refused(20, seven, MN_EXIT_USAGE, "7 budgets and 1 image given");
    char *nine[] = {"story", "--checkpoint", seg, "--out", pic, "--budget", "1G",
                    img, img, img, img, img, img, img, img, img};
    expect_refused(16, nine, MN_EXIT_USAGE, "1 budget and 9 images given");
    char *bad_ext[] = {"story", "--checkpoint", seg, "--budget", "1G", "--out", "x.gif", img};
    expect_refused(8, bad_ext, MN_EXIT_USAGE, "written as .png or .jpg");
    char *width[] = {"story", "--checkpoint", seg, "--budget", "1G", "--width", "0.5", "--out", pic, img};
    expect_refused(10, width, MN_EXIT_USAGE, "unknown option --width");
    char missing[256];
    sub(missing, sizeof missing, "missing.png");
    char *unreadable[] = {"story", "--checkpoint", seg, "--budget", "1G", "--out", pic, img, missing};
    expect_refused(9, unreadable, MN_EXIT_FAIL, "missing.png: cannot open");
}
