/* COCO bbox evaluation: matching, accumulation, interpolation and summary, with pycocotools' numbers.
 *
 * Exactness notes. Every quantity is a double computed with the same operations in the same order as
 * pycocotools (maskApi.c for IoU, numpy for the rest), so results agree bit for bit, not just to 3 digits.
 * This relies on the compiler not fusing a*b+c into one FMA: the project builds with -std=c11, for which
 * gcc's default is -ffp-contract=off. Threshold tables are built through a volatile product for the same
 * reason. Sorting is stable everywhere numpy uses kind='mergesort', and means are summed as numpy sums. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mn/coco_eval.h"

static const char *const stat_names[MN_COCO_NSTATS] = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                                       "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};

const char *mn_coco_stat_name(int i) { return i >= 0 && i < MN_COCO_NSTATS ? stat_names[i] : "?"; }

/* np.linspace(lo, hi, n): lo + i * ((hi - lo) / (n - 1)), then the last entry set to hi. */
static void linspace(double *out /* (n) */, double lo, double hi, int n)
{
    double step = (hi - lo) / (n - 1);
    for (int i = 0; i < n - 1; i++) {
        volatile double prod = (double)i * step; /* numpy multiplies, then adds, in two passes */
        out[i] = prod + lo;
    }
    out[n - 1] = hi;
}

void mn_coco_params_default(mn_coco_params *p)
{
    memset(p, 0, sizeof *p);
    linspace(p->iou_thrs, 0.5, 0.95, MN_COCO_T);
    linspace(p->rec_thrs, 0.0, 1.0, MN_COCO_R);
    static const double rng[MN_COCO_A][2] = {{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}};
    memcpy(p->area_rng, rng, sizeof rng);
    p->max_dets[0] = 1;
    p->max_dets[1] = 10;
    p->max_dets[2] = 100;
}

/* ---- stable sorting of index arrays ---------------------------------------------------------------- */

/* Bottom-up merge sort of idx by key: before(key, a, b) is true when a must precede b. Equal keys keep
 * their order (what numpy's kind='mergesort' guarantees). tmp holds n ints. */
typedef int (*before_fn)(const void *key, int a, int b);

static void merge_sort(int *idx /* (n) */, int *tmp /* (n) */, int n, const void *key, before_fn before)
{
    int *src = idx, *dst = tmp;
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, o = lo;
            while (i < mid && j < hi) dst[o++] = before(key, src[j], src[i]) ? src[j++] : src[i++];
            while (i < mid) dst[o++] = src[i++];
            while (j < hi) dst[o++] = src[j++];
        }
        int *s = src;
        src = dst;
        dst = s;
    }
    if (src != idx) memcpy(idx, src, sizeof(int) * (size_t)n);
}

static int higher_score(const void *key, int a, int b)
{
    const double *s = key;
    return s[a] > s[b];
}

static int lower_i64(const void *key, int a, int b)
{
    const int64_t *k = key;
    return k[a] < k[b];
}

/* ---- IoU ------------------------------------------------------------------------------------------- */

void mn_coco_bbox_iou(double *iou, const double *dt, const double *gt, const uint8_t *iscrowd, int n_dt, int n_gt)
{
    for (int d = 0; d < n_dt; d++) {
        const double *D = dt + 4 * (size_t)d;
        double da = D[2] * D[3];
        for (int g = 0; g < n_gt; g++) {
            const double *G = gt + 4 * (size_t)g;
            double ga = G[2] * G[3];
            double *o = &iou[(size_t)d * n_gt + g];
            *o = 0;
            double w = fmin(D[2] + D[0], G[2] + G[0]) - fmax(D[0], G[0]);
            if (w <= 0) continue;
            double h = fmin(D[3] + D[1], G[3] + G[1]) - fmax(D[1], G[1]);
            if (h <= 0) continue;
            double inter = w * h;
            /* a crowd region may cover many objects: score a detection by how much of it lies inside */
            double uni = iscrowd && iscrowd[g] ? da : da + ga - inter;
            *o = inter / uni;
        }
    }
}

