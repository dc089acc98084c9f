/* The synthetic shapes data set (conventions, layout and guarantees in include/mn/synth.h).
 *
 * One image: draw a background, then place objects one at a time. Each proposal is a polygon
 * (built around the origin, scaled to a target area, rotated, moved, clipped to the image and
 * rounded to 1/8 pixel) whose pixel centres are counted against an instance map; it is accepted
 * only if every earlier object stays at least 40% visible. Accepted objects overwrite the
 * instance map. The RGB image and the label PNG are then both read off the instance map, so
 * they show the same visible regions. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mn/polygon.h"
#include "mn/rng.h"
#include "mn/fileio.h"
#include "mn/synth.h"

#define PI 3.14159265358979323846
#define MAX_VERTS 300      /* largest unclipped polygon: a ring of 2 x (128 + 1) vertices */
#define TRIES 25           /* proposals per object before giving up on it */
#define MIN_PIXELS 12      /* pixel centres an object must cover, and keep visible */
#define EMPTY_EVERY 10     /* the 10th, 20th, ... image of each split is empty */

static const char *const shape_names[MN_SHAPE_COUNT] = {"circle", "square", "triangle", "star", "ring"};
static const int shape_ids[MN_SHAPE_COUNT] = {1, 3, 7, 9, 13};

const char *mn_shape_name(int shape) { return shape >= 0 && shape < MN_SHAPE_COUNT ? shape_names[shape] : NULL; }
int mn_shape_category_id(int shape) { return shape >= 0 && shape < MN_SHAPE_COUNT ? shape_ids[shape] : -1; }

void mn_synth_config_default(mn_synth_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_images = 300;
    c->width = c->height = 320;
    c->n_classes = MN_SHAPE_COUNT;
    for (int i = 0; i < MN_SHAPE_COUNT; i++) c->classes[i] = i;
    c->jpeg_quality = 90;
    c->val_fraction = 0.2;
    c->max_objects = 6;
    c->min_visible = 0.4;
}

int mn_synth_set_classes(mn_synth_config *c, const char *list)
{
    int n = 0, picked[MN_SHAPE_COUNT];
    const char *p = list ? list : "";
    for (;;) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed > 0 && p[trimmed - 1] == ' ') trimmed--;
        if (trimmed == 0) return mn_error(MN_EINVAL, "synth classes \"%s\": empty class name", list ? list : "");
        int s = -1;
        for (int k = 0; k < MN_SHAPE_COUNT; k++)
            if (strlen(shape_names[k]) == trimmed && !strncmp(p, shape_names[k], trimmed)) s = k;
        if (s < 0)
            return mn_error(MN_EINVAL, "synth classes: unknown class \"%.*s\" (known: circle, square, triangle, star, ring)",
                            (int)trimmed, p);
        for (int k = 0; k < n; k++)
            if (picked[k] == s) return mn_error(MN_EINVAL, "synth classes: \"%s\" given twice", shape_names[s]);
        picked[n++] = s;
        if (!p[len]) break;
        p += len + 1;
    }
    /* label indices follow the category ids (the usual COCO -> contiguous mapping), not the list order */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && picked[j - 1] > picked[j]; j--) {
            int t = picked[j];
            picked[j] = picked[j - 1];
            picked[j - 1] = t;
        }
    c->n_classes = n;
    memcpy(c->classes, picked, sizeof(int) * (size_t)n);
    return 0;
}

int mn_synth_check_config(const mn_synth_config *c)
{
    if (c->n_images < 1 || c->n_images > 1000000)
        return mn_error(MN_EINVAL, "synth: n_images %d outside 1..1000000", c->n_images);
    if (c->width < 32 || c->width > 8192 || c->height < 32 || c->height > 8192)
        return mn_error(MN_EINVAL, "synth: size %dx%d outside 32..8192 per side", c->width, c->height);
    if (c->n_classes < 1 || c->n_classes > MN_SHAPE_COUNT)
        return mn_error(MN_EINVAL, "synth: n_classes %d outside 1..%d", c->n_classes, MN_SHAPE_COUNT);
    for (int i = 0; i < c->n_classes; i++) {
        if (c->classes[i] < 0 || c->classes[i] >= MN_SHAPE_COUNT)
            return mn_error(MN_EINVAL, "synth: classes[%d] = %d is not a shape", i, c->classes[i]);
        if (i > 0 && c->classes[i] <= c->classes[i - 1])
            return mn_error(MN_EINVAL, "synth: classes must be distinct and in increasing order (classes[%d] = %d)", i,
                            c->classes[i]);
    }
    if (!c->png && (c->jpeg_quality < 1 || c->jpeg_quality > 100))
        return mn_error(MN_EINVAL, "synth: jpeg_quality %d outside 1..100", c->jpeg_quality);
    if (!(c->val_fraction >= 0 && c->val_fraction < 1))
        return mn_error(MN_EINVAL, "synth: val_fraction %g outside [0, 1)", c->val_fraction);
    if (c->max_objects < 1 || c->max_objects > MN_SYNTH_MAX_OBJECTS)
        return mn_error(MN_EINVAL, "synth: max_objects %d outside 1..%d", c->max_objects, MN_SYNTH_MAX_OBJECTS);
    if (!(c->min_visible >= 0.05 && c->min_visible <= 1))
        return mn_error(MN_EINVAL, "synth: min_visible %g outside [0.05, 1]", c->min_visible);
    return 0;
}

