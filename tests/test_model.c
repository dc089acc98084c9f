/* The common model handle (mn/model.h) over checkpoints of the three tasks, and `mutualnet info`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "common.h"

#include "mn/model.h"
/* the command is compiled into this test so that it runs in-process */
#include "tools/cmd_info.c"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_model_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(model, .init = make_dir, .fini = remove_dir);

static void small_config(mn_config *c, enum mn_task_kind task)
{
    mn_config_default(c);
    c->task = task;
    strcpy(c->data.kind, task == MN_TASK_DETECTION ? "coco" : task == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder");
    c->model.aspp_channels = 16;
    c->model.low_level_channels = 16;
    c->det.fpn_channels = 16;
    c->det.box_hidden = 32;
    c->det.short_side = 96;
    c->det.max_side = 128;
    c->data.crop[0] = c->data.crop[1] = 64;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 0.5f;
}

/* Saves a freshly built model of the task with classes "background, cat, dog" (a classifier: "cat,
 * dog, emu") and reopens it through the common handle. */
static void round_trip(enum mn_task_kind task, const char *file, mn_model *m, mn_config *c)
{
    small_config(c, task);
    const char *names[] = {task == MN_TASK_CLASSIFICATION ? "cat" : "background", task == MN_TASK_CLASSIFICATION ? "dog" : "cat",
                           task == MN_TASK_CLASSIFICATION ? "emu" : "dog"};
    int ids[] = {0, 17, 18};
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc;
    if (task == MN_TASK_SEGMENTATION) {
        mn_seg_model s;
        rc = mn_seg_model_create(&s, c, 3, names, 1);
        if (!rc) rc = mn_seg_model_save(&s, path, NULL, 7);
        if (!rc) mn_seg_model_free(&s);
    } else if (task == MN_TASK_DETECTION) {
        mn_det_model d;
        rc = mn_det_model_create(&d, c, 3, names, ids, 96, 128, 1);
        if (!rc) rc = mn_det_model_save(&d, path, NULL, 7);
        if (!rc) mn_det_model_free(&d);
    } else {
        mn_cls_model k;
        rc = mn_cls_model_create(&k, c, 3, names, 1);
        if (!rc) rc = mn_cls_model_save(&k, path, NULL, 7);
        if (!rc) mn_cls_model_free(&k);
    }
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    enum mn_task_kind t;
    cr_assert_eq(mn_model_task(path, &t), 0, "%s", mn_last_error());
    cr_assert_eq(t, task);
    cr_assert_eq(mn_model_open(m, path), 0, "%s", mn_last_error());
    cr_assert_eq(m->task, task);
    cr_assert_eq(mn_model_num_classes(m), 3);
    for (int k = 0; k < 3; k++) cr_assert_str_eq(mn_model_class_name(m, k), names[k]);
    cr_assert_null(mn_model_class_name(m, 3));
    cr_assert_eq(mn_model_config(m)->task, task);
    cr_assert_eq(mn_model_config(m)->mutual.n_scales, 2);
    cr_assert_eq(mn_model_table(m)->n, 0);
    cr_assert_gt(mn_model_params(m)->n, 10);
    cr_assert_not_null(mn_model_train_stats(m));
}

Test(model, one_handle_for_every_task)
{
    static const enum mn_task_kind tasks[] = {MN_TASK_SEGMENTATION, MN_TASK_DETECTION, MN_TASK_CLASSIFICATION};
    for (int i = 0; i < 3; i++) {
        mn_model m;
        mn_config c;
        char file[32];
        snprintf(file, sizeof file, "task%d.safetensors", i);
        round_trip(tasks[i], file, &m, &c);
        /* the cost of a configuration is the task's own count; narrower and smaller costs less */
        int64_t full = 0, small = 0;
        cr_assert_eq(mn_model_select(&m, 1.0f, 64, 64), 0, "%s", mn_last_error());
        cr_assert_eq(mn_model_flops(&m, 1.0f, tasks[i] == MN_TASK_DETECTION ? 96 : 64, 64, &full), 0, "%s",
                     mn_last_error());
        cr_assert_eq(mn_model_flops(&m, 0.35f, tasks[i] == MN_TASK_DETECTION ? 48 : 32, 32, &small), 0, "%s",
                     mn_last_error());
        cr_assert(small > 0 && small * 4 < full, "task %d: %lld MACs narrow and small, %lld at full", i, (long long)small,
                  (long long)full);
        if (tasks[i] == MN_TASK_SEGMENTATION) {
            int64_t direct = 0;
            cr_assert_eq(mn_seg_flops(m.seg.net, 1.0f, 64, 64, &direct, NULL), 0);
            cr_assert_eq(direct, full);
        }
        /* saved through the handle, the same model comes back */
        char again[128];
        snprintf(again, sizeof again, "%s/again%d.safetensors", dir, i);
        cr_assert_eq(mn_model_save(&m, again, NULL, 0), 0, "%s", mn_last_error());
        mn_model m2;
        cr_assert_eq(mn_model_open(&m2, again), 0, "%s", mn_last_error());
        mn_param_set *a = mn_model_params(&m), *b = mn_model_params(&m2);
        cr_assert_eq(a->n, b->n);
        for (int p = 0; p < a->n; p++)
            cr_assert_eq(memcmp(a->items[p]->var.val.data, b->items[p]->var.val.data,
                                sizeof(float) * (size_t)mn_tensor_numel(&a->items[p]->var.val)),
                         0, "%s", a->items[p]->name);
        mn_model_free(&m2);
        mn_model_free(&m);
    }
}

/* Every task keeps names of up to 63 bytes whole and refuses longer ones by class and length
 * (the segmenter and the detector used to cut them at 31 bytes without a word). */
Test(model, class_names_are_kept_whole_or_refused)
{
    char long_name[64], too_long[65];
    memset(long_name, 'n', 63);
    long_name[63] = 0;
    memset(too_long, 't', 64);
    too_long[64] = 0;
    static const enum mn_task_kind tasks[] = {MN_TASK_SEGMENTATION, MN_TASK_DETECTION, MN_TASK_CLASSIFICATION};
    for (int i = 0; i < 3; i++) {
        mn_config c;
        small_config(&c, tasks[i]);
        const char *names[] = {"background", "cat", long_name}, *bad[] = {"background", too_long, "dog"};
        int ids[] = {0, 1, 2};
        char path[128];
        snprintf(path, sizeof path, "%s/names%d.safetensors", dir, i);
        int rc, refused;
        if (tasks[i] == MN_TASK_SEGMENTATION) {
            mn_seg_model m;
            rc = mn_seg_model_create(&m, &c, 3, names, 1);
            if (!rc) rc = mn_seg_model_save(&m, path, NULL, 0);
            if (!rc) mn_seg_model_free(&m);
            refused = mn_seg_model_create(&m, &c, 3, bad, 1);
        } else if (tasks[i] == MN_TASK_DETECTION) {
            mn_det_model m;
            rc = mn_det_model_create(&m, &c, 3, names, ids, 96, 128, 1);
            if (!rc) rc = mn_det_model_save(&m, path, NULL, 0);
            if (!rc) mn_det_model_free(&m);
            refused = mn_det_model_create(&m, &c, 3, bad, ids, 96, 128, 1);
        } else {
            mn_cls_model m;
            rc = mn_cls_model_create(&m, &c, 3, names, 1);
            if (!rc) rc = mn_cls_model_save(&m, path, NULL, 0);
            if (!rc) mn_cls_model_free(&m);
            refused = mn_cls_model_create(&m, &c, 3, bad, 1);
        }
        cr_assert_eq(rc, 0, "task %d: %s", i, mn_last_error());
        cr_assert_eq(refused, MN_EINVAL, "task %d: a 64-byte name", i);
        cr_assert(strstr(mn_last_error(), "class 1") && strstr(mn_last_error(), "64 bytes"), "%s", mn_last_error());
        mn_model m;
        cr_assert_eq(mn_model_open(&m, path), 0, "%s", mn_last_error());
        cr_assert_str_eq(mn_model_class_name(&m, 2), long_name);
        mn_model_free(&m);
    }
}

/* A classifier starts from weights trained on other classes: everything is copied but a
 * classifier of another class count, which keeps its random initialisation. */
Test(model, classifier_starts_from_another_class_count)
{
    mn_config c;
    small_config(&c, MN_TASK_CLASSIFICATION);
    const char *five[] = {"a", "b", "c", "d", "e"};
    mn_cls_model src;
    cr_assert_eq(mn_cls_model_create(&src, &c, 5, five, 7), 0, "%s", mn_last_error());
    char path[128];
    snprintf(path, sizeof path, "%s/five.safetensors", dir);
    cr_assert_eq(mn_cls_model_save(&src, path, NULL, 0), 0, "%s", mn_last_error());
    snprintf(c.model.init, sizeof c.model.init, "%s", path);
    for (int k = 3; k <= 5; k += 2) {
        mn_cls_model m;
        cr_assert_eq(mn_cls_model_create(&m, &c, k, five, 8), 0, "%d classes: %s", k, mn_last_error());
        cr_assert_eq(m.init.n_mismatched, k == 5 ? 0 : 2, "%d classes: %d of another shape", k, m.init.n_mismatched);
        cr_assert_eq(m.init.n_loaded + m.init.n_mismatched, src.ps.n);
        cr_assert_eq(m.init.n_missing + m.init.n_unused, 0);
        for (int p = 0; p < m.ps.n; p++) {
            const mn_tensor *a = &m.ps.items[p]->var.val, *b = &mn_param_find(&src.ps, m.ps.items[p]->name)->var.val;
            bool head = !strncmp(m.ps.items[p]->name, "classifier.", 11);
            bool same = mn_tensor_numel(a) == mn_tensor_numel(b) &&
                        !memcmp(a->data, b->data, sizeof(float) * (size_t)mn_tensor_numel(a));
            cr_assert_eq(same, !head || k == 5, "%d classes: %s %s", k, m.ps.items[p]->name, same ? "copied" : "not copied");
        }
        mn_cls_model_free(&m);
    }
    mn_cls_model_free(&src);
}

/* The paper's two stages: a segmenter and a detector start from a classification checkpoint's
 * backbone (its classifier and optimiser state are not theirs and are left out). */
Test(model, dense_models_start_from_a_classification_checkpoint)
{
    mn_config c;
    small_config(&c, MN_TASK_CLASSIFICATION);
    const char *names[] = {"background", "a", "b"};
    mn_cls_model src;
    cr_assert_eq(mn_cls_model_create(&src, &c, 3, names, 7), 0, "%s", mn_last_error());
    char path[128];
    snprintf(path, sizeof path, "%s/pretrained.safetensors", dir);
    mn_sgd opt;
    mn_sgd_config oc = {.lr = 0.1f, .momentum = 0.9f};
    cr_assert_eq(mn_sgd_init(&opt, &src.ps, &oc), 0, "%s", mn_last_error());
    cr_assert_eq(mn_cls_model_save(&src, path, &opt, 10), 0, "%s", mn_last_error());
    int features = 0;
    for (int p = 0; p < src.ps.n; p++) features += !strncmp(src.ps.items[p]->name, "features.", 9);
    for (int task = 0; task < 2; task++) {
        small_config(&c, task ? MN_TASK_DETECTION : MN_TASK_SEGMENTATION);
        snprintf(c.model.init, sizeof c.model.init, "%s", path);
        mn_param_set *ps;
        int copied;
        mn_seg_model s;
        mn_det_model d;
        int ids[] = {0, 1, 2};
        if (task == 0) {
            cr_assert_eq(mn_seg_model_create(&s, &c, 3, names, 1), 0, "%s", mn_last_error());
            ps = &s.ps;
            copied = s.init.n_loaded;
        } else {
            cr_assert_eq(mn_det_model_create(&d, &c, 3, names, ids, 96, 128, 1), 0, "%s", mn_last_error());
            ps = &d.ps;
            copied = d.init.n_loaded;
        }
        /* MobileNetV2's features.18 (the 1280-channel tail) is built only with a classifier */
        int want = 0;
        for (int p = 0; p < src.ps.n; p++) {
            char full[300];
            snprintf(full, sizeof full, "backbone.%s", src.ps.items[p]->name);
            mn_param *q = mn_param_find(ps, full);
            if (!q) continue;
            want++;
            cr_assert(!memcmp(q->var.val.data, src.ps.items[p]->var.val.data,
                              sizeof(float) * (size_t)mn_tensor_numel(&q->var.val)), "%s differs", full);
        }
        cr_assert_eq(copied, want, "task %d: %d tensors copied, %d backbone tensors match", task, copied, want);
        cr_assert(want > features / 2, "task %d: only %d of %d feature tensors", task, want, features);
        if (task == 0) mn_seg_model_free(&s);
        else mn_det_model_free(&d);
    }
    mn_sgd_free(&opt);
    mn_cls_model_free(&src);
}

Test(model, not_a_checkpoint)
{
    char path[128];
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    FILE *f = fopen(path, "w");
    fputs("not a checkpoint", f);
    fclose(f);
    mn_model m;
    cr_assert_neq(mn_model_open(&m, path), 0);
    cr_assert(strstr(mn_last_error(), path), "%s", mn_last_error());
}

Test(model, info_prints_what_a_checkpoint_holds, .init = cr_redirect_stdout)
{
    make_dir();
    mn_model m;
    mn_config c;
    round_trip(MN_TASK_DETECTION, "det.safetensors", &m, &c);
    mn_model_free(&m);
    char path[128];
    snprintf(path, sizeof path, "%s/det.safetensors", dir);
    char *argv[] = {"info", path, NULL};
    cr_assert_eq(mn_cmd_info(2, argv), MN_EXIT_OK);
    fflush(stdout);
    FILE *out = cr_get_redirected_stdout();
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, out);
    text[n] = 0;
    cr_assert(strstr(text, "task         detection\n"), "%s", text);
    cr_assert(strstr(text, "model        mobilenet_v2, Faster R-CNN + FPN 16, box head 32, short side 96, long side up to 128\n"),
              "%s", text);
    cr_assert(strstr(text, "trained      mutualnet (widths x scales), 7 iterations of batch 8, seed 1\n"), "%s", text);
    cr_assert(strstr(text, "widths       0.35 .. 1\n"), "%s", text);
    cr_assert(strstr(text, "scales       1, 0.5\n"), "%s", text);
    cr_assert(strstr(text, "classes      3: background cat dog\n"), "%s", text);
    cr_assert(strstr(text, "query table  none (not calibrated"), "%s", text);
    remove_dir();
}
