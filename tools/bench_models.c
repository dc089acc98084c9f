/* mutualnet bench --model deeplabv3plus|faster_rcnn: the whole segmenter or detector, built
 * from a run configuration, timed as users run it: a forward pass at batch 1 (inference), a
 * training step of one full-width pass (forward, loss, backward, SGD) and, for the segmenter,
 * the MutualNet iteration of four passes with one SGD step. bench/models_torch.py prints the
 * same rows for torchvision's modules; bench/compare_models.sh runs both. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench_models.h"
#include "commands.h"
#include "latency.h"
#include "mn/config.h"
#include "mn/dataset.h"
#include "mn/det.h"
#include "mn/det_model.h"
#include "mn/ops.h"
#include "mn/optim.h"
#include "mn/seg.h"
#include "mn/train.h"

int openblas_get_parallel(void);
char *openblas_get_corename(void);

enum { ROW_FORWARD, ROW_TRAIN, ROW_SANDWICH };
static const char *const row_name[3] = {"forward", "train", "sandwich"};

typedef struct row {
    int kind;        /* ROW_* */
    int h, w;        /* input tensor (padded, for the detector) */
    int batch;
    int vh, vw;      /* detector: the image's valid region in the padded input */
    float scale;     /* detector: its resize factor */
} row;

/* Everything one model's rows share. */
typedef struct bench {
    bool det;
    mn_config cfg;
    int classes;
    mn_param_set ps;
    mn_segmenter *seg;
    mn_detector *dn;
    mn_sgd opt;
    mn_tape tape;
    mn_subnet sw[4];         /* the fixed sandwich (see sandwich_of) */
    float *input;            /* (batch, 3, h, w) */
    int32_t *labels, *labels_small;
    float *teacher;          /* the full network's softmax, as seg_train keeps it */
    int64_t teacher_shape[4];
    mn_det_image info[MN_MAX_BATCH];
    mn_box boxes[MN_MAX_BATCH][4];
    mn_rng rng;
} bench;

/* A drawn sandwich varies per iteration; a benchmark needs one that both sides run alike: the
 * full network, then widths evenly spaced down to width_min, with the configured scales after
 * 1.0 in order (a mean draw). bench/models_torch.py computes the same. */
static void sandwich_of(const mn_config *c, mn_subnet *sw)
{
    float lo = c->mutual.width_min, hi = c->mutual.width_max;
    sw[0] = (mn_subnet){hi, 1.0f};
    for (int k = 1; k < 4; k++) {
        int si = k - 1 < c->mutual.n_scales ? k - 1 : c->mutual.n_scales - 1;
        sw[k] = (mn_subnet){hi - (hi - lo) * (float)k / 3.0f, c->mutual.scales[si]};
    }
}

/* A deterministic pattern in [-1, 1): the values do not matter, only that they are not all alike. */
static void fill(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1;
}

/* The valid region of a 480x640 (4:3, COCO's commonest size) image resized to short side s with
 * torchvision's rule (floor of size x scale), and its padded size. The long side is capped at the
 * configuration's ratio (det.max_side / det.short_side: 1000 / 600, torchvision's 1333 / 800), so
 * that a row at another short side keeps the recipe's shape. */
static void det_size(const mn_config *c, int s, int *vh, int *vw, float *scale, int *ph, int *pw)
{
    float f = fminf((float)s / 480.0f, (float)s * (float)c->det.max_side / (float)c->det.short_side / 640.0f);
    *vh = (int)floorf(480.0f * f);
    *vw = (int)floorf(640.0f * f);
    *scale = f;
    *ph = (*vh + 31) / 32 * 32;
    *pw = (*vw + 31) / 32 * 32;
}

