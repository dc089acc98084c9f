/* Segmentation and detection overlays: a prediction drawn over its image, with a legend or
 * labelled boxes, as a new RGB image (layouts are documented in mn/viz.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/viz.h"

#define TITLE_BG ((mn_rgb){40, 40, 40})
#define WHITE ((mn_rgb){255, 255, 255})
#define LEGEND_TEXT ((mn_rgb){25, 25, 25})
#define MAX_NAME 40 /* characters of a class name shown; longer names are cut with ".." */

/* The display name of class k in buf (class_names may be NULL or hold NULL entries). */
static const char *class_name(const char *const *class_names, int k, char *buf, size_t size)
{
    const char *name = class_names ? class_names[k] : NULL;
    if (!name) {
        snprintf(buf, size, "class %d", k);
        return buf;
    }
    if (strlen(name) <= MAX_NAME) return name;
    snprintf(buf, size, "%.*s..", MAX_NAME - 2, name);
    return buf;
}

static int check_image(const char *what, const mn_image *img)
{
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || img->c < 1 || img->c > 4)
        return mn_error(MN_EINVAL, "%s: image of %dx%dx%d%s is not drawable", what, img ? img->w : 0,
                        img ? img->h : 0, img ? img->c : 0, img && !img->data ? " without pixels" : "");
    return 0;
}

/* The RGB of image pixel i (grey repeated, alpha dropped). */
static void pixel_rgb(const mn_image *img, size_t i, uint8_t rgb[3])
{
    const uint8_t *p = img->data + i * (size_t)img->c;
    if (img->c >= 3) {
        rgb[0] = p[0], rgb[1] = p[1], rgb[2] = p[2];
    } else {
        rgb[0] = rgb[1] = rgb[2] = p[0];
    }
}

static void draw_title(mn_image *canvas, const char *title, int s)
{
    int th = 17 * s;
    mn_viz_fill_rect(canvas, 0, 0, canvas->w, th, TITLE_BG, 1);
    mn_viz_text(canvas, 4 * s, 4 * s, title, s, WHITE);
}

int mn_viz_seg_overlay_layout(int w, int h, const uint8_t *labels /* (h, w) */, int num_classes,
                              const char *const *class_names, const char *title, mn_viz_seg_layout *out)
{
    memset(out, 0, sizeof *out);
    if (w <= 0 || h <= 0 || !labels)
        return mn_error(MN_EINVAL, "seg overlay: labels of %dx%d%s", w, h, labels ? "" : " missing");
    if (num_classes < 1 || num_classes > 255)
        return mn_error(MN_EINVAL, "seg overlay: num_classes %d outside 1..255 (255 is the ignore label)", num_classes);
    bool present[256] = {false};
    size_t np = (size_t)w * (size_t)h;
    for (size_t i = 0; i < np; i++) {
        int v = labels[i];
        if (v != 255 && v >= num_classes)
            return mn_error(MN_EINVAL, "seg overlay: label %d at pixel (%d, %d) is neither a class (0..%d) nor 255",
                            v, (int)(i % (size_t)w), (int)(i / (size_t)w), num_classes - 1);
        present[v] = true;
    }
    int s = mn_viz_text_scale(w, h);
    int widest = mn_viz_text_width("no objects", s), n = 0;
    char buf[64];
    for (int k = 1; k < num_classes; k++) {
        if (!present[k]) continue;
        int tw = mn_viz_text_width(class_name(class_names, k, buf, sizeof buf), s);
        if (n == 0 || tw > widest) widest = tw;
        n++;
    }
    out->scale = s;
    out->title_h = title && *title ? 17 * s : 0;
    out->legend_x = w;
    out->legend_w = 5 * s + 10 * s + 4 * s + widest + 5 * s;
    out->legend_h = 5 * s + 14 * s * (n ? n : 1) - 4 * s + 5 * s;
    out->canvas_w = w + out->legend_w;
    if (out->title_h) {
        int tw = mn_viz_text_width(title, s) + 8 * s;
        if (tw > out->canvas_w) out->canvas_w = tw;
    }
    out->canvas_h = out->title_h + (h > out->legend_h ? h : out->legend_h);
    out->n_listed = n;
    return 0;
}

