/* Starting from other weights (model.init: what is loaded, re-initialised and left unused, and
 * the refusal of a file that almost nothing matches) and the fine-tuning controls
 * (model.frozen_stages, model.norm_eval, optim.backbone_lr_mult). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <cjson/cJSON.h>

#include "common.h"

#include "mn/checkpoint.h"
#include "mn/cls_model.h"
#include "mn/fileio.h"
#include "mn/ops.h"
#include "mn/seg_model.h"
#include "mn/synth.h"
#include "mn/train.h"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_finetune_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(finetune, .init = make_dir, .fini = remove_dir, .timeout = 600);

/* A MobileNetV2 segmenter with a small head on 64x64 inputs. */
static void small_config(mn_config *c, enum mn_task_kind task)
{
    mn_config_default(c);
    c->task = task;
    strcpy(c->data.kind, task == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder");
    c->model.aspp_channels = 16;
    c->model.low_level_channels = 16;
    c->data.crop[0] = c->data.crop[1] = 64;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
    c->mutual.n_scales = 2;
    c->mutual.scales[1] = 0.5f;
}

static const char *const classes[] = {"background", "a", "b"};

static bool is_backbone(const char *name) { return !strncmp(name, "backbone.", 9); }

/* The stage of a segmenter's parameter (-1 for the head). */
static int stage_of(const char *name)
{
    return is_backbone(name) ? mn_backbone_stage(MN_ARCH_MOBILENET_V2, name + 9) : -1;
}

/* Writes the backbone of a segmenter built from seed under torchvision's names (no prefix), with
 * BN statistics as pretrained weights have them: estimated on inputs (here uniform in [-0.5, 1),
 * unlike the tests' [-1, 1) batches) rather than the defaults, so that loading them shows. */
static void write_backbone(const char *path, uint64_t seed)
{
    mn_config c;
    small_config(&c, MN_TASK_SEGMENTATION);
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 3, classes, seed), 0, "%s", mn_last_error());
    mn_slim_bn **bns;
    int nb = mn_seg_bn_layers(m.net, &bns);
    for (int i = 0; i < nb; i++) mn_slim_bn_reset(bns[i]);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int64_t xs[4] = {4, 3, 64, 64};
    float *x = tc_random(seed, 4 * 3 * 64 * 64, -0.5f, 1.0f);
    mn_run r = {.tape = &t, .width = 1.0f, .training = true, .bn_momentum = -1.0f};
    cr_assert(mn_seg_forward(m.net, &r, mn_var_wrap(&t, mn_tensor_view(x, 4, xs))), "%s", mn_last_error());
    mn_tape_free(&t);
    free(x);
    mn_st_item *items = calloc((size_t)m.ps.n, sizeof *items);
    int n = 0;
    for (int i = 0; i < m.ps.n; i++) {
        mn_param *p = m.ps.items[i];
        if (!is_backbone(p->name)) continue;
        items[n++] = (mn_st_item){p->name + 9, MN_ST_F32, p->var.val.ndim, p->var.val.shape, p->var.val.data};
    }
    cr_assert_eq(mn_st_write(path, items, n, NULL, NULL, 0), 0, "%s", mn_last_error());
    free(items);
    mn_seg_model_free(&m);
}

/* Every value of every parameter, in registration order (caller frees). */
static float **snapshot(const mn_param_set *ps)
{
    float **s = calloc((size_t)ps->n, sizeof *s);
    for (int i = 0; i < ps->n; i++) {
        size_t b = sizeof(float) * (size_t)mn_tensor_numel(&ps->items[i]->var.val);
        s[i] = malloc(b);
        memcpy(s[i], ps->items[i]->var.val.data, b);
    }
    return s;
}

static void snapshot_free(float **s, int n)
{
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

static bool unchanged(const mn_param *p, const float *before)
{
    return !memcmp(p->var.val.data, before, sizeof(float) * (size_t)mn_tensor_numel(&p->var.val));
}

/* Forward and backward of a segmenter at full width in training mode (the teacher's pass: BN
 * running statistics move with momentum 0.1) on a fixed random batch: the gradients. */
static void seg_backward(mn_seg_model *m, uint64_t seed)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    int64_t xs[4] = {2, 3, 64, 64};
    float *x = tc_random(seed, 2 * 3 * 64 * 64, -1.0f, 1.0f);
    int32_t *labels = malloc(sizeof(int32_t) * 2 * 64 * 64);
    for (int i = 0; i < 2 * 64 * 64; i++) labels[i] = (int32_t)((x[i] + 1.0f) * 1.5f) % 3;
    mn_run r = {.tape = &t, .width = 1.0f, .training = true, .bn_momentum = 0.1f};
    mn_var *logits = mn_seg_forward(m->net, &r, mn_var_wrap(&t, mn_tensor_view(x, 4, xs)));
    mn_var *loss = mn_cross_entropy(&t, logits, labels, MN_IGNORE_LABEL);
    cr_assert(loss, "%s", mn_last_error());
    mn_param_zero_grad(&m->ps);
    cr_assert_eq(mn_backward(&t, loss), 0, "%s", mn_last_error());
    mn_tape_free(&t);
    free(labels);
    free(x);
}

static void seg_steps(mn_seg_model *m, int steps)
{
    mn_sgd opt;
    mn_sgd_config oc = {.lr = 0.05f, .momentum = 0.9f, .nesterov = true, .weight_decay = 4e-5f};
    cr_assert_eq(mn_sgd_init(&opt, &m->ps, &oc), 0, "%s", mn_last_error());
    for (int s = 0; s < steps; s++) {
        seg_backward(m, 100 + (uint64_t)s);
        cr_assert_eq(mn_sgd_step(&opt, oc.lr), 0, "%s", mn_last_error());
    }
    mn_sgd_free(&opt);
}

static void init_config(mn_config *c, const char *file)
{
    small_config(c, MN_TASK_SEGMENTATION);
    snprintf(c->model.init, sizeof c->model.init, "%s/%s", dir, file);
}

/* ---- stages ---- */