int mn_synth_split_of(const mn_synth_config *c, int index, int *local)
{
    double f = c->val_fraction;
    int before = (int)floor((double)index * f), upto = (int)floor((double)(index + 1) * f);
    int val = upto > before;
    if (local) *local = val ? upto - 1 : index - upto;
    return val;
}

/* ---------------------------------------------------------------- shapes */

/* Vertices of a regular polygon of radius r whose chords stay within 1/4 pixel of the circle. */
static int circle_sides(double r)
{
    double n = ceil(PI / acos(1.0 - fmin(0.25 / r, 1.0)));
    return n < 12 ? 12 : n > 128 ? 128 : (int)n;
}

/* Builds the shape around the origin with the given area; returns the vertex count. */
static int make_shape(double *xy /* (MAX_VERTS, 2) */, int shape, double area, mn_rng *r)
{
    int n = 0;
    double scale = 1; /* applied afterwards to shapes built at unit size */
    switch (shape) {
    case MN_SHAPE_CIRCLE: {
        double rad = sqrt(area / PI);
        n = circle_sides(rad);
        for (int k = 0; k < n; k++) {
            xy[2 * k] = rad * cos(2 * PI * k / n);
            xy[2 * k + 1] = rad * sin(2 * PI * k / n);
        }
        return n;
    }
    case MN_SHAPE_SQUARE: {
        double a = mn_rng_range(r, 0.9f, 1.1f), side = sqrt(area);
        double hx = 0.5 * side * a, hy = 0.5 * side / a;
        const double sx[4] = {-1, 1, 1, -1}, sy[4] = {-1, -1, 1, 1};
        for (int k = 0; k < 4; k++) {
            xy[2 * k] = hx * sx[k];
            xy[2 * k + 1] = hy * sy[k];
        }
        return 4;
    }
    case MN_SHAPE_TRIANGLE:
        n = 3;
        for (int k = 0; k < 3; k++) {
            double ang = 2 * PI * k / 3 - PI / 2 + mn_rng_range(r, -0.18f, 0.18f);
            double rad = mn_rng_range(r, 0.85f, 1.15f);
            xy[2 * k] = rad * cos(ang);
            xy[2 * k + 1] = rad * sin(ang);
        }
        break;
    case MN_SHAPE_STAR: {
        int points = mn_rng_int(r, 5, 6);
        double inner = mn_rng_range(r, 0.4f, 0.55f);
        n = 2 * points;
        for (int k = 0; k < n; k++) {
            double rad = k % 2 ? inner : 1.0;
            xy[2 * k] = rad * cos(PI * k / points);
            xy[2 * k + 1] = rad * sin(PI * k / points);
        }
        break;
    }
    case MN_SHAPE_RING: {
        /* keyhole: outer circle, cut to the inner circle, inner circle reversed, back along the cut */
        double rho = mn_rng_range(r, 0.45f, 0.7f);
        double outer = sqrt(area / (PI * (1 - rho * rho))), inner = rho * outer;
        int m = circle_sides(outer);
        for (int k = 0; k <= m; k++) {
            xy[2 * n] = outer * cos(2 * PI * (k % m) / m);
            xy[2 * n + 1] = outer * sin(2 * PI * (k % m) / m);
            n++;
        }
        for (int k = 0; k <= m; k++) {
            int t = (m - k) % m;
            xy[2 * n] = inner * cos(2 * PI * t / m);
            xy[2 * n + 1] = inner * sin(2 * PI * t / m);
            n++;
        }
        return n;
    }
    default: return 0;
    }
    scale = sqrt(area / fabs(mn_polygon_area(xy, n)));
    for (int k = 0; k < 2 * n; k++) xy[k] *= scale;
    return n;
}

