/* Export of one configuration (mn/export.h): the compact checkpoint computes what the slimmable
 * model computes at that configuration, bit for bit, from far fewer bytes; the ONNX files compute
 * it in onnxruntime within 1e-4 (tests/onnx/check_golden.js); the command's refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "common.h"

#include "mn/export.h"
#include "mn/image.h"
#include "mn/model.h"
#include "mn/rng.h"
#include "tools/commands.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_export_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(export, .init = make_dir, .fini = remove_dir, .timeout = 240);

/* The backbone of the next checkpoint made (MobileNetV2 unless a test says otherwise). */
static const char *backbone = "mobilenet_v2";

static void small_config(mn_config *c, enum mn_task_kind task)
{
    mn_config_default(c);
    snprintf(c->model.backbone, sizeof c->model.backbone, "%s", backbone);
    c->task = task;
    strcpy(c->data.kind, task == MN_TASK_DETECTION ? "coco" : task == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder");
    c->model.aspp_channels = 32;
    c->model.low_level_channels = 16;
    c->det.fpn_channels = 32;
    c->det.box_hidden = 64;
    c->det.short_side = 96;
    c->det.max_side = 128;
    c->data.eval_size[0] = 64;
    c->data.eval_size[1] = 96;
}

/* Non-trivial BN statistics and biases, so that folding and cutting them is tested: every 1-dim
 * tensor gets values from a seeded generator (variances and BN scales kept positive). */
static void perturb(mn_param_set *ps)
{
    mn_rng rng;
    mn_rng_seed(&rng, 11);
    for (int i = 0; i < ps->n; i++) {
        mn_param *p = ps->items[i];
        if (p->var.val.ndim != 1) continue;
        size_t len = strlen(p->name);
        bool var = len > 12 && !strcmp(p->name + len - 12, ".running_var");
        for (int64_t k = 0; k < p->var.val.shape[0]; k++)
            p->var.val.data[k] = var ? mn_rng_range(&rng, 0.5f, 2.0f) : mn_rng_range(&rng, -0.5f, 0.5f);
    }
}

/* A checkpoint of a freshly built, perturbed model of the task, at dir/<file>. */
static void make_checkpoint(enum mn_task_kind task, const char *file, char *path, size_t size)
{
    mn_config c;
    small_config(&c, task);
    const char *names[] = {task == MN_TASK_CLASSIFICATION ? "cat" : "background", task == MN_TASK_CLASSIFICATION ? "dog" : "cat",
                           task == MN_TASK_CLASSIFICATION ? "emu" : "dog"};
    int ids[] = {0, 17, 18};
    snprintf(path, size, "%s/%s", dir, file);
    int rc;
    if (task == MN_TASK_SEGMENTATION) {
        mn_seg_model s;
        rc = mn_seg_model_create(&s, &c, 3, names, 1);
        if (!rc) perturb(&s.ps), rc = mn_seg_model_save(&s, path, NULL, 7);
        if (!rc) mn_seg_model_free(&s);
    } else if (task == MN_TASK_DETECTION) {
        mn_det_model d;
        rc = mn_det_model_create(&d, &c, 3, names, ids, 96, 128, 1);
        if (!rc) perturb(&d.ps), rc = mn_det_model_save(&d, path, NULL, 7);
        if (!rc) mn_det_model_free(&d);
    } else {
        mn_cls_model k;
        rc = mn_cls_model_create(&k, &c, 3, names, 1);
        if (!rc) perturb(&k.ps), rc = mn_cls_model_save(&k, path, NULL, 7);
        if (!rc) mn_cls_model_free(&k);
    }
    cr_assert_eq(rc, 0, "%s", mn_last_error());
}

/* The network's outputs at (width, h, w) on a fixed random input, copied into *out (malloc'd),
 * *n floats: the segmenter's logits, the classifier's, or the detector's RPN maps and box head. */
static void outputs(mn_model *m, float width, int h, int w, float **out, int64_t *n)
{
    cr_assert_eq(mn_model_select(m, width, h, w), 0, "%s", mn_last_error());
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    mn_run r = {.tape = &t, .width = width, .training = false};
    int ih = h, iw = w;
    if (m->task == MN_TASK_DETECTION) cr_assert_eq(mn_det_model_input_size(&m->det, h, &ih, &iw), 0);
    int64_t shape[4] = {1, 3, ih, iw};
    mn_var *x = mn_var_new(&t, 4, shape);
    float *v = tc_random(3, 3 * (int64_t)ih * iw, -2.0f, 2.0f);
    memcpy(x->val.data, v, sizeof(float) * 3 * (size_t)ih * (size_t)iw);
    free(v);
    mn_var *ys[16];
    int ny = 0;
    if (m->task == MN_TASK_SEGMENTATION) {
        ys[ny++] = mn_seg_forward_raw(m->seg.net, &r, x);
    } else if (m->task == MN_TASK_CLASSIFICATION) {
        cr_assert_eq(mn_backbone_forward(m->cls.net, &r, x, NULL, &ys[ny]), 0, "%s", mn_last_error());
        ny++;
    } else {
        mn_var *p[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
        cr_assert_eq(mn_det_forward_maps(m->det.net, &r, x, p, obj, delta), 0, "%s", mn_last_error());
        for (int l = 0; l < MN_DET_LEVELS; l++) ys[ny++] = obj[l], ys[ny++] = delta[l];
        int c = mn_det_neck_channels(m->det.net, width), s = mn_det_cfg(m->det.net)->roi_size;
        int64_t ps[4] = {3, c, s, s};
        mn_var *pooled = mn_var_new(&t, 4, ps);
        float *pv = tc_random(4, 3 * (int64_t)c * s * s, -1.0f, 1.0f);
        memcpy(pooled->val.data, pv, sizeof(float) * (size_t)(3 * c * s * s));
        free(pv);
        cr_assert_eq(mn_det_forward_box_head(m->det.net, &r, pooled, &ys[ny], &ys[ny + 1]), 0, "%s", mn_last_error());
        ny += 2;
    }
    *n = 0;
    for (int i = 0; i < ny; i++) {
        cr_assert_not_null(ys[i], "%s", mn_last_error());
        *n += mn_tensor_numel(&ys[i]->val);
    }
    *out = malloc(sizeof(float) * (size_t)*n);
    for (int i = 0, off = 0; i < ny; off += (int)mn_tensor_numel(&ys[i]->val), i++)
        memcpy(*out + off, ys[i]->val.data, sizeof(float) * (size_t)mn_tensor_numel(&ys[i]->val));
    mn_tape_free(&t);
}

static long long file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    return (long long)st.st_size;
}

static void compact_case(enum mn_task_kind task, const char *name)
{
    char src[128], dst[160];
    make_checkpoint(task, name, src, sizeof src);
    snprintf(dst, sizeof dst, "%s.compact.safetensors", src);
    const float width = 0.5f;
    int h = task == MN_TASK_DETECTION ? 96 : 64, w = 96;
    mn_model m, k;
    cr_assert_eq(mn_model_open(&m, src), 0, "%s", mn_last_error());
    cr_assert_eq(mn_export_compact(&m, width, h, w, dst, src), 0, "%s", mn_last_error());
    float *want, *got;
    int64_t n_want, n_got;
    outputs(&m, width, h, w, &want, &n_want);
    cr_assert_eq(mn_model_open(&k, dst), 0, "%s", mn_last_error());
    outputs(&k, width, h, w, &got, &n_got);
    cr_assert_eq(n_got, n_want);
    /* the same channels, the same kernels: the same bits */
    for (int64_t i = 0; i < n_want; i++)
        cr_assert(got[i] == want[i], "%s: output %lld: compact %g, slimmable %g", name, (long long)i, (double)got[i],
                  (double)want[i]);
    /* MobileNetV2's stem at width 0.5: make_divisible(32 x 0.5, 8) = 16 filters of 3 x 3 x 3 */
    mn_safetensors st;
    cr_assert_eq(mn_st_read(dst, &st), 0, "%s", mn_last_error());
    const char *stem = task == MN_TASK_CLASSIFICATION ? "features.0.0.weight" : "backbone.features.0.0.weight";
    mn_tensor t;
    cr_assert_eq(mn_st_get_any_f32(&st, stem, &t), 0, "%s", mn_last_error());
    cr_assert(t.ndim == 4 && t.shape[0] == 16 && t.shape[1] == 3 && t.shape[2] == 3 && t.shape[3] == 3);
    cr_assert_null(mn_st_find(&st, "bn_bank.0"));
    mn_st_free(&st);
    /* about a quarter of the weights at half width: well under half the bytes */
    long long a = file_size(src), b = file_size(dst);
    cr_assert(b * 2 < a, "%s: compact %lld bytes, slimmable %lld", name, b, a);
    mn_fixed_info fx;
    cr_assert_eq(mn_model_fixed(dst, &fx), 0, "%s", mn_last_error());
    cr_assert(fx.fixed && fx.width == width && fx.h == h && !fx.calibrated);
    cr_assert_str_eq(fx.source, src);
    cr_assert_eq(mn_model_fixed(src, &fx), 0, "%s", mn_last_error());
    cr_assert(!fx.fixed);
    const mn_config *kc = mn_model_config(&k);
    cr_assert(kc->mutual.mode == MN_MODE_INDEPENDENT && kc->mutual.width == width);
    cr_assert_eq(mn_model_table(&k)->n, 1);
    free(want);
    free(got);
    mn_model_free(&m);
    mn_model_free(&k);
}

Test(export, compact_checkpoint_is_the_configuration_bit_for_bit)
{
    compact_case(MN_TASK_SEGMENTATION, "seg.safetensors");
    compact_case(MN_TASK_CLASSIFICATION, "cls.safetensors");
    compact_case(MN_TASK_DETECTION, "det.safetensors");
}

/* Exports the task's model at width 0.5 to ONNX with a golden directory and checks it in
 * onnxruntime; returns the checker's exit status (77: onnxruntime-node missing). */
static int onnx_case(enum mn_task_kind task, const char *name, char *why, size_t why_size)
{
    char src[128], onnx[160], golden[180], cmd[1024];
    make_checkpoint(task, name, src, sizeof src);
    snprintf(onnx, sizeof onnx, "%s.onnx", src);
    snprintf(golden, sizeof golden, "%s.golden", src);
    mn_image img;
    cr_assert_eq(mn_image_alloc(&img, 120, 90, 3), 0);
    for (size_t i = 0; i < (size_t)120 * 90 * 3; i++) img.data[i] = (uint8_t)(i * 31 + (i / 97) * 7);
    mn_model m;
    cr_assert_eq(mn_model_open(&m, src), 0, "%s", mn_last_error());
    mn_export_golden g = {golden, &img};
    char *second = NULL;
    int h = task == MN_TASK_DETECTION ? 96 : 64;
    cr_assert_eq(mn_export_onnx(&m, 0.5f, h, 96, onnx, src, &g, &second), 0, "%s", mn_last_error());
    cr_assert_eq(second != NULL, task == MN_TASK_DETECTION);
    free(second);
    mn_model_free(&m);
    mn_image_free(&img);
    /* kept in the build folder for onnx.checker (tools/onnx_check.py, run by CI: no Python here) */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/tests/onnx-out && cp %s.onnx %s.box_head.onnx %s/tests/onnx-out/ 2>/dev/null",
             MN_BUILD_ROOT, src, src, MN_BUILD_ROOT);
    (void)system(cmd);
    snprintf(cmd, sizeof cmd, "command -v node >/dev/null || exit 77; node %s/tests/onnx/check_golden.js %s 1e-4 > %s.log 2>&1",
             MN_SOURCE_DIR, golden, golden);
    int st = system(cmd);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    char log[200];
    snprintf(log, sizeof log, "%s.log", golden);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(why, 1, why_size - 1, f) : 0;
    why[n] = 0;
    if (f) fclose(f);
    return rc;
}

