/* Mutual learning for segmentation (spec §1 and §8.3): each iteration trains the full width at
 * the full crop on ground truth, then the sandwich of narrower networks on the same batch
 * resized to their own scales, with ground-truth and/or distillation losses; gradients
 * accumulate over the passes and one SGD step follows. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mn/dataset.h"
#include "mn/ops.h"
#include "mn/seg_eval.h"
#include "mn/seg_model.h"
#include "mn/train.h"
#include "train/driver.h"

/* Buffers that live for the whole run, sized once for the full crop. */
typedef struct trainer {
    drv_run run;             /* first: the driver's callbacks get &run back */
    mn_seg_model model;
    float *teacher;          /* (N, K, h4, w4) detached softmax of the full network */
    int64_t teacher_shape[4];
    int64_t teacher_cap;     /* floats the teacher buffer holds */
    int32_t *labels_small;   /* (N, h, w) ground truth resized for a sub-network */
    int64_t labels_cap;      /* labels the buffer holds */
} trainer;

/* Grows *buf to hold n elements of size bytes. The sizes follow from the network's own output
 * (ceil(h / 4) at a crop that is no multiple of 4) and from rounded scales (which may exceed
 * the crop), so they are taken from the tensors at hand, never predicted. */
static int reserve(void **buf, int64_t *cap, int64_t n, size_t size, const char *what)
{
    if (n <= *cap) return 0;
    void *p = realloc(*buf, size * (size_t)n);
    if (!p) return mn_error(MN_ENOMEM, "out of memory for the %s (%lld values)", what, (long long)n);
    *buf = p;
    *cap = n;
    return 0;
}

/* Label map (n, H, W) -> (n, h, w) with PyTorch's nearest rule: src = floor(dst * in / out). */
static void resize_labels(int32_t *dst, const int32_t *src, int n, int H, int W, int h, int w)
{
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++) {
            int sy = (int)((int64_t)y * H / h);
            for (int x = 0; x < w; x++) dst[((int64_t)b * h + y) * w + x] = src[((int64_t)b * H + sy) * W + (int)((int64_t)x * W / w)];
        }
}

/* One forward/backward pass of one network; returns its loss value through *loss. */
static int run_subnet(trainer *tr, const mn_seg_batch *b, const mn_subnet *sn, bool teacher, double *loss)
{
    const mn_config *c = tr->run.c;
    mn_tape *t = &tr->run.tape;
    mn_tape_reset(t);
    int h = b->h, w = b->w;
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
    const int32_t *labels = b->labels;
    if (sn->scale != 1.0f) {
        h = mn_round32((float)b->h * sn->scale);
        w = mn_round32((float)b->w * sn->scale);
        /* the same augmented batch, resized (spec §1: bilinear, align_corners=True) */
        x = mn_resize_bilinear(t, x, h, w, true);
        int rc = reserve((void **)&tr->labels_small, &tr->labels_cap, (int64_t)b->n * h * w, sizeof(int32_t),
                         "resized labels");
        if (rc) return rc;
        resize_labels(tr->labels_small, b->labels, b->n, b->h, b->w, h, w);
        labels = tr->labels_small;
    }
    /* only the full network keeps BN running statistics; calibration redoes them per config */
    mn_run r = {.tape = t, .width = sn->width, .training = true, .bn_momentum = teacher ? 0.1f : 0.0f,
                .sync_bn = drv_sync_bn(&tr->run)};
    mn_var *raw = mn_seg_forward_raw(tr->model.net, &r, x);
    mn_var *logits = raw ? mn_resize_bilinear(t, raw, h, w, false) : NULL;
    mn_var *ce = mn_cross_entropy(t, logits, labels, MN_IGNORE_LABEL);
    if (tr->run.ranks > 1) { /* the mean over every rank's labelled pixels, not over this rank's */
        int64_t valid = 0, px = (int64_t)b->n * h * w;
        for (int64_t i = 0; i < px; i++) valid += labels[i] != MN_IGNORE_LABEL;
        float share;
        int rc = drv_mean_share(&tr->run, valid, &share);
        if (rc) return rc;
        ce = mn_scale(t, ce, share);
    }
    mn_var *l = teacher ? ce : mn_scale(t, ce, c->mutual.gt_weight);
    if (!teacher && c->mutual.distill == MN_DISTILL_KL && raw) {
        mn_var *p = mn_var_wrap(t, mn_tensor_view(tr->teacher, 4, tr->teacher_shape));
        mn_var *s = raw;
        if (raw->val.shape[2] != tr->teacher_shape[2] || raw->val.shape[3] != tr->teacher_shape[3])
            s = mn_resize_bilinear(t, raw, (int)tr->teacher_shape[2], (int)tr->teacher_shape[3], false);
        l = mn_add(t, l, mn_scale(t, mn_kl_div(t, s, p), c->mutual.distill_weight));
    }
    if (!l) return mn_last_error_code();
    *loss = l->val.data[0];
    if (!isfinite(*loss))
        return mn_error(MN_ENUMERIC, "loss is %g at width %.3f, scale %.2f", *loss, (double)sn->width, (double)sn->scale);
    if (teacher && c->mutual.distill == MN_DISTILL_KL) {
        /* keep the teacher's distribution beyond this pass, cut from the graph */
        mn_var *p = mn_softmax(t, raw);
        if (!p) return mn_last_error_code();
        int64_t n = mn_tensor_numel(&p->val);
        int rc = reserve((void **)&tr->teacher, &tr->teacher_cap, n, sizeof(float), "teacher's distribution");
        if (rc) return rc;
        memcpy(tr->teacher_shape, p->val.shape, sizeof tr->teacher_shape);
        memcpy(tr->teacher, p->val.data, sizeof(float) * (size_t)n);
    }
    return mn_backward(t, l);
}

