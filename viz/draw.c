/* Drawing primitives on mn_image: blended pixels, rectangles, anti-aliased lines and markers,
 * and text from stb_easy_font's stroke font drawn as blocks of pixels at an integer scale. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-braces"
#endif
#include <stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "mn/viz.h"

static int opacity(float alpha)
{
    if (!(alpha > 0)) return 0;
    if (alpha >= 1) return 255;
    return (int)lroundf(alpha * 255.0f);
}

/* (x, y) must be inside the image. */
static void put(mn_image *img, int x, int y, mn_rgb c, int a)
{
    uint8_t *p = img->data + ((size_t)y * (size_t)img->w + (size_t)x) * (size_t)img->c;
    if (img->c >= 3) {
        p[0] = mn_viz_mix(p[0], c.r, a);
        p[1] = mn_viz_mix(p[1], c.g, a);
        p[2] = mn_viz_mix(p[2], c.b, a);
        if (img->c == 4) p[3] = 255;
    } else {
        uint8_t luma = (uint8_t)((77 * c.r + 150 * c.g + 29 * c.b + 128) >> 8);
        p[0] = mn_viz_mix(p[0], luma, a);
        if (img->c == 2) p[1] = 255;
    }
}

void mn_viz_blend_pixel(mn_image *img, int x, int y, mn_rgb c, float alpha)
{
    int a = opacity(alpha);
    if (a && x >= 0 && y >= 0 && x < img->w && y < img->h) put(img, x, y, c, a);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void mn_viz_fill_rect(mn_image *img, int x0, int y0, int x1, int y1, mn_rgb c, float alpha)
{
    int a = opacity(alpha);
    if (!a) return;
    x0 = clampi(x0, 0, img->w);
    x1 = clampi(x1, 0, img->w);
    y0 = clampi(y0, 0, img->h);
    y1 = clampi(y1, 0, img->h);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) put(img, x, y, c, a);
}

void mn_viz_rect(mn_image *img, int x0, int y0, int x1, int y1, int thickness, mn_rgb c)
{
    if (x1 <= x0 || y1 <= y0 || thickness <= 0) return;
    int t = thickness;
    mn_viz_fill_rect(img, x0, y0, x1, y0 + t < y1 ? y0 + t : y1, c, 1);
    mn_viz_fill_rect(img, x0, y1 - t > y0 ? y1 - t : y0, x1, y1, c, 1);
    mn_viz_fill_rect(img, x0, y0, x0 + t < x1 ? x0 + t : x1, y1, c, 1);
    mn_viz_fill_rect(img, x1 - t > x0 ? x1 - t : x0, y0, x1, y1, c, 1);
}

/* The pixel range [lo, hi] covering [a - pad, b + pad] clipped to [0, n); false when empty. */
static bool span(float a, float b, float pad, int n, int *lo, int *hi)
{
    float mn = fminf(a, b) - pad, mx = fmaxf(a, b) + pad;
    if (mx < 0 || mn >= (float)n) return false;
    *lo = mn < 0 ? 0 : (int)floorf(mn);
    *hi = mx >= (float)n ? n - 1 : (int)floorf(mx);
    return *lo <= *hi;
}

void mn_viz_line(mn_image *img, float x0, float y0, float x1, float y1, float width, mn_rgb c, float alpha)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || !(width > 0)) return;
    float half = 0.5f * fmaxf(width, 1.0f);
    float thin = fminf(width, 1.0f); /* lines under a pixel wide are drawn fainter instead */
    int xa, xb, ya, yb;
    if (!span(x0, x1, half + 1, img->w, &xa, &xb) || !span(y0, y1, half + 1, img->h, &ya, &yb)) return;
    float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    for (int y = ya; y <= yb; y++) {
        for (int x = xa; x <= xb; x++) {
            /* coverage from the distance of the pixel centre to the segment: full within
             * half - 0.5 pixels, falling linearly to zero at half + 0.5 */
            float px = (float)x + 0.5f - x0, py = (float)y + 0.5f - y0;
            float t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            float ex = px - t * dx, ey = py - t * dy;
            float cov = half + 0.5f - sqrtf(ex * ex + ey * ey);
            if (cov <= 0) continue;
            if (cov > 1) cov = 1;
            int a = opacity(alpha * cov * thin);
            if (a) put(img, x, y, c, a);
        }
    }
}

