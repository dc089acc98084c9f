/* Faster R-CNN + FPN detector: parity of backbone + FPN + RPN head + box head (outputs and
 * every parameter gradient) with torchvision's modules, each training/inference stage against
 * torchvision on fixed inputs (level mapping, RPN targets and loss, RoI targets and loss,
 * proposal filtering, post-processing), the detection transform against
 * GeneralizedRCNNTransform, FLOPs by hand, distillation, the detection loader, and a short
 * training run on synthetic shapes. Fixture: tools/fixtures/gen_det.py. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"
#include "heads/det/internal.h"
#include "mn/dataset.h"
#include "mn/det.h"
#include "mn/optim.h"
#include "mn/synth.h"

/* ---- shared helpers ---- */

/* amp * tc_hash_uniform(seed, k) rounded to float, k = 0..n-1 (the fixture's float32 inputs). */
static float *hashed(uint32_t seed, int64_t n, double amp)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < n; k++) p[k] = (float)(amp * tc_hash_uniform(seed, k));
    return p;
}

/* A layout over dummy maps of the given grids (N images, padded img_h x img_w). */
static void make_layout(det_layout *lo, const mn_det_config *c, int n, const int (*grids)[2], int img_h, int img_w,
                        mn_var **dummies)
{
    mn_anchor_gen g;
    cr_assert_eq(det_anchor_gen(c, &g), 0, "%s", mn_last_error());
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        int64_t s[4] = {n, 1, grids[l][0], grids[l][1]};
        dummies[l] = tc_leaf(NULL, 4, s, false);
    }
    cr_assert_eq(det_layout_make(lo, &g, dummies, img_h, img_w), 0, "%s", mn_last_error());
}

/* Per-level RPN maps (N, A k, H, W) holding flat[g * k + j] for anchor id g in torchvision's
 * flattened order (see det_anchor_rows); leaves with gradients. */
static void maps_from_flat(mn_var **maps, const det_layout *lo, int k, const float *flat)
{
    int64_t total = lo->off[MN_DET_LEVELS];
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        int64_t h = lo->grid[l][0], w = lo->grid[l][1], s[4] = {lo->n, lo->a * k, h, w};
        maps[l] = tc_leaf(NULL, 4, s, true);
        for (int n = 0; n < lo->n; n++)
            for (int64_t cell = 0; cell < h * w; cell++)
                for (int a = 0; a < lo->a; a++)
                    for (int j = 0; j < k; j++) {
                        int64_t g = n * total + lo->off[l] + cell * lo->a + a;
                        maps[l]->val.data[((n * lo->a * k + a * k + j) * h * w) + cell] = flat[g * k + j];
                    }
    }
}

/* The inverse: gradients of the maps in flat anchor order. */
static float *flat_from_grads(mn_var *const *maps, const det_layout *lo, int k)
{
    int64_t total = lo->off[MN_DET_LEVELS];
    float *flat = calloc((size_t)(lo->n * total * k), sizeof(float));
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        int64_t h = lo->grid[l][0], w = lo->grid[l][1];
        for (int n = 0; n < lo->n; n++)
            for (int64_t cell = 0; cell < h * w; cell++)
                for (int a = 0; a < lo->a; a++)
                    for (int j = 0; j < k; j++) {
                        int64_t g = n * total + lo->off[l] + cell * lo->a + a;
                        flat[g * k + j] = maps[l]->grad.data[((n * lo->a * k + a * k + j) * h * w) + cell];
                    }
    }
    return flat;
}

static void free_leaves(mn_var **v, int n)
{
    for (int i = 0; i < n; i++) tc_leaf_free(v[i]);
}

/* ---- parity ---- */

static void parity(const char *tag, float w, bool slim_head)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_det_config c;
    mn_det_config_default(&c, 4);
    c.fpn_channels = 64;
    c.box_hidden = 128;
    c.slim_head = slim_head;
    mn_param_set ps;
    mn_param_set_init(&ps);
    mn_rng rng;
    mn_rng_seed(&rng, 1);
    mn_detector *d;
    cr_assert_eq(mn_det_create(&d, &c, &ps, &rng), 0, "%s", mn_last_error());
    tc_det_fill(&ps);

    mn_tape t;
    mn_tape_init(&t, 0);
    int64_t xs[4] = {2, 3, 64, 64};
    mn_var *x = mn_var_new(&t, 4, xs);
    for (int64_t k = 0; k < 2 * 3 * 64 * 64; k++) x->val.data[k] = (float)(1.7 * tc_hash_uniform(12345, k));
    mn_run r = {.tape = &t, .width = w, .training = true};
    mn_var *p[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS], *cls, *box;
    cr_assert_eq(det_features(d, &r, x, p), 0, "%s", mn_last_error());
    cr_assert_eq(det_rpn_forward(d, &r, p, obj, delta), 0, "%s", mn_last_error());
    mn_tensor rois = tc_get(&st, "parity.rois");
    cr_assert_eq(det_roi_forward(d, &r, p, rois.data, (int)rois.shape[0], &cls, &box), 0, "%s", mn_last_error());
    int expect_c = slim_head ? mn_slim_channels(64, w, 1.0f) : 64;
    cr_assert_eq(p[0]->val.shape[1], expect_c);
    cr_assert_eq(cls->val.shape[1], 4, "class scores are never sliced");
    cr_assert_eq(box->val.shape[1], 16, "box outputs are never sliced");

    /* every output as one vector, in the fixture's order: objectness, deltas, classes, boxes */
    mn_var *all[2 * MN_DET_LEVELS + 2];
    int64_t sizes[4] = {0, 0, 0, 0}, total = 0;
    for (int l = 0; l < MN_DET_LEVELS; l++) {
        all[l] = obj[l];
        all[MN_DET_LEVELS + l] = delta[l];
        sizes[0] += mn_tensor_numel(&obj[l]->val);
        sizes[1] += mn_tensor_numel(&delta[l]->val);
    }
    all[2 * MN_DET_LEVELS] = cls;
    all[2 * MN_DET_LEVELS + 1] = box;
    sizes[2] = mn_tensor_numel(&cls->val);
    sizes[3] = mn_tensor_numel(&box->val);
    total = sizes[0] + sizes[1] + sizes[2] + sizes[3];
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)total);
    for (int64_t i = 0; i < total; i++) idx[i] = i;
    mn_var *flat = det_take_rows(&t, all, 2 * MN_DET_LEVELS + 2, 1, idx, total);
    cr_assert_not_null(flat, "%s", mn_last_error());
    char key[128];
    snprintf(key, sizeof key, "parity.%s.out", tag);
    mn_tensor want = tc_get(&st, key);
    cr_assert_eq(mn_tensor_numel(&want), total, "fixture has %lld outputs, model %lld",
                 (long long)mn_tensor_numel(&want),
                 (long long)total);
    snprintf(key, sizeof key, "parity.%s.noise", tag);
    mn_tensor noise = tc_get(&st, key);
    static const char *groups[4] = {"objectness", "box deltas", "class logits", "box regression"};
    int64_t at = 0;
    for (int g = 0; g < 4; g++) {
        char what[128];
        snprintf(what, sizeof what, "%s %s", tag, groups[g]);
        /* within 4x PyTorch float32's own error (as the backbone parity test) */
        tc_expect_close(flat->val.data + at, want.data + at, sizes[g], 4 * noise.data[g] + 1e-5f, 1e-4f, what);
        at += sizes[g];
    }

    float *R = malloc(sizeof(float) * (size_t)total);
    for (int64_t i = 0; i < total; i++) R[i] = (float)tc_hash_uniform(777, i);
    mn_param_zero_grad(&ps);
    cr_assert_eq(mn_backward_grad(&t, flat, R), 0, "%s", mn_last_error());
    snprintf(key, sizeof key, "parity.%s", tag);
    tc_check_param_grads(&st, key, &ps, 0.05f);
    int heads = 0;
    for (int i = 0; i < ps.n; i++) heads += strncmp(ps.items[i]->name, "backbone.", 9) != 0;
    cr_assert_eq(heads, 8 + 8 + 6 + 8, "neck, rpn and roi parameters are all among those checked");
    free(R);
    free(idx);
    mn_tape_free(&t);
    mn_det_free(d);
    mn_param_set_free(&ps);
    mn_st_free(&st);
}

