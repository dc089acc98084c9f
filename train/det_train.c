/* Mutual learning for detection (spec §8.3, our derivation): each iteration trains the full
 * width at the full short side on ground truth, then the sandwich of narrower networks on the
 * same augmented batch resized to their own short sides (det.short_side x a drawn scale), with
 * ground-truth losses and, when mutual.distill is "kl", distillation from the full network's
 * RoI classifier and objectness (include/mn/det.h); gradients accumulate over the passes and one
 * SGD step follows. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mn/dataset.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/ops.h"
#include "mn/train.h"
#include "train/driver.h"

/* What one network's pass reports. */
typedef struct pass_losses {
    double total, rpn_cls, rpn_box, cls, box, distill; /* distill: NaN when not computed */
    int short_side;
} pass_losses;

typedef struct trainer {
    drv_run run;                 /* first: the driver's callbacks get &run back */
    mn_det_model model;
    mn_det_aug aug;
    mn_det_batch small;          /* the batch resized for a sub-network (owned, reused) */
    mn_det_teacher *teacher;     /* the full network's capture (distillation only) */
    char val_annotations[1100];
    pass_losses losses[MN_MAX_SUBNETS]; /* this iteration's, for the metrics line */
} trainer;

/* The short side a sub-network at this input scale trains at. */
static int side_of(const mn_config *c, float scale)
{
    int s = (int)lroundf((float)c->det.short_side * scale);
    return s < 32 ? 32 : s;
}

/* One forward/backward pass of one network (k-th of iteration it). */
static int run_subnet(trainer *tr, const mn_det_batch *full, const mn_subnet *sn, int64_t it, int k, pass_losses *out)
{
    const mn_config *c = tr->run.c;
    bool teacher = k == 0, kl = c->mutual.distill == MN_DISTILL_KL;
    const mn_det_batch *b = full;
    out->short_side = side_of(c, sn->scale);
    if (out->short_side != c->det.short_side) {
        /* the same augmented batch at the sub-network's short side, padded as the global batch is */
        int ph = 0, pw = 0, rc = 0;
        if (tr->run.ranks > 1) {
            rc = mn_det_batch_resized_size(full, &tr->aug, out->short_side, &ph, &pw);
            double pad[2] = {ph, pw};
            if (!rc) rc = mn_comm_reduce_f64(tr->run.comm, pad, 2, MN_COMM_MAX);
            ph = (int)pad[0], pw = (int)pad[1];
        }
        if (!rc) rc = mn_det_batch_resize_pad(&tr->small, full, &tr->aug, out->short_side, ph, pw);
        if (rc) return rc;
        b = &tr->small;
    }
    mn_tape *t = &tr->run.tape;
    mn_tape_reset(t);
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
    mn_det_targets tg[MN_MAX_BATCH];
    for (int i = 0; i < b->n; i++) tg[i] = (mn_det_targets){b->boxes[i], b->n_boxes[i]};
    /* the samplers' randomness depends only on (seed, iteration, network): resuming redraws it */
    mn_rng base, rng;
    mn_rng_seed(&base, c->train.seed ^ 0x44455431u);
    rng = mn_rng_split(&base, (uint64_t)it * MN_MAX_SUBNETS + (uint64_t)k);
    /* only the full network keeps BN running statistics; calibration redoes them per config */
    mn_run r = {.tape = t, .width = sn->width, .training = true, .bn_momentum = teacher ? 0.1f : 0.0f,
                .sync_bn = drv_sync_bn(&tr->run)};
    mn_det_losses L;
    int rc = mn_det_forward_train(tr->model.net, &r, x, b->info, tg, &rng, teacher && kl ? tr->teacher : NULL,
                                  !teacher && kl ? tr->teacher : NULL, c->mutual.distill_weight, &L);
    if (rc) return rc;
    mn_var *l = L.total;
    if (tr->run.ranks > 1 || (!teacher && c->mutual.gt_weight != 1.0f)) {
        /* over several ranks each mean is a share of the global one: the RPN's over every rank's
         * sampled anchors, the RoI head's over every rank's RoIs (the distillation terms average over
         * the teacher's RoIs and every anchor, as many on each rank when each image gives a full sample) */
        float s_rpn = 1.0f, s_roi = 1.0f;
        rc = drv_mean_share(&tr->run, L.rpn_samples, &s_rpn);
        if (!rc) rc = drv_mean_share(&tr->run, L.roi_samples, &s_roi);
        if (rc) return rc;
        mn_var *gt = mn_add(t, mn_scale(t, mn_add(t, L.rpn_cls, L.rpn_box), s_rpn), mn_scale(t, mn_add(t, L.cls, L.box), s_roi));
        l = teacher ? gt : mn_scale(t, gt, c->mutual.gt_weight);
        if (L.distill) l = mn_add(t, l, mn_scale(t, L.distill, c->mutual.distill_weight));
    }
    if (!l) return mn_last_error_code();
    out->total = l->val.data[0];
    out->rpn_cls = L.rpn_cls->val.data[0];
    out->rpn_box = L.rpn_box->val.data[0];
    out->cls = L.cls->val.data[0];
    out->box = L.box->val.data[0];
    out->distill = L.distill ? L.distill->val.data[0] : NAN;
    if (!isfinite(out->total))
        return mn_error(MN_ENUMERIC, "loss is %g at width %.3f, short side %d (rpn_cls %g, rpn_box %g, cls %g, box %g)",
                        out->total, (double)sn->width, out->short_side, out->rpn_cls, out->rpn_box, out->cls, out->box);
    return mn_backward(t, l);
}

