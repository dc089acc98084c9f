/* The inference API (mn/infer.h) over the task models and their per-image predictions (the eval
 * layer's mn_seg_predict, mn_det_predict, mn_cls_predict, which `mutualnet predict` runs too). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/cls_eval.h"
#include "mn/det_eval.h"
#include "mn/image.h"
#include "mn/infer.h"
#include "mn/model.h"
#include "mn/seg_eval.h"
#include "mn/tape.h"

struct mn_infer {
    mn_model model;
    mn_tape tape;                 /* activations of one image */
    mn_infer_config cfg;          /* what is selected */
    float width_lo, width_hi;     /* trained range */
    uint8_t *rgb;                 /* (h, w, 3) packed copy of a strided input */
    size_t rgb_cap;
    float *probs;                 /* (num_classes) classification */
    int *top;                     /* (num_classes) classification */
    char err[512];
};

int mn_api_version(void) { return MN_API_VERSION; }

/* Keeps the calling thread's error message in the handle and passes the code on. */
static int fail(mn_infer *inf, int rc)
{
    snprintf(inf->err, sizeof inf->err, "%s", mn_last_error());
    return rc;
}

static void copy_err(char *err, size_t err_size, const char *msg)
{
    if (err && err_size) snprintf(err, err_size, "%s", msg);
}

static const char *task_noun(enum mn_task_kind t)
{
    return t == MN_TASK_DETECTION ? "detector" : t == MN_TASK_CLASSIFICATION ? "classifier" : "segmenter";
}

/* A configuration as the API describes it: the table's score and time when the table has it. */
static mn_infer_config config_of(const mn_query_table *q, float width, int h, int w, int64_t macs)
{
    int k = mn_query_find(q, width, h, w);
    return (mn_infer_config){.width = width, .h = h, .w = w, .macs = macs, .score = k < 0 ? -1.0 : q->e[k].score,
                             .ms = k < 0 ? 0.0 : q->e[k].ms};
}

/* Loads the BN statistics of a configuration and costs it; the selection changes only on success.
 * A detector's w is its long-side cap, whatever was passed. */
static int apply(mn_infer *inf, float width, int h, int w)
{
    mn_model *m = &inf->model;
    if (m->task == MN_TASK_DETECTION) w = m->det.cfg.det.max_side;
    int64_t macs;
    int rc = mn_model_flops(m, width, h, w, &macs);
    if (!rc) rc = mn_model_select(m, width, h, w);
    if (rc) {
        /* select may have loaded part of the statistics: restore the previous configuration's */
        mn_model_select(m, inf->cfg.width, inf->cfg.h, inf->cfg.w);
        return rc;
    }
    inf->cfg = config_of(mn_model_table(m), width, h, w, macs);
    return 0;
}

mn_infer *mn_infer_open(const char *checkpoint, char *err, size_t err_size)
{
    copy_err(err, err_size, "");
    if (!checkpoint) {
        copy_err(err, err_size, "mn_infer_open: no checkpoint path given");
        return NULL;
    }
    mn_infer *inf = calloc(1, sizeof *inf);
    if (!inf) {
        copy_err(err, err_size, "mn_infer_open: out of memory");
        return NULL;
    }
    mn_model *m = &inf->model;
    int rc = mn_model_open(m, checkpoint);
    if (rc) {
        copy_err(err, err_size, mn_last_error());
        free(inf);
        return NULL;
    }
    mn_tape_init(&inf->tape, 0);
    const mn_config *c = mn_model_config(m);
    bool one = c->mutual.mode == MN_MODE_INDEPENDENT;
    inf->width_lo = one ? c->mutual.width : c->mutual.width_min;
    inf->width_hi = one ? c->mutual.width : c->mutual.width_max;
    int K = mn_model_num_classes(m);
    if (m->task == MN_TASK_CLASSIFICATION) {
        inf->probs = malloc(sizeof(float) * (size_t)K);
        inf->top = malloc(sizeof(int) * (size_t)K);
        if (!inf->probs || !inf->top) rc = mn_error(MN_ENOMEM, "%s: out of memory", checkpoint);
    }
    /* predict's default: the widest trained width at the evaluation size (a detector's short side) */
    int h = m->task == MN_TASK_DETECTION ? c->det.short_side : c->data.eval_size[0];
    int w = m->task == MN_TASK_DETECTION ? c->det.max_side : c->data.eval_size[1];
    inf->cfg = (mn_infer_config){.width = inf->width_hi, .h = h, .w = w, .score = -1};
    if (!rc) rc = apply(inf, inf->width_hi, h, w);
    if (rc) {
        copy_err(err, err_size, mn_last_error());
        mn_infer_close(inf);
        return NULL;
    }
    return inf;
}

void mn_infer_close(mn_infer *inf)
{
    if (!inf) return;
    mn_model_free(&inf->model);
    mn_tape_free(&inf->tape);
    free(inf->rgb);
    free(inf->probs);
    free(inf->top);
    free(inf);
}