/* ---- one image, one category, one area range --------------------------------------------------------- */

void mn_coco_img_eval_free(mn_coco_img_eval *e)
{
    if (!e) return;
    free(e->mem_);
    memset(e, 0, sizeof *e);
}

static int outside(double area, const double *rng /* (2) */) { return area < rng[0] || area > rng[1]; }

int mn_coco_evaluate_img(mn_coco_img_eval *out, const mn_coco_ann *const *gt, int n_gt, const mn_coco_ann *const *dt,
                         int n_dt, const double *area_rng, int max_det, const double *iou_thrs, int n_thr)
{
    memset(out, 0, sizeof *out);
    if (n_gt < 0 || n_dt < 0 || n_thr < 0 || max_det < 0)
        return mn_error(MN_EINVAL, "mn_coco_evaluate_img: negative count (gt %d, dt %d, thresholds %d, maxDet %d)",
                        n_gt, n_dt, n_thr, max_det);
    const int G = n_gt, D = n_dt < max_det ? n_dt : max_det, T = n_thr;
    /* results live in one block; laid out widest type first so every array stays aligned */
    size_t bytes = sizeof(double) * (size_t)D + sizeof(int64_t) * ((size_t)T * D + (size_t)T * G) +
                   sizeof(int) * ((size_t)G + (size_t)n_dt) + (size_t)T * D + (size_t)G + 1;
    char *mem = calloc(1, bytes);
    /* scratch: a merge buffer and the scores (n_dt each), the boxes and their IoU */
    int *tmp = malloc(sizeof(int) * ((size_t)n_dt + 1));
    double *scratch = malloc(sizeof(double) * ((size_t)n_dt + 4 * ((size_t)D + G) + (size_t)D * G + 1));
    uint8_t *crowd = malloc((size_t)G + 1);
    if (!mem || !tmp || !scratch || !crowd) {
        free(mem);
        free(tmp);
        free(scratch);
        free(crowd);
        return mn_error(MN_ENOMEM, "mn_coco_evaluate_img: out of memory (%d gt, %d detections)", n_gt, n_dt);
    }
    out->n_gt = G;
    out->n_dt = D;
    out->n_thr = T;
    out->mem_ = mem;
    out->dt_score = (double *)mem;
    out->dt_match = (int64_t *)(out->dt_score + D);
    out->gt_match = out->dt_match + (size_t)T * D;
    out->gt_order = (int *)(out->gt_match + (size_t)T * G);
    out->dt_order = out->gt_order + G; /* holds all n_dt during the sort; the first D are kept */
    out->dt_ignore = (uint8_t *)(out->dt_order + n_dt);
    out->gt_ignore = out->dt_ignore + (size_t)T * D;

    /* ground truth: regular first, then ignored (crowd or outside the range), each in input order */
    int o = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int g = 0; g < G; g++) {
            int ig = gt[g]->iscrowd || outside(gt[g]->area, area_rng);
            if (ig == pass) {
                out->gt_order[o] = g;
                out->gt_ignore[o] = (uint8_t)ig;
                crowd[o] = gt[g]->iscrowd != 0;
                o++;
            }
        }
    /* detections: stable sort by descending score, then keep the best max_det */
    double *score = scratch;
    for (int d = 0; d < n_dt; d++) {
        score[d] = dt[d]->score;
        out->dt_order[d] = d;
    }
    merge_sort(out->dt_order, tmp, n_dt, score, higher_score);
    for (int d = 0; d < D; d++) out->dt_score[d] = dt[out->dt_order[d]]->score;

    double *dtb = scratch + n_dt, *gtb = dtb + 4 * (size_t)D, *iou = gtb + 4 * (size_t)G;
    for (int d = 0; d < D; d++) memcpy(dtb + 4 * (size_t)d, dt[out->dt_order[d]]->bbox, sizeof(double) * 4);
    for (int g = 0; g < G; g++) memcpy(gtb + 4 * (size_t)g, gt[out->gt_order[g]]->bbox, sizeof(double) * 4);
    mn_coco_bbox_iou(iou, dtb, gtb, crowd, D, G);

    for (int t = 0; t < T && G > 0; t++) {
        int64_t *gtm = out->gt_match + (size_t)t * G;
        for (int d = 0; d < D; d++) {
            double best = fmin(iou_thrs[t], 1 - 1e-10);
            int m = -1;
            for (int g = 0; g < G; g++) {
                /* a regular gt is taken once; a crowd can absorb any number of detections */
                if (gtm[g] > 0 && !crowd[g]) continue;
                /* holding a regular match, never trade it for an ignored gt (they come last) */
                if (m > -1 && !out->gt_ignore[m] && out->gt_ignore[g]) break;
                if (iou[(size_t)d * G + g] < best) continue;
                best = iou[(size_t)d * G + g];
                m = g;
            }
            if (m == -1) continue;
            out->dt_ignore[(size_t)t * D + d] = out->gt_ignore[m];
            out->dt_match[(size_t)t * D + d] = gt[out->gt_order[m]]->id;
            gtm[m] = dt[out->dt_order[d]]->id;
        }
    }
    /* an unmatched detection outside the area range is neither right nor wrong for this range */
    for (int d = 0; d < D; d++)
        if (outside(dt[out->dt_order[d]]->area, area_rng))
            for (int t = 0; t < T; t++)
                if (out->dt_match[(size_t)t * D + d] == 0) out->dt_ignore[(size_t)t * D + d] = 1;
    free(tmp);
    free(scratch);
    free(crowd);
    return 0;
}