/* COCO area ranges: small < 32^2 <= medium < 96^2 <= large; small from 64 px^2, large up to 30% of the image. */
static double draw_area(mn_rng *r, double image_area)
{
    const double lo[3] = {64, 1024, 9216}, hi[3] = {1024, 9216, 0.3 * image_area};
    for (;;) {
        float u = mn_rng_uniform(r);
        int k = u < 0.4f ? 0 : u < 0.75f ? 1 : 2;
        double top = fmin(hi[k], 0.3 * image_area);
        if (top <= lo[k]) continue; /* this size does not fit the image; small always does (32x32 minimum) */
        return lo[k] * exp(mn_rng_uniform(r) * log(top / lo[k]));
    }
}

/* ---------------------------------------------------------------- colours and textures */

static void hsv_to_rgb(float h, float s, float v, float rgb[3])
{
    float c = v * s, hp = h / 60.0f, x = c * (1 - fabsf(fmodf(hp, 2.0f) - 1));
    float r = 0, g = 0, b = 0;
    int k = (int)hp % 6;
    if (k == 0) r = c, g = x;
    else if (k == 1) r = x, g = c;
    else if (k == 2) g = c, b = x;
    else if (k == 3) g = x, b = c;
    else if (k == 4) r = x, b = c;
    else r = c, b = x;
    float m = v - c;
    rgb[0] = 255 * (r + m);
    rgb[1] = 255 * (g + m);
    rgb[2] = 255 * (b + m);
}

static void random_colour(mn_rng *r, float rgb[3])
{
    hsv_to_rgb(mn_rng_range(r, 0, 360), mn_rng_range(r, 0.15f, 1), mn_rng_range(r, 0.2f, 1), rgb);
}

