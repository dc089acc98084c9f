/* Line and scatter charts: one layout (margins, axis limits, ticks, legend position) computed
 * from the data and the output size, then drawn either into an mn_image or as SVG text, so both
 * renderings put every point in the same place. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mn/fileio.h"
#include "mn/viz.h"

#define MAX_TICKS 64
#define INK ((mn_rgb){40, 40, 40})
#define FRAME ((mn_rgb){70, 70, 70})
#define GRID ((mn_rgb){228, 228, 228})
#define WHITE ((mn_rgb){255, 255, 255})
#define BLACK ((mn_rgb){0, 0, 0})

typedef struct series {
    char *name;
    double *x, *y;  /* (n) */
    int n, style;
} series;

typedef struct mark {
    double x, y;
    char *label;
} mark;

struct mn_chart {
    char *title, *x_label, *y_label;
    bool log_x;
    series *s;
    int ns, cap_s;
    mark *m;
    int nm, cap_m;
};

typedef struct axis {
    double lo, hi;                 /* limits in axis units (log10 of x on a log axis) */
    bool log;
    int nt;
    double tick[MAX_TICKS];        /* in axis units */
    char label[MAX_TICKS][24];
    bool shown[MAX_TICKS];         /* whether the label is drawn (x axis: not when crowded) */
} axis;

typedef struct layout {
    int w, h, s;
    int px0, py0, px1, py1;        /* plot area [px0, px1) x [py0, py1) */
    axis ax, ay;
    int lx, ly, lw, lh, lrow;      /* legend box and row height */
    int ytick_w;                   /* widest y tick label */
} layout;

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

mn_chart *mn_chart_new(const char *title, const char *x_label, const char *y_label)
{
    mn_chart *c = calloc(1, sizeof *c);
    if (!c) {
        mn_error(MN_ENOMEM, "chart: out of memory");
        return NULL;
    }
    c->title = dup_str(title);
    c->x_label = dup_str(x_label);
    c->y_label = dup_str(y_label);
    if ((title && !c->title) || (x_label && !c->x_label) || (y_label && !c->y_label)) {
        mn_chart_free(c);
        mn_error(MN_ENOMEM, "chart: out of memory");
        return NULL;
    }
    return c;
}

void mn_chart_free(mn_chart *c)
{
    if (!c) return;
    for (int i = 0; i < c->ns; i++) {
        free(c->s[i].name);
        free(c->s[i].x);
        free(c->s[i].y);
    }
    for (int i = 0; i < c->nm; i++) free(c->m[i].label);
    free(c->s);
    free(c->m);
    free(c->title);
    free(c->x_label);
    free(c->y_label);
    free(c);
}

void mn_chart_set_log_x(mn_chart *c, bool log_x) { c->log_x = log_x; }

int mn_chart_add_series(mn_chart *c, const char *name, const double *x /* (n) */, const double *y /* (n) */, int n,
                        int style)
{
    if (n < 1 || !x || !y)
        return mn_error(MN_EINVAL, "chart: series '%s' needs at least one point (got %d%s)", name ? name : "", n,
                        x && y ? "" : ", no data");
    if (style & ~(MN_CHART_LINE | MN_CHART_MARKERS | MN_CHART_FRONTIER))
        return mn_error(MN_EINVAL, "chart: series '%s' has unknown style bits 0x%x", name ? name : "", style);
    if (!(style & (MN_CHART_LINE | MN_CHART_MARKERS))) style |= MN_CHART_LINE;
    if (c->ns == c->cap_s) {
        int cap = c->cap_s ? 2 * c->cap_s : 8;
        series *s = realloc(c->s, sizeof *s * (size_t)cap);
        if (!s) return mn_error(MN_ENOMEM, "chart: out of memory adding series '%s'", name ? name : "");
        c->s = s;
        c->cap_s = cap;
    }
    series s = {dup_str(name), malloc(sizeof(double) * (size_t)n), malloc(sizeof(double) * (size_t)n), n, style};
    if ((name && !s.name) || !s.x || !s.y) {
        free(s.name);
        free(s.x);
        free(s.y);
        return mn_error(MN_ENOMEM, "chart: out of memory for %d points of series '%s'", n, name ? name : "");
    }
    memcpy(s.x, x, sizeof(double) * (size_t)n);
    memcpy(s.y, y, sizeof(double) * (size_t)n);
    c->s[c->ns] = s;
    return c->ns++;
}

