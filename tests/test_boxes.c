/* Box arithmetic against torchvision (tools/fixtures/gen_boxes.py): IoU, clipping, small boxes,
 * NMS and batched NMS, the box coder, anchors and the matcher; fast NMS and top-k against their
 * reference twins; degenerate inputs; sampler counts and membership with fixed seeds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/boxes.h"
#include "mn/rng.h"

static mn_safetensors fx;

static void load(void) { tc_fixture("boxes", &fx); }
static void unload(void) { mn_st_free(&fx); }

TestSuite(boxes, .init = load, .fini = unload);

/* The int32 tensor `name` of the fixture as a malloc'd int array; *n gets its length. */
static int *get_i32(const char *name, int *n)
{
    const mn_st_entry *e = mn_st_find(&fx, name);
    cr_assert(e, "fixture tensor %s missing", name);
    cr_assert_eq(e->dtype, MN_ST_I32, "%s is not int32", name);
    int len = (int)(e->nbytes / 4);
    int *v = malloc(sizeof *v * (size_t)(len ? len : 1));
    for (int i = 0; i < len; i++) {
        int32_t x;
        memcpy(&x, (const char *)e->data + 4 * (size_t)i, 4);
        v[i] = x;
    }
    *n = len;
    return v;
}

static void expect_same_ints(const int *got, int n_got, const int *want, int n_want, const char *what)
{
    cr_assert_eq(n_got, n_want, "%s: %d indices, expected %d", what, n_got, n_want);
    for (int i = 0; i < n_want; i++)
        cr_assert_eq(got[i], want[i], "%s: element %d is %d, expected %d", what, i, got[i], want[i]);
}

/* ---- IoU, clip, small, crowd ---- */

Test(boxes, iou_vs_torchvision)
{
    mn_tensor a = tc_get(&fx, "iou.a"), b = tc_get(&fx, "iou.b"), y = tc_get(&fx, "iou.y");
    float iou[12 * 20];
    mn_box_iou(iou, a.data, 12, b.data, 20);
    tc_expect_close(iou, y.data, 12 * 20, 1e-6f, 1e-5f, "box_iou");
    cr_assert_eq(iou[5 * 20 + 3], 1.0f, "identical boxes: IoU %g", (double)iou[5 * 20 + 3]);
    cr_assert_eq(iou[2 * 20 + 7], 0.0f, "touching boxes: IoU %g", (double)iou[2 * 20 + 7]);
}

Test(boxes, iou_degenerate)
{
    /* two zero-area boxes (torchvision: NaN), a zero-area box inside a real one, an empty set */
    float a[8] = {5, 5, 5, 5, 0, 0, 4, 4};
    float b[8] = {5, 5, 5, 5, 1, 1, 1, 3};
    float iou[4] = {-1, -1, -1, -1};
    mn_box_iou(iou, a, 2, b, 2);
    cr_assert_eq(iou[0], 0.0f, "empty vs empty: %g", (double)iou[0]);
    cr_assert_eq(iou[1], 0.0f, "disjoint: %g", (double)iou[1]);
    cr_assert_eq(iou[3], 0.0f, "zero-width inside: %g", (double)iou[3]);
    float sentinel = 7.0f;
    mn_box_iou(&sentinel, a, 2, b, 0);
    mn_box_iou(&sentinel, a, 0, b, 2);
    cr_assert_eq(sentinel, 7.0f, "an empty set must write nothing");
}

Test(boxes, clip_vs_torchvision)
{
    mn_tensor x = tc_get(&fx, "clip.boxes"), y = tc_get(&fx, "clip.y");
    float b[30 * 4];
    memcpy(b, x.data, sizeof b);
    mn_boxes_clip(b, 30, 80, 120);
    tc_expect_close(b, y.data, 120, 0, 0, "clip_boxes_to_image");
    int changed = 0;
    for (int i = 0; i < 120; i++) changed += b[i] != x.data[i];
    cr_assert_gt(changed, 20, "the fixture should clip many coordinates (%d did change)", changed);
}