Test(finetune, stages_of_parameter_names)
{
    static const struct {
        enum mn_arch arch;
        const char *name;
        int stage;
    } cases[] = {
        {MN_ARCH_MOBILENET_V2, "features.0.0.weight", 0},     {MN_ARCH_MOBILENET_V2, "features.1.conv.0.0.weight", 1},
        {MN_ARCH_MOBILENET_V2, "features.3.conv.3.bias", 1},  {MN_ARCH_MOBILENET_V2, "features.4.conv.0.0.weight", 2},
        {MN_ARCH_MOBILENET_V2, "features.6.conv.2.weight", 2}, {MN_ARCH_MOBILENET_V2, "features.7.conv.1.1.weight", 3},
        {MN_ARCH_MOBILENET_V2, "features.13.conv.3.running_var", 3},
        {MN_ARCH_MOBILENET_V2, "features.14.conv.0.0.weight", 4}, {MN_ARCH_MOBILENET_V2, "features.17.conv.3.bias", 4},
        {MN_ARCH_MOBILENET_V2, "features.18.1.weight", 4},    {MN_ARCH_MOBILENET_V2, "classifier.1.weight", 5},
        {MN_ARCH_MOBILENET_V2, "conv1.weight", -1},           {MN_ARCH_MOBILENET_V2, "features.x.weight", -1},
        {MN_ARCH_MOBILENET_V1, "features.0.1.weight", 0},     {MN_ARCH_MOBILENET_V1, "features.3.pw.0.weight", 1},
        {MN_ARCH_MOBILENET_V1, "features.4.dw.1.bias", 2},    {MN_ARCH_MOBILENET_V1, "features.11.pw.1.weight", 3},
        {MN_ARCH_MOBILENET_V1, "features.13.pw.0.weight", 4}, {MN_ARCH_MOBILENET_V1, "classifier.weight", 5},
        {MN_ARCH_RESNET50, "conv1.weight", 0},                {MN_ARCH_RESNET50, "bn1.running_mean", 0},
        {MN_ARCH_RESNET50, "layer1.0.downsample.1.weight", 1}, {MN_ARCH_RESNET50, "layer3.5.conv2.weight", 3},
        {MN_ARCH_RESNET50, "layer4.2.bn3.bias", 4},           {MN_ARCH_RESNET50, "fc.weight", 5},
        {MN_ARCH_RESNET50, "features.0.0.weight", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_eq(mn_backbone_stage(cases[i].arch, cases[i].name), cases[i].stage, "%s %s: %d, expected %d",
                     mn_arch_name(cases[i].arch), cases[i].name, mn_backbone_stage(cases[i].arch, cases[i].name),
                     cases[i].stage);
    /* every parameter the MobileNets register has a stage, in registration order */
    for (int a = 0; a < 2; a++) {
        mn_config c;
        small_config(&c, MN_TASK_CLASSIFICATION);
        strcpy(c.model.backbone, a ? "mobilenet_v1" : "mobilenet_v2");
        mn_cls_model m;
        cr_assert_eq(mn_cls_model_create(&m, &c, 2, classes + 1, 1), 0, "%s", mn_last_error());
        int last = 0, seen[6] = {0};
        for (int i = 0; i < m.ps.n; i++) {
            int s = mn_backbone_stage(a ? MN_ARCH_MOBILENET_V1 : MN_ARCH_MOBILENET_V2, m.ps.items[i]->name);
            cr_assert(s >= last && s <= MN_BACKBONE_STAGES, "%s: stage %d after %d", m.ps.items[i]->name, s, last);
            last = s;
            seen[s]++;
        }
        for (int s = 0; s <= MN_BACKBONE_STAGES; s++) cr_expect_gt(seen[s], 0, "%s: no parameter in stage %d", c.model.backbone, s);
        mn_cls_model_free(&m);
    }
}

/* ---- what model.init loads ---- */

/* A crafted file: the backbone under torchvision's names but for three tensors left out and two of
 * another shape, plus four tensors this model does not have, an optimiser buffer and PyTorch's
 * BN counter. The report counts each kind; loaded tensors have the file's values, the others
 * those of a model built from the same seed without model.init. */
Test(finetune, init_report_counts_a_crafted_file)
{
    char src_path[128];
    snprintf(src_path, sizeof src_path, "%s/src.safetensors", dir);
    write_backbone(src_path, 5);
    mn_safetensors src;
    cr_assert_eq(mn_st_read(src_path, &src), 0, "%s", mn_last_error());
    int n_bb = src.n;
    mn_st_item *items = calloc((size_t)n_bb + 8, sizeof *items);
    int n = 0;
    static const int64_t odd_shape[1] = {3};
    static const float odd[3] = {1, 2, 3};
    for (int i = 3; i < n_bb; i++) { /* entries 0..2 left out */
        const mn_st_entry *e = &src.entries[i];
        items[n] = (mn_st_item){e->name, MN_ST_F32, e->ndim, e->shape, e->data};
        if (i == 3 || i == 10) items[n].ndim = 1, items[n].shape = odd_shape, items[n].data = odd;
        n++;
    }
    static const float extra[4] = {0.5f, 0.25f, 0.125f, 1};
    static const int64_t four[1] = {4};
    static const int64_t counter = 7, one[1] = {1};
    const char *unused[] = {"extra.0.weight", "extra.1.weight", "head.other.weight", "module.features.0.0.weight"};
    for (int k = 0; k < 4; k++) items[n++] = (mn_st_item){unused[k], MN_ST_F32, 1, four, extra};
    items[n++] = (mn_st_item){"optim.features.0.0.weight", MN_ST_F32, 1, four, extra};
    items[n++] = (mn_st_item){"features.0.1.num_batches_tracked", MN_ST_I64, 1, one, &counter};
    char path[128];
    snprintf(path, sizeof path, "%s/crafted.safetensors", dir);
    cr_assert_eq(mn_st_write(path, items, n, NULL, NULL, 0), 0, "%s", mn_last_error());

    mn_config c;
    init_config(&c, "crafted.safetensors");
    mn_seg_model m, plain;
    cr_assert_eq(mn_seg_model_create(&m, &c, 3, classes, 1), 0, "%s", mn_last_error());
    c.model.init[0] = 0;
    cr_assert_eq(mn_seg_model_create(&plain, &c, 3, classes, 1), 0, "%s", mn_last_error());
    int heads = m.ps.n - n_bb;
    const mn_init_report *r = &m.init;
    cr_assert_eq(r->n_backbone, n_bb);
    cr_assert_eq(r->n_loaded, n_bb - 5, "%d loaded", r->n_loaded);
    cr_assert_eq(r->n_backbone_loaded, n_bb - 5);
    cr_assert_eq(r->n_missing, 3 + heads, "%d missing", r->n_missing);
    cr_assert_eq(r->n_mismatched, 2, "%d of another shape", r->n_mismatched);
    cr_assert_eq(r->n_unused, 4, "%d unused", r->n_unused);
    cr_assert_eq(r->n_skipped, 2, "%d skipped", r->n_skipped);
    for (int k = 0; k < 4; k++) cr_expect_str_eq(r->unused[k], unused[k]);
    char want[256];
    snprintf(want, sizeof want, "backbone.%s (file [3], model [", src.entries[3].name);
    cr_expect(!strncmp(r->mismatched[0], want, strlen(want)), "%s", r->mismatched[0]);
    for (int k = 0; k < 3; k++) {
        snprintf(want, sizeof want, "backbone.%s", src.entries[k].name);
        cr_expect_str_eq(r->missing[k], want);
    }
    for (int i = 0; i < m.ps.n; i++) {
        const mn_param *p = m.ps.items[i];
        const mn_st_entry *e = is_backbone(p->name) ? mn_st_find(&src, p->name + 9) : NULL;
        int idx = e ? (int)(e - src.entries) : -1;
        bool loaded = idx >= 3 && idx != 3 && idx != 10;
        const float *want_v = loaded ? (const float *)e->data : plain.ps.items[i]->var.val.data;
        cr_assert(unchanged(p, want_v), "%s: not the %s value", p->name, loaded ? "file's" : "initial");
    }
    mn_seg_model_free(&plain);
    mn_seg_model_free(&m);
    mn_st_free(&src);
    free(items);
}

/* Writes the backbone entries of a segmenter file renamed by f (NULL: left out). */
static void write_renamed(const char *src_path, const char *out_path, void (*f)(const char *in, char *out))
{
    mn_safetensors src;
    cr_assert_eq(mn_st_read(src_path, &src), 0, "%s", mn_last_error());
    mn_st_item *items = calloc((size_t)src.n, sizeof *items);
    char (*names)[160] = calloc((size_t)src.n, sizeof *names);
    int n = 0;
    for (int i = 0; i < src.n; i++) {
        f(src.entries[i].name, names[n]);
        if (!names[n][0]) continue;
        items[n] = (mn_st_item){names[n], MN_ST_F32, src.entries[i].ndim, src.entries[i].shape, src.entries[i].data};
        n++;
    }
    cr_assert_eq(mn_st_write(out_path, items, n, NULL, NULL, 0), 0, "%s", mn_last_error());
    free(items);
    free(names);
    mn_st_free(&src);
}

static void with_module(const char *in, char *out) { sprintf(out, "module.%s", in); }
static void with_backbone(const char *in, char *out) { sprintf(out, "backbone.%s", in); }
static void without_features(const char *in, char *out) { sprintf(out, "%s", in + strlen("features.")); }

/* Only every k-th tensor: the share of the backbone a file holds. */
static int keep_every;
static void every_kth(const char *in, char *out)
{
    static int i;
    if (!strcmp(in, "features.0.0.weight")) i = 0; /* the first entry restarts the count */
    sprintf(out, "%s", i++ % keep_every == 0 ? in : "");
}

/* mn_seg_model_create (or, with cls, mn_cls_model_create) from file must fail with a message
 * holding every one of the words. */
static void expect_refused(const char *file, bool cls, const char *const *words, int n_words)
{
    mn_config c;
    init_config(&c, file);
    if (cls) {
        c.task = MN_TASK_CLASSIFICATION;
        strcpy(c.data.kind, "imagefolder");
    }
    mn_seg_model s;
    mn_cls_model k;
    int rc = cls ? mn_cls_model_create(&k, &c, 2, classes + 1, 1) : mn_seg_model_create(&s, &c, 3, classes, 1);
    cr_assert_neq(rc, 0, "%s was accepted", file);
    const char *msg = mn_last_error();
    for (int i = 0; i < n_words; i++) cr_expect(strstr(msg, words[i]), "no \"%s\" in: %s", words[i], msg);
    cr_expect(strstr(msg, c.model.init), "the file is not named: %s", msg);
}

Test(finetune, almost_nothing_matches_is_refused_with_its_cause)
{
    char src[128], path[128];
    snprintf(src, sizeof src, "%s/src.safetensors", dir);
    write_backbone(src, 5);
    /* a DataParallel prefix */
    snprintf(path, sizeof path, "%s/module.safetensors", dir);
    write_renamed(src, path, with_module);
    expect_refused("module.safetensors", false, (const char *[]){"\"module.\"", "strip", "only 0 of the"}, 3);
    /* a segmenter's or detector's own names into a classifier */
    snprintf(path, sizeof path, "%s/prefixed.safetensors", dir);
    write_renamed(src, path, with_backbone);
    expect_refused("prefixed.safetensors", true, (const char *[]){"\"backbone.\"", "strip"}, 2);
    /* a bare features module saved on its own */
    snprintf(path, sizeof path, "%s/bare.safetensors", dir);
    write_renamed(src, path, without_features);
    expect_refused("bare.safetensors", false, (const char *[]){"lack the prefix \"features.\"", "add"}, 2);

    /* another architecture, told by its names */
    static const float v[2] = {1, 2};
    static const int64_t two[1] = {2};
    mn_st_item resnet[] = {{"conv1.weight", MN_ST_F32, 1, two, v}, {"bn1.weight", MN_ST_F32, 1, two, v},
                           {"layer1.0.conv1.weight", MN_ST_F32, 1, two, v}, {"layer1.0.bn1.bias", MN_ST_F32, 1, two, v},
                           {"fc.weight", MN_ST_F32, 1, two, v}};
    snprintf(path, sizeof path, "%s/resnet.safetensors", dir);
    cr_assert_eq(mn_st_write(path, resnet, 5, NULL, NULL, 0), 0, "%s", mn_last_error());
    expect_refused("resnet.safetensors", false, (const char *[]){"ResNet", "model.backbone=resnet50", "mobilenet_v2"}, 3);
    /* a MutualNet / US-Net release checkpoint in its own layout */
    mn_st_item release[] = {{"features.0.0.weight", MN_ST_F32, 1, two, v},
                            {"features.1.body.0.weight", MN_ST_F32, 1, two, v},
                            {"features.2.body.1.bn.2.running_mean", MN_ST_F32, 1, two, v}};
    snprintf(path, sizeof path, "%s/release.safetensors", dir);
    cr_assert_eq(mn_st_write(path, release, 3, NULL, NULL, 0), 0, "%s", mn_last_error());
    expect_refused("release.safetensors", false, (const char *[]){"MutualNet", "tools/import_torchvision.py"}, 2);
    /* names of nothing this project builds, or no weights at all */
    mn_st_item other[] = {{"encoder.layer.0.attention.weight", MN_ST_F32, 1, two, v},
                          {"encoder.layer.0.output.bias", MN_ST_F32, 1, two, v}};
    snprintf(path, sizeof path, "%s/other.safetensors", dir);
    cr_assert_eq(mn_st_write(path, other, 2, NULL, NULL, 0), 0, "%s", mn_last_error());
    expect_refused("other.safetensors", false,
                   (const char *[]){"encoder.layer.0.attention.weight, encoder.layer.0.output.bias) are not those of "
                                    "mobilenet_v2 (features.1.conv.0.0.weight, ...)"},
                   1);
    mn_st_item state[] = {{"optim.features.0.0.weight", MN_ST_F32, 1, two, v}};
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    cr_assert_eq(mn_st_write(path, state, 1, NULL, NULL, 0), 0, "%s", mn_last_error());
    expect_refused("state.safetensors", false, (const char *[]){"holds nothing else", "1 skipped"}, 2);
    /* our names, other shapes: another width */
    write_backbone(src, 5);
    mn_safetensors st;
    cr_assert_eq(mn_st_read(src, &st), 0, "%s", mn_last_error());
    mn_st_item *items = calloc((size_t)st.n, sizeof *items);
    for (int i = 0; i < st.n; i++) items[i] = (mn_st_item){st.entries[i].name, MN_ST_F32, 1, two, v};
    snprintf(path, sizeof path, "%s/wide.safetensors", dir);
    cr_assert_eq(mn_st_write(path, items, st.n, NULL, NULL, 0), 0, "%s", mn_last_error());
    expect_refused("wide.safetensors", false, (const char *[]){"other shapes", "features.0.0.weight (file [2], model [32, 3, 3, 3])"}, 2);
    free(items);

    /* the line is at 10% of the backbone's tensors */
    int n_bb = st.n;
    mn_st_free(&st);
    for (keep_every = 8; keep_every <= 12; keep_every++) {
        snprintf(path, sizeof path, "%s/part%d.safetensors", dir, keep_every);
        write_renamed(src, path, every_kth);
        int kept = (n_bb + keep_every - 1) / keep_every;
        mn_config c;
        char file[64];
        snprintf(file, sizeof file, "part%d.safetensors", keep_every);
        init_config(&c, file);
        mn_seg_model m;
        int rc = mn_seg_model_create(&m, &c, 3, classes, 1);
        cr_assert_eq(rc == 0, 10 * kept >= n_bb, "%d of %d tensors: %s", kept, n_bb, rc ? mn_last_error() : "accepted");
        if (!rc) {
            cr_expect_eq(m.init.n_backbone_loaded, kept);
            mn_seg_model_free(&m);
        }
    }
}

/* ---- release checkpoints through tools/import_torchvision.py ---- */

/* "<module>.<leaf>" split at its last dot. */
static void split_leaf(const char *name, char *module, const char **leaf)
{
    const char *dot = strrchr(name, '.');
    snprintf(module, 128, "%.*s", (int)(dot - name), name);
    *leaf = dot + 1;
}

/* Where a release keeps what we call `module`.`leaf`: running statistics in the per-width BN of the
 * widest width (`last`), except for plain BN layers (MobileNetV2's features.18.1). */
static void release_tensor(const char *module, const char *leaf, bool us_bn, int last, char *out, size_t n)
{
    if (us_bn && !strncmp(leaf, "running_", 8)) snprintf(out, n, "%s.bn.%d.%s", module, last, leaf);
    else snprintf(out, n, "%s.%s", module, leaf);
}

/* The release name our MobileNetV2 name holds, by the layout of the releases' model definitions:
 * features.<i>.body.<j> numbers every layer of a block, the ReLU6 layers included. */
static void release_name_mbv2(const char *ours, int last, char *out, size_t n)
{
    char module[128], rest[128];
    const char *leaf;
    rest[0] = 0;
    split_leaf(ours, module, &leaf);
    int i;
    if (!strcmp(module, "classifier.1")) {
        release_tensor("classifier.0", leaf, false, last, out, n);
        return;
    }
    if (sscanf(module, "features.%d.conv.%127s", &i, rest) == 2) {
        static const char *const expanded[] = {"0.0", "0.1", "", "1.0", "1.1", "", "2", "3"};
        static const char *const single[] = {"0.0", "0.1", "", "1", "2"};
        int j = -1;
        for (int k = 0; k < (i == 1 ? 5 : 8); k++)
            if ((i == 1 ? single : expanded)[k][0] && !strcmp((i == 1 ? single : expanded)[k], rest)) j = k;
        cr_assert_geq(j, 0, "%s: no release layer", ours);
        char body[64];
        snprintf(body, sizeof body, "features.%d.body.%d", i, j);
        release_tensor(body, leaf, true, last, out, n);
        return;
    }
    release_tensor(module, leaf, strcmp(module, "features.18.1") != 0, last, out, n); /* stem, tail: as ours */
}

static void release_name_resnet(const char *ours, int last, char *out, size_t n)
{
    static const int blocks[4] = {3, 4, 6, 3};
    static const char *const parts[][2] = {{"conv1", "body.0"}, {"bn1", "body.1"}, {"conv2", "body.3"},
                                           {"bn2", "body.4"}, {"conv3", "body.6"}, {"bn3", "body.7"},
                                           {"downsample.0", "shortcut.0"}, {"downsample.1", "shortcut.1"}};
    char module[128], part[64], mapped[192];
    const char *leaf;
    split_leaf(ours, module, &leaf);
    int s, i;
    if (!strcmp(module, "conv1") || !strcmp(module, "bn1")) {
        release_tensor(module[0] == 'c' ? "features.0.0" : "features.0.1", leaf, true, last, out, n);
        return;
    }
    if (!strcmp(module, "fc")) {
        release_tensor("classifier.0", leaf, false, last, out, n);
        return;
    }
    cr_assert_eq(sscanf(module, "layer%d.%d.%63s", &s, &i, part), 3, "%s", ours);
    int k = 1 + i;
    for (int t = 0; t < s - 1; t++) k += blocks[t];
    for (size_t p = 0; p < sizeof parts / sizeof *parts; p++)
        if (!strcmp(part, parts[p][0])) {
            snprintf(mapped, sizeof mapped, "features.%d.%s", k, parts[p][1]);
            release_tensor(mapped, leaf, true, last, out, n);
            return;
        }
    cr_assert_fail("%s: no release layer", ours);
}

/* tests/fixtures/release.safetensors (tools/fixtures/gen_release.py): state dicts in MutualNet's
 * and US-Net's own layouts, random values with an id each, converted by tools/import_torchvision.py.
 * Every parameter and buffer of our network at 1000 classes got the release tensor the layout
 * says (its id) with our shape, and the conversion holds nothing else. */
Test(finetune, release_checkpoints_map_to_our_names)
{
    mn_safetensors st;
    tc_fixture("release", &st);
    static const struct {
        const char *name;
        enum mn_arch arch;
    } cases[] = {{"mutualnet_mbv2", MN_ARCH_MOBILENET_V2}, {"mutualnet_resnet50", MN_ARCH_RESNET50},
                 {"usnet_mbv2", MN_ARCH_MOBILENET_V2}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char key[96];
        snprintf(key, sizeof key, "%s.src_names", cases[c].name);
        cJSON *src = cJSON_Parse(mn_st_meta(&st, key));
        snprintf(key, sizeof key, "%s.out_names", cases[c].name);
        cJSON *out = cJSON_Parse(mn_st_meta(&st, key));
        snprintf(key, sizeof key, "%s.widths", cases[c].name);
        int last = atoi(mn_st_meta(&st, key)) - 1;
        cr_assert(cJSON_IsArray(src) && cJSON_IsArray(out) && last >= 1, "%s: bad fixture", cases[c].name);
        snprintf(key, sizeof key, "%s.src_ids", cases[c].name);
        mn_tensor ids = tc_get(&st, key), rows;
        snprintf(key, sizeof key, "%s.out", cases[c].name);
        cr_assert_eq(mn_st_get_any_f32(&st, key, &rows), 0, "%s", mn_last_error());

        mn_param_set ps;
        mn_param_set_init(&ps);
        mn_rng rng;
        mn_rng_seed(&rng, 1);
        mn_backbone *b;
        mn_backbone_config bc = {.arch = cases[c].arch, .num_classes = 1000, .output_stride = 32};
        cr_assert_eq(mn_backbone_create(&b, &bc, &ps, "", &rng), 0, "%s", mn_last_error());
        cr_assert_eq(cJSON_GetArraySize(out), ps.n, "%s: %d converted tensors, the network has %d", cases[c].name,
                     cJSON_GetArraySize(out), ps.n);
        for (int i = 0; i < ps.n; i++) {
            const mn_param *p = ps.items[i];
            int row = 0;
            const cJSON *e = out->child;
            while (e && strcmp(e->valuestring, p->name)) e = e->next, row++;
            cr_assert(e, "%s: %s is not in the conversion", cases[c].name, p->name);
            const float *r = rows.data + row * 6;
            cr_assert_eq((int)r[1], p->var.val.ndim, "%s: %s has %d dims", cases[c].name, p->name, (int)r[1]);
            for (int d = 0; d < p->var.val.ndim; d++)
                cr_assert_eq((int64_t)r[2 + d], p->var.val.shape[d], "%s: %s dim %d", cases[c].name, p->name, d);
            char want[256];
            if (cases[c].arch == MN_ARCH_RESNET50) release_name_resnet(p->name, last, want, sizeof want);
            else release_name_mbv2(p->name, last, want, sizeof want);
            int k = 0;
            const cJSON *s = src->child;
            while (s && strcmp(s->valuestring, want)) s = s->next, k++;
            cr_assert(s, "%s: %s should come from %s, which the release does not have", cases[c].name, p->name, want);
            cr_assert_eq(r[0], ids.data[k], "%s: %s holds release tensor %g, not %s (%g)", cases[c].name, p->name,
                         (double)r[0], want, (double)ids.data[k]);
        }
        mn_backbone_free(b);
        mn_param_set_free(&ps);
        cJSON_Delete(src);
        cJSON_Delete(out);
    }
    mn_st_free(&st);
}

/* ---- fine-tuning controls ---- */

/* model.frozen_stages 2: the stem and stage 1 (features.0-3) get no gradient, no update, and their
 * BN statistics stay; every other parameter, and the other BN statistics, move. */
Test(finetune, frozen_stages_stay_bit_identical)
{
    char src[128];
    snprintf(src, sizeof src, "%s/src.safetensors", dir);
    write_backbone(src, 5);
    mn_config c;
    init_config(&c, "src.safetensors");
    c.model.frozen_stages = 2;
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 3, classes, 1), 0, "%s", mn_last_error());
    float **before = snapshot(&m.ps);
    seg_backward(&m, 99);
    int frozen = 0;
    for (int i = 0; i < m.ps.n; i++) {
        const mn_param *p = m.ps.items[i];
        int s = stage_of(p->name);
        bool buffer = p->flags & MN_PARAM_BUFFER;
        if (buffer || s < 0 || s >= 2) continue;
        frozen++;
        cr_assert(!p->var.requires_grad, "%s requires a gradient", p->name);
        int64_t k = mn_tensor_numel(&p->var.grad);
        for (int64_t j = 0; j < k; j++) cr_assert_eq(p->var.grad.data[j], 0.0f, "%s got a gradient", p->name);
    }
    cr_assert_gt(frozen, 10);
    seg_steps(&m, 2);
    for (int i = 0; i < m.ps.n; i++) {
        const mn_param *p = m.ps.items[i];
        int s = stage_of(p->name);
        bool keep = s >= 0 && s < 2;
        cr_assert_eq(unchanged(p, before[i]), keep, "%s (stage %d) %s", p->name, s, keep ? "changed" : "did not change");
    }
    snapshot_free(before, m.ps.n);
    mn_seg_model_free(&m);
}