int mn_chart_mark(mn_chart *c, double x, double y, const char *label)
{
    if (!isfinite(x) || !isfinite(y))
        return mn_error(MN_EINVAL, "chart: mark '%s' at non-finite (%g, %g)", label ? label : "", x, y);
    if (c->nm == c->cap_m) {
        int cap = c->cap_m ? 2 * c->cap_m : 4;
        mark *m = realloc(c->m, sizeof *m * (size_t)cap);
        if (!m) return mn_error(MN_ENOMEM, "chart: out of memory adding mark '%s'", label ? label : "");
        c->m = m;
        c->cap_m = cap;
    }
    mark m = {x, y, dup_str(label)};
    if (label && !m.label) return mn_error(MN_ENOMEM, "chart: out of memory adding mark '%s'", label);
    c->m[c->nm++] = m;
    return 0;
}

/* ---------------------------------------------------------------- layout */

static const char *series_name(const mn_chart *c, int i, char *buf, size_t n)
{
    if (c->s[i].name) return c->s[i].name;
    snprintf(buf, n, "series %d", i + 1);
    return buf;
}

/* Data limits in axis units over every series and mark; an error for x <= 0 on a log axis. */
static int data_range(const mn_chart *c, double *xlo, double *xhi, double *ylo, double *yhi, bool *any)
{
    *xlo = *ylo = INFINITY;
    *xhi = *yhi = -INFINITY;
    *any = false;
    char buf[32];
    for (int i = 0; i <= c->ns; i++) {
        int n = i < c->ns ? c->s[i].n : c->nm;
        for (int j = 0; j < n; j++) {
            double x = i < c->ns ? c->s[i].x[j] : c->m[j].x, y = i < c->ns ? c->s[i].y[j] : c->m[j].y;
            if (!isfinite(x) || !isfinite(y)) continue;
            if (c->log_x) {
                if (x <= 0) {
                    if (i < c->ns)
                        return mn_error(MN_EINVAL, "chart: series '%s' point %d has x = %g, not positive on a log x axis",
                                        series_name(c, i, buf, sizeof buf), j, x);
                    return mn_error(MN_EINVAL, "chart: mark '%s' has x = %g, not positive on a log x axis",
                                    c->m[j].label ? c->m[j].label : "", x);
                }
                x = log10(x);
            }
            *xlo = fmin(*xlo, x), *xhi = fmax(*xhi, x);
            *ylo = fmin(*ylo, y), *yhi = fmax(*yhi, y);
            *any = true;
        }
    }
    return 0;
}

/* Pads [lo, hi] by 4% of its span each way; a zero span is first widened around the value. */
static void pad_range(double *lo, double *hi, bool log)
{
    if (*hi - *lo <= 0) {
        double v = *lo, d = log ? 0.05 : (v != 0 ? 0.1 * fabs(v) : 1.0);
        *lo = v - d;
        *hi = v + d;
    }
    double p = 0.04 * (*hi - *lo);
    *lo -= p;
    *hi += p;
}

/* Decimals needed to print multiples of step exactly (0..9). */
static int decimals_for(double step)
{
    for (int d = 0; d < 9; d++) {
        double v = step * pow(10, d);
        if (fabs(v - round(v)) < 1e-6 * fmax(1, v)) return d;
    }
    return 9;
}

static void linear_ticks(axis *a, double target)
{
    double span = a->hi - a->lo, raw = span / target;
    double mag = pow(10, floor(log10(raw))), step = 10 * mag;
    static const double mult[] = {1, 2, 2.5, 5, 10};
    for (int i = 0; i < 5; i++) {
        if (mult[i] * mag >= raw) {
            step = mult[i] * mag;
            break;
        }
    }
    a->nt = 0;
    double big = fmax(fabs(a->lo), fabs(a->hi)), div = 1;
    const char *suffix = "";
    /* thousands and millions of iterations read better as 20k, 1.5M */
    bool sci = big >= 1e9 || step < 1e-6; /* fixed decimals would be too long: %g instead */
    if (sci) div = 1;
    else if (big >= 1e6 && step >= 1e5) div = 1e6, suffix = "M";
    else if (big >= 1e4 && step >= 100) div = 1e3, suffix = "k";
    int dec = decimals_for(step / div);
    for (double k = ceil(a->lo / step - 1e-9); a->nt < MAX_TICKS; k++) {
        double t = k * step;
        if (t > a->hi + 1e-9 * span) break;
        if (fabs(t) < 1e-9 * step) t = 0; /* no "-0" */
        a->tick[a->nt] = t;
        char *lab = a->label[a->nt];
        size_t size = sizeof a->label[0];
        if (sci) {
            snprintf(lab, size, "%.6g", t);
        } else {
            snprintf(lab, size, "%.*f", dec, t / div);
        }
        if (*suffix) { /* "2.5k", "5k": trailing zeros dropped when scaled */
            char *dot = strchr(lab, '.');
            if (dot) {
                char *e = lab + strlen(lab);
                while (e > dot + 1 && e[-1] == '0') *--e = 0;
                if (e == dot + 1) *dot = 0;
            }
            size_t len = strlen(lab);
            if (strcmp(lab, "0") && len + 1 < size) lab[len] = *suffix, lab[len + 1] = 0;
        }
        a->nt++;
    }
}

