#include <math.h>
#include <omp.h>

#include "core/kernels/roi_align.h"

/* Where one roi's bins and samples lie, in feature-map coordinates. */
typedef struct roi_geom {
    int64_t b;           /* image index */
    float y0, x0;        /* top-left corner */
    float bin_h, bin_w;
    int gy, gx;          /* samples per bin along y and x (0: the roi is empty) */
    float count;         /* samples averaged per bin, at least 1 */
} roi_geom;

static roi_geom roi_geometry(const float *r /* (5) */, const mn_roi_align_dims *d)
{
    roi_geom g;
    /* no rounding anywhere: the continuous coordinates are the point of RoIAlign */
    float off = d->aligned ? 0.5f : 0.0f;
    g.b = (int64_t)r[0];
    g.x0 = r[1] * d->spatial_scale - off;
    g.y0 = r[2] * d->spatial_scale - off;
    float roi_w = (r[3] * d->spatial_scale - off) - g.x0;
    float roi_h = (r[4] * d->spatial_scale - off) - g.y0;
    if (!d->aligned) {
        roi_w = roi_w > 1.0f ? roi_w : 1.0f;
        roi_h = roi_h > 1.0f ? roi_h : 1.0f;
    }
    g.bin_h = roi_h / (float)d->out_h;
    g.bin_w = roi_w / (float)d->out_w;
    if (d->sampling_ratio > 0) {
        g.gy = g.gx = d->sampling_ratio;
    } else {
        /* an inverted aligned roi gives a non-positive grid: no samples, output 0 */
        float cy = ceilf(roi_h / (float)d->out_h), cx = ceilf(roi_w / (float)d->out_w);
        g.gy = cy > 0.0f ? (int)cy : 0;
        g.gx = cx > 0.0f ? (int)cx : 0;
    }
    g.count = g.gy * g.gx > 1 ? (float)(g.gy * g.gx) : 1.0f;
    return g;
}

/* Coordinate of sample i (of n) in bin j, measured from start. */
static float sample_pos(float start, float bin, int j, int i, int n)
{
    return start + (float)j * bin + ((float)i + 0.5f) * bin / (float)n;
}

/* ---- reference: one sample at a time ---- */

/* The bilinear value of plane (H, W) at (y, x): 0 outside [-1, H] x [-1, W], else the
 * coordinates are clamped into the map first. */
static float bilinear_ref(const float *plane /* (H, W) */, int64_t h, int64_t w, float y, float x)
{
    if (y < -1.0f || y > (float)h || x < -1.0f || x > (float)w) return 0.0f;
    if (y <= 0.0f) y = 0.0f;
    if (x <= 0.0f) x = 0.0f;
    int64_t y_lo = (int64_t)y, x_lo = (int64_t)x, y_hi, x_hi;
    if (y_lo >= h - 1) {
        y_lo = y_hi = h - 1;
        y = (float)y_lo;
    } else {
        y_hi = y_lo + 1;
    }
    if (x_lo >= w - 1) {
        x_lo = x_hi = w - 1;
        x = (float)x_lo;
    } else {
        x_hi = x_lo + 1;
    }
    float ly = y - (float)y_lo, lx = x - (float)x_lo, hy = 1.0f - ly, hx = 1.0f - lx;
    return hy * hx * plane[y_lo * w + x_lo] + hy * lx * plane[y_lo * w + x_hi] + ly * hx * plane[y_hi * w + x_lo] +
           ly * lx * plane[y_hi * w + x_hi];
}

/* Adds g times the bilinear weights at (y, x) into dplane, under the rules of bilinear_ref. */
static void bilinear_scatter_ref(float *dplane /* (H, W) */, int64_t h, int64_t w, float y, float x, float g)
{
    if (y < -1.0f || y > (float)h || x < -1.0f || x > (float)w) return;
    if (y <= 0.0f) y = 0.0f;
    if (x <= 0.0f) x = 0.0f;
    int64_t y_lo = (int64_t)y, x_lo = (int64_t)x, y_hi, x_hi;
    if (y_lo >= h - 1) {
        y_lo = y_hi = h - 1;
        y = (float)y_lo;
    } else {
        y_hi = y_lo + 1;
    }
    if (x_lo >= w - 1) {
        x_lo = x_hi = w - 1;
        x = (float)x_lo;
    } else {
        x_hi = x_lo + 1;
    }
    float ly = y - (float)y_lo, lx = x - (float)x_lo, hy = 1.0f - ly, hx = 1.0f - lx;
    dplane[y_lo * w + x_lo] += g * hy * hx;
    dplane[y_lo * w + x_hi] += g * hy * lx;
    dplane[y_hi * w + x_lo] += g * ly * hx;
    dplane[y_hi * w + x_hi] += g * ly * lx;
}

