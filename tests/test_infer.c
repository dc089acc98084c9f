/* The inference API (mn/infer.h): on tiny models of the three tasks, its label maps, boxes and
 * top-k equal what `mutualnet predict` writes for the same image at the same configuration
 * (default, --budget, --width/--size); selection by budget and by configuration, and their
 * refusals; strided input; calls on the wrong task; a compact exported checkpoint opens at its
 * configuration with the full one's outputs; two handles on two threads at once give what they
 * give one after the other. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common.h"
#include "tiny_models.h"

#include "mn/cls_eval.h"
#include "mn/export.h"
#include "mn/fileio.h"
#include "mn/image.h"
#include "mn/infer.h"
#include "mn/json.h"
#include "mn/model.h"
/* predict is compiled into this test (tests/meson.build) and run in-process */
#include "tools/commands.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_infer_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(infer, .init = make_dir, .fini = remove_dir);

static void sub(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* A fixture: a tiny model of the task with its query table, and a 40x30 image. */
typedef struct fixture {
    char ckpt[128], image[128], out[128];
    tm_entry e[TM_ENTRIES];
    mn_image img;
} fixture;

static void fixture_make(fixture *f, enum mn_task_kind task, bool with_table)
{
    sub(f->ckpt, sizeof f->ckpt, "model.safetensors");
    sub(f->image, sizeof f->image, "img.png");
    sub(f->out, sizeof f->out, "out");
    cr_assert_eq(tm_save(f->ckpt, task, with_table, f->e), 0, "%s", mn_last_error());
    cr_assert_eq(tm_write_image(f->image, 40, 30, 5), 0, "%s", mn_last_error());
    cr_assert_eq(mn_image_load(f->image, 3, &f->img), 0, "%s", mn_last_error());
}

static mn_infer *open_ok(const char *ckpt)
{
    char err[256] = "unset";
    mn_infer *inf = mn_infer_open(ckpt, err, sizeof err);
    cr_assert(inf, "%s", err);
    cr_assert_str_eq(err, "");
    return inf;
}

/* Runs `mutualnet predict --checkpoint CKPT --out OUT [extra...] IMAGE`; asserts it succeeds. */
static void predict(const fixture *f, char *const *extra, int n_extra)
{
    char *argv[16] = {"predict", "--checkpoint", (char *)f->ckpt, "--out", (char *)f->out};
    int argc = 5;
    for (int i = 0; i < n_extra; i++) argv[argc++] = extra[i];
    argv[argc++] = (char *)f->image;
    char epath[128], *err;
    sub(epath, sizeof epath, "stderr.txt");
    int status = tc_run_cmd(mn_cmd_predict, epath, &err, argc, argv);
    cr_assert_eq(status, 0, "predict failed (%d): %s", status, err);
    free(err);
}

/* The JSON predict wrote for the image (OUT/img_<what>.json). */
static cJSON *predict_json(const fixture *f, const char *what)
{
    char path[256];
    snprintf(path, sizeof path, "%s/img_%s.json", f->out, what);
    char *text;
    size_t n;
    cr_assert_eq(mn_read_file(path, 1 << 20, "predictions", &text, &n), 0, "%s", mn_last_error());
    cJSON *root;
    cr_assert_eq(mn_json_parse(text, n, path, &root), 0, "%s", mn_last_error());
    free(text);
    return root;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "%s", key);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsString(v), "%s", key);
    return v->valuestring;
}

