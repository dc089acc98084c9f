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
#include "mn/det_model.h"
#include "mn/ops.h"
#include "mn/train.h"

/* What one network's pass reports. */
typedef struct pass_losses {
    double total, rpn_cls, rpn_box, cls, box, distill; /* distill: NaN when not computed */
    int short_side;
} pass_losses;

typedef struct trainer {
    const mn_config *c;
    mn_det_model model;
    mn_sgd opt;
    mn_tape tape;
    mn_dataset *train, *val;
    mn_loader *loader;
    mn_det_aug aug;
    mn_det_batch small;          /* the batch resized for a sub-network (owned, reused) */
    mn_det_teacher *teacher;     /* the full network's capture (distillation only) */
    char val_annotations[1100];
    FILE *metrics;
    char path_last[1100];
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
    const mn_config *c = tr->c;
    bool teacher = k == 0, kl = c->mutual.distill == MN_DISTILL_KL;
    const mn_det_batch *b = full;
    out->short_side = side_of(c, sn->scale);
    if (out->short_side != c->det.short_side) {
        /* the same augmented batch at the sub-network's short side */
        int rc = mn_det_batch_resize(&tr->small, full, &tr->aug, out->short_side);
        if (rc) return rc;
        b = &tr->small;
    }
    mn_tape *t = &tr->tape;
    mn_tape_reset(t);
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
    mn_det_targets tg[64];
    for (int i = 0; i < b->n; i++) tg[i] = (mn_det_targets){b->boxes[i], b->n_boxes[i]};
    /* the samplers' randomness depends only on (seed, iteration, network): resuming redraws it */
    mn_rng base, rng;
    mn_rng_seed(&base, c->train.seed ^ 0x44455431u);
    rng = mn_rng_split(&base, (uint64_t)it * MN_MAX_SUBNETS + (uint64_t)k);
    /* only the full network keeps BN running statistics; calibration redoes them per config */
    mn_run r = {.tape = t, .width = sn->width, .training = true, .bn_momentum = teacher ? 0.1f : 0.0f};
    mn_det_losses L;
    int rc = mn_det_forward_train(tr->model.net, &r, x, b->info, tg, &rng, teacher && kl ? tr->teacher : NULL,
                                  !teacher && kl ? tr->teacher : NULL, c->mutual.distill_weight, &L);
    if (rc) return rc;
    mn_var *l = L.total;
    if (!teacher && c->mutual.gt_weight != 1.0f) {
        mn_var *gt = mn_add(t, mn_add(t, L.rpn_cls, L.rpn_box), mn_add(t, L.cls, L.box));
        l = mn_scale(t, gt, c->mutual.gt_weight);
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

static int checkpoint(trainer *tr, int64_t iter)
{
    int rc = mn_det_model_save(&tr->model, tr->path_last, &tr->opt, iter);
    if (rc) mn_warn("checkpoint not written: %s", mn_last_error());
    return rc;
}

static int open_data(trainer *tr)
{
    const mn_config *c = tr->c;
    if (strcmp(c->data.kind, "coco"))
        return mn_error(MN_EINVAL, "detection needs data.kind \"coco\" (COCO instances JSON), not \"%s\"", c->data.kind);
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
    mn_det_annotations_path(tr->val_annotations, sizeof tr->val_annotations, c, c->data.val_split);
    mn_det_aug_default(&tr->aug, c->det.short_side, c->det.max_side, c->data.hflip);
    mn_loader_options lo = {.batch_size = c->train.batch_size, .shuffle = true, .drop_last = true,
                            .workers = c->data.workers, .prefetch = 2, .seed = c->train.seed};
    return mn_loader_open_det(&tr->loader, tr->train, &tr->aug, &lo);
}

static void close_trainer(trainer *tr)
{
    mn_loader_close(tr->loader);
    mn_dataset_close(tr->train);
    mn_dataset_close(tr->val);
    mn_sgd_free(&tr->opt);
    mn_tape_free(&tr->tape);
    mn_det_model_free(&tr->model);
    mn_det_batch_free(&tr->small);
    mn_det_teacher_free(tr->teacher);
    if (tr->metrics) fclose(tr->metrics);
}

static int evaluate(trainer *tr, int64_t iter)
{
    const mn_config *c = tr->c;
    float w = c->mutual.mode == MN_MODE_INDEPENDENT ? c->mutual.width : c->mutual.width_max;
    char results[1100];
    snprintf(results, sizeof results, "%s/val_results.json", c->train.out_dir);
    mn_det_scores s;
    int rc = mn_det_evaluate(&tr->model, tr->val, tr->val_annotations, w, c->det.short_side, 0, true, results, &s);
    if (rc) return rc;
    mn_info("iteration %lld: validation AP %.2f%%, AP50 %.2f%% (width %.2f, short side %d, %d images, %lld detections)",
            (long long)iter, 100 * s.stats[MN_COCO_AP], 100 * s.stats[MN_COCO_AP50], (double)w, c->det.short_side,
            s.n_images, (long long)s.n_detections);
    fprintf(tr->metrics, "{\"iter\": %lld", (long long)iter);
    for (int i = 0; i < MN_COCO_NSTATS; i++) fprintf(tr->metrics, ", \"val_%s\": %.6f", mn_coco_stat_name(i), s.stats[i]);
    fprintf(tr->metrics, "}\n");
    fflush(tr->metrics);
    return 0;
}

/* Labels' names and category ids from the training split, and the typical image size from the
 * validation split's annotations. */
static int create_model(trainer *tr)
{
    const mn_config *c = tr->c;
    int K = mn_dataset_num_classes(tr->train);
    if (K < 2 || K > 256)
        return mn_error(MN_EINVAL, "%s: %d categories; detection needs 1 to 255", c->data.root, K - 1);
    if (mn_dataset_num_classes(tr->val) != K)
        return mn_error(MN_EINVAL, "%s: the %s split has %d categories, the %s split %d", c->data.root,
                        c->data.train_split, K - 1, c->data.val_split, mn_dataset_num_classes(tr->val) - 1);
    const char *names[256];
    int ids[256];
    for (int k = 0; k < K; k++) {
        names[k] = mn_dataset_class_name(tr->train, k);
        ids[k] = k ? mn_dataset_category_id(tr->train, k) : 0;
        if (k && mn_dataset_category_id(tr->val, k) != ids[k])
            return mn_error(MN_EINVAL, "%s: label %d is category %d in the %s split but %d in the %s split", c->data.root,
                            k, ids[k], c->data.train_split, mn_dataset_category_id(tr->val, k), c->data.val_split);
    }
    int th, tw;
    int rc = mn_coco_median_size(tr->val_annotations, &th, &tw);
    if (!rc) rc = mn_det_model_create(&tr->model, c, K, names, ids, th, tw, c->train.seed);
    return rc;
}

int mn_train_detection(const mn_config *c, const char *resume, int64_t stop_at)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.c = c;
    mn_tape_init(&tr.tape, 0);
    int rc = c->task == MN_TASK_DETECTION ? 0 : mn_error(MN_EINVAL, "mn_train_detection: the configuration's task is not detection");
    if (!rc) rc = mn_mkdirs(c->train.out_dir);
    if (!rc) rc = open_data(&tr);
    if (!rc) rc = create_model(&tr);
    mn_sgd_config oc = {c->optim.lr, c->optim.momentum, 0.0f, c->optim.nesterov, c->optim.weight_decay};
    if (!rc) rc = mn_sgd_init(&tr.opt, &tr.model.ps, &oc);
    snprintf(tr.path_last, sizeof tr.path_last, "%s/last.safetensors", c->train.out_dir);
    int64_t start = 0;
    if (!rc && resume) {
        rc = mn_det_model_resume(&tr.model, resume, &tr.opt, &start);
        if (!rc) mn_info("resuming %s at iteration %lld", resume, (long long)start);
    }
    if (!rc && c->mutual.distill == MN_DISTILL_KL && !(tr.teacher = mn_det_teacher_new())) rc = mn_last_error_code();
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
        const mn_det_batch *b = NULL;
        rc = mn_loader_next_det(tr.loader, &b);
        if (!rc && !b) { /* epoch boundary */
            rc = mn_loader_start(tr.loader, (int)(it / per_epoch), 0);
            if (!rc) rc = mn_loader_next_det(tr.loader, &b);
            if (!rc && !b) rc = mn_error(MN_EINVAL, "the data loader produced an empty epoch");
        }
        if (rc) break;
        mn_subnet sn[MN_MAX_SUBNETS];
        int ns = mn_sandwich(c, c->train.seed, it, sn);
        pass_losses L[MN_MAX_SUBNETS];
        mn_param_zero_grad(&tr.model.ps);
        for (int k = 0; k < ns && !rc; k++) rc = run_subnet(&tr, b, &sn[k], it, k, &L[k]);
        float lr = mn_lr_at(c, it);
        if (!rc) rc = mn_sgd_step(&tr.opt, lr);
        if (rc) {
            mn_log(MN_LOG_ERROR, "stopped at iteration %lld: %s; the last good checkpoint is %s", (long long)it,
                   mn_last_error(), tr.path_last);
            break;
        }
        if ((it + 1) % c->train.log_every == 0 || it + 1 == c->train.iterations) {
            double now = mn_now();
            fprintf(tr.metrics,
                    "{\"iter\": %lld, \"lr\": %.6g, \"loss\": %.7f, \"rpn_cls\": %.7f, \"rpn_box\": %.7f, \"cls\": %.7f, "
                    "\"box\": %.7f, \"subnets\": [",
                    (long long)(it + 1), (double)lr, L[0].total, L[0].rpn_cls, L[0].rpn_box, L[0].cls, L[0].box);
            for (int k = 0; k < ns; k++) {
                fprintf(tr.metrics, "%s{\"width\": %.4f, \"scale\": %.2f, \"short_side\": %d, \"loss\": %.7f", k ? ", " : "",
                        (double)sn[k].width, (double)sn[k].scale, L[k].short_side, L[k].total);
                if (!isnan(L[k].distill)) fprintf(tr.metrics, ", \"distill\": %.7f", L[k].distill);
                fputc('}', tr.metrics);
            }
            fprintf(tr.metrics, "], \"seconds\": %.3f}\n", now - t_last);
            fflush(tr.metrics);
            t_last = now;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f lr %.2e", L[0].total, (double)lr);
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