Test(parity, slim_head_width_050) { parity("slim", 0.5f, true); }
Test(parity, full_width_head_width_075) { parity("full", 0.75f, false); }

/* ---- stages against torchvision ---- */

Test(stages, level_mapper)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_tensor b = tc_get(&st, "levels.boxes"), e = tc_get(&st, "levels.expect");
    int n = (int)b.shape[0];
    float *rois = malloc(sizeof(float) * 5 * (size_t)n);
    int *lvl = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        rois[5 * i] = 0;
        memcpy(rois + 5 * i + 1, b.data + 4 * i, 4 * sizeof(float));
    }
    det_roi_levels(lvl, rois, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(lvl[i], (int)e.data[i], "box %d: level %d, torchvision %d", i, lvl[i], (int)e.data[i]);
    free(rois);
    free(lvl);
    mn_st_free(&st);
}

static const int GRIDS64[MN_DET_LEVELS][2] = {{16, 16}, {8, 8}, {4, 4}, {2, 2}, {1, 1}};
static const int GRIDS96[MN_DET_LEVELS][2] = {{24, 16}, {12, 8}, {6, 4}, {3, 2}, {2, 1}};

Test(stages, rpn_targets_and_loss)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_det_config c;
    mn_det_config_default(&c, 4);
    det_layout lo;
    mn_var *dummy[MN_DET_LEVELS];
    make_layout(&lo, &c, 2, GRIDS64, 64, 64, dummy);
    int64_t T = lo.off[MN_DET_LEVELS];
    cr_assert_eq(T, 1023);
    mn_tensor gt = tc_get(&st, "rpnloss.gt"), labels = tc_get(&st, "rpnloss.labels");
    int *matches = malloc(sizeof(int) * 2 * (size_t)T);
    cr_assert_eq(det_rpn_match(&c, &lo, gt.data, (int)gt.shape[0], matches), 0, "%s", mn_last_error());
    cr_assert_eq(det_rpn_match(&c, &lo, NULL, 0, matches + T), 0, "%s", mn_last_error());
    for (int64_t i = 0; i < 2 * T; i++) {
        int m = matches[i];
        float lab = m >= 0 ? 1.0f : m == MN_MATCH_BELOW ? 0.0f : -1.0f;
        cr_assert_eq(lab, labels.data[i], "anchor %lld: label %g, torchvision %g", (long long)i, lab, labels.data[i]);
    }
    /* the fixture's sample (torchvision's sampler under torch's generator) */
    mn_tensor fp = tc_get(&st, "rpnloss.pos"), fn = tc_get(&st, "rpnloss.neg");
    int np = (int)fp.shape[0], nn = (int)fn.shape[0];
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)np), *neg = malloc(sizeof(int64_t) * (size_t)nn);
    float *targets = malloc(sizeof(float) * 4 * (size_t)np);
    mn_box_coder bc = mn_box_coder_make(1, 1, 1, 1);
    for (int i = 0; i < np; i++) {
        pos[i] = (int64_t)fp.data[i];
        int64_t img = pos[i] / T, a = pos[i] % T;
        cr_assert_eq(img, 0, "positives only where there is ground truth");
        mn_box_encode(&bc, targets + 4 * i, gt.data + 4 * matches[a], lo.anchors + 4 * a, 1);
    }
    for (int i = 0; i < nn; i++) neg[i] = (int64_t)fn.data[i];
    tc_expect_close(targets, tc_get(&st, "rpnloss.targets").data, 4 * np, 1e-5f, 1e-5f, "RPN regression targets");

    float *of = hashed(101, 2 * T, 2.0), *df = hashed(102, 2 * T * 4, 0.5);
    mn_var *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
    maps_from_flat(obj, &lo, 1, of);
    maps_from_flat(delta, &lo, 4, df);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *lc, *lb;
    cr_assert_eq(det_rpn_loss(&t, &c, &lo, obj, delta, pos, np, neg, nn, targets, &lc, &lb), 0, "%s", mn_last_error());
    mn_tensor loss = tc_get(&st, "rpnloss.loss");
    tc_expect_close(lc->val.data, loss.data, 1, 1e-6f, 1e-5f, "objectness loss");
    tc_expect_close(lb->val.data, loss.data + 1, 1, 1e-6f, 1e-5f, "RPN box loss");
    cr_assert_eq(mn_backward(&t, mn_add(&t, lc, lb)), 0, "%s", mn_last_error());
    float *go = flat_from_grads(obj, &lo, 1), *gd = flat_from_grads(delta, &lo, 4);
    mn_tensor wo = tc_get(&st, "rpnloss.grad_obj"), wd = tc_get(&st, "rpnloss.grad_delta");
    for (int i = 0; i < np + nn; i++) {
        int64_t g = i < np ? pos[i] : neg[i - np];
        tc_expect_close(&go[g], &wo.data[i], 1, 1e-8f, 1e-4f, "objectness gradient");
        go[g] = 0.0f;
    }
    for (int i = 0; i < np; i++) {
        tc_expect_close(&gd[4 * pos[i]], &wd.data[4 * i], 4, 1e-8f, 1e-4f, "delta gradient");
        memset(&gd[4 * pos[i]], 0, 4 * sizeof(float));
    }
    /* nothing reaches unsampled anchors */
    for (int64_t i = 0; i < 2 * T; i++)
        cr_assert_eq(go[i], 0.0f, "objectness gradient at unsampled anchor %lld", (long long)i);
    for (int64_t i = 0; i < 8 * T; i++)
        cr_assert_eq(gd[i], 0.0f, "delta gradient outside positives (%lld)", (long long)i);
    free(go);
    free(gd);
    free(of);
    free(df);
    free(pos);
    free(neg);
    free(targets);
    free(matches);
    free_leaves(obj, MN_DET_LEVELS);
    free_leaves(delta, MN_DET_LEVELS);
    free_leaves(dummy, MN_DET_LEVELS);
    det_layout_free(&lo);
    mn_tape_free(&t);
    mn_st_free(&st);
}