static void log_ticks(axis *a)
{
    static const double sets[3][9] = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int sizes[3] = {1, 3, 9};
    for (int set = 0; set < 3; set++) {
        a->nt = 0;
        for (double d = floor(a->lo); d <= ceil(a->hi) && a->nt < MAX_TICKS; d++) {
            for (int k = 0; k < sizes[set] && a->nt < MAX_TICKS; k++) {
                double v = sets[set][k] * pow(10, d), t = log10(v);
                if (t < a->lo - 1e-12 || t > a->hi + 1e-12) continue;
                a->tick[a->nt] = t;
                snprintf(a->label[a->nt], sizeof a->label[0], "%.6g", v);
                a->nt++;
            }
        }
        if (a->nt >= 3) return;
    }
    /* under a decade with fewer than 3 integer multiples: nice linear steps of the values */
    axis lin = {.lo = pow(10, a->lo), .hi = pow(10, a->hi)};
    linear_ticks(&lin, 4);
    a->nt = 0;
    for (int i = 0; i < lin.nt; i++) {
        if (!(lin.tick[i] > 0)) continue;
        a->tick[a->nt] = log10(lin.tick[i]);
        memcpy(a->label[a->nt], lin.label[i], sizeof a->label[0]);
        a->nt++;
    }
}

static int scale_for(int w) { return w < 480 ? 1 : w >= 1600 ? 3 : 2; }

/* A point in pixel coordinates for axis values (x already in axis units). */
static double map_x(const layout *L, double ax)
{
    return L->px0 + (ax - L->ax.lo) / (L->ax.hi - L->ax.lo) * (L->px1 - L->px0);
}
static double map_y(const layout *L, double y)
{
    return L->py1 - (y - L->ay.lo) / (L->ay.hi - L->ay.lo) * (L->py1 - L->py0);
}

/* How many data points and line samples fall inside a candidate legend box. */
static int crowding(const mn_chart *c, const layout *L, int x0, int y0, int w, int h)
{
    int count = 0;
    for (int i = 0; i < c->ns; i++) {
        const series *s = &c->s[i];
        double px = NAN, py = NAN;
        for (int j = 0; j < s->n; j++) {
            if (!isfinite(s->x[j]) || !isfinite(s->y[j])) {
                px = NAN;
                continue;
            }
            double qx = map_x(L, c->log_x ? log10(s->x[j]) : s->x[j]), qy = map_y(L, s->y[j]);
            int steps = (s->style & MN_CHART_LINE) && isfinite(px) ? 8 : 1;
            for (int k = 1; k <= steps; k++) {
                double t = (double)k / steps, x = steps > 1 ? px + t * (qx - px) : qx;
                double y = steps > 1 ? py + t * (qy - py) : qy;
                count += x >= x0 - 4 && x < x0 + w + 4 && y >= y0 - 4 && y < y0 + h + 4;
            }
            px = qx, py = qy;
        }
    }
    for (int j = 0; j < c->nm; j++) {
        double x = map_x(L, c->log_x ? log10(c->m[j].x) : c->m[j].x), y = map_y(L, c->m[j].y);
        count += 4 * (x >= x0 - 20 && x < x0 + w + 20 && y >= y0 - 20 && y < y0 + h + 20);
    }
    return count;
}

