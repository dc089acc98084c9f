/* Faster R-CNN + FPN assembly: configuration, parameters, the training pass (targets,
 * sampling, losses, distillation), inference and FLOPs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mn_detector {
    mn_det_config cfg;
    mn_backbone *bb;
    det_fpn fpn;
    det_rpn_head rpn;
    det_box_head box;
    mn_anchor_gen anchors;
};

struct mn_det_teacher {
    int n;                        /* images of the captured batch */
    int pad_h, pad_w;             /* its padded input size */
    int valid[MN_MAX_BATCH][2];             /* (h, w) of each image's valid region */
    int grid[MN_DET_LEVELS][2], a;
    float *rois;                  /* (n_rois, 5) sampled RoIs, teacher pixels */
    int n_rois;
    float *probs;                 /* (n_rois, k) RoI class probabilities */
    int k;
    float *obj;                   /* (n * anchors) objectness probabilities, torchvision anchor order */
    int64_t n_obj;
    size_t cap_rois, cap_probs, cap_obj; /* floats allocated in each (grown, never shrunk) */
};

void mn_det_config_default(mn_det_config *c, int num_classes)
{
    memset(c, 0, sizeof *c);
    c->backbone = (mn_backbone_config){MN_ARCH_MOBILENET_V2, 0, 32};
    c->num_classes = num_classes;
    c->slim_head = true;
    c->fpn_channels = 256;
    c->box_hidden = 1024;
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        c->anchor_sizes[l][0] = (float)(32 << l);
        c->n_sizes[l] = 1;
        c->aspect_ratios[l][0] = 0.5f;
        c->aspect_ratios[l][1] = 1.0f;
        c->aspect_ratios[l][2] = 2.0f;
        c->n_ratios[l] = 3;
    }
    c->rpn_pre_nms_train = c->rpn_post_nms_train = 2000;
    c->rpn_pre_nms_test = c->rpn_post_nms_test = 1000;
    c->rpn_nms = 0.7f;
    c->rpn_min_size = 1e-3f;
    c->rpn_score_thresh = 0.0f;
    c->rpn_fg_iou = 0.7f;
    c->rpn_bg_iou = 0.3f;
    c->rpn_batch = 256;
    c->rpn_pos_fraction = 0.5f;
    c->rpn_box_beta = 1.0f / 9.0f;
    c->roi_size = 7;
    c->roi_sampling_ratio = 2;
    c->roi_fg_iou = 0.5f;
    c->roi_bg_iou = 0.5f;
    c->roi_batch = 512;
    c->roi_pos_fraction = 0.25f;
    c->roi_box_beta = 1.0f / 9.0f;
    c->score_thresh = 0.05f;
    c->nms = 0.5f;
    c->detections_per_img = 100;
    c->flops_rois = 0;
}

static int check_config(const mn_det_config *c)
{
    if (c->backbone.output_stride != 32)
        return mn_error(MN_EINVAL, "detector: backbone output_stride must be 32, not %d", c->backbone.output_stride);
    if (c->num_classes < 2)
        return mn_error(MN_EINVAL, "detector: num_classes must count background plus at least one class, not %d",
                        c->num_classes);
    if (c->fpn_channels < 8 || c->box_hidden < 8)
        return mn_error(MN_EINVAL, "detector: fpn_channels (%d) and box_hidden (%d) must be at least 8",
                        c->fpn_channels, c->box_hidden);
    if (c->rpn_pre_nms_train < 1 || c->rpn_post_nms_train < 1 || c->rpn_pre_nms_test < 1 || c->rpn_post_nms_test < 1)
        return mn_error(MN_EINVAL, "detector: RPN top-n settings must be positive (train %d/%d, test %d/%d)",
                        c->rpn_pre_nms_train, c->rpn_post_nms_train, c->rpn_pre_nms_test, c->rpn_post_nms_test);
    if (c->rpn_batch < 1 || c->roi_batch < 1 || !(c->rpn_pos_fraction >= 0 && c->rpn_pos_fraction <= 1) ||
        !(c->roi_pos_fraction >= 0 && c->roi_pos_fraction <= 1))
        return mn_error(MN_EINVAL, "detector: sampler settings rpn %d / %g, roi %d / %g are invalid", c->rpn_batch,
                        (double)c->rpn_pos_fraction, c->roi_batch, (double)c->roi_pos_fraction);
    if (!(c->rpn_bg_iou <= c->rpn_fg_iou) || !(c->roi_bg_iou <= c->roi_fg_iou))
        return mn_error(MN_EINVAL, "detector: IoU thresholds: background above foreground (rpn %g/%g, roi %g/%g)",
                        (double)c->rpn_bg_iou, (double)c->rpn_fg_iou, (double)c->roi_bg_iou, (double)c->roi_fg_iou);
    if (c->roi_size < 1 || c->roi_sampling_ratio < 0 || c->detections_per_img < 1)
        return mn_error(MN_EINVAL, "detector: roi_size %d, roi_sampling_ratio %d, detections_per_img %d are invalid",
                        c->roi_size, c->roi_sampling_ratio, c->detections_per_img);
    if (!(c->rpn_box_beta >= 0) || !(c->roi_box_beta >= 0))
        return mn_error(MN_EINVAL, "detector: smooth-L1 betas must be >= 0");
    return 0;
}

