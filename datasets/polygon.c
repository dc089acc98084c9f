/* Polygon area, bounds, rectangle clipping and pixel-centre rasterisation (conventions in
 * include/mn/polygon.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mn/polygon.h"

double mn_polygon_area(const double *xy, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        int j = i + 1 == n ? 0 : i + 1;
        s += xy[2 * i] * xy[2 * j + 1] - xy[2 * j] * xy[2 * i + 1];
    }
    return 0.5 * s;
}

void mn_polygon_bounds(const double *xy, int n, double box[4])
{
    if (n <= 0) {
        box[0] = box[1] = box[2] = box[3] = 0;
        return;
    }
    box[0] = box[2] = xy[0];
    box[1] = box[3] = xy[1];
    for (int i = 1; i < n; i++) {
        box[0] = fmin(box[0], xy[2 * i]);
        box[2] = fmax(box[2], xy[2 * i]);
        box[1] = fmin(box[1], xy[2 * i + 1]);
        box[3] = fmax(box[3], xy[2 * i + 1]);
    }
}

/* Whether edge (a, b) crosses the horizontal line at height y (half-open in y). */
static inline bool edge_crosses(const double *a, const double *b, double y) { return (a[1] <= y) != (b[1] <= y); }

/* Where that crossing is; both the point test and the rasteriser use exactly this expression. */
static inline double crossing_x(const double *a, const double *b, double y)
{
    return a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]);
}

bool mn_polygon_contains(const double *xy, int n, double x, double y)
{
    bool inside = false;
    for (int i = 0; i < n; i++) {
        const double *a = xy + 2 * i, *b = xy + 2 * (i + 1 == n ? 0 : i + 1);
        if (edge_crosses(a, b, y) && crossing_x(a, b, y) > x) inside = !inside;
    }
    return inside;
}

int mn_polygon_dedup(double *xy, int n)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m > 0 && xy[2 * i] == xy[2 * (m - 1)] && xy[2 * i + 1] == xy[2 * (m - 1) + 1]) continue;
        xy[2 * m] = xy[2 * i];
        xy[2 * m + 1] = xy[2 * i + 1];
        m++;
    }
    while (m > 1 && xy[0] == xy[2 * (m - 1)] && xy[1] == xy[2 * (m - 1) + 1]) m--;
    return m;
}

/* One Sutherland-Hodgman stage: keeps the side of the line {axis = bound} given by keep_ge.
 * out must hold 2n vertices (each input edge emits at most two). */
static int clip_stage(double *out /* (2n, 2) */, const double *in /* (n, 2) */, int n, int axis, double bound,
                      bool keep_ge)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        const double *p = in + 2 * i, *q = in + 2 * (i + 1 == n ? 0 : i + 1);
        bool pin = keep_ge ? p[axis] >= bound : p[axis] <= bound;
        bool qin = keep_ge ? q[axis] >= bound : q[axis] <= bound;
        if (pin) {
            out[2 * m] = p[0];
            out[2 * m + 1] = p[1];
            m++;
        }
        if (pin != qin) {
            double t = (bound - p[axis]) / (q[axis] - p[axis]);
            out[2 * m + axis] = bound;
            out[2 * m + 1 - axis] = p[1 - axis] + t * (q[1 - axis] - p[1 - axis]);
            m++;
        }
    }
    return m;
}

static bool all_finite(const double *xy, int n)
{
    for (int i = 0; i < 2 * n; i++)
        if (!isfinite(xy[i])) return false;
    return true;
}