Test(stages, roi_targets_and_loss)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_det_config c;
    mn_det_config_default(&c, 4);
    mn_tensor gt = tc_get(&st, "roiloss.gt"), gl = tc_get(&st, "roiloss.gt_labels");
    int m = (int)gt.shape[0], gt_labels[8];
    for (int i = 0; i < m; i++) gt_labels[i] = (int)gl.data[i];
    float rois[64 * 5], targets[64 * 4];
    int32_t labels[64];
    int R = 0;
    for (int img = 0; img < 2; img++) {
        char key[64];
        snprintf(key, sizeof key, "roiloss.props%d", img);
        mn_tensor pr = tc_get(&st, key);
        snprintf(key, sizeof key, "roiloss.sampled%d", img);
        mn_tensor sa = tc_get(&st, key);
        int mi = img == 0 ? m : 0, p = (int)pr.shape[0] + mi, s = (int)sa.shape[0];
        float *cand = malloc(sizeof(float) * 4 * (size_t)p);
        int *matches = malloc(sizeof(int) * (size_t)p), idx[64];
        memcpy(cand, pr.data, sizeof(float) * 4 * (size_t)pr.shape[0]);
        if (mi) memcpy(cand + 4 * pr.shape[0], gt.data, sizeof(float) * 4 * (size_t)mi);
        cr_assert_eq(det_roi_match(&c, cand, p, mi ? gt.data : NULL, mi, matches), 0, "%s", mn_last_error());
        for (int j = 0; j < s; j++) idx[j] = (int)sa.data[j];
        det_roi_build(rois + 5 * R, labels + R, targets + 4 * R, img, cand, matches, mi ? gt.data : NULL, gt_labels,
                      idx, s);
        R += s;
        free(cand);
        free(matches);
    }
    mn_tensor wr = tc_get(&st, "roiloss.rois"), wl = tc_get(&st, "roiloss.labels"), wt = tc_get(&st, "roiloss.targets");
    cr_assert_eq(wr.shape[0], R);
    int npos = 0;
    for (int i = 0; i < R; i++) {
        cr_assert_eq(rois[5 * i], i < 16 ? 0.0f : 1.0f);
        tc_expect_close(rois + 5 * i + 1, wr.data + 4 * i, 4, 0, 0, "sampled RoI boxes");
        cr_assert_eq(labels[i], (int)wl.data[i], "RoI %d: label %d, torchvision %d", i, labels[i], (int)wl.data[i]);
        if (labels[i] > 0) {
            tc_expect_close(targets + 4 * i, wt.data + 4 * i, 4, 1e-5f, 1e-5f, "RoI regression targets");
            npos++;
        }
    }
    cr_assert(npos > 0 && npos < R, "the sample mixes foreground (%d) and background", npos);

    int64_t ls[2] = {R, 4}, bs[2] = {R, 16};
    float *lv = hashed(201, R * 4, 2.0), *bv = hashed(202, R * 16, 0.5);
    mn_var *cl = tc_leaf(lv, 2, ls, true), *br = tc_leaf(bv, 2, bs, true);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *lc, *lb;
    cr_assert_eq(det_roi_loss(&t, cl, br, labels, targets, R, 1.0f / 9.0f, &lc, &lb), 0, "%s", mn_last_error());
    mn_tensor loss = tc_get(&st, "roiloss.loss");
    tc_expect_close(lc->val.data, loss.data, 1, 1e-6f, 1e-5f, "RoI classification loss");
    tc_expect_close(lb->val.data, loss.data + 1, 1, 1e-6f, 1e-5f, "RoI box loss");
    cr_assert_eq(mn_backward(&t, mn_add(&t, lc, lb)), 0, "%s", mn_last_error());
    tc_expect_close(cl->grad.data, tc_get(&st, "roiloss.grad_cls").data, R * 4, 1e-7f, 1e-4f, "class logit gradient");
    tc_expect_close(br->grad.data, tc_get(&st, "roiloss.grad_box").data, R * 16, 1e-7f, 1e-4f, "box gradient");
    free(lv);
    free(bv);
    tc_leaf_free(cl);
    tc_leaf_free(br);
    mn_tape_free(&t);
    mn_st_free(&st);
}

static void proposals_case(const char *mode, bool training)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_det_config c;
    mn_det_config_default(&c, 4);
    c.rpn_pre_nms_test = 50;
    c.rpn_post_nms_test = 40;
    c.rpn_pre_nms_train = 80;
    c.rpn_post_nms_train = 60;
    det_layout lo;
    mn_var *dummy[MN_DET_LEVELS];
    make_layout(&lo, &c, 2, GRIDS96, 96, 64, dummy);
    int64_t T = lo.off[MN_DET_LEVELS];
    float *of = hashed(301, 2 * T, 3.0), *df = hashed(302, 2 * T * 4, 0.3);
    mn_var *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
    maps_from_flat(obj, &lo, 1, of);
    maps_from_flat(delta, &lo, 4, df);
    mn_det_image info[2] = {{90, 60, 1.0f, false, 0, 0, 0}, {96, 40, 1.0f, false, 0, 0, 1}};
    det_props props[2];
    cr_assert_eq(det_rpn_proposals(&c, training, &lo, obj, delta, info, props), 0, "%s", mn_last_error());
    char key[64];
    snprintf(key, sizeof key, "props.%s.n", mode);
    mn_tensor wn = tc_get(&st, key);
    snprintf(key, sizeof key, "props.%s.boxes", mode);
    mn_tensor wb = tc_get(&st, key);
    snprintf(key, sizeof key, "props.%s.scores", mode);
    mn_tensor ws = tc_get(&st, key);
    int off = 0;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(props[i].n, (int)wn.data[i], "%s image %d: %d proposals, torchvision %d", mode, i, props[i].n,
                     (int)wn.data[i]);
        tc_expect_close(props[i].boxes, wb.data + 4 * off, 4 * props[i].n, 1e-4f, 1e-5f, "proposal boxes");
        tc_expect_close(props[i].scores, ws.data + off, props[i].n, 1e-6f, 1e-5f, "proposal scores");
        for (int j = 0; j < props[i].n; j++)
            cr_assert(props[i].boxes[4 * j + 2] <= (float)info[i].w && props[i].boxes[4 * j + 3] <= (float)info[i].h);
        off += props[i].n;
    }
    det_props_free(props, 2);
    free(of);
    free(df);
    free_leaves(obj, MN_DET_LEVELS);
    free_leaves(delta, MN_DET_LEVELS);
    free_leaves(dummy, MN_DET_LEVELS);
    det_layout_free(&lo);
    mn_st_free(&st);
}

Test(stages, proposals_test_settings) { proposals_case("test", false); }
Test(stages, proposals_train_settings) { proposals_case("train", true); }

Test(stages, postprocess_detections)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_det_config c;
    mn_det_config_default(&c, 4);
    enum { RP = 50, K = 4 };
    float *logits = hashed(401, 2 * RP * K, 3.0), *breg = hashed(402, 2 * RP * 4 * K, 0.5);
    mn_tensor props = tc_get(&st, "post.props"), wn = tc_get(&st, "post.n"), wb = tc_get(&st, "post.boxes");
    mn_tensor wo = tc_get(&st, "post.orig_boxes"), ws = tc_get(&st, "post.scores"), wl = tc_get(&st, "post.labels");
    const int shapes[2][2] = {{60, 56}, {64, 40}}, orig[2][2] = {{120, 112}, {100, 62}};
    int off = 0;
    for (int i = 0; i < 2; i++) {
        mn_detection *det;
        int n;
        cr_assert_eq(det_postprocess(&c, logits + i * RP * K, breg + i * RP * 4 * K, props.data + 4 * i * RP, RP, K,
                                     shapes[i][0], shapes[i][1], &det, &n),
                     0, "%s", mn_last_error());
        cr_assert_eq(n, (int)wn.data[i], "image %d: %d detections, torchvision %d", i, n, (int)wn.data[i]);
        for (int j = 0; j < n; j++) {
            cr_assert_eq(det[j].label, (int)wl.data[off + j], "detection %d label", j);
            tc_expect_close(&det[j].score, ws.data + off + j, 1, 1e-6f, 1e-5f, "detection score");
            tc_expect_close(&det[j].x1, wb.data + 4 * (off + j), 4, 1e-4f, 1e-5f, "detection box (resized frame)");
        }
        mn_det_image info = {shapes[i][0], shapes[i][1], 0.5f, false, orig[i][0], orig[i][1], 0};
        mn_detection *flipped = malloc(sizeof *flipped * (size_t)(n ? n : 1));
        if (n) memcpy(flipped, det, sizeof *det * (size_t)n);
        det_unresize(det, n, &info);
        for (int j = 0; j < n; j++)
            tc_expect_close(&det[j].x1, wo.data + 4 * (off + j), 4, 1e-4f, 1e-5f, "detection box (original frame)");
        /* a mirrored input maps back mirrored in the original frame */
        info.flipped = true;
        det_unresize(flipped, n, &info);
        for (int j = 0; j < n; j++) {
            float want[2] = {(float)orig[i][1] - det[j].x2, (float)orig[i][1] - det[j].x1};
            tc_expect_close(&flipped[j].x1, want, 1, 1e-4f, 1e-6f, "unflipped x1");
            tc_expect_close(&flipped[j].x2, want + 1, 1, 1e-4f, 1e-6f, "unflipped x2");
            cr_assert_eq(flipped[j].y1, det[j].y1);
        }
        free(flipped);
        free(det);
        off += n;
    }
    free(logits);
    free(breg);
    mn_st_free(&st);
}