/* model.norm_eval: in training the backbone's BN statistics do not move (the head's do), while
 * its BN weights still learn. */
Test(finetune, norm_eval_keeps_backbone_statistics)
{
    char src[128];
    snprintf(src, sizeof src, "%s/src.safetensors", dir);
    write_backbone(src, 5);
    mn_config c;
    init_config(&c, "src.safetensors");
    c.model.norm_eval = true;
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 3, classes, 1), 0, "%s", mn_last_error());
    float **before = snapshot(&m.ps);
    seg_steps(&m, 2);
    int stats = 0;
    for (int i = 0; i < m.ps.n; i++) {
        const mn_param *p = m.ps.items[i];
        bool running = strstr(p->name, ".running_") != NULL;
        if (running) stats++;
        bool keep = running && is_backbone(p->name);
        cr_assert_eq(unchanged(p, before[i]), keep, "%s %s", p->name, keep ? "changed" : "did not change");
    }
    cr_assert_gt(stats, 50);
    snapshot_free(before, m.ps.n);
    mn_seg_model_free(&m);
}

/* Logits of a classifier on a fixed batch at full width; training: BN in training mode with the
 * teacher's momentum. */
static float *cls_logits(mn_cls_model *m, bool training, float bn_momentum)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    int64_t xs[4] = {4, 3, 64, 64};
    float *x = tc_random(77, 4 * 3 * 64 * 64, -1.0f, 1.0f);
    mn_run r = {.tape = &t, .width = 1.0f, .training = training, .bn_momentum = bn_momentum};
    mn_var *logits = NULL;
    cr_assert_eq(mn_backbone_forward(m->net, &r, mn_var_wrap(&t, mn_tensor_view(x, 4, xs)), NULL, &logits), 0, "%s",
                 mn_last_error());
    float *out = malloc(sizeof(float) * 8);
    memcpy(out, logits->val.data, sizeof(float) * 8);
    mn_tape_free(&t);
    free(x);
    return out;
}

