/* The classification task end to end on a synthetic image folder: mutual learning lowers the
 * loss and memorises a small training split, the checkpoint reopens, batched scores agree with
 * per-image predictions, calibration builds a table that selects by budget, and an interrupted
 * run resumes with the same losses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/model.h"
#include "mn/cls_eval.h"
#include "mn/cls_model.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/synth.h"
#include "mn/train.h"

static char dir[64];

static void make_data(void)
{
    strcpy(dir, "/tmp/mn_cls_XXXXXX");
    cr_assert(mkdtemp(dir));
    char data[128];
    snprintf(data, sizeof data, "%s/shapes", dir);
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 24; /* 18 training images (2 empty ones are skipped), 4 validation images */
    s.width = s.height = 64;
    s.seed = 5;
    s.png = true;
    s.classification = true;
    cr_assert_eq(mn_synth_set_classes(&s, "circle,square,triangle"), 0);
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
}

static void remove_data(void) { tc_remove_tree(dir); }

/* A classifier small enough to train in seconds: the paper's recipe (sub-networks on KL only). */
static void tiny_config(mn_config *c, const char *out)
{
    mn_config_default(c);
    c->task = MN_TASK_CLASSIFICATION;
    strcpy(c->data.kind, "imagefolder");
    strcpy(c->data.images, "{split}");
    snprintf(c->data.root, sizeof c->data.root, "%s/shapes", dir);
    snprintf(c->train.out_dir, sizeof c->train.out_dir, "%s/%s", dir, out);
    c->data.crop[0] = c->data.crop[1] = 64;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
    /* the whole image every time: a box of all its area at its own ratio, no centre crop */
    c->data.crop_area[0] = c->data.crop_area[1] = 1.0f;
    c->data.crop_ratio[0] = c->data.crop_ratio[1] = 1.0f;
    c->data.eval_crop = 1.0f;
    c->data.workers = 1;
    c->mutual.num_subnets = 3;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 0.5f;
    c->mutual.gt_weight = 0.0f;
    c->mutual.distill = MN_DISTILL_KL;
    c->optim.lr = 0.01f;
    c->data.hflip = false; /* memorising 18 images: the same pixels every epoch */
    c->optim.warmup_iters = 2;
    c->train.batch_size = 8;
    c->train.iterations = 6;
    c->train.log_every = 1;
    c->train.checkpoint_every = 3;
}

TestSuite(cls_train, .init = make_data, .fini = remove_data, .timeout = 600);

Test(cls_train, resume_gives_the_same_losses)
{
    mn_config a, b;
    tiny_config(&a, "straight");
    tiny_config(&b, "interrupted");
    tc_expect_resume_matches(mn_train_classification, &a, &b, 3);
}