int mn_det_create(mn_detector **out, const mn_det_config *cfg, mn_param_set *ps, mn_rng *rng)
{
    *out = NULL;
    int rc = check_config(cfg);
    if (rc) return rc;
    mn_detector *d = calloc(1, sizeof *d);
    if (!d) return mn_error(MN_ENOMEM, "detector: out of memory");
    d->cfg = *cfg;
    d->cfg.backbone.num_classes = 0;
    rc = det_anchor_gen(&d->cfg, &d->anchors);
    if (!rc) rc = mn_backbone_create(&d->bb, &d->cfg.backbone, ps, "backbone.", rng);
    if (!rc) {
        int in[DET_BACKBONE_LEVELS];
        for (int l = 0; l < DET_BACKBONE_LEVELS; l++) in[l] = mn_backbone_channels(d->bb, 1.0f, l);
        rc = det_fpn_init(&d->fpn, ps, rng, in, cfg->fpn_channels);
    }
    if (!rc) rc = det_rpn_head_init(&d->rpn, ps, rng, cfg->fpn_channels, d->anchors.n_cell[0]);
    if (!rc)
        rc = det_box_head_init(&d->box, ps, rng, cfg->fpn_channels * cfg->roi_size * cfg->roi_size, cfg->box_hidden,
                               cfg->num_classes);
    if (rc) {
        mn_det_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void mn_det_free(mn_detector *d)
{
    if (!d) return;
    mn_backbone_free(d->bb);
    free(d);
}

const mn_det_config *mn_det_cfg(const mn_detector *d) { return &d->cfg; }

int mn_det_bn_layers(mn_detector *d, mn_slim_bn ***layers) { return mn_backbone_bn_layers(d->bb, layers); }

/* Channels of the neck / RPN conv and the box head's hidden width at width w. */
static int neck_channels(const mn_detector *d, float w)
{
    return d->cfg.slim_head ? mn_slim_channels(d->cfg.fpn_channels, w, 1.0f) : d->cfg.fpn_channels;
}

static int hidden_width(const mn_detector *d, float w)
{
    return d->cfg.slim_head ? mn_slim_channels(d->cfg.box_hidden, w, 1.0f) : d->cfg.box_hidden;
}

/* ---- stages ---- */

int det_features(mn_detector *d, mn_run *r, mn_var *images, mn_var **p)
{
    mn_features f;
    int rc = mn_backbone_forward(d->bb, r, images, &f, NULL);
    if (rc) return rc;
    return det_fpn_forward(&d->fpn, r, &f, neck_channels(d, r->width), p);
}

int det_rpn_forward(mn_detector *d, mn_run *r, mn_var *const *p, mn_var **obj, mn_var **delta)
{
    return det_rpn_head_forward(&d->rpn, r, p, neck_channels(d, r->width), obj, delta);
}

int det_roi_forward(mn_detector *d, mn_run *r, mn_var *const *p, const float *rois /* (R, 5) */, int n_rois,
                    mn_var **cls, mn_var **box)
{
    mn_var *pooled = det_roi_pool(r->tape, p, rois, n_rois, d->cfg.roi_size, d->cfg.roi_sampling_ratio);
    return det_box_head_forward(&d->box, r, pooled, hidden_width(d, r->width), d->cfg.num_classes, cls, box);
}

int mn_det_forward_maps(mn_detector *d, mn_run *r, mn_var *images, mn_var **p, mn_var **obj, mn_var **delta)
{
    if (!images) return mn_last_error_code();
    int rc = det_features(d, r, images, p);
    return rc ? rc : det_rpn_forward(d, r, p, obj, delta);
}

int mn_det_forward_box_head(mn_detector *d, mn_run *r, mn_var *pooled, mn_var **cls, mn_var **box)
{
    if (!pooled) return mn_last_error_code();
    return det_box_head_forward(&d->box, r, pooled, hidden_width(d, r->width), d->cfg.num_classes, cls, box);
}

int mn_det_neck_channels(const mn_detector *d, float width) { return neck_channels(d, width); }

/* ---- input checks and ground truth ---- */

static int check_batch(mn_var *images /* (N, 3, H, W) */, const mn_det_image *info /* (N) */, const char *fn)
{
    if (!images) return mn_error(MN_EINVAL, "%s: no images (%s)", fn, mn_last_error());
    const mn_tensor *v = &images->val;
    char buf[64];
    if (v->ndim != 4 || v->shape[1] != 3 || v->shape[2] % 32 || v->shape[3] % 32 || v->shape[0] < 1 ||
        v->shape[0] > MN_MAX_BATCH)
        return mn_error(MN_ESHAPE, "%s: images must be (N <= 64, 3, H, W) with H and W multiples of 32, not %s", fn,
                        mn_shape_str(v, buf, sizeof buf));
    for (int64_t i = 0; i < v->shape[0]; i++)
        if (info[i].h < 1 || info[i].w < 1 || info[i].h > v->shape[2] || info[i].w > v->shape[3])
            return mn_error(MN_EINVAL, "%s: image %lld's valid region %dx%d does not fit the padded %lldx%lld", fn,
                            (long long)i, info[i].h, info[i].w, (long long)v->shape[2], (long long)v->shape[3]);
    return 0;
}

/* Non-crowd, non-empty ground truth of one image as (M, 4) boxes and labels, in the arena. */
static int gather_gt(const mn_detector *d, mn_tape *t, const mn_det_targets *tg, int image,
                     float **boxes /* -> (M, 4) */, int **labels /* -> (M) */, int *m)
{
    int n = tg->n;
    *boxes = mn_arena_alloc(&t->arena, sizeof(float) * 4 * (size_t)(n ? n : 1));
    *labels = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)(n ? n : 1));
    bool *crowd = mn_arena_alloc(&t->arena, sizeof(bool) * (size_t)(n ? n : 1));
    if (!*boxes || !*labels || !crowd) return mn_last_error_code();
    for (int i = 0; i < n; i++) {
        const mn_box *b = &tg->boxes[i];
        if (!b->crowd && (b->label < 1 || b->label >= d->cfg.num_classes))
            return mn_error(MN_EINVAL, "detector: image %d box %d has label %d outside 1..%d", image, i, b->label,
                            d->cfg.num_classes - 1);
        if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2))
            return mn_error(MN_ENUMERIC, "detector: image %d box %d has a non-finite coordinate", image, i);
        float *o = *boxes + 4 * i;
        o[0] = b->x1;
        o[1] = b->y1;
        o[2] = b->x2;
        o[3] = b->y2;
        (*labels)[i] = b->label;
        crowd[i] = b->crowd;
    }
    *m = mn_boxes_drop_crowd(*boxes, *labels, NULL, *boxes, *labels, crowd, n);
    return *m < 0 ? *m : 0;
}