/* The API's label map equals predict's label PNG, from packed and from strided pixels. */
static void expect_seg_matches(const fixture *f, mn_infer *inf, const char *what)
{
    char path[256];
    snprintf(path, sizeof path, "%s/img_labels.png", f->out);
    mn_image want;
    cr_assert_eq(mn_image_load_labels(path, &want), 0, "%s", mn_last_error());
    const int h = f->img.h, w = f->img.w, stride = 3 * w + 7;
    uint8_t *labels = malloc((size_t)h * w), *padded = calloc((size_t)h, (size_t)stride);
    cr_assert(labels && padded);
    cr_assert_eq(mn_infer_segment(inf, f->img.data, h, w, 0, labels), 0, "%s", mn_infer_error(inf));
    cr_assert_eq(memcmp(labels, want.data, (size_t)h * w), 0, "%s: the label map differs from predict's", what);
    for (int y = 0; y < h; y++) memcpy(padded + (size_t)y * stride, f->img.data + (size_t)y * w * 3, (size_t)w * 3);
    memset(labels, 0xff, (size_t)h * w);
    cr_assert_eq(mn_infer_segment(inf, padded, h, w, stride, labels), 0, "%s", mn_infer_error(inf));
    cr_assert_eq(memcmp(labels, want.data, (size_t)h * w), 0, "%s: strided input gives another label map", what);
    int seen[3] = {0};
    for (int i = 0; i < h * w; i++) seen[labels[i] < 3 ? labels[i] : 0] = 1;
    cr_log_info("%s: classes present %d %d %d", what, seen[0], seen[1], seen[2]);
    free(labels);
    free(padded);
    mn_image_free(&want);
}

/* Every field but the name pointer (each handle owns its names). */
static bool same_box(const mn_infer_box *a, const mn_infer_box *b)
{
    return a->x1 == b->x1 && a->y1 == b->y1 && a->x2 == b->x2 && a->y2 == b->y2 && a->score == b->score &&
           a->class_index == b->class_index && a->category_id == b->category_id && !strcmp(a->class_name, b->class_name);
}

static void expect_config(mn_infer *inf, float width, int h, int w, int64_t macs, double score)
{
    mn_infer_config c;
    mn_infer_selected(inf, &c);
    cr_assert_float_eq(c.width, width, 1e-6, "width %g, want %g", (double)c.width, (double)width);
    cr_assert_eq(c.h, h);
    cr_assert_eq(c.w, w);
    if (macs) cr_assert_eq(c.macs, macs, "macs %lld, want %lld", (long long)c.macs, (long long)macs);
    cr_assert_float_eq(c.score, score, 1e-9, "score %g, want %g", c.score, score);
}

Test(infer, version)
{
    cr_assert_eq(mn_api_version(), MN_API_VERSION);
    cr_assert_eq(MN_API_VERSION, MN_API_VERSION_MAJOR * 10000 + MN_API_VERSION_MINOR * 100 + MN_API_VERSION_PATCH);
}