Test(export, onnx_matches_onnxruntime_within_1e_4)
{
    static const enum mn_task_kind tasks[] = {MN_TASK_SEGMENTATION, MN_TASK_CLASSIFICATION, MN_TASK_DETECTION};
    static const char *const names[] = {"seg.safetensors", "cls.safetensors", "det.safetensors"};
    if (!mn_export_has_onnx()) cr_skip_test("this build has no ONNX support (protobuf-c, libonnx-dev)");
    for (int i = 0; i < 3; i++) {
        char why[4096];
        int rc = onnx_case(tasks[i], names[i], why, sizeof why);
        /* CI sets MN_REQUIRE_ONNX: there a missing runtime is a failure, not a skip */
        cr_assert(rc != 77 || !getenv("MN_REQUIRE_ONNX"), "MN_REQUIRE_ONNX is set but: %s", why);
        if (rc == 77) cr_skip_test("node or onnxruntime-node is missing (npm install in tests/onnx): %s", why);
        cr_assert_eq(rc, 0, "%s: onnxruntime disagrees:\n%s", names[i], why);
        cr_log_info("%s", why);
    }
}

static int run_export(char **err, int argc, char **argv)
{
    char epath[128];
    snprintf(epath, sizeof epath, "%s/stderr.txt", dir);
    return tc_run_cmd(mn_cmd_export, epath, err, argc, argv);
}