/* ---- training ---- */

/* Samples anchors of every image and appends their global ids and regression targets. */
static int rpn_sample(mn_detector *d, mn_tape *t, const det_layout *lo, float *const *gt /* N x (M_i, 4) */,
                      const int *m /* (N) */, const mn_det_image *info /* (N) */, mn_rng *rng, int64_t *pos /* (N batch) */, int *np,
                      int64_t *neg /* (N batch) */, int *nn, float *targets /* (N batch, 4) */)
{
    const mn_det_config *c = &d->cfg;
    int64_t total = lo->off[MN_DET_LEVELS];
    int *matches = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)total);
    int *ip = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)c->rpn_batch);
    int *in = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)c->rpn_batch);
    if (!matches || !ip || !in) return mn_last_error_code();
    mn_box_coder bc = mn_box_coder_make(1.0f, 1.0f, 1.0f, 1.0f);
    *np = *nn = 0;
    for (int n = 0; n < lo->n; n++) {
        int rc = det_rpn_match(c, lo, gt[n], m[n], matches);
        int kp, kn;
        /* each image's draws come from its own stream, keyed by its place in the global batch: a
         * data-parallel rank holding some of the images draws what one process draws for them */
        mn_rng ri = mn_rng_split(rng, (uint64_t)info[n].position);
        if (!rc) rc = mn_sample_pos_neg(ip, &kp, in, &kn, matches, (int)total, c->rpn_batch, c->rpn_pos_fraction, &ri);
        if (rc) return rc;
        for (int j = 0; j < kp; j++) {
            mn_box_encode(&bc, targets + 4 * (size_t)*np, gt[n] + 4 * (size_t)matches[ip[j]],
                          lo->anchors + 4 * (size_t)ip[j], 1);
            pos[(*np)++] = n * total + ip[j];
        }
        for (int j = 0; j < kn; j++) neg[(*nn)++] = n * total + in[j];
    }
    return 0;
}