/* ---- the differentiable gathers ---- */

static mn_var *take_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    static const int64_t idx[7] = {4, 0, 9, 3, 3, 7, 1};
    (void)ctx;
    return det_take_rows(t, in, 2, 3, idx, 7);
}

static mn_var *anchor_op(mn_tape *t, mn_var *const *in, void *ctx)
{
    const det_layout *lo = ctx;
    static const int64_t ids[6] = {0, 5, 17, 37, 38, 75};
    return det_anchor_rows(t, in, MN_DET_LEVELS, lo->a, 2, lo->off, ids, 6);
}

Test(ops, gathers_gradcheck)
{
    int64_t s0[2] = {4, 3}, s1[3] = {2, 3, 3};
    float *v0 = tc_random(1, 12, -1, 1), *v1 = tc_random(2, 18, -1, 1);
    mn_var *in[2] = {tc_leaf(v0, 2, s0, true), tc_leaf(v1, 3, s1, true)};
    tc_gradcheck_opts o = {1e-2f, 1e-3f, 1e-3f, 0};
    tc_gradcheck(take_op, NULL, in, 2, &o);
    /* forward: row 4 of the virtual concatenation is row 0 of the second input */
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *y = take_op(&t, in, NULL);
    cr_assert_eq(y->val.data[0], v1[0]);
    cr_assert_eq(y->val.data[3], v0[0]);
    mn_tape_free(&t);
    free_leaves(in, 2);
    free(v0);
    free(v1);

    /* anchor rows: two values per anchor over tiny maps, A = 2 */
    mn_det_config c;
    mn_det_config_default(&c, 2);
    for (int l = 0; l < MN_DET_LEVELS; l++) c.n_ratios[l] = 2;
    det_layout lo;
    mn_var *dummy[MN_DET_LEVELS];
    static const int grids[MN_DET_LEVELS][2] = {{4, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}};
    make_layout(&lo, &c, 2, grids, 16, 12, dummy);
    int64_t T = lo.off[MN_DET_LEVELS];
    cr_assert_eq(T, 2 * (12 + 4 + 3));
    float *flat = hashed(9, 2 * T * 2, 1.0);
    mn_var *maps[MN_DET_LEVELS];
    maps_from_flat(maps, &lo, 2, flat);
    mn_tape_init(&t, 0);
    y = anchor_op(&t, maps, &lo);
    static const int64_t ids[6] = {0, 5, 17, 37, 38, 75};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 2; j++)
            cr_assert_eq(y->val.data[2 * i + j], flat[2 * ids[i] + j], "anchor %lld", (long long)ids[i]);
    mn_tape_free(&t);
    tc_gradcheck(anchor_op, &lo, maps, MN_DET_LEVELS, &o);
    free(flat);
    free_leaves(maps, MN_DET_LEVELS);
    free_leaves(dummy, MN_DET_LEVELS);
    det_layout_free(&lo);
}

/* ---- the detection transform ---- */

static mn_sample uint8_sample(uint32_t seed, int h, int w)
{
    mn_sample s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(mn_image_alloc(&s.image, w, h, 3), 0);
    for (int64_t k = 0; k < (int64_t)h * w * 3; k++) {
        double v = floor(256.0 * (tc_hash_uniform(seed, k) + 1.0) / 2.0);
        s.image.data[k] = (uint8_t)(v > 255 ? 255 : v);
    }
    snprintf(s.name, sizeof s.name, "hashed%u", seed);
    return s;
}

static void check_transform(const mn_safetensors *st, mn_sample *s, const mn_det_aug *a, mn_rng *rng, int which)
{
    float *img = malloc(sizeof(float) * 3 * 32 * 32);
    mn_box out[8];
    int n;
    mn_det_image info;
    cr_assert_eq(mn_det_transform(a, s, rng, img, 32, 32, out, &n, &info), 0, "%s", mn_last_error());
    char key[32];
    snprintf(key, sizeof key, "tf.image%d", which);
    mn_tensor want = tc_get(st, key);
    cr_assert_eq(info.h, want.shape[1]);
    cr_assert_eq(info.w, want.shape[2]);
    cr_assert_eq(info.orig_h, s->image.h);
    cr_assert_eq(info.orig_w, s->image.w);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++) {
            const float *row = img + (c * 32 + y) * 32;
            if (y < info.h) {
                tc_expect_close(row, want.data + (c * info.h + y) * info.w, info.w, 2e-5f, 1e-5f, "resized pixels");
                for (int x = info.w; x < 32; x++) cr_assert_eq(row[x], 0.0f, "padding");
            } else {
                for (int x = 0; x < 32; x++) cr_assert_eq(row[x], 0.0f, "padding");
            }
        }
    snprintf(key, sizeof key, "tf.boxes%d", which);
    mn_tensor wb = tc_get(st, key);
    cr_assert_eq(n, wb.shape[0]);
    for (int i = 0; i < n; i++) tc_expect_close(&out[i].x1, wb.data + 4 * i, 4, 1e-5f, 1e-5f, "resized boxes");
    free(img);
}

Test(transform, resize_normalise_flip_against_torchvision)
{
    mn_safetensors st;
    tc_fixture("det", &st);
    mn_det_aug a;
    mn_det_aug_default(&a, 10, 20, false);
    mn_rng rng;
    mn_rng_seed(&rng, 1);
    mn_sample s0 = uint8_sample(801, 13, 17), s1 = uint8_sample(802, 9, 20);
    mn_box b0[2] = {{1.0f, 2.0f, 9.5f, 11.0f, 1, false}, {12.0f, 0.5f, 17.0f, 4.0f, 1, false}};
    mn_box b1[1] = {{0.0f, 0.0f, 20.0f, 9.0f, 1, false}};
    s0.boxes = b0;
    s0.n_boxes = 2;
    s1.boxes = b1;
    s1.n_boxes = 1;
    check_transform(&st, &s0, &a, &rng, 0);
    check_transform(&st, &s1, &a, &rng, 1);
    /* GeneralizedRCNNTransform padded this batch to 32 x 32 */
    mn_tensor pad = tc_get(&st, "tf.padded");
    cr_assert_eq(pad.data[0], 32.0f);
    cr_assert_eq(pad.data[1], 32.0f);
    /* flipped: the first seed whose coin says flip (deterministic) */
    a.hflip = true;
    float img[3 * 32 * 32];
    mn_box out[4];
    int n, seed = 0;
    mn_det_image info = {0};
    for (; seed < 64 && !info.flipped; seed++) {
        mn_rng_seed(&rng, (uint64_t)seed);
        mn_rng probe = rng;
        cr_assert_eq(mn_det_transform(&a, &s0, &probe, img, 32, 32, out, &n, &info), 0, "%s", mn_last_error());
    }
    cr_assert(info.flipped, "no seed below 64 flips");
    mn_rng_seed(&rng, (uint64_t)(seed - 1));
    check_transform(&st, &s0, &a, &rng, 2);
    s0.boxes = s1.boxes = NULL;
    mn_image_free(&s0.image);
    mn_image_free(&s1.image);
    mn_st_free(&st);
}