/* Four boxes per image at fixed places of the valid region, labels spread over the classes. */
static void det_targets(bench *b, int n, int vh, int vw, float scale)
{
    static const float at[4][4] = {{.10f, .10f, .40f, .50f}, {.50f, .20f, .90f, .60f}, {.20f, .55f, .45f, .95f},
                                   {.60f, .65f, .80f, .90f}};
    for (int i = 0; i < n; i++) {
        b->info[i] = (mn_det_image){.h = vh, .w = vw, .scale = scale, .orig_h = 480, .orig_w = 640, .position = i};
        for (int k = 0; k < 4; k++)
            b->boxes[i][k] = (mn_box){at[k][0] * (float)vw, at[k][1] * (float)vh, at[k][2] * (float)vw,
                                      at[k][3] * (float)vh, 1 + (k * 17 + i) % (b->classes - 1), false};
    }
}

/* Zeroes the padding of each image, as the loader leaves it. */
static void det_images(float *x, int n, int ph, int pw, int vh, int vw)
{
    fill(x, (int64_t)n * 3 * ph * pw);
    for (int64_t p = 0; p < (int64_t)n * 3; p++)
        for (int y = 0; y < ph; y++)
            for (int xx = y < vh ? vw : 0; xx < pw; xx++) x[(p * ph + y) * pw + xx] = 0;
}

/* One segmentation pass as train/seg_train.c runs it: the batch resized to the sub-network's
 * scale, cross-entropy at the input size, and for students the KL term against the teacher. */
static int seg_pass(bench *b, const row *rw, const mn_subnet *sn, bool teacher)
{
    mn_tape *t = &b->tape;
    mn_tape_reset(t);
    mn_tape_set_grad(t, true);
    int h = rw->h, w = rw->w, n = rw->batch;
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->input, n, 3, h, w));
    const int32_t *labels = b->labels;
    if (sn->scale != 1.0f) {
        int H = h, W = w;
        h = mn_round32((float)H * sn->scale);
        w = mn_round32((float)W * sn->scale);
        x = mn_resize_bilinear(t, x, h, w, true);
        for (int i = 0; i < n; i++) /* nearest, as seg_train resizes labels */
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    b->labels_small[((int64_t)i * h + y) * w + xx] =
                        b->labels[((int64_t)i * H + (int64_t)y * H / h) * W + (int64_t)xx * W / w];
        labels = b->labels_small;
    }
    mn_run r = {.tape = t, .width = sn->width, .training = true, .bn_momentum = teacher ? 0.1f : 0.0f};
    mn_var *raw = mn_seg_forward_raw(b->seg, &r, x);
    mn_var *l = mn_cross_entropy(t, raw ? mn_resize_bilinear(t, raw, h, w, false) : NULL, labels, MN_IGNORE_LABEL);
    bool kl = b->cfg.mutual.distill == MN_DISTILL_KL;
    if (!teacher) {
        l = mn_scale(t, l, b->cfg.mutual.gt_weight);
        if (kl && raw) {
            mn_var *p = mn_var_wrap(t, mn_tensor_view(b->teacher, 4, b->teacher_shape));
            mn_var *s = raw;
            if (raw->val.shape[2] != b->teacher_shape[2] || raw->val.shape[3] != b->teacher_shape[3])
                s = mn_resize_bilinear(t, raw, (int)b->teacher_shape[2], (int)b->teacher_shape[3], false);
            l = mn_add(t, l, mn_scale(t, mn_kl_div(t, s, p), b->cfg.mutual.distill_weight));
        }
    }
    if (!l) return mn_last_error_code();
    if (teacher && kl) {
        mn_var *p = mn_softmax(t, raw);
        if (!p) return mn_last_error_code();
        memcpy(b->teacher_shape, p->val.shape, sizeof b->teacher_shape);
        memcpy(b->teacher, p->val.data, sizeof(float) * (size_t)mn_tensor_numel(&p->val));
    }
    return mn_backward(t, l);
}

