/* Region proposal network (torchvision.models.detection.rpn): the shared head, anchors over
 * the padded batch, proposal filtering, anchor matching and the RPN losses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- head ---- */

/* torchvision's RPNHead: N(0, 0.01) weights, zero bias. */
static void normal_001(mn_slim_conv *c, mn_rng *rng)
{
    mn_tensor *w = &c->weight->var.val;
    int64_t n = mn_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) w->data[i] = 0.01f * mn_rng_normal(rng);
}

int det_rpn_head_init(det_rpn_head *h, mn_param_set *ps, mn_rng *rng, int channels, int a)
{
    h->a = a;
    int rc = mn_slim_conv_init(&h->conv, ps, rng, "rpn.conv", channels, channels, 3, 1, 1, false, true);
    if (!rc) rc = mn_slim_conv_init(&h->cls, ps, rng, "rpn.cls_logits", channels, a, 1, 1, 1, false, true);
    if (!rc) rc = mn_slim_conv_init(&h->bbox, ps, rng, "rpn.bbox_pred", channels, 4 * a, 1, 1, 1, false, true);
    if (rc) return rc;
    normal_001(&h->conv, rng);
    normal_001(&h->cls, rng);
    normal_001(&h->bbox, rng);
    return 0;
}

int det_rpn_head_forward(const det_rpn_head *h, mn_run *r, mn_var *const *p, int c, mn_var **obj, mn_var **delta)
{
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        mn_var *x = mn_relu(r->tape, mn_slim_conv_forward(&h->conv, r, p[l], c));
        obj[l] = mn_slim_conv_forward(&h->cls, r, x, h->a);
        delta[l] = mn_slim_conv_forward(&h->bbox, r, x, 4 * h->a);
        if (!obj[l] || !delta[l]) return mn_last_error_code();
    }
    return 0;
}

/* ---- anchors ---- */

int det_anchor_gen(const mn_det_config *c, mn_anchor_gen *g)
{
    const float *sizes[MN_DET_LEVELS], *ratios[MN_DET_LEVELS];
    int a0 = c->n_sizes[0] * c->n_ratios[0];
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        if (c->n_sizes[l] < 1 || c->n_ratios[l] < 1 || c->n_sizes[l] > MN_DET_MAX_CELL ||
            c->n_ratios[l] > MN_DET_MAX_CELL || c->n_sizes[l] * c->n_ratios[l] > MN_ANCHOR_MAX_CELL)
            return mn_error(MN_EINVAL, "detector: level P%d has %d anchor sizes and %d ratios (1..%d each, %d in all)",
                            l + 2, c->n_sizes[l], c->n_ratios[l], MN_DET_MAX_CELL, MN_ANCHOR_MAX_CELL);
        if (c->n_sizes[l] * c->n_ratios[l] != a0)
            return mn_error(MN_EINVAL,
                            "detector: level P%d has %d anchors per position, P2 has %d (one RPN head serves all "
                            "levels, so the counts must agree)",
                            l + 2, c->n_sizes[l] * c->n_ratios[l], a0);
        sizes[l] = c->anchor_sizes[l];
        ratios[l] = c->aspect_ratios[l];
    }
    return mn_anchor_gen_init(g, MN_DET_LEVELS, sizes, c->n_sizes, ratios, c->n_ratios);
}

int det_layout_make(det_layout *lo, const mn_anchor_gen *g, mn_var *const *p, int img_h, int img_w)
{
    memset(lo, 0, sizeof *lo);
    lo->n = (int)p[0]->val.shape[0];
    lo->a = g->n_cell[0];
    lo->img_h = img_h;
    lo->img_w = img_w;
    int grid[2 * MN_DET_LEVELS];
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        grid[2 * l] = lo->grid[l][0] = (int)p[l]->val.shape[2];
        grid[2 * l + 1] = lo->grid[l][1] = (int)p[l]->val.shape[3];
        lo->off[l + 1] = lo->off[l] + (int64_t)grid[2 * l] * grid[2 * l + 1] * g->n_cell[l];
    }
    int64_t total = lo->off[MN_DET_LEVELS];
    lo->anchors = malloc(sizeof(float) * 4 * (size_t)total);
    if (!lo->anchors) return mn_error(MN_ENOMEM, "detector: cannot allocate %lld anchors", (long long)total);
    int rc = mn_anchor_gen_run(g, lo->anchors, img_h, img_w, grid);
    if (rc) det_layout_free(lo);
    return rc;
}

void det_layout_free(det_layout *lo)
{
    free(lo->anchors);
    lo->anchors = NULL;
}

