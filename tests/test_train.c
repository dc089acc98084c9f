/* End to end: the mutual-learning driver on a tiny synthetic set learns, resumes exactly,
 * and its pieces (sandwich sampler, schedules, config) behave as documented. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "common.h"

#include "mn/calibrate.h"
#include "mn/seg_model.h"
#include "mn/synth.h"
#include "mn/train.h"
/* the plot command is compiled into this test so --compare can be run in-process */
#include "tools/args.c"
#include "tools/cmd_calibrate.c"
#include "tools/report.c"
#include "tools/cmd_plot.c"

static char dir[64];

static void make_data(void)
{
    strcpy(dir, "/tmp/mn_train_XXXXXX");
    cr_assert(mkdtemp(dir));
    char data[128];
    snprintf(data, sizeof data, "%s/shapes", dir);
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 40;
    s.width = s.height = 64;
    s.seed = 3;
    s.png = true;
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
}

static void remove_data(void) { tc_remove_tree(dir); }

/* A network small enough to train in seconds. */
static void tiny_config(mn_config *c, const char *out)
{
    mn_config_default(c);
    snprintf(c->data.root, sizeof c->data.root, "%s/shapes", dir);
    snprintf(c->train.out_dir, sizeof c->train.out_dir, "%s/%s", dir, out);
    c->model.aspp_channels = 32;
    c->model.low_level_channels = 16;
    c->data.crop[0] = c->data.crop[1] = 64;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
    c->data.scale_range[0] = 0.75f;
    c->data.scale_range[1] = 1.25f;
    c->data.workers = 1;
    c->mutual.num_subnets = 3;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 0.5f;
    c->optim.lr = 0.05f;
    c->optim.warmup_iters = 2;
    c->train.batch_size = 4;
    c->train.iterations = 6;
    c->train.log_every = 1;
    c->train.checkpoint_every = 3;
}

TestSuite(train, .init = make_data, .fini = remove_data, .timeout = 600);

Test(train, resume_gives_the_same_losses)
{
    mn_config a, b;
    tiny_config(&a, "straight");
    tiny_config(&b, "interrupted");
    tc_expect_resume_matches(mn_train_segmentation, &a, &b, 3);
}

Test(train, gradient_clipping_caps_the_step)
{
    mn_config a, b;
    tiny_config(&a, "unclipped");
    tiny_config(&b, "clipped");
    a.train.iterations = b.train.iterations = 2;
    b.optim.clip_grad_norm = 1e-3f; /* far below any real gradient norm: the first step barely moves */
    cr_assert_eq(mn_train_segmentation(&a, NULL, 0), 0, "%s", mn_last_error());
    cr_assert_eq(mn_train_segmentation(&b, NULL, 0), 0, "%s", mn_last_error());
    double la[4] = {0}, lb[4] = {0};
    cr_assert_eq(tc_metrics_losses(a.train.out_dir, la, 4), 2);
    cr_assert_eq(tc_metrics_losses(b.train.out_dir, lb, 4), 2);
    cr_assert_eq(la[1], lb[1], "the first forward pass precedes any step: %.9g vs %.9g", la[1], lb[1]);
    cr_assert_neq(la[2], lb[2], "a clipped step must differ from an unclipped one");
    /* the clipped run logs the norm it measured before clipping; the unclipped one logs none */
    static char lines[4][TC_METRICS_LINE];
    cr_assert_eq(tc_metrics_lines(b.train.out_dir, lines, 4), 2);
    const char *g = strstr(lines[1], "\"grad_norm\": ");
    cr_assert(g, "no grad_norm in %s", lines[1]);
    cr_assert_gt(atof(g + 13), 1e-3);
    cr_assert_eq(tc_metrics_lines(a.train.out_dir, lines, 4), 2);
    cr_assert_null(strstr(lines[1], "grad_norm"), "%s", lines[1]);
}