Test(boxes, remove_small_vs_torchvision)
{
    mn_tensor x = tc_get(&fx, "small.boxes");
    int keep[40], nw;
    int k = mn_boxes_remove_small(keep, x.data, 40, 2.0f);
    int *want = get_i32("small.keep2", &nw);
    expect_same_ints(keep, k, want, nw, "remove_small_boxes(2)");
    free(want);
    k = mn_boxes_remove_small(keep, x.data, 40, 1e-3f);
    want = get_i32("small.keep1e-3", &nw);
    expect_same_ints(keep, k, want, nw, "remove_small_boxes(1e-3)");
    free(want);
    cr_assert_eq(mn_boxes_remove_small(keep, x.data, 0, 1.0f), 0);
    cr_assert_eq(mn_boxes_remove_small(keep, x.data, -1, 1.0f), MN_EINVAL);
}

Test(boxes, drop_crowd_keeps_order_and_aliases)
{
    float boxes[5 * 4] = {0, 0, 10, 10, 1, 1, 5, 5, 2, 2, 2, 8, 3, 3, 9, 9, 4, 4, 6, 3};
    int labels[5] = {1, 2, 3, 4, 5};
    bool crowd[5] = {false, true, false, false, false};
    int index[5];
    /* in place: outputs alias the inputs */
    int k = mn_boxes_drop_crowd(boxes, labels, index, boxes, labels, crowd, 5);
    cr_assert_eq(k, 2, "crowd box 1, zero-width box 2, inverted box 4 go: kept %d", k);
    cr_assert(index[0] == 0 && index[1] == 3 && labels[0] == 1 && labels[1] == 4);
    float want[8] = {0, 0, 10, 10, 3, 3, 9, 9};
    tc_expect_close(boxes, want, 8, 0, 0, "kept boxes");
    float b2[8] = {0, 0, 1, 1, 0, 0, 2, 2};
    cr_assert_eq(mn_boxes_drop_crowd(b2, NULL, NULL, b2, NULL, NULL, 2), 2, "no crowd flags: all kept");
}

/* ---- NMS ---- */

typedef int (*nms_fn)(int *, const float *, const float *, int, double, int);
typedef int (*bnms_fn)(int *, const float *, const float *, const int *, int, double, int);

static void check_nms(nms_fn f, const char *fname)
{
    mn_tensor b = tc_get(&fx, "nms.boxes"), s = tc_get(&fx, "nms.scores");
    int keep[300];
    const double thr[3] = {0.3, 0.5, 0.7};
    const char *names[3] = {"nms.keep0.3", "nms.keep0.5", "nms.keep0.7"};
    for (int t = 0; t < 3; t++) {
        int nw, k = f(keep, b.data, s.data, 300, thr[t], 0);
        int *want = get_i32(names[t], &nw);
        char what[64];
        snprintf(what, sizeof what, "%s %s", fname, names[t]);
        expect_same_ints(keep, k, want, nw, what);
        free(want);
    }
    /* tied scores: torchvision run on the stable order */
    int nw, k = f(keep, b.data, tc_get(&fx, "nms.tie_scores").data, 300, 0.5, 0);
    int *want = get_i32("nms.tie_keep0.5", &nw);
    expect_same_ints(keep, k, want, nw, fname);
    free(want);
    /* an IoU of float(0.3) is above the double 0.3 but not above float(0.3) */
    mn_tensor eb = tc_get(&fx, "nms.edge.boxes");
    float es[2] = {1.0f, 0.5f};
    k = f(keep, eb.data, es, 2, 0.3, 0);
    want = get_i32("nms.edge.keep0.3", &nw);
    expect_same_ints(keep, k, want, nw, "IoU 0.3f vs threshold 0.3");
    free(want);
    k = f(keep, eb.data, es, 2, (double)0.3f, 0);
    want = get_i32("nms.edge.keep0.3f", &nw);
    expect_same_ints(keep, k, want, nw, "IoU 0.3f vs threshold 0.3f");
    free(want);
}

Test(boxes, nms_vs_torchvision) { check_nms(mn_nms, "mn_nms"); }
Test(boxes, nms_ref_vs_torchvision) { check_nms(mn_nms_ref, "mn_nms_ref"); }