Test(transform, short_side_max_side_crowd_and_degenerate_boxes)
{
    mn_det_aug a;
    mn_det_aug_default(&a, 64, 100, false);
    int oh, ow;
    float sc;
    cr_assert_eq(mn_det_resize_shape(&a, 128, 192, &oh, &ow, &sc), 0);
    cr_assert_eq(oh, 64, "short side");
    cr_assert_eq(ow, 96);
    /* float32 scale as torchvision: 64 / 100 = 0.63999999 and floor(100 x that) = 63 */
    cr_assert_eq(mn_det_resize_shape(&a, 100, 150, &oh, &ow, &sc), 0);
    cr_assert_eq(oh, 63);
    cr_assert_eq(ow, 95);
    cr_assert_eq(mn_det_resize_shape(&a, 50, 200, &oh, &ow, &sc), 0);
    cr_assert_eq(ow, 100, "long side capped");
    cr_assert_eq(oh, 25);
    cr_assert_float_eq(sc, 0.5f, 1e-7f);
    cr_assert_neq(mn_det_resize_shape(&a, 0, 10, &oh, &ow, &sc), 0);

    /* 60 x 150 at short side 40, long side 100: scale 2/3, resized 40 x 100 */
    mn_det_aug_default(&a, 40, 100, false);
    mn_sample s = uint8_sample(5, 60, 150);
    mn_box boxes[5] = {
        {15.0f, 15.0f, 45.0f, 60.0f, 2, false},          /* kept */
        {50.0f, 5.0f, 80.0f, 45.0f, 3, true},            /* crowd: kept, still crowd */
        {60.5f, 20.0f, 60.500004f, 30.0f, 1, false},     /* one ulp wide: both sides land on one float */
        {140.0f, 10.0f, 170.0f, 20.0f, 1, false},        /* partly outside: clipped */
        {155.0f, 10.0f, 190.0f, 20.0f, 4, false},        /* outside the image: empty after clipping */
    };
    s.boxes = boxes;
    s.n_boxes = 5;
    mn_box out[5];
    int n;
    mn_det_image info;
    float *img = malloc(sizeof(float) * 3 * 64 * 128);
    mn_rng rng;
    mn_rng_seed(&rng, 3);
    cr_assert_eq(mn_det_transform(&a, &s, &rng, img, 64, 128, out, &n, &info), 0, "%s", mn_last_error());
    cr_assert(info.h == 40 && info.w == 100, "resized to %dx%d", info.w, info.h);
    cr_assert_eq(n, 3, "degenerate boxes dropped: %d left", n);
    cr_assert_float_eq(out[0].x1, 10.0f, 1e-5f);
    cr_assert_float_eq(out[0].y2, 40.0f, 1e-5f);
    cr_assert_eq(out[0].label, 2);
    cr_assert(out[1].crowd && out[1].label == 3, "crowd kept as crowd");
    cr_assert_float_eq(out[2].x2, 100.0f, 1e-6f, "clipped to the resized width");
    /* min_box drops small boxes too */
    a.min_box = 12.0f;
    cr_assert_eq(mn_det_transform(&a, &s, &rng, img, 64, 128, out, &n, &info), 0);
    cr_assert_eq(n, 2, "only the first two boxes are over 12 px both ways");
    /* too small a padded buffer is refused */
    cr_assert_eq(mn_det_transform(&a, &s, &rng, img, 32, 128, out, &n, &info), MN_ESHAPE);
    free(img);
    s.boxes = NULL;
    mn_image_free(&s.image);
}

Test(transform, batch_resize_pads_to_32)
{
    mn_det_aug a;
    mn_det_aug_default(&a, 60, 200, false);
    mn_det_batch src;
    memset(&src, 0, sizeof src);
    src.n = 2;
    src.h = 64;
    src.w = 96;
    src.images = calloc(2 * 3 * 64 * 96, sizeof(float));
    for (int i = 0; i < 2 * 3 * 64 * 96; i++) src.images[i] = (float)(i % 97) / 97.0f;
    src.info[0] = (mn_det_image){60, 90, 0.5f, false, 120, 180, 0};
    src.info[1] = (mn_det_image){45, 60, 0.5f, true, 90, 120, 1};
    mn_box b0[1] = {{10, 10, 50, 40, 1, false}}, b1[2] = {{0, 0, 60, 45, 2, true}, {5, 5, 6, 6, 1, false}};
    src.boxes[0] = b0;
    src.boxes[1] = b1;
    src.n_boxes[0] = 1;
    src.n_boxes[1] = 2;
    mn_det_batch dst;
    memset(&dst, 0, sizeof dst);
    cr_assert_eq(mn_det_batch_resize(&dst, &src, &a, 30), 0, "%s", mn_last_error());
    cr_assert_eq(dst.info[0].h, 30);
    cr_assert_eq(dst.info[0].w, 45);
    cr_assert_eq(dst.info[1].h, 30);
    cr_assert_eq(dst.info[1].w, 40);
    cr_assert_eq(dst.h, 32);
    cr_assert_eq(dst.w, 64);
    cr_assert(dst.info[1].flipped && dst.info[1].orig_w == 120);
    cr_assert_float_eq(dst.boxes[0][0].x2, 25.0f, 1e-5f);
    cr_assert_eq(dst.n_boxes[1], 2);
    cr_assert(dst.boxes[1][0].crowd);
    /* a constant image stays constant inside its region, zero outside */
    for (int i = 0; i < 2 * 3 * 64 * 96; i++) src.images[i] = 0.25f;
    cr_assert_eq(mn_det_batch_resize(&dst, &src, &a, 90), 0);
    cr_assert_eq(dst.h, 96);
    cr_assert_eq(dst.w, 160);
    cr_assert_float_eq(dst.images[0], 0.25f, 1e-6f);
    cr_assert_float_eq(dst.images[89 * 160 + 134], 0.25f, 1e-6f);
    cr_assert_eq(dst.images[89 * 160 + 135], 0.0f);
    cr_assert_eq(dst.images[90 * 160], 0.0f);
    mn_det_batch_free(&dst);
    free(src.images);
}

/* ---- FLOPs ---- */

static mn_detector *make_det(mn_det_config *c, mn_param_set *ps, int classes, bool slim_head)
{
    mn_det_config_default(c, classes);
    c->slim_head = slim_head;
    mn_param_set_init(ps);
    mn_rng rng;
    mn_rng_seed(&rng, 7);
    mn_detector *d;
    cr_assert_eq(mn_det_create(&d, c, ps, &rng), 0, "%s", mn_last_error());
    return d;
}

/* P2..P6 of a 128 x 96 input (P6: kernel-1 stride-2 pooling of 4 x 3) */
static const int64_t FH[MN_DET_LEVELS] = {32, 16, 8, 4, 2}, FW[MN_DET_LEVELS] = {24, 12, 6, 3, 2};

/* Neck, RPN and box head MACs of the default detector (6 classes) by hand at 128 x 96. */
static void hand_flops(float w, bool slim, const int *cin, int64_t *neck, int64_t *rpn, int64_t *roi)
{
    int64_t C = slim ? mn_slim_channels(256, w, 1.0f) : 256, H = slim ? mn_slim_channels(1024, w, 1.0f) : 1024;
    *neck = *rpn = 0;
    for (int l = 0; l < 4; l++) *neck += FH[l] * FW[l] * C * (cin[l] + 9 * C); /* lateral 1x1, output 3x3 */
    for (int l = 0; l < MN_DET_LEVELS; l++) *rpn += FH[l] * FW[l] * (9 * C * C + C * 3 + C * 12); /* conv, cls, box */
    *roi = 1000 * (C * 49 * H + H * H + H * 6 + H * 24); /* fc6, fc7, cls, box on 1000 RoIs */
}