/* The RoI head's sample of every image from its proposals plus ground truth. */
static int roi_sample(mn_detector *d, mn_tape *t, const det_props *props /* (N) */, int n_img,
                      float *const *gt /* N x (M_i, 4) */, int *const *gl /* N x (M_i) */, const int *m /* (N) */,
                      const mn_det_image *info /* (N) */, mn_rng *rng, float *rois /* (S, 5) */, int32_t *labels /* (S) */, float *targets /* (S, 4) */,
                      int *n_rois)
{
    const mn_det_config *c = &d->cfg;
    *n_rois = 0;
    for (int n = 0; n < n_img; n++) {
        int p = props[n].n + m[n];
        float *cand = mn_arena_alloc(&t->arena, sizeof(float) * 4 * (size_t)(p ? p : 1));
        int *matches = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)(p ? p : 1));
        int *ip = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)c->roi_batch);
        int *in = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)c->roi_batch);
        int *idx = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)c->roi_batch);
        if (!cand || !matches || !ip || !in || !idx) return mn_last_error_code();
        memcpy(cand, props[n].boxes, sizeof(float) * 4 * (size_t)props[n].n);
        memcpy(cand + 4 * (size_t)props[n].n, gt[n], sizeof(float) * 4 * (size_t)m[n]);
        int kp, kn, rc = det_roi_match(c, cand, p, gt[n], m[n], matches);
        mn_rng ri = mn_rng_split(rng, (uint64_t)info[n].position + (1u << 20)); /* not the RPN's stream */
        if (!rc) rc = mn_sample_pos_neg(ip, &kp, in, &kn, matches, p, c->roi_batch, c->roi_pos_fraction, &ri);
        if (rc) return rc;
        /* torchvision keeps the sample in candidate order: where(pos | neg) */
        int s = 0, a = 0, b = 0;
        while (a < kp || b < kn) idx[s++] = (b >= kn || (a < kp && ip[a] < in[b])) ? ip[a++] : in[b++];
        det_roi_build(rois + 5 * (size_t)*n_rois, labels + *n_rois, targets + 4 * (size_t)*n_rois, n, cand, matches,
                      m[n] ? gt[n] : NULL, gl[n], idx, s);
        *n_rois += s;
    }
    return 0;
}

