/* Budgets in milliseconds: the query table's selection by measured latency (ties, nothing fits,
 * no timings), its JSON with and without timings (tables written before them still load),
 * calibrate --latency and --latency-only storing a positive time for every configuration with
 * the thread count, and --budget-ms in predict, eval, story and plot. No assertion depends on
 * how fast this machine is: measured times are only checked to be positive. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "common.h"

#include "mn/cls_model.h"
#include "mn/det_model.h"
#include "mn/fileio.h"
#include "mn/image.h"
#include "mn/model.h"
#include "mn/seg_model.h"
#include "mn/synth.h"
/* the commands are compiled into this test (tests/meson.build) and run in-process */
#include "tools/commands.h"
#include "tools/latency.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_latency_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(latency, .init = make_dir, .fini = remove_dir, .timeout = 600);

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

/* ---- the table alone ---- */

/* An entry with a score and, when ms > 0, a measured time. */
static void add(mn_query_table *q, float width, int side, int64_t macs, double score, double ms)
{
    cr_assert_eq(mn_query_add(q, width, side, side, macs, score, NULL), 0);
    q->e[q->n - 1].ms = ms;
}

/* e0 fastest; e1, e2, e3 tie on score (e2 and e3 also on ms, e3 with fewer MACs); e4 the best;
 * e5 the best of all but never timed; e6 worse than e3 in every way; e7 on the MACs frontier only
 * (slower than e4, which is better). */
static void tied_table(mn_query_table *q)
{
    mn_query_init(q, "mIoU");
    add(q, 0.35f, 32, 100, 0.50, 2.0);
    add(q, 0.50f, 64, 400, 0.70, 5.0);
    add(q, 0.75f, 32, 500, 0.70, 4.0);
    add(q, 0.70f, 48, 300, 0.70, 4.0);
    add(q, 1.00f, 64, 900, 0.90, 9.0);
    add(q, 1.00f, 96, 2000, 0.95, 0.0);
    add(q, 0.60f, 40, 450, 0.60, 6.0);
    add(q, 0.85f, 56, 800, 0.80, 10.0);
    q->timing = (mn_query_timing){.threads = 3, .runs = 10, .machine = "Test CPU 9000"};
}

static int pick(const mn_query_table *q, double budget_ms)
{
    int k = -2;
    int rc = mn_query_select_ms(q, budget_ms, &k);
    cr_assert_eq(rc, 0, "%g ms: %s", budget_ms, mn_last_error());
    return k;
}

Test(latency, select_by_ms_best_score_then_fewer_ms_then_fewer_macs)
{
    mn_query_table q;
    tied_table(&q);
    cr_assert(mn_query_has_ms(&q));
    cr_assert_eq(mn_query_fastest(&q), 0);
    cr_assert_eq(pick(&q, 2.0), 0, "a budget equal to an entry's time fits it");
    cr_assert_eq(pick(&q, 3.9), 0);
    cr_assert_eq(pick(&q, 4.0), 3, "same score and ms: the fewer MACs");
    cr_assert_eq(pick(&q, 6.0), 3, "same score: the fewer ms, not the cheaper-in-MACs e1");
    cr_assert_eq(pick(&q, 9.0), 4);
    cr_assert_eq(pick(&q, 1e6), 4, "the untimed entry is never picked, however good");
    /* selection by MACs is untouched by timings */
    cr_assert_eq(mn_query_select(&q, 1e9), 5);
    mn_query_free(&q);
}