static float colour_dist(const float a[3], const float b[3])
{
    return sqrtf((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

enum { BG_FLAT, BG_GRADIENT, BG_BLOBS, BG_STRIPES, BG_CHECKER, BG_KINDS };
#define GRID 9

typedef struct background {
    int kind;
    float base[3];
    float noise;                    /* extra noise amplitude on background pixels */
    float dir[2], span;             /* gradient / stripe direction, gradient length */
    float other[3];                 /* the gradient's far colour */
    int gx, gy;                     /* blob grid cells */
    float grid[GRID][GRID][3];      /* blob offsets at the grid nodes */
    float amp, period, phase;       /* stripes and checks */
} background;

static void draw_background(background *b, mn_rng *r, int w, int h)
{
    memset(b, 0, sizeof *b);
    b->kind = mn_rng_int(r, 0, BG_KINDS - 1);
    random_colour(r, b->base);
    float ang = mn_rng_range(r, 0, (float)(2 * PI));
    b->dir[0] = cosf(ang);
    b->dir[1] = sinf(ang);
    b->span = (float)(fabs(b->dir[0]) * w + fabs(b->dir[1]) * h);
    b->noise = b->kind == BG_FLAT ? mn_rng_range(r, 8, 22) : mn_rng_range(r, 0, 6);
    for (int k = 0; k < 3; k++) b->other[k] = b->base[k] + mn_rng_range(r, -60, 60);
    b->gx = mn_rng_int(r, 2, GRID - 1);
    b->gy = mn_rng_int(r, 2, GRID - 1);
    for (int i = 0; i <= b->gy; i++)
        for (int j = 0; j <= b->gx; j++)
            for (int k = 0; k < 3; k++) b->grid[i][j][k] = mn_rng_range(r, -45, 45);
    b->amp = mn_rng_range(r, 10, 32);
    b->period = mn_rng_range(r, 6, 48);
    b->phase = mn_rng_range(r, 0, (float)(2 * PI));
}

static void background_at(const background *b, int w, int h, int x, int y, float out[3])
{
    float px = x + 0.5f, py = y + 0.5f;
    for (int k = 0; k < 3; k++) out[k] = b->base[k];
    switch (b->kind) {
    case BG_GRADIENT: {
        float t = (px - 0.5f * w) * b->dir[0] + (py - 0.5f * h) * b->dir[1];
        t = t / b->span + 0.5f;
        for (int k = 0; k < 3; k++) out[k] += t * (b->other[k] - b->base[k]);
        break;
    }
    case BG_BLOBS: {
        float gxf = px / w * b->gx, gyf = py / h * b->gy;
        int i = (int)gyf, j = (int)gxf;
        if (i >= b->gy) i = b->gy - 1;
        if (j >= b->gx) j = b->gx - 1;
        float fy = gyf - i, fx = gxf - j;
        /* smoothstep weights so the blobs have no visible grid */
        fx = fx * fx * (3 - 2 * fx);
        fy = fy * fy * (3 - 2 * fy);
        for (int k = 0; k < 3; k++)
            out[k] += (1 - fy) * ((1 - fx) * b->grid[i][j][k] + fx * b->grid[i][j + 1][k]) +
                      fy * ((1 - fx) * b->grid[i + 1][j][k] + fx * b->grid[i + 1][j + 1][k]);
        break;
    }
    case BG_STRIPES: {
        float s = b->amp * sinf((px * b->dir[0] + py * b->dir[1]) * (float)(2 * PI) / b->period + b->phase);
        for (int k = 0; k < 3; k++) out[k] += s;
        break;
    }
    case BG_CHECKER: {
        float u = px * b->dir[0] + py * b->dir[1], v = -px * b->dir[1] + py * b->dir[0];
        int cu = (int)floorf(u / b->period), cv = (int)floorf(v / b->period);
        float s = ((cu + cv) & 1) ? b->amp : -b->amp;
        for (int k = 0; k < 3; k++) out[k] += 0.6f * s;
        break;
    }
    default: break;
    }
}

/* An object's look: a base colour, a linear shading across it, sometimes stripes. */
typedef struct look {
    float rgb[3];
    float cx, cy, extent;
    float dir[2], shade;
    float stripe_amp, stripe_period, stripe_dir[2];
} look;

static void draw_look(look *l, mn_rng *r, const float bg[3], double cx, double cy, double area)
{
    for (int t = 0; t < 20; t++) {
        random_colour(r, l->rgb);
        if (colour_dist(l->rgb, bg) >= 90) break; /* keep objects distinguishable from the background */
    }
    l->cx = (float)cx;
    l->cy = (float)cy;
    l->extent = (float)sqrt(area);
    float a = mn_rng_range(r, 0, (float)(2 * PI));
    l->dir[0] = cosf(a);
    l->dir[1] = sinf(a);
    l->shade = mn_rng_range(r, -40, 40);
    bool striped = mn_rng_uniform(r) < 0.25f;
    l->stripe_amp = striped ? mn_rng_range(r, 8, 22) : 0;
    l->stripe_period = mn_rng_range(r, 3, 10);
    a = mn_rng_range(r, 0, (float)(2 * PI));
    l->stripe_dir[0] = cosf(a);
    l->stripe_dir[1] = sinf(a);
}

static void look_at(const look *l, int x, int y, float out[3])
{
    float px = x + 0.5f - l->cx, py = y + 0.5f - l->cy;
    float s = l->shade * (px * l->dir[0] + py * l->dir[1]) / l->extent;
    if (l->stripe_amp > 0)
        s += l->stripe_amp *
             sinf((px * l->stripe_dir[0] + py * l->stripe_dir[1]) * (float)(2 * PI) / l->stripe_period);
    for (int k = 0; k < 3; k++) out[k] = l->rgb[k] + s;
}

/* Roughly normal noise from one 64-bit draw: the sum of four 16-bit uniforms, scaled to unit variance. */
static float quick_normal(mn_rng *r)
{
    uint64_t v = mn_rng_u64(r);
    float s = (float)(v & 0xffff) + (float)(v >> 16 & 0xffff) + (float)(v >> 32 & 0xffff) + (float)(v >> 48);
    return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

static uint8_t to_u8(float v) { return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)lrintf(v); }

/* ---------------------------------------------------------------- placement */

typedef struct count_ctx {
    const uint8_t *inst; /* (h, w) */
    int w;
    int64_t total;
    int64_t covered[MN_SYNTH_MAX_OBJECTS + 1];
} count_ctx;

static void count_span(void *ctx, int y, int x0, int x1)
{
    count_ctx *c = ctx;
    const uint8_t *row = c->inst + (size_t)y * c->w;
    for (int x = x0; x < x1; x++) c->covered[row[x]]++;
    c->total += x1 - x0;
}

static double quantise(double v) { return nearbyint(v * 8.0) / 8.0; }

/* One proposal: the written polygon of a shape at a random place, or 0 vertices if nothing useful is left. */
static int propose(double **poly, const mn_synth_config *c, mn_rng *r, int shape, double *cx, double *cy,
                   double *target)
{
    double xy[2 * MAX_VERTS], image_area = (double)c->width * c->height;
    /* large objects: a shape that can be told from the others at any crop a classifier sees */
    bool large = c->large_objects || c->classification;
    *target = large ? image_area * 0.08 * exp(mn_rng_uniform(r) * log(0.35 / 0.08)) : draw_area(r, image_area);
    int n = make_shape(xy, shape, *target, r);
    double ang = mn_rng_range(r, 0, (float)(2 * PI)), ca = cos(ang), sa = sin(ang);
    float lo = large ? 0.3f : 0.0f, hi = large ? 0.7f : 1.0f;
    *cx = mn_rng_range(r, lo * (float)c->width, hi * (float)c->width);
    *cy = mn_rng_range(r, lo * (float)c->height, hi * (float)c->height);
    for (int k = 0; k < n; k++) {
        double x = xy[2 * k], y = xy[2 * k + 1];
        xy[2 * k] = *cx + ca * x - sa * y;
        xy[2 * k + 1] = *cy + sa * x + ca * y;
    }
    int m = mn_polygon_clip_rect(poly, xy, n, 0, 0, c->width, c->height);
    if (m <= 0) return m;
    for (int k = 0; k < 2 * m; k++) (*poly)[k] = quantise((*poly)[k]);
    m = mn_polygon_dedup(*poly, m);
    if (m < 3 || fabs(mn_polygon_area(*poly, m)) < MIN_PIXELS) {
        free(*poly);
        *poly = NULL;
        return 0;
    }
    return m;
}

typedef struct paint_ctx {
    uint8_t *inst;
    int w;
    uint8_t id;
} paint_ctx;

static void paint_span(void *ctx, int y, int x0, int x1)
{
    paint_ctx *p = ctx;
    memset(p->inst + (size_t)y * p->w + x0, p->id, (size_t)(x1 - x0));
}

void mn_synth_sample_free(mn_synth_sample *s)
{
    if (!s) return;
    mn_image_free(&s->image);
    mn_image_free(&s->label);
    for (int i = 0; i < s->n_objects; i++) free(s->objects[i].xy);
    memset(s, 0, sizeof *s);
}

int mn_synth_render(const mn_synth_config *c, int index, mn_synth_sample *out)
{
    memset(out, 0, sizeof *out);
    int rc = mn_synth_check_config(c);
    if (rc) return rc;
    if (index < 0 || index >= c->n_images)
        return mn_error(MN_EINVAL, "synth: image index %d outside 0..%d", index, c->n_images - 1);
    const int w = c->width, h = c->height;
    mn_rng root, r;
    mn_rng_seed(&root, c->seed);
    r = mn_rng_split(&root, (uint64_t)index);
    int local;
    mn_synth_split_of(c, index, &local);
    bool empty = local % EMPTY_EVERY == EMPTY_EVERY - 1;

    uint8_t *inst = calloc((size_t)w * h, 1);
    if (!inst) return mn_error(MN_ENOMEM, "synth: out of memory for a %dx%d image", w, h);
    if ((rc = mn_image_alloc(&out->image, w, h, 3)) || (rc = mn_image_alloc(&out->label, w, h, 1))) {
        free(inst);
        mn_synth_sample_free(out);
        return rc;
    }
    background bg;
    draw_background(&bg, &r, w, h);
    look looks[MN_SYNTH_MAX_OBJECTS + 1];
    int64_t full[MN_SYNTH_MAX_OBJECTS + 1], visible[MN_SYNTH_MAX_OBJECTS + 1];
    int want = empty ? 0 : mn_rng_int(&r, 1, c->classification ? 1 : c->max_objects);
    count_ctx *cnt = malloc(sizeof *cnt);
    if (!cnt) rc = mn_error(MN_ENOMEM, "synth: out of memory");

    for (int k = 0; k < want && !rc; k++) {
        int m = out->n_objects; /* objects so far; the new one gets instance id m + 1 */
        for (int t = 0; t < TRIES; t++) {
            int cls = mn_rng_int(&r, 0, c->n_classes - 1);
            double cx, cy, target, *poly = NULL;
            int n = propose(&poly, c, &r, c->classes[cls], &cx, &cy, &target);
            if (n < 0) {
                rc = n;
                break;
            }
            if (n == 0) continue;
            memset(cnt, 0, sizeof *cnt);
            cnt->inst = inst;
            cnt->w = w;
            if ((rc = mn_polygon_spans(poly, n, w, h, count_span, cnt))) {
                free(poly);
                break;
            }
            bool ok = cnt->total >= MIN_PIXELS;
            for (int j = 1; j <= m && ok; j++) {
                double keep = fmax(c->min_visible * (double)full[j], MIN_PIXELS);
                ok = (double)(visible[j] - cnt->covered[j]) >= keep;
            }
            if (!ok) {
                free(poly);
                continue;
            }
            for (int j = 1; j <= m; j++) visible[j] -= cnt->covered[j];
            full[m + 1] = visible[m + 1] = cnt->total;
            paint_ctx pc = {inst, w, (uint8_t)(m + 1)};
            if ((rc = mn_polygon_spans(poly, n, w, h, paint_span, &pc))) {
                free(poly);
                break;
            }
            mn_synth_object *o = &out->objects[m];
            o->shape = c->classes[cls];
            o->label = cls + 1;
            o->n = n;
            o->xy = poly;
            double box[4];
            mn_polygon_bounds(poly, n, box);
            o->bbox[0] = box[0];
            o->bbox[1] = box[1];
            o->bbox[2] = box[2] - box[0];
            o->bbox[3] = box[3] - box[1];
            o->area = fabs(mn_polygon_area(poly, n));
            draw_look(&looks[m + 1], &r, bg.base, cx, cy, target);
            out->n_objects = m + 1;
            break;
        }
    }
    free(cnt);
    if (rc) {
        free(inst);
        mn_synth_sample_free(out);
        return rc;
    }

    /* pixels: background or the visible object, sensor noise on everything */
    float global_noise = mn_rng_range(&r, 1.5f, 7);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int id = inst[(size_t)y * w + x];
            float v[3];
            float sigma = global_noise;
            if (id) {
                look_at(&looks[id], x, y, v);
            } else {
                background_at(&bg, w, h, x, y, v);
                sigma = sqrtf(sigma * sigma + bg.noise * bg.noise);
            }
            uint8_t *px = out->image.data + ((size_t)y * w + x) * 3;
            for (int k = 0; k < 3; k++) px[k] = to_u8(v[k] + sigma * quick_normal(&r));
        }

    /* labels: the class of the visible object, 255 where a neighbour shows another object */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int id = inst[(size_t)y * w + x];
            bool edge = false;
            for (int dy = -1; dy <= 1 && !edge; dy++)
                for (int dx = -1; dx <= 1 && !edge; dx++) {
                    int yy = y + dy, xx = x + dx;
                    if (yy >= 0 && yy < h && xx >= 0 && xx < w && inst[(size_t)yy * w + xx] != id) edge = true;
                }
            out->label.data[(size_t)y * w + x] = edge ? 255 : id ? (uint8_t)out->objects[id - 1].label : 0;
        }
    free(inst);
    return 0;
}

/* ---------------------------------------------------------------- files */

static int prepare_out_dir(const mn_synth_config *c)
{
    const char *d = c->out_dir;
    if (!d || !*d) return mn_error(MN_EINVAL, "synth: no output directory");
    struct stat sb;
    if (stat(d, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) return mn_error(MN_EIO, "%s: exists and is not a directory", d);
        DIR *dir = opendir(d);
        if (!dir) return mn_error(MN_EIO, "%s: cannot read directory: %s", d, strerror(errno));
        bool empty = true;
        for (struct dirent *e; (e = readdir(dir));)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
        closedir(dir);
        if (!empty && !c->force)
            return mn_error(MN_EINVAL,
                            "%s: directory is not empty; refusing to write into it (--force writes anyway, "
                            "replacing files of the same names)",
                            d);
    } else if (errno != ENOENT) {
        return mn_error(MN_EIO, "%s: %s", d, strerror(errno));
    }
    static const char *const subs[] = {"images/train", "images/val", "labels/train", "labels/val", "annotations",
                                       "splits"};
    size_t len = strlen(d) + 32;
    char *p = malloc(len);
    if (!p) return mn_error(MN_ENOMEM, "%s: out of memory", d);
    int rc = mn_mkdirs(d);
    for (size_t i = 0; i < sizeof subs / sizeof *subs && !rc && !c->classification; i++) {
        snprintf(p, len, "%s/%s", d, subs[i]);
        rc = mn_mkdirs(p);
    }
    for (int i = 0; i < 2 * c->n_classes && !rc && c->classification; i++) { /* {train,val}/<class> */
        snprintf(p, len, "%s/%s/%s", d, i < c->n_classes ? "train" : "val", shape_names[c->classes[i % c->n_classes]]);
        rc = mn_mkdirs(p);
    }
    free(p);
    return rc;
}

static const char *const split_names[2] = {"train", "val"};

typedef struct kept {
    int n;
    mn_synth_object *obj; /* (n) polygons kept for the JSON */
} kept;

static int generate_one(const mn_synth_config *c, int i, kept *k)
{
    mn_synth_sample s;
    int rc = mn_synth_render(c, i, &s);
    if (rc) return rc;
    int split = mn_synth_split_of(c, i, NULL);
    size_t len = strlen(c->out_dir) + 64;
    char *p = malloc(len);
    if (!p) {
        mn_synth_sample_free(&s);
        return mn_error(MN_ENOMEM, "synth: out of memory");
    }
    const char *ext = c->png ? "png" : "jpg";
    if (!c->classification) {
        snprintf(p, len, "%s/images/%s/%06d.%s", c->out_dir, split_names[split], i + 1, ext);
        rc = mn_image_save(p, &s.image, c->jpeg_quality);
    } else if (s.n_objects) { /* filed under its one object's class; images without one are not written */
        snprintf(p, len, "%s/%s/%s/%06d.%s", c->out_dir, split_names[split], shape_names[s.objects[0].shape], i + 1, ext);
        rc = mn_image_save(p, &s.image, c->jpeg_quality);
    }
    if (!rc && !c->classification) {
        snprintf(p, len, "%s/labels/%s/%06d.png", c->out_dir, split_names[split], i + 1);
        rc = mn_image_save(p, &s.label, 0);
    }
    free(p);
    if (!rc && s.n_objects) {
        k->obj = malloc(sizeof(mn_synth_object) * (size_t)s.n_objects);
        if (!k->obj) rc = mn_error(MN_ENOMEM, "synth: out of memory");
    }
    if (rc) {
        mn_synth_sample_free(&s);
        return rc;
    }
    k->n = s.n_objects;
    if (s.n_objects) memcpy(k->obj, s.objects, sizeof(mn_synth_object) * (size_t)s.n_objects);
    s.n_objects = 0; /* the polygons now belong to k */
    mn_synth_sample_free(&s);
    return 0;
}

static cJSON *number_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateNumber(v[i]);
        if (!x) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, x);
    }
    return a;
}