/* With norm_eval a training pass normalises the backbone with the running statistics: its logits
 * are the evaluation pass's, and no statistic moves; without it they are the batch's. BN
 * calibration (momentum < 0) still re-estimates them. */
Test(finetune, norm_eval_forward_uses_running_statistics)
{
    char src[128];
    snprintf(src, sizeof src, "%s/src.safetensors", dir);
    write_backbone(src, 5);
    mn_config c;
    init_config(&c, "src.safetensors");
    c.task = MN_TASK_CLASSIFICATION;
    strcpy(c.data.kind, "imagefolder");
    for (int norm_eval = 0; norm_eval < 2; norm_eval++) {
        c.model.norm_eval = norm_eval;
        mn_cls_model m;
        cr_assert_eq(mn_cls_model_create(&m, &c, 2, classes + 1, 1), 0, "%s", mn_last_error());
        float **before = snapshot(&m.ps);
        float *eval = cls_logits(&m, false, 0.0f), *train = cls_logits(&m, true, 0.1f);
        double diff = 0, scale = 0;
        for (int i = 0; i < 8; i++) {
            diff = fmax(diff, fabs((double)eval[i] - train[i]));
            scale = fmax(scale, fabs((double)eval[i]));
        }
        if (norm_eval) cr_assert_leq(diff, 1e-4 * (1 + scale), "training pass differs from eval by %g", diff);
        else cr_assert_gt(diff, 1e-3 * (1 + scale), "batch statistics gave the eval logits (%g)", diff);
        int moved = 0;
        for (int i = 0; i < m.ps.n; i++)
            if (strstr(m.ps.items[i]->name, ".running_") && !unchanged(m.ps.items[i], before[i])) moved++;
        if (norm_eval) cr_assert_eq(moved, 0, "%d statistics moved", moved);
        else cr_assert_gt(moved, 50);
        free(cls_logits(&m, true, -1.0f)); /* calibration's cumulative average */
        moved = 0;
        for (int i = 0; i < m.ps.n; i++)
            if (strstr(m.ps.items[i]->name, ".running_") && !unchanged(m.ps.items[i], before[i])) moved++;
        cr_assert_gt(moved, 50, "calibration left the statistics (%d moved)", moved);
        free(eval);
        free(train);
        snapshot_free(before, m.ps.n);
        mn_cls_model_free(&m);
    }
}