Test(latency, select_by_ms_errors)
{
    mn_query_table q;
    tied_table(&q);
    int k = 7;
    cr_assert_eq(mn_query_select_ms(&q, 1.5, &k), MN_EINVAL);
    cr_assert_eq(k, -1);
    cr_assert(strstr(mn_last_error(), "no configuration fits 1.5 ms; the fastest needs 2 ms"), "%s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "3 threads on Test CPU 9000"), "%s", mn_last_error());
    cr_assert_eq(mn_query_select_ms(&q, 0, &k), MN_EINVAL);
    cr_assert_eq(mn_query_select_ms(&q, NAN, &k), MN_EINVAL);
    /* times without a record of how they were taken (a table edited by hand) are still used */
    q.timing = (mn_query_timing){0};
    cr_assert_eq(pick(&q, 6.0), 3);
    cr_assert_eq(mn_query_select_ms(&q, 1.5, &k), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "the fastest needs 2 ms"), "%s", mn_last_error());
    cr_assert_null(strstr(mn_last_error(), "measured with"), "%s", mn_last_error());
    /* a table never timed */
    for (int i = 0; i < q.n; i++) q.e[i].ms = 0;
    cr_assert(!mn_query_has_ms(&q));
    cr_assert_eq(mn_query_fastest(&q), -1);
    cr_assert_eq(mn_query_select_ms(&q, 1e6, &k), MN_EINVAL);
    cr_assert_eq(k, -1);
    cr_assert(strstr(mn_last_error(), "no latencies"), "%s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "calibrate --latency"), "%s", mn_last_error());
    mn_query_free(&q);
    /* an empty table has no timings either */
    mn_query_init(&q, "AP");
    cr_assert_eq(mn_query_select_ms(&q, 10, &k), MN_EINVAL);
    mn_query_free(&q);
}

Test(latency, json_round_trip_with_and_without_timings)
{
    mn_query_table q, r;
    tied_table(&q);
    char *s = mn_query_to_json(&q);
    cr_assert_not_null(s);
    cr_assert(strstr(s, "\"latency\":{\"threads\":3,\"runs\":10,\"machine\":\"Test CPU 9000\"}"), "%s", s);
    cr_assert_eq(mn_query_from_json(&r, s, 0), 0, "%s", mn_last_error());
    cr_assert_eq(r.n, q.n);
    for (int i = 0; i < q.n; i++) {
        cr_assert_eq(r.e[i].ms, q.e[i].ms, "entry %d: %g vs %g", i, r.e[i].ms, q.e[i].ms);
        cr_assert_eq(r.e[i].macs, q.e[i].macs);
        cr_assert_eq(r.e[i].frontier, q.e[i].frontier);
    }
    cr_assert_eq(r.timing.threads, 3);
    cr_assert_eq(r.timing.runs, 10);
    cr_assert_str_eq(r.timing.machine, "Test CPU 9000");
    cr_assert_eq(pick(&r, 6.0), 3);
    free(s);
    mn_query_free(&r);

    /* untimed: no "ms" and no "latency" written */
    for (int i = 0; i < q.n; i++) q.e[i].ms = 0;
    q.timing = (mn_query_timing){0};
    s = mn_query_to_json(&q);
    cr_assert_null(strstr(s, "ms"), "%s", s);
    cr_assert_null(strstr(s, "latency"), "%s", s);
    free(s);
    mn_query_free(&q);

    /* a table as checkpoints wrote it before timings existed */
    const char *old = "{\"metric\":\"mIoU\",\"entries\":[{\"width\":1,\"h\":64,\"w\":64,\"macs\":123456,\"score\":0.5},"
                      "{\"width\":0.35,\"h\":32,\"w\":32,\"macs\":2345,\"score\":0.25}]}";
    cr_assert_eq(mn_query_from_json(&r, old, 0), 0, "%s", mn_last_error());
    cr_assert_eq(r.n, 2);
    cr_assert(r.e[0].ms == 0 && r.e[1].ms == 0);
    cr_assert_eq(r.timing.threads, 0);
    cr_assert(!mn_query_has_ms(&r));
    mn_query_free(&r);

    /* what is refused */
    static const char *const bad[] = {
        "{\"metric\":\"AP\",\"entries\":[{\"width\":1,\"h\":64,\"w\":64,\"macs\":1,\"score\":0.5,\"ms\":-1}]}",
        "{\"metric\":\"AP\",\"entries\":[{\"width\":1,\"h\":64,\"w\":64,\"macs\":1,\"score\":0.5,\"ms\":\"fast\"}]}",
        "{\"metric\":\"AP\",\"entries\":[],\"latency\":{\"threads\":0,\"runs\":10,\"machine\":\"x\"}}",
        "{\"metric\":\"AP\",\"entries\":[],\"latency\":{\"threads\":2,\"machine\":\"x\"}}",
        "{\"metric\":\"AP\",\"entries\":[],\"latency\":{\"threads\":2,\"runs\":3,\"machine\":7}}",
        "{\"metric\":\"AP\",\"entries\":[],\"latency\":[2,3]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(mn_query_from_json(&r, bad[i], 0), MN_EFORMAT, "accepted %s", bad[i]);
}

Test(latency, print_shows_ms_only_when_timed)
{
    mn_query_table q;
    tied_table(&q);
    char path[128], text[4096];
    sub(path, sizeof path, "print.txt");
    for (int timed = 1; timed >= 0; timed--) {
        FILE *f = fopen(path, "w+");
        cr_assert(f);
        mn_query_print(&q, f);
        rewind(f);
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        if (timed) {
            cr_assert(strstr(text, "  ms: median of 10 runs per image at batch 1, 3 OpenMP threads, Test CPU 9000"), "%s",
                      text);
            /* the ms column sits between MACs and the score, aligned with its header */
            cr_assert(strstr(text, "  width   input             MACs         ms    mIoU  best for its budget (* in MACs, + "
                                   "in ms)\n"), "%s", text);
            cr_assert(strstr(text, "  0.35    32x32           0.000G      2.000  50.00%  *+\n"), "%s", text);
            cr_assert(strstr(text, "  0.60    40x40           0.000G      6.000  60.00%  \n"), "%s", text);
            cr_assert(strstr(text, "  0.85    56x56           0.000G     10.000  80.00%  *\n"), "%s", text);
            cr_assert(strstr(text, "  1.00    96x96           0.000G          -  95.00%  *\n"), "%s", text);
        } else {
            cr_assert_null(strstr(text, "ms"), "%s", text);
        }
        for (int i = 0; i < q.n; i++) q.e[i].ms = 0;
    }
    mn_query_free(&q);
}

/* ---- checkpoints and commands ---- */

static void tiny_config(mn_config *c, enum mn_task_kind task)
{
    mn_config_default(c);
    c->task = task;
    strcpy(c->data.kind, task == MN_TASK_DETECTION ? "coco" : task == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder");
    snprintf(c->data.root, sizeof c->data.root, "%s/shapes", dir);
    c->model.aspp_channels = 16;
    c->model.low_level_channels = 16;
    c->det.fpn_channels = 16;
    c->det.box_hidden = 32;
    c->det.short_side = 64;
    c->det.max_side = 96;
    c->data.crop[0] = c->data.crop[1] = 64;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
    c->data.workers = 1;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 0.5f;
    c->train.batch_size = 2;
}

/* The configurations of the hand-made tables: (width, size), scores rising with cost. */
static const float widths[3] = {0.35f, 0.7f, 1.0f};
static const int sides[3] = {32, 48, 64};

/* A model of the task with a three-entry table (its BN statistics those as trained), saved to
 * path; ms (3) are stored as measured times when not NULL. */
static void save_model(enum mn_task_kind task, const char *path, const double *ms)
{
    mn_config c;
    tiny_config(&c, task);
    const char *names[3] = {task == MN_TASK_CLASSIFICATION ? "cat" : "background", "cat", "dog"};
    int ids[3] = {0, 17, 18};
    mn_model m = {.task = task};
    int rc = task == MN_TASK_SEGMENTATION ? mn_seg_model_create(&m.seg, &c, 3, names, 1)
             : task == MN_TASK_DETECTION  ? mn_det_model_create(&m.det, &c, 3, names, ids, 48, 80, 1)
                                          : mn_cls_model_create(&m.cls, &c, 3, names, 1);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    mn_query_table *q = task == MN_TASK_SEGMENTATION ? &m.seg.table : task == MN_TASK_DETECTION ? &m.det.table : &m.cls.table;
    for (int k = 0; k < 3; k++) {
        int64_t macs = 0;
        int h = sides[k], w = task == MN_TASK_DETECTION ? c.det.max_side : sides[k];
        cr_assert_eq(mn_model_flops(&m, widths[k], h, w, &macs), 0, "%s", mn_last_error());
        cr_assert_eq(mn_query_add(q, widths[k], h, w, macs, 0.2 + 0.1 * k, mn_model_train_stats(&m)), 0);
        if (ms) q->e[k].ms = ms[k];
    }
    if (ms) q->timing = (mn_query_timing){.threads = omp_get_max_threads(), .runs = 5, .machine = "hand-made"};
    cr_assert_eq(mn_model_save(&m, path, NULL, 0), 0, "%s", mn_last_error());
    mn_model_free(&m);
}

/* Every parameter of a and b (same architecture) is bit for bit the same. */
static void expect_same_weights(mn_model *a, mn_model *b)
{
    mn_param_set *pa = mn_model_params(a), *pb = mn_model_params(b);
    cr_assert_eq(pa->n, pb->n);
    for (int i = 0; i < pa->n; i++) {
        const mn_tensor *x = &pa->items[i]->var.val, *y = &pb->items[i]->var.val;
        int64_t n = mn_tensor_numel(x);
        cr_assert_eq(n, mn_tensor_numel(y));
        cr_assert_eq(memcmp(x->data, y->data, sizeof(float) * (size_t)n), 0, "%s differs", pa->items[i]->name);
    }
}

/* calibrate --latency-only on a checkpoint of the task: every entry timed (ms > 0), the thread
 * count, runs and this machine's name stored; weights, scores and BN statistics unchanged. */
static void expect_latency_only(enum mn_task_kind task)
{
    char in[256], out[256];
    sub(in, sizeof in, "in.safetensors");
    sub(out, sizeof out, "timed.safetensors");
    save_model(task, in, NULL);
    char *argv[] = {"calibrate", "--checkpoint", in, "--latency-only", "--latency-runs", "3", "--out", out};
    char *err;
    int status = run_cmd(mn_cmd_calibrate, &err, 8, argv);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    char threads[64];
    snprintf(threads, sizeof threads, "median of 3 runs each, %d OpenMP thread", omp_get_max_threads());
    cr_assert(strstr(err, threads), "%s", err);
    cr_assert(strstr(err, "or --budget-ms"), "%s", err);
    free(err);
    mn_model a, b;
    cr_assert_eq(mn_model_open(&a, in), 0, "%s", mn_last_error());
    cr_assert_eq(mn_model_open(&b, out), 0, "%s", mn_last_error());
    const mn_query_table *qa = mn_model_table(&a), *qb = mn_model_table(&b);
    cr_assert_eq(qb->n, 3);
    char machine[96];
    mn_machine_name(machine, sizeof machine);
    cr_assert_eq(qb->timing.threads, omp_get_max_threads());
    cr_assert_eq(qb->timing.runs, 3);
    cr_assert_str_eq(qb->timing.machine, machine);
    for (int i = 0; i < 3; i++) {
        cr_assert_gt(qb->e[i].ms, 0, "entry %d not timed", i);
        cr_assert(isfinite(qb->e[i].ms));
        cr_assert_eq(qa->e[i].ms, 0);
        cr_assert_eq(qb->e[i].macs, qa->e[i].macs);
        cr_assert_eq(qb->e[i].score, qa->e[i].score);
        cr_assert_eq(memcmp(qb->e[i].bn_stats, qa->e[i].bn_stats, sizeof(float) * (size_t)qa->n_stats), 0);
    }
    expect_same_weights(&a, &b);
    mn_model_free(&a);
    mn_model_free(&b);
}

Test(latency, latency_only_times_every_entry_of_each_task)
{
    expect_latency_only(MN_TASK_SEGMENTATION);
    expect_latency_only(MN_TASK_DETECTION);
    expect_latency_only(MN_TASK_CLASSIFICATION);
}

Test(latency, latency_only_rewrites_a_calibrated_checkpoint_in_place)
{
    char cal[256], trained[256], copy[256];
    sub(cal, sizeof cal, "calibrated_wide.safetensors");
    sub(trained, sizeof trained, "last.safetensors");
    sub(copy, sizeof copy, "timed.safetensors");
    save_model(MN_TASK_CLASSIFICATION, cal, NULL);
    /* without --out the checkpoint itself gets the timings (not calibrated.safetensors beside it) */
    char *argv[] = {"calibrate", "--checkpoint", cal, "--latency-only", "--latency-runs", "1"};
    char *err;
    int status = run_cmd(mn_cmd_calibrate, &err, 6, argv);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    free(err);
    char beside[256];
    sub(beside, sizeof beside, "calibrated.safetensors");
    cr_assert(!exists(beside));
    mn_model m;
    cr_assert_eq(mn_model_open(&m, cal), 0, "%s", mn_last_error());
    for (int i = 0; i < 3; i++) cr_assert_gt(mn_model_table(&m)->e[i].ms, 0);
    /* a checkpoint that records training iterations is not rewritten in place */
    cr_assert_eq(mn_model_save(&m, trained, NULL, 7), 0, "%s", mn_last_error());
    mn_model_free(&m);
    char *in_place[] = {"calibrate", "--checkpoint", trained, "--latency-only", "--latency-runs", "1"};
    cr_assert_eq(run_cmd(mn_cmd_calibrate, &err, 6, in_place), MN_EXIT_FAIL, "%s", err);
    cr_assert(strstr(err, "is a training checkpoint (iteration 7)"), "%s", err);
    free(err);
    char *elsewhere[] = {"calibrate", "--checkpoint", trained, "--latency-only", "--latency-runs", "1", "--out", copy};
    cr_assert_eq(run_cmd(mn_cmd_calibrate, &err, 8, elsewhere), MN_EXIT_OK, "%s", err);
    free(err);
    cr_assert(exists(copy));
}

Test(latency, calibrate_refusals)
{
    char seg[256], bare[256];
    sub(seg, sizeof seg, "seg.safetensors");
    sub(bare, sizeof bare, "bare.safetensors");
    save_model(MN_TASK_SEGMENTATION, seg, NULL);
    mn_config c;
    tiny_config(&c, MN_TASK_SEGMENTATION);
    const char *names[2] = {"background", "thing"};
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 2, names, 1), 0, "%s", mn_last_error());
    cr_assert_eq(mn_seg_model_save(&m, bare, NULL, 0), 0, "%s", mn_last_error());
    mn_seg_model_free(&m);
    struct {
        int argc;
        char *argv[8];
        int status;
        const char *want;
    } cases[] = {
        {5, {"calibrate", "--checkpoint", seg, "--latency-runs", "3"}, MN_EXIT_USAGE, "needs --latency or --latency-only"},
        {5, {"calibrate", "--checkpoint", seg, "--latency", "--latency-only"}, MN_EXIT_USAGE, "not both"},
        {6, {"calibrate", "--checkpoint", seg, "--latency-only", "--scales", "1"}, MN_EXIT_USAGE, "are for calibrating"},
        {6, {"calibrate", "--checkpoint", seg, "--latency-only", "--latency-runs", "0"}, MN_EXIT_USAGE, "--latency-runs"},
        {4, {"calibrate", "--checkpoint", bare, "--latency-only"}, MN_EXIT_FAIL, "has no query table to time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *err;
        int status = run_cmd(mn_cmd_calibrate, &err, cases[i].argc, cases[i].argv);
        cr_expect_eq(status, cases[i].status, "case %zu: status %d: %s", i, status, err);
        cr_expect(strstr(err, cases[i].want), "case %zu: stderr lacks \"%s\": %s", i, cases[i].want, err);
        free(err);
    }
    char cal[256];
    sub(cal, sizeof cal, "calibrated.safetensors");
    cr_assert(!exists(cal), "a refused run wrote a checkpoint");
}

/* The synthetic data set the full calibration and eval read: 12 images of 64x64. */
static void make_shapes(void)
{
    char data[128];
    sub(data, sizeof data, "shapes");
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 12;
    s.width = s.height = 64;
    s.seed = 5;
    s.png = true;
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
}

Test(latency, calibrate_latency_times_the_new_table)
{
    make_shapes();
    char ckpt[256], out[256];
    sub(ckpt, sizeof ckpt, "last.safetensors");
    sub(out, sizeof out, "cal.safetensors");
    mn_config c;
    tiny_config(&c, MN_TASK_SEGMENTATION);
    const char *names[6] = {"background", "circle", "square", "triangle", "star", "ring"};
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 6, names, 1), 0, "%s", mn_last_error());
    cr_assert_eq(mn_seg_model_save(&m, ckpt, NULL, 0), 0, "%s", mn_last_error());
    mn_seg_model_free(&m);
    char *argv[] = {"calibrate", "--checkpoint", ckpt, "--out", out, "--width-step", "0.65", "--batches", "1",
                    "--max-val-images", "2", "--latency", "--latency-runs", "2"};
    char *err;
    int status = run_cmd(mn_cmd_calibrate, &err, 14, argv);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    free(err);
    mn_model t;
    cr_assert_eq(mn_model_open(&t, out), 0, "%s", mn_last_error());
    const mn_query_table *q = mn_model_table(&t);
    cr_assert_eq(q->n, 4, "2 widths x 2 sizes");
    cr_assert_eq(q->timing.threads, omp_get_max_threads());
    cr_assert_eq(q->timing.runs, 2);
    for (int i = 0; i < q->n; i++) cr_assert_gt(q->e[i].ms, 0, "entry %d not timed", i);
    mn_model_free(&t);
}