static void check_bnms(bnms_fn f, const char *fname)
{
    const char *sets[2] = {"small", "large"};
    const int ns[2] = {400, 1200};
    const double thr[2] = {0.5, 0.6};
    for (int c = 0; c < 2; c++) {
        char name[64];
        snprintf(name, sizeof name, "bnms.%s.boxes", sets[c]);
        mn_tensor b = tc_get(&fx, name);
        snprintf(name, sizeof name, "bnms.%s.scores", sets[c]);
        mn_tensor s = tc_get(&fx, name);
        int ncls, nw;
        snprintf(name, sizeof name, "bnms.%s.classes", sets[c]);
        int *cls = get_i32(name, &ncls);
        snprintf(name, sizeof name, "bnms.%s.keep", sets[c]);
        int *want = get_i32(name, &nw);
        int *keep = malloc(sizeof *keep * (size_t)ns[c]);
        int k = f(keep, b.data, s.data, cls, ns[c], thr[c], 0);
        snprintf(name, sizeof name, "%s %s", fname, sets[c]);
        expect_same_ints(keep, k, want, nw, name);
        /* max_keep is the same as truncating */
        k = f(keep, b.data, s.data, cls, ns[c], thr[c], 37);
        expect_same_ints(keep, k, want, 37, name);
        free(keep);
        free(want);
        free(cls);
    }
}

Test(boxes, batched_nms_vs_torchvision) { check_bnms(mn_batched_nms, "mn_batched_nms"); }
Test(boxes, batched_nms_ref_vs_torchvision) { check_bnms(mn_batched_nms_ref, "mn_batched_nms_ref"); }

/* n boxes around a few centres with scores from 16 levels (many ties). */
static void random_scene(float *boxes, float *scores, int *cls, int n, uint64_t seed)
{
    mn_rng r;
    mn_rng_seed(&r, seed);
    float cx[20], cy[20];
    for (int c = 0; c < 20; c++) {
        cx[c] = mn_rng_range(&r, 0, 600);
        cy[c] = mn_rng_range(&r, 0, 400);
    }
    for (int i = 0; i < n; i++) {
        int c = mn_rng_int(&r, 0, 19);
        float x = cx[c] + 15 * mn_rng_normal(&r), y = cy[c] + 15 * mn_rng_normal(&r);
        float w = mn_rng_range(&r, 8, 80), h = mn_rng_range(&r, 8, 80);
        float *b = boxes + 4 * i;
        b[0] = x - w / 2;
        b[1] = y - h / 2;
        b[2] = x + w / 2;
        b[3] = y + h / 2;
        scores[i] = (float)mn_rng_int(&r, 0, 15) / 16.0f;
        if (cls) cls[i] = mn_rng_int(&r, -3, 6);
    }
    /* exact duplicates and a zero-area box */
    memcpy(boxes + 4 * 10, boxes + 4 * 3, 4 * sizeof(float));
    scores[10] = scores[3];
    boxes[4 * 11 + 2] = boxes[4 * 11];
}

Test(boxes, nms_fast_vs_ref_2000_ties)
{
    enum { N = 2000 };
    float *b = malloc(sizeof(float) * 4 * N), *s = malloc(sizeof(float) * N);
    int *cls = malloc(sizeof(int) * N), *k1 = malloc(sizeof(int) * N), *k2 = malloc(sizeof(int) * N);
    const double thr[6] = {0.0, 0.3, 0.5, 0.7, 0.95, 1.0};
    const int caps[3] = {0, 1, 150};
    for (uint64_t seed = 1; seed <= 3; seed++) {
        random_scene(b, s, cls, N, seed);
        for (int t = 0; t < 6; t++)
            for (int c = 0; c < 3; c++) {
                char what[96];
                int n1 = mn_nms(k1, b, s, N, thr[t], caps[c]), n2 = mn_nms_ref(k2, b, s, N, thr[t], caps[c]);
                snprintf(what, sizeof what, "nms seed %d thr %g cap %d", (int)seed, thr[t], caps[c]);
                cr_assert_gt(n2, 0);
                expect_same_ints(k1, n1, k2, n2, what);
                n1 = mn_batched_nms(k1, b, s, cls, N, thr[t], caps[c]);
                n2 = mn_batched_nms_ref(k2, b, s, cls, N, thr[t], caps[c]);
                snprintf(what, sizeof what, "batched nms seed %d thr %g cap %d", (int)seed, thr[t], caps[c]);
                expect_same_ints(k1, n1, k2, n2, what);
            }
        /* the reference keeps score order, ties by index */
        int n2 = mn_nms_ref(k2, b, s, N, 0.5, 0);
        cr_assert(n2 > 50 && n2 < N, "threshold 0.5 should suppress some but not all (kept %d)", n2);
        for (int i = 1; i < n2; i++)
            cr_assert(s[k2[i - 1]] > s[k2[i]] || (s[k2[i - 1]] == s[k2[i]] && k2[i - 1] < k2[i]),
                      "kept %d and %d out of order", k2[i - 1], k2[i]);
    }
    free(b);
    free(s);
    free(cls);
    free(k1);
    free(k2);
}

