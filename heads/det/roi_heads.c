/* RoI heads (torchvision.models.detection.roi_heads with MultiScaleRoIAlign, TwoMLPHead and
 * FastRCNNPredictor): multi-level pooling, the box head, training targets, fastrcnn_loss and
 * postprocess_detections. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- box head ---- */

/* nn.Linear's default initialisation: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static void linear_default(mn_slim_linear *l, mn_rng *rng)
{
    mn_tensor *w = &l->weight->var.val, *b = &l->bias->var.val;
    float bound = 1.0f / sqrtf((float)w->shape[1]);
    int64_t n = mn_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) w->data[i] = mn_rng_range(rng, -bound, bound);
    for (int64_t i = 0; i < b->shape[0]; i++) b->data[i] = mn_rng_range(rng, -bound, bound);
}

int det_box_head_init(det_box_head *h, mn_param_set *ps, mn_rng *rng, int in_features, int hidden, int classes)
{
    int rc = mn_slim_linear_init(&h->fc6, ps, rng, "roi.fc6", in_features, hidden);
    if (!rc) rc = mn_slim_linear_init(&h->fc7, ps, rng, "roi.fc7", hidden, hidden);
    if (!rc) rc = mn_slim_linear_init(&h->cls, ps, rng, "roi.cls_score", hidden, classes);
    if (!rc) rc = mn_slim_linear_init(&h->bbox, ps, rng, "roi.bbox_pred", hidden, 4 * classes);
    if (rc) return rc;
    linear_default(&h->fc6, rng);
    linear_default(&h->fc7, rng);
    linear_default(&h->cls, rng);
    linear_default(&h->bbox, rng);
    return 0;
}

int det_box_head_forward(const det_box_head *h, mn_run *r, mn_var *pooled, int hidden, int classes, mn_var **cls,
                         mn_var **box)
{
    if (!pooled) return mn_last_error_code();
    mn_tape *t = r->tape;
    const int64_t *s = pooled->val.shape;
    int64_t flat[2] = {s[0], s[1] * s[2] * s[3]};
    /* flattening is channel-major, so a sliced C keeps the leading columns of fc6 */
    mn_var *x = mn_reshape(t, mn_contiguous(t, pooled), 2, flat);
    x = mn_relu(t, mn_slim_linear_forward(&h->fc6, r, x, hidden));
    x = mn_relu(t, mn_slim_linear_forward(&h->fc7, r, x, hidden));
    *cls = mn_slim_linear_forward(&h->cls, r, x, classes);
    *box = mn_slim_linear_forward(&h->bbox, r, x, 4 * classes);
    return *cls && *box ? 0 : mn_last_error_code();
}

/* ---- multi-level RoIAlign ---- */

void det_roi_levels(int *lvl /* (R) */, const float *rois /* (R, 5) */, int r)
{
    /* LevelMapper in float32: floor(4 + log2(sqrt(area) / 224) + 1e-6), clamped to [2, 5] */
    for (int i = 0; i < r; i++) {
        const float *b = rois + 5 * (size_t)i + 1;
        float s = sqrtf((b[2] - b[0]) * (b[3] - b[1]));
        float k = floorf((4.0f + log2f(s / 224.0f)) + 1e-6f);
        if (!(k >= 2.0f)) k = 2.0f; /* also catches a NaN from an inverted box */
        if (k > 5.0f) k = 5.0f;
        lvl[i] = (int)k - 2;
    }
}

mn_var *det_roi_pool(mn_tape *t, mn_var *const *p, const float *rois /* (R, 5) */, int r, int size, int sampling)
{
    if (r < 1) {
        mn_error(MN_EINVAL, "det_roi_pool: no RoIs");
        return NULL;
    }
    int *lvl = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)r);
    int64_t *idx = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)r);
    float *sorted = mn_arena_alloc(&t->arena, sizeof(float) * 5 * (size_t)r);
    if (!lvl || !idx || !sorted) return NULL;
    det_roi_levels(lvl, rois, r);
    /* group the rois by level (stable), pool each group on its map, then gather back */
    mn_var *parts[DET_ROI_LEVELS];
    int n_parts = 0, start = 0;
    for (int l = 0; l < DET_ROI_LEVELS; l++) {
        int cnt = 0;
        for (int i = 0; i < r; i++)
            if (lvl[i] == l) {
                memcpy(sorted + 5 * (size_t)(start + cnt), rois + 5 * (size_t)i, 5 * sizeof(float));
                idx[i] = start + cnt++;
            }
        if (!cnt) continue;
        mn_roi_align_params rp = {size, size, 1.0f / (float)(4 << l), sampling, false};
        parts[n_parts] = mn_roi_align(t, p[l], sorted + 5 * (size_t)start, cnt, &rp);
        if (!parts[n_parts]) return NULL;
        n_parts++;
        start += cnt;
    }
    int64_t c = p[0]->val.shape[1];
    mn_var *rows = det_take_rows(t, parts, n_parts, (int)(c * size * size), idx, r);
    int64_t shape[4] = {r, c, size, size};
    return mn_reshape(t, rows, 4, shape);
}