static bool inside_marker(int shape, float dx, float dy, float r)
{
    switch (shape) {
    case MN_MARKER_SQUARE: return fabsf(dx) <= 0.85f * r && fabsf(dy) <= 0.85f * r;
    case MN_MARKER_DIAMOND: return fabsf(dx) + fabsf(dy) <= 1.15f * r;
    case MN_MARKER_TRIANGLE: {
        /* equilateral, pointing up, inscribed in a circle of 1.2 r */
        float R = 1.2f * r;
        if (dy > 0.5f * R || dy < -R) return false;
        return fabsf(dx) <= (dy + R) / (1.5f * R) * (0.8660254f * R);
    }
    case MN_MARKER_RING: {
        float d = sqrtf(dx * dx + dy * dy);
        return fabsf(d - (r - 1.0f)) <= 1.0f;
    }
    default: return dx * dx + dy * dy <= r * r;
    }
}

void mn_viz_marker(mn_image *img, float cx, float cy, float size, int shape, mn_rgb c)
{
    if (!isfinite(cx) || !isfinite(cy) || !(size > 0)) return;
    float r = 0.5f * size;
    int xa, xb, ya, yb;
    if (!span(cx, cx, 1.3f * r + 1, img->w, &xa, &xb) || !span(cy, cy, 1.3f * r + 1, img->h, &ya, &yb)) return;
    for (int y = ya; y <= yb; y++) {
        for (int x = xa; x <= xb; x++) {
            /* coverage by 4 x 4 samples: simple and exact enough for any shape */
            int hits = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++)
                    hits += inside_marker(shape, (float)x + (sx + 0.5f) / 4 - cx, (float)y + (sy + 0.5f) / 4 - cy, r);
            if (hits) put(img, x, y, c, hits == 16 ? 255 : (hits * 255 + 8) / 16);
        }
    }
}

int mn_viz_text_scale(int w, int h)
{
    int m = w > h ? w : h;
    return m < 240 ? 1 : m >= 1200 ? 3 : 2;
}

/* A copy the font can index safely: printable ASCII and newlines only (NULL on OOM). */
static char *sanitize(const char *text)
{
    size_t n = strlen(text);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        s[i] = ch == '\n' ? '\n' : ch == '\t' ? ' ' : (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    s[n] = 0;
    return s;
}

int mn_viz_text_width(const char *text, int scale)
{
    if (!text || !*text) return 0;
    if (scale < 1) scale = 1;
    char *s = sanitize(text);
    if (!s) return 0;
    int w = stb_easy_font_width(s);
    free(s);
    return w * scale;
}

int mn_viz_text_height(const char *text, int scale)
{
    if (!text || !*text) return 0;
    if (scale < 1) scale = 1;
    int lines = 1;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    return (9 + 12 * (lines - 1)) * scale;
}

/* Draws every stroke of text as a block of pixels, either upright with its top-left corner at
 * (x, y), or turned counter-clockwise with the start of the line at the bottom (up). Glyphs are
 * laid out one at a time so memory stays small whatever the length. */
static int draw_text(mn_image *img, int x, int y, const char *text, int scale, mn_rgb c, bool up)
{
    if (!text || !*text) return 0;
    if (scale < 1) scale = 1;
    /* no glyph has more than 11 strokes of 4 vertices of 16 bytes; malloc'd so the font's float
     * stores and our float reads agree on the memory's type */
    enum { GLYPH_BYTES = 16 * 64 };
    char *buf = malloc(GLYPH_BYTES);
    int width = mn_viz_text_width(text, scale);
    if (!buf) return width;
    int pen_u = 0, pen_v = 0; /* font units along and down the line */
    for (const char *p = text; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\n') {
            pen_u = 0;
            pen_v += 12;
            continue;
        }
        char glyph[2] = {ch == '\t' ? ' ' : (ch >= 32 && ch < 127) ? (char)ch : '?', 0};
        int quads = stb_easy_font_print((float)pen_u, (float)pen_v, glyph, NULL, buf, GLYPH_BYTES);
        for (int q = 0; q < quads; q++) {
            float v0[2], v2[2];
            memcpy(v0, buf + (size_t)q * 64, sizeof v0);      /* vertex 0: top-left */
            memcpy(v2, buf + (size_t)q * 64 + 32, sizeof v2); /* vertex 2: bottom-right */
            int u0 = (int)lrintf(v0[0]) * scale, u1 = (int)lrintf(v2[0]) * scale;
            int t0 = (int)lrintf(v0[1]) * scale, t1 = (int)lrintf(v2[1]) * scale;
            if (up)
                mn_viz_fill_rect(img, x + t0, y - u1, x + t1, y - u0, c, 1);
            else
                mn_viz_fill_rect(img, x + u0, y + t0, x + u1, y + t1, c, 1);
        }
        pen_u += stb_easy_font_width(glyph);
    }
    free(buf);
    return width;
}

int mn_viz_text(mn_image *img, int x, int y, const char *text, int scale, mn_rgb c)
{
    return draw_text(img, x, y, text, scale, c, false);
}

int mn_viz_text_up(mn_image *img, int x, int y, const char *text, int scale, mn_rgb c)
{
    return draw_text(img, x, y, text, scale, c, true);
}
