/* Mutual learning for image classification, the paper's own setting (spec §1): each iteration
 * trains the full width at the full crop on the labels, then the sandwich of narrower networks on
 * the same batch resized to their scales, with distillation from the full network's detached
 * softmax (KL) and/or the labels; gradients accumulate and one SGD step follows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/cls_eval.h"
#include "mn/cls_model.h"
#include "mn/dataset.h"
#include "mn/ops.h"
#include "mn/train.h"
#include "train/driver.h"

typedef struct trainer {
    drv_run run;             /* first: the driver's callbacks get &run back */
    mn_cls_model model;
    float *teacher;          /* (N, K) detached softmax of the full network */
    double batch_top1;       /* the full network's top-1 on this iteration's batch (training mode) */
} trainer;

/* Top-1 of logits (n, K) against the classes, ties going to the lower class index. */
static double top1(const float *logits, int n, int K, const int32_t *classes)
{
    int right = 0;
    for (int i = 0; i < n; i++) {
        const float *row = logits + (int64_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++) best = row[k] > row[best] ? k : best;
        right += best == classes[i];
    }
    return n ? (double)right / n : 0.0;
}

static int run_subnet(trainer *tr, const mn_cls_batch *b, const mn_subnet *sn, bool teacher, double *loss)
{
    const mn_config *c = tr->run.c;
    mn_tape *t = &tr->run.tape;
    mn_tape_reset(t);
    for (int i = 0; i < b->n; i++)
        if (b->classes[i] < 0 || b->classes[i] >= tr->model.num_classes)
            return mn_error(MN_EINVAL, "training image %d has class %d, not one of 0..%d", b->index[i], b->classes[i],
                            tr->model.num_classes - 1);
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
    if (sn->scale != 1.0f) /* the same augmented batch, resized (spec §1: bilinear, align_corners=True) */
        x = mn_resize_bilinear(t, x, mn_round32((float)b->h * sn->scale), mn_round32((float)b->w * sn->scale), true);
    /* only the full network keeps BN running statistics; calibration redoes them per config */
    /* every rank holds batch_size / ranks images: its means are equal shares of the global ones */
    mn_run r = {.tape = t, .width = sn->width, .training = true, .bn_momentum = teacher ? 0.1f : 0.0f,
                .sync_bn = drv_sync_bn(&tr->run)};
    mn_var *logits = NULL;
    int rc = x ? mn_backbone_forward(tr->model.net, &r, x, NULL, &logits) : mn_last_error_code();
    if (rc) return rc;
    mn_var *l = NULL;
    if (teacher || c->mutual.gt_weight > 0 || c->mutual.distill != MN_DISTILL_KL) {
        mn_var *ce = mn_cross_entropy(t, logits, b->classes, -1);
        l = teacher ? ce : mn_scale(t, ce, c->mutual.gt_weight);
    }
    if (!teacher && c->mutual.distill == MN_DISTILL_KL) {
        int64_t shape[2] = {b->n, tr->model.num_classes};
        mn_var *p = mn_var_wrap(t, mn_tensor_view(tr->teacher, 2, shape));
        mn_var *kl = mn_scale(t, mn_kl_div(t, logits, p), c->mutual.distill_weight);
        l = l ? mn_add(t, l, kl) : kl;
    }
    if (!l) return mn_last_error_code();
    *loss = l->val.data[0];
    if (!isfinite(*loss))
        return mn_error(MN_ENUMERIC, "loss is %g at width %.3f, scale %.2f", *loss, (double)sn->width, (double)sn->scale);
    if (teacher) tr->batch_top1 = top1(logits->val.data, b->n, tr->model.num_classes, b->classes);
    if (teacher && c->mutual.distill == MN_DISTILL_KL) {
        mn_var *p = mn_softmax(t, logits); /* kept beyond this pass, cut from the graph */
        if (!p) return mn_last_error_code();
        memcpy(tr->teacher, p->val.data, sizeof(float) * (size_t)mn_tensor_numel(&p->val));
    }
    return mn_backward(t, l);
}