/* ---- training targets and loss ---- */

int det_roi_match(const mn_det_config *c, const float *cand /* (P, 4) */, int p, const float *gt /* (M, 4) */, int m,
                  int *matches /* (P) */)
{
    mn_matcher mt = {c->roi_fg_iou, c->roi_bg_iou, false};
    if (m == 0 || p == 0) return mn_match(&mt, matches, NULL, 0, p);
    float *iou = malloc(sizeof(float) * (size_t)m * (size_t)p);
    if (!iou) return mn_error(MN_ENOMEM, "detector: cannot allocate a %d x %d RoI IoU matrix", m, p);
    mn_box_iou(iou, gt, m, cand, p);
    int rc = mn_match(&mt, matches, iou, m, p);
    free(iou);
    return rc;
}

void det_roi_build(float *rois /* (S, 5) */, int32_t *labels /* (S) */, float *targets /* (S, 4) */, int image,
                   const float *cand /* (P, 4) */, const int *matches /* (P) */, const float *gt /* (M, 4) */,
                   const int *gt_labels /* (M) */, const int *idx /* (S) */, int s)
{
    mn_box_coder bc = mn_box_coder_make(10.0f, 10.0f, 5.0f, 5.0f);
    static const float none[4] = {0, 0, 0, 0}; /* torchvision's stand-in gt for an empty image */
    for (int j = 0; j < s; j++) {
        int i = idx[j], mi = matches[i];
        rois[5 * j] = (float)image;
        memcpy(rois + 5 * j + 1, cand + 4 * (size_t)i, 4 * sizeof(float));
        labels[j] = mi >= 0 ? gt_labels[mi] : mi == MN_MATCH_BELOW ? 0 : -1;
        /* background rows are encoded against gt 0 too, as torchvision does (never used) */
        const float *g = gt ? gt + 4 * (size_t)(mi > 0 ? mi : 0) : none;
        mn_box_encode(&bc, targets + 4 * j, g, cand + 4 * (size_t)i, 1);
    }
}

int det_roi_loss(mn_tape *t, mn_var *cls_logits /* (R, K) */, mn_var *box_reg /* (R, 4K) */, const int32_t *labels,
                 const float *targets /* (R, 4) */, int r, float beta, mn_var **loss_cls, mn_var **loss_box)
{
    *loss_cls = *loss_box = NULL;
    if (!cls_logits || !box_reg) return mn_last_error_code();
    int k = (int)cls_logits->val.shape[1];
    *loss_cls = mn_cross_entropy(t, cls_logits, labels, -100);
    int np = 0;
    for (int i = 0; i < r; i++) np += labels[i] > 0;
    if (np == 0) {
        const int64_t one = 1;
        *loss_box = mn_var_new(t, 1, &one);
        if (*loss_box) (*loss_box)->val.data[0] = 0.0f;
    } else {
        int64_t *idx = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)np);
        int64_t ts[2] = {np, 4};
        mn_var *target = mn_var_new(t, 2, ts);
        if (!idx || !target) return mn_last_error_code();
        for (int i = 0, j = 0; i < r; i++)
            if (labels[i] > 0) {
                idx[j] = (int64_t)i * k + labels[i]; /* rows of 4 in (R, K, 4) */
                memcpy(target->val.data + 4 * j++, targets + 4 * (size_t)i, 4 * sizeof(float));
            }
        mn_var *d = det_take_rows(t, &box_reg, 1, 4, idx, np);
        *loss_box = mn_scale(t, mn_smooth_l1(t, d, target, beta, MN_REDUCE_SUM), 1.0f / (float)r);
    }
    return *loss_cls && *loss_box ? 0 : mn_last_error_code();
}