Test(boxes, nms_degenerate)
{
    int keep[8];
    float s5[5] = {0.2f, 0.9f, 0.9f, 0.1f, 0.5f};
    /* no boxes */
    cr_assert_eq(mn_nms(keep, NULL, NULL, 0, 0.5, 0), 0);
    cr_assert_eq(mn_nms_ref(keep, NULL, NULL, 0, 0.5, 0), 0);
    cr_assert_eq(mn_batched_nms(keep, NULL, NULL, NULL, 0, 0.5, 0), 0);
    /* five identical boxes: only the best survives, the lower index of the tied best */
    float same[20];
    for (int i = 0; i < 5; i++) memcpy(same + 4 * i, (float[4]){1, 2, 11, 12}, sizeof(float) * 4);
    for (int f = 0; f < 2; f++) {
        int k = (f ? mn_nms_ref : mn_nms)(keep, same, s5, 5, 0.5, 0);
        cr_assert(k == 1 && keep[0] == 1, "identical boxes: kept %d, first %d", k, keep[0]);
        /* IoU 1 is not above threshold 1: nothing is suppressed, all come out in score order */
        k = (f ? mn_nms_ref : mn_nms)(keep, same, s5, 5, 1.0, 0);
        int want[5] = {1, 2, 4, 0, 3};
        expect_same_ints(keep, k, want, 5, "threshold 1");
        /* a negative threshold suppresses every overlapping box, even at IoU 0 */
        float apart[8] = {0, 0, 1, 1, 5, 5, 6, 6};
        k = (f ? mn_nms_ref : mn_nms)(keep, apart, s5, 2, -0.5, 0);
        cr_assert(k == 1 && keep[0] == 1, "negative threshold: kept %d", k);
        /* zero-area boxes never suppress (IoU 0/0 is NaN) */
        float flat[12] = {3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 9};
        k = (f ? mn_nms_ref : mn_nms)(keep, flat, s5, 3, 0.0, 0);
        int want3[3] = {1, 2, 0};
        expect_same_ints(keep, k, want3, 3, "zero-area boxes");
        /* IoU exactly 0.5 is not suppressed at 0.5 */
        float half[8] = {0, 0, 10, 10, 0, 0, 10, 5};
        k = (f ? mn_nms_ref : mn_nms)(keep, half, s5, 2, 0.5, 0);
        cr_assert_eq(k, 2, "IoU 0.5 at threshold 0.5: kept %d", k);
        k = (f ? mn_nms_ref : mn_nms)(keep, half, s5, 2, 0.4999, 0);
        cr_assert_eq(k, 1, "IoU 0.5 at threshold 0.4999: kept %d", k);
    }
    /* identical boxes of different classes do not suppress each other */
    int cls[5] = {7, 7, -2, 7, 100000};
    for (int f = 0; f < 2; f++) {
        int k = (f ? mn_batched_nms_ref : mn_batched_nms)(keep, same, s5, cls, 5, 0.5, 0);
        int want[3] = {1, 2, 4};
        expect_same_ints(keep, k, want, 3, "batched identical boxes");
        k = (f ? mn_batched_nms_ref : mn_batched_nms)(keep, same, s5, cls, 5, 0.5, 2);
        expect_same_ints(keep, k, want, 2, "batched max_keep 2");
    }
    /* bad input */
    float snan[2] = {0.5f, NAN};
    cr_assert_eq(mn_nms(keep, same, snan, 2, 0.5, 0), MN_ENUMERIC);
    cr_assert(strstr(mn_last_error(), "score 1"), "message: %s", mn_last_error());
    cr_assert_eq(mn_nms_ref(keep, same, snan, 2, 0.5, 0), MN_ENUMERIC);
    cr_assert_eq(mn_batched_nms(keep, same, snan, cls, 2, 0.5, 0), MN_ENUMERIC);
    cr_assert_eq(mn_nms(keep, same, s5, 5, NAN, 0), MN_EINVAL);
    cr_assert_eq(mn_nms(keep, same, s5, 5, 0.5, -1), MN_EINVAL);
    cr_assert_eq(mn_nms(keep, same, s5, -3, 0.5, 0), MN_EINVAL);
}