static int check_task(drv_run *run)
{
    if (run->c->task != MN_TASK_DETECTION)
        return mn_error(MN_EINVAL, "mn_train_detection: the configuration's task is not detection");
    return 0;
}

/* A split without one usable box would train the RPN and box head on background alone; the
 * boxes a loader skips are worth a word before hours are spent. */
static int check_boxes(const mn_dataset *d, const char *split, const mn_config *c, const mn_reporter *rep)
{
    mn_box_stats b;
    int rc = mn_dataset_box_stats(d, &b);
    if (rc) return rc;
    int64_t skipped = b.degenerate + b.unknown_image + b.unknown_category;
    if (b.usable == 0)
        return mn_error(MN_EINVAL,
                        "%s: the %s split has no usable box (%lld annotations: %lld crowd, %lld with no area inside "
                        "the image, %lld on unknown images, %lld in unknown categories): a detector has nothing to "
                        "learn; check data.annotations",
                        c->data.root, split, (long long)b.annotations, (long long)b.crowd, (long long)b.degenerate,
                        (long long)b.unknown_image, (long long)b.unknown_category);
    if (skipped)
        mn_report(rep, MN_LOG_WARN, "%s: the %s split: %lld of %lld annotations skipped (%lld with no area inside the image, %lld on "
                "unknown images, %lld in unknown categories)",
                c->data.root, split, (long long)skipped, (long long)b.annotations, (long long)b.degenerate,
                (long long)b.unknown_image, (long long)b.unknown_category);
    return 0;
}

static int open_data(trainer *tr)
{
    drv_run *run = &tr->run;
    const mn_config *c = run->c;
    if (strcmp(c->data.kind, "coco"))
        return mn_error(MN_EINVAL, "detection needs data.kind \"coco\" (COCO instances JSON), not \"%s\"", c->data.kind);
    int rc = drv_open_splits(run);
    if (!rc) rc = check_boxes(run->train, c->data.train_split, c, run->rep);
    if (rc) return rc;
    mn_det_annotations_path(tr->val_annotations, sizeof tr->val_annotations, c, c->data.val_split);
    mn_det_aug_default(&tr->aug, c->det.short_side, c->det.max_side, c->data.hflip);
    mn_loader_options lo = drv_loader_options(run);
    return mn_loader_open_det(&run->loader, run->train, &tr->aug, &lo);
}

/* Labels' names and category ids from the training split, and the typical image size from the
 * validation split's annotations. */
static int create_model(trainer *tr)
{
    const mn_config *c = tr->run.c;
    mn_dataset *train = tr->run.train, *val = tr->run.val;
    int K = mn_dataset_num_classes(train);
    if (K < 2 || K > 256)
        return mn_error(MN_EINVAL, "%s: %d categories; detection needs 1 to 255", c->data.root, K - 1);
    if (mn_dataset_num_classes(val) != K)
        return mn_error(MN_EINVAL, "%s: the %s split has %d categories, the %s split %d", c->data.root,
                        c->data.train_split, K - 1, c->data.val_split, mn_dataset_num_classes(val) - 1);
    const char *names[256];
    int ids[256];
    for (int k = 0; k < K; k++) {
        names[k] = mn_dataset_class_name(train, k);
        ids[k] = k ? mn_dataset_category_id(train, k) : 0;
        if (k && mn_dataset_category_id(val, k) != ids[k])
            return mn_error(MN_EINVAL, "%s: label %d is category %d in the %s split but %d in the %s split", c->data.root,
                            k, ids[k], c->data.train_split, mn_dataset_category_id(val, k), c->data.val_split);
    }
    int th, tw;
    int rc = mn_coco_median_size(tr->val_annotations, &th, &tw);
    if (!rc) rc = mn_det_model_create(&tr->model, c, K, names, ids, th, tw, c->train.seed);
    if (!rc) drv_report_start(&tr->run, &tr->model.init, &tr->model.ps);
    return rc;
}