Test(flops, by_hand_and_width_scaling)
{
    mn_det_config c;
    mn_param_set ps;
    mn_detector *d = make_det(&c, &ps, 6, true);
    mn_det_flops_parts p10, p05;
    cr_assert_eq(mn_det_flops_parts_at(d, 1.0f, 128, 96, &p10), 0, "%s", mn_last_error());
    cr_assert_eq(mn_det_flops_parts_at(d, 0.5f, 128, 96, &p05), 0, "%s", mn_last_error());
    int cin10[4], cin05[4];
    static const int base[4] = {24, 32, 96, 320};
    for (int l = 0; l < 4; l++) {
        cin10[l] = base[l];
        cin05[l] = mn_slim_channels(base[l], 0.5f, 1.0f);
    }
    int64_t neck, rpn, roi;
    hand_flops(1.0f, true, cin10, &neck, &rpn, &roi);
    cr_assert_eq(p10.neck, neck);
    cr_assert_eq(p10.rpn, rpn);
    cr_assert_eq(p10.roi, roi);
    hand_flops(0.5f, true, cin05, &neck, &rpn, &roi);
    cr_assert_eq(p05.neck, neck);
    cr_assert_eq(p05.rpn, rpn);
    cr_assert_eq(p05.roi, roi);
    /* the backbone part is the backbone's own FLOPs code */
    mn_param_set bps;
    mn_param_set_init(&bps);
    mn_rng rng;
    mn_rng_seed(&rng, 1);
    mn_backbone *bb;
    mn_backbone_config bc = {MN_ARCH_MOBILENET_V2, 0, 32};
    cr_assert_eq(mn_backbone_create(&bb, &bc, &bps, "", &rng), 0);
    int64_t bm10, bm05;
    cr_assert_eq(mn_backbone_flops(bb, 1.0f, 128, 96, false, &bm10, NULL), 0);
    cr_assert_eq(mn_backbone_flops(bb, 0.5f, 128, 96, false, &bm05, NULL), 0);
    cr_assert_eq(p10.backbone, bm10);
    cr_assert_eq(p05.backbone, bm05);
    int64_t m10, m05, par10, par05;
    cr_assert_eq(mn_det_flops(d, 1.0f, 128, 96, &m10, &par10), 0);
    cr_assert_eq(mn_det_flops(d, 0.5f, 128, 96, &m05, &par05), 0);
    cr_assert_eq(m10, p10.backbone + p10.neck + p10.rpn + p10.roi);
    cr_assert(m05 < 0.35 * (double)m10, "width 0.5 costs %.2f G MACs, width 1 %.2f G", m05 / 1e9, m10 / 1e9);
    cr_assert(par05 < par10 && par10 < mn_param_count(&ps), "parameters used: %lld at 0.5, %lld at 1, %lld stored",
              (long long)par05, (long long)par10, (long long)mn_param_count(&ps));
    mn_backbone_free(bb);
    mn_param_set_free(&bps);
    mn_det_free(d);
    mn_param_set_free(&ps);

    /* full-width neck and heads: only the backbone and the laterals' input channels change */
    d = make_det(&c, &ps, 6, false);
    cr_assert_eq(mn_det_flops_parts_at(d, 1.0f, 128, 96, &p10), 0);
    cr_assert_eq(mn_det_flops_parts_at(d, 0.5f, 128, 96, &p05), 0);
    cr_assert_eq(mn_det_flops(d, 1.0f, 128, 96, &m10, NULL), 0);
    cr_assert_eq(mn_det_flops(d, 0.5f, 128, 96, &m05, NULL), 0);
    cr_assert_eq(p10.rpn, p05.rpn);
    cr_assert_eq(p10.roi, p05.roi);
    int64_t lateral = 0;
    for (int l = 0; l < 4; l++) lateral += FH[l] * FW[l] * 256 * (cin10[l] - cin05[l]);
    cr_assert_eq(p10.neck - p05.neck, lateral);
    cr_assert_eq(m10 - m05, (bm10 - bm05) + lateral, "the total moves by the backbone's difference plus the laterals'");
    hand_flops(0.5f, false, cin05, &neck, &rpn, &roi);
    cr_assert_eq(p05.neck, neck);
    cr_assert_eq(p05.roi, roi);
    mn_det_free(d);
    mn_param_set_free(&ps);
}

/* ---- whole passes ---- */

/* Two hashed 64 x 64 images with a few boxes (one crowd). */
static void small_batch(mn_tape *t, mn_var **x, mn_det_image *info, mn_det_targets *tg, mn_box *boxes, int h, int w)
{
    int64_t xs[4] = {2, 3, h, w};
    *x = mn_var_new(t, 4, xs);
    for (int64_t k = 0; k < 2 * 3 * h * w; k++) (*x)->val.data[k] = (float)tc_hash_uniform(55, k);
    float s = (float)h / 64.0f;
    mn_box src[4] = {{4, 6, 40, 30, 1, false}, {30, 20, 62, 63, 2, false}, {10, 10, 30, 20, 3, true},
                     {8, 8, 50, 56, 3, false}};
    for (int i = 0; i < 4; i++) {
        boxes[i] = src[i];
        boxes[i].x1 *= s;
        boxes[i].x2 *= s;
        boxes[i].y1 *= s;
        boxes[i].y2 *= s;
    }
    info[0] = (mn_det_image){h, w, s, false, 64, 64, 0};
    info[1] = (mn_det_image){h, w - (w > 32 ? 16 : 0), s, false, 64, 64, 1};
    tg[0] = (mn_det_targets){boxes, 3};
    tg[1] = (mn_det_targets){boxes + 3, 1};
}

static mn_detector *tiny_det(mn_param_set *ps, int classes)
{
    mn_det_config c;
    mn_det_config_default(&c, classes);
    c.fpn_channels = 32;
    c.box_hidden = 64;
    c.roi_batch = 64;
    mn_param_set_init(ps);
    mn_rng rng;
    mn_rng_seed(&rng, 11);
    mn_detector *d;
    cr_assert_eq(mn_det_create(&d, &c, ps, &rng), 0, "%s", mn_last_error());
    return d;
}