/* One timed unit of a row. */
static int run_row(bench *b, const row *rw)
{
    mn_tape *t = &b->tape;
    if (rw->kind == ROW_FORWARD) {
        mn_tape_reset(t);
        mn_tape_set_grad(t, false);
        mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->input, 1, 3, rw->h, rw->w));
        mn_run r = {.tape = t, .width = 1.0f, .training = false};
        if (!b->det) return mn_seg_forward(b->seg, &r, x) ? 0 : mn_last_error_code();
        mn_detection *out[1] = {NULL};
        int n[1] = {0};
        int rc = mn_det_forward_test(b->dn, &r, x, b->info, out, n);
        free(out[0]);
        return rc;
    }
    mn_param_zero_grad(&b->ps);
    int rc = 0;
    if (b->det) {
        mn_tape_reset(t);
        mn_tape_set_grad(t, true);
        mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->input, rw->batch, 3, rw->h, rw->w));
        mn_det_targets tg[MN_MAX_BATCH];
        for (int i = 0; i < rw->batch; i++) tg[i] = (mn_det_targets){b->boxes[i], 4};
        mn_run r = {.tape = t, .width = 1.0f, .training = true, .bn_momentum = 0.1f};
        mn_det_losses L;
        rc = mn_det_forward_train(b->dn, &r, x, b->info, tg, &b->rng, NULL, NULL, 0.0f, &L);
        if (!rc) rc = mn_backward(t, L.total);
    } else {
        for (int k = 0; k < (rw->kind == ROW_SANDWICH ? 4 : 1) && !rc; k++) rc = seg_pass(b, rw, &b->sw[k], k == 0);
    }
    return rc ? rc : mn_sgd_step(&b->opt, b->cfg.optim.lr);
}

/* Multiply-accumulates of one timed unit, counted as forward passes: a training pass is about
 * three (forward, input gradient, weight gradient), the usual estimate for conv networks. */
static int row_macs(bench *b, const row *rw, double *fwd_macs, double *flops)
{
    int64_t m = 0;
    int rc = 0;
    *fwd_macs = 0;
    for (int k = 0; k < (rw->kind == ROW_SANDWICH ? 4 : 1) && !rc; k++) {
        const mn_subnet *sn = rw->kind == ROW_FORWARD ? &(mn_subnet){1.0f, 1.0f} : &b->sw[k];
        int h = sn->scale == 1.0f ? rw->h : mn_round32((float)rw->h * sn->scale);
        int w = sn->scale == 1.0f ? rw->w : mn_round32((float)rw->w * sn->scale);
        if (b->det) {
            /* the box head runs on the proposals at test time, on the sampled RoIs in training */
            mn_det_flops_parts p;
            rc = mn_det_flops_parts_at(b->dn, sn->width, h, w, &p);
            const mn_det_config *dc = mn_det_cfg(b->dn);
            double rois = rw->kind == ROW_FORWARD ? 1.0 : (double)dc->roi_batch / dc->rpn_post_nms_test;
            m = p.backbone + p.neck + p.rpn + (int64_t)((double)p.roi * rois);
        } else {
            rc = mn_seg_flops(b->seg, sn->width, h, w, &m, NULL);
        }
        *fwd_macs += (double)m * rw->batch;
    }
    *flops = 2.0 * *fwd_macs * (rw->kind == ROW_FORWARD ? 1.0 : 3.0);
    return rc;
}

/* Sizes the buffers for a row and fills its input, labels and targets. */
static int prepare(bench *b, const row *rw)
{
    int64_t px = (int64_t)rw->batch * rw->h * rw->w;
    free(b->input);
    free(b->labels);
    free(b->labels_small);
    free(b->teacher);
    b->input = malloc(sizeof(float) * 3 * (size_t)px);
    b->labels = malloc(sizeof(int32_t) * (size_t)px);
    b->labels_small = malloc(sizeof(int32_t) * (size_t)px);
    /* the teacher's logits at stride 4, rounded up */
    b->teacher = malloc(sizeof(float) * (size_t)rw->batch * (size_t)b->classes * (size_t)((rw->h + 3) / 4) *
                        (size_t)((rw->w + 3) / 4));
    if (!b->input || !b->labels || !b->labels_small || !b->teacher)
        return mn_error(MN_ENOMEM, "bench: out of memory for a batch of %d at %dx%d", rw->batch, rw->h, rw->w);
    if (!b->det) {
        fill(b->input, 3 * px);
        /* classes in blocks of 8x8 pixels, every 16th block ignored */
        for (int64_t i = 0; i < px; i++) {
            int64_t y = i / rw->w % rw->h, x = i % rw->w, blk = (y / 8) * 131 + x / 8;
            b->labels[i] = blk % 16 == 15 ? MN_IGNORE_LABEL : (int32_t)(blk % b->classes);
        }
        return 0;
    }
    det_images(b->input, rw->batch, rw->h, rw->w, rw->vh, rw->vw);
    det_targets(b, rw->batch, rw->vh, rw->vw, rw->scale);
    return 0;
}