int mn_viz_seg_overlay_titled(const mn_image *rgb, const uint8_t *labels /* (h, w) */, int num_classes,
                              const char *const *class_names, float alpha, const char *title, mn_image *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_image("seg overlay", rgb);
    if (rc) return rc;
    if (!(alpha >= 0 && alpha <= 1)) return mn_error(MN_EINVAL, "seg overlay: alpha %g outside [0, 1]", (double)alpha);
    mn_viz_seg_layout L;
    rc = mn_viz_seg_overlay_layout(rgb->w, rgb->h, labels, num_classes, class_names, title, &L);
    if (rc) return rc;
    mn_image cv;
    rc = mn_image_alloc(&cv, L.canvas_w, L.canvas_h, 3);
    if (rc) return rc;
    mn_viz_fill_rect(&cv, 0, 0, cv.w, cv.h, MN_VIZ_PANEL, 1);
    if (L.title_h) draw_title(&cv, title, L.scale);

    int w = rgb->w, h = rgb->h, A = (int)lroundf(alpha * 255.0f);
    for (int y = 0; y < h; y++) {
        const uint8_t *lab = labels + (size_t)y * (size_t)w;
        uint8_t *dst = cv.data + ((size_t)(y + L.title_h) * (size_t)cv.w) * 3;
        for (int x = 0; x < w; x++, dst += 3) {
            uint8_t px[3];
            pixel_rgb(rgb, (size_t)y * (size_t)w + (size_t)x, px);
            int k = lab[x];
            if (k == 0 || k == 255) {
                memcpy(dst, px, 3);
                continue;
            }
            mn_rgb col = mn_viz_voc_color(k);
            bool edge = (x > 0 && lab[x - 1] != k) || (x + 1 < w && lab[x + 1] != k) ||
                        (y > 0 && lab[x - w] != k) || (y + 1 < h && lab[x + w] != k);
            if (edge) {
                dst[0] = (uint8_t)(col.r * 3 / 5);
                dst[1] = (uint8_t)(col.g * 3 / 5);
                dst[2] = (uint8_t)(col.b * 3 / 5);
            } else {
                dst[0] = mn_viz_mix(px[0], col.r, A);
                dst[1] = mn_viz_mix(px[1], col.g, A);
                dst[2] = mn_viz_mix(px[2], col.b, A);
            }
        }
    }

    /* legend: one row per class present */
    int s = L.scale, x0 = L.legend_x, y0 = L.title_h, row = 0;
    bool present[256] = {false};
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) present[labels[i]] = true;
    char buf[64];
    for (int k = 1; k < num_classes; k++) {
        if (!present[k]) continue;
        int ry = y0 + 5 * s + 14 * s * row;
        mn_rgb col = mn_viz_voc_color(k);
        mn_viz_fill_rect(&cv, x0 + 5 * s, ry, x0 + 15 * s, ry + 10 * s, col, 1);
        mn_viz_rect(&cv, x0 + 5 * s, ry, x0 + 15 * s, ry + 10 * s, 1, (mn_rgb){col.r * 3 / 5, col.g * 3 / 5, col.b * 3 / 5});
        /* capitals are 7 s tall: centre them on the 10 s swatch */
        mn_viz_text(&cv, x0 + 19 * s, ry + (3 * s) / 2, class_name(class_names, k, buf, sizeof buf), s, LEGEND_TEXT);
        row++;
    }
    if (!row) mn_viz_text(&cv, x0 + 5 * s, y0 + 5 * s + (3 * s) / 2, "no objects", s, (mn_rgb){110, 110, 110});
    /* a thin rule between picture and legend */
    mn_viz_fill_rect(&cv, x0, y0, x0 + 1, y0 + (h > L.legend_h ? h : L.legend_h), (mn_rgb){200, 200, 200}, 1);
    *out = cv;
    return 0;
}

int mn_viz_seg_overlay(const mn_image *rgb, const uint8_t *labels /* (h, w) */, int num_classes,
                       const char *const *class_names, float alpha, mn_image *out)
{
    return mn_viz_seg_overlay_titled(rgb, labels, num_classes, class_names, alpha, NULL, out);
}

typedef struct det_order {
    float score;
    int idx;
} det_order;

static int by_score(const void *a, const void *b)
{
    const det_order *p = a, *q = b;
    if (p->score != q->score) return p->score < q->score ? -1 : 1;
    return (p->idx > q->idx) - (p->idx < q->idx);
}

