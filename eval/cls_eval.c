/* Scoring and running an image classifier: top-1 / top-5 accuracy over a data set of
 * image-level labels, each image resized and centre-cropped to the input asked for. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mn/cls_eval.h"
#include "mn/ops.h"
#include "mn/progress.h"

/* The configuration's evaluation transform at an h x w input. */
static mn_cls_aug eval_aug(const mn_config *c, int h, int w)
{
    mn_cls_aug aug = mn_config_cls_aug(c, false);
    aug.out_h = h;
    aug.out_w = w;
    return aug;
}

int mn_cls_predict(mn_cls_model *m, mn_tape *t, const mn_image *img, float width, int h, int w,
                   float *probs /* (num_classes) */)
{
    mn_tape_reset(t);
    bool old = mn_tape_set_grad(t, false);
    mn_cls_aug aug = eval_aug(&m->cfg, h, w);
    int64_t shape[4] = {1, 3, h, w};
    mn_var *x = mn_var_new(t, 4, shape);
    int rc = x ? 0 : mn_last_error_code();
    mn_sample s = {.image = *img};
    if (!rc) rc = mn_cls_transform(&aug, &s, NULL, x->val.data);
    mn_var *logits = NULL;
    mn_run r = {.tape = t, .width = width, .training = false};
    if (!rc) rc = mn_backbone_forward(m->net, &r, x, NULL, &logits);
    mn_var *p = rc ? NULL : mn_softmax(t, logits);
    if (!rc && !p) rc = mn_last_error_code();
    if (!rc) memcpy(probs, p->val.data, sizeof(float) * (size_t)m->num_classes);
    mn_tape_set_grad(t, old);
    return rc;
}

/* Whether class a comes before class b: more probable, or as probable with a lower index. */
static bool before(const float *probs /* (n) */, int a, int b)
{
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
}

void mn_cls_topk(const float *probs /* (n) */, int n, int k, int *idx /* (k) */)
{
    /* the r-th pick is the first class in that order after the (r-1)-th: no list of taken classes */
    for (int r = 0; r < k; r++) {
        int best = -1;
        for (int j = 0; j < n; j++)
            if ((r == 0 || before(probs, idx[r - 1], j)) && (best < 0 || before(probs, j, best))) best = j;
        idx[r] = best;
    }
}

/* The true class's 0-based rank in the row: how many classes score above it, ties broken by
 * class index as a stable sort would (it is in the top k when the rank is below k). */
static int rank_of(const float *row /* (K) */, int K, int truth)
{
    int above = 0;
    for (int k = 0; k < K; k++) above += row[k] > row[truth] || (row[k] == row[truth] && k < truth);
    return above;
}

int mn_cls_evaluate(mn_cls_model *m, mn_dataset *d, float width, int h, int w, int max_images, const mn_reporter *rep,
                    mn_cls_scores *out)
{
    return mn_cls_evaluate_ranks(m, d, width, h, w, max_images, rep, NULL, out);
}

int mn_cls_evaluate_ranks(mn_cls_model *m, mn_dataset *d, float width, int h, int w, int max_images,
                          const mn_reporter *rep, mn_comm *comm, mn_cls_scores *out)
{
    const mn_config *c = &m->cfg;
    int n = mn_dataset_size(d);
    if (max_images > 0 && max_images < n) n = max_images;
    mn_cls_aug aug = eval_aug(c, h, w);
    mn_loader_options lo = {.batch_size = c->train.batch_size < n ? c->train.batch_size : n, .workers = c->data.workers,
                            .prefetch = 2, .rank = mn_comm_rank(comm), .ranks = mn_comm_size(comm)};
    mn_loader *ld = NULL;
    int rc = n > 0 ? mn_loader_open_cls(&ld, d, &aug, &lo) : mn_error(MN_EINVAL, "evaluation: the %s data set is empty", mn_dataset_kind_name(d));
    if (!rc) rc = mn_loader_start(ld, 0, 0);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int topk = m->num_classes < 5 ? m->num_classes : 5, done = 0, right1 = 0, right5 = 0;
    mn_progress pg;
    mn_progress_begin(&pg, rep, "evaluate", n, 0, n / 10 + 1);
    /* batches in data set order; this rank's slice of each, up to image n */
    while (!rc) {
        const mn_cls_batch *b = NULL;
        rc = mn_loader_next_cls(ld, &b);
        if (rc || !b) break;
        if (b->n == 0 || b->index[0] >= n) continue; /* a last batch too small to give every rank some */
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w)), *logits = NULL;
        mn_run r = {.tape = &t, .width = width, .training = false};
        rc = mn_backbone_forward(m->net, &r, x, NULL, &logits);
        for (int i = 0; !rc && i < b->n && b->index[i] < n; i++, done++) {
            int truth = b->classes[i];
            if (truth < 0 || truth >= m->num_classes)
                rc = mn_error(MN_EINVAL, "%s: image %d has no class in 0..%d to score against", mn_dataset_kind_name(d),
                              b->index[i], m->num_classes - 1);
            else {
                int rank = rank_of(logits->val.data + (int64_t)i * m->num_classes, m->num_classes, truth);
                right1 += rank < 1;
                right5 += rank < topk;
            }
        }
        if (!rc) mn_progress_update(&pg, done, 1, NULL);
    }
    mn_progress_end(&pg);
    rc = mn_comm_agree(comm, rc);
    double counts[3] = {done, right1, right5};
    if (!rc) rc = mn_comm_sum_f64(comm, counts, 3);
    done = (int)counts[0], right1 = (int)counts[1], right5 = (int)counts[2];
    if (!rc && done < n) rc = mn_error(MN_EINVAL, "evaluation: the loader gave %d of %d images", done, n);
    if (!rc) *out = (mn_cls_scores){.top1 = (double)right1 / n, .top5 = (double)right5 / n, .n = n};
    mn_tape_free(&t);
    mn_loader_close(ld);
    return rc;
}