static int build(bench *b, const char *config, int classes)
{
    mn_config_default(&b->cfg);
    int rc = mn_config_load(config, &b->cfg);
    if (rc) return rc;
    b->classes = classes;
    mn_param_set_init(&b->ps);
    mn_rng r;
    mn_rng_seed(&r, 1);
    mn_rng_seed(&b->rng, 2);
    if (b->det) {
        mn_det_config dc;
        rc = mn_det_config_from(&b->cfg, classes, &dc);
        if (!rc) rc = mn_det_create(&b->dn, &dc, &b->ps, &r);
    } else {
        /* the model part of the configuration, as model/seg_model.c builds it */
        mn_seg_config sc;
        mn_seg_config_default(&sc, classes);
        rc = mn_arch_parse(b->cfg.model.backbone, &sc.backbone.arch);
        sc.backbone.output_stride = b->cfg.model.output_stride;
        sc.v3plus = !strcmp(b->cfg.model.decoder, "v3plus");
        sc.slim_head = b->cfg.model.slim_head;
        sc.aspp_channels = b->cfg.model.aspp_channels;
        sc.low_level_channels = b->cfg.model.low_level_channels;
        if (!rc) rc = mn_seg_create(&b->seg, &sc, &b->ps, &r);
    }
    sandwich_of(&b->cfg, b->sw);
    mn_sgd_config oc = {b->cfg.optim.lr, b->cfg.optim.momentum, 0.0f, b->cfg.optim.nesterov, b->cfg.optim.weight_decay};
    if (!rc) rc = mn_sgd_init(&b->opt, &b->ps, &oc);
    return rc;
}

