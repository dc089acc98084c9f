#include <math.h>

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

size_t mn_roi_align_ws_bytes(const float *rois, const mn_roi_align_dims *d)
{
    size_t entries = 0;
    for (int64_t r = 0; r < d->k; r++) {
        roi_geom g = roi_geometry(rois + r * 5, d);
        entries += (size_t)d->out_h * (size_t)g.gy + (size_t)d->out_w * (size_t)g.gx;
    }
    return plans_bytes(d->k) + entries * sizeof(axis_sample);
}

/* Fills the plan headers (serially: a prefix sum) and returns the table base. */
static axis_sample *make_plans(roi_plan *plans /* (K) */, const float *rois /* (K, 5) */, const mn_roi_align_dims *d)
{
    int64_t off = 0;
    for (int64_t r = 0; r < d->k; r++) {
        plans[r].g = roi_geometry(rois + r * 5, d);
        plans[r].off = off;
        off += (int64_t)d->out_h * plans[r].g.gy + (int64_t)d->out_w * plans[r].g.gx;
    }
    return (axis_sample *)((char *)plans + plans_bytes(d->k));
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

void mn_roi_align_forward(float *y, void *ws, const float *x, const float *rois, const mn_roi_align_dims *d)
{
    roi_plan *plans = ws;
    axis_sample *tables = make_plans(plans, rois, d);
    const int64_t hw = d->h * d->w, ohw = (int64_t)d->out_h * d->out_w;
#pragma omp parallel for schedule(dynamic, 1) if (d->k * d->c * ohw > 4096)
    for (int64_t r = 0; r < d->k; r++) {
        const roi_geom *g = &plans[r].g;
        axis_sample *yt = tables + plans[r].off, *xt = yt + (int64_t)d->out_h * g->gy;
        fill_tables(yt, g, d);
        for (int64_t c = 0; c < d->c; c++) {
            const float *plane = x + (g->b * d->c + c) * hw;
            float *out = y + (r * d->c + c) * ohw;
            for (int ph = 0; ph < d->out_h; ph++)
                for (int pw = 0; pw < d->out_w; pw++) {
                    float acc = 0.0f;
                    for (int iy = 0; iy < g->gy; iy++) {
                        axis_sample sy = yt[ph * g->gy + iy];
                        if (sy.lo < 0) continue;
                        const float *rlo = plane + (int64_t)sy.lo * d->w, *rhi = plane + (int64_t)sy.hi * d->w;
                        for (int ix = 0; ix < g->gx; ix++) {
                            axis_sample sx = xt[pw * g->gx + ix];
                            if (sx.lo < 0) continue;
                            acc += sy.wlo * sx.wlo * rlo[sx.lo] + sy.wlo * sx.whi * rlo[sx.hi] +
                                   sy.whi * sx.wlo * rhi[sx.lo] + sy.whi * sx.whi * rhi[sx.hi];
                        }
                    }
                    out[ph * d->out_w + pw] = acc / g->count;
                }
        }
    }
}

void mn_roi_align_backward(float *dx, void *ws, const float *dy, const float *rois, const mn_roi_align_dims *d)
{
    roi_plan *plans = ws;
    axis_sample *tables = make_plans(plans, rois, d);
    const int64_t hw = d->h * d->w, ohw = (int64_t)d->out_h * d->out_w;
    const bool par = d->k * d->c * ohw > 4096;
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static)
        for (int64_t r = 0; r < d->k; r++) fill_tables(tables + plans[r].off, &plans[r].g, d);
        /* the implicit barrier above publishes every table before any channel uses them */
#pragma omp for schedule(static)
        for (int64_t c = 0; c < d->c; c++)
            for (int64_t r = 0; r < d->k; r++) {
                const roi_geom *g = &plans[r].g;
                const axis_sample *yt = tables + plans[r].off, *xt = yt + (int64_t)d->out_h * g->gy;
                float *dplane = dx + (g->b * d->c + c) * hw;
                const float *gout = dy + (r * d->c + c) * ohw;
                for (int ph = 0; ph < d->out_h; ph++)
                    for (int pw = 0; pw < d->out_w; pw++) {
                        float gbin = gout[ph * d->out_w + pw] / g->count;
                        for (int iy = 0; iy < g->gy; iy++) {
                            axis_sample sy = yt[ph * g->gy + iy];
                            if (sy.lo < 0) continue;
                            float *rlo = dplane + (int64_t)sy.lo * d->w, *rhi = dplane + (int64_t)sy.hi * d->w;
                            float glo = gbin * sy.wlo, ghi = gbin * sy.whi;
                            for (int ix = 0; ix < g->gx; ix++) {
                                axis_sample sx = xt[pw * g->gx + ix];
                                if (sx.lo < 0) continue;
                                rlo[sx.lo] += glo * sx.wlo;
                                rlo[sx.hi] += glo * sx.whi;
                                rhi[sx.lo] += ghi * sx.wlo;
                                rhi[sx.hi] += ghi * sx.whi;
                            }
                        }
                    }
            }
    }
}
