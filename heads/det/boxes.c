/* IoU, clipping, small-box removal, crowd filtering, NMS (greedy, batched) and top-k.
 *
 * The fast NMS sorts once (an LSD radix sort on the score bits, stable, so ties keep index
 * order), gathers the boxes into score-ordered coordinate arrays, tests each kept box against
 * the rest with a branch-free (vectorised) loop, compacts the survivors when most of the rest
 * is suppressed, and stops as soon as max_keep boxes are kept. Batched NMS runs it per class
 * (at most max_keep per class) and merges by score rank. The _ref twins are torchvision's CPU
 * loop written plainly. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mn/boxes.h"

/* std::max / std::min as torchvision's kernel uses them (first argument wins on NaN). */
static inline float max_tv(float a, float b) { return a < b ? b : a; }
static inline float min_tv(float a, float b) { return b < a ? b : a; }

void mn_box_iou(float *iou /* (N, M) */, const float *a /* (N, 4) */, int n, const float *b /* (M, 4) */, int m)
{
    for (int i = 0; i < n; i++) {
        const float *p = a + 4 * (size_t)i;
        float area_a = (p[2] - p[0]) * (p[3] - p[1]);
        float *row = iou + (size_t)i * (size_t)m;
        for (int j = 0; j < m; j++) {
            const float *q = b + 4 * (size_t)j;
            float area_b = (q[2] - q[0]) * (q[3] - q[1]);
            float w = fminf(p[2], q[2]) - fmaxf(p[0], q[0]);
            float h = fminf(p[3], q[3]) - fmaxf(p[1], q[1]);
            w = w > 0.0f ? w : 0.0f;
            h = h > 0.0f ? h : 0.0f;
            float inter = w * h;
            float uni = area_a + area_b - inter;
            /* zero union only for two empty boxes: torchvision gives 0/0 = NaN, we give 0 */
            row[j] = uni != 0.0f ? inter / uni : 0.0f;
        }
    }
}

void mn_boxes_clip(float *boxes /* (N, 4) */, int n, int h, int w)
{
    float fw = (float)w, fh = (float)h;
    for (size_t i = 0; i < (size_t)(n > 0 ? n : 0); i++) {
        float *p = boxes + 4 * i;
        for (int c = 0; c < 4; c++) {
            float hi = (c & 1) ? fh : fw;
            /* written as comparisons so a NaN passes through, as torch.clamp lets it */
            if (p[c] < 0.0f) p[c] = 0.0f;
            else if (p[c] > hi) p[c] = hi;
        }
    }
}

int mn_boxes_remove_small(int *keep /* (N) */, const float *boxes /* (N, 4) */, int n, float min_size)
{
    if (n < 0) return mn_error(MN_EINVAL, "mn_boxes_remove_small: negative box count %d", n);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const float *p = boxes + 4 * (size_t)i;
        if (p[2] - p[0] >= min_size && p[3] - p[1] >= min_size) keep[k++] = i;
    }
    return k;
}

int mn_boxes_drop_crowd(float *boxes_out /* (M, 4) */, int *labels_out /* (M) or NULL */,
                        int *index_out /* (M) or NULL */, const float *boxes /* (M, 4) */,
                        const int *labels /* (M) or NULL */, const bool *crowd /* (M) or NULL */, int m)
{
    if (m < 0) return mn_error(MN_EINVAL, "mn_boxes_drop_crowd: negative box count %d", m);
    int k = 0;
    for (int i = 0; i < m; i++) {
        const float *p = boxes + 4 * (size_t)i;
        if ((crowd && crowd[i]) || !(p[2] > p[0]) || !(p[3] > p[1])) continue;
        /* k <= i, so writing in place over the inputs is safe */
        float b[4] = {p[0], p[1], p[2], p[3]};
        memcpy(boxes_out + 4 * (size_t)k, b, sizeof b);
        if (labels && labels_out) labels_out[k] = labels[i];
        if (index_out) index_out[k] = i;
        k++;
    }
    return k;
}

/* ---- shared checks and sorting ---- */