static int make_layout(const mn_chart *c, int w, int h, layout *L)
{
    memset(L, 0, sizeof *L);
    if (w < 240 || h < 180 || w > 16384 || h > 16384)
        return mn_error(MN_EINVAL, "chart: size %dx%d outside 240x180 .. 16384x16384", w, h);
    double xlo, xhi, ylo, yhi;
    bool any;
    int rc = data_range(c, &xlo, &xhi, &ylo, &yhi, &any);
    if (rc) return rc;
    if (!any) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
    pad_range(&xlo, &xhi, c->log_x);
    pad_range(&ylo, &yhi, false);
    if (!(isfinite(xhi - xlo) && isfinite(yhi - ylo) && xhi > xlo && yhi > ylo))
        return mn_error(MN_EINVAL, "chart: data range x [%g, %g], y [%g, %g]%s cannot be drawn", xlo, xhi, ylo, yhi,
                        c->log_x ? " (x in decades)" : "");
    int s = scale_for(w);
    L->w = w, L->h = h, L->s = s;
    L->ax = (axis){.lo = xlo, .hi = xhi, .log = c->log_x};
    L->ay = (axis){.lo = ylo, .hi = yhi};

    L->py0 = c->title && *c->title ? 4 * s + 9 * s + 7 * s : 8 * s;
    L->py1 = h - (3 * s + 3 * s + 9 * s + (c->x_label && *c->x_label ? 6 * s + 9 * s : 0) + 5 * s);
    int ph = L->py1 - L->py0;
    double ty = ph / (28.0 * s);
    linear_ticks(&L->ay, ty < 3 ? 3 : ty > 10 ? 10 : ty);
    for (int i = 0; i < L->ay.nt; i++) {
        int tw = mn_viz_text_width(L->ay.label[i], s);
        if (tw > L->ytick_w) L->ytick_w = tw;
    }
    L->px0 = 5 * s + (c->y_label && *c->y_label ? 9 * s + 6 * s : 0) + L->ytick_w + 3 * s + 3 * s;
    L->px1 = w - 10 * s;
    if (L->px1 - L->px0 < 40 || ph < 40)
        return mn_error(MN_EINVAL, "chart: %dx%d leaves no room to plot (labels too long?)", w, h);
    if (c->log_x) {
        log_ticks(&L->ax);
    } else {
        double tx = (L->px1 - L->px0) / (55.0 * s);
        linear_ticks(&L->ax, tx < 3 ? 3 : tx > 10 ? 10 : tx);
    }
    /* keep the last x tick label inside the picture: narrowing the plot by D moves a tick at
     * fraction f of the width left by f D */
    if (L->ax.nt) {
        int last = L->ax.nt - 1, half = mn_viz_text_width(L->ax.label[last], s) / 2;
        double f = (L->ax.tick[last] - L->ax.lo) / (L->ax.hi - L->ax.lo);
        double over = map_x(L, L->ax.tick[last]) + half - (w - 3 * s);
        if (over > 0 && f > 0.05) L->px1 -= (int)ceil(over / f);
        if (L->px1 - L->px0 < 40) L->px1 = L->px0 + 40;
    }
    /* x tick labels that would touch the one before are left out (in both renderings) */
    int last_right = INT_MIN / 2;
    for (int i = 0; i < L->ax.nt; i++) {
        int tw = mn_viz_text_width(L->ax.label[i], s), lx = (int)floor(map_x(L, L->ax.tick[i])) - tw / 2;
        L->ax.shown[i] = lx > last_right + 3 * s;
        if (L->ax.shown[i]) last_right = lx + tw;
    }

    /* legend in the emptiest corner (ties: top right, bottom right, top left, bottom left) */
    if (c->ns) {
        int widest = 0;
        char buf[32];
        for (int i = 0; i < c->ns; i++) {
            int tw = mn_viz_text_width(series_name(c, i, buf, sizeof buf), s);
            if (tw > widest) widest = tw;
        }
        L->lrow = 12 * s;
        L->lw = 4 * s + 18 * s + 4 * s + widest + 3 * s;
        L->lh = 4 * s + c->ns * L->lrow - 3 * s + 4 * s;
        int in = 5 * s, best = -1;
        int xs[4] = {L->px1 - in - L->lw, L->px1 - in - L->lw, L->px0 + in, L->px0 + in};
        int ys[4] = {L->py0 + in, L->py1 - in - L->lh, L->py0 + in, L->py1 - in - L->lh};
        for (int k = 0; k < 4; k++) {
            int n = crowding(c, L, xs[k], ys[k], L->lw, L->lh);
            if (best < 0 || n < best) {
                best = n;
                L->lx = xs[k];
                L->ly = ys[k];
            }
        }
    }
    return 0;
}