/* ---- proposals ---- */

void det_props_free(det_props *p, int n)
{
    for (int i = 0; p && i < n; i++) {
        free(p[i].boxes);
        free(p[i].scores);
        p[i].boxes = p[i].scores = NULL;
        p[i].n = 0;
    }
}

/* Scratch for one image's proposal filtering, sized for the worst case once. */
typedef struct prop_work {
    float *level_scores;          /* (max level anchors) */
    int *top;                     /* (max level anchors) */
    float *logit, *prob, *delta, *ref, *box; /* candidates: (C), (C), (C, 4), (C, 4), (C, 4) */
    int *lvl, *keep;              /* (C) */
} prop_work;

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Filters one image's candidates (top-k per level already gathered: nc of them). */
static int filter_one(const mn_det_config *c, bool training, prop_work *w /* nc candidates */, int nc,
                      const mn_det_image *info, det_props *out)
{
    mn_box_coder bc = mn_box_coder_make(1.0f, 1.0f, 1.0f, 1.0f);
    mn_box_decode(&bc, w->box, w->delta, w->ref, nc, 1);
    for (int i = 0; i < nc; i++) w->prob[i] = sigmoidf(w->logit[i]);
    mn_boxes_clip(w->box, nc, info->h, info->w);
    int nk = mn_boxes_remove_small(w->keep, w->box, nc, c->rpn_min_size);
    if (nk < 0) return nk;
    /* compact the survivors of the size and score filters in place (keep is ascending) */
    int m = 0;
    for (int j = 0; j < nk; j++) {
        int i = w->keep[j];
        if (!(w->prob[i] >= c->rpn_score_thresh)) continue;
        memmove(w->box + 4 * m, w->box + 4 * i, 4 * sizeof(float));
        w->prob[m] = w->prob[i];
        w->lvl[m] = w->lvl[i];
        m++;
    }
    int post = training ? c->rpn_post_nms_train : c->rpn_post_nms_test;
    nk = mn_batched_nms(w->keep, w->box, w->prob, w->lvl, m, c->rpn_nms, post);
    if (nk < 0) return nk;
    out->n = nk;
    out->boxes = malloc(sizeof(float) * 4 * (size_t)(nk ? nk : 1));
    out->scores = malloc(sizeof(float) * (size_t)(nk ? nk : 1));
    if (!out->boxes || !out->scores) return mn_error(MN_ENOMEM, "detector: cannot allocate %d proposals", nk);
    for (int j = 0; j < nk; j++) {
        memcpy(out->boxes + 4 * j, w->box + 4 * w->keep[j], 4 * sizeof(float));
        out->scores[j] = w->prob[w->keep[j]];
    }
    return 0;
}

int det_rpn_proposals(const mn_det_config *c, bool training, const det_layout *lo, mn_var *const *obj,
                      mn_var *const *delta, const mn_det_image *info, det_props *out /* (N) */)
{
    int pre = training ? c->rpn_pre_nms_train : c->rpn_pre_nms_test;
    int A = lo->a;
    int64_t max_level = 0, cand = 0;
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        int64_t k = lo->off[l + 1] - lo->off[l];
        if (k > max_level) max_level = k;
        cand += k < pre ? k : pre;
    }
    for (int i = 0; i < lo->n; i++) out[i] = (det_props){NULL, NULL, 0};
    size_t C = (size_t)(cand ? cand : 1), M = (size_t)(max_level ? max_level : 1);
    prop_work w;
    void *block = malloc(M * (sizeof(float) + sizeof(int)) + C * (14 * sizeof(float) + 2 * sizeof(int)));
    if (!block) return mn_error(MN_ENOMEM, "detector: cannot allocate proposal scratch for %zu candidates", C);
    char *q = block;
    w.level_scores = (float *)q, q += M * sizeof(float);
    w.logit = (float *)q, q += C * sizeof(float);
    w.prob = (float *)q, q += C * sizeof(float);
    w.delta = (float *)q, q += 4 * C * sizeof(float);
    w.ref = (float *)q, q += 4 * C * sizeof(float);
    w.box = (float *)q, q += 4 * C * sizeof(float);
    w.top = (int *)q, q += M * sizeof(int);
    w.lvl = (int *)q, q += C * sizeof(int);
    w.keep = (int *)q;
    int rc = 0;
    for (int n = 0; n < lo->n && !rc; n++) {
        int nc = 0;
        for (int l = 0; l < MN_DET_LEVELS && !rc; l++) {
            int gh = lo->grid[l][0], gw = lo->grid[l][1];
            int64_t hw = (int64_t)gh * gw, count = hw * A;
            const float *om = obj[l]->val.data + (int64_t)n * A * hw;
            const float *dm = delta[l]->val.data + (int64_t)n * 4 * A * hw;
            /* objectness in anchor order (y, x, a) from the (A, H, W) map */
            for (int64_t cell = 0; cell < hw; cell++)
                for (int a = 0; a < A; a++) w.level_scores[cell * A + a] = om[(int64_t)a * hw + cell];
            int k = mn_topk(w.top, w.level_scores, (int)count, pre);
            if (k < 0) {
                rc = k;
                break;
            }
            for (int j = 0; j < k; j++, nc++) {
                int p = w.top[j], cell = p / A, a = p % A;
                w.logit[nc] = w.level_scores[p];
                w.lvl[nc] = l;
                for (int e = 0; e < 4; e++) {
                    w.delta[4 * nc + e] = dm[(int64_t)(4 * a + e) * hw + cell];
                    w.ref[4 * nc + e] = lo->anchors[4 * (lo->off[l] + p) + e];
                }
            }
        }
        if (!rc) rc = filter_one(c, training, &w, nc, &info[n], &out[n]);
    }
    free(block);
    if (rc) det_props_free(out, lo->n);
    return rc;
}