Test(train, loss_falls_and_model_reloads)
{
    mn_config c;
    tiny_config(&c, "learn");
    c.train.iterations = 40;
    c.train.checkpoint_every = 40;
    cr_assert_eq(mn_train_segmentation(&c, NULL, 0), 0, "%s", mn_last_error());
    double l[64] = {0};
    cr_assert_eq(tc_metrics_losses(c.train.out_dir, l, 64), 40);
    double first = (l[1] + l[2] + l[3] + l[4] + l[5]) / 5, last = (l[36] + l[37] + l[38] + l[39] + l[40]) / 5;
    cr_assert_lt(last, 0.7 * first, "loss did not fall: first five %.4f, last five %.4f", first, last);

    /* the checkpoint alone rebuilds the model; a calibrated grid gives a table that picks by budget */
    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", c.train.out_dir);
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_open(&m, ckpt), 0, "%s", mn_last_error());
    cr_assert_eq(m.num_classes, 6);
    cr_assert_str_eq(m.class_names[5], "ring");
    mn_dataset *tr, *va;
    mn_dataset_options o = {.kind = "folder", .root = c.data.root, .split = "train", .void_index = -1};
    cr_assert_eq(mn_dataset_open(&tr, &o), 0, "%s", mn_last_error());
    o.split = "val";
    cr_assert_eq(mn_dataset_open(&va, &o), 0, "%s", mn_last_error());
    mn_calib_config g = {.widths = {1.0f, 0.35f}, .n_widths = 2, .sizes = {{64, 64}, {32, 32}}, .n_sizes = 2, .batches = 2};
    cr_assert_eq(mn_seg_build_table(&m, tr, va, &g, 4, 0, 1, NULL, NULL), 0, "%s", mn_last_error());
    cr_assert_eq(m.table.n, 4);
    int64_t big = 0, small = INT64_MAX;
    for (int i = 0; i < 4; i++) {
        cr_assert(m.table.e[i].score >= 0 && m.table.e[i].score <= 1);
        if (m.table.e[i].macs > big) big = m.table.e[i].macs;
        if (m.table.e[i].macs < small) small = m.table.e[i].macs;
    }
    cr_assert_gt(big, 4 * small, "width and size should span the cost range");
    cr_assert_eq(mn_query_select(&m.table, (double)small - 1), -1);
    int k = mn_query_select(&m.table, (double)small);
    cr_assert(k >= 0 && m.table.e[k].macs == small);
    /* round trip of the table and its BN statistics through a checkpoint */
    char cal[700];
    snprintf(cal, sizeof cal, "%s/calibrated.safetensors", c.train.out_dir);
    cr_assert_eq(mn_seg_model_save(&m, cal, NULL, 0), 0, "%s", mn_last_error());
    mn_seg_model m2;
    cr_assert_eq(mn_seg_model_open(&m2, cal), 0, "%s", mn_last_error());
    cr_assert_eq(m2.table.n, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(m2.table.e[i].macs, m.table.e[i].macs);
        cr_assert_eq(memcmp(m2.table.e[i].bn_stats, m.table.e[i].bn_stats, sizeof(float) * (size_t)m.table.n_stats), 0);
    }
    /* calibrate --scales: the grid spans the sizes asked for, not the trained ones (here 1 and 0.5) */
    char cal2[700];
    snprintf(cal2, sizeof cal2, "%s/scales.safetensors", c.train.out_dir);
    char *argv_cal[] = {"calibrate", "--checkpoint", ckpt, "--out", cal2, "--width-step", "0.65", "--batches", "1",
                        "--max-val-images", "4", "--scales", "1.5,0.75", NULL};
    cr_assert_eq(mn_cmd_calibrate(13, argv_cal), 0, "%s", mn_last_error());
    mn_seg_model m3;
    cr_assert_eq(mn_seg_model_open(&m3, cal2), 0, "%s", mn_last_error());
    cr_assert_eq(m3.table.n, 4, "2 widths x 2 sizes");
    int at96 = 0, at64 = 0; /* 64 x 1.5 = 96; 64 x 0.75 = 48 rounds to 64 (multiples of 32) */
    for (int i = 0; i < 4; i++) {
        at96 += m3.table.e[i].h == 96 && m3.table.e[i].w == 96;
        at64 += m3.table.e[i].h == 64 && m3.table.e[i].w == 64;
    }
    cr_assert(at96 == 2 && at64 == 2, "sizes: %d at 96, %d at 64", at96, at64);
    mn_seg_model_free(&m3);
    /* calibrate --split: the table is scored on the split named, here the training split, exactly as
     * the library scores a table on it; the default scores the validation split */
    char on_train[700], on_val[700];
    snprintf(on_train, sizeof on_train, "%s/on_train.safetensors", c.train.out_dir);
    snprintf(on_val, sizeof on_val, "%s/on_val.safetensors", c.train.out_dir);
    char *argv_split[] = {"calibrate", "--checkpoint", ckpt, "--out", on_train, "--width-step", "0.65", "--batches", "1",
                          "--max-val-images", "6", "--scales", "1", "--split", "train", NULL};
    cr_assert_eq(mn_cmd_calibrate(15, argv_split), 0, "%s", mn_last_error());
    char *argv_val[] = {"calibrate", "--checkpoint", ckpt, "--out", on_val, "--width-step", "0.65", "--batches", "1",
                        "--max-val-images", "6", "--scales", "1", NULL};
    cr_assert_eq(mn_cmd_calibrate(13, argv_val), 0, "%s", mn_last_error());
    mn_seg_model st, sv, fresh;
    cr_assert_eq(mn_seg_model_open(&st, on_train), 0, "%s", mn_last_error());
    cr_assert_eq(mn_seg_model_open(&sv, on_val), 0, "%s", mn_last_error());
    cr_assert_eq(mn_seg_model_open(&fresh, ckpt), 0, "%s", mn_last_error());
    cr_assert_eq(st.table.n, 2);
    mn_calib_config gt = {.n_widths = 2, .sizes = {{st.table.e[0].h, st.table.e[0].w}}, .n_sizes = 1, .batches = 1};
    for (int i = 0; i < 2; i++) gt.widths[i] = st.table.e[i].width;
    cr_assert_eq(mn_seg_build_table(&fresh, tr, tr, &gt, c.train.batch_size, 6, c.train.seed, NULL, NULL), 0, "%s",
                 mn_last_error());
    bool differs = false;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(st.table.e[i].score, fresh.table.e[i].score, "entry %d: %g scored on train by the command, %g by "
                     "the library", i, st.table.e[i].score, fresh.table.e[i].score);
        differs |= st.table.e[i].score != sv.table.e[i].score;
    }
    cr_assert(differs, "the training and validation splits scored the same");
    mn_seg_model_free(&st);
    mn_seg_model_free(&sv);
    mn_seg_model_free(&fresh);
    char *argv_bad_scales[] = {"calibrate", "--checkpoint", ckpt, "--scales", "1,x", NULL};
    cr_assert_eq(mn_cmd_calibrate(5, argv_bad_scales), MN_EXIT_USAGE);
    /* plot --compare: one line per label along the frontier of the mean scores */
    char prefix[700], series_a[1500], series_b[800], svg[720];
    snprintf(prefix, sizeof prefix, "%s/compare", c.train.out_dir);
    snprintf(series_a, sizeof series_a, "twice=%s,%s", cal, cal);
    snprintf(series_b, sizeof series_b, "once=%s", cal);
    char *argv[] = {"plot", "--compare", prefix, series_a, series_b, NULL};
    cr_assert_eq(mn_cmd_plot(5, argv), 0, "%s", mn_last_error());
    snprintf(svg, sizeof svg, "%s.svg", prefix);
    FILE *f = fopen(svg, "r");
    cr_assert(f, "no %s", svg);
    char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    int paths = 0;
    for (const char *p = text; (p = strstr(p, "<path")); p++) paths++;
    cr_assert_geq(paths, 2, "expected a line per series in %s", svg);
    cr_assert(strstr(text, "twice") && strstr(text, "once"), "legend labels missing from %s", svg);
    snprintf(prefix, sizeof prefix, "%s/refused", c.train.out_dir);
    snprintf(svg, sizeof svg, "%s/compare.png", c.train.out_dir);
    f = fopen(svg, "rb");
    cr_assert(f, "no %s", svg);
    fclose(f);
    char bad[] = "no-equals-sign", *argv_bad[] = {"plot", "--compare", prefix, bad, NULL};
    cr_assert_neq(mn_cmd_plot(4, argv_bad), 0, "a series without LABEL= must be refused");
    mn_seg_model_free(&m2);
    mn_seg_model_free(&m);
    mn_dataset_close(tr);
    mn_dataset_close(va);
}