static int open_run(drv_run *run)
{
    trainer *tr = (trainer *)run;
    run->ps = &tr->model.ps;
    int rc = open_data(tr);
    return rc ? rc : create_model(tr);
}

static int resume_model(drv_run *run, const char *path, int64_t *iteration)
{
    return mn_det_model_resume(&((trainer *)run)->model, path, &run->opt, iteration);
}

/* The teacher's capture when distilling. */
static int alloc_buffers(drv_run *run)
{
    trainer *tr = (trainer *)run;
    if (run->c->mutual.distill == MN_DISTILL_KL && !(tr->teacher = mn_det_teacher_new())) return mn_last_error_code();
    return 0;
}

static int next_batch(mn_loader *ld, const void **batch)
{
    const mn_det_batch *b = NULL;
    int rc = mn_loader_next_det(ld, &b);
    *batch = b;
    return rc;
}

static int pass(drv_run *run, const void *batch, const mn_subnet *sn, int64_t it, int k, double *loss)
{
    trainer *tr = (trainer *)run;
    int rc = run_subnet(tr, batch, sn, it, k, &tr->losses[k]);
    *loss = tr->losses[k].total;
    return rc;
}

/* The full network's four loss parts. */
static void metrics_losses(drv_run *run, FILE *f)
{
    const pass_losses *L = &((trainer *)run)->losses[0];
    fprintf(f, ", \"rpn_cls\": %.7f, \"rpn_box\": %.7f, \"cls\": %.7f, \"box\": %.7f", L->rpn_cls, L->rpn_box, L->cls,
            L->box);
}

static void metrics_subnet(drv_run *run, FILE *f, const mn_subnet *sn, int k, double loss)
{
    const pass_losses *L = &((trainer *)run)->losses[k];
    fprintf(f, "{\"width\": %.4f, \"scale\": %.2f, \"short_side\": %d, \"loss\": %.7f", (double)sn->width,
            (double)sn->scale, L->short_side, loss);
    if (!isnan(L->distill)) fprintf(f, ", \"distill\": %.7f", L->distill);
    fputc('}', f);
}

static int save(drv_run *run, const char *path, int64_t iteration)
{
    return mn_det_model_save(&((trainer *)run)->model, path, &run->opt, iteration);
}

static void close_model(drv_run *run)
{
    trainer *tr = (trainer *)run;
    mn_det_model_free(&tr->model);
    mn_det_batch_free(&tr->small);
    mn_det_teacher_free(tr->teacher);
}

static int evaluate(drv_run *run, int64_t iter)
{
    trainer *tr = (trainer *)run;
    const mn_config *c = run->c;
    float w = c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_max;
    char results[1100];
    snprintf(results, sizeof results, "%s/val_results.json", c->train.out_dir);
    mn_det_scores s;
    int rc = mn_det_evaluate_ranks(&tr->model, run->val, tr->val_annotations, w, c->det.short_side, 0, run->rep, results,
                                   run->comm, &s);
    if (rc) return rc;
    mn_report(run->rep, MN_LOG_INFO, "iteration %lld: validation AP %.2f%%, AP50 %.2f%% (width %.2f, short side %d, %d images, %lld detections)",
            (long long)iter, 100 * s.stats[MN_COCO_AP], 100 * s.stats[MN_COCO_AP50], (double)w, c->det.short_side,
            s.n_images, (long long)s.n_detections);
    fprintf(run->metrics, "{\"iter\": %lld", (long long)iter);
    for (int i = 0; i < MN_COCO_NSTATS; i++) fprintf(run->metrics, ", \"val_%s\": %.6f", mn_coco_stat_name(i), s.stats[i]);
    fprintf(run->metrics, "}\n");
    fflush(run->metrics);
    return 0;
}

static const drv_train_ops det_ops = {
    .check = check_task,
    .open = open_run,
    .resume = resume_model,
    .buffers = alloc_buffers,
    .next = next_batch,
    .pass = pass,
    .metrics_losses = metrics_losses,
    .metrics_subnet = metrics_subnet,
    .save = save,
    .evaluate = evaluate,
    .close = close_model,
};

int drv_train_detection(const mn_config *c, const mn_train_options *o)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    return drv_train(&tr.run, &det_ops, c, o);
}

int mn_train_detection(const mn_config *c, const char *resume, int64_t stop_at)
{
    mn_train_options o = {.resume = resume, .stop_at = stop_at};
    return drv_train_detection(c, &o);
}