Test(infer, segmentation_equals_predict)
{
    fixture f;
    fixture_make(&f, MN_TASK_SEGMENTATION, true);
    mn_infer *inf = open_ok(f.ckpt);
    cr_assert_eq(mn_infer_task(inf), MN_INFER_SEGMENTATION);
    cr_assert_eq(mn_infer_num_classes(inf), 3);
    cr_assert_str_eq(mn_infer_class_name(inf, 1), "thing");
    cr_assert_null(mn_infer_class_name(inf, 3));
    cr_assert_eq(mn_infer_table_size(inf), TM_ENTRIES);

    /* default: the widest width at data.eval_size, calibrated (entry 2 is exactly that) */
    predict(&f, NULL, 0);
    expect_config(inf, 1.0f, 64, 64, f.e[2].macs, 0.4);
    expect_seg_matches(&f, inf, "default");

    /* a budget of exactly entry 1's cost picks entry 1 */
    char budget[32];
    snprintf(budget, sizeof budget, "%lld", (long long)f.e[1].macs);
    predict(&f, (char *[]){"--budget", budget}, 2);
    cr_assert_eq(mn_infer_select_budget(inf, (double)f.e[1].macs), 0, "%s", mn_infer_error(inf));
    expect_config(inf, 0.7f, 48, 48, f.e[1].macs, 0.3);
    expect_seg_matches(&f, inf, "budget");

    /* a budget in milliseconds: entry 1 is the most accurate within 5 ms */
    predict(&f, (char *[]){"--budget-ms", "5"}, 2);
    cr_assert_eq(mn_infer_select(inf, 1.0f, 64, 64), 0); /* away first, so that the ms budget has to move it */
    cr_assert_eq(mn_infer_select_budget_ms(inf, 5.0), 0, "%s", mn_infer_error(inf));
    expect_config(inf, 0.7f, 48, 48, f.e[1].macs, 0.3);
    mn_infer_config c;
    mn_infer_selected(inf, &c);
    cr_assert_float_eq(c.ms, TM_MS(1), 1e-9);
    expect_seg_matches(&f, inf, "budget ms");
    cr_assert_eq(mn_infer_select_budget_ms(inf, 1.0), MN_EINVAL);
    cr_assert(strstr(mn_infer_error(inf), "no configuration fits 1 ms; the fastest needs 2 ms"), "%s",
              mn_infer_error(inf));
    expect_config(inf, 0.7f, 48, 48, f.e[1].macs, 0.3);

    /* a configuration off the table: training statistics, no score */
    predict(&f, (char *[]){"--width", "0.5", "--size", "32x64"}, 4);
    cr_assert_eq(mn_infer_select(inf, 0.5f, 32, 64), 0, "%s", mn_infer_error(inf));
    expect_config(inf, 0.5f, 32, 64, 0, -1);
    mn_infer_selected(inf, &c);
    cr_assert_eq(c.ms, 0.0, "an untimed configuration");
    expect_seg_matches(&f, inf, "width 0.5 32x64");

    mn_infer_config e;
    cr_assert_eq(mn_infer_table_entry(inf, 0, &e), 0);
    cr_assert_eq(e.macs, f.e[0].macs);
    cr_assert_float_eq(e.ms, TM_MS(0), 1e-9);
    cr_assert_eq(mn_infer_table_entry(inf, TM_ENTRIES, &e), MN_EINVAL);
    mn_infer_close(inf);
    mn_image_free(&f.img);
}

Test(infer, detection_equals_predict)
{
    fixture f;
    fixture_make(&f, MN_TASK_DETECTION, true);
    mn_infer *inf = open_ok(f.ckpt);
    cr_assert_eq(mn_infer_task(inf), MN_INFER_DETECTION);
    char budget[32];
    snprintf(budget, sizeof budget, "%lld", (long long)f.e[1].macs);
    predict(&f, (char *[]){"--budget", budget, "--score-threshold", "0"}, 4);
    cr_assert_eq(mn_infer_select_budget(inf, (double)f.e[1].macs), 0, "%s", mn_infer_error(inf));
    expect_config(inf, 0.7f, 48, 96, f.e[1].macs, 0.3);

    mn_infer_box boxes[256];
    int n = -1;
    cr_assert_eq(mn_infer_detect(inf, f.img.data, f.img.h, f.img.w, 0, 0.0f, boxes, 256, &n), 0, "%s",
                 mn_infer_error(inf));
    cJSON *root = predict_json(&f, "boxes");
    const cJSON *dets = cJSON_GetObjectItemCaseSensitive(root, "detections");
    cr_assert_gt(n, 0, "the untrained detector should still report boxes at score >= 0");
    cr_assert_eq(cJSON_GetArraySize(dets), n, "predict wrote %d detections, the API gave %d", cJSON_GetArraySize(dets),
                 n);
    for (int i = 0; i < n; i++) {
        const cJSON *d = cJSON_GetArrayItem(dets, i);
        const mn_infer_box *b = &boxes[i];
        cr_assert_eq((int)num(d, "label_index"), b->class_index, "box %d", i);
        cr_assert_eq((int)num(d, "category_id"), b->category_id, "box %d", i);
        cr_assert_str_eq(str(d, "label"), b->class_name, "box %d", i);
        cr_assert(fabs(num(d, "score") - b->score) <= 0.5e-4 + 1e-7, "box %d score %g vs %g", i, num(d, "score"),
                  (double)b->score);
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(d, "bbox");
        const double want[4] = {b->x1, b->y1, (double)(b->x2 - b->x1), (double)(b->y2 - b->y1)};
        for (int k = 0; k < 4; k++)
            cr_assert(fabs(cJSON_GetArrayItem(bb, k)->valuedouble - want[k]) <= 0.005 + 1e-4, "box %d coordinate %d", i,
                      k);
        cr_assert(i == 0 || boxes[i - 1].score >= b->score, "boxes by score descending");
    }
    cJSON_Delete(root);

    /* min_score filters, max_boxes keeps the best */
    float thr = boxes[n / 2].score;
    int above = 0;
    for (int i = 0; i < n; i++) above += boxes[i].score >= thr;
    mn_infer_box few[3];
    int m = -1;
    cr_assert_eq(mn_infer_detect(inf, f.img.data, f.img.h, f.img.w, 0, thr, few, 3, &m), 0);
    cr_assert_eq(m, above < 3 ? above : 3);
    for (int i = 0; i < m; i++) cr_assert(same_box(&few[i], &boxes[i]), "box %d", i);
    cr_assert_eq(mn_infer_detect(inf, f.img.data, f.img.h, f.img.w, 0, 2.0f, few, 3, &m), 0);
    cr_assert_eq(m, 0);

    /* a detector's w is its long-side cap, whatever is passed */
    cr_assert_eq(mn_infer_select(inf, 0.35f, 32, 0), 0, "%s", mn_infer_error(inf));
    expect_config(inf, 0.35f, 32, 96, f.e[0].macs, 0.2);
    mn_infer_close(inf);
    mn_image_free(&f.img);
}