Test(sandwich, widths_scales_and_determinism)
{
    mn_config c;
    mn_config_default(&c);
    mn_subnet a[MN_MAX_SUBNETS], b[MN_MAX_SUBNETS];
    int seen_scale[4] = {0};
    for (int it = 0; it < 200; it++) {
        int n = mn_sandwich(&c, 7, it, a);
        cr_assert_eq(n, 4);
        cr_assert_eq(mn_sandwich(&c, 7, it, b), 4);
        cr_assert_eq(memcmp(a, b, sizeof(mn_subnet) * 4), 0, "not deterministic");
        cr_assert_eq(a[0].width, 1.0f);
        cr_assert_eq(a[0].scale, 1.0f);
        bool has_min = false;
        for (int k = 1; k < 4; k++) {
            cr_assert(a[k].width >= c.mutual.width_min && a[k].width <= c.mutual.width_max);
            if (k > 1) cr_assert_leq(a[k].width, a[k - 1].width, "widths are sorted descending");
            has_min |= a[k].width == c.mutual.width_min;
            for (int s = 0; s < 4; s++) seen_scale[s] += a[k].scale == c.mutual.scales[s];
        }
        cr_assert(has_min, "the sandwich always includes w_min");
    }
    for (int s = 0; s < 4; s++) cr_assert_gt(seen_scale[s], 100, "scale %d drawn %d times of 600", s, seen_scale[s]);
    c.mutual.mode = MN_MODE_USNET;
    mn_sandwich(&c, 7, 3, a);
    for (int k = 0; k < 4; k++) cr_assert_eq(a[k].scale, 1.0f);
    c.mutual.mode = MN_MODE_INDEPENDENT;
    c.mutual.width = 0.5f;
    cr_assert_eq(mn_sandwich(&c, 7, 3, a), 1);
    cr_assert_eq(a[0].width, 0.5f);
}