static int open_run(drv_run *run)
{
    trainer *tr = (trainer *)run;
    const mn_config *c = run->c;
    int rc = drv_open_splits(run);
    mn_cls_aug aug = mn_config_cls_aug(c, true);
    mn_loader_options lo = drv_loader_options(run);
    if (!rc) rc = mn_loader_open_cls(&run->loader, run->train, &aug, &lo);
    if (rc) return rc;
    int K = mn_dataset_num_classes(run->train);
    const char **names = malloc(sizeof(char *) * (size_t)(K > 0 ? K : 1));
    if (!names) return mn_error(MN_ENOMEM, "out of memory");
    for (int k = 0; k < K; k++) names[k] = mn_dataset_class_name(run->train, k);
    run->ps = &tr->model.ps;
    rc = mn_cls_model_create(&tr->model, c, K, names, c->train.seed);
    if (!rc) drv_report_start(run, &tr->model.init, &tr->model.ps);
    free(names);
    return rc;
}

/* Only the image folder kind has image-level classes. */
static int check(drv_run *run)
{
    const char *kind = run->c->data.kind;
    if (strcmp(kind, "imagefolder"))
        return mn_error(MN_EINVAL, "classification needs data.kind \"imagefolder\" (images in {split}/<class>/), not \"%s\"",
                        kind);
    return 0;
}

static int resume_model(drv_run *run, const char *path, int64_t *iteration)
{
    return mn_cls_model_resume(&((trainer *)run)->model, path, &run->opt, iteration);
}

static int alloc_buffers(drv_run *run)
{
    trainer *tr = (trainer *)run;
    tr->teacher = malloc(sizeof(float) * (size_t)run->c->train.batch_size * (size_t)tr->model.num_classes);
    return tr->teacher ? 0 : mn_error(MN_ENOMEM, "out of memory for the teacher's outputs");
}

static int next_batch(mn_loader *ld, const void **batch)
{
    const mn_cls_batch *b = NULL;
    int rc = mn_loader_next_cls(ld, &b);
    *batch = b;
    return rc;
}

static int pass(drv_run *run, const void *batch, const mn_subnet *sn, int64_t it, int k, double *loss)
{
    return run_subnet((trainer *)run, batch, sn, k == 0, loss);
}

/* The training batch's top-1 beside the loss: a network that cannot fit its data shows here,
 * one that fits but does not generalise shows only in val_top1. */
static void metrics_losses(drv_run *run, FILE *f)
{
    fprintf(f, ", \"train_top1\": %.4f", ((trainer *)run)->batch_top1);
}

static int save(drv_run *run, const char *path, int64_t iteration)
{
    return mn_cls_model_save(&((trainer *)run)->model, path, &run->opt, iteration);
}

static void close_model(drv_run *run)
{
    trainer *tr = (trainer *)run;
    mn_cls_model_free(&tr->model);
    free(tr->teacher);
}

static int evaluate(drv_run *run, int64_t iter)
{
    trainer *tr = (trainer *)run;
    const mn_config *c = run->c;
    mn_cls_scores s;
    int rc = mn_cls_evaluate_ranks(&tr->model, run->val,
                                   c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_max,
                                   c->data.eval_size[0], c->data.eval_size[1], 0, run->rep, run->comm, &s);
    if (rc) return rc;
    mn_report(run->rep, MN_LOG_INFO, "iteration %lld: validation top-1 %.2f%%, top-5 %.2f%% (full width, %dx%d)", (long long)iter, 100 * s.top1,
            100 * s.top5, c->data.eval_size[0], c->data.eval_size[1]);
    fprintf(run->metrics, "{\"iter\": %lld, \"val_top1\": %.6f, \"val_top5\": %.6f}\n", (long long)iter, s.top1, s.top5);
    fflush(run->metrics);
    return 0;
}

static const drv_train_ops cls_ops = {
    .check = check,
    .open = open_run,
    .resume = resume_model,
    .buffers = alloc_buffers,
    .next = next_batch,
    .pass = pass,
    .metrics_losses = metrics_losses,
    .metrics_subnet = drv_metrics_subnet_plain,
    .save = save,
    .evaluate = evaluate,
    .close = close_model,
};

int drv_train_classification(const mn_config *c, const mn_train_options *o)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    return drv_train(&tr.run, &cls_ops, c, o);
}

int mn_train_classification(const mn_config *c, const char *resume, int64_t stop_at)
{
    mn_train_options o = {.resume = resume, .stop_at = stop_at};
    return drv_train_classification(c, &o);
}