void mn_roi_align_forward_ref(float *y, const float *x, const float *rois, const mn_roi_align_dims *d)
{
    for (int64_t r = 0; r < d->k; r++) {
        roi_geom g = roi_geometry(rois + r * 5, d);
        for (int64_t c = 0; c < d->c; c++) {
            const float *plane = x + (g.b * d->c + c) * d->h * d->w;
            float *out = y + (r * d->c + c) * d->out_h * d->out_w;
            for (int ph = 0; ph < d->out_h; ph++)
                for (int pw = 0; pw < d->out_w; pw++) {
                    float acc = 0.0f;
                    for (int iy = 0; iy < g.gy; iy++)
                        for (int ix = 0; ix < g.gx; ix++)
                            acc += bilinear_ref(plane, d->h, d->w, sample_pos(g.y0, g.bin_h, ph, iy, g.gy),
                                                sample_pos(g.x0, g.bin_w, pw, ix, g.gx));
                    out[ph * d->out_w + pw] = acc / g.count;
                }
        }
    }
}

void mn_roi_align_backward_ref(float *dx, const float *dy, const float *rois, const mn_roi_align_dims *d)
{
    for (int64_t r = 0; r < d->k; r++) {
        roi_geom g = roi_geometry(rois + r * 5, d);
        for (int64_t c = 0; c < d->c; c++) {
            float *dplane = dx + (g.b * d->c + c) * d->h * d->w;
            const float *gout = dy + (r * d->c + c) * d->out_h * d->out_w;
            for (int ph = 0; ph < d->out_h; ph++)
                for (int pw = 0; pw < d->out_w; pw++) {
                    float gbin = gout[ph * d->out_w + pw] / g.count;
                    for (int iy = 0; iy < g.gy; iy++)
                        for (int ix = 0; ix < g.gx; ix++)
                            bilinear_scatter_ref(dplane, d->h, d->w, sample_pos(g.y0, g.bin_h, ph, iy, g.gy),
                                                 sample_pos(g.x0, g.bin_w, pw, ix, g.gx), gbin);
                }
        }
    }
}

/* ---- optimised: per-roi separable sample tables ---- */

/* One sample's interpolation along one axis: rows (or columns) lo and hi with weights;
 * lo < 0 marks a sample outside [-1, size], which contributes nothing. */
typedef struct axis_sample {
    int32_t lo, hi;
    float wlo, whi;
} axis_sample;

typedef struct roi_plan {
    int64_t off;         /* first table entry of this roi: out_h * gy rows, then out_w * gx columns */
    int64_t q0, q1;      /* the columns its samples read: [q0, q1), empty when none is inside */
    roi_geom g;
} roi_plan;

static axis_sample axis_weights(float v, int64_t size)
{
    axis_sample s = {-1, -1, 0.0f, 0.0f};
    if (v < -1.0f || v > (float)size) return s;
    if (v <= 0.0f) v = 0.0f;
    int64_t lo = (int64_t)v, hi;
    if (lo >= size - 1) {
        lo = hi = size - 1;
        v = (float)lo;
    } else {
        hi = lo + 1;
    }
    float l = v - (float)lo;
    s.lo = (int32_t)lo;
    s.hi = (int32_t)hi;
    s.wlo = 1.0f - l;
    s.whi = l;
    return s;
}

static size_t plans_bytes(int64_t k) { return ((size_t)k * sizeof(roi_plan) + 63) / 64 * 64; }