/* Off a terminal the command shows one plain line every `every` units and at the end, with the
 * images/s figure only when a unit has a known number of images; without a reporter nothing. */
Test(progress, plain_lines, .init = cr_redirect_stderr)
{
    tool_report state;
    mn_reporter rep = tool_reporter(&state);
    state.tty = false;
    mn_progress p;
    mn_progress_begin(&p, NULL, "silent", 4, 0, 1);
    for (int i = 1; i <= 4; i++) mn_progress_update(&p, i, 8, "loss 1.5");
    mn_progress_end(&p);
    mn_progress_begin(&p, &rep, "train", 4, 0, 2);
    for (int i = 1; i <= 4; i++) mn_progress_update(&p, i, 8, "loss 1.5");
    mn_progress_end(&p);
    mn_progress_begin(&p, &rep, "calibrate", 3, 0, 1);
    for (int i = 1; i <= 3; i++) mn_progress_update(&p, i, 0, "width 1.00");
    mn_progress_end(&p);
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        double img_s;
        char tail[64];
        if (n < 2) {
            int done = 0;
            cr_assert_eq(sscanf(line, "train %d/4 (%*d%%) elapsed 0:%*d eta 0:%*d %lf img/s %63[^\n]", &done, &img_s, tail), 3,
                         "line %d: %s", n, line);
            cr_assert_eq(done, 2 * (n + 1), "%s", line);
            cr_assert_geq(img_s, 0.0);
            cr_assert_str_eq(tail, "loss 1.5");
        } else {
            cr_assert(strstr(line, "calibrate ") == line && strstr(line, " width 1.00\n"), "%s", line);
            cr_assert_null(strstr(line, "img/s"), "%s", line);
        }
        n++;
    }
    cr_assert_eq(n, 5, "2 training lines (units 2 and 4), 3 calibration lines");
}

