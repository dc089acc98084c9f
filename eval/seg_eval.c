#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mn/miou.h"
#include "mn/ops.h"
#include "mn/seg_eval.h"
#include "mn/progress.h"

int mn_seg_predict(mn_seg_model *m, mn_tape *t, const mn_image *img, float width, int h, int w, uint8_t *labels)
{
    mn_tape_reset(t);
    bool old = mn_tape_set_grad(t, false);
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, h, w, false);
    int64_t shape[4] = {1, 3, h, w};
    mn_var *x = mn_var_new(t, 4, shape);
    int rc = x ? 0 : mn_last_error_code();
    mn_sample s = {.image = *img};
    if (!rc) rc = mn_seg_transform(&aug, &s, NULL, x->val.data, NULL);
    mn_var *y = NULL;
    if (!rc) {
        mn_run r = {.tape = t, .width = width, .training = false};
        y = mn_seg_forward_raw(m->net, &r, x);
        /* score at the image's own resolution: logits resized back, then argmax */
        y = mn_resize_bilinear(t, y, img->h, img->w, false);
        if (!y) rc = mn_last_error_code();
    }
    if (!rc) {
        int K = (int)y->val.shape[1];
        int64_t hw = (int64_t)img->h * img->w;
        const float *p = y->val.data;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < hw; i++) {
            int best = 0;
            float v = p[i];
            for (int k = 1; k < K; k++)
                if (p[k * hw + i] > v) {
                    v = p[k * hw + i];
                    best = k;
                }
            labels[i] = (uint8_t)best;
        }
    }
    mn_tape_set_grad(t, old);
    return rc;
}

int mn_seg_evaluate(mn_seg_model *m, mn_dataset *d, float width, int h, int w, int max_images, const mn_reporter *rep,
                    mn_seg_scores *out)
{
    return mn_seg_evaluate_ranks(m, d, width, h, w, max_images, rep, NULL, out);
}

/* The confusion matrices of every rank added up (counts below 2^53 are exact in doubles). */
static int sum_confusion(mn_comm *comm, mn_confusion *conf)
{
    if (mn_comm_size(comm) < 2) return 0;
    int64_t n = (int64_t)conf->n * (conf->n + 1);
    double *v = malloc(sizeof(double) * (size_t)n);
    if (!v) return mn_error(MN_ENOMEM, "evaluation: out of memory");
    for (int64_t i = 0; i < n; i++) v[i] = (double)conf->count[i];
    int rc = mn_comm_sum_f64(comm, v, n);
    for (int64_t i = 0; !rc && i < n; i++) conf->count[i] = (int64_t)v[i];
    free(v);
    return rc;
}

int mn_seg_evaluate_ranks(mn_seg_model *m, mn_dataset *d, float width, int h, int w, int max_images,
                          const mn_reporter *rep, mn_comm *comm, mn_seg_scores *out)
{
    const int R = mn_comm_size(comm), me = mn_comm_rank(comm);
    int n = mn_dataset_size(d);
    if (max_images > 0 && max_images < n) n = max_images;
    mn_confusion conf;
    int rc = mn_confusion_init(&conf, m->num_classes);
    if (rc) return rc;
    mn_tape t;
    mn_tape_init(&t, 0);
    uint8_t *pred = NULL;
    size_t cap = 0;
    mn_progress pg;
    mn_progress_begin(&pg, rep, "evaluate", n, 0, n / 10 + 1);
    for (int i = me; i < n && !rc; i += R) {
        mn_sample s;
        rc = mn_dataset_get(d, i, &s);
        if (rc) break;
        if (!s.label.data) {
            mn_sample_free(&s);
            rc = mn_error(MN_EINVAL, "%s: sample %s has no label to score against", mn_dataset_kind_name(d), s.name);
            break;
        }
        size_t px = (size_t)s.image.w * (size_t)s.image.h;
        if (px > cap) {
            uint8_t *np = realloc(pred, px);
            if (!np) rc = mn_error(MN_ENOMEM, "evaluation: out of memory");
            else pred = np, cap = px;
        }
        if (!rc) rc = mn_seg_predict(m, &t, &s.image, width, h, w, pred);
        if (!rc) rc = mn_confusion_add_u8(&conf, pred, s.label.data, (int64_t)px, MN_IGNORE_LABEL);
        mn_sample_free(&s);
        mn_progress_update(&pg, i + 1, 1, NULL);
    }
    mn_progress_end(&pg);
    rc = mn_comm_agree(comm, rc);
    if (!rc) rc = sum_confusion(comm, &conf);
    mn_miou_result r;
    if (!rc) rc = mn_miou_compute(&r, &conf);
    if (!rc) {
        memset(out, 0, sizeof *out);
        out->num_classes = m->num_classes;
        out->miou = isnan(r.miou) ? 0 : r.miou;
        out->aacc = isnan(r.aacc) ? 0 : r.aacc;
        out->macc = isnan(r.macc) ? 0 : r.macc;
        for (int k = 0; k < r.n && k < 256; k++) out->iou[k] = r.iou[k];
        mn_miou_result_free(&r);
    }
    free(pred);
    mn_tape_free(&t);
    mn_confusion_free(&conf);
    return rc;
}