/* ---- interpolation and accumulation ------------------------------------------------------------------- */

double mn_coco_interp(double *q, double *work, const double *tp_cum, const double *fp_cum, int nd, int64_t npig,
                      const double *rec_thrs, int n_rec)
{
    const double np_ = (double)npig;
    double *pr = work;
    for (int i = 0; i < nd; i++) pr[i] = tp_cum[i] / (fp_cum[i] + tp_cum[i] + DBL_EPSILON); /* np.spacing(1) */
    /* the envelope: precision at a rank is the best precision at this or any deeper rank */
    for (int i = nd - 1; i > 0; i--)
        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
    for (int r = 0; r < n_rec; r++) q[r] = 0;
    for (int r = 0; r < n_rec; r++) {
        /* np.searchsorted(rc, thr, side='left'): the first rank whose recall reaches thr */
        int lo = 0, hi = nd;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2;
            if (tp_cum[mid] / np_ < rec_thrs[r]) lo = mid + 1;
            else hi = mid;
        }
        if (lo >= nd) break; /* thresholds ascend: every later one is out of reach too */
        q[r] = pr[lo];
    }
    return nd ? tp_cum[nd - 1] / np_ : 0.0;
}

int mn_coco_accumulate(double *precision, double *recall, const mn_coco_img_eval *evals, int n_evals, int max_det,
                       const double *rec_thrs, int n_rec, int n_thr)
{
    const int T = n_thr, R = n_rec;
    int64_t npig = 0;
    int nd = 0;
    for (int e = 0; e < n_evals; e++) {
        if (evals[e].n_thr != T)
            return mn_error(MN_EINVAL, "mn_coco_accumulate: image result %d has %d thresholds, expected %d", e,
                            evals[e].n_thr, T);
        for (int g = 0; g < evals[e].n_gt; g++) npig += evals[e].gt_ignore[g] == 0;
        nd += evals[e].n_dt < max_det ? evals[e].n_dt : max_det;
    }
    if (npig == 0) {
        /* no ground truth to find: the figure is undefined, not zero */
        for (int i = 0; i < T * R; i++) precision[i] = -1;
        for (int t = 0; t < T; t++) recall[t] = -1;
        return 0;
    }
    size_t n1 = (size_t)nd + 1;
    double *score = malloc(sizeof(double) * n1), *tp = malloc(sizeof(double) * n1),
           *fp = malloc(sizeof(double) * n1), *work = malloc(sizeof(double) * n1);
    int *order = malloc(sizeof(int) * n1), *tmp = malloc(sizeof(int) * n1), *src_e = malloc(sizeof(int) * n1),
        *src_d = malloc(sizeof(int) * n1);
    int rc = 0;
    if (!score || !tp || !fp || !work || !order || !tmp || !src_e || !src_d) {
        rc = mn_error(MN_ENOMEM, "mn_coco_accumulate: out of memory for %d detections", nd);
        goto done;
    }
    /* concatenate the images' first max_det detections in the order given, then sort stably */
    int j = 0;
    for (int e = 0; e < n_evals; e++) {
        int n = evals[e].n_dt < max_det ? evals[e].n_dt : max_det;
        for (int d = 0; d < n; d++, j++) {
            score[j] = evals[e].dt_score[d];
            src_e[j] = e;
            src_d[j] = d;
            order[j] = j;
        }
    }
    merge_sort(order, tmp, nd, score, higher_score);
    for (int t = 0; t < T; t++) {
        double ctp = 0, cfp = 0;
        for (int i = 0; i < nd; i++) {
            const mn_coco_img_eval *E = &evals[src_e[order[i]]];
            size_t at = (size_t)t * E->n_dt + src_d[order[i]];
            if (!E->dt_ignore[at]) {
                if (E->dt_match[at] != 0) ctp += 1;
                else cfp += 1;
            }
            tp[i] = ctp;
            fp[i] = cfp;
        }
        recall[t] = mn_coco_interp(precision + (size_t)t * R, work, tp, fp, nd, npig, rec_thrs, R);
    }
    rc = 1;
done:
    free(score);
    free(tp);
    free(fp);
    free(work);
    free(order);
    free(tmp);
    free(src_e);
    free(src_d);
    return rc;
}