/* The optimiser at lr x lr_mult, worked by hand: w = [1, 2], g = [0.5, -1], lr 0.1, momentum 0.9
 * Nesterov, weight decay 0.01. d = g + 0.01 w = [0.51, -0.98]; the first step's buffer is d, and
 * Nesterov steps by d + 0.9 d = [0.969, -1.862]: w - 0.1 m [0.969, -1.862]. */
Test(finetune, sgd_steps_at_lr_times_lr_mult)
{
    const float mults[] = {1, 2, 0.5f, 0};
    const float want[][2] = {{0.9031f, 2.1862f}, {0.8062f, 2.3724f}, {0.95155f, 2.0931f}, {1, 2}};
    for (int k = 0; k < 5; k++) { /* k == 4: frozen (no gradient) */
        mn_param_set ps;
        mn_param_set_init(&ps);
        int64_t shape[1] = {2};
        mn_param *p = mn_param_add(&ps, "w", 1, shape, MN_PARAM_DECAY);
        p->var.val.data[0] = 1, p->var.val.data[1] = 2;
        p->var.grad.data[0] = 0.5f, p->var.grad.data[1] = -1;
        if (k < 4) p->lr_mult = mults[k];
        else p->var.requires_grad = false;
        mn_sgd opt;
        mn_sgd_config oc = {.lr = 0.1f, .momentum = 0.9f, .nesterov = true, .weight_decay = 0.01f};
        cr_assert_eq(mn_sgd_init(&opt, &ps, &oc), 0, "%s", mn_last_error());
        cr_assert_eq(mn_sgd_step(&opt, 0.1f), 0, "%s", mn_last_error());
        const float *w = k < 4 ? want[k] : want[3];
        for (int j = 0; j < 2; j++)
            cr_assert_float_eq(p->var.val.data[j], w[j], 1e-6f, "case %d, w[%d] = %.7g, expected %.7g", k, j,
                               (double)p->var.val.data[j], (double)w[j]);
        mn_tensor buf = mn_sgd_momentum(&opt, 0); /* not stepped: the buffer stays as it was */
        if (k >= 3) cr_assert(buf.data[0] == 0 && buf.data[1] == 0, "case %d: the momentum buffer moved", k);
        mn_sgd_free(&opt);
        mn_param_set_free(&ps);
    }
    mn_param_set ps;
    mn_param_set_init(&ps);
    int64_t shape[1] = {1};
    mn_param_add(&ps, "w", 1, shape, 0)->lr_mult = -1;
    mn_sgd opt;
    mn_sgd_config oc = {.lr = 0.1f};
    cr_assert_eq(mn_sgd_init(&opt, &ps, &oc), 0);
    cr_assert_neq(mn_sgd_step(&opt, 0.1f), 0, "a negative multiplier was taken");
    mn_sgd_free(&opt);
    mn_param_set_free(&ps);
}