/* ---- top-k ---- */

Test(boxes, topk_fast_vs_ref)
{
    enum { N = 5000 };
    float *s = malloc(sizeof(float) * N);
    int *i1 = malloc(sizeof(int) * N), *i2 = malloc(sizeof(int) * N);
    mn_rng r;
    mn_rng_seed(&r, 99);
    for (int v = 0; v < 3; v++) {
        for (int i = 0; i < N; i++)
            s[i] = v == 0 ? mn_rng_normal(&r) : v == 1 ? (float)mn_rng_int(&r, -4, 4) : -0.0f;
        if (v == 1) {
            s[17] = INFINITY;
            s[18] = -INFINITY;
            s[19] = 0.0f;
            s[20] = -0.0f;
        }
        const int ks[7] = {0, 1, 7, 999, 2000, N, N + 5};
        for (int t = 0; t < 7; t++) {
            char what[64];
            snprintf(what, sizeof what, "topk variant %d k %d", v, ks[t]);
            int n1 = mn_topk(i1, s, N, ks[t]), n2 = mn_topk_ref(i2, s, N, ks[t]);
            cr_assert_eq(n2, ks[t] < N ? ks[t] : N, "%s: count %d", what, n2);
            expect_same_ints(i1, n1, i2, n2, what);
        }
    }
    /* a small case by hand: ties go to the lower index */
    float s6[6] = {0.5f, 2.0f, 0.5f, -1.0f, 2.0f, 0.5f};
    int want[4] = {1, 4, 0, 2};
    int n1 = mn_topk(i1, s6, 6, 4);
    expect_same_ints(i1, n1, want, 4, "topk by hand");
    s[3] = NAN;
    cr_assert_eq(mn_topk(i1, s, N, 10), MN_ENUMERIC);
    cr_assert_eq(mn_topk(i1, s6, 6, -1), MN_EINVAL);
    free(s);
    free(i1);
    free(i2);
}

/* ---- box coder ---- */

Test(boxes, coder_vs_torchvision)
{
    mn_tensor ref = tc_get(&fx, "coder.ref"), gt = tc_get(&fx, "coder.gt"), codes = tc_get(&fx, "coder.codes");
    const char *tags[2] = {"rpn", "roi"};
    mn_box_coder coders[2] = {mn_box_coder_make(1, 1, 1, 1), mn_box_coder_make(10, 10, 5, 5)};
    float enc[50 * 4], dec[50 * 12];
    for (int c = 0; c < 2; c++) {
        char name[64];
        mn_box_encode(&coders[c], enc, gt.data, ref.data, 50);
        snprintf(name, sizeof name, "coder.%s.enc", tags[c]);
        tc_expect_close(enc, tc_get(&fx, name).data, 50 * 4, 1e-5f, 1e-5f, name);
        mn_box_decode(&coders[c], dec, codes.data, ref.data, 50, 3);
        snprintf(name, sizeof name, "coder.%s.dec", tags[c]);
        tc_expect_close(dec, tc_get(&fx, name).data, 50 * 12, 1e-3f, 1e-5f, name);
        /* the clamp acted: box 0's first width is 1000/16 of the reference width */
        float rw = ref.data[2] - ref.data[0];
        cr_assert_float_eq(dec[2] - dec[0], 62.5f * rw, 1e-3f * 62.5f * rw, "%s: clamped width %g vs %g", tags[c],
                           (double)(dec[2] - dec[0]), 62.5 * rw);
    }
    cr_assert_float_eq(coders[0].clip, 4.1351666f, 1e-6f);
}

Test(boxes, coder_roundtrip)
{
    mn_tensor ref = tc_get(&fx, "coder.ref"), gt = tc_get(&fx, "coder.gt");
    mn_box_coder c = mn_box_coder_make(10, 10, 5, 5);
    float enc[200], dec[200];
    mn_box_encode(&c, enc, gt.data, ref.data, 50);
    mn_box_decode(&c, dec, enc, ref.data, 50, 1);
    tc_expect_close(dec, gt.data, 200, 2e-4f, 1e-5f, "decode(encode(gt))");
}

/* ---- anchors ---- */