Test(det, distillation_and_errors)
{
    mn_param_set ps;
    mn_detector *d = tiny_det(&ps, 4);
    mn_slim_bn **bns;
    /* MobileNetV2's: stem, 2 in the first block, 3 in each of the other 16 (neck and heads have none) */
    cr_assert_eq(mn_det_bn_layers(d, &bns), 1 + 2 + 16 * 3);
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_var *x;
    mn_det_image info[2];
    mn_det_targets tg[2];
    mn_box boxes[4];
    small_batch(&t, &x, info, tg, boxes, 64, 64);
    mn_rng rng;
    mn_rng_seed(&rng, 2);
    mn_run r = {.tape = &t, .width = 1.0f, .training = true};
    mn_det_teacher *teacher = mn_det_teacher_new();
    mn_det_losses L;
    cr_assert_eq(mn_det_forward_train(d, &r, x, info, tg, &rng, teacher, NULL, 0.0f, &L), 0, "%s", mn_last_error());
    cr_assert_null(L.distill);
    float sum = L.rpn_cls->val.data[0] + L.rpn_box->val.data[0] + L.cls->val.data[0] + L.box->val.data[0];
    cr_assert_float_eq(L.total->val.data[0], sum, 1e-5f);
    cr_assert(L.cls->val.data[0] > 0 && isfinite(L.total->val.data[0]));
    int n_rois = mn_det_teacher_rois(teacher);
    cr_assert(n_rois > 3 && n_rois <= 2 * 64, "%d teacher RoIs", n_rois);
    mn_param_zero_grad(&ps);
    cr_assert_eq(mn_backward(&t, L.total), 0, "%s", mn_last_error());

    /* the same network as its own student: KL is 0 and the objectness term is the teacher's
     * binary entropy, so distill = mean H(sigmoid(objectness)) */
    mn_tape_reset(&t);
    small_batch(&t, &x, info, tg, boxes, 64, 64);
    mn_var *p[MN_DET_LEVELS], *obj[MN_DET_LEVELS], *delta[MN_DET_LEVELS];
    mn_tape_set_grad(&t, false);
    cr_assert_eq(det_features(d, &r, x, p), 0);
    cr_assert_eq(det_rpn_forward(d, &r, p, obj, delta), 0);
    double ent = 0;
    int64_t cnt = 0;
    for (int l = 0; l < MN_DET_LEVELS; l++)
        for (int64_t i = 0; i < mn_tensor_numel(&obj[l]->val); i++, cnt++) {
            double q = 1.0 / (1.0 + exp(-(double)obj[l]->val.data[i]));
            ent -= q * log(q) + (1 - q) * log(1 - q);
        }
    ent /= (double)cnt;
    mn_tape_reset(&t);
    mn_tape_set_grad(&t, true);
    small_batch(&t, &x, info, tg, boxes, 64, 64);
    cr_assert_eq(mn_det_forward_train(d, &r, x, info, tg, &rng, NULL, teacher, 2.0f, &L), 0, "%s", mn_last_error());
    cr_assert_not_null(L.distill);
    cr_assert_float_eq(L.distill->val.data[0], (float)ent, 2e-4f, "distill %g, entropy %g", L.distill->val.data[0],
                       ent);
    sum = L.rpn_cls->val.data[0] + L.rpn_box->val.data[0] + L.cls->val.data[0] + L.box->val.data[0];
    cr_assert_float_eq(L.total->val.data[0], sum + 2.0f * L.distill->val.data[0], 1e-4f);
    cr_assert_eq(mn_backward(&t, L.total), 0, "%s", mn_last_error());

    /* a narrower student at half the resolution: RoI KL only (grids differ), positive */
    mn_tape_reset(&t);
    small_batch(&t, &x, info, tg, boxes, 32, 32);
    r.width = 0.5f;
    cr_assert_eq(mn_det_forward_train(d, &r, x, info, tg, &rng, NULL, teacher, 1.0f, &L), 0, "%s", mn_last_error());
    cr_assert(L.distill->val.data[0] > 1e-4f && isfinite(L.distill->val.data[0]), "KL %g", L.distill->val.data[0]);
    cr_assert_eq(mn_backward(&t, L.total), 0, "%s", mn_last_error());

    /* inference: detections in original pixels, valid labels, sorted by score */
    mn_tape_reset(&t);
    small_batch(&t, &x, info, tg, boxes, 64, 64);
    r = (mn_run){.tape = &t, .width = 0.75f, .training = false};
    mn_detection *dets[2];
    int nd[2];
    cr_assert_eq(mn_det_forward_test(d, &r, x, info, dets, nd), 0, "%s", mn_last_error());
    cr_assert(t.grad_enabled, "recording restored");
    for (int i = 0; i < 2; i++) {
        cr_assert(nd[i] <= 100);
        for (int j = 0; j < nd[i]; j++) {
            mn_detection *e = &dets[i][j];
            cr_assert(e->label >= 1 && e->label < 4 && e->score > 0.05f && e->score <= 1.0f);
            cr_assert(e->x1 >= 0 && e->x2 <= 64.0f + 1e-3f && e->y2 <= 64.0f + 1e-3f && e->x1 <= e->x2);
            if (j) cr_assert(e->score <= dets[i][j - 1].score);
        }
        free(dets[i]);
    }

    /* bad input: a label out of range, a shape not a multiple of 32, a teacher of another batch */
    mn_tape_reset(&t);
    small_batch(&t, &x, info, tg, boxes, 64, 64);
    r = (mn_run){.tape = &t, .width = 1.0f, .training = true};
    boxes[0].label = 4;
    cr_assert_eq(mn_det_forward_train(d, &r, x, info, tg, &rng, NULL, NULL, 0.0f, &L), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "label 4"), "%s", mn_last_error());
    boxes[0].label = 1;
    int64_t bad[4] = {2, 3, 48, 64};
    mn_var *xb = mn_var_new(&t, 4, bad);
    cr_assert_eq(mn_det_forward_train(d, &r, xb, info, tg, &rng, NULL, NULL, 0.0f, &L), MN_ESHAPE);
    int64_t one[4] = {1, 3, 64, 64};
    mn_var *x1 = mn_var_new(&t, 4, one);
    mn_tensor_fill(&x1->val, 0.1f);
    cr_assert_eq(mn_det_forward_train(d, &r, x1, info, tg, &rng, NULL, teacher, 1.0f, &L), MN_EINVAL);
    mn_det_teacher_free(teacher);
    mn_tape_free(&t);
    mn_det_free(d);
    mn_param_set_free(&ps);
}

/* ---- end to end ---- */

Test(e2e, loss_falls_on_synthetic_shapes)
{
    enum { IMAGES = 16, SIDE = 128, BATCH = 2, ITERS = 60 };
    mn_synth_config sc;
    mn_synth_config_default(&sc);
    sc.n_images = IMAGES;
    sc.width = sc.height = SIDE;
    sc.max_objects = 3;
    sc.seed = 4;
    float *images = malloc(sizeof(float) * IMAGES * 3 * SIDE * SIDE);
    mn_box boxes[IMAGES][MN_SYNTH_MAX_OBJECTS];
    int nb[IMAGES];
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int i = 0; i < IMAGES; i++) {
        mn_synth_sample s;
        cr_assert_eq(mn_synth_render(&sc, i, &s), 0, "%s", mn_last_error());
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < SIDE * SIDE; k++)
                images[(i * 3 + c) * SIDE * SIDE + k] = ((float)s.image.data[3 * k + c] / 255.0f - mean[c]) / std[c];
        nb[i] = s.n_objects;
        for (int j = 0; j < s.n_objects; j++) {
            const double *b = s.objects[j].bbox;
            boxes[i][j] = (mn_box){(float)b[0], (float)b[1], (float)(b[0] + b[2]), (float)(b[1] + b[3]),
                                   s.objects[j].label, false};
        }
        mn_synth_sample_free(&s);
    }
    mn_det_config c;
    mn_det_config_default(&c, sc.n_classes + 1);
    c.fpn_channels = 64;
    c.box_hidden = 128;
    c.roi_batch = 128;
    c.rpn_pre_nms_train = 600;
    c.rpn_post_nms_train = 300;
    mn_param_set ps;
    mn_param_set_init(&ps);
    mn_rng rng;
    mn_rng_seed(&rng, 21);
    mn_detector *d;
    cr_assert_eq(mn_det_create(&d, &c, &ps, &rng), 0, "%s", mn_last_error());
    mn_sgd opt;
    mn_sgd_config oc = {.lr = 0.02f, .momentum = 0.9f, .weight_decay = 1e-4f};
    cr_assert_eq(mn_sgd_init(&opt, &ps, &oc), 0, "%s", mn_last_error());
    mn_tape t;
    mn_tape_init(&t, 0);
    float loss[ITERS];
    for (int it = 0; it < ITERS; it++) {
        int first = (it * BATCH) % IMAGES;
        int64_t xs[4] = {BATCH, 3, SIDE, SIDE};
        mn_var *x = mn_var_wrap(&t, mn_tensor_view(images + (size_t)first * 3 * SIDE * SIDE, 4, xs));
        mn_det_image info[BATCH];
        mn_det_targets tg[BATCH];
        for (int b = 0; b < BATCH; b++) {
            info[b] = (mn_det_image){SIDE, SIDE, 1.0f, false, SIDE, SIDE, b};
            tg[b] = (mn_det_targets){boxes[first + b], nb[first + b]};
        }
        mn_run r = {.tape = &t, .width = 0.75f, .training = true, .bn_momentum = 0.1f};
        mn_det_losses L;
        mn_param_zero_grad(&ps);
        cr_assert_eq(mn_det_forward_train(d, &r, x, info, tg, &rng, NULL, NULL, 0.0f, &L), 0, "%s", mn_last_error());
        loss[it] = L.total->val.data[0];
        cr_assert(isfinite(loss[it]), "iteration %d: loss %g", it, loss[it]);
        cr_assert_eq(mn_backward(&t, L.total), 0, "%s", mn_last_error());
        float lr = it < 10 ? 0.02f * (float)(it + 1) / 10.0f : 0.02f; /* short warm-up */
        cr_assert_eq(mn_sgd_step(&opt, lr), 0);
        mn_tape_reset(&t);
    }
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) {
        first += loss[i] / 10.0;
        last += loss[ITERS - 10 + i] / 10.0;
    }
    cr_log_info("detector loss: first 10 %.4f, last 10 %.4f", first, last);
    cr_assert(last < 0.7 * first, "loss fell from %.4f to %.4f only", first, last);
    mn_sgd_free(&opt);
    mn_tape_free(&t);
    mn_det_free(d);
    mn_param_set_free(&ps);
    free(images);
}

