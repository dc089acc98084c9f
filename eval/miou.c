/* Confusion-matrix accumulation and mIoU / aAcc / mAcc (mmsegmentation's conventions). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mn/image.h"
#include "mn/miou.h"

int mn_confusion_init(mn_confusion *c, int n_classes)
{
    memset(c, 0, sizeof *c);
    if (n_classes < 1 || n_classes > 65536)
        return mn_error(MN_EINVAL, "confusion matrix: %d classes (expected 1..65536)", n_classes);
    c->count = calloc((size_t)n_classes * (size_t)(n_classes + 1), sizeof(int64_t));
    if (!c->count) return mn_error(MN_ENOMEM, "confusion matrix: out of memory for %d classes", n_classes);
    c->n = n_classes;
    return 0;
}

void mn_confusion_reset(mn_confusion *c)
{
    if (c->count) memset(c->count, 0, sizeof(int64_t) * (size_t)c->n * (size_t)(c->n + 1));
}

void mn_confusion_free(mn_confusion *c)
{
    if (!c) return;
    free(c->count);
    memset(c, 0, sizeof *c);
}

/* The first gt value that is neither a class nor the ignore value: its index, or -1. Checked before
 * counting so that a refused batch leaves the matrix untouched. */
#define FIRST_BAD_GT(gt, n_px, n, ignore, out)                                   \
    do {                                                                         \
        (out) = -1;                                                              \
        for (int64_t i_ = 0; i_ < (n_px); i_++) {                                \
            int64_t g_ = (gt)[i_];                                               \
            if (g_ != (ignore) && (g_ < 0 || g_ >= (n))) {                       \
                (out) = i_;                                                      \
                break;                                                           \
            }                                                                    \
        }                                                                        \
    } while (0)

/* Rows are true classes; an out-of-range prediction goes to the extra last column. */
#define COUNT_PAIRS(c, pred, gt, n_px, ignore)                                   \
    do {                                                                         \
        const int64_t n_ = (c)->n;                                               \
        for (int64_t i_ = 0; i_ < (n_px); i_++) {                                \
            int64_t g_ = (gt)[i_], p_ = (pred)[i_];                              \
            if (g_ == (ignore)) continue;                                        \
            if (p_ < 0 || p_ >= n_) p_ = n_;                                     \
            (c)->count[g_ * (n_ + 1) + p_]++;                                    \
        }                                                                        \
    } while (0)

static int bad_gt(const mn_confusion *c, int64_t at, int64_t value, int ignore)
{
    return mn_error(MN_EINVAL, "ground truth value %lld at pixel %lld is not a class (0..%d) nor the ignore value %d",
                    (long long)value, (long long)at, c->n - 1, ignore);
}

int mn_confusion_add_u8(mn_confusion *c, const uint8_t *pred, const uint8_t *gt, int64_t n_px, int ignore)
{
    int64_t bad;
    FIRST_BAD_GT(gt, n_px, c->n, ignore, bad);
    if (bad >= 0) return bad_gt(c, bad, gt[bad], ignore);
    COUNT_PAIRS(c, pred, gt, n_px, ignore);
    return 0;
}

int mn_confusion_add_i32(mn_confusion *c, const int32_t *pred, const int32_t *gt, int64_t n_px, int ignore)
{
    int64_t bad;
    FIRST_BAD_GT(gt, n_px, c->n, ignore, bad);
    if (bad >= 0) return bad_gt(c, bad, gt[bad], ignore);
    COUNT_PAIRS(c, pred, gt, n_px, ignore);
    return 0;
}

int mn_confusion_merge(mn_confusion *dst, const mn_confusion *src)
{
    if (dst->n != src->n)
        return mn_error(MN_EINVAL, "confusion matrices have %d and %d classes", dst->n, src->n);
    size_t n = (size_t)dst->n * (size_t)(dst->n + 1);
    for (size_t i = 0; i < n; i++) dst->count[i] += src->count[i];
    return 0;
}

void mn_miou_result_free(mn_miou_result *r)
{
    if (!r) return;
    free(r->iou);
    free(r->acc);
    memset(r, 0, sizeof *r);
}