/* ---- whole data set --------------------------------------------------------------------------------------- */

void mn_coco_eval_free(mn_coco_eval *ev)
{
    if (!ev) return;
    free(ev->cat_ids);
    free(ev->precision);
    free(ev->recall);
    memset(ev, 0, sizeof *ev);
}

static size_t prec_at(const mn_coco_eval *ev, int t, int r, int k, int a, int m)
{
    return ((((size_t)t * MN_COCO_R + r) * ev->n_cats + k) * MN_COCO_A + a) * MN_COCO_M + m;
}

static size_t rec_at(const mn_coco_eval *ev, int t, int k, int a, int m)
{
    return (((size_t)t * ev->n_cats + k) * MN_COCO_A + a) * MN_COCO_M + m;
}

/* Groups the boxes by (category, image), both ascending, keeping file order inside a group: returns the
 * permutation in order (n) and the group key of each box in key (n). */
static int group_boxes(int *order, int64_t *key, const mn_coco_ann *boxes, int n, const mn_coco_gt *gt,
                       const char *what)
{
    for (int i = 0; i < n; i++) {
        int img = mn_coco_gt_img_index(gt, boxes[i].image_id);
        int cat = mn_coco_gt_cat_index(gt, boxes[i].category_id);
        if (img < 0)
            return mn_error(MN_EINVAL, "%s %d: image_id %lld is not an image of the ground truth", what, i,
                            (long long)boxes[i].image_id);
        if (cat < 0)
            return mn_error(MN_EINVAL, "%s %d: category_id %lld is not a category of the ground truth", what, i,
                            (long long)boxes[i].category_id);
        key[i] = (int64_t)cat * gt->n_imgs + img;
        order[i] = i;
    }
    int *tmp = malloc(sizeof(int) * (size_t)(n + 1));
    if (!tmp) return mn_error(MN_ENOMEM, "out of memory grouping %d %ss", n, what);
    merge_sort(order, tmp, n, key, lower_i64);
    free(tmp);
    return 0;
}