/* ---- the detection loader ---- */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Every batch of an epoch, copied (images, info, boxes) for comparison. */
typedef struct epoch_copy {
    int n_batches;
    mn_det_batch b[8];
} epoch_copy;

static void read_epoch(mn_dataset *ds, const mn_det_aug *a, int workers, epoch_copy *out)
{
    mn_loader_options o = {.batch_size = 3, .shuffle = true, .workers = workers, .prefetch = 2, .seed = 5};
    mn_loader *l;
    cr_assert_eq(mn_loader_open_det(&l, ds, a, &o), 0, "%s", mn_last_error());
    cr_assert_eq(mn_loader_start(l, 1, 0), 0);
    const mn_seg_batch *sb;
    cr_assert_eq(mn_loader_next(l, &sb), MN_EINVAL, "a detection loader refuses mn_loader_next");
    memset(out, 0, sizeof *out);
    const mn_det_batch *b;
    while (mn_loader_next_det(l, &b) == 0 && b) {
        cr_assert(out->n_batches < 8);
        mn_det_batch *c = &out->b[out->n_batches++];
        *c = *b;
        size_t nf = (size_t)b->n * 3 * (size_t)b->h * (size_t)b->w;
        c->images = malloc(sizeof(float) * nf);
        memcpy(c->images, b->images, sizeof(float) * nf);
        for (int i = 0; i < b->n; i++) {
            c->boxes[i] = malloc(sizeof(mn_box) * (size_t)(b->n_boxes[i] + 1));
            if (b->n_boxes[i]) memcpy(c->boxes[i], b->boxes[i], sizeof(mn_box) * (size_t)b->n_boxes[i]);
        }
    }
    cr_assert_eq(out->n_batches, mn_loader_batches_per_epoch(l), "%s", mn_last_error());
    mn_loader_close(l);
}

Test(loader, detection_batches_deterministic_and_padded)
{
    char dir[] = "/tmp/mn_test_det_XXXXXX";
    cr_assert(mkdtemp(dir));
    mn_synth_config sc;
    mn_synth_config_default(&sc);
    sc.out_dir = dir;
    sc.n_images = 12;
    sc.width = 96;
    sc.height = 80;
    sc.max_objects = 3;
    sc.png = true;
    sc.force = true;
    cr_assert_eq(mn_synth_generate(&sc, NULL), 0, "%s", mn_last_error());
    mn_dataset_options dopt = {.kind = "coco", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *ds;
    cr_assert_eq(mn_dataset_open(&ds, &dopt), 0, "%s", mn_last_error());
    int n_items = mn_dataset_size(ds);
    cr_assert_eq(n_items, 10);
    mn_det_aug a;
    mn_det_aug_default(&a, 64, 100, true);
    epoch_copy e0, e2;
    read_epoch(ds, &a, 0, &e0);
    read_epoch(ds, &a, 2, &e2);
    cr_assert_eq(e0.n_batches, 4);
    int seen = 0, empty = 0, flipped = 0;
    for (int k = 0; k < e0.n_batches; k++) {
        mn_det_batch *b = &e0.b[k], *c = &e2.b[k];
        cr_assert(b->h % 32 == 0 && b->w % 32 == 0 && b->h >= 64, "padded %dx%d", b->w, b->h);
        cr_assert(b->n == c->n && b->h == c->h && b->w == c->w, "same batches with and without workers");
        cr_assert_eq(memcmp(b->images, c->images, sizeof(float) * (size_t)b->n * 3 * b->h * b->w), 0);
        for (int i = 0; i < b->n; i++, seen++) {
            const mn_det_image *in = &b->info[i];
            /* 96 x 80 at short side 64: scale 0.8, 76 x 64 */
            cr_assert(in->h == 64 && in->w == 76 && in->orig_h == 80 && in->orig_w == 96, "%dx%d", in->w, in->h);
            cr_assert_eq(b->n_boxes[i], c->n_boxes[i]);
            cr_assert(in->flipped == c->info[i].flipped);
            flipped += in->flipped;
            empty += b->n_boxes[i] == 0;
            for (int j = 0; j < b->n_boxes[i]; j++) {
                const mn_box *p = &b->boxes[i][j], *q = &c->boxes[i][j]; /* field by field: padding bytes differ */
                cr_assert(p->x1 == q->x1 && p->y1 == q->y1 && p->x2 == q->x2 && p->y2 == q->y2 &&
                          p->label == q->label && p->crowd == q->crowd);
            }
            mn_sample smp;
            cr_assert_eq(mn_dataset_get(ds, b->index[i], &smp), 0);
            cr_assert_eq(smp.image_id, b->image_id[i]);
            cr_assert(b->n_boxes[i] <= smp.n_boxes);
            for (int j = 0; j < b->n_boxes[i] && b->n_boxes[i] == smp.n_boxes; j++) {
                mn_box e = smp.boxes[j], g = b->boxes[i][j];
                float x1 = in->flipped ? 96.0f - e.x2 : e.x1;
                cr_assert_float_eq(g.x1, x1 * (76.0f / 96.0f), 1e-3f, "box x1 follows scale and flip");
                cr_assert_float_eq(g.y2, e.y2 * 0.8f, 1e-3f);
                cr_assert_eq(g.label, e.label);
            }
            /* padding is zero */
            const float *plane = b->images + (size_t)i * 3 * b->h * b->w;
            cr_assert_eq(plane[(size_t)(b->h - 1) * b->w + b->w - 1], 0.0f);
            mn_sample_free(&smp);
        }
        for (int i = 0; i < b->n; i++) {
            free(b->boxes[i]);
            free(c->boxes[i]);
        }
        free(b->images);
        free(c->images);
    }
    cr_assert_eq(seen, n_items);
    cr_assert_eq(empty, 1, "the split's 10th image has no objects and stays in");
    cr_assert(flipped > 0 && flipped < n_items, "%d of %d flipped", flipped, n_items);
    /* a segmentation loader refuses the detection call */
    mn_seg_aug sa;
    mn_seg_aug_default(&sa, 64, 64, false);
    mn_loader_options o = {.batch_size = 2};
    mn_loader *l;
    cr_assert_eq(mn_loader_open(&l, ds, &sa, &o), 0, "%s", mn_last_error());
    cr_assert_eq(mn_loader_start(l, 0, 0), 0);
    const mn_det_batch *db;
    cr_assert_eq(mn_loader_next_det(l, &db), MN_EINVAL);
    mn_loader_close(l);
    mn_dataset_close(ds);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