Test(cls_train, learns_reopens_scores_and_calibrates)
{
    mn_config c;
    tiny_config(&c, "learn");
    c.train.iterations = 100;
    c.train.checkpoint_every = 100;
    cr_assert_eq(mn_train_classification(&c, NULL, 0), 0, "%s", mn_last_error());
    double l[120] = {0};
    cr_assert_eq(tc_metrics_losses(c.train.out_dir, l, 120), 100);
    double first = 0, last = 0;
    for (int i = 1; i <= 10; i++) first += l[i] / 10, last += l[90 + i] / 10;
    cr_assert_lt(last, 0.8 * first, "loss did not fall: first ten %.4f, last ten %.4f", first, last);
    /* the metrics carry the full network's top-1 on each logged training batch: whole eighths
     * (batches of 8), and near 1 once the 18 images are memorised */
    char(*lines)[TC_METRICS_LINE] = calloc(120, TC_METRICS_LINE);
    cr_assert_eq(tc_metrics_lines(c.train.out_dir, lines, 120), 100);
    double fit = 0;
    for (int i = 1; i <= 100; i++) {
        const char *p = strstr(lines[i], "\"train_top1\": ");
        cr_assert_not_null(p, "line %d: %s", i, lines[i]);
        double v = atof(p + strlen("\"train_top1\": "));
        cr_assert(v >= 0 && v <= 1 && fabs(v * 8 - round(v * 8)) < 1e-3, "line %d: train_top1 %g", i, v);
        if (i > 90) fit += v / 10;
    }
    free(lines);
    cr_assert_geq(fit, 0.7, "the last ten training batches' top-1 averages %.3f", fit);

    char ckpt[700];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", c.train.out_dir);
    mn_cls_model m;
    cr_assert_eq(mn_cls_model_open(&m, ckpt), 0, "%s", mn_last_error());
    cr_assert_eq(m.num_classes, 3);
    cr_assert_str_eq(m.class_names[0], "circle");
    cr_assert_str_eq(m.class_names[2], "triangle");
    mn_dataset *tr, *va;
    mn_dataset_options o;
    mn_config_dataset_options(&m.cfg, "train", &o);
    cr_assert_eq(mn_dataset_open(&tr, &o), 0, "%s", mn_last_error());
    mn_config_dataset_options(&m.cfg, "val", &o);
    cr_assert_eq(mn_dataset_open(&va, &o), 0, "%s", mn_last_error());

    /* on the training split: the batched score equals counting per-image argmaxes, and top-5 of 3
     * classes is always right */
    mn_cls_scores s;
    cr_assert_eq(mn_cls_evaluate(&m, tr, 1.0f, 64, 64, 0, NULL, &s), 0, "%s", mn_last_error());
    cr_assert_eq(s.n, mn_dataset_size(tr));
    cr_assert_float_eq(s.top5, 1.0, 1e-12);
    mn_tape t;
    mn_tape_init(&t, 0);
    int right = 0;
    float p[3];
    for (int i = 0; i < s.n; i++) {
        mn_sample smp;
        cr_assert_eq(mn_dataset_get(tr, i, &smp), 0, "%s", mn_last_error());
        cr_assert_eq(mn_cls_predict(&m, &t, &smp.image, 1.0f, 64, 64, p), 0, "%s", mn_last_error());
        cr_assert_float_eq(p[0] + p[1] + p[2], 1.0f, 1e-5f);
        int best = p[1] > p[0] ? 1 : 0;
        if (p[2] > p[best]) best = 2;
        right += best == smp.class_id;
        mn_sample_free(&smp);
    }
    mn_tape_free(&t);
    cr_assert_float_eq(s.top1, (double)right / s.n, 1e-12, "batched %.4f, per image %d/%d", s.top1, right, s.n);

    /* calibration: 2 widths x 2 sizes, costs spread, budgets select within the table */
    mn_calib_config g = {.widths = {1.0f, 0.35f}, .n_widths = 2, .sizes = {{64, 64}, {32, 32}}, .n_sizes = 2, .batches = 2};
    cr_assert_eq(mn_cls_build_table(&m, tr, va, &g, 8, 0, 1, NULL, NULL), 0, "%s", mn_last_error());
    cr_assert_eq(m.table.n, 4);
    int64_t big = 0, small = INT64_MAX;
    for (int i = 0; i < 4; i++) {
        cr_assert(m.table.e[i].score >= 0 && m.table.e[i].score <= 1);
        if (m.table.e[i].macs > big) big = m.table.e[i].macs;
        if (m.table.e[i].macs < small) small = m.table.e[i].macs;
    }
    cr_assert_gt(big, 4 * small, "width and size should span the cost range");
    int64_t macs;
    cr_assert_eq(mn_cls_model_flops(&m, 1.0f, 64, 64, &macs), 0);
    cr_assert_eq(macs, big, "the full configuration is the dearest");
    cr_assert_eq(mn_query_select(&m.table, (double)small - 1), -1);
    /* with its calibrated statistics the full network has memorised most of its 18 training images
     * (the largest class alone is 8 of them) */
    cr_assert_eq(mn_cls_model_select(&m, 1.0f, 64, 64), 0);
    cr_assert_eq(mn_cls_evaluate(&m, tr, 1.0f, 64, 64, 0, NULL, &s), 0, "%s", mn_last_error());
    cr_assert_geq(s.top1, 0.8, "after 100 iterations the full network should fit its training images: %.3f", s.top1);
    char cal[700];
    snprintf(cal, sizeof cal, "%s/calibrated.safetensors", c.train.out_dir);
    cr_assert_eq(mn_cls_model_save(&m, cal, NULL, 0), 0, "%s", mn_last_error());
    mn_cls_model m2;
    cr_assert_eq(mn_cls_model_open(&m2, cal), 0, "%s", mn_last_error());
    cr_assert_eq(m2.table.n, 4);
    cr_assert_str_eq(m2.table.metric, "top-1");
    /* a calibrated configuration scores as the table says once its statistics are selected */
    int k = mn_query_select(&m2.table, (double)big);
    cr_assert(k >= 0);
    mn_cls_model_select(&m2, m2.table.e[k].width, m2.table.e[k].h, m2.table.e[k].w);
    cr_assert_eq(mn_cls_evaluate(&m2, va, m2.table.e[k].width, m2.table.e[k].h, m2.table.e[k].w, 0, NULL, &s), 0);
    cr_assert_float_eq(s.top1, m2.table.e[k].score, 1e-12);
    enum mn_task_kind task;
    cr_assert_eq(mn_model_task(cal, &task), 0);
    cr_assert_eq(task, MN_TASK_CLASSIFICATION);
    mn_cls_model_free(&m2);
    mn_cls_model_free(&m);
    mn_dataset_close(tr);
    mn_dataset_close(va);
}