/* The teacher's RoIs mapped onto this batch, matched to its ground truth (no sampling). */
static int roi_from_teacher(mn_detector *d, mn_tape *t, const mn_det_teacher *tc, const mn_det_image *info /* (N) */,
                            float *const *gt /* N x (M_i, 4) */, int *const *gl /* N x (M_i) */,
                            const int *m /* (N) */, float *rois /* (S, 5) */, int32_t *labels /* (S) */,
                            float *targets /* (S, 4) */, int *n_rois)
{
    *n_rois = 0;
    for (int n = 0; n < tc->n; n++) {
        float sx = (float)info[n].w / (float)tc->valid[n][1], sy = (float)info[n].h / (float)tc->valid[n][0];
        int cnt = 0;
        for (int i = 0; i < tc->n_rois; i++) cnt += (int)tc->rois[5 * i] == n;
        float *cand = mn_arena_alloc(&t->arena, sizeof(float) * 4 * (size_t)(cnt ? cnt : 1));
        int *matches = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)(cnt ? cnt : 1));
        int *idx = mn_arena_alloc(&t->arena, sizeof(int) * (size_t)(cnt ? cnt : 1));
        if (!cand || !matches || !idx) return mn_last_error_code();
        for (int i = 0, j = 0; i < tc->n_rois; i++) {
            const float *b = tc->rois + 5 * (size_t)i;
            if ((int)b[0] != n) continue;
            float *o = cand + 4 * (size_t)j;
            o[0] = b[1] * sx;
            o[1] = b[2] * sy;
            o[2] = b[3] * sx;
            o[3] = b[4] * sy;
            idx[j] = j;
            j++;
        }
        int rc = det_roi_match(&d->cfg, cand, cnt, gt[n], m[n], matches);
        if (rc) return rc;
        det_roi_build(rois + 5 * (size_t)*n_rois, labels + *n_rois, targets + 4 * (size_t)*n_rois, n, cand, matches,
                      m[n] ? gt[n] : NULL, gl[n], idx, cnt);
        *n_rois += cnt;
    }
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    void *q = realloc(*p, need * elem);
    if (!q) return mn_error(MN_ENOMEM, "detector: cannot keep %zu teacher values", need);
    *p = q;
    *cap = need;
    return 0;
}

/* Copies what a student needs out of this (teacher) pass. */
static int capture(mn_det_teacher *tc, const det_layout *lo, mn_var *const *obj /* L x (N, A, H_l, W_l) */,
                   const mn_det_image *info /* (N) */, const float *rois /* (R, 5) */, int n_rois,
                   mn_var *cls /* (R, K) or NULL */)
{
    tc->n = lo->n;
    tc->pad_h = lo->img_h;
    tc->pad_w = lo->img_w;
    tc->a = lo->a;
    for (int n = 0; n < lo->n; n++) {
        tc->valid[n][0] = info[n].h;
        tc->valid[n][1] = info[n].w;
    }
    memcpy(tc->grid, lo->grid, sizeof tc->grid);
    int k = cls ? (int)cls->val.shape[1] : 0;
    int64_t total = lo->off[MN_DET_LEVELS];
    size_t need_o = (size_t)(lo->n * total);
    int rc = grow((void **)&tc->rois, &tc->cap_rois, 5 * (size_t)n_rois, sizeof(float));
    if (!rc) rc = grow((void **)&tc->probs, &tc->cap_probs, (size_t)n_rois * (size_t)k, sizeof(float));
    if (!rc) rc = grow((void **)&tc->obj, &tc->cap_obj, need_o, sizeof(float));
    if (rc) {
        tc->n = tc->n_rois = 0; /* a failed capture leaves an empty, usable record */
        tc->n_obj = 0;
        return rc;
    }
    tc->n_rois = n_rois;
    tc->k = k;
    if (n_rois) memcpy(tc->rois, rois, sizeof(float) * 5 * (size_t)n_rois);
    for (int i = 0; i < n_rois; i++) {
        const float *x = cls->val.data + (size_t)i * k;
        float *p = tc->probs + (size_t)i * k, mx = x[0], sum = 0.0f;
        for (int j = 1; j < k; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < k; j++) sum += p[j] = expf(x[j] - mx);
        for (int j = 0; j < k; j++) p[j] /= sum;
    }
    tc->n_obj = (int64_t)need_o;
    for (int n = 0; n < lo->n; n++)
        for (int l = 0; l < MN_DET_LEVELS; l++) {
            int64_t hw = (int64_t)lo->grid[l][0] * lo->grid[l][1];
            const float *om = obj[l]->val.data + (int64_t)n * lo->a * hw;
            float *o = tc->obj + n * total + lo->off[l];
            for (int64_t cell = 0; cell < hw; cell++)
                for (int a = 0; a < lo->a; a++) o[cell * lo->a + a] = 1.0f / (1.0f + expf(-om[(int64_t)a * hw + cell]));
        }
    return 0;
}