typedef struct group {
    int gs, gn; /* range in the grouped gt pointers */
    int ds, dn; /* range in the grouped detection pointers */
} group;

/* Evaluates category k over its image groups and writes its slices of precision and recall. */
static int evaluate_category(mn_coco_eval *ev, int k, const group *grp, int n_grp, const mn_coco_ann *const *gp,
                             const mn_coco_ann *const *dp)
{
    const mn_coco_params *p = &ev->p;
    int max_det = p->max_dets[0];
    for (int m = 1; m < MN_COCO_M; m++)
        if (p->max_dets[m] > max_det) max_det = p->max_dets[m];
    mn_coco_img_eval *evals = calloc((size_t)n_grp + 1, sizeof *evals);
    if (!evals) return mn_error(MN_ENOMEM, "out of memory evaluating category %lld", (long long)ev->cat_ids[k]);
    double prec[MN_COCO_T * MN_COCO_R], rec[MN_COCO_T];
    int rc = 0;
    for (int a = 0; a < MN_COCO_A && !rc; a++) {
        for (int j = 0; j < n_grp && !rc; j++)
            rc = mn_coco_evaluate_img(&evals[j], gp + grp[j].gs, grp[j].gn, dp + grp[j].ds, grp[j].dn, p->area_rng[a],
                                      max_det, p->iou_thrs, MN_COCO_T);
        for (int m = 0; m < MN_COCO_M && !rc; m++) {
            int got = mn_coco_accumulate(prec, rec, evals, n_grp, p->max_dets[m], p->rec_thrs, MN_COCO_R, MN_COCO_T);
            if (got < 0) {
                rc = got;
                break;
            }
            for (int t = 0; t < MN_COCO_T; t++) {
                ev->recall[rec_at(ev, t, k, a, m)] = rec[t];
                for (int r = 0; r < MN_COCO_R; r++) ev->precision[prec_at(ev, t, r, k, a, m)] = prec[t * MN_COCO_R + r];
            }
        }
        for (int j = 0; j < n_grp; j++) mn_coco_img_eval_free(&evals[j]);
    }
    free(evals);
    return rc;
}

