/* Detection end to end: the mutual-learning driver on a tiny synthetic COCO set learns and
 * resumes exactly; the checkpoint reopens (and is told apart from a segmentation one); the
 * evaluator writes a COCO results file that scores the same from disk as in memory, with boxes
 * mapped back to the original pixels; calibration over a 2 x 2 grid builds a query table whose
 * budget selection, BN statistics and checkpoint round trip work. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common.h"
#include "mn/model.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/safetensors.h"
#include "mn/seg_model.h"
#include "mn/synth.h"
#include "mn/train.h"

enum { SIDE = 96 };
static char dir[64];

static void make_data(void)
{
    strcpy(dir, "/tmp/mn_det_train_XXXXXX");
    cr_assert(mkdtemp(dir));
    char data[128];
    snprintf(data, sizeof data, "%s/shapes", dir);
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 40;
    s.width = s.height = SIDE;
    s.seed = 5;
    s.png = true;
    s.max_objects = 3;
    cr_assert_eq(mn_synth_set_classes(&s, "circle,square,triangle"), 0, "%s", mn_last_error());
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
}

static void remove_data(void) { tc_remove_tree(dir); }

/* A detector small enough to train in seconds. */
static void tiny_config(mn_config *c, const char *out)
{
    mn_config_default(c);
    c->task = MN_TASK_DETECTION;
    strcpy(c->data.kind, "coco");
    snprintf(c->data.root, sizeof c->data.root, "%s/shapes", dir);
    snprintf(c->train.out_dir, sizeof c->train.out_dir, "%s/%s", dir, out);
    c->data.workers = 1;
    c->det.short_side = SIDE;
    c->det.max_side = 160;
    c->det.anchor_size = 16;
    c->det.fpn_channels = 32;
    c->det.box_hidden = 64;
    c->det.rpn_pre_nms_train = 200;
    c->det.rpn_post_nms_train = 100;
    c->det.rpn_pre_nms_test = 100;
    c->det.rpn_post_nms_test = 50;
    c->det.rpn_batch = 64;
    c->det.roi_batch = 32;
    c->det.detections_per_img = 20;
    c->mutual.num_subnets = 3;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 2.0f / 3.0f; /* short side 64 */
    c->optim.lr = 0.02f;
    c->optim.warmup_iters = 5;
    c->optim.schedule = MN_SCHED_COSINE;
    c->train.batch_size = 2;
    c->train.iterations = 6;
    c->train.log_every = 1;
    c->train.checkpoint_every = 3;
}

TestSuite(det_train, .init = make_data, .fini = remove_data, .timeout = 600);

Test(det_train, resume_gives_the_same_losses)
{
    mn_config a, b;
    tiny_config(&a, "straight");
    tiny_config(&b, "interrupted");
    cr_assert_eq(mn_train_detection(&a, NULL, 0), 0, "%s", mn_last_error());
    /* stop after 3 iterations as a kill would, then resume from the checkpoint */
    cr_assert_eq(mn_train_detection(&b, NULL, 3), 0, "%s", mn_last_error());
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", b.train.out_dir);
    cr_assert_eq(mn_train_detection(&b, ckpt, 0), 0, "%s", mn_last_error());
    static char la[16][TC_METRICS_LINE], lb[16][TC_METRICS_LINE];
    cr_assert_eq(tc_metrics_lines(a.train.out_dir, la, 16), 6);
    cr_assert_eq(tc_metrics_lines(b.train.out_dir, lb, 16), 6);
    /* every loss of every sub-network (and its loss parts, widths, short sides), not only the full one */
    for (int i = 1; i <= 6; i++) cr_assert_str_eq(la[i], lb[i], "iteration %d differs", i);
    cr_assert(strstr(la[6], "\"distill\": "), "students distil by default: %s", la[6]);
    cr_assert(strstr(la[6], "\"short_side\": "), "%s", la[6]);
}