int mn_chart_to_pixel(const mn_chart *c, int w, int h, double x, double y, double *px, double *py)
{
    layout L;
    int rc = make_layout(c, w, h, &L);
    if (rc) return rc;
    if (c->log_x && !(x > 0)) return mn_error(MN_EINVAL, "chart: x = %g is not positive on a log x axis", x);
    *px = map_x(&L, c->log_x ? log10(x) : x);
    *py = map_y(&L, y);
    return 0;
}

/* ---------------------------------------------------------------- raster */

static float line_width(const layout *L, int style) { return (float)L->s * ((style & MN_CHART_FRONTIER) ? 2.0f : 1.0f); }
static float marker_size(const layout *L, int style) { return (float)L->s * ((style & MN_CHART_FRONTIER) ? 4.5f : 3.5f); }

/* Text with a one-pixel white halo so it stays readable over lines and grid. */
static void halo_text(mn_image *img, int x, int y, const char *t, int s, mn_rgb c)
{
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++)
            if (dx || dy) mn_viz_text(img, x + dx, y + dy, t, s, WHITE);
    mn_viz_text(img, x, y, t, s, c);
}

static void raster_marker(mn_image *img, float x, float y, float size, int shape, mn_rgb c)
{
    mn_viz_marker(img, x, y, size + 2.0f, shape, WHITE); /* a thin white edge separates overlaps */
    mn_viz_marker(img, x, y, size, shape, c);
}

static void raster_series(mn_image *img, const mn_chart *c, const layout *L, int i)
{
    const series *s = &c->s[i];
    mn_rgb col = mn_viz_series_color(i);
    float lw = line_width(L, s->style);
    if (s->style & MN_CHART_LINE) {
        double px = NAN, py = NAN;
        for (int j = 0; j < s->n; j++) {
            if (!isfinite(s->x[j]) || !isfinite(s->y[j])) {
                px = NAN;
                continue;
            }
            double qx = map_x(L, c->log_x ? log10(s->x[j]) : s->x[j]), qy = map_y(L, s->y[j]);
            if (isfinite(px)) mn_viz_line(img, (float)px, (float)py, (float)qx, (float)qy, lw, col, 1);
            px = qx, py = qy;
        }
    }
    if (s->style & MN_CHART_MARKERS) {
        for (int j = 0; j < s->n; j++) {
            if (!isfinite(s->x[j]) || !isfinite(s->y[j])) continue;
            raster_marker(img, (float)map_x(L, c->log_x ? log10(s->x[j]) : s->x[j]), (float)map_y(L, s->y[j]),
                          marker_size(L, s->style), i % 4, col);
        }
    }
}

/* Where a mark's label goes: right of the ring, else left of it, else (too long for either
 * side) centred below it, or above when there is no room below. */
static void mark_label_pos(const layout *L, double x, double y, const char *label, int *tx, int *ty)
{
    int s = L->s, tw = mn_viz_text_width(label, s), cx = (int)lround(x), cy = (int)lround(y);
    *ty = cy - (7 * s) / 2;
    if (cx + 8 * s + tw <= L->px1 - 2) {
        *tx = cx + 8 * s;
    } else if (cx - 8 * s - tw >= L->px0 + 2) {
        *tx = cx - 8 * s - tw;
    } else {
        *tx = cx - tw / 2;
        if (*tx + tw > L->px1 - 2) *tx = L->px1 - 2 - tw;
        if (*tx < L->px0 + 2) *tx = L->px0 + 2;
        *ty = cy + 7 * s + 2 * s <= L->py1 - 9 * s ? cy + 7 * s : cy - 7 * s - 7 * s;
    }
    if (*ty < L->py0 + 2) *ty = L->py0 + 2;
    if (*ty + 9 * s > L->py1) *ty = L->py1 - 9 * s;
}