/* ResNet-50 (max pooling, bottlenecks with projections) and MobileNetV1 go through the same trace. */
Test(export, other_backbones_in_onnxruntime)
{
    static const char *const archs[] = {"resnet50", "mobilenet_v1"};
    if (!mn_export_has_onnx()) cr_skip_test("this build has no ONNX support (protobuf-c, libonnx-dev)");
    for (int i = 0; i < 2; i++) {
        backbone = archs[i];
        char name[64], why[4096];
        snprintf(name, sizeof name, "seg_%s.safetensors", archs[i]);
        int rc = onnx_case(MN_TASK_SEGMENTATION, name, why, sizeof why);
        cr_assert(rc != 77 || !getenv("MN_REQUIRE_ONNX"), "MN_REQUIRE_ONNX is set but: %s", why);
        if (rc == 77) cr_skip_test("node or onnxruntime-node is missing (npm install in tests/onnx): %s", why);
        cr_assert_eq(rc, 0, "%s: onnxruntime disagrees:\n%s", name, why);
        cr_log_info("%s", why);
    }
}

Test(export, command_refuses_bad_requests_and_keeps_files)
{
    char src[128], out[160], *err = NULL;
    make_checkpoint(MN_TASK_SEGMENTATION, "seg.safetensors", src, sizeof src);
    snprintf(out, sizeof out, "%s/small.pt", dir);
    char *a1[] = {"export", "--checkpoint", src, "--out", out};
    cr_assert_eq(run_export(&err, 5, a1), MN_EXIT_USAGE);
    cr_assert(strstr(err, "must end in .onnx or .safetensors"), "%s", err);
    free(err);
    /* an existing file is kept unless --overwrite */
    snprintf(out, sizeof out, "%s/small.safetensors", dir);
    FILE *f = fopen(out, "w");
    fputs("keep me", f);
    fclose(f);
    char *a2[] = {"export", "--checkpoint", src, "--out", out, "--width", "0.5"};
    cr_assert_eq(run_export(&err, 7, a2), MN_EXIT_FAIL);
    cr_assert(strstr(err, "exists; give --overwrite"), "%s", err);
    free(err);
    cr_assert_eq(file_size(out), 7);
    char *a3[] = {"export", "--checkpoint", src, "--out", out, "--width", "0.5", "--overwrite"};
    cr_assert_eq(run_export(&err, 8, a3), MN_EXIT_OK, "%s", err);
    free(err);
    mn_fixed_info fx;
    cr_assert_eq(mn_model_fixed(out, &fx), 0, "%s", mn_last_error());
    cr_assert(fx.fixed && fx.width == 0.5f && fx.h == 64 && fx.w == 96);
    /* a width the weights were not trained at is refused with the range; a compact checkpoint has one width */
    char *a5[] = {"export", "--checkpoint", src, "--out", out, "--width", "0.2", "--overwrite"};
    cr_assert_eq(run_export(&err, 8, a5), MN_EXIT_FAIL);
    cr_assert(strstr(err, "width 0.2 is outside the trained range [0.35, 1]"), "%s", err);
    free(err);
    char small[192];
    snprintf(small, sizeof small, "%s/again.safetensors", dir);
    char *a6[] = {"export", "--checkpoint", out, "--out", small, "--width", "1"};
    cr_assert_eq(run_export(&err, 7, a6), MN_EXIT_FAIL);
    cr_assert(strstr(err, "width 1 is outside the trained range [0.5, 0.5] (this checkpoint holds one width)"), "%s",
              err);
    free(err);
    /* a budget needs a query table, which a fresh checkpoint has not */
    char *a4[] = {"export", "--checkpoint", src, "--out", out, "--budget", "1G", "--overwrite"};
    cr_assert_eq(run_export(&err, 8, a4), MN_EXIT_FAIL);
    cr_assert(strstr(err, "no query table"), "%s", err);
    free(err);
}