static size_t table_entries(const float *rois, const mn_roi_align_dims *d)
{
    size_t entries = 0;
    for (int64_t r = 0; r < d->k; r++) {
        roi_geom g = roi_geometry(rois + r * 5, d);
        entries += (size_t)d->out_h * (size_t)g.gy + (size_t)d->out_w * (size_t)g.gx;
    }
    return entries;
}

/* plans, then tables, then one row of W floats per thread */
size_t mn_roi_align_ws_bytes(const float *rois, const mn_roi_align_dims *d)
{
    const size_t tables = (table_entries(rois, d) * sizeof(axis_sample) + 63) / 64 * 64;
    return plans_bytes(d->k) + tables + (size_t)omp_get_max_threads() * (size_t)d->w * sizeof(float);
}

/* Fills the plan headers (serially: a prefix sum), returns the table base and sets *rows to
 * the per-thread rows after the tables. */
static axis_sample *make_plans(roi_plan *plans /* (K) */, float **rows, const float *rois /* (K, 5) */,
                               const mn_roi_align_dims *d)
{
    int64_t off = 0;
    for (int64_t r = 0; r < d->k; r++) {
        plans[r].g = roi_geometry(rois + r * 5, d);
        plans[r].off = off;
        off += (int64_t)d->out_h * plans[r].g.gy + (int64_t)d->out_w * plans[r].g.gx;
    }
    axis_sample *tab = (axis_sample *)((char *)plans + plans_bytes(d->k));
    *rows = (float *)((char *)tab + ((size_t)off * sizeof(axis_sample) + 63) / 64 * 64);
    return tab;
}

static void fill_tables(axis_sample *tab /* roi's entries */, const roi_geom *g, const mn_roi_align_dims *d)
{
    axis_sample *yt = tab, *xt = tab + (int64_t)d->out_h * g->gy;
    for (int ph = 0; ph < d->out_h; ph++)
        for (int iy = 0; iy < g->gy; iy++)
            yt[ph * g->gy + iy] = axis_weights(sample_pos(g->y0, g->bin_h, ph, iy, g->gy), d->h);
    for (int pw = 0; pw < d->out_w; pw++)
        for (int ix = 0; ix < g->gx; ix++)
            xt[pw * g->gx + ix] = axis_weights(sample_pos(g->x0, g->bin_w, pw, ix, g->gx), d->w);
}

/* The columns [*q0, *q1) the roi's column samples read (empty when none is inside). */
static void column_span(const axis_sample *xt, int64_t n, int64_t *q0, int64_t *q1)
{
    *q0 = INT64_MAX;
    *q1 = 0;
    for (int64_t i = 0; i < n; i++)
        if (xt[i].lo >= 0) {
            if (xt[i].lo < *q0) *q0 = xt[i].lo;
            if (xt[i].hi + 1 > *q1) *q1 = xt[i].hi + 1;
        }
    if (*q1 < *q0) *q0 = *q1;
}

/* Every roi's tables, then its column span. */
static void plan_roi(roi_plan *p, axis_sample *tables, const mn_roi_align_dims *d)
{
    axis_sample *yt = tables + p->off;
    fill_tables(yt, &p->g, d);
    column_span(yt + (int64_t)d->out_h * p->g.gy, (int64_t)d->out_w * p->g.gx, &p->q0, &p->q1);
}

/* The bilinear weight of a sample is a row part times a column part, so each bin row is two
 * passes: the bin row's samples interpolated along y into one row t of the roi's columns
 * (contiguous, vectorised), then each bin's column samples read from t. Channels are spread
 * over threads and every roi visits a channel in turn, so a channel's plane is read from
 * cache by all the rois (rois outermost, each roi read 256 planes of an FPN level: the
 * detector's inference waited on memory more than half of RoIAlign's time). */