/* optim.backbone_lr_mult on a segmenter's first step (no momentum history): each backbone
 * parameter moves by lr x mult x (1 + momentum) x (g + decay x w), twice as far at 2 as at 1,
 * not at all at 0; the head moves the same whatever the multiplier. */
Test(finetune, backbone_lr_mult_scales_the_backbone_step)
{
    char src[128];
    snprintf(src, sizeof src, "%s/src.safetensors", dir);
    write_backbone(src, 5);
    const float mults[3] = {1, 2, 0}, lr = 0.05f, momentum = 0.9f, decay = 4e-5f;
    float **after[3];
    mn_seg_model m[3];
    float **before = NULL, **grads = NULL;
    for (int k = 0; k < 3; k++) {
        mn_config c;
        init_config(&c, "src.safetensors");
        c.optim.backbone_lr_mult = mults[k];
        cr_assert_eq(mn_seg_model_create(&m[k], &c, 3, classes, 1), 0, "%s", mn_last_error());
        if (!before) before = snapshot(&m[k].ps);
        mn_sgd opt;
        mn_sgd_config oc = {.lr = lr, .momentum = momentum, .nesterov = true, .weight_decay = decay};
        cr_assert_eq(mn_sgd_init(&opt, &m[k].ps, &oc), 0, "%s", mn_last_error());
        seg_backward(&m[k], 100);
        if (!grads) {
            grads = calloc((size_t)m[k].ps.n, sizeof *grads);
            for (int i = 0; i < m[k].ps.n; i++) {
                const mn_param *p = m[k].ps.items[i];
                if (!p->var.grad.data) continue;
                grads[i] = malloc(sizeof(float) * (size_t)mn_tensor_numel(&p->var.grad));
                memcpy(grads[i], p->var.grad.data, sizeof(float) * (size_t)mn_tensor_numel(&p->var.grad));
            }
        }
        cr_assert_eq(mn_sgd_step(&opt, lr), 0, "%s", mn_last_error());
        mn_sgd_free(&opt);
        after[k] = snapshot(&m[k].ps);
    }
    int checked = 0;
    for (int i = 0; i < m[0].ps.n; i++) {
        const mn_param *p = m[0].ps.items[i];
        if (p->flags & MN_PARAM_BUFFER) continue;
        bool bb = stage_of(p->name) >= 0;
        float wd = (p->flags & MN_PARAM_DECAY) ? decay : 0.0f;
        int64_t n = mn_tensor_numel(&p->var.val);
        for (int64_t j = 0; j < n; j++) {
            double d = (double)grads[i][j] + wd * (double)before[i][j];
            for (int k = 0; k < 3; k++) {
                double mult = bb ? mults[k] : 1.0;
                double want = (double)before[i][j] - lr * mult * (1.0 + momentum) * d, got = after[k][i][j];
                cr_assert(fabs(got - want) <= 1e-6 * (1 + fabs(want)), "%s[%lld] at x%g: %.9g, expected %.9g", p->name,
                          (long long)j, mult, got, want);
            }
            if (bb) {
                double one = (double)before[i][j] - after[0][i][j], two = (double)before[i][j] - after[1][i][j];
                cr_assert(fabs(two - 2 * one) <= 1e-6 * (1 + fabs(before[i][j])), "%s[%lld]: step %.9g at x2, %.9g at x1",
                          p->name, (long long)j, two, one);
                cr_assert_eq(after[2][i][j], before[i][j], "%s moved at x0", p->name);
            } else {
                cr_assert_eq(after[0][i][j], after[1][i][j], "%s: the head's step depends on the backbone's multiplier", p->name);
            }
            checked++;
        }
    }
    cr_assert_gt(checked, 100000);
    int n = m[0].ps.n;
    for (int k = 0; k < 3; k++) {
        snapshot_free(after[k], n);
        mn_seg_model_free(&m[k]);
    }
    for (int i = 0; i < n; i++) free(grads[i]);
    free(grads);
    snapshot_free(before, n);
}