int mn_chart_render(const mn_chart *c, int w, int h, mn_image *out)
{
    memset(out, 0, sizeof *out);
    layout L;
    int rc = make_layout(c, w, h, &L);
    if (rc) return rc;
    mn_image img;
    rc = mn_image_alloc(&img, w, h, 3);
    if (rc) return rc;
    int s = L.s;
    mn_viz_fill_rect(&img, 0, 0, w, h, WHITE, 1);

    /* grid, frame, ticks and their labels */
    for (int i = 0; i < L.ax.nt; i++) {
        int x = (int)floor(map_x(&L, L.ax.tick[i]));
        if (x > L.px0 && x < L.px1 - 1) mn_viz_fill_rect(&img, x, L.py0, x + 1, L.py1, GRID, 1);
        mn_viz_fill_rect(&img, x, L.py1, x + 1, L.py1 + 3 * s, FRAME, 1);
        if (L.ax.shown[i])
            mn_viz_text(&img, x - mn_viz_text_width(L.ax.label[i], s) / 2, L.py1 + 6 * s, L.ax.label[i], s, INK);
    }
    for (int i = 0; i < L.ay.nt; i++) {
        int y = (int)floor(map_y(&L, L.ay.tick[i]));
        if (y > L.py0 && y < L.py1 - 1) mn_viz_fill_rect(&img, L.px0, y, L.px1, y + 1, GRID, 1);
        mn_viz_fill_rect(&img, L.px0 - 3 * s, y, L.px0, y + 1, FRAME, 1);
        int tw = mn_viz_text_width(L.ay.label[i], s);
        mn_viz_text(&img, L.px0 - 6 * s - tw, y - (7 * s) / 2, L.ay.label[i], s, INK);
    }
    mn_viz_rect(&img, L.px0 - 1, L.py0 - 1, L.px1 + 1, L.py1 + 1, 1, FRAME);
    if (c->title && *c->title) {
        int tw = mn_viz_text_width(c->title, s);
        int tx = (w - tw) / 2 > 0 ? (w - tw) / 2 : 0;
        mn_viz_text(&img, tx, 4 * s, c->title, s, BLACK);
        mn_viz_text(&img, tx + 1, 4 * s, c->title, s, BLACK); /* bold by doubling */
    }
    if (c->x_label && *c->x_label) {
        int tw = mn_viz_text_width(c->x_label, s);
        mn_viz_text(&img, (L.px0 + L.px1 - tw) / 2, L.py1 + 3 * s + 3 * s + 9 * s + 6 * s, c->x_label, s, INK);
    }
    if (c->y_label && *c->y_label) {
        int tw = mn_viz_text_width(c->y_label, s);
        mn_viz_text_up(&img, 5 * s, (L.py0 + L.py1 + tw) / 2, c->y_label, s, INK);
    }

    /* plain series, then highlighted ones on top, then marks */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->ns; i++)
            if (!!(c->s[i].style & MN_CHART_FRONTIER) == pass) raster_series(&img, c, &L, i);
    for (int j = 0; j < c->nm; j++) {
        double x = map_x(&L, c->log_x ? log10(c->m[j].x) : c->m[j].x), y = map_y(&L, c->m[j].y);
        mn_viz_marker(&img, (float)x, (float)y, 10.0f * s + 2, MN_MARKER_RING, WHITE);
        mn_viz_marker(&img, (float)x, (float)y, 10.0f * s, MN_MARKER_RING, BLACK);
        if (c->m[j].label) {
            int tx, ty;
            mark_label_pos(&L, x, y, c->m[j].label, &tx, &ty);
            halo_text(&img, tx, ty, c->m[j].label, s, BLACK);
        }
    }

    if (c->ns) {
        mn_viz_fill_rect(&img, L.lx, L.ly, L.lx + L.lw, L.ly + L.lh, WHITE, 0.92f);
        mn_viz_rect(&img, L.lx, L.ly, L.lx + L.lw, L.ly + L.lh, 1, (mn_rgb){190, 190, 190});
        char buf[32];
        for (int i = 0; i < c->ns; i++) {
            int cy = L.ly + 4 * s + i * L.lrow + (7 * s) / 2, x0 = L.lx + 4 * s;
            mn_rgb col = mn_viz_series_color(i);
            if (c->s[i].style & MN_CHART_LINE)
                mn_viz_line(&img, (float)x0, cy + 0.5f, (float)(x0 + 18 * s), cy + 0.5f, line_width(&L, c->s[i].style),
                            col, 1);
            if (c->s[i].style & MN_CHART_MARKERS)
                raster_marker(&img, x0 + 9.0f * s, cy + 0.5f, marker_size(&L, c->s[i].style), i % 4, col);
            mn_viz_text(&img, x0 + 22 * s, L.ly + 4 * s + i * L.lrow, series_name(c, i, buf, sizeof buf), s, INK);
        }
    }
    *out = img;
    return 0;
}

int mn_chart_save_image(const mn_chart *c, const char *path, int w, int h)
{
    mn_image img;
    int rc = mn_chart_render(c, w, h, &img);
    if (rc) return rc;
    rc = mn_image_save(path, &img, 95);
    mn_image_free(&img);
    return rc;
}