Test(infer, classification_equals_predict)
{
    fixture f;
    fixture_make(&f, MN_TASK_CLASSIFICATION, true);
    mn_infer *inf = open_ok(f.ckpt);
    cr_assert_eq(mn_infer_task(inf), MN_INFER_CLASSIFICATION);
    cr_assert_eq(mn_infer_num_classes(inf), 4);
    predict(&f, (char *[]){"--width", "0.7", "--size", "48x48"}, 4);
    cr_assert_eq(mn_infer_select(inf, 0.7f, 48, 48), 0, "%s", mn_infer_error(inf));
    mn_infer_class top[8];
    int n = -1;
    cr_assert_eq(mn_infer_classify(inf, f.img.data, f.img.h, f.img.w, 0, top, 8, &n), 0, "%s", mn_infer_error(inf));
    cr_assert_eq(n, 4, "k is capped at the number of classes");
    cJSON *root = predict_json(&f, "classes");
    cr_assert_eq(cJSON_GetArraySize(root), 4);
    double total = 0;
    for (int r = 0; r < n; r++) {
        const cJSON *c = cJSON_GetArrayItem(root, r);
        cr_assert_eq((int)num(c, "index"), top[r].class_index, "rank %d", r);
        cr_assert_str_eq(str(c, "class"), top[r].class_name, "rank %d", r);
        cr_assert(fabs(num(c, "probability") - top[r].probability) <= 0.5e-6 + 1e-8, "rank %d", r);
        cr_assert(r == 0 || top[r - 1].probability >= top[r].probability);
        total += top[r].probability;
    }
    cr_assert(fabs(total - 1) < 1e-5, "probabilities sum to %g", total);
    cJSON_Delete(root);
    mn_infer_class one;
    cr_assert_eq(mn_infer_classify(inf, f.img.data, f.img.h, f.img.w, 0, &one, 1, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(one.class_index, top[0].class_index);
    mn_infer_close(inf);
    mn_image_free(&f.img);
}

/* A compact checkpoint of one configuration (what `mutualnet export --out X.safetensors` writes)
 * opens as any checkpoint, at that configuration, and gives what the full one gives there. */
static void expect_compact_matches(enum mn_task_kind task, float width, int h, int w)
{
    fixture f;
    fixture_make(&f, task, true);
    char compact[128];
    sub(compact, sizeof compact, "compact.safetensors");
    mn_model m;
    cr_assert_eq(mn_model_open(&m, f.ckpt), 0, "%s", mn_last_error());
    cr_assert_eq(mn_export_compact(&m, width, h, w, compact, f.ckpt), 0, "%s", mn_last_error());
    mn_model_free(&m);

    mn_infer *full = open_ok(f.ckpt), *one = open_ok(compact);
    cr_assert_eq(mn_infer_select(full, width, h, w), 0, "%s", mn_infer_error(full));
    mn_infer_config a, b;
    mn_infer_selected(full, &a);
    mn_infer_selected(one, &b);
    cr_assert(a.width == b.width && a.h == b.h && a.w == b.w && a.macs == b.macs,
              "the compact checkpoint opens at width %g %dx%d (%lld MACs), want %g %dx%d (%lld MACs)", (double)b.width,
              b.h, b.w, (long long)b.macs, (double)a.width, a.h, a.w, (long long)a.macs);
    float lo, hi;
    mn_infer_width_range(one, &lo, &hi);
    cr_assert(lo == width && hi == width, "range %g..%g", (double)lo, (double)hi);
    cr_assert_eq(mn_infer_select(one, 1.0f, h, w), MN_EINVAL, "a width it does not hold");

    const mn_image *im = &f.img;
    if (task == MN_TASK_SEGMENTATION) {
        uint8_t *la = malloc((size_t)im->h * im->w), *lb = malloc((size_t)im->h * im->w);
        cr_assert_eq(mn_infer_segment(full, im->data, im->h, im->w, 0, la), 0, "%s", mn_infer_error(full));
        cr_assert_eq(mn_infer_segment(one, im->data, im->h, im->w, 0, lb), 0, "%s", mn_infer_error(one));
        cr_assert_eq(memcmp(la, lb, (size_t)im->h * im->w), 0, "the compact checkpoint's label map differs");
        free(la);
        free(lb);
    } else {
        mn_infer_box ba[64], bb[64];
        int na, nb;
        cr_assert_eq(mn_infer_detect(full, im->data, im->h, im->w, 0, 0.0f, ba, 64, &na), 0, "%s", mn_infer_error(full));
        cr_assert_eq(mn_infer_detect(one, im->data, im->h, im->w, 0, 0.0f, bb, 64, &nb), 0, "%s", mn_infer_error(one));
        cr_assert_eq(na, nb);
        for (int i = 0; i < na; i++)
            cr_assert(fabsf(ba[i].score - bb[i].score) < 1e-5f && ba[i].class_index == bb[i].class_index &&
                          fabsf(ba[i].x1 - bb[i].x1) < 1e-3f && fabsf(ba[i].y2 - bb[i].y2) < 1e-3f,
                      "box %d differs", i);
    }
    mn_infer_close(full);
    mn_infer_close(one);
    mn_image_free(&f.img);
}

Test(infer, compact_checkpoints_open_at_their_configuration)
{
    expect_compact_matches(MN_TASK_SEGMENTATION, 0.7f, 48, 48);
    expect_compact_matches(MN_TASK_DETECTION, 0.7f, 48, 96);
}

Test(infer, top_k_ties_go_to_the_lower_index)
{
    const float p[6] = {0.1f, 0.3f, 0.1f, 0.3f, 0.05f, 0.15f};
    int idx[6];
    mn_cls_topk(p, 6, 6, idx);
    const int want[6] = {1, 3, 5, 0, 2, 4};
    for (int r = 0; r < 6; r++) cr_assert_eq(idx[r], want[r], "rank %d: %d, want %d", r, idx[r], want[r]);
}

Test(infer, refusals)
{
    fixture f;
    fixture_make(&f, MN_TASK_SEGMENTATION, false);
    char err[256], missing[128];
    sub(missing, sizeof missing, "none.safetensors");
    cr_assert_null(mn_infer_open(missing, err, sizeof err));
    cr_assert(strstr(err, missing) && strstr(err, "cannot open"), "%s", err);
    cr_assert_null(mn_infer_open(f.image, err, sizeof err));
    cr_assert(strstr(err, "not a safetensors file"), "%s", err);
    cr_assert_null(mn_infer_open(missing, NULL, 0), "no room for the message is allowed");

    mn_infer *inf = open_ok(f.ckpt);
    expect_config(inf, 1.0f, 64, 64, 0, -1);
    cr_assert_eq(mn_infer_table_size(inf), 0);
    cr_assert_eq(mn_infer_select_budget(inf, 1e12), MN_EINVAL);
    cr_assert(strstr(mn_infer_error(inf), "no query table"), "%s", mn_infer_error(inf));
    cr_assert_eq(mn_infer_select_budget_ms(inf, 100), MN_EINVAL);
    cr_assert(strstr(mn_infer_error(inf), "no query table"), "%s", mn_infer_error(inf));
    float lo, hi;
    mn_infer_width_range(inf, &lo, &hi);
    cr_assert(lo == 0.35f && hi == 1.0f, "range %g..%g", (double)lo, (double)hi);
    cr_assert_eq(mn_infer_select(inf, 0.2f, 64, 64), MN_EINVAL);
    cr_assert(strstr(mn_infer_error(inf), "outside the trained range [0.35, 1]"), "%s", mn_infer_error(inf));
    cr_assert_eq(mn_infer_select(inf, 0.5f, 16, 64), MN_EINVAL);
    cr_assert(strstr(mn_infer_error(inf), "32 to 8192"), "%s", mn_infer_error(inf));
    expect_config(inf, 1.0f, 64, 64, 0, -1); /* refusals leave the selection alone */

    mn_infer_box b;
    mn_infer_class c;
    int n = 7;
    cr_assert_eq(mn_infer_detect(inf, f.img.data, f.img.h, f.img.w, 0, 0.5f, &b, 1, &n), MN_EINVAL);
    cr_assert_eq(n, 0);
    cr_assert(strstr(mn_infer_error(inf), "the model is a segmenter"), "%s", mn_infer_error(inf));
    cr_assert_eq(mn_infer_classify(inf, f.img.data, f.img.h, f.img.w, 0, &c, 1, &n), MN_EINVAL);
    uint8_t labels[4];
    cr_assert_eq(mn_infer_segment(inf, f.img.data, 2, 2, 5, labels), MN_EINVAL);
    cr_assert(strstr(mn_infer_error(inf), "stride 5 is below 3 x width 2"), "%s", mn_infer_error(inf));
    cr_assert_eq(mn_infer_segment(inf, NULL, 2, 2, 0, labels), MN_EINVAL);
    cr_assert_eq(mn_infer_segment(inf, f.img.data, 0, 2, 0, labels), MN_EINVAL);
    cr_assert_eq(mn_infer_segment(inf, f.img.data, 1, 1, 0, labels), 0, "a 1x1 image: %s", mn_infer_error(inf));
    mn_infer_close(inf);
    mn_infer_close(NULL);

    int h = 0, w = 0;
    uint8_t *rgb = mn_infer_image_load(f.image, &h, &w, err, sizeof err);
    cr_assert(rgb, "%s", err);
    cr_assert(h == 30 && w == 40 && !memcmp(rgb, f.img.data, 30 * 40 * 3));
    mn_infer_image_free(rgb);
    cr_assert_null(mn_infer_image_load(missing, &h, &w, err, sizeof err));
    cr_assert(strstr(err, missing), "%s", err);
    mn_image_free(&f.img);
}

/* One thread's work: `runs` predictions of one handle on one image. */
typedef struct job {
    mn_infer *inf;
    const mn_image *img;
    int runs;
    int rc;
    uint8_t *labels;             /* (runs, h, w) segmentation */
    mn_infer_box boxes[4][64];   /* (runs, 64) detection */
    int n_boxes[4];
    mn_infer_class top[4][4];    /* (runs, 4) classification */
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    const mn_image *im = j->img;
    for (int r = 0; r < j->runs && !j->rc; r++) {
        switch (mn_infer_task(j->inf)) {
        case MN_INFER_SEGMENTATION:
            j->rc = mn_infer_segment(j->inf, im->data, im->h, im->w, 0, j->labels + (size_t)r * im->h * im->w);
            break;
        case MN_INFER_DETECTION:
            j->rc = mn_infer_detect(j->inf, im->data, im->h, im->w, 0, 0.0f, j->boxes[r], 64, &j->n_boxes[r]);
            break;
        case MN_INFER_CLASSIFICATION: {
            int n;
            j->rc = mn_infer_classify(j->inf, im->data, im->h, im->w, 0, j->top[r], 4, &n);
            break;
        }
        }
    }
    return NULL;
}

static void job_init(job *j, mn_infer *inf, const mn_image *img, int runs)
{
    memset(j, 0, sizeof *j);
    j->inf = inf;
    j->img = img;
    j->runs = runs;
    j->labels = calloc((size_t)runs, (size_t)img->h * img->w);
    cr_assert(j->labels);
}

/* Every run of a and of b gives what the first sequential run gave. */
static void expect_same(const job *ref, const job *j, const mn_image *img, const char *what)
{
    size_t px = (size_t)img->h * img->w;
    for (int r = 0; r < j->runs; r++) {
        cr_assert_eq(memcmp(j->labels + r * px, ref->labels, px), 0, "%s: run %d's label map differs", what, r);
        cr_assert_eq(j->n_boxes[r], ref->n_boxes[0], "%s: run %d", what, r);
        for (int i = 0; i < j->n_boxes[r]; i++) {
            cr_assert(same_box(&j->boxes[r][i], &ref->boxes[0][i]), "%s: run %d box %d differs", what, r, i);
        }
        for (int k = 0; k < 4; k++)
            cr_assert(j->top[r][k].class_index == ref->top[0][k].class_index &&
                          j->top[r][k].probability == ref->top[0][k].probability,
                      "%s: run %d rank %d differs", what, r, k);
    }
}

/* Two handles, each run `runs` times on its own thread at the same time, against each run alone. */
static void check_concurrent(const char *ckpt_a, const char *ckpt_b, const mn_image *img, const char *what)
{
    const int runs = 3;
    mn_infer *a = open_ok(ckpt_a), *b = open_ok(ckpt_b);
    job seq_a, seq_b, par_a, par_b;
    job_init(&seq_a, a, img, 1);
    job_init(&seq_b, b, img, 1);
    run_job(&seq_a);
    run_job(&seq_b);
    cr_assert_eq(seq_a.rc, 0, "%s", mn_infer_error(a));
    cr_assert_eq(seq_b.rc, 0, "%s", mn_infer_error(b));
    job_init(&par_a, a, img, runs);
    job_init(&par_b, b, img, runs);
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, run_job, &par_a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, run_job, &par_b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(par_a.rc, 0, "%s", mn_infer_error(a));
    cr_assert_eq(par_b.rc, 0, "%s", mn_infer_error(b));
    expect_same(&seq_a, &par_a, img, what);
    expect_same(&seq_b, &par_b, img, what);
    free(seq_a.labels);
    free(seq_b.labels);
    free(par_a.labels);
    free(par_b.labels);
    mn_infer_close(a);
    mn_infer_close(b);
}

Test(infer, two_handles_on_two_threads)
{
    fixture f;
    fixture_make(&f, MN_TASK_SEGMENTATION, true);
    char det[128], cls[128];
    sub(det, sizeof det, "det.safetensors");
    sub(cls, sizeof cls, "cls.safetensors");
    cr_assert_eq(tm_save(det, MN_TASK_DETECTION, true, NULL), 0, "%s", mn_last_error());
    cr_assert_eq(tm_save(cls, MN_TASK_CLASSIFICATION, true, NULL), 0, "%s", mn_last_error());
    check_concurrent(f.ckpt, f.ckpt, &f.img, "two segmenters");
    check_concurrent(det, cls, &f.img, "a detector and a classifier");
    check_concurrent(det, det, &f.img, "two detectors");
    mn_image_free(&f.img);
}