/* ---- configuration ---- */

Test(finetune, configuration_keys)
{
    mn_config c;
    mn_config_default(&c);
    cr_assert_eq(c.model.frozen_stages, 0);
    cr_assert(!c.model.norm_eval);
    cr_assert_eq(c.optim.backbone_lr_mult, 1.0f);
    const char *ok = "{\"model\": {\"init\": \"w.safetensors\", \"frozen_stages\": 5, \"norm_eval\": true},"
                     " \"optim\": {\"backbone_lr_mult\": 0.1}}";
    cr_assert_eq(mn_config_parse(ok, "test", &c), 0, "%s", mn_last_error());
    cr_assert_eq(c.model.frozen_stages, 5);
    cr_assert(c.model.norm_eval);
    cr_assert_float_eq(c.optim.backbone_lr_mult, 0.1f, 1e-7f);
    static const char *const bad[][2] = {
        {"{\"model\": {\"init\": \"w\", \"frozen_stages\": 6}}", "outside [0, 5]"},
        {"{\"model\": {\"init\": \"w\", \"frozen_stages\": 1.5}}", "whole number"},
        {"{\"optim\": {\"backbone_lr_mult\": -1}}", "outside"},
        {"{\"model\": {\"frozen_stages\": 2}}", "model.init is empty"},
        {"{\"model\": {\"norm_eval\": true}}", "model.init is empty"},
        {"{\"model\": {\"norm_eval\": 1}}", "true or false"},
        {"{\"model\": {\"frozen\": 2}}", "unknown key \"model.frozen\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mn_config_default(&c);
        cr_assert_neq(mn_config_parse(bad[i][0], "test", &c), 0, "%s was accepted", bad[i][0]);
        cr_expect(strstr(mn_last_error(), bad[i][1]), "%s: %s", bad[i][0], mn_last_error());
    }
    /* they change what a run computes: a resume must not change them silently */
    mn_config a, b;
    mn_config_default(&a);
    mn_config_default(&b);
    strcpy(a.model.init, "w");
    strcpy(b.model.init, "w");
    b.model.frozen_stages = 1;
    b.model.norm_eval = true;
    b.optim.backbone_lr_mult = 0.5f;
    char diff[512];
    cr_assert_eq(mn_config_diff(&a, &b, true, diff, sizeof diff), 3, "%s", diff);
}

/* The README's configuration reference is `mutualnet train --help-config`: every row of the key
 * table, with its default and help, appears in it as printed. */
Test(finetune, readme_lists_every_key)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(mn_read_file(MN_SOURCE_DIR "/README.md", (size_t)1 << 24, "README", &text, &len), 0, "%s", mn_last_error());
    char *rows = NULL;
    size_t n_rows = 0;
    FILE *f = open_memstream(&rows, &n_rows);
    mn_config_describe(f);
    fclose(f);
    int checked = 0;
    for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n"), checked++)
        cr_expect(strstr(text, line), "README.md lacks the row\n%s\n(regenerate it with mutualnet train --help-config)",
                  line);
    cr_assert_gt(checked, 60);
    free(rows);
    free(text);
}