static int check_scores(const char *fn, const float *scores, int n)
{
    if (n < 0) return mn_error(MN_EINVAL, "%s: negative box count %d", fn, n);
    for (int i = 0; i < n; i++)
        if (isnan(scores[i])) return mn_error(MN_ENUMERIC, "%s: score %d of %d is NaN", fn, i, n);
    return 0;
}

static int check_nms_args(const char *fn, const float *scores, int n, double iou_thr, int max_keep)
{
    if (isnan(iou_thr)) return mn_error(MN_EINVAL, "%s: iou threshold is NaN", fn);
    if (max_keep < 0) return mn_error(MN_EINVAL, "%s: max_keep %d is negative", fn, max_keep);
    return check_scores(fn, scores, n);
}

/* Score descending, then index ascending: a total order, so qsort's result is unique. */
typedef struct scored {
    float s;
    int i;
} scored;

static int cmp_scored(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* order[r] = the index of the r-th box by (score desc, index asc); plain qsort. */
static int order_ref(int *order /* (N) */, const float *scores /* (N) */, int n)
{
    scored *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) return mn_error(MN_ENOMEM, "nms: cannot allocate %d sort entries", n);
    for (int i = 0; i < n; i++) v[i] = (scored){scores[i], i};
    qsort(v, (size_t)n, sizeof *v, cmp_scored);
    for (int r = 0; r < n; r++) order[r] = v[r].i;
    free(v);
    return 0;
}