/* KL on the RoI classifier, plus objectness BCE when the anchor grids agree. */
static mn_var *distill_terms(mn_tape *t, const mn_det_teacher *tc, const det_layout *lo,
                             mn_var *const *obj /* L x (N, A, H_l, W_l) */, mn_var *cls /* (R, K) */, int n_rois)
{
    mn_var *kl = NULL;
    if (n_rois > 0) {
        int64_t ps[2] = {n_rois, tc->k};
        mn_var *p = mn_var_new(t, 2, ps);
        if (!p) return NULL;
        memcpy(p->val.data, tc->probs, sizeof(float) * (size_t)n_rois * (size_t)tc->k);
        kl = mn_kl_div(t, cls, p);
        if (!kl) return NULL;
    }
    bool same_grid = tc->pad_h == lo->img_h && tc->pad_w == lo->img_w && tc->a == lo->a && tc->n == lo->n &&
                     tc->n_obj == lo->n * lo->off[MN_DET_LEVELS];
    mn_var *bce = NULL;
    if (same_grid && tc->n_obj > 0) {
        int64_t *ids = mn_arena_alloc(&t->arena, sizeof(int64_t) * (size_t)tc->n_obj);
        int64_t ts[2] = {tc->n_obj, 1};
        mn_var *target = mn_var_new(t, 2, ts);
        if (!ids || !target) return NULL;
        for (int64_t i = 0; i < tc->n_obj; i++) ids[i] = i;
        memcpy(target->val.data, tc->obj, sizeof(float) * (size_t)tc->n_obj);
        bce = mn_bce_with_logits(t, det_anchor_rows(t, obj, MN_DET_LEVELS, lo->a, 1, lo->off, ids, tc->n_obj), target,
                                 MN_REDUCE_MEAN);
        if (!bce) return NULL;
    }
    if (kl && bce) return mn_add(t, kl, bce);
    if (kl || bce) return kl ? kl : bce;
    const int64_t one = 1;
    mn_var *z = mn_var_new(t, 1, &one);
    if (z) z->val.data[0] = 0.0f;
    return z;
}