void mn_roi_align_forward(float *y, void *ws, const float *x, const float *rois, const mn_roi_align_dims *d)
{
    roi_plan *plans = ws;
    float *rows;
    axis_sample *tables = make_plans(plans, &rows, rois, d);
    const int64_t hw = d->h * d->w, ohw = (int64_t)d->out_h * d->out_w;
#pragma omp parallel if (d->k * d->c * ohw > 4096)
    {
        float *t = rows + (int64_t)omp_get_thread_num() * d->w;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < d->k; r++) plan_roi(&plans[r], tables, d);
        /* the implicit barrier above publishes every table before any channel uses them */
#pragma omp for schedule(static)
        for (int64_t c = 0; c < d->c; c++)
            for (int64_t r = 0; r < d->k; r++) {
                const roi_geom *g = &plans[r].g;
                const axis_sample *yt = tables + plans[r].off, *xt = yt + (int64_t)d->out_h * g->gy;
                const int64_t q0 = plans[r].q0, q1 = plans[r].q1;
                const float *plane = x + (g->b * d->c + c) * hw;
                float *out = y + (r * d->c + c) * ohw;
                for (int ph = 0; ph < d->out_h; ph++) {
                    for (int64_t q = q0; q < q1; q++) t[q] = 0.0f;
                    for (int iy = 0; iy < g->gy; iy++) {
                        const axis_sample sy = yt[ph * g->gy + iy];
                        if (sy.lo < 0) continue;
                        const float *rlo = plane + (int64_t)sy.lo * d->w, *rhi = plane + (int64_t)sy.hi * d->w;
                        for (int64_t q = q0; q < q1; q++) t[q] += sy.wlo * rlo[q] + sy.whi * rhi[q];
                    }
                    for (int pw = 0; pw < d->out_w; pw++) {
                        float acc = 0.0f;
                        for (int ix = 0; ix < g->gx; ix++) {
                            const axis_sample sx = xt[pw * g->gx + ix];
                            if (sx.lo < 0) continue;
                            acc += sx.wlo * t[sx.lo] + sx.whi * t[sx.hi];
                        }
                        out[ph * d->out_w + pw] = acc / g->count;
                    }
                }
            }
    }
}

/* The forward pass transposed: per bin row, the bins' gradients gathered into one row of the
 * roi's columns, then spread over the sample rows. */
void mn_roi_align_backward(float *dx, void *ws, const float *dy, const float *rois, const mn_roi_align_dims *d)
{
    roi_plan *plans = ws;
    float *rows;
    axis_sample *tables = make_plans(plans, &rows, rois, d);
    const int64_t hw = d->h * d->w, ohw = (int64_t)d->out_h * d->out_w;
    const bool par = d->k * d->c * ohw > 4096;
#pragma omp parallel if (par)
    {
        float *t = rows + (int64_t)omp_get_thread_num() * d->w;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < d->k; r++) plan_roi(&plans[r], tables, d);
        /* the implicit barrier above publishes every table before any channel uses them */
#pragma omp for schedule(static)
        for (int64_t c = 0; c < d->c; c++)
            for (int64_t r = 0; r < d->k; r++) {
                const roi_geom *g = &plans[r].g;
                const axis_sample *yt = tables + plans[r].off, *xt = yt + (int64_t)d->out_h * g->gy;
                const int64_t q0 = plans[r].q0, q1 = plans[r].q1;
                float *dplane = dx + (g->b * d->c + c) * hw;
                const float *gout = dy + (r * d->c + c) * ohw;
                for (int ph = 0; ph < d->out_h; ph++) {
                    for (int64_t q = q0; q < q1; q++) t[q] = 0.0f;
                    for (int pw = 0; pw < d->out_w; pw++) {
                        const float gbin = gout[ph * d->out_w + pw] / g->count;
                        for (int ix = 0; ix < g->gx; ix++) {
                            const axis_sample sx = xt[pw * g->gx + ix];
                            if (sx.lo < 0) continue;
                            t[sx.lo] += gbin * sx.wlo;
                            t[sx.hi] += gbin * sx.whi;
                        }
                    }
                    for (int iy = 0; iy < g->gy; iy++) {
                        const axis_sample sy = yt[ph * g->gy + iy];
                        if (sy.lo < 0) continue;
                        float *restrict rlo = dplane + (int64_t)sy.lo * d->w;
                        for (int64_t q = q0; q < q1; q++) rlo[q] += sy.wlo * t[q];
                        float *restrict rhi = dplane + (int64_t)sy.hi * d->w;
                        for (int64_t q = q0; q < q1; q++) rhi[q] += sy.whi * t[q];
                    }
                }
            }
    }
}