Test(schedule, warmup_cosine_poly)
{
    mn_config c;
    mn_config_default(&c);
    c.optim.lr = 0.1f;
    c.optim.warmup_iters = 10;
    c.optim.warmup_factor = 0.1f;
    c.train.iterations = 110;
    cr_assert_float_eq(mn_lr_at(&c, 0), 0.01, 1e-7);
    cr_assert_float_eq(mn_lr_at(&c, 5), 0.055, 1e-7);
    c.optim.schedule = MN_SCHED_COSINE;
    cr_assert_float_eq(mn_lr_at(&c, 10), 0.1, 1e-7);
    cr_assert_float_eq(mn_lr_at(&c, 60), 0.05, 1e-6);
    cr_assert_float_eq(mn_lr_at(&c, 110), 0.0, 1e-7);
    c.optim.schedule = MN_SCHED_POLY;
    c.optim.power = 0.9f;
    cr_assert_float_eq(mn_lr_at(&c, 60), 0.1 * pow(0.5, 0.9), 1e-6);
}

Test(config, strict_keys_types_and_round_trip)
{
    mn_config c;
    mn_config_default(&c);
    cr_assert_eq(mn_config_parse("{\"model\": {\"backbon\": \"resnet50\"}}", "x.json", &c), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "x.json: unknown key \"model.backbon\""), "%s", mn_last_error());
    cr_assert_neq(mn_config_parse("{\"train\": {\"batch_size\": \"8\"}}", "x.json", &c), 0);
    cr_assert(strstr(mn_last_error(), "\"train.batch_size\" must be a number"), "%s", mn_last_error());
    cr_assert_neq(mn_config_parse("{\"data\": {\"crop\": [16, 96]}}", "x.json", &c), 0);
    cr_assert(strstr(mn_last_error(), "\"data.crop\" = 16 is outside [32, 4096]"), "%s", mn_last_error());
    cr_assert_neq(mn_config_parse("{\"mutual\": {\"mode\": \"both\"}}", "x.json", &c), 0);
    cr_assert(strstr(mn_last_error(), "is not one of mutualnet|usnet|independent"), "%s", mn_last_error());
    cr_assert_neq(mn_config_parse("{\"train\": {\"seed\": 1,}}", "x.json", &c), 0);
    cr_assert(strstr(mn_last_error(), "x.json: invalid JSON at line 1, column 23"), "%s", mn_last_error());
    mn_config_default(&c);
    cr_assert_eq(mn_config_set(&c, "model.backbone", "resnet50"), 0);
    cr_assert_eq(mn_config_set(&c, "mutual.scales", "[1, 0.5]"), 0);
    cr_assert_eq(mn_config_set(&c, "train.iterations", "77"), 0);
    char *js = mn_config_to_json(&c);
    mn_config d;
    mn_config_default(&d);
    cr_assert_eq(mn_config_parse(js, "round trip", &d), 0, "%s", mn_last_error());
    free(js);
    cr_assert_str_eq(d.model.backbone, "resnet50");
    cr_assert_eq(d.mutual.n_scales, 2);
    cr_assert_float_eq(d.mutual.scales[1], 0.5f, 1e-7);
    cr_assert_eq(d.train.iterations, 77);
}