int mn_polygon_clip_rect(double **out, const double *xy, int n, double x0, double y0, double x1, double y1)
{
    *out = NULL;
    if (n < 0 || !(x0 <= x1) || !(y0 <= y1))
        return mn_error(MN_EINVAL, "polygon clip: bad arguments (n = %d, rectangle [%g, %g] x [%g, %g])", n, x0, x1, y0,
                        y1);
    if (!all_finite(xy, n)) return mn_error(MN_EINVAL, "polygon clip: non-finite vertex");
    if (n == 0) return 0;
    double *cur = malloc(sizeof(double) * 2 * (size_t)n);
    if (!cur) return mn_error(MN_ENOMEM, "polygon clip: out of memory for %d vertices", n);
    memcpy(cur, xy, sizeof(double) * 2 * (size_t)n);
    int m = n;
    const int axis[4] = {0, 0, 1, 1};
    const double bound[4] = {x0, x1, y0, y1};
    for (int s = 0; s < 4 && m > 0; s++) {
        double *next = malloc(sizeof(double) * 4 * (size_t)m);
        if (!next) {
            free(cur);
            return mn_error(MN_ENOMEM, "polygon clip: out of memory for %d vertices", 2 * m);
        }
        m = clip_stage(next, cur, m, axis[s], bound[s], s % 2 == 0);
        m = mn_polygon_dedup(next, m);
        free(cur);
        cur = next;
    }
    if (m == 0) {
        free(cur);
        return 0;
    }
    *out = cur;
    return m;
}

int mn_polygon_spans(const double *xy, int n, int w, int h, mn_span_fn fn, void *ctx)
{
    if (n < 3 || w <= 0 || h <= 0) return 0;
    if (!all_finite(xy, n)) return mn_error(MN_EINVAL, "polygon fill: non-finite vertex");
    double box[4];
    mn_polygon_bounds(xy, n, box);
    /* rows whose centre j + 0.5 lies within [ymin, ymax] */
    double r0 = fmax(ceil(box[1] - 0.5), 0.0), r1 = fmin(floor(box[3] - 0.5), (double)h - 1);
    if (r0 > r1) return 0;
    double *xs = malloc(sizeof(double) * (size_t)n);
    if (!xs) return mn_error(MN_ENOMEM, "polygon fill: out of memory for %d vertices", n);
    for (int j = (int)r0; j <= (int)r1; j++) {
        double yc = j + 0.5;
        int k = 0;
        for (int i = 0; i < n; i++) {
            const double *a = xy + 2 * i, *b = xy + 2 * (i + 1 == n ? 0 : i + 1);
            if (edge_crosses(a, b, yc)) {
                double x = crossing_x(a, b, yc);
                int p = k++;
                while (p > 0 && xs[p - 1] > x) { /* insertion sort: rows have few crossings */
                    xs[p] = xs[p - 1];
                    p--;
                }
                xs[p] = x;
            }
        }
        /* centres i + 0.5 in [xs[2t], xs[2t+1]) are inside, i.e. i in [ceil(a - .5), ceil(b - .5)) */
        for (int t = 0; t + 1 < k; t += 2) {
            double c0 = fmax(ceil(xs[t] - 0.5), 0.0), c1 = fmin(ceil(xs[t + 1] - 0.5), (double)w);
            if (c0 < c1) fn(ctx, j, (int)c0, (int)c1);
        }
    }
    free(xs);
    return 0;
}

typedef struct fill_ctx {
    uint8_t *dst;
    int w;
    uint8_t value;
    int64_t count;
} fill_ctx;

static void fill_span(void *ctx, int y, int x0, int x1)
{
    fill_ctx *f = ctx;
    memset(f->dst + (size_t)y * f->w + x0, f->value, (size_t)(x1 - x0));
    f->count += x1 - x0;
}

int64_t mn_polygon_fill(uint8_t *dst, int w, int h, const double *xy, int n, uint8_t value)
{
    fill_ctx f = {dst, w, value, 0};
    int rc = mn_polygon_spans(xy, n, w, h, fill_span, &f);
    return rc ? rc : f.count;
}

int64_t mn_polygon_fill_ref(uint8_t *dst, int w, int h, const double *xy, int n, uint8_t value)
{
    if (n < 3) return 0;
    if (!all_finite(xy, n)) return mn_error(MN_EINVAL, "polygon fill: non-finite vertex");
    int64_t count = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (mn_polygon_contains(xy, n, x + 0.5, y + 0.5)) {
                dst[(size_t)y * w + x] = value;
                count++;
            }
    return count;
}