/* A split whose label maps hold no pixel of a class 0..K-1 would train at loss 0 for the whole
 * run (a wrong data.labels folder, void_index or class list), or score nothing at the end.
 * Small splits are read whole; larger ones through 16 images spread over the split, refused
 * only when every one of them is all ignore. */
static int check_labels(mn_dataset *d, const char *split, const mn_config *c, int K)
{
    int n = mn_dataset_size(d), step = n <= 64 ? 1 : n / 16, seen = 0;
    for (int i = 0; i < n; i += step, seen++) {
        mn_sample s;
        memset(&s, 0, sizeof s);
        int rc = mn_dataset_get(d, i, &s);
        if (rc) return rc;
        int64_t px = s.label.data ? (int64_t)s.label.w * s.label.h : 0, usable = 0;
        for (int64_t j = 0; j < px; j++) usable += s.label.data[j] < K;
        mn_sample_free(&s);
        if (usable) return 0;
    }
    return mn_error(MN_EINVAL,
                    "%s: the %s split's label maps hold no pixel of the %d classes (%d of %d images read, every pixel "
                    "ignore or out of range): check data.labels, data.void_index and the class list",
                    c->data.root, split, K, seen, n);
}

/* The data, and the model with the training split's class names. */
static int open_run(drv_run *run)
{
    trainer *tr = (trainer *)run;
    const mn_config *c = run->c;
    int rc = drv_open_splits(run);
    int K = rc ? 0 : mn_dataset_num_classes(run->train);
    if (!rc) rc = check_labels(run->train, c->data.train_split, c, K);
    if (!rc) rc = check_labels(run->val, c->data.val_split, c, K);
    if (!rc) rc = drv_open_image_loader(run);
    if (rc) return rc;
    const char *names[256];
    for (int k = 0; k < K && k < 256; k++) names[k] = mn_dataset_class_name(run->train, k);
    run->ps = &tr->model.ps;
    rc = mn_seg_model_create(&tr->model, c, K, names, c->train.seed);
    if (!rc) drv_report_start(run, &tr->model.init, &tr->model.ps);
    return rc;
}

static int resume_model(drv_run *run, const char *path, int64_t *iteration)
{
    return mn_seg_model_resume(&((trainer *)run)->model, path, &run->opt, iteration);
}

/* The teacher's distribution at a quarter of the crop (rounded up, as the stride-2 layers
 * round), and labels at the crop: sized before the first pass so that an out-of-memory shows
 * at start; the passes grow them if a size turns out larger. */
static int alloc_buffers(drv_run *run)
{
    trainer *tr = (trainer *)run;
    const mn_config *c = run->c;
    int64_t n = c->train.batch_size, K = tr->model.num_classes;
    int64_t h4 = (c->data.crop[0] + 3) / 4, w4 = (c->data.crop[1] + 3) / 4;
    int rc = reserve((void **)&tr->teacher, &tr->teacher_cap, n * K * h4 * w4, sizeof(float), "teacher's distribution");
    if (!rc)
        rc = reserve((void **)&tr->labels_small, &tr->labels_cap, n * c->data.crop[0] * c->data.crop[1],
                     sizeof(int32_t), "resized labels");
    return rc;
}

static int pass(drv_run *run, const void *batch, const mn_subnet *sn, int64_t it, int k, double *loss)
{
    return run_subnet((trainer *)run, batch, sn, k == 0, loss);
}

static int save(drv_run *run, const char *path, int64_t iteration)
{
    return mn_seg_model_save(&((trainer *)run)->model, path, &run->opt, iteration);
}

static void close_model(drv_run *run)
{
    trainer *tr = (trainer *)run;
    mn_seg_model_free(&tr->model);
    free(tr->teacher);
    free(tr->labels_small);
}

static int evaluate(drv_run *run, int64_t iter)
{
    trainer *tr = (trainer *)run;
    mn_seg_scores s;
    const mn_config *c = run->c;
    int rc = mn_seg_evaluate_ranks(&tr->model, run->val,
                                   c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_max,
                                   c->data.eval_size[0], c->data.eval_size[1], 0, run->rep, run->comm, &s);
    if (rc) return rc;
    mn_report(run->rep, MN_LOG_INFO, "iteration %lld: validation mIoU %.2f%%, aAcc %.2f%% (full width, %dx%d)", (long long)iter, 100 * s.miou,
            100 * s.aacc, c->data.eval_size[0], c->data.eval_size[1]);
    fprintf(run->metrics, "{\"iter\": %lld, \"val_mIoU\": %.6f, \"val_aAcc\": %.6f, \"val_mAcc\": %.6f}\n", (long long)iter,
            s.miou, s.aacc, s.macc);
    fflush(run->metrics);
    return 0;
}

static const drv_train_ops seg_ops = {
    .open = open_run,
    .resume = resume_model,
    .buffers = alloc_buffers,
    .next = drv_next_image_batch,
    .pass = pass,
    .metrics_subnet = drv_metrics_subnet_plain,
    .save = save,
    .evaluate = evaluate,
    .close = close_model,
};

int drv_train_segmentation(const mn_config *c, const mn_train_options *o)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    return drv_train(&tr.run, &seg_ops, c, o);
}

int mn_train_segmentation(const mn_config *c, const char *resume, int64_t stop_at)
{
    mn_train_options o = {.resume = resume, .stop_at = stop_at};
    return drv_train_segmentation(c, &o);
}