/* An unsigned key whose ascending order is the score's descending order (-0 taken as +0). */
static inline uint32_t desc_key(float s)
{
    if (s == 0.0f) s = 0.0f;
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

/* Stable LSD radix sort of (key, val) pairs by key ascending, 8 bits a pass; tk, tv are
 * scratch of the same size. Passes whose byte is the same for all keys are skipped. */
static void radix_pairs(uint32_t *key /* (N) */, int *val /* (N) */, uint32_t *tk /* (N) */, int *tv /* (N) */,
                        int n)
{
    for (int shift = 0; shift < 32; shift += 8) {
        size_t count[257] = {0};
        for (int i = 0; i < n; i++) count[((key[i] >> shift) & 255u) + 1]++;
        bool trivial = false;
        for (int b = 1; b <= 256; b++)
            if (count[b] == (size_t)n) trivial = true;
        if (trivial) continue;
        for (int b = 1; b <= 256; b++) count[b] += count[b - 1];
        for (int i = 0; i < n; i++) {
            size_t d = count[(key[i] >> shift) & 255u]++;
            tk[d] = key[i];
            tv[d] = val[i];
        }
        memcpy(key, tk, sizeof *key * (size_t)n);
        memcpy(val, tv, sizeof *val * (size_t)n);
    }
}

/* ---- NMS, reference ---- */

/* torchvision's loop over order: each unsuppressed box is kept and suppresses later ones of
 * the same class (cls may be NULL: one class). */
static int greedy_ref(int *keep, const float *boxes, const int *order, const int *cls, int n, double iou_thr,
                      int max_keep)
{
    unsigned char *sup = calloc((size_t)(n ? n : 1), 1);
    float *area = malloc(sizeof *area * (size_t)(n ? n : 1));
    if (!sup || !area) {
        free(sup);
        free(area);
        return mn_error(MN_ENOMEM, "nms: cannot allocate scratch for %d boxes", n);
    }
    for (int i = 0; i < n; i++) {
        const float *p = boxes + 4 * (size_t)i;
        area[i] = (p[2] - p[0]) * (p[3] - p[1]);
    }
    int nk = 0;
    for (int r = 0; r < n; r++) {
        int i = order[r];
        if (sup[i]) continue;
        keep[nk++] = i;
        const float *p = boxes + 4 * (size_t)i;
        for (int s = r + 1; s < n; s++) {
            int j = order[s];
            if (sup[j] || (cls && cls[j] != cls[i])) continue;
            const float *q = boxes + 4 * (size_t)j;
            float w = max_tv(0.0f, min_tv(p[2], q[2]) - max_tv(p[0], q[0]));
            float h = max_tv(0.0f, min_tv(p[3], q[3]) - max_tv(p[1], q[1]));
            float inter = w * h;
            float ovr = inter / (area[i] + area[j] - inter);
            if ((double)ovr > iou_thr) sup[j] = 1;
        }
    }
    free(sup);
    free(area);
    return max_keep > 0 && nk > max_keep ? max_keep : nk;
}

int mn_nms_ref(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */, int n,
               double iou_thr, int max_keep)
{
    int rc = check_nms_args("mn_nms_ref", scores, n, iou_thr, max_keep);
    if (rc) return rc;
    int *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    if (!order) return mn_error(MN_ENOMEM, "mn_nms_ref: cannot allocate %d indices", n);
    rc = order_ref(order, scores, n);
    if (!rc) rc = greedy_ref(keep, boxes, order, NULL, n, iou_thr, max_keep);
    free(order);
    return rc;
}

int mn_batched_nms_ref(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */,
                       const int *classes /* (N) */, int n, double iou_thr, int max_keep)
{
    int rc = check_nms_args("mn_batched_nms_ref", scores, n, iou_thr, max_keep);
    if (!rc && n > 0 && !classes) rc = mn_error(MN_EINVAL, "mn_batched_nms_ref: no class array for %d boxes", n);
    if (rc) return rc;
    int *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    if (!order) return mn_error(MN_ENOMEM, "mn_batched_nms_ref: cannot allocate %d indices", n);
    rc = order_ref(order, scores, n);
    if (!rc) rc = greedy_ref(keep, boxes, order, classes, n, iou_thr, max_keep);
    free(order);
    return rc;
}

/* ---- NMS, fast ---- */

/* Scratch for n boxes: sort buffers, score-ordered coordinates and ids. */
typedef struct nms_work {
    uint32_t *key, *tkey;
    int *order, *tval, *id;
    float *x1, *y1, *x2, *y2, *area;
    int32_t *sup;
    unsigned char *flag;
    void *block;
} nms_work;

static int work_alloc(nms_work *w, int n, const char *fn)
{
    size_t m = (size_t)(n ? n : 1);
    size_t bytes = m * (3 * sizeof(uint32_t) + 3 * sizeof(int) + 5 * sizeof(float) + 1);
    w->block = malloc(bytes);
    if (!w->block) return mn_error(MN_ENOMEM, "%s: cannot allocate %zu bytes of scratch for %d boxes", fn, bytes, n);
    char *p = w->block;
    w->key = (uint32_t *)p, p += m * sizeof(uint32_t);
    w->tkey = (uint32_t *)p, p += m * sizeof(uint32_t);
    w->order = (int *)p, p += m * sizeof(int);
    w->tval = (int *)p, p += m * sizeof(int);
    w->id = (int *)p, p += m * sizeof(int);
    w->x1 = (float *)p, p += m * sizeof(float);
    w->y1 = (float *)p, p += m * sizeof(float);
    w->x2 = (float *)p, p += m * sizeof(float);
    w->y2 = (float *)p, p += m * sizeof(float);
    w->area = (float *)p, p += m * sizeof(float);
    w->sup = (int32_t *)p, p += m * sizeof(int32_t);
    w->flag = (unsigned char *)p;
    return 0;
}

/* The largest float t with t <= thr: for any float x, x > thr (in double) iff x > t (in float). */
static float float_threshold(double thr)
{
    if (thr >= (double)INFINITY) return INFINITY;
    if (thr < -(double)FLT_MAX) return -INFINITY;
    float t = (float)thr;
    if ((double)t > thr) t = nextafterf(t, -INFINITY);
    return t;
}

/* Greedy NMS over len boxes already in visiting order (coordinates x1..area, payload id);
 * writes the kept ids to keep and returns how many (at most cap when cap > 0). Each kept box
 * tests the whole tail without branches (so the loop vectorises) and marks sup; once more than
 * half the tail is suppressed it is compacted, so later passes skip the dead boxes. */
static int greedy_fast(int *keep, float *x1, float *y1, float *x2, float *y2, float *area, int *id, int32_t *sup,
                       int len, float thr, int cap)
{
    memset(sup, 0, sizeof *sup * (size_t)len);
    int nk = 0, i = 0, dead = 0; /* dead: suppressed boxes in [i, len) */
    while (cap <= 0 || nk < cap) {
        while (i < len && sup[i]) {
            i++;
            dead--;
        }
        if (i >= len) break;
        keep[nk++] = id[i];
        float ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], ia = area[i];
        int newly = 0;
        for (int j = i + 1; j < len; j++) {
            float w = max_tv(0.0f, min_tv(ix2, x2[j]) - max_tv(ix1, x1[j]));
            float h = max_tv(0.0f, min_tv(iy2, y2[j]) - max_tv(iy1, y1[j]));
            float inter = w * h;
            float ovr = inter / (ia + area[j] - inter);
            int32_t s = ovr > thr;
            newly += s & (sup[j] ^ 1);
            sup[j] |= s;
        }
        dead += newly;
        i++;
        if (len - i > 64 && 2 * dead > len - i) {
            int out = i;
            for (int j = i; j < len; j++) {
                if (sup[j]) continue;
                x1[out] = x1[j];
                y1[out] = y1[j];
                x2[out] = x2[j];
                y2[out] = y2[j];
                area[out] = area[j];
                id[out] = id[j];
                sup[out++] = 0;
            }
            len = out;
            dead = 0;
        }
    }
    return nk;
}