/* ---- a training run ---- */

static void collect(void *ctx, int level, const char *msg)
{
    (void)level;
    char *log = ctx;
    strncat(log, msg, 65536 - strlen(log) - 2);
    strcat(log, "\n");
}

/* Fine-tuning from a classification checkpoint with the whole backbone frozen and in eval mode:
 * the run's notices say what was loaded and which controls are in force, and its checkpoint holds
 * the backbone (weights and BN statistics) exactly as the file gave it. */
Test(finetune, training_run_reports_and_keeps_a_frozen_backbone)
{
    char data[128];
    snprintf(data, sizeof data, "%s/shapes", dir);
    mn_synth_config s;
    mn_synth_config_default(&s);
    s.out_dir = data;
    s.n_images = 12;
    s.width = s.height = 64;
    s.seed = 3;
    s.png = true;
    cr_assert_eq(mn_synth_generate(&s, NULL), 0, "%s", mn_last_error());
    /* a classification checkpoint of this project (with optimiser state) as the pretrained weights */
    mn_config cc;
    small_config(&cc, MN_TASK_CLASSIFICATION);
    mn_cls_model k;
    cr_assert_eq(mn_cls_model_create(&k, &cc, 4, (const char *[]){"a", "b", "c", "d"}, 11), 0, "%s", mn_last_error());
    mn_sgd opt;
    mn_sgd_config oc = {.lr = 0.1f, .momentum = 0.9f};
    cr_assert_eq(mn_sgd_init(&opt, &k.ps, &oc), 0, "%s", mn_last_error());
    char pre[128];
    snprintf(pre, sizeof pre, "%s/pretrained.safetensors", dir);
    cr_assert_eq(mn_cls_model_save(&k, pre, &opt, 10), 0, "%s", mn_last_error());
    mn_sgd_free(&opt);

    mn_config c;
    small_config(&c, MN_TASK_SEGMENTATION);
    snprintf(c.data.root, sizeof c.data.root, "%s", data);
    snprintf(c.train.out_dir, sizeof c.train.out_dir, "%s/run", dir);
    snprintf(c.model.init, sizeof c.model.init, "%s", pre);
    c.model.frozen_stages = 5;
    c.model.norm_eval = true;
    c.optim.backbone_lr_mult = 0.5f;
    c.data.workers = 1;
    c.mutual.num_subnets = 2;
    c.train.batch_size = 2;
    c.train.iterations = 2;
    c.train.log_every = 1;
    c.train.checkpoint_every = 2;
    char *log = calloc(65536, 1);
    mn_reporter rep = {.log = collect, .ctx = log};
    mn_train_options o = {.reporter = &rep};
    cr_assert_eq(mn_train(&c, &o), 0, "%s", mn_last_error());
    const char *want[] = {"model.init", "loaded", "backbone tensors", "re-initialised, not in the file",
                          "head.", "unused tensors of the file (7): features.18.0.weight",
                          "skipped (optimiser state", "fine-tuning: the stem and stages 1-4 frozen",
                          "backbone BN in eval mode", "backbone learning rate x 0.5"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_expect(strstr(log, want[i]), "no \"%s\" in\n%s", want[i], log);
    char path[160];
    snprintf(path, sizeof path, "%s/run/last.safetensors", dir);
    mn_safetensors st;
    cr_assert_eq(mn_st_read(path, &st), 0, "%s", mn_last_error());
    int same = 0;
    for (int i = 0; i < k.ps.n; i++) {
        const mn_param *p = k.ps.items[i];
        char name[160];
        snprintf(name, sizeof name, "backbone.%s", p->name);
        const mn_st_entry *e = mn_st_find(&st, name);
        if (!e) continue;
        cr_assert(unchanged(p, e->data), "%s changed in training", name);
        same++;
    }
    cr_assert_gt(same, 200);
    mn_st_free(&st);
    mn_cls_model_free(&k);
    free(log);
}