Test(boxes, anchors_vs_torchvision)
{
    const float s3[3] = {32, 64, 128}, r3[3] = {0.5f, 1.0f, 2.0f};
    const float *sizes[3] = {&s3[0], &s3[1], &s3[2]}, *ratios[3] = {r3, r3, r3};
    int ns[3] = {1, 1, 1}, nr[3] = {3, 3, 3};
    mn_anchor_gen g;
    cr_assert_eq(mn_anchor_gen_init(&g, 3, sizes, ns, ratios, nr), 0, "%s", mn_last_error());
    int grid[6] = {12, 16, 6, 8, 3, 4};
    mn_tensor want = tc_get(&fx, "anchors.fpn3");
    cr_assert_eq(mn_anchor_gen_count(&g, grid), want.shape[0]);
    float *a = malloc(sizeof(float) * 4 * (size_t)want.shape[0]);
    cr_assert_eq(mn_anchor_gen_run(&g, a, 48, 64, grid), 0, "%s", mn_last_error());
    tc_expect_close(a, want.data, 4 * want.shape[0], 0, 0, "anchors fpn3");
    free(a);

    /* 2 sizes x 4 ratios, sizes whose halves round half to even, strides that do not divide */
    const float l0[2] = {16, 45}, l1[2] = {24, 61}, l2[2] = {48, 100}, r4[4] = {0.25f, 0.5f, 1.0f, 3.0f};
    const float *sizes2[3] = {l0, l1, l2}, *ratios2[3] = {r4, r4, r4};
    int ns2[3] = {2, 2, 2}, nr2[3] = {4, 4, 4};
    cr_assert_eq(mn_anchor_gen_init(&g, 3, sizes2, ns2, ratios2, nr2), 0, "%s", mn_last_error());
    int grid2[6] = {7, 9, 4, 5, 2, 3};
    want = tc_get(&fx, "anchors.odd");
    cr_assert_eq(mn_anchor_gen_count(&g, grid2), want.shape[0]);
    a = malloc(sizeof(float) * 4 * (size_t)want.shape[0]);
    cr_assert_eq(mn_anchor_gen_run(&g, a, 50, 70, grid2), 0, "%s", mn_last_error());
    tc_expect_close(a, want.data, 4 * want.shape[0], 0, 0, "anchors odd");
    free(a);

    mn_anchor_gen_fpn(&g);
    cr_assert_eq(g.n_levels, 5);
    want = tc_get(&fx, "anchors.fpn_cell");
    for (int l = 0; l < 5; l++) {
        cr_assert_eq(g.n_cell[l], 3);
        tc_expect_close(&g.cell[l][0][0], want.data + 12 * l, 12, 0, 0, "fpn cell anchors");
    }
}

Test(boxes, anchors_layout_and_errors)
{
    /* row (y * W + x) * A + a is cell a shifted by (x, y) * stride */
    float cell[8] = {-2, -3, 2, 3, -5, -1, 5, 1};
    float a[3 * 4 * 2 * 4];
    mn_anchor_grid(a, cell, 2, 3, 4, 8, 6);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++)
            for (int k = 0; k < 2; k++) {
                const float *p = a + 4 * ((y * 4 + x) * 2 + k);
                float want[4] = {6.0f * x + cell[4 * k], 8.0f * y + cell[4 * k + 1], 6.0f * x + cell[4 * k + 2],
                                 8.0f * y + cell[4 * k + 3]};
                tc_expect_close(p, want, 4, 0, 0, "anchor layout");
            }
    float r = 1.0f, s = 25.0f, c[4];
    cr_assert_eq(mn_anchor_cell(c, &s, 1, &r, 1), 1);
    cr_assert(c[0] == -12.0f && c[2] == 12.0f, "12.5 rounds half to even: %g", (double)c[2]);
    float bad = -1.0f;
    cr_assert_eq(mn_anchor_cell(c, &s, 1, &bad, 1), MN_EINVAL);
    mn_anchor_gen g;
    mn_anchor_gen_fpn(&g);
    int grid[10] = {8, 8, 4, 4, 2, 2, 1, 1, 64, 1};
    float *buf = malloc(sizeof(float) * 4 * (size_t)mn_anchor_gen_count(&g, grid));
    cr_assert_eq(mn_anchor_gen_run(&g, buf, 32, 32, grid), MN_EINVAL, "a grid taller than the image");
    cr_assert(strstr(mn_last_error(), "level 4"), "message: %s", mn_last_error());
    free(buf);
    const float *sz[1] = {&s}, *rt[1] = {&r};
    int one = 1;
    cr_assert_eq(mn_anchor_gen_init(&g, 0, sz, &one, rt, &one), MN_EINVAL);
}