int mn_bench_models(const mn_bench_models_options *o)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.det = !strcmp(o->model, "faster_rcnn");
    const char *config = o->config ? o->config
                                   : b.det ? "configs/det_coco128_mbv2.json" : "configs/seg_cityscapes_mbv2.json";
    int classes = o->classes ? o->classes : b.det ? 81 : 19;
    int rc = build(&b, config, classes);
    row rows[16];
    int n = 0;
    /* quick rows are for checks: a batch of at most 2 unless asked */
    int batch = o->batch              ? o->batch
                : !o->quick           ? b.cfg.train.batch_size
                : b.cfg.train.batch_size < 2 ? b.cfg.train.batch_size
                                      : 2;
    if (b.det) {
        const int *sides = o->short_side ? (const int[]){o->short_side, 0}
                           : o->quick    ? (const int[]){128, 0}
                                         : (const int[]){512, 800, 0};
        for (int k = 0; k <= ROW_TRAIN; k++)
            for (int i = 0; sides[i]; i++) {
                int vh, vw, ph, pw;
                float sc;
                det_size(&b.cfg, sides[i], &vh, &vw, &sc, &ph, &pw);
                rows[n++] = (row){k, ph, pw, k == ROW_FORWARD ? 1 : batch, vh, vw, sc};
            }
    } else if (o->at_h) {
        rows[n++] = (row){.kind = ROW_FORWARD, .h = o->at_h, .w = o->at_w, .batch = 1};
        rows[n++] = (row){.kind = ROW_TRAIN, .h = o->at_h, .w = o->at_w, .batch = batch};
        rows[n++] = (row){.kind = ROW_SANDWICH, .h = o->at_h, .w = o->at_w, .batch = batch};
    } else if (o->quick) {
        rows[n++] = (row){.kind = ROW_FORWARD, .h = 128, .w = 256, .batch = 1};
        rows[n++] = (row){.kind = ROW_TRAIN, .h = 128, .w = 128, .batch = batch};
        rows[n++] = (row){.kind = ROW_SANDWICH, .h = 128, .w = 128, .batch = batch};
    } else {
        rows[n++] = (row){.kind = ROW_FORWARD, .h = 512, .w = 512, .batch = 1};
        rows[n++] = (row){.kind = ROW_FORWARD, .h = 512, .w = 1024, .batch = 1};
        rows[n++] = (row){.kind = ROW_FORWARD, .h = 1024, .w = 2048, .batch = 1};
        rows[n++] = (row){.kind = ROW_TRAIN, .h = 512, .w = 512, .batch = batch};
        rows[n++] = (row){.kind = ROW_TRAIN, .h = 512, .w = 1024, .batch = batch};
        rows[n++] = (row){.kind = ROW_SANDWICH, .h = 512, .w = 512, .batch = batch};
        rows[n++] = (row){.kind = ROW_SANDWICH, .h = 512, .w = 1024, .batch = batch};
    }
    if (!rc && batch > MN_MAX_BATCH) rc = mn_error(MN_EINVAL, "bench: --batch must be at most %d", MN_MAX_BATCH);
    if (!rc) {
        int64_t macs, params = 0;
        rc = b.det ? mn_det_flops(b.dn, 1.0f, 128, 128, &macs, &params) : mn_seg_flops(b.seg, 1.0f, 128, 128, &macs, &params);
        printf("mutualnet %s (%s, %d classes, %lld parameters), %d OpenMP threads, OpenBLAS %s (%s kernels), "
               "median of %d\n",
               o->model, config, classes, (long long)params, omp_get_max_threads(),
               openblas_get_parallel() == 2 ? "OpenMP build" : "NOT the OpenMP build", openblas_get_corename(), o->reps);
        if (!b.det)
            printf("sandwich: width/scale %.3f/%.2f %.3f/%.2f %.3f/%.2f %.3f/%.2f\n", (double)b.sw[0].width,
                   (double)b.sw[0].scale, (double)b.sw[1].width, (double)b.sw[1].scale, (double)b.sw[2].width,
                   (double)b.sw[2].scale, (double)b.sw[3].width, (double)b.sw[3].scale);
        printf("\n| row | input | batch | GMACs | ms | GFLOP/s |\n|---|---|---|---|---|---|\n");
    }
    for (int i = 0; i < n && !rc; i++) {
        const row *rw = &rows[i];
        if ((o->only >= 0 && o->only != rw->kind) || (o->h && (o->h != rw->h || o->w != rw->w))) continue;
        if (b.det && rw->kind == ROW_SANDWICH) continue;
        double macs = 0, flops = 0;
        rc = prepare(&b, rw);
        if (!rc) rc = row_macs(&b, rw, &macs, &flops);
        /* a fresh tape per row: the arena is sized by the largest pass it has seen */
        mn_tape_init(&b.tape, 0);
        double v[1000];
        for (int k = o->list ? o->reps : -MN_LATENCY_WARMUP; k < o->reps && !rc; k++) {
            double t0 = mn_now();
            rc = run_row(&b, rw);
            if (k >= 0) v[k] = 1e3 * (mn_now() - t0);
        }
        mn_tape_free(&b.tape);
        if (rc) break;
        if (o->list) {
            printf("| %s | %dx%d | %d | %.2f | - | - |\n", row_name[rw->kind], rw->h, rw->w, rw->batch, macs / 1e9);
            continue;
        }
        double ms = mn_median(v, o->reps);
        printf("| %s | %dx%d | %d | %.2f | %.1f | %.1f |\n", row_name[rw->kind], rw->h, rw->w, rw->batch, macs / 1e9,
               ms, flops / (ms * 1e-3) / 1e9);
        fflush(stdout);
    }
    if (rc) fprintf(stderr, "mutualnet bench: %s\n", mn_last_error());
    free(b.input);
    free(b.labels);
    free(b.labels_small);
    free(b.teacher);
    mn_sgd_free(&b.opt);
    mn_seg_free(b.seg);
    mn_det_free(b.dn);
    mn_param_set_free(&b.ps);
    return rc ? MN_EXIT_FAIL : MN_EXIT_OK;
}