int mn_coco_evaluate(mn_coco_eval *ev, const mn_coco_gt *gt, const mn_coco_dets *dets, const mn_coco_params *params)
{
    memset(ev, 0, sizeof *ev);
    if (params) ev->p = *params;
    else mn_coco_params_default(&ev->p);
    /* COCOeval sorts maxDets; the largest is the per-image cut */
    for (int i = 1; i < MN_COCO_M; i++)
        for (int j = i; j > 0 && ev->p.max_dets[j] < ev->p.max_dets[j - 1]; j--) {
            int t = ev->p.max_dets[j];
            ev->p.max_dets[j] = ev->p.max_dets[j - 1];
            ev->p.max_dets[j - 1] = t;
        }
    if (ev->p.max_dets[0] < 0) return mn_error(MN_EINVAL, "coco eval: maxDets must not be negative");
    const int K = gt->n_cats, NG = gt->n_anns, ND = dets ? dets->n : 0;
    ev->n_cats = K;
    size_t np_ = (size_t)MN_COCO_T * MN_COCO_R * K * MN_COCO_A * MN_COCO_M + 1;
    size_t nr = (size_t)MN_COCO_T * K * MN_COCO_A * MN_COCO_M + 1;
    ev->cat_ids = malloc(sizeof(int64_t) * ((size_t)K + 1));
    ev->precision = malloc(sizeof(double) * np_);
    ev->recall = malloc(sizeof(double) * nr);
    int *gord = malloc(sizeof(int) * ((size_t)NG + 1)), *dord = malloc(sizeof(int) * ((size_t)ND + 1));
    int64_t *gkey = malloc(sizeof(int64_t) * ((size_t)NG + 1)), *dkey = malloc(sizeof(int64_t) * ((size_t)ND + 1));
    const mn_coco_ann **gp = malloc(sizeof *gp * ((size_t)NG + 1)), **dp = malloc(sizeof *dp * ((size_t)ND + 1));
    group *grp = malloc(sizeof *grp * ((size_t)gt->n_imgs + 1));
    int rc = 0;
    if (!ev->cat_ids || !ev->precision || !ev->recall || !gord || !dord || !gkey || !dkey || !gp || !dp || !grp) {
        rc = mn_error(MN_ENOMEM, "coco eval: out of memory (%d categories, %d gt, %d detections)", K, NG, ND);
        goto done;
    }
    for (int k = 0; k < K; k++) ev->cat_ids[k] = gt->cats[k].id;
    for (size_t i = 0; i < np_; i++) ev->precision[i] = -1;
    for (size_t i = 0; i < nr; i++) ev->recall[i] = -1;
    if ((rc = group_boxes(gord, gkey, gt->anns, NG, gt, "ground truth")) ||
        (rc = group_boxes(dord, dkey, ND ? dets->dets : NULL, ND, gt, "detection")))
        goto done;
    for (int i = 0; i < NG; i++) gp[i] = &gt->anns[gord[i]];
    for (int i = 0; i < ND; i++) dp[i] = &dets->dets[dord[i]];
    /* walk both grouped lists one category at a time, collecting the images that have gt or detections */
    int gi = 0, di = 0;
    for (int k = 0; k < K && !rc; k++) {
        int n_grp = 0;
        int64_t end = (int64_t)(k + 1) * gt->n_imgs;
        while ((gi < NG && gkey[gord[gi]] < end) || (di < ND && dkey[dord[di]] < end)) {
            int64_t gk = gi < NG ? gkey[gord[gi]] : INT64_MAX, dk = di < ND ? dkey[dord[di]] : INT64_MAX;
            int64_t key = gk < dk ? gk : dk;
            group *g = &grp[n_grp++];
            g->gs = gi;
            g->ds = di;
            while (gi < NG && gkey[gord[gi]] == key) gi++;
            while (di < ND && dkey[dord[di]] == key) di++;
            g->gn = gi - g->gs;
            g->dn = di - g->ds;
        }
        rc = evaluate_category(ev, k, grp, n_grp, gp, dp);
    }
done:
    free(gord);
    free(dord);
    free(gkey);
    free(dkey);
    free(gp);
    free(dp);
    free(grp);
    if (rc) mn_coco_eval_free(ev);
    return rc;
}

/* ---- summary -------------------------------------------------------------------------------------------------- */

/* numpy's pairwise summation of one block: a plain loop under 8 values, 8 interleaved partial sums up to
 * 128, else split at a multiple of 8 near the middle. */