/* ---- inference ---- */

int det_postprocess(const mn_det_config *c, const float *logits /* (R, K) */, const float *box_reg /* (R, 4K) */,
                    const float *props /* (R, 4) */, int r, int k, int h, int w, mn_detection **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (r == 0 || k < 2) return 0;
    size_t rk = (size_t)r * (size_t)k;
    float *boxes = malloc(sizeof(float) * 4 * rk);
    float *prob = malloc(sizeof(float) * rk);
    float *cb = malloc(sizeof(float) * 4 * rk);
    float *cs = malloc(sizeof(float) * rk);
    int *cl = malloc(sizeof(int) * rk), *keep = malloc(sizeof(int) * rk), *small = malloc(sizeof(int) * rk);
    int rc = 0;
    if (!boxes || !prob || !cb || !cs || !cl || !keep || !small) {
        rc = mn_error(MN_ENOMEM, "detector: cannot allocate post-processing scratch for %d RoIs", r);
        goto done;
    }
    mn_box_coder bc = mn_box_coder_make(10.0f, 10.0f, 5.0f, 5.0f);
    mn_box_decode(&bc, boxes, box_reg, props, r, k);
    mn_boxes_clip(boxes, r * k, h, w);
    for (int i = 0; i < r; i++) {
        const float *x = logits + (size_t)i * k;
        float mx = x[0], sum = 0.0f;
        for (int j = 1; j < k; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < k; j++) sum += prob[(size_t)i * k + j] = expf(x[j] - mx);
        for (int j = 0; j < k; j++) prob[(size_t)i * k + j] /= sum;
    }
    /* every (RoI, foreground class) pair is a candidate, in row-major order */
    int m = 0;
    for (int i = 0; i < r; i++)
        for (int j = 1; j < k; j++) {
            size_t o = (size_t)i * k + j;
            if (!(prob[o] > c->score_thresh)) continue;
            memcpy(cb + 4 * (size_t)m, boxes + 4 * o, 4 * sizeof(float));
            cs[m] = prob[o];
            cl[m++] = j;
        }
    int ns = mn_boxes_remove_small(small, cb, m, 1e-2f);
    if (ns < 0) {
        rc = ns;
        goto done;
    }
    for (int j = 0; j < ns; j++) {
        int i = small[j];
        memmove(cb + 4 * (size_t)j, cb + 4 * (size_t)i, 4 * sizeof(float));
        cs[j] = cs[i];
        cl[j] = cl[i];
    }
    int nk = mn_batched_nms(keep, cb, cs, cl, ns, c->nms, c->detections_per_img);
    if (nk < 0) {
        rc = nk;
        goto done;
    }
    if (nk > 0) {
        *out = malloc(sizeof **out * (size_t)nk);
        if (!*out) {
            rc = mn_error(MN_ENOMEM, "detector: cannot allocate %d detections", nk);
            goto done;
        }
        for (int j = 0; j < nk; j++) {
            const float *b = cb + 4 * (size_t)keep[j];
            (*out)[j] = (mn_detection){b[0], b[1], b[2], b[3], cl[keep[j]], cs[keep[j]]};
        }
        *n = nk;
    }
done:
    free(boxes);
    free(prob);
    free(cb);
    free(cs);
    free(cl);
    free(keep);
    free(small);
    return rc;
}

void det_unresize(mn_detection *d, int n, const mn_det_image *info)
{
    int oh = info->orig_h > 0 ? info->orig_h : (int)lroundf((float)info->h / info->scale);
    int ow = info->orig_w > 0 ? info->orig_w : (int)lroundf((float)info->w / info->scale);
    /* torchvision resize_boxes: float32 ratios original / resized, per axis */
    float rw = (float)ow / (float)info->w, rh = (float)oh / (float)info->h;
    for (int i = 0; i < n; i++) {
        mn_detection *e = &d[i];
        e->x1 *= rw;
        e->x2 *= rw;
        e->y1 *= rh;
        e->y2 *= rh;
        if (info->flipped) { /* mirror in the original frame */
            float x1 = (float)ow - e->x2, x2 = (float)ow - e->x1;
            e->x1 = x1;
            e->x2 = x2;
        }
    }
}
