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

/* Buffers that live for the whole run, sized once for the full crop. */
typedef struct trainer {
    const mn_config *c;
    mn_seg_model model;
    mn_sgd opt;
    mn_tape tape;
    mn_dataset *train, *val;
    mn_loader *loader;
    float *teacher;          /* (N, K, h4, w4) detached softmax of the full network */
    int64_t teacher_shape[4];
    int32_t *labels_small;   /* (N, h, w) ground truth resized for a sub-network */
    FILE *metrics;
    char path_last[1100];
} trainer;

/* Label map (n, H, W) -> (n, h, w) with PyTorch's nearest rule: src = floor(dst * in / out). */
static void resize_labels(int32_t *dst, const int32_t *src, int n, int H, int W, int h, int w)
{
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++) {
            int sy = (int)((int64_t)y * H / h);
            for (int x = 0; x < w; x++) dst[((int64_t)b * h + y) * w + x] = src[((int64_t)b * H + sy) * W + (int)((int64_t)x * W / w)];
        }
}

static int round32(float v)
{
    int r = (int)(v / 32.0f + 0.5f) * 32;
    return r < 32 ? 32 : r;
}

/* One forward/backward pass of one network; returns its loss value through *loss. */
static int run_subnet(trainer *tr, const mn_seg_batch *b, const mn_subnet *sn, bool teacher, double *loss)
{
    const mn_config *c = tr->c;
    mn_tape *t = &tr->tape;
    mn_tape_reset(t);
    int h = b->h, w = b->w;
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
    const int32_t *labels = b->labels;
    if (sn->scale != 1.0f) {
        h = round32((float)b->h * sn->scale);
        w = round32((float)b->w * sn->scale);
        /* the same augmented batch, resized (spec §1: bilinear, align_corners=True) */
        x = mn_resize_bilinear(t, x, h, w, true);
        resize_labels(tr->labels_small, b->labels, b->n, b->h, b->w, h, w);
        labels = tr->labels_small;
    }
    /* only the full network keeps BN running statistics; calibration redoes them per config */
    mn_run r = {.tape = t, .width = sn->width, .training = true, .bn_momentum = teacher ? 0.1f : 0.0f};
    mn_var *raw = mn_seg_forward_raw(tr->model.net, &r, x);
    mn_var *logits = raw ? mn_resize_bilinear(t, raw, h, w, false) : NULL;
    mn_var *ce = mn_cross_entropy(t, logits, labels, MN_IGNORE_LABEL);
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
        memcpy(tr->teacher_shape, p->val.shape, sizeof tr->teacher_shape);
        memcpy(tr->teacher, p->val.data, sizeof(float) * (size_t)mn_tensor_numel(&p->val));
    }
    return mn_backward(t, l);
}

static int checkpoint(trainer *tr, int64_t iter)
{
    int rc = mn_seg_model_save(&tr->model, tr->path_last, &tr->opt, iter);
    if (rc) mn_warn("checkpoint not written: %s", mn_last_error());
    return rc;
}

static int open_data(trainer *tr)
{
    const mn_config *c = tr->c;
    mn_dataset_options o;
    mn_config_dataset_options(c, c->data.train_split, &o);
    int rc = mn_dataset_open(&tr->train, &o);
    if (rc) return rc;
    if (mn_dataset_size(tr->train) < c->train.batch_size)
        return mn_error(MN_EINVAL, "%s: the %s split has %d images, fewer than batch_size %d", c->data.root,
                        c->data.train_split, mn_dataset_size(tr->train), c->train.batch_size);
    o.split = c->data.val_split;
    rc = mn_dataset_open(&tr->val, &o);
    if (rc) return rc;
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, c->data.crop[0], c->data.crop[1], true);
    aug.scale_min = c->data.scale_range[0];
    aug.scale_max = c->data.scale_range[1];
    aug.hflip = c->data.hflip;
    mn_loader_options lo = {.batch_size = c->train.batch_size, .shuffle = true, .drop_last = true,
                            .workers = c->data.workers, .prefetch = 2, .seed = c->train.seed};
    return mn_loader_open(&tr->loader, tr->train, &aug, &lo);
}

static void close_trainer(trainer *tr)
{
    mn_loader_close(tr->loader);
    mn_dataset_close(tr->train);
    mn_dataset_close(tr->val);
    mn_sgd_free(&tr->opt);
    mn_tape_free(&tr->tape);
    mn_seg_model_free(&tr->model);
    free(tr->teacher);
    free(tr->labels_small);
    if (tr->metrics) fclose(tr->metrics);
}

static int evaluate(trainer *tr, int64_t iter)
{
    mn_seg_scores s;
    const mn_config *c = tr->c;
    int rc = mn_seg_evaluate(&tr->model, tr->val, c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_max,
                             c->data.eval_size[0], c->data.eval_size[1], 0, true, &s);
    if (rc) return rc;
    mn_info("iteration %lld: validation mIoU %.2f%%, aAcc %.2f%% (full width, %dx%d)", (long long)iter, 100 * s.miou,
            100 * s.aacc, c->data.eval_size[0], c->data.eval_size[1]);
    fprintf(tr->metrics, "{\"iter\": %lld, \"val_mIoU\": %.6f, \"val_aAcc\": %.6f, \"val_mAcc\": %.6f}\n", (long long)iter,
            s.miou, s.aacc, s.macc);
    fflush(tr->metrics);
    return 0;
}