int mn_miou_compute(mn_miou_result *r, const mn_confusion *c)
{
    memset(r, 0, sizeof *r);
    const int n = c->n;
    r->iou = malloc(sizeof(double) * (size_t)n);
    r->acc = malloc(sizeof(double) * (size_t)n);
    if (!r->iou || !r->acc) {
        mn_miou_result_free(r);
        return mn_error(MN_ENOMEM, "miou: out of memory for %d classes", n);
    }
    r->n = n;
    int64_t tp_all = 0, px_all = 0;
    double iou_sum = 0, acc_sum = 0;
    int iou_n = 0, acc_n = 0;
    for (int k = 0; k < n; k++) {
        int64_t tp = c->count[(int64_t)k * (n + 1) + k], gt_px = 0, pred_px = 0;
        for (int j = 0; j <= n; j++) gt_px += c->count[(int64_t)k * (n + 1) + j];
        for (int i = 0; i < n; i++) pred_px += c->count[(int64_t)i * (n + 1) + k];
        int64_t uni = gt_px + pred_px - tp;
        r->iou[k] = uni > 0 ? (double)tp / (double)uni : NAN;
        r->acc[k] = gt_px > 0 ? (double)tp / (double)gt_px : NAN;
        if (uni > 0) {
            iou_sum += r->iou[k];
            iou_n++;
        }
        if (gt_px > 0) {
            acc_sum += r->acc[k];
            acc_n++;
        }
        tp_all += tp;
        px_all += gt_px;
    }
    r->pixels = px_all;
    r->miou = iou_n ? iou_sum / iou_n : NAN;
    r->macc = acc_n ? acc_sum / acc_n : NAN;
    r->aacc = px_all ? (double)tp_all / (double)px_all : NAN;
    return 0;
}

/* ---- folders of index PNGs ------------------------------------------------------------------------------ */

typedef struct name_list {
    char **v;
    int n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The *.png names (any case of the extension) in dir, sorted. */
static int list_pngs(name_list *l, const char *dir)
{
    memset(l, 0, sizeof *l);
    DIR *d = opendir(dir);
    if (!d) return mn_error(MN_EIO, "%s: cannot open the folder", dir);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcasecmp(e->d_name + len - 4, ".png") != 0) continue;
        if (l->n == l->cap) {
            int cap = l->cap ? l->cap * 2 : 64;
            char **nv = realloc(l->v, sizeof *nv * (size_t)cap);
            if (!nv) {
                rc = mn_error(MN_ENOMEM, "%s: out of memory listing files", dir);
                break;
            }
            l->v = nv;
            l->cap = cap;
        }
        char *s = malloc(len + 1);
        if (!s) {
            rc = mn_error(MN_ENOMEM, "%s: out of memory listing files", dir);
            break;
        }
        memcpy(s, e->d_name, len + 1);
        l->v[l->n++] = s;
    }
    closedir(d);
    if (rc) {
        names_free(l);
        return rc;
    }
    if (l->n) qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_name);
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Scores one pair of files; messages name the file at fault. */
static int score_pair(mn_confusion *c, const char *gt_path, const char *pred_path, int ignore)
{
    mn_image g = {0}, p = {0};
    int rc = mn_image_load_labels(gt_path, &g);
    if (!rc) rc = mn_image_load_labels(pred_path, &p);
    if (!rc && (g.w != p.w || g.h != p.h))
        rc = mn_error(MN_ESHAPE, "%s: prediction is %dx%d but the ground truth %s is %dx%d", pred_path, p.w, p.h,
                      gt_path, g.w, g.h);
    if (!rc) {
        int64_t n_px = (int64_t)g.w * g.h, bad;
        FIRST_BAD_GT(g.data, n_px, c->n, ignore, bad);
        if (bad >= 0)
            rc = mn_error(MN_EINVAL,
                          "%s: pixel (x %lld, y %lld) has value %d, which is not a class (0..%d) nor the ignore "
                          "value %d: is the class count right?",
                          gt_path, (long long)(bad % g.w), (long long)(bad / g.w), g.data[bad], c->n - 1, ignore);
        else
            rc = mn_confusion_add_u8(c, p.data, g.data, n_px, ignore);
    }
    mn_image_free(&g);
    mn_image_free(&p);
    return rc;
}

int mn_miou_score_dirs(mn_confusion *c, const char *gt_dir, const char *pred_dir, int ignore, int *n_files)
{
    *n_files = 0;
    name_list gl, pl;
    int rc = list_pngs(&gl, gt_dir);
    if (rc) return rc;
    if ((rc = list_pngs(&pl, pred_dir))) {
        names_free(&gl);
        return rc;
    }
    if (gl.n == 0) rc = mn_error(MN_EIO, "%s: no .png ground-truth files", gt_dir);
    /* both lists are sorted: walk them together so that a file on either side alone is reported */
    int i = 0, j = 0;
    while (!rc && (i < gl.n || j < pl.n)) {
        int cmp = i == gl.n ? 1 : j == pl.n ? -1 : strcmp(gl.v[i], pl.v[j]);
        const char *name = cmp <= 0 ? gl.v[i] : pl.v[j];
        char *gp = join(gt_dir, name), *pp = join(pred_dir, name);
        if (!gp || !pp) rc = mn_error(MN_ENOMEM, "out of memory");
        else if (cmp < 0) rc = mn_error(MN_EIO, "%s: missing prediction for %s", pp, gp);
        else if (cmp > 0) rc = mn_error(MN_EIO, "%s: prediction has no ground truth (%s is missing)", pp, gp);
        else if (!(rc = score_pair(c, gp, pp, ignore))) (*n_files)++;
        free(gp);
        free(pp);
        if (cmp <= 0) i++;
        if (cmp >= 0) j++;
    }
    names_free(&gl);
    names_free(&pl);
    return rc;
}