Test(cls_train, refuses_labels_it_cannot_train_on)
{
    mn_config c;
    tiny_config(&c, "wrong_kind");
    strcpy(c.data.kind, "folder"); /* segmentation data: no image-level classes */
    cr_assert_neq(mn_train_classification(&c, NULL, 0), 0);
    cr_assert(strstr(mn_last_error(), "task \"classification\" cannot train on data.kind \"folder\" (it reads imagefolder)"),
              "%s", mn_last_error());
}

/* Calibration resets every BN layer, so every one must get statistics again: the classifier's
 * 1280-channel tail (features.18) used to be skipped, left at mean 0 / variance 1, because the
 * calibration ran the backbone without its classifier. */
Test(cls_train, calibration_gives_every_bn_statistics)
{
    mn_config c;
    tiny_config(&c, "calib_all");
    mn_cls_model m;
    const char *names[] = {"circle", "square", "triangle"};
    cr_assert_eq(mn_cls_model_create(&m, &c, 3, names, 1), 0, "%s", mn_last_error());
    mn_dataset *tr;
    mn_dataset_options o;
    mn_config_dataset_options(&c, "train", &o);
    cr_assert_eq(mn_dataset_open(&tr, &o), 0, "%s", mn_last_error());
    mn_cls_aug aug = mn_config_cls_aug(&c, true);
    mn_loader_options lo = {.batch_size = 4, .shuffle = true, .drop_last = true, .workers = 1, .prefetch = 2, .seed = 1};
    mn_loader *ld;
    cr_assert_eq(mn_loader_open_cls(&ld, tr, &aug, &lo), 0, "%s", mn_last_error());
    mn_slim_bn **bns;
    int nb = mn_backbone_bn_layers(m.net, &bns);
    cr_assert_gt(nb, 10);
    for (int i = 0; i < nb; i++) bns[i]->num_batches = 0;
    cr_assert_eq(mn_cls_calibrate_one(&m, ld, 0.5f, 64, 64, 2), 0, "%s", mn_last_error());
    for (int i = 0; i < nb; i++) {
        cr_assert_eq(bns[i]->num_batches, 2, "BN %s saw %lld batches", bns[i]->mean->name, (long long)bns[i]->num_batches);
        /* and its active channels hold real statistics, not the reset values */
        int active = 0;
        for (int64_t k = 0; k < bns[i]->var->var.val.shape[0]; k++) active += bns[i]->var->var.val.data[k] != 1.0f;
        cr_assert_gt(active, 0, "BN %s kept variance 1 everywhere", bns[i]->mean->name);
    }
    mn_loader_close(ld);
    mn_dataset_close(tr);
    mn_cls_model_free(&m);
}