/* Times chosen so that each budget picks a known entry: 0.35@32 in 1 ms, 0.7@48 in 3, 1.0@64 in 8. */
static const double hand_ms[3] = {1.0, 3.0, 8.0};

static void write_image(const char *name, int w, int h)
{
    mn_image img;
    cr_assert_eq(mn_image_alloc(&img, w, h, 3), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img.data[i] = (uint8_t)(i * 31 + (i / 97) * 7);
    char p[256];
    sub(p, sizeof p, name);
    cr_assert_eq(mn_image_save(p, &img, 90), 0, "%s", mn_last_error());
    mn_image_free(&img);
}

Test(latency, budget_ms_picks_in_predict_and_story)
{
    char seg[256], det[256], untimed[256], out[256], img[256], pic[256];
    sub(seg, sizeof seg, "seg.safetensors");
    sub(det, sizeof det, "det.safetensors");
    sub(untimed, sizeof untimed, "untimed.safetensors");
    sub(out, sizeof out, "pred");
    sub(img, sizeof img, "x.png");
    sub(pic, sizeof pic, "story.png");
    save_model(MN_TASK_SEGMENTATION, seg, hand_ms);
    save_model(MN_TASK_DETECTION, det, hand_ms);
    save_model(MN_TASK_SEGMENTATION, untimed, NULL);
    write_image("x.png", 40, 32);
    struct {
        const char *ckpt, *budget, *want;
        int status;
    } cases[] = {
        {seg, "3.5", "width 0.70 at 48x48", MN_EXIT_OK},
        {seg, "3", "width 0.70 at 48x48", MN_EXIT_OK},
        {seg, "100", "width 1.00 at 64x64", MN_EXIT_OK},
        {seg, "1.2", "width 0.35 at 32x32", MN_EXIT_OK},
        {det, "2.5", "width 0.35 at short side 32", MN_EXIT_OK},
        {det, "8", "width 1.00 at short side 64", MN_EXIT_OK},
        {seg, "0.5", "no configuration fits 0.5 ms; the fastest needs 1 ms", MN_EXIT_FAIL},
        {untimed, "5", "calibrate --latency", MN_EXIT_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *argv[] = {"predict", "--checkpoint", (char *)cases[i].ckpt, "--budget-ms", (char *)cases[i].budget,
                        "--out", out, img};
        char *err;
        int status = run_cmd(mn_cmd_predict, &err, 8, argv);
        cr_expect_eq(status, cases[i].status, "case %zu: status %d: %s", i, status, err);
        cr_expect(strstr(err, cases[i].want), "case %zu: stderr lacks \"%s\": %s", i, cases[i].want, err);
        free(err);
    }
    /* the chosen entry's measured time is reported beside its MACs */
    char *err;
    char *ok[] = {"predict", "--checkpoint", seg, "--budget-ms", "3.5", "--out", out, img};
    cr_assert_eq(run_cmd(mn_cmd_predict, &err, 8, ok), MN_EXIT_OK);
    cr_assert(strstr(err, "GMACs per image, 3 ms measured ("), "%s", err);
    free(err);
    /* one of --budget, --budget-ms, --width/--size */
    char *both[] = {"predict", "--checkpoint", seg, "--budget-ms", "3", "--budget", "1G", "--out", out, img};
    cr_assert_eq(run_cmd(mn_cmd_predict, &err, 10, both), MN_EXIT_USAGE, "%s", err);
    cr_assert(strstr(err, "give one of --budget, --budget-ms or --width/--size"), "%s", err);
    free(err);
    char *with_width[] = {"predict", "--checkpoint", seg, "--budget-ms", "3", "--width", "0.5", "--out", out, img};
    cr_assert_eq(run_cmd(mn_cmd_predict, &err, 10, with_width), MN_EXIT_USAGE, "%s", err);
    free(err);
    char *bad[] = {"predict", "--checkpoint", seg, "--budget-ms", "-1", "--out", out, img};
    cr_assert_eq(run_cmd(mn_cmd_predict, &err, 8, bad), MN_EXIT_USAGE, "%s", err);
    free(err);
    /* story: a column per budget, in ms or in MACs */
    char *story[] = {"story", "--checkpoint", seg, "--budget-ms", "1.5", "--budget-ms", "9", "--budget", "1G", "--out",
                     pic, img};
    int status = run_cmd(mn_cmd_story, &err, 12, story);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    cr_assert(strstr(err, "width 0.35 at 32x32"), "%s", err);
    cr_assert(strstr(err, "width 1.00 at 64x64"), "%s", err);
    cr_assert(exists(pic));
    free(err);
}

Test(latency, budget_ms_picks_in_eval)
{
    make_shapes();
    char seg[256];
    sub(seg, sizeof seg, "seg.safetensors");
    save_model(MN_TASK_SEGMENTATION, seg, hand_ms);
    char *argv[] = {"eval", "--checkpoint", seg, "--budget-ms", "4", "--max-images", "1"};
    char *err;
    int status = run_cmd(mn_cmd_eval, &err, 7, argv);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    cr_assert(strstr(err, "mutualnet eval: width 0.70 at 48x48"), "%s", err);
    free(err);
    char *none[] = {"eval", "--checkpoint", seg, "--budget-ms", "0.9"};
    cr_assert_eq(run_cmd(mn_cmd_eval, &err, 5, none), MN_EXIT_FAIL, "%s", err);
    cr_assert(strstr(err, "the fastest needs 1 ms"), "%s", err);
    free(err);
}

Test(latency, plot_against_ms)
{
    char seg[256], untimed[256], run[256], log[300], png[300], flops[300];
    sub(seg, sizeof seg, "seg.safetensors");
    sub(untimed, sizeof untimed, "untimed.safetensors");
    sub(run, sizeof run, "run");
    cr_assert_eq(mkdir(run, 0755), 0);
    snprintf(log, sizeof log, "%s/metrics.jsonl", run);
    FILE *f = fopen(log, "w");
    cr_assert(f);
    fputs("{\"iter\": 1, \"loss\": 2.0}\n{\"iter\": 2, \"loss\": 1.5}\n", f);
    fclose(f);
    save_model(MN_TASK_SEGMENTATION, seg, hand_ms);
    save_model(MN_TASK_SEGMENTATION, untimed, NULL);
    snprintf(png, sizeof png, "%s/accuracy_ms.png", run);
    snprintf(flops, sizeof flops, "%s/accuracy_flops.png", run);
    char *err;
    char *ms[] = {"plot", "--run", run, "--checkpoint", seg, "--x", "ms", "--budget-ms", "4"};
    int status = run_cmd(mn_cmd_plot, &err, 9, ms);
    cr_assert_eq(status, MN_EXIT_OK, "status %d: %s", status, err);
    cr_assert(exists(png));
    cr_assert(!exists(flops), "--x ms draws the ms chart instead of the GMACs one");
    free(err);
    char svg[300];
    snprintf(svg, sizeof svg, "%s/accuracy_ms.svg", run);
    char *text = NULL;
    size_t n = 0;
    cr_assert_eq(mn_read_file(svg, 1 << 24, "svg", &text, &n), 0, "%s", mn_last_error());
    cr_assert(strstr(text, "ms per image (batch 1,"), "the axis names the unit and the timing");
    cr_assert(strstr(text, "hand-made"), "the axis names the machine");
    cr_assert(strstr(text, "4 ms budget: w 0.70 48x48"), "the budget's pick is marked");
    free(text);
    remove(png);
    /* --budget-ms alone means the ms chart */
    char *implied[] = {"plot", "--run", run, "--checkpoint", seg, "--budget-ms", "2"};
    cr_assert_eq(run_cmd(mn_cmd_plot, &err, 7, implied), MN_EXIT_OK, "%s", err);
    cr_assert(exists(png));
    free(err);
    remove(png);
    /* refusals */
    char *no_ms[] = {"plot", "--run", run, "--checkpoint", untimed, "--x", "ms"};
    cr_assert_eq(run_cmd(mn_cmd_plot, &err, 7, no_ms), MN_EXIT_FAIL, "%s", err);
    cr_assert(strstr(err, "no latencies to plot"), "%s", err);
    cr_assert(strstr(err, "calibrate --latency-only"), "%s", err);
    cr_assert(!exists(png));
    free(err);
    char *mixed[] = {"plot", "--run", run, "--checkpoint", seg, "--x", "ms", "--budget", "1G"};
    cr_assert_eq(run_cmd(mn_cmd_plot, &err, 9, mixed), MN_EXIT_USAGE, "%s", err);
    free(err);
    char *bad_axis[] = {"plot", "--run", run, "--checkpoint", seg, "--x", "seconds"};
    cr_assert_eq(run_cmd(mn_cmd_plot, &err, 7, bad_axis), MN_EXIT_USAGE, "%s", err);
    free(err);
    char *macs[] = {"plot", "--run", run, "--checkpoint", untimed, "--x", "macs"};
    cr_assert_eq(run_cmd(mn_cmd_plot, &err, 7, macs), MN_EXIT_OK, "%s", err);
    cr_assert(exists(flops));
    free(err);
}

Test(latency, timings_survive_a_checkpoint_round_trip)
{
    char det[256];
    sub(det, sizeof det, "det.safetensors");
    save_model(MN_TASK_DETECTION, det, hand_ms);
    mn_model m;
    cr_assert_eq(mn_model_open(&m, det), 0, "%s", mn_last_error());
    const mn_query_table *q = mn_model_table(&m);
    for (int k = 0; k < 3; k++) cr_assert_eq(q->e[k].ms, hand_ms[k]);
    cr_assert_eq(q->timing.runs, 5);
    cr_assert_str_eq(q->timing.machine, "hand-made");
    mn_model_free(&m);
}