static double pairwise_sum(const double *v, int64_t n)
{
    if (n < 8) {
        double s = 0.;
        for (int64_t i = 0; i < n; i++) s += v[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = v[j];
        int64_t i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += v[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) s += v[i];
        return s;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(v, n2) + pairwise_sum(v + n2, n - n2);
}

double mn_coco_np_sum(const double *v, int64_t n)
{
    /* the reduction iterator hands the loop blocks of numpy's buffer size (8192): each block is summed
     * pairwise and the block sums are added in order */
    double s = 0.;
    for (int64_t i = 0; i < n; i += 8192) s += pairwise_sum(v + i, n - i < 8192 ? n - i : 8192);
    return s;
}

/* np.mean(s[s > -1]), or -1 when nothing is left. */
static double mean_valid(double *v, int64_t n)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        if (v[i] > -1) v[c++] = v[i];
    return c ? mn_coco_np_sum(v, c) / (double)c : -1.0;
}

double mn_coco_summary_stat(const mn_coco_eval *ev, int ap, double iou_thr, int area, int max_det)
{
    const int K = ev->n_cats;
    int m = -1;
    for (int i = 0; i < MN_COCO_M; i++)
        if (ev->p.max_dets[i] == max_det) m = i;
    if (m < 0 || area < 0 || area >= MN_COCO_A || K == 0) return -1.0;
    double *buf = malloc(sizeof(double) * ((size_t)MN_COCO_T * MN_COCO_R * K + 1));
    if (!buf) {
        mn_error(MN_ENOMEM, "coco summary: out of memory");
        return NAN;
    }
    int64_t n = 0;
    /* gathered in numpy's C order over (T, R, K) or (T, K), as s[s > -1] flattens */
    for (int t = 0; t < MN_COCO_T; t++) {
        if (iou_thr >= 0 && !(ev->p.iou_thrs[t] == iou_thr)) continue;
        if (ap) {
            for (int r = 0; r < MN_COCO_R; r++)
                for (int k = 0; k < K; k++) buf[n++] = ev->precision[prec_at(ev, t, r, k, area, m)];
        } else {
            for (int k = 0; k < K; k++) buf[n++] = ev->recall[rec_at(ev, t, k, area, m)];
        }
    }
    double s = mean_valid(buf, n);
    free(buf);
    return s;
}

void mn_coco_summarize(double *stats, const mn_coco_eval *ev)
{
    const int *md = ev->p.max_dets;
    stats[MN_COCO_AP] = mn_coco_summary_stat(ev, 1, -1, MN_COCO_AREA_ALL, 100);
    stats[MN_COCO_AP50] = mn_coco_summary_stat(ev, 1, .5, MN_COCO_AREA_ALL, md[2]);
    stats[MN_COCO_AP75] = mn_coco_summary_stat(ev, 1, .75, MN_COCO_AREA_ALL, md[2]);
    stats[MN_COCO_APS] = mn_coco_summary_stat(ev, 1, -1, MN_COCO_AREA_SMALL, md[2]);
    stats[MN_COCO_APM] = mn_coco_summary_stat(ev, 1, -1, MN_COCO_AREA_MEDIUM, md[2]);
    stats[MN_COCO_APL] = mn_coco_summary_stat(ev, 1, -1, MN_COCO_AREA_LARGE, md[2]);
    stats[MN_COCO_AR1] = mn_coco_summary_stat(ev, 0, -1, MN_COCO_AREA_ALL, md[0]);
    stats[MN_COCO_AR10] = mn_coco_summary_stat(ev, 0, -1, MN_COCO_AREA_ALL, md[1]);
    stats[MN_COCO_AR100] = mn_coco_summary_stat(ev, 0, -1, MN_COCO_AREA_ALL, md[2]);
    stats[MN_COCO_ARS] = mn_coco_summary_stat(ev, 0, -1, MN_COCO_AREA_SMALL, md[2]);
    stats[MN_COCO_ARM] = mn_coco_summary_stat(ev, 0, -1, MN_COCO_AREA_MEDIUM, md[2]);
    stats[MN_COCO_ARL] = mn_coco_summary_stat(ev, 0, -1, MN_COCO_AREA_LARGE, md[2]);
}

double mn_coco_category_ap(const mn_coco_eval *ev, int k)
{
    if (k < 0 || k >= ev->n_cats) return -1.0;
    double buf[MN_COCO_T * MN_COCO_R];
    int64_t n = 0;
    for (int t = 0; t < MN_COCO_T; t++)
        for (int r = 0; r < MN_COCO_R; r++)
            buf[n++] = ev->precision[prec_at(ev, t, r, k, MN_COCO_AREA_ALL, MN_COCO_M - 1)];
    return mean_valid(buf, n);
}