/* ---- anchor targets and losses ---- */

int det_rpn_match(const mn_det_config *c, const det_layout *lo, const float *gt /* (M, 4) */, int m,
                  int *matches /* (total) */)
{
    int64_t total = lo->off[MN_DET_LEVELS];
    mn_matcher mt = {c->rpn_fg_iou, c->rpn_bg_iou, true};
    if (m == 0) return mn_match(&mt, matches, NULL, 0, (int)total);
    float *iou = malloc(sizeof(float) * (size_t)m * (size_t)total);
    if (!iou)
        return mn_error(MN_ENOMEM, "detector: cannot allocate a %d x %lld anchor IoU matrix", m, (long long)total);
    mn_box_iou(iou, gt, m, lo->anchors, (int)total);
    int rc = mn_match(&mt, matches, iou, m, (int)total);
    free(iou);
    return rc;
}

/* A constant 0 loss (nothing was sampled). */
static mn_var *zero_loss(mn_tape *t)
{
    const int64_t one = 1;
    mn_var *z = mn_var_new(t, 1, &one);
    if (z) z->val.data[0] = 0.0f;
    return z;
}

int det_rpn_loss(mn_tape *t, const mn_det_config *c, const det_layout *lo, mn_var *const *obj, mn_var *const *delta,
                 const int64_t *pos /* (np) */, int np, const int64_t *neg /* (nn) */, int nn,
                 const float *pos_targets /* (np, 4) */, mn_var **loss_cls, mn_var **loss_box)
{
    int ns = np + nn;
    if (ns == 0) {
        *loss_cls = zero_loss(t);
        *loss_box = zero_loss(t);
        return *loss_cls && *loss_box ? 0 : mn_last_error_code();
    }
    int64_t *ids = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)ns);
    int64_t ls[2] = {ns, 1};
    mn_var *labels = mn_var_new(t, 2, ls);
    if (!ids || !labels) return mn_last_error_code();
    memcpy(ids, pos, sizeof(int64_t) * (size_t)np);
    memcpy(ids + np, neg, sizeof(int64_t) * (size_t)nn);
    for (int i = 0; i < ns; i++) labels->val.data[i] = i < np ? 1.0f : 0.0f;
    mn_var *logits = det_anchor_rows(t, obj, MN_DET_LEVELS, lo->a, 1, lo->off, ids, ns);
    *loss_cls = mn_bce_with_logits(t, logits, labels, MN_REDUCE_MEAN);
    if (np == 0) {
        *loss_box = zero_loss(t);
    } else {
        int64_t ts[2] = {np, 4};
        mn_var *target = mn_var_new(t, 2, ts);
        if (!target) return mn_last_error_code();
        memcpy(target->val.data, pos_targets, sizeof(float) * 4 * (size_t)np);
        mn_var *d = det_anchor_rows(t, delta, MN_DET_LEVELS, lo->a, 4, lo->off, pos, np);
        *loss_box = mn_scale(t, mn_smooth_l1(t, d, target, c->rpn_box_beta, MN_REDUCE_SUM), 1.0f / (float)ns);
    }
    return *loss_cls && *loss_box ? 0 : mn_last_error_code();
}