/* ---- matcher ---- */

Test(boxes, matcher_vs_torchvision)
{
    const char *mats[3] = {"m1", "m2", "m3"};
    const mn_matcher setups[3] = {{0.7f, 0.3f, true}, {0.7f, 0.3f, false}, {0.5f, 0.5f, false}};
    const char *tags[3] = {"rpn", "rpn_nolow", "roi"};
    for (int m = 0; m < 3; m++) {
        char name[64];
        snprintf(name, sizeof name, "match.%s", mats[m]);
        mn_tensor q = tc_get(&fx, name);
        int rows = (int)q.shape[0], cols = (int)q.shape[1];
        int *got = malloc(sizeof(int) * (size_t)cols);
        for (int s = 0; s < 3; s++) {
            cr_assert_eq(mn_match(&setups[s], got, q.data, rows, cols), 0, "%s", mn_last_error());
            int nw;
            snprintf(name, sizeof name, "match.%s.%s", mats[m], tags[s]);
            int *want = get_i32(name, &nw);
            expect_same_ints(got, cols, want, nw, name);
            free(want);
        }
        free(got);
    }
    /* the real matrix is our own IoU of the gts against our anchors */
    mn_tensor gts = tc_get(&fx, "match.m3.gts"), anc = tc_get(&fx, "anchors.fpn3"), q = tc_get(&fx, "match.m3");
    int n = (int)anc.shape[0];
    float *iou = malloc(sizeof(float) * 4 * (size_t)n);
    mn_box_iou(iou, gts.data, 4, anc.data, n);
    tc_expect_close(iou, q.data, 4 * n, 1e-6f, 1e-5f, "gt x anchor IoU");
    free(iou);
}

Test(boxes, matcher_degenerate)
{
    mn_matcher mt = {0.7f, 0.3f, true};
    int got[4] = {9, 9, 9, 9};
    cr_assert_eq(mn_match(&mt, got, NULL, 0, 4), 0);
    for (int j = 0; j < 4; j++) cr_assert_eq(got[j], MN_MATCH_BELOW, "no gt: prediction %d is %d", j, got[j]);
    cr_assert_eq(mn_match(&mt, got, NULL, 3, 0), 0);
    mn_matcher bad = {0.3f, 0.7f, false};
    float q[2] = {0.5f, 0.5f};
    cr_assert_eq(mn_match(&bad, got, q, 1, 2), MN_EINVAL);
    /* the low-quality rule hands both tied predictions to their best gt */
    float q2[6] = {0.2f, 0.2f, 0.1f, 0.0f, 0.25f, 0.25f};
    cr_assert_eq(mn_match(&mt, got, q2, 2, 3), 0);
    cr_assert(got[0] == 0 && got[1] == 1 && got[2] == 1, "got %d %d %d", got[0], got[1], got[2]);
}

/* ---- sampler ---- */

/* Checks one draw: counts, membership, ascending order. */
static void check_sample(const int *matches, int n, int batch, double frac, uint64_t seed, int np, int nn)
{
    int *pos = malloc(sizeof(int) * (size_t)(batch + 1)), *neg = malloc(sizeof(int) * (size_t)(batch + 1));
    int n_pos = -1, n_neg = -1;
    mn_rng r;
    mn_rng_seed(&r, seed);
    cr_assert_eq(mn_sample_pos_neg(pos, &n_pos, neg, &n_neg, matches, n, batch, frac, &r), 0, "%s", mn_last_error());
    int want_pos = (int)(batch * frac);
    if (want_pos > np) want_pos = np;
    int want_neg = batch - want_pos < nn ? batch - want_pos : nn;
    cr_assert_eq(n_pos, want_pos, "batch %d frac %g: %d positives, expected %d", batch, frac, n_pos, want_pos);
    cr_assert_eq(n_neg, want_neg, "batch %d frac %g: %d negatives, expected %d", batch, frac, n_neg, want_neg);
    for (int i = 0; i < n_pos; i++) {
        cr_assert(pos[i] >= 0 && pos[i] < n && matches[pos[i]] >= 0, "positive %d is %d", i, pos[i]);
        cr_assert(i == 0 || pos[i] > pos[i - 1], "positives not strictly ascending");
    }
    for (int i = 0; i < n_neg; i++) {
        cr_assert(neg[i] >= 0 && neg[i] < n && matches[neg[i]] == MN_MATCH_BELOW, "negative %d is %d", i, neg[i]);
        cr_assert(i == 0 || neg[i] > neg[i - 1], "negatives not strictly ascending");
    }
    free(pos);
    free(neg);
}