int mn_train_segmentation(const mn_config *c, const char *resume, int64_t stop_at)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.c = c;
    mn_tape_init(&tr.tape, 0);
    int rc = mn_mkdirs(c->train.out_dir);
    if (!rc) rc = open_data(&tr);
    const char *names[256];
    int K = rc ? 0 : mn_dataset_num_classes(tr.train);
    for (int k = 0; k < K && k < 256; k++) names[k] = mn_dataset_class_name(tr.train, k);
    if (!rc) rc = mn_seg_model_create(&tr.model, c, K, names, c->train.seed);
    mn_sgd_config oc = {c->optim.lr, c->optim.momentum, 0.0f, c->optim.nesterov, c->optim.weight_decay};
    if (!rc) rc = mn_sgd_init(&tr.opt, &tr.model.ps, &oc);
    snprintf(tr.path_last, sizeof tr.path_last, "%s/last.safetensors", c->train.out_dir);
    int64_t start = 0;
    if (!rc && resume) {
        rc = mn_seg_model_resume(&tr.model, resume, &tr.opt, &start);
        if (!rc) mn_info("resuming %s at iteration %lld", resume, (long long)start);
    }
    int64_t n = c->train.batch_size, hw = (int64_t)c->data.crop[0] * c->data.crop[1];
    tr.teacher = rc ? NULL : malloc(sizeof(float) * (size_t)(n * K * hw / 16 + 1));
    tr.labels_small = rc ? NULL : malloc(sizeof(int32_t) * (size_t)(n * hw));
    if (!rc && (!tr.teacher || !tr.labels_small)) rc = mn_error(MN_ENOMEM, "out of memory for the training buffers");
    if (!rc) {
        char path[1100];
        snprintf(path, sizeof path, "%s/config.json", c->train.out_dir);
        char *js = mn_config_to_json(c);
        FILE *f = fopen(path, "w");
        if (f && js) fputs(js, f);
        if (f) fclose(f);
        free(js);
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->train.out_dir);
        tr.metrics = fopen(path, resume ? "a" : "w");
        if (!tr.metrics) rc = mn_error(MN_EIO, "%s: cannot write", path);
    }
    int per_epoch = rc ? 1 : mn_loader_batches_per_epoch(tr.loader);
    if (!rc) rc = mn_loader_start(tr.loader, (int)(start / per_epoch), (int)(start % per_epoch));
    mn_progress pg;
    mn_progress_begin(&pg, "train", c->train.iterations, start, c->train.log_every);
    double t_last = mn_now();
    int64_t end = stop_at > 0 && stop_at < c->train.iterations ? stop_at : c->train.iterations;
    for (int64_t it = start; !rc && it < end; it++) {
        const mn_seg_batch *b = NULL;
        rc = mn_loader_next(tr.loader, &b);
        if (!rc && !b) { /* epoch boundary */
            rc = mn_loader_start(tr.loader, (int)((it) / per_epoch), 0);
            if (!rc) rc = mn_loader_next(tr.loader, &b);
            if (!rc && !b) rc = mn_error(MN_EINVAL, "the data loader produced an empty epoch");
        }
        if (rc) break;
        mn_subnet sn[MN_MAX_SUBNETS];
        int ns = mn_sandwich(c, c->train.seed, it, sn);
        double losses[MN_MAX_SUBNETS];
        mn_param_zero_grad(&tr.model.ps);
        for (int k = 0; k < ns && !rc; k++) rc = run_subnet(&tr, b, &sn[k], k == 0, &losses[k]);
        float lr = mn_lr_at(c, it);
        if (!rc) rc = mn_sgd_step(&tr.opt, lr);
        if (rc) {
            mn_log(MN_LOG_ERROR, "stopped at iteration %lld: %s; the last good checkpoint is %s", (long long)it,
                   mn_last_error(), tr.path_last);
            break;
        }
        if ((it + 1) % c->train.log_every == 0 || it + 1 == c->train.iterations) {
            double now = mn_now();
            fprintf(tr.metrics, "{\"iter\": %lld, \"lr\": %.6g, \"loss\": %.7f, \"subnets\": [", (long long)(it + 1), (double)lr,
                    losses[0]);
            for (int k = 0; k < ns; k++)
                fprintf(tr.metrics, "%s{\"width\": %.4f, \"scale\": %.2f, \"loss\": %.7f}", k ? ", " : "",
                        (double)sn[k].width, (double)sn[k].scale, losses[k]);
            fprintf(tr.metrics, "], \"seconds\": %.3f}\n", now - t_last);
            fflush(tr.metrics);
            t_last = now;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f lr %.2e", losses[0], (double)lr);
        mn_progress_update(&pg, it + 1, (double)c->train.batch_size, extra);
        if ((it + 1) % c->train.checkpoint_every == 0 || it + 1 == c->train.iterations) rc = checkpoint(&tr, it + 1);
        if (!rc && c->train.eval_every && (it + 1) % c->train.eval_every == 0 && it + 1 < c->train.iterations) {
            mn_progress_end(&pg);
            rc = evaluate(&tr, it + 1);
        }
    }
    mn_progress_end(&pg);
    if (!rc && start < end && end == c->train.iterations) rc = evaluate(&tr, end);
    close_trainer(&tr);
    return rc;
}