/* Gathers boxes[order[r]] for r in [0, len) into w's coordinate arrays, with id = ids[r]. */
static void gather(nms_work *w, const float *boxes, const int *order, const int *ids, int len)
{
    for (int r = 0; r < len; r++) {
        const float *p = boxes + 4 * (size_t)order[r];
        w->x1[r] = p[0];
        w->y1[r] = p[1];
        w->x2[r] = p[2];
        w->y2[r] = p[3];
        w->area[r] = (p[2] - p[0]) * (p[3] - p[1]);
        w->id[r] = ids ? ids[r] : order[r];
    }
}

static void sort_by_score(nms_work *w, const float *scores, int n)
{
    for (int i = 0; i < n; i++) {
        w->key[i] = desc_key(scores[i]);
        w->order[i] = i;
    }
    radix_pairs(w->key, w->order, w->tkey, w->tval, n);
}

int mn_nms(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */, int n, double iou_thr,
           int max_keep)
{
    int rc = check_nms_args("mn_nms", scores, n, iou_thr, max_keep);
    if (rc || n <= 0) return rc;
    nms_work w = {0};
    if ((rc = work_alloc(&w, n, "mn_nms"))) return rc;
    sort_by_score(&w, scores, n);
    gather(&w, boxes, w.order, NULL, n);
    int nk = greedy_fast(keep, w.x1, w.y1, w.x2, w.y2, w.area, w.id, w.sup, n, float_threshold(iou_thr), max_keep);
    free(w.block);
    return nk;
}