const char *mn_infer_error(const mn_infer *inf) { return inf ? inf->err : "no handle (mn_infer_open failed)"; }

enum mn_infer_task mn_infer_task(const mn_infer *inf)
{
    switch (inf->model.task) {
    case MN_TASK_DETECTION: return MN_INFER_DETECTION;
    case MN_TASK_CLASSIFICATION: return MN_INFER_CLASSIFICATION;
    case MN_TASK_SEGMENTATION: break;
    }
    return MN_INFER_SEGMENTATION;
}

int mn_infer_num_classes(const mn_infer *inf) { return mn_model_num_classes(&inf->model); }

const char *mn_infer_class_name(const mn_infer *inf, int k) { return mn_model_class_name(&inf->model, k); }

int mn_infer_select_budget(mn_infer *inf, double macs)
{
    const mn_query_table *q = mn_model_table(&inf->model);
    if (q->n == 0)
        return fail(inf, mn_error(MN_EINVAL, "this checkpoint has no query table (run mutualnet calibrate on it)"));
    int k = mn_query_select(q, macs);
    if (k < 0) {
        double least = (double)q->e[0].macs;
        for (int i = 1; i < q->n; i++)
            if ((double)q->e[i].macs < least) least = (double)q->e[i].macs;
        return fail(inf, mn_error(MN_EINVAL, "no configuration fits %.3gG MACs; the cheapest needs %.3gG", macs / 1e9,
                                  least / 1e9));
    }
    int rc = apply(inf, q->e[k].width, q->e[k].h, q->e[k].w);
    return rc ? fail(inf, rc) : 0;
}

int mn_infer_select_budget_ms(mn_infer *inf, double ms)
{
    const mn_query_table *q = mn_model_table(&inf->model);
    if (q->n == 0)
        return fail(inf, mn_error(MN_EINVAL, "this checkpoint has no query table (run mutualnet calibrate --latency on it)"));
    int k;
    int rc = mn_query_select_ms(q, ms, &k);
    if (!rc) rc = apply(inf, q->e[k].width, q->e[k].h, q->e[k].w);
    return rc ? fail(inf, rc) : 0;
}

int mn_infer_select(mn_infer *inf, float width, int h, int w)
{
    bool det = inf->model.task == MN_TASK_DETECTION;
    if (!(width >= inf->width_lo - 1e-4f && width <= inf->width_hi + 1e-4f))
        return fail(inf, mn_error(MN_EINVAL, "width %g is outside the trained range [%g, %g]", (double)width,
                                  (double)inf->width_lo, (double)inf->width_hi));
    if (h < 32 || h > 8192 || (!det && (w < 32 || w > 8192)))
        return fail(inf, mn_error(MN_EINVAL, "input size %dx%d: each side must be 32 to 8192", h, w));
    int rc = apply(inf, width, h, w);
    return rc ? fail(inf, rc) : 0;
}

void mn_infer_selected(const mn_infer *inf, mn_infer_config *out) { *out = inf->cfg; }

void mn_infer_width_range(const mn_infer *inf, float *lo, float *hi)
{
    *lo = inf->width_lo;
    *hi = inf->width_hi;
}

int mn_infer_table_size(const mn_infer *inf) { return mn_model_table(&inf->model)->n; }

int mn_infer_table_entry(const mn_infer *inf, int i, mn_infer_config *out)
{
    const mn_query_table *q = mn_model_table(&inf->model);
    if (i < 0 || i >= q->n) {
        /* the handle is const here: the message goes to the caller's thread only */
        return mn_error(MN_EINVAL, "table entry %d of %d", i, q->n);
    }
    const mn_query_entry *e = &q->e[i];
    *out = (mn_infer_config){.width = e->width, .h = e->h, .w = e->w, .macs = e->macs, .score = e->score, .ms = e->ms};
    return 0;
}

/* Checks the call against the model's task and the image's size, and views the image as an
 * mn_image: the caller's pixels when packed, else a packed copy in the handle. */