/* ---------------------------------------------------------------- SVG */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) MN_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->n + (size_t)k) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Text content with XML's special characters escaped and anything but printable ASCII as '?'. */
static void sb_text(sbuf *b, const char *t)
{
    for (; *t; t++) {
        unsigned char ch = (unsigned char)*t;
        switch (ch) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default: sb_printf(b, "%c", ch >= 32 && ch < 127 ? ch : '?');
        }
    }
}

static void sb_color(sbuf *b, mn_rgb c) { sb_printf(b, "#%02x%02x%02x", c.r, c.g, c.b); }

/* A text element; baseline 7 s below the top, as capitals in the raster font. */
static void svg_text(sbuf *b, const layout *L, double x, double top, const char *anchor, mn_rgb c, const char *extra,
                     const char *t)
{
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" fill=\"", x, top + 7.0 * L->s,
              10 * L->s, anchor);
    sb_color(b, c);
    sb_printf(b, "\"%s>", extra ? extra : "");
    sb_text(b, t);
    sb_printf(b, "</text>\n");
}

static void svg_marker(sbuf *b, double x, double y, double size, int shape, mn_rgb c)
{
    double r = size / 2;
    switch (shape) {
    case MN_MARKER_SQUARE:
        sb_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"", x - 0.85 * r, y - 0.85 * r, 1.7 * r,
                  1.7 * r);
        break;
    case MN_MARKER_DIAMOND:
        sb_printf(b, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f %.2f,%.2f\"", x, y - 1.15 * r, x + 1.15 * r, y, x,
                  y + 1.15 * r, x - 1.15 * r, y);
        break;
    case MN_MARKER_TRIANGLE: {
        double R = 1.2 * r;
        sb_printf(b, "<polygon points=\"%.2f,%.2f %.2f,%.2f %.2f,%.2f\"", x, y - R, x + 0.8660254 * R, y + 0.5 * R,
                  x - 0.8660254 * R, y + 0.5 * R);
        break;
    }
    default: sb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\"", x, y, r);
    }
    sb_printf(b, " fill=\"");
    sb_color(b, c);
    sb_printf(b, "\" stroke=\"#ffffff\" stroke-width=\"1\"/>\n");
}

static void svg_series(sbuf *b, const mn_chart *c, const layout *L, int i)
{
    const series *s = &c->s[i];
    mn_rgb col = mn_viz_series_color(i);
    char buf[32];
    sb_printf(b, "<g class=\"series\"><title>");
    sb_text(b, series_name(c, i, buf, sizeof buf));
    sb_printf(b, "</title>\n");
    if (s->style & MN_CHART_LINE) {
        sb_printf(b, "<path fill=\"none\" stroke=\"");
        sb_color(b, col);
        sb_printf(b, "\" stroke-width=\"%.1f\" stroke-linejoin=\"round\" stroke-linecap=\"round\" d=\"",
                  (double)line_width(L, s->style));
        bool pen = false;
        for (int j = 0; j < s->n; j++) {
            if (!isfinite(s->x[j]) || !isfinite(s->y[j])) {
                pen = false;
                continue;
            }
            sb_printf(b, "%s%.2f %.2f ", pen ? "L" : "M", map_x(L, c->log_x ? log10(s->x[j]) : s->x[j]),
                      map_y(L, s->y[j]));
            pen = true;
        }
        sb_printf(b, "\"/>\n");
    }
    if (s->style & MN_CHART_MARKERS)
        for (int j = 0; j < s->n; j++)
            if (isfinite(s->x[j]) && isfinite(s->y[j]))
                svg_marker(b, map_x(L, c->log_x ? log10(s->x[j]) : s->x[j]), map_y(L, s->y[j]),
                           marker_size(L, s->style), i % 4, col);
    sb_printf(b, "</g>\n");
}