int mn_batched_nms(int *keep /* (N) */, const float *boxes /* (N, 4) */, const float *scores /* (N) */,
                   const int *classes /* (N) */, int n, double iou_thr, int max_keep)
{
    int rc = check_nms_args("mn_batched_nms", scores, n, iou_thr, max_keep);
    if (!rc && n > 0 && !classes) rc = mn_error(MN_EINVAL, "mn_batched_nms: no class array for %d boxes", n);
    if (rc || n <= 0) return rc;
    nms_work w = {0};
    if ((rc = work_alloc(&w, n, "mn_batched_nms"))) return rc;
    sort_by_score(&w, scores, n);
    /* group the score order by class; the stable sort keeps score order inside each class */
    int *rank = keep; /* keep is free until the final sweep: borrow it for ranks */
    for (int r = 0; r < n; r++) {
        w.key[r] = (uint32_t)classes[w.order[r]] ^ 0x80000000u;
        rank[r] = r;
        w.flag[r] = 0;
    }
    radix_pairs(w.key, rank, w.tkey, w.tval, n);
    /* byrank[r] = the box at score rank r, for gathering each class group */
    int *byrank = w.tval;
    memcpy(byrank, w.order, sizeof *byrank * (size_t)n);
    for (int r = 0; r < n; r++) w.order[r] = byrank[rank[r]];
    float thr = float_threshold(iou_thr);
    int *kept_ranks = (int *)w.tkey; /* free again once the class keys are sorted */
    for (int s = 0; s < n;) {
        int e = s + 1;
        while (e < n && w.key[e] == w.key[s]) e++;
        /* a class can contribute at most max_keep boxes to the truncated result */
        gather(&w, boxes, w.order + s, rank + s, e - s);
        int nk = greedy_fast(kept_ranks, w.x1, w.y1, w.x2, w.y2, w.area, w.id, w.sup, e - s, thr, max_keep);
        for (int t = 0; t < nk; t++) w.flag[kept_ranks[t]] = 1;
        s = e;
    }
    int nk = 0;
    for (int r = 0; r < n && (max_keep <= 0 || nk < max_keep); r++)
        if (w.flag[r]) keep[nk++] = byrank[r];
    free(w.block);
    return nk;
}

/* ---- top-k ---- */

int mn_topk_ref(int *idx /* (K) */, const float *scores /* (N) */, int n, int k)
{
    int rc = check_scores("mn_topk_ref", scores, n);
    if (rc) return rc;
    if (k < 0) return mn_error(MN_EINVAL, "mn_topk_ref: k = %d is negative", k);
    int *order = malloc(sizeof *order * (size_t)(n ? n : 1));
    if (!order) return mn_error(MN_ENOMEM, "mn_topk_ref: cannot allocate %d indices", n);
    rc = order_ref(order, scores, n);
    if (rc) {
        free(order);
        return rc;
    }
    int m = k < n ? k : n;
    memcpy(idx, order, sizeof *idx * (size_t)m);
    free(order);
    return m;
}

int mn_topk(int *idx /* (K) */, const float *scores /* (N) */, int n, int k)
{
    int rc = check_scores("mn_topk", scores, n);
    if (rc) return rc;
    if (k < 0) return mn_error(MN_EINVAL, "mn_topk: k = %d is negative", k);
    int m = k < n ? k : n;
    if (m == 0) return 0;
    size_t sz = (size_t)n;
    uint32_t *key = malloc(sizeof *key * sz * 3);
    int *val = malloc(sizeof *val * sz * 2);
    if (!key || !val) {
        free(key);
        free(val);
        return mn_error(MN_ENOMEM, "mn_topk: cannot allocate scratch for %d scores", n);
    }
    uint32_t *cand = key + sz, *tk = key + 2 * sz;
    int *tv = val + sz;
    for (int i = 0; i < n; i++) key[i] = desc_key(scores[i]);
    /* radix select: fix the m-th smallest key T one byte at a time, narrowing the candidates */
    uint32_t T = 0;
    int need = m, nc = n;
    const uint32_t *src = key;
    for (int shift = 24; shift >= 0; shift -= 8) {
        int count[256] = {0};
        for (int c = 0; c < nc; c++) count[(src[c] >> shift) & 255u]++;
        int b = 0;
        while (count[b] < need) need -= count[b++];
        T |= (uint32_t)b << shift;
        int w = 0;
        for (int c = 0; c < nc; c++)
            if (((src[c] >> shift) & 255u) == (uint32_t)b) cand[w++] = src[c];
        nc = w;
        src = cand;
    }
    /* everything below T, then the first `need` equal to T, in index order */
    int w = 0;
    for (int i = 0; i < n; i++)
        if (key[i] < T) {
            tk[w] = key[i];
            val[w++] = i;
        }
    for (int i = 0; i < n && need > 0; i++)
        if (key[i] == T) {
            tk[w] = key[i];
            val[w++] = i;
            need--;
        }
    radix_pairs(tk, val, key, tv, m);
    memcpy(idx, val, sizeof *idx * (size_t)m);
    free(key);
    free(val);
    return m;
}