static int image_of(mn_infer *inf, enum mn_task_kind task, const char *fn, const uint8_t *rgb, int h, int w,
                    int stride, mn_image *img)
{
    if (inf->model.task != task)
        return mn_error(MN_EINVAL, "%s: the model is a %s", fn, task_noun(inf->model.task));
    if (!rgb) return mn_error(MN_EINVAL, "%s: no image", fn);
    if (h < 1 || w < 1 || (int64_t)h * w > MN_IMAGE_DEFAULT_MAX_PIXELS)
        return mn_error(MN_EINVAL, "%s: image %dx%d: need 1 to %lld pixels", fn, w, h,
                        (long long)MN_IMAGE_DEFAULT_MAX_PIXELS);
    if (stride == 0) stride = 3 * w;
    if (stride < 3 * w) return mn_error(MN_EINVAL, "%s: stride %d is below 3 x width %d", fn, stride, w);
    *img = (mn_image){.w = w, .h = h, .c = 3};
    if (stride == 3 * w) {
        img->data = (uint8_t *)rgb; /* read only: the predictions take a const image */
        return 0;
    }
    size_t row = (size_t)w * 3, need = row * (size_t)h;
    if (need > inf->rgb_cap) {
        uint8_t *p = realloc(inf->rgb, need);
        if (!p) return mn_error(MN_ENOMEM, "%s: out of memory for a %dx%d image", fn, w, h);
        inf->rgb = p;
        inf->rgb_cap = need;
    }
    for (int y = 0; y < h; y++) memcpy(inf->rgb + (size_t)y * row, rgb + (size_t)y * (size_t)stride, row);
    img->data = inf->rgb;
    return 0;
}

int mn_infer_segment(mn_infer *inf, const uint8_t *rgb /* (h, stride) */, int h, int w, int stride,
                     uint8_t *labels /* (h, w) */)
{
    mn_image img;
    int rc = image_of(inf, MN_TASK_SEGMENTATION, "mn_infer_segment", rgb, h, w, stride, &img);
    if (!rc && !labels) rc = mn_error(MN_EINVAL, "mn_infer_segment: no label buffer");
    if (!rc) rc = mn_seg_predict(&inf->model.seg, &inf->tape, &img, inf->cfg.width, inf->cfg.h, inf->cfg.w, labels);
    return rc ? fail(inf, rc) : 0;
}

int mn_infer_detect(mn_infer *inf, const uint8_t *rgb /* (h, stride) */, int h, int w, int stride, float min_score,
                    mn_infer_box *boxes /* (max_boxes) */, int max_boxes, int *n)
{
    if (n) *n = 0;
    mn_image img;
    int rc = image_of(inf, MN_TASK_DETECTION, "mn_infer_detect", rgb, h, w, stride, &img);
    if (!rc && (!n || max_boxes < 0 || (max_boxes > 0 && !boxes)))
        rc = mn_error(MN_EINVAL, "mn_infer_detect: no room for the boxes or their count");
    mn_detection *d = NULL;
    int nd = 0;
    if (!rc) rc = mn_det_predict(&inf->model.det, &inf->tape, &img, inf->cfg.width, inf->cfg.h, &d, &nd);
    const mn_det_model *m = &inf->model.det;
    /* by score descending, so the first max_boxes that pass are the best */
    for (int i = 0; !rc && i < nd && *n < max_boxes; i++) {
        if (!(d[i].score >= min_score)) continue;
        bool known = d[i].label >= 0 && d[i].label < m->num_classes;
        boxes[(*n)++] = (mn_infer_box){.x1 = d[i].x1, .y1 = d[i].y1, .x2 = d[i].x2, .y2 = d[i].y2, .score = d[i].score,
                                       .class_index = d[i].label,
                                       .category_id = known ? m->category_ids[d[i].label] : -1,
                                       .class_name = known ? m->class_names[d[i].label] : ""};
    }
    free(d);
    return rc ? fail(inf, rc) : 0;
}

int mn_infer_classify(mn_infer *inf, const uint8_t *rgb /* (h, stride) */, int h, int w, int stride,
                      mn_infer_class *top /* (k) */, int k, int *n)
{
    if (n) *n = 0;
    mn_image img;
    int rc = image_of(inf, MN_TASK_CLASSIFICATION, "mn_infer_classify", rgb, h, w, stride, &img);
    if (!rc && (!n || k < 0 || (k > 0 && !top)))
        rc = mn_error(MN_EINVAL, "mn_infer_classify: no room for the classes or their count");
    mn_cls_model *m = &inf->model.cls;
    if (!rc) rc = mn_cls_predict(m, &inf->tape, &img, inf->cfg.width, inf->cfg.h, inf->cfg.w, inf->probs);
    if (rc) return fail(inf, rc);
    if (k > m->num_classes) k = m->num_classes;
    mn_cls_topk(inf->probs, m->num_classes, k, inf->top);
    for (int r = 0; r < k; r++)
        top[r] = (mn_infer_class){.class_index = inf->top[r], .probability = inf->probs[inf->top[r]],
                                  .class_name = m->class_names[inf->top[r]]};
    *n = k;
    return 0;
}

uint8_t *mn_infer_image_load(const char *path, int *h, int *w, char *err, size_t err_size)
{
    copy_err(err, err_size, "");
    mn_image img = {0};
    if (!path || !h || !w || mn_image_load(path, 3, &img)) {
        copy_err(err, err_size, path && h && w ? mn_last_error() : "mn_infer_image_load: missing argument");
        return NULL;
    }
    *h = img.h;
    *w = img.w;
    return img.data;
}

void mn_infer_image_free(uint8_t *rgb) { free(rgb); }