static void svg_document(sbuf *b, const mn_chart *c, const layout *L)
{
    int s = L->s, w = L->w, h = L->h;
    sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n", w, h, w, h);
    sb_printf(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
    sb_printf(b, "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n");
    for (int i = 0; i < L->ax.nt; i++) {
        double x = floor(map_x(L, L->ax.tick[i])) + 0.5;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x, L->py0, x, L->py1);
    }
    for (int i = 0; i < L->ay.nt; i++) {
        double y = floor(map_y(L, L->ay.tick[i])) + 0.5;
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", L->px0, y, L->px1, y);
    }
    sb_printf(b, "</g>\n<g stroke=\"#464646\" stroke-width=\"1\">\n");
    for (int i = 0; i < L->ax.nt; i++) {
        double x = floor(map_x(L, L->ax.tick[i])) + 0.5;
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", x, L->py1, x, L->py1 + 3 * s);
    }
    for (int i = 0; i < L->ay.nt; i++) {
        double y = floor(map_y(L, L->ay.tick[i])) + 0.5;
        sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", L->px0 - 3 * s, y, L->px0, y);
    }
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" fill=\"none\"/>\n</g>\n", L->px0 - 0.5,
              L->py0 - 0.5, L->px1 - L->px0 + 1, L->py1 - L->py0 + 1);
    for (int i = 0; i < L->ax.nt; i++)
        if (L->ax.shown[i])
            svg_text(b, L, floor(map_x(L, L->ax.tick[i])) + 0.5, L->py1 + 6 * s, "middle", INK, NULL, L->ax.label[i]);
    for (int i = 0; i < L->ay.nt; i++)
        svg_text(b, L, L->px0 - 6 * s, floor(map_y(L, L->ay.tick[i])) - (7 * s) / 2, "end", INK, NULL, L->ay.label[i]);
    if (c->title && *c->title) svg_text(b, L, w / 2.0, 4 * s, "middle", BLACK, " font-weight=\"bold\"", c->title);
    if (c->x_label && *c->x_label)
        svg_text(b, L, (L->px0 + L->px1) / 2.0, L->py1 + 21 * s, "middle", INK, NULL, c->x_label);
    if (c->y_label && *c->y_label) {
        /* the baseline runs upwards at x = 12 s, so capitals span [5 s, 12 s) as in the raster */
        double bx = 12.0 * s, cy = (L->py0 + L->py1) / 2.0;
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"middle\" fill=\"", bx, cy, 10 * s);
        sb_color(b, INK);
        sb_printf(b, "\" transform=\"rotate(-90 %.1f %.1f)\">", bx, cy);
        sb_text(b, c->y_label);
        sb_printf(b, "</text>\n");
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->ns; i++)
            if (!!(c->s[i].style & MN_CHART_FRONTIER) == pass) svg_series(b, c, L, i);
    for (int j = 0; j < c->nm; j++) {
        double x = map_x(L, c->log_x ? log10(c->m[j].x) : c->m[j].x), y = map_y(L, c->m[j].y);
        sb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"none\" stroke=\"#000000\" stroke-width=\"2\"/>\n",
                  x, y, 5.0 * s - 1);
        if (c->m[j].label) {
            int tx, ty;
            mark_label_pos(L, x, y, c->m[j].label, &tx, &ty);
            svg_text(b, L, tx, ty, "start", BLACK,
                     " stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\"", c->m[j].label);
        }
    }
    if (c->ns) {
        sb_printf(b, "<rect x=\"%d.5\" y=\"%d.5\" width=\"%d\" height=\"%d\" fill=\"#ffffff\" fill-opacity=\"0.92\" "
                     "stroke=\"#bebebe\"/>\n", L->lx, L->ly, L->lw - 1, L->lh - 1);
        char buf[32];
        for (int i = 0; i < c->ns; i++) {
            double cy = L->ly + 4 * s + i * L->lrow + (7 * s) / 2 + 0.5;
            int x0 = L->lx + 4 * s;
            mn_rgb col = mn_viz_series_color(i);
            if (c->s[i].style & MN_CHART_LINE) {
                sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"", x0, cy, x0 + 18 * s, cy);
                sb_color(b, col);
                sb_printf(b, "\" stroke-width=\"%.1f\"/>\n", (double)line_width(L, c->s[i].style));
            }
            if (c->s[i].style & MN_CHART_MARKERS)
                svg_marker(b, x0 + 9.0 * s, cy, marker_size(L, c->s[i].style), i % 4, col);
            svg_text(b, L, x0 + 22 * s, L->ly + 4 * s + i * L->lrow, "start", INK, NULL,
                     series_name(c, i, buf, sizeof buf));
        }
    }
    sb_printf(b, "</svg>\n");
}

int mn_chart_save_svg(const mn_chart *c, const char *path, int w, int h)
{
    layout L;
    int rc = make_layout(c, w, h, &L);
    if (rc) return rc;
    sbuf b = {0};
    svg_document(&b, c, &L);
    if (b.oom) {
        free(b.p);
        return mn_error(MN_ENOMEM, "%s: out of memory writing SVG", path);
    }
    rc = mn_write_file_atomic(path, b.p, b.n);
    free(b.p);
    return rc;
}