/* Pixel columns (or rows) [*lo, *hi] of a box edge pair in an axis of n pixels; false if none. */
static bool box_span(float a, float b, int n, int *lo, int *hi)
{
    /* clamp first so rounding never overflows; the clip below gives the same result */
    float fa = fminf(fmaxf(a, -4.0f), (float)n + 4.0f), fb = fminf(fmaxf(b, -4.0f), (float)n + 4.0f);
    int l = (int)lrintf(fa), r = (int)lrintf(fb) - 1;
    if (r < l) r = l;
    if (r < 0 || l >= n) return false;
    *lo = l < 0 ? 0 : l;
    *hi = r >= n ? n - 1 : r;
    return true;
}

int mn_viz_det_overlay(const mn_image *rgb, const float *boxes /* (n, 4) x1 y1 x2 y2 */, const int *labels /* (n) */,
                       const float *scores /* (n) or NULL */, int n, const char *const *class_names,
                       float score_threshold, const char *title, mn_image *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_image("det overlay", rgb);
    if (rc) return rc;
    if (n < 0 || (n > 0 && (!boxes || !labels)))
        return mn_error(MN_EINVAL, "det overlay: %d detections%s", n, n < 0 ? "" : " without boxes or labels");
    for (int i = 0; i < n; i++) {
        const float *b = boxes + 4 * (size_t)i;
        if (labels[i] < 0) return mn_error(MN_EINVAL, "det overlay: detection %d has label %d", i, labels[i]);
        if (!isfinite(b[0]) || !isfinite(b[1]) || !isfinite(b[2]) || !isfinite(b[3]))
            return mn_error(MN_EINVAL, "det overlay: detection %d has a non-finite box [%g, %g, %g, %g]", i,
                            (double)b[0], (double)b[1], (double)b[2], (double)b[3]);
    }
    int w = rgb->w, h = rgb->h, s = mn_viz_text_scale(w, h);
    int th = title && *title ? 17 * s : 0;
    mn_image cv;
    rc = mn_image_alloc(&cv, w, h + th, 3);
    if (rc) return rc;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) pixel_rgb(rgb, i, cv.data + (size_t)th * (size_t)w * 3 + i * 3);
    if (th) draw_title(&cv, title, s);

    det_order *ord = malloc(sizeof *ord * (size_t)(n ? n : 1));
    if (!ord) {
        mn_image_free(&cv);
        return mn_error(MN_ENOMEM, "det overlay: out of memory for %d detections", n);
    }
    int m = 0;
    for (int i = 0; i < n; i++) {
        float sc = scores ? scores[i] : 1.0f;
        if (scores && !(sc >= score_threshold)) continue;
        ord[m++] = (det_order){sc, i};
    }
    qsort(ord, (size_t)m, sizeof *ord, by_score);
    mn_rgb colors[MN_VIZ_GREEDY_COLORS];
    int top = 0;
    for (int j = 0; j < m; j++)
        if (labels[ord[j].idx] >= top) top = labels[ord[j].idx] + 1;
    mn_viz_class_colors(top < MN_VIZ_GREEDY_COLORS ? top : MN_VIZ_GREEDY_COLORS, colors);

    /* the image is drawn into a view of the canvas below the title bar */
    mn_image pic = {w, h, 3, cv.data + (size_t)th * (size_t)w * 3};
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < m; j++) {
            int i = ord[j].idx;
            const float *b = boxes + 4 * (size_t)i;
            int X1, X2, Y1, Y2;
            if (!box_span(b[0], b[2], w, &X1, &X2) || !box_span(b[1], b[3], h, &Y1, &Y2)) continue;
            mn_rgb col = labels[i] < MN_VIZ_GREEDY_COLORS ? colors[labels[i]] : mn_viz_class_color(labels[i]);
            if (pass == 0) {
                mn_viz_rect(&pic, X1, Y1, X2 + 1, Y2 + 1, 2, col);
                continue;
            }
            char buf[64], text[96];
            const char *name = class_name(class_names, labels[i], buf, sizeof buf);
            if (scores)
                snprintf(text, sizeof text, "%s %.2f", name, (double)scores[i]);
            else
                snprintf(text, sizeof text, "%s", name);
            int tw = mn_viz_text_width(text, s) + 4 * s, tagh = 11 * s;
            int ty = Y1 - tagh >= 0 ? Y1 - tagh : Y1;
            int tx = X1 + tw > w ? w - tw : X1;
            if (tx < 0) tx = 0;
            mn_viz_fill_rect(&pic, tx, ty, tx + tw, ty + tagh, col, 1);
            mn_viz_text(&pic, tx + 2 * s, ty + s, text, s, mn_viz_text_color_on(col));
        }
    }
    free(ord);
    *out = cv;
    return 0;
}