Test(boxes, sampler_counts_and_membership)
{
    enum { N = 3000 };
    int *m = malloc(sizeof(int) * N);
    /* many positives, negatives and ignored ones */
    mn_rng r;
    mn_rng_seed(&r, 5);
    int np = 0, nn = 0;
    for (int i = 0; i < N; i++) {
        int u = mn_rng_int(&r, 0, 9);
        m[i] = u < 2 ? mn_rng_int(&r, 0, 7) : u < 8 ? MN_MATCH_BELOW : MN_MATCH_BETWEEN;
        np += m[i] >= 0;
        nn += m[i] == MN_MATCH_BELOW;
    }
    for (uint64_t seed = 1; seed <= 4; seed++) {
        check_sample(m, N, 256, 0.5, seed, np, nn);   /* RPN: 128 positives available */
        check_sample(m, N, 512, 0.25, seed, np, nn);  /* RoI head */
        check_sample(m, N, 4000, 0.5, seed, np, nn);  /* fewer than asked of both kinds */
        check_sample(m, N, 0, 0.5, seed, np, nn);
        check_sample(m, N, 300, 1.0, seed, np, nn);
    }
    /* few positives: the batch fills up with negatives */
    for (int i = 0; i < N; i++) m[i] = i % 500 == 7 ? 2 : i % 3 ? MN_MATCH_BELOW : MN_MATCH_BETWEEN;
    check_sample(m, N, 256, 0.5, 11, 6, 2000);
    /* only ignored entries: nothing is sampled */
    for (int i = 0; i < N; i++) m[i] = MN_MATCH_BETWEEN;
    check_sample(m, N, 256, 0.5, 12, 0, 0);
    int p[4], q[4], a, b;
    cr_assert_eq(mn_sample_pos_neg(p, &a, q, &b, m, N, 4, 1.5, &r), MN_EINVAL);
    free(m);
}

Test(boxes, sampler_is_uniform_and_seeded)
{
    /* 40 positives, 10 drawn each time: every positive should be drawn about 1/4 of the time */
    enum { N = 100, DRAWS = 4000 };
    int m[N], pos[20], neg[20], a, b, hits[N] = {0};
    for (int i = 0; i < N; i++) m[i] = i % 5 < 2 ? 0 : i % 5 < 4 ? MN_MATCH_BELOW : MN_MATCH_BETWEEN;
    mn_rng r;
    mn_rng_seed(&r, 2024);
    for (int d = 0; d < DRAWS; d++) {
        cr_assert_eq(mn_sample_pos_neg(pos, &a, neg, &b, m, N, 20, 0.5, &r), 0);
        cr_assert(a == 10 && b == 10);
        for (int i = 0; i < a; i++) hits[pos[i]]++;
        for (int i = 0; i < b; i++) hits[neg[i]]++;
    }
    for (int i = 0; i < N; i++) {
        if (i % 5 == 4) {
            cr_assert_eq(hits[i], 0, "ignored entry %d was sampled", i);
            continue;
        }
        /* binomial(4000, 1/4): sd about 27; allow 5 sd */
        cr_assert(abs(hits[i] - DRAWS / 4) < 140, "entry %d drawn %d times of %d", i, hits[i], DRAWS);
    }
    /* the same seed gives the same draw, another seed another */
    int p1[20], p2[20], p3[20];
    mn_rng r1, r2, r3;
    mn_rng_seed(&r1, 7);
    mn_rng_seed(&r2, 7);
    mn_rng_seed(&r3, 8);
    mn_sample_pos_neg(p1, &a, neg, &b, m, N, 20, 0.5, &r1);
    mn_sample_pos_neg(p2, &a, neg, &b, m, N, 20, 0.5, &r2);
    mn_sample_pos_neg(p3, &a, neg, &b, m, N, 20, 0.5, &r3);
    cr_assert(memcmp(p1, p2, sizeof(int) * 10) == 0, "same seed, different draws");
    cr_assert(memcmp(p1, p3, sizeof(int) * 10) != 0, "different seeds, same draws");
}