/* Every entry of a results file is well formed, of a known category and inside the SIDE x SIDE image. */
static void check_results_file(const char *path, const mn_det_model *m)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s missing", path);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *a = cJSON_Parse(text);
    cr_assert(cJSON_IsArray(a), "%s is not a JSON array", path);
    int count = 0;
    for (cJSON *e = a->child; e; e = e->next, count++) {
        cJSON *img = cJSON_GetObjectItem(e, "image_id"), *cat = cJSON_GetObjectItem(e, "category_id"),
              *bb = cJSON_GetObjectItem(e, "bbox"), *sc = cJSON_GetObjectItem(e, "score");
        cr_assert(cJSON_IsNumber(img) && cJSON_IsNumber(cat) && cJSON_IsArray(bb) && cJSON_IsNumber(sc));
        bool known = false;
        for (int k = 1; k < m->num_classes; k++) known |= cat->valueint == m->category_ids[k];
        cr_assert(known, "category %d is not one of the data set's", cat->valueint);
        cr_assert(sc->valuedouble > 0.0 && sc->valuedouble <= 1.0);
        double b[4];
        for (int j = 0; j < 4; j++) b[j] = cJSON_GetArrayItem(bb, j)->valuedouble;
        /* original pixels whatever short side the model ran at */
        cr_assert(b[0] >= 0 && b[1] >= 0 && b[2] >= 0 && b[3] >= 0 && b[0] + b[2] <= SIDE + 0.011 &&
                      b[1] + b[3] <= SIDE + 0.011,
                  "box [%g, %g, %g, %g] leaves the %dx%d image", b[0], b[1], b[2], b[3], SIDE, SIDE);
    }
    cJSON_Delete(a);
}