/* The COCO instances JSON of one split; ann_ids[i] is the first annotation id of image i. */
static int write_coco(const mn_synth_config *c, int split, const kept *ks, const int *ann_ids, const char *path)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    char desc[160];
    snprintf(desc, sizeof desc, "mutualnet synthetic shapes (seed %llu, %dx%d)", (unsigned long long)c->seed,
             c->width, c->height);
    cJSON *info = ok ? cJSON_AddObjectToObject(root, "info") : NULL;
    ok = ok && info && cJSON_AddStringToObject(info, "description", desc) &&
         cJSON_AddStringToObject(info, "version", "1.0") && cJSON_AddArrayToObject(root, "licenses");
    cJSON *images = ok ? cJSON_AddArrayToObject(root, "images") : NULL;
    cJSON *anns = ok ? cJSON_AddArrayToObject(root, "annotations") : NULL;
    cJSON *cats = ok ? cJSON_AddArrayToObject(root, "categories") : NULL;
    ok = ok && images && anns && cats;
    for (int k = 0; ok && k < c->n_classes; k++) {
        cJSON *cat = cJSON_CreateObject();
        ok = cat && cJSON_AddItemToArray(cats, cat) && cJSON_AddNumberToObject(cat, "id", shape_ids[c->classes[k]]) &&
             cJSON_AddStringToObject(cat, "name", shape_names[c->classes[k]]) &&
             cJSON_AddStringToObject(cat, "supercategory", "shape");
    }
    char name[32];
    for (int i = 0; ok && i < c->n_images; i++) {
        if (mn_synth_split_of(c, i, NULL) != split) continue;
        cJSON *im = cJSON_CreateObject();
        snprintf(name, sizeof name, "%06d.%s", i + 1, c->png ? "png" : "jpg");
        ok = im && cJSON_AddItemToArray(images, im) && cJSON_AddNumberToObject(im, "id", i + 1) &&
             cJSON_AddStringToObject(im, "file_name", name) && cJSON_AddNumberToObject(im, "width", c->width) &&
             cJSON_AddNumberToObject(im, "height", c->height);
        for (int j = 0; ok && j < ks[i].n; j++) {
            const mn_synth_object *o = &ks[i].obj[j];
            cJSON *a = cJSON_CreateObject();
            cJSON *seg = cJSON_CreateArray(), *poly = number_array(o->xy, 2 * o->n), *bbox = number_array(o->bbox, 4);
            ok = a && seg && poly && bbox;
            if (!ok) {
                cJSON_Delete(a);
                cJSON_Delete(seg);
                cJSON_Delete(poly);
                cJSON_Delete(bbox);
                break;
            }
            cJSON_AddItemToArray(anns, a);
            cJSON_AddItemToArray(seg, poly);
            ok = cJSON_AddNumberToObject(a, "id", ann_ids[i] + j) && cJSON_AddNumberToObject(a, "image_id", i + 1) &&
                 cJSON_AddNumberToObject(a, "category_id", shape_ids[o->shape]) &&
                 cJSON_AddItemToObject(a, "segmentation", seg) && cJSON_AddNumberToObject(a, "area", o->area) &&
                 cJSON_AddItemToObject(a, "bbox", bbox) && cJSON_AddNumberToObject(a, "iscrowd", 0);
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return mn_error(MN_ENOMEM, "%s: out of memory building the JSON", path);
    int rc = mn_write_file_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

/* A growing text buffer for the small text files. */
typedef struct text {
    char *s;
    size_t n, cap;
    bool failed;
} text;

static void text_add(text *t, const char *fmt, ...) MN_PRINTF(2, 3);
static void text_add(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    va_list ap;
    va_start(ap, fmt);
    char line[256];
    int k = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof line) {
        t->failed = true;
        return;
    }
    if (t->n + (size_t)k + 1 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4096;
        while (cap < t->n + (size_t)k + 1) cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->n, line, (size_t)k + 1);
    t->n += (size_t)k;
}

static int write_text(const char *path, text *t)
{
    int rc = t->failed ? mn_error(MN_ENOMEM, "%s: out of memory", path) : mn_write_file_atomic(path, t->s ? t->s : "", t->n);
    free(t->s);
    memset(t, 0, sizeof *t);
    return rc;
}

int mn_synth_generate(const mn_synth_config *c, mn_synth_stats *stats)
{
    int rc = mn_synth_check_config(c);
    if (!rc) rc = prepare_out_dir(c);
    if (rc) return rc;
    const int n = c->n_images;
    kept *ks = calloc((size_t)n, sizeof *ks);
    int *codes = calloc((size_t)n, sizeof *codes);
    char **msgs = calloc((size_t)n, sizeof *msgs);
    int *ann_ids = malloc(sizeof(int) * (size_t)n);
    if (!ks || !codes || !msgs || !ann_ids) {
        free(ks);
        free(codes);
        free(msgs);
        free(ann_ids);
        return mn_error(MN_ENOMEM, "%s: out of memory for %d images", c->out_dir, n);
    }
    int stop = 0;
    /* every image has its own random stream, so the schedule does not change the output */
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) {
        int halt;
#pragma omp atomic read
        halt = stop;
        if (halt) continue;
        int r = generate_one(c, i, &ks[i]);
        if (r) {
            codes[i] = r;
            msgs[i] = strdup(mn_last_error());
#pragma omp atomic write
            stop = 1;
        }
    }
    for (int i = 0; i < n && !rc; i++)
        if (codes[i]) rc = mn_error(codes[i], "%s", msgs[i] ? msgs[i] : "synth: image failed (out of memory)");

    mn_synth_stats st = {0};
    int next_id = 1;
    for (int i = 0; i < n; i++) {
        ann_ids[i] = next_id;
        next_id += ks[i].n;
        if (c->classification && !ks[i].n) continue; /* not written */
        if (mn_synth_split_of(c, i, NULL)) st.n_val++;
        else st.n_train++;
        if (!ks[i].n) st.n_empty++;
        for (int j = 0; j < ks[i].n; j++) {
            double a = ks[i].obj[j].area;
            if (a < 1024) st.n_small++;
            else if (a < 9216) st.n_medium++;
            else st.n_large++;
        }
        st.n_objects += ks[i].n;
    }

    size_t len = strlen(c->out_dir) + 64;
    char *p = malloc(len);
    if (!rc && !p) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->out_dir);
    for (int s = 0; s < 2 && !rc && !c->classification; s++) {
        snprintf(p, len, "%s/annotations/instances_%s.json", c->out_dir, split_names[s]);
        rc = write_coco(c, s, ks, ann_ids, p);
        if (rc) break;
        text t = {0};
        for (int i = 0; i < n; i++)
            if (mn_synth_split_of(c, i, NULL) == s) text_add(&t, "%06d\n", i + 1);
        snprintf(p, len, "%s/splits/%s.txt", c->out_dir, split_names[s]);
        rc = write_text(p, &t);
    }
    if (!rc && c->classification) {
        text t = {0};
        text_add(&t, "# class names in label order (the imagefolder data set kind's class list)\n");
        for (int k = 0; k < c->n_classes; k++) text_add(&t, "%s\n", shape_names[c->classes[k]]);
        snprintf(p, len, "%s/classes.txt", c->out_dir);
        rc = write_text(p, &t);
    } else if (!rc) {
        text t = {0};
        /* the category ids go in a comment: the folder data set kind reads "index name" lines */
        text_add(&t, "# label index and name; COCO category ids:");
        for (int k = 0; k < c->n_classes; k++) text_add(&t, " %s=%d", shape_names[c->classes[k]], shape_ids[c->classes[k]]);
        text_add(&t, "\n0 background\n");
        for (int k = 0; k < c->n_classes; k++) text_add(&t, "%d %s\n", k + 1, shape_names[c->classes[k]]);
        snprintf(p, len, "%s/classes.txt", c->out_dir);
        rc = write_text(p, &t);
    }
    free(p);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < ks[i].n; j++) free(ks[i].obj[j].xy);
        free(ks[i].obj);
        free(msgs[i]);
    }
    free(ks);
    free(codes);
    free(msgs);
    free(ann_ids);
    if (!rc && stats) *stats = st;
    return rc;
}