int mn_det_forward_train(mn_detector *d, mn_run *r, mn_var *images, const mn_det_image *info,
                         const mn_det_targets *targets, mn_rng *rng, mn_det_teacher *capture_to,
                         const mn_det_teacher *distill, float distill_weight, mn_det_losses *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_batch(images, info, "mn_det_forward_train");
    if (rc) return rc;
    const mn_det_config *c = &d->cfg;
    mn_tape *t = r->tape;
    int N = (int)images->val.shape[0];
    if (distill && distill->n != N)
        return mn_error(MN_EINVAL, "mn_det_forward_train: the teacher saw %d images, this batch has %d", distill->n, N);
    float *gt[MN_MAX_BATCH];
    int *gl[MN_MAX_BATCH], m[MN_MAX_BATCH];
    for (int n = 0; n < N; n++)
        if ((rc = gather_gt(d, t, &targets[n], n, &gt[n], &gl[n], &m[n]))) return rc;

    mn_var *p[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
    if ((rc = det_features(d, r, images, p)) || (rc = det_rpn_forward(d, r, p, obj, delta))) return rc;
    det_layout lo;
    rc = det_layout_make(&lo, &d->anchors, p, (int)images->val.shape[2], (int)images->val.shape[3]);
    if (rc) return rc;
    det_props props[MN_MAX_BATCH];
    memset(props, 0, sizeof props);

    /* RPN: sample anchors of every image, losses over the batch */
    size_t nb = (size_t)N * (size_t)c->rpn_batch;
    int64_t *pos = mn_arena_alloc(&t->arena, sizeof(int64_t) * nb);
    int64_t *neg = mn_arena_alloc(&t->arena, sizeof(int64_t) * nb);
    float *ptg = mn_arena_alloc(&t->arena, sizeof(float) * 4 * nb);
    int np = 0, nn = 0;
    rc = !pos || !neg || !ptg ? mn_last_error_code() : 0;
    if (!rc) rc = rpn_sample(d, t, &lo, gt, m, info, rng, pos, &np, neg, &nn, ptg);
    out->rpn_samples = np + nn;
    if (!rc) rc = det_rpn_loss(t, c, &lo, obj, delta, pos, np, neg, nn, ptg, &out->rpn_cls, &out->rpn_box);

    /* RoI head: on its own proposals, or on the teacher's */
    size_t cap = 0;
    if (!rc && !distill) {
        rc = det_rpn_proposals(c, true, &lo, obj, delta, info, props);
        for (int n = 0; n < N && !rc; n++) {
            int per = props[n].n + m[n];
            cap += (size_t)(per < c->roi_batch ? per : c->roi_batch);
        }
    } else if (!rc) {
        cap = (size_t)distill->n_rois;
    }
    float *rois = NULL, *rtg = NULL;
    int32_t *labels = NULL;
    int n_rois = 0;
    if (!rc) {
        rois = mn_arena_alloc(&t->arena, sizeof(float) * 5 * (cap ? cap : 1));
        rtg = mn_arena_alloc(&t->arena, sizeof(float) * 4 * (cap ? cap : 1));
        labels = mn_arena_alloc(&t->arena, sizeof(int32_t) * (cap ? cap : 1));
        if (!rois || !rtg || !labels) rc = mn_last_error_code();
    }
    if (!rc && !distill) rc = roi_sample(d, t, props, N, gt, gl, m, info, rng, rois, labels, rtg, &n_rois);
    if (!rc && distill) rc = roi_from_teacher(d, t, distill, info, gt, gl, m, rois, labels, rtg, &n_rois);
    out->roi_samples = n_rois;
    det_props_free(props, N);
    mn_var *cls = NULL, *box = NULL;
    if (!rc && n_rois > 0) {
        rc = det_roi_forward(d, r, p, rois, n_rois, &cls, &box);
        if (!rc) rc = det_roi_loss(t, cls, box, labels, rtg, n_rois, c->roi_box_beta, &out->cls, &out->box);
    } else if (!rc) {
        const int64_t one = 1;
        out->cls = mn_var_new(t, 1, &one);
        out->box = mn_var_new(t, 1, &one);
        if (!out->cls || !out->box) rc = mn_last_error_code();
        else out->cls->val.data[0] = out->box->val.data[0] = 0.0f;
    }
    if (!rc && capture_to) rc = capture(capture_to, &lo, obj, info, rois, n_rois, cls);
    if (!rc) {
        mn_var *total = mn_add(t, mn_add(t, out->rpn_cls, out->rpn_box), mn_add(t, out->cls, out->box));
        if (distill) {
            out->distill = distill_terms(t, distill, &lo, obj, cls, n_rois);
            total = mn_add(t, total, mn_scale(t, out->distill, distill_weight));
        }
        out->total = total;
        if (!total) rc = mn_last_error_code();
    }
    det_layout_free(&lo);
    return rc;
}

/* ---- inference ---- */

int mn_det_forward_test(mn_detector *d, mn_run *r, mn_var *images, const mn_det_image *info, mn_detection **out,
                        int *n)
{
    int rc = check_batch(images, info, "mn_det_forward_test");
    if (rc) return rc;
    int N = (int)images->val.shape[0], K = d->cfg.num_classes;
    for (int i = 0; i < N; i++) {
        out[i] = NULL;
        n[i] = 0;
    }
    mn_tape *t = r->tape;
    bool old = mn_tape_set_grad(t, false);
    mn_var *p[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
    det_layout lo = {0};
    det_props props[MN_MAX_BATCH];
    memset(props, 0, sizeof props);
    rc = det_features(d, r, images, p);
    if (!rc) rc = det_rpn_forward(d, r, p, obj, delta);
    if (!rc) rc = det_layout_make(&lo, &d->anchors, p, (int)images->val.shape[2], (int)images->val.shape[3]);
    if (!rc) rc = det_rpn_proposals(&d->cfg, false, &lo, obj, delta, info, props);
    int total = 0;
    for (int i = 0; i < N && !rc; i++) total += props[i].n;
    float *rois = NULL;
    if (!rc && total > 0) {
        rois = mn_arena_alloc(&t->arena, sizeof(float) * 5 * (size_t)total);
        if (!rois) rc = mn_last_error_code();
        for (int i = 0, j = 0; i < N && !rc; i++)
            for (int k = 0; k < props[i].n; k++, j++) {
                rois[5 * j] = (float)i;
                memcpy(rois + 5 * j + 1, props[i].boxes + 4 * k, 4 * sizeof(float));
            }
    }
    mn_var *cls = NULL, *box = NULL;
    if (!rc && total > 0) rc = det_roi_forward(d, r, p, rois, total, &cls, &box);
    for (int i = 0, off = 0; i < N && !rc && total > 0; off += props[i++].n) {
        rc = det_postprocess(&d->cfg, cls->val.data + (size_t)off * K, box->val.data + (size_t)off * 4 * K,
                             props[i].boxes, props[i].n, K, info[i].h, info[i].w, &out[i], &n[i]);
        if (!rc) det_unresize(out[i], n[i], &info[i]);
    }
    det_props_free(props, N);
    det_layout_free(&lo);
    mn_tape_set_grad(t, old);
    if (rc)
        for (int i = 0; i < N; i++) {
            free(out[i]);
            out[i] = NULL;
            n[i] = 0;
        }
    return rc;
}

/* ---- teacher ---- */

mn_det_teacher *mn_det_teacher_new(void)
{
    mn_det_teacher *t = calloc(1, sizeof *t);
    if (!t) mn_error(MN_ENOMEM, "detector: out of memory for a teacher record");
    return t;
}

void mn_det_teacher_free(mn_det_teacher *t)
{
    if (!t) return;
    free(t->rois);
    free(t->probs);
    free(t->obj);
    free(t);
}

int mn_det_teacher_rois(const mn_det_teacher *t) { return t->n_rois; }

/* ---- FLOPs ---- */

/* One pass on a blank 1 x 3 x h x w image with recording off: the slimmable layers count what
 * the model executes. The RPN head runs once per level (MACs count each run, parameters once);
 * the box head runs on one RoI and its MACs are multiplied by the RoI count. */
static int flops_run(mn_detector *d, float width, int h, int w, mn_det_flops_parts *macs, int64_t *params)
{
    memset(macs, 0, sizeof *macs);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    mn_run r = {.tape = &t, .width = width, .training = false};
    int64_t shape[4] = {1, 3, h, w};
    mn_var *x = mn_var_new(&t, 4, shape);
    int rc = x ? 0 : mn_last_error_code();
    mn_features f;
    mn_var *p[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
    int64_t pr = 0;
    if (!rc) {
        mn_tensor_fill(&x->val, 0.0f);
        rc = mn_backbone_forward(d->bb, &r, x, &f, NULL);
        macs->backbone = r.macs;
    }
    if (!rc) {
        rc = det_fpn_forward(&d->fpn, &r, &f, neck_channels(d, width), p);
        macs->neck = r.macs - macs->backbone;
    }
    if (!rc) {
        int64_t m0 = r.macs, p0 = r.params;
        rc = det_rpn_forward(d, &r, p, obj, delta);
        macs->rpn = r.macs - m0;
        pr = (r.params - p0) / MN_DET_LEVELS;
        r.params = p0;
    }
    if (!rc) {
        int s = d->cfg.roi_size;
        int64_t ps[4] = {1, neck_channels(d, width), s, s};
        mn_var *pooled = mn_var_new(&t, 4, ps), *cls, *box;
        int64_t m0 = r.macs;
        if (!pooled) {
            rc = mn_last_error_code();
        } else {
            mn_tensor_fill(&pooled->val, 0.0f);
            rc = det_box_head_forward(&d->box, &r, pooled, hidden_width(d, width), d->cfg.num_classes, &cls, &box);
        }
        int rois = d->cfg.flops_rois > 0 ? d->cfg.flops_rois : d->cfg.rpn_post_nms_test;
        macs->roi = (r.macs - m0) * rois;
    }
    if (params) *params = r.params + pr;
    mn_tape_free(&t);
    return rc;
}

int mn_det_flops_parts_at(mn_detector *d, float width, int h, int w, mn_det_flops_parts *macs)
{
    return flops_run(d, width, h, w, macs, NULL);
}

int mn_det_flops(mn_detector *d, float width, int h, int w_px, int64_t *macs, int64_t *params)
{
    mn_det_flops_parts parts;
    int64_t pc = 0;
    int rc = flops_run(d, width, h, w_px, &parts, &pc);
    if (rc) return rc;
    *macs = parts.backbone + parts.neck + parts.rpn + parts.roi;
    if (params) *params = pc;
    return 0;
}