Test(det_train, learns_reopens_scores_and_calibrates)
{
    mn_config c;
    tiny_config(&c, "learn");
    c.train.iterations = 40;
    c.train.checkpoint_every = 40;
    c.train.log_every = 1;
    cr_assert_eq(mn_train_detection(&c, NULL, 0), 0, "%s", mn_last_error());
    double l[64] = {0};
    cr_assert_eq(tc_metrics_losses(c.train.out_dir, l, 64), 40);
    double first = 0, last = 0;
    for (int i = 1; i <= 8; i++) {
        first += l[i] / 8;
        last += l[32 + i] / 8;
    }
    cr_log_info("detection loss: first eight %.4f, last eight %.4f", first, last);
    cr_assert_lt(last, 0.7 * first, "loss did not fall: first eight %.4f, last eight %.4f", first, last);

    /* the final evaluation: COCO's 12 numbers in the log, detections in val_results.json */
    char path[800], line[4096], last_line[4096] = "";
    snprintf(path, sizeof path, "%s/metrics.jsonl", c.train.out_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    while (fgets(line, sizeof line, f)) strcpy(last_line, line);
    fclose(f);
    cJSON *v = cJSON_Parse(last_line);
    cr_assert(v, "%s", last_line);
    for (int i = 0; i < MN_COCO_NSTATS; i++) {
        char key[32];
        snprintf(key, sizeof key, "val_%s", mn_coco_stat_name(i));
        cJSON *x = cJSON_GetObjectItem(v, key);
        cr_assert(cJSON_IsNumber(x), "%s missing from %s", key, last_line);
        cr_assert(x->valuedouble == -1.0 || (x->valuedouble >= 0 && x->valuedouble <= 1), "%s = %g", key, x->valuedouble);
    }
    cr_assert_eq(cJSON_GetObjectItem(v, "val_APl")->valuedouble, -1.0, "no large objects fit a 96x96 image");
    cJSON_Delete(v);

    /* the checkpoint alone rebuilds the model; it says what it is, and a detection model refuses a
     * segmentation checkpoint */
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", c.train.out_dir);
    enum mn_task_kind task = MN_TASK_SEGMENTATION;
    cr_assert_eq(mn_model_task(ckpt, &task), 0, "%s", mn_last_error());
    cr_assert_eq(task, MN_TASK_DETECTION);
    mn_det_model m;
    cr_assert_eq(mn_det_model_open(&m, ckpt), 0, "%s", mn_last_error());
    cr_assert_eq(m.num_classes, 4);
    cr_assert_str_eq(m.class_names[0], "background");
    cr_assert_str_eq(m.class_names[3], "triangle");
    cr_assert(m.category_ids[1] == 1 && m.category_ids[2] == 3 && m.category_ids[3] == 7, "category ids %d %d %d",
              m.category_ids[1], m.category_ids[2], m.category_ids[3]);
    cr_assert(m.typical_h == SIDE && m.typical_w == SIDE);
    cr_assert_eq(m.cfg.det.short_side, SIDE);
    cr_assert_eq(m.cfg.det.fpn_channels, 32);
    {
        mn_config sc;
        mn_config_default(&sc);
        sc.model.aspp_channels = 16;
        sc.model.low_level_channels = 8;
        const char *names[2] = {"background", "thing"};
        mn_seg_model s2;
        cr_assert_eq(mn_seg_model_create(&s2, &sc, 2, names, 1), 0, "%s", mn_last_error());
        char seg[700];
        snprintf(seg, sizeof seg, "%s/seg.safetensors", c.train.out_dir);
        cr_assert_eq(mn_seg_model_save(&s2, seg, NULL, 0), 0, "%s", mn_last_error());
        mn_seg_model_free(&s2);
        mn_det_model dm;
        cr_assert_eq(mn_det_model_open(&dm, seg), MN_EINVAL);
        cr_assert(strstr(mn_last_error(), "a segmentation checkpoint, not a detection one"), "%s", mn_last_error());
        cr_assert_eq(mn_model_task(seg, &task), 0);
        cr_assert_eq(task, MN_TASK_SEGMENTATION);
    }

    /* evaluation: a results file that scores from disk exactly as in memory */
    mn_dataset *tr, *va;
    mn_dataset_options o = {.kind = "coco", .root = c.data.root, .split = "train", .void_index = -1};
    cr_assert_eq(mn_dataset_open(&tr, &o), 0, "%s", mn_last_error());
    o.split = "val";
    cr_assert_eq(mn_dataset_open(&va, &o), 0, "%s", mn_last_error());
    char ann[1100], results[800];
    mn_det_annotations_path(ann, sizeof ann, &m.cfg, "val");
    snprintf(results, sizeof results, "%s/results.json", c.train.out_dir);
    mn_det_model_select(&m, 1.0f, SIDE);
    mn_det_scores s;
    cr_assert_eq(mn_det_evaluate(&m, va, ann, 1.0f, SIDE, 0, NULL, results, &s), 0, "%s", mn_last_error());
    cr_assert_eq(s.n_images, 8);
    cr_assert(s.n_detections > 0, "a trained detector finds something on 8 images");
    cr_assert(s.stats[MN_COCO_AP] >= 0 && s.stats[MN_COCO_AP] <= 1, "AP %g", s.stats[MN_COCO_AP]);
    cr_assert(s.stats[MN_COCO_AP50] >= s.stats[MN_COCO_AP75], "AP50 %g < AP75 %g", s.stats[MN_COCO_AP50],
              s.stats[MN_COCO_AP75]);
    check_results_file(results, &m);
    mn_coco_gt gt;
    mn_coco_dets dets;
    mn_coco_eval ev;
    cr_assert_eq(mn_coco_gt_load(&gt, ann), 0, "%s", mn_last_error());
    cr_assert_eq(mn_coco_dets_load(&dets, results, &gt), 0, "%s", mn_last_error());
    cr_assert_eq(dets.n, s.n_detections);
    cr_assert_eq(mn_coco_evaluate(&ev, &gt, &dets, NULL), 0, "%s", mn_last_error());
    double disk[MN_COCO_NSTATS];
    mn_coco_summarize(disk, &ev);
    for (int i = 0; i < MN_COCO_NSTATS; i++)
        cr_assert_eq(disk[i], s.stats[i], "%s: %.17g from the file, %.17g in memory", mn_coco_stat_name(i), disk[i],
                     s.stats[i]);
    mn_coco_eval_free(&ev);
    mn_coco_dets_free(&dets);
    /* a smaller short side and fewer images: boxes still in original pixels, only those images scored */
    cr_assert_eq(mn_det_evaluate(&m, va, ann, 0.5f, 64, 3, NULL, results, &s), 0, "%s", mn_last_error());
    cr_assert_eq(s.n_images, 3);
    check_results_file(results, &m);
    mn_coco_gt_free(&gt);

    /* the query table over a 2 x 2 grid: costs span the range, the budget picks, the BN statistics load */
    mn_calib_config g = {.widths = {1.0f, 0.35f}, .n_widths = 2, .sizes = {{SIDE, 160}, {64, 160}}, .n_sizes = 2,
                         .batches = 2};
    cr_assert_eq(mn_det_build_table(&m, tr, va, ann, &g, 2, 0, 1, NULL, NULL), 0, "%s", mn_last_error());
    cr_assert_eq(m.table.n, 4);
    cr_assert_str_eq(m.table.metric, "AP");
    int64_t big = 0, small = INT64_MAX;
    for (int i = 0; i < 4; i++) {
        cr_assert(m.table.e[i].score >= 0 && m.table.e[i].score <= 1);
        cr_assert_eq(m.table.e[i].w, 160, "entries key (short side, max side)");
        if (m.table.e[i].macs > big) big = m.table.e[i].macs;
        if (m.table.e[i].macs < small) small = m.table.e[i].macs;
    }
    cr_assert_gt(big, 4 * small, "width and size should span the cost range");
    cr_assert_eq(mn_query_select(&m.table, (double)small - 1), -1);
    int k = mn_query_select(&m.table, (double)small);
    cr_assert(k >= 0 && m.table.e[k].macs == small && m.table.e[k].width == 0.35f && m.table.e[k].h == 64);
    int64_t macs;
    cr_assert_eq(mn_det_model_flops(&m, 0.35f, 64, &macs), 0);
    cr_assert_eq(macs, small, "the table's cost is the model's at the typical (64 x 64) input");
    /* selecting a configuration loads its calibrated statistics; others get the trained ones */
    mn_slim_bn **bns;
    int nb = mn_det_bn_layers(m.net, &bns);
    float *now = malloc(sizeof(float) * (size_t)m.table.n_stats);
    mn_det_model_select(&m, 0.35f, 64);
    mn_query_save_stats(now, bns, nb);
    cr_assert_eq(memcmp(now, m.table.e[k].bn_stats, sizeof(float) * (size_t)m.table.n_stats), 0);
    mn_det_model_select(&m, 0.5f, 80);
    mn_query_save_stats(now, bns, nb);
    cr_assert_eq(memcmp(now, m.train_stats, sizeof(float) * (size_t)m.table.n_stats), 0);
    cr_assert_neq(memcmp(m.table.e[k].bn_stats, m.train_stats, sizeof(float) * (size_t)m.table.n_stats), 0,
                  "calibration changed the statistics");
    free(now);
    /* round trip of the table and its BN statistics through a checkpoint */
    char cal[800];
    snprintf(cal, sizeof cal, "%s/calibrated.safetensors", c.train.out_dir);
    cr_assert_eq(mn_det_model_save(&m, cal, NULL, 0), 0, "%s", mn_last_error());
    mn_det_model m2;
    cr_assert_eq(mn_det_model_open(&m2, cal), 0, "%s", mn_last_error());
    cr_assert_eq(m2.table.n, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(m2.table.e[i].macs, m.table.e[i].macs);
        cr_assert_eq(m2.table.e[i].h, m.table.e[i].h);
        /* the table's JSON keeps scores to cJSON's printing precision (15 significant digits) */
        cr_assert_float_eq(m2.table.e[i].score, m.table.e[i].score, 1e-12);
        cr_assert_eq(memcmp(m2.table.e[i].bn_stats, m.table.e[i].bn_stats, sizeof(float) * (size_t)m.table.n_stats), 0);
    }
    mn_det_model_free(&m2);
    mn_det_model_free(&m);
    mn_dataset_close(tr);
    mn_dataset_close(va);
}

Test(det_train, divergence_stops_and_keeps_the_last_good_checkpoint)
{
    mn_config c;
    tiny_config(&c, "diverge");
    c.optim.lr = 10.0f; /* blows up within a few steps */
    c.optim.warmup_iters = 0;
    c.train.iterations = 20;
    c.train.checkpoint_every = 1;
    cr_assert_neq(mn_train_detection(&c, NULL, 0), 0, "a run at lr 10 should stop on a non-finite value");
    static char lines[32][TC_METRICS_LINE];
    int done = tc_metrics_lines(c.train.out_dir, lines, 32);
    cr_assert(done >= 1 && done < 20, "%d iterations logged", done);
    /* the checkpoint is the one after the last finished iteration, with finite weights */
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", c.train.out_dir);
    mn_safetensors st;
    cr_assert_eq(mn_st_read(ckpt, &st), 0, "%s", mn_last_error());
    cr_assert_eq(atoi(mn_st_meta(&st, "iteration")), done);
    for (int i = 0; i < st.n; i++) {
        const float *v = st.entries[i].data;
        for (size_t j = 0; j < st.entries[i].nbytes / sizeof(float); j++)
            cr_assert(isfinite(v[j]), "%s[%zu] = %g", st.entries[i].name, j, v[j]);
    }
    mn_st_free(&st);
}

Test(det_train, grid_and_config_keys)
{
    mn_config c;
    mn_config_default(&c);
    cr_assert_eq(mn_config_parse("{\"task\": \"detection\", \"data\": {\"kind\": \"coco\"}, \"det\": {\"short_side\": 600, \"max_side\": 1000}, "
                                 "\"mutual\": {\"scales\": [1, 0.8, 0.6, 0.4]}, \"calibrate\": {\"width_step\": 0.25}}",
                                 "x.json", &c),
                 0, "%s", mn_last_error());
    cr_assert_neq(mn_config_parse("{\"det\": {\"short_sid\": 600}}", "x.json", &c), 0);
    cr_assert(strstr(mn_last_error(), "unknown key \"det.short_sid\""), "%s", mn_last_error());
    cr_assert_neq(mn_config_parse("{\"det\": {\"fpn_channels\": 4}}", "x.json", &c), 0);
    mn_calib_config g;
    cr_assert_eq(mn_det_calib_grid(&c, NULL, 0, &g), 0);
    /* the paper's short sides 600, 480, 360, 240 with max side 1000 */
    cr_assert_eq(g.n_sizes, 4);
    int want[4] = {600, 480, 360, 240};
    for (int s = 0; s < 4; s++) cr_assert(g.sizes[s][0] == want[s] && g.sizes[s][1] == 1000);
    cr_assert(g.n_widths == 4 && g.widths[0] == 1.0f && g.widths[3] == 0.35f, "%d widths", g.n_widths);
    /* scales of the caller's choosing: any mode, rounded short sides, repeats dropped, bad ones refused */
    c.mutual.mode = MN_MODE_USNET;
    cr_assert_eq(mn_det_calib_grid(&c, NULL, 0, &g), 0);
    cr_assert(g.n_sizes == 1 && g.sizes[0][0] == 600, "a US-Net trains at one size");
    float scales[4] = {1.25f, 0.5f, 0.5004f, 0.333f};
    cr_assert_eq(mn_det_calib_grid(&c, scales, 4, &g), 0, "%s", mn_last_error());
    cr_assert(g.n_sizes == 3 && g.sizes[0][0] == 750 && g.sizes[1][0] == 300 && g.sizes[2][0] == 200, "%d sizes",
              g.n_sizes);
    scales[1] = 0;
    cr_assert_neq(mn_det_calib_grid(&c, scales, 2, &g), 0);
    cr_assert(strstr(mn_last_error(), "input scale 0 is outside"), "%s", mn_last_error());
    mn_det_config dc;
    cr_assert_eq(mn_det_config_from(&c, 81, &dc), 0);
    cr_assert(dc.backbone.output_stride == 32 && dc.fpn_channels == 256 && dc.anchor_sizes[4][0] == 512.0f);
}
