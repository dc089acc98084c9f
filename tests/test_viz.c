/* Visualisation: palettes, drawing primitives and text, segmentation and detection overlays
 * (exact pixel values against the documented formulas and layouts), charts (pixel positions from
 * the documented axis rules, SVG structure), atomic saving, and examples rendered from real
 * photos (written to $MN_VIZ_EXAMPLES when set, else to a temporary folder). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/image.h"
#include "mn/rng.h"
#include "mn/viz.h"

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/mn_test_viz_XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_dir(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(viz, .init = make_dir, .fini = remove_dir);

static const char *const voc_names[21] = {
    "background", "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",
    "car",        "cat",       "chair",   "cow",   "diningtable", "dog",    "horse",
    "motorbike",  "person",    "potted plant", "sheep", "sofa",   "train",  "tv/monitor",
};

static void random_image(mn_image *img, int w, int h, int c, uint64_t seed)
{
    cr_assert_eq(mn_image_alloc(img, w, h, c), 0);
    mn_rng r;
    mn_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)w * h * c; i++) img->data[i] = (uint8_t)mn_rng_int(&r, 0, 255);
}

static void fill_image(mn_image *img, int w, int h, uint8_t v)
{
    cr_assert_eq(mn_image_alloc(img, w, h, 3), 0);
    memset(img->data, v, (size_t)w * h * 3);
}

static const uint8_t *px(const mn_image *img, int x, int y)
{
    cr_assert(x >= 0 && y >= 0 && x < img->w && y < img->h, "pixel (%d, %d) outside %dx%d", x, y, img->w, img->h);
    return img->data + ((size_t)y * img->w + x) * img->c;
}

static void expect_px(const mn_image *img, int x, int y, int r, int g, int b, const char *what)
{
    const uint8_t *p = px(img, x, y);
    cr_expect(p[0] == r && p[1] == g && p[2] == b, "%s: pixel (%d, %d) is (%d, %d, %d), expected (%d, %d, %d)", what, x,
              y, p[0], p[1], p[2], r, g, b);
}

static void expect_rgb(const mn_image *img, int x, int y, mn_rgb c, const char *what)
{
    expect_px(img, x, y, c.r, c.g, c.b, what);
}

static bool is_rgb(const uint8_t *p, mn_rgb c) { return p[0] == c.r && p[1] == c.g && p[2] == c.b; }

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* ---------------------------------------------------------------- palettes */

Test(viz, voc_palette_matches_known_colours)
{
    static const int known[][4] = {
        {0, 0, 0, 0},        {1, 128, 0, 0},     {2, 0, 128, 0},     {3, 128, 128, 0},  {4, 0, 0, 128},
        {7, 128, 128, 128},  {8, 64, 0, 0},      {15, 192, 128, 128}, {20, 0, 64, 128}, {255, 224, 224, 192},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        mn_rgb c = mn_viz_voc_color(known[i][0]);
        cr_expect(c.r == known[i][1] && c.g == known[i][2] && c.b == known[i][3], "VOC %d is (%d, %d, %d)", known[i][0],
                  c.r, c.g, c.b);
    }
    uint8_t pal[256 * 3];
    mn_viz_voc_palette(pal);
    bool seen[1 << 15] = {false}; /* the map is a bijection of 8 bits onto 8 of the 24 colour bits */
    for (int i = 0; i < 256; i++) {
        mn_rgb c = mn_viz_voc_color(i);
        cr_assert(pal[3 * i] == c.r && pal[3 * i + 1] == c.g && pal[3 * i + 2] == c.b, "palette entry %d", i);
        int key = (c.r >> 5) << 6 | (c.g >> 5) << 3 | (c.b >> 6);
        cr_expect(!seen[key], "VOC colour %d repeats an earlier one", i);
        seen[key] = true;
    }
    mn_rgb wrap = mn_viz_voc_color(256 + 15);
    cr_expect(wrap.r == 192 && wrap.g == 128 && wrap.b == 128, "indices are taken modulo 256");
}

static double dist(mn_rgb a, mn_rgb b)
{
    return sqrt((double)(a.r - b.r) * (a.r - b.r) + (double)(a.g - b.g) * (a.g - b.g) + (double)(a.b - b.b) * (a.b - b.b));
}

Test(viz, class_colours_are_distinct_bright_and_fixed)
{
    mn_rgb tab[90];
    mn_viz_class_colors(90, tab);
    double worst20 = 1e9, worst80 = 1e9;
    for (int i = 0; i < 90; i++) {
        mn_rgb c = mn_viz_class_color(i);
        cr_assert(c.r == tab[i].r && c.g == tab[i].g && c.b == tab[i].b, "class %d: single and batch colours differ", i);
        int hi = c.r > c.g ? (c.r > c.b ? c.r : c.b) : (c.g > c.b ? c.g : c.b);
        cr_expect_geq(hi, 190, "class %d colour (%d, %d, %d) is dark", i, c.r, c.g, c.b);
        for (int j = 0; j < i && i < 80; j++) {
            double d = dist(c, tab[j]);
            if (i < 20 && d < worst20) worst20 = d;
            if (d < worst80) worst80 = d;
        }
    }
    /* measured: 46.4 among the first 20 (VOC), 18.4 among the first 80 (COCO) */
    cr_expect_gt(worst20, 45, "closest pair among 20 classes: %g", worst20);
    cr_expect_gt(worst80, 18, "closest pair among 80 classes: %g", worst80);
    mn_rgb far = mn_viz_class_color(1000), again = mn_viz_class_color(1000);
    cr_expect(far.r == again.r && far.g == again.g && far.b == again.b);
    cr_expect(mn_viz_class_color(1).r != mn_viz_class_color(0).r || mn_viz_class_color(1).g != mn_viz_class_color(0).g);
}

Test(viz, text_colour_contrasts)
{
    mn_rgb black = {0, 0, 0}, white = {255, 255, 255};
    struct {
        mn_rgb bg, want;
    } cases[] = {{{255, 255, 0}, black}, {{0, 0, 128}, white}, {{0, 0, 0}, white}, {{255, 255, 255}, black},
                 {{13, 255, 13}, black}, {{199, 0, 80}, white}, {{128, 128, 128}, black}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mn_rgb got = mn_viz_text_color_on(cases[i].bg);
        cr_expect_eq(got.r, cases[i].want.r, "text on (%d, %d, %d)", cases[i].bg.r, cases[i].bg.g, cases[i].bg.b);
    }
}

/* ---------------------------------------------------------------- primitives */

Test(viz, mix_and_filled_rectangles)
{
    cr_expect_eq(mn_viz_mix(17, 200, 255), 200);
    cr_expect_eq(mn_viz_mix(17, 200, 0), 17);
    cr_expect_eq(mn_viz_mix(0, 255, 128), 128);
    cr_expect_eq(mn_viz_mix(255, 0, 128), 127);
    mn_image img;
    fill_image(&img, 40, 30, 255);
    mn_rgb c = {10, 100, 200};
    mn_viz_fill_rect(&img, 5, 6, 15, 12, c, 0.5f);
    int a = (int)lroundf(0.5f * 255);
    expect_px(&img, 5, 6, mn_viz_mix(255, 10, a), mn_viz_mix(255, 100, a), mn_viz_mix(255, 200, a), "blended fill");
    expect_px(&img, 14, 11, mn_viz_mix(255, 10, a), mn_viz_mix(255, 100, a), mn_viz_mix(255, 200, a), "blended fill");
    expect_px(&img, 15, 11, 255, 255, 255, "right of the half-open rectangle");
    expect_px(&img, 14, 12, 255, 255, 255, "below the half-open rectangle");
    /* clipping: a rectangle hanging over every edge fills exactly the image */
    mn_viz_fill_rect(&img, -100, -100, 1000, 1000, c, 1);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++) cr_assert(is_rgb(px(&img, x, y), c), "(%d, %d) not filled", x, y);
    /* outline: 2 pixels inside the bounds, partly off the image */
    mn_image o;
    fill_image(&o, 40, 30, 0);
    mn_rgb w = {255, 255, 255};
    mn_viz_rect(&o, 10, 5, 50, 20, 2, w);
    expect_rgb(&o, 10, 12, w, "left edge");
    expect_rgb(&o, 11, 12, w, "left edge, second pixel");
    expect_px(&o, 12, 12, 0, 0, 0, "inside the outline");
    expect_rgb(&o, 30, 18, w, "bottom edge");
    expect_rgb(&o, 30, 19, w, "bottom edge, last row");
    expect_px(&o, 30, 20, 0, 0, 0, "below the box");
    expect_px(&o, 39, 12, 0, 0, 0, "the right edge lies outside the image");
    /* grey and RGBA images */
    mn_image g;
    cr_assert_eq(mn_image_alloc(&g, 8, 8, 1), 0);
    mn_viz_fill_rect(&g, 0, 0, 8, 8, (mn_rgb){255, 255, 255}, 1);
    cr_expect_eq(g.data[9], 255);
    mn_image rgba;
    cr_assert_eq(mn_image_alloc(&rgba, 8, 8, 4), 0);
    mn_viz_blend_pixel(&rgba, 3, 2, c, 1);
    const uint8_t *p = rgba.data + (2 * 8 + 3) * 4;
    cr_expect(p[0] == 10 && p[1] == 100 && p[2] == 200 && p[3] == 255, "RGBA pixel (%d, %d, %d, %d)", p[0], p[1], p[2],
              p[3]);
    mn_viz_blend_pixel(&rgba, -1, 2, c, 1); /* outside: no effect, no crash */
    mn_image_free(&img);
    mn_image_free(&o);
    mn_image_free(&g);
    mn_image_free(&rgba);
}

Test(viz, lines_and_markers)
{
    mn_image img;
    fill_image(&img, 64, 48, 0);
    mn_rgb c = {250, 200, 20};
    /* width 3 centred on y = 10.5: rows 9..11 fully covered, rows 8 and 12 untouched */
    mn_viz_line(&img, 5, 10.5f, 50, 10.5f, 3, c, 1);
    for (int y = 9; y <= 11; y++) expect_rgb(&img, 20, y, c, "line core");
    expect_px(&img, 20, 8, 0, 0, 0, "above the line");
    expect_px(&img, 20, 12, 0, 0, 0, "below the line");
    /* a diagonal: the pixel it passes through the centre of is full, far ones untouched */
    mn_viz_line(&img, 10.5f, 20.5f, 30.5f, 40.5f, 2, c, 1);
    expect_rgb(&img, 20, 30, c, "diagonal");
    expect_px(&img, 28, 22, 0, 0, 0, "away from the diagonal");
    /* markers: centre exact, beyond the radius untouched */
    for (int shape = 0; shape < MN_MARKER_RING; shape++) {
        mn_image m;
        fill_image(&m, 32, 32, 0);
        mn_viz_marker(&m, 16.3f, 15.8f, 9, shape, c);
        expect_rgb(&m, 16, 15, c, "marker centre");
        expect_px(&m, 16, 25, 0, 0, 0, "below the marker");
        expect_px(&m, 4, 15, 0, 0, 0, "left of the marker");
        mn_image_free(&m);
    }
    mn_image r;
    fill_image(&r, 32, 32, 0);
    mn_viz_marker(&r, 16, 16, 16, MN_MARKER_RING, c);
    expect_px(&r, 16, 16, 0, 0, 0, "a ring is hollow");
    expect_rgb(&r, 16, 9, c, "ring stroke");
    /* lines and markers off the image or with NaN do nothing */
    mn_viz_line(&img, -100, -100, -50, -80, 4, c, 1);
    mn_viz_line(&img, NAN, 0, 10, 10, 4, c, 1);
    mn_viz_marker(&img, 1e9f, 5, 9, 0, c);
    mn_image_free(&img);
    mn_image_free(&r);
}

/* Ink = pixels that are not the white background; asserts they lie in [x0, x1) x [y0, y1) and
 * returns their bounding box through the pointers. */
static int ink_box(const mn_image *img, int *bx0, int *by0, int *bx1, int *by1)
{
    int n = 0;
    *bx0 = *by0 = 1 << 30;
    *bx1 = *by1 = -1;
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            const uint8_t *p = px(img, x, y);
            if (p[0] == 255 && p[1] == 255 && p[2] == 255) continue;
            cr_assert(p[0] == 20 && p[1] == 20 && p[2] == 20, "text pixel (%d, %d) is not the text colour", x, y);
            n++;
            if (x < *bx0) *bx0 = x;
            if (y < *by0) *by0 = y;
            if (x > *bx1) *bx1 = x;
            if (y > *by1) *by1 = y;
        }
    return n;
}

Test(viz, text_lies_in_its_box)
{
    mn_rgb ink = {20, 20, 20};
    int bx0, by0, bx1, by1;
    for (int s = 1; s <= 3; s++) {
        mn_image img;
        fill_image(&img, 200, 80, 255);
        const char *t = "Hi 42";
        int w = mn_viz_text(&img, 10, 20, t, s, ink);
        cr_expect_eq(w, mn_viz_text_width(t, s));
        cr_expect_eq(mn_viz_text_width(t, s), s * mn_viz_text_width(t, 1));
        cr_expect_eq(mn_viz_text_height(t, s), 9 * s);
        int n = ink_box(&img, &bx0, &by0, &bx1, &by1);
        cr_expect_gt(n, 20 * s * s, "scale %d: only %d ink pixels", s, n);
        /* H's stem starts the box and its top bar is the first row; capitals end 7 s down */
        cr_expect_eq(bx0, 10, "scale %d: ink starts at x %d", s, bx0);
        cr_expect_eq(by0, 20, "scale %d: ink starts at y %d", s, by0);
        cr_expect_eq(by1, 20 + 7 * s - 1, "scale %d: capitals and digits end at row %d", s, by1);
        cr_expect_lt(bx1, 10 + w, "scale %d: ink runs to x %d past the width %d", s, bx1, w);
        cr_expect_gt(bx1, 10 + w - 3 * s - 3, "scale %d: width %d leaves too much room after x %d", s, w, bx1);
        mn_image_free(&img);
    }
    /* descenders reach the bottom of the 9 s line box */
    mn_image g;
    fill_image(&g, 60, 60, 255);
    mn_viz_text(&g, 5, 5, "gy", 2, ink);
    ink_box(&g, &bx0, &by0, &bx1, &by1);
    cr_expect_eq(by1, 5 + 18 - 1);
    mn_image_free(&g);
    /* a second line starts 12 s lower */
    cr_expect_eq(mn_viz_text_height("a\nb", 2), (9 + 12) * 2);
    cr_expect_eq(mn_viz_text_width("ab\nabcd", 1), mn_viz_text_width("abcd", 1));
    cr_expect_eq(mn_viz_text_width("", 2), 0);
    /* bytes outside printable ASCII draw as '?' */
    cr_expect_eq(mn_viz_text_width("\xc3\xa9t\x01", 2), mn_viz_text_width("??t?", 2));
    /* upwards: occupies [x, x + 9 s) x [y - width, y), the start of the line at the bottom */
    mn_image up;
    fill_image(&up, 60, 120, 255);
    int w = mn_viz_text_up(&up, 10, 100, "Hi 42", 2, ink);
    ink_box(&up, &bx0, &by0, &bx1, &by1);
    cr_expect_eq(bx0, 10);
    cr_expect_lt(bx1, 10 + 18);
    cr_expect_eq(by1, 99, "the H's stem is the bottom row");
    cr_expect_geq(by0, 100 - w);
    mn_image_free(&up);
}

/* ---------------------------------------------------------------- seg overlay */

/* 64 x 48: class 3 in [10, 40) x [8, 30), class 7 in [44, 60) x [30, 44), ignore in
 * [45, 60) x [4, 14), background elsewhere. */
static uint8_t *seg_labels(void)
{
    uint8_t *lab = calloc(64 * 48, 1);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t v = 0;
            if (x >= 10 && x < 40 && y >= 8 && y < 30) v = 3;
            if (x >= 44 && x < 60 && y >= 30 && y < 44) v = 7;
            if (x >= 45 && x < 60 && y >= 4 && y < 14) v = 255;
            lab[y * 64 + x] = v;
        }
    return lab;
}

Test(viz, seg_overlay_pixels_and_legend)
{
    mn_image img, out;
    random_image(&img, 64, 48, 3, 7);
    uint8_t *lab = seg_labels();
    const float alpha = 0.4f;
    cr_assert_eq(mn_viz_seg_overlay(&img, lab, 21, voc_names, alpha, &out), 0, "%s", mn_last_error());
    mn_viz_seg_layout L;
    cr_assert_eq(mn_viz_seg_overlay_layout(64, 48, lab, 21, voc_names, NULL, &L), 0);
    int s = L.scale;
    cr_expect_eq(s, mn_viz_text_scale(64, 48));
    int widest = mn_viz_text_width("bird", s) > mn_viz_text_width("car", s) ? mn_viz_text_width("bird", s)
                                                                              : mn_viz_text_width("car", s);
    cr_expect_eq(L.n_listed, 2);
    cr_expect_eq(L.title_h, 0);
    cr_expect_eq(L.legend_x, 64);
    cr_expect_eq(L.legend_w, 24 * s + widest);
    cr_expect_eq(L.legend_h, 5 * s + 2 * 14 * s - 4 * s + 5 * s);
    cr_expect_eq(out.w, 64 + L.legend_w);
    cr_expect_eq(out.h, 48 > L.legend_h ? 48 : L.legend_h);
    cr_expect_eq(out.c, 3);

    int A = (int)lroundf(alpha * 255);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            const uint8_t *o = px(&out, x, y), *i = px(&img, x, y);
            int k = lab[y * 64 + x];
            bool edge = k && k != 255 &&
                        ((x > 0 && lab[y * 64 + x - 1] != k) || (x < 63 && lab[y * 64 + x + 1] != k) ||
                         (y > 0 && lab[(y - 1) * 64 + x] != k) || (y < 47 && lab[(y + 1) * 64 + x] != k));
            uint8_t want[3];
            mn_rgb c = mn_viz_voc_color(k);
            uint8_t cc[3] = {c.r, c.g, c.b};
            for (int ch = 0; ch < 3; ch++)
                want[ch] = (k == 0 || k == 255) ? i[ch] : edge ? (uint8_t)(cc[ch] * 3 / 5) : mn_viz_mix(i[ch], cc[ch], A);
            cr_assert(!memcmp(o, want, 3), "pixel (%d, %d) label %d%s: (%d, %d, %d), expected (%d, %d, %d)", x, y, k,
                      edge ? " (edge)" : "", o[0], o[1], o[2], want[0], want[1], want[2]);
        }
    /* spot checks of the formula by hand: class 3 is (128, 128, 0) */
    const uint8_t *i = px(&img, 20, 15), *o = px(&out, 20, 15);
    cr_expect_eq(o[0], (i[0] * (255 - 102) + 128 * 102 + 127) / 255);
    cr_expect_eq(o[2], (i[2] * (255 - 102) + 127) / 255);
    expect_px(&out, 10, 15, 128 * 3 / 5, 128 * 3 / 5, 0, "left boundary of class 3");

    /* legend: swatches of class 3 then class 7, dark text beside them, panel colour below */
    for (int r = 0; r < 2; r++) {
        int sy = 5 * s + 14 * s * r;
        expect_rgb(&out, L.legend_x + 10 * s, sy + 5 * s, mn_viz_voc_color(r ? 7 : 3), "legend swatch");
        int dark = 0;
        for (int y = sy; y < sy + 10 * s; y++)
            for (int x = L.legend_x + 19 * s; x < out.w; x++) dark += px(&out, x, y)[0] < 100;
        cr_expect_gt(dark, 5, "legend row %d has no text", r);
    }
    expect_rgb(&out, out.w - 1, out.h - 1, MN_VIZ_PANEL, "legend panel");
    mn_image_free(&out);

    /* grey input: the grey value in every channel */
    mn_image grey;
    random_image(&grey, 64, 48, 1, 8);
    cr_assert_eq(mn_viz_seg_overlay(&grey, lab, 21, NULL, 0.5f, &out), 0, "%s", mn_last_error());
    uint8_t gv = grey.data[2 * 64 + 2];
    expect_px(&out, 2, 2, gv, gv, gv, "grey background");
    gv = grey.data[20 * 64 + 20];
    expect_px(&out, 20, 20, mn_viz_mix(gv, 128, 128), mn_viz_mix(gv, 128, 128), mn_viz_mix(gv, 0, 128), "grey class 3");
    mn_image_free(&out);
    mn_image_free(&grey);
    mn_image_free(&img);
    free(lab);
}

Test(viz, seg_overlay_title_and_large_canvas)
{
    mn_image img, out;
    random_image(&img, 320, 240, 3, 9);
    uint8_t *lab = calloc(320 * 240, 1);
    for (int y = 100; y < 200; y++)
        for (int x = 50; x < 150; x++) lab[y * 320 + x] = 15;
    const char *title = "width 0.50  320x320  0.42 GMACs";
    cr_assert_eq(mn_viz_seg_overlay_titled(&img, lab, 21, voc_names, 0.5f, title, &out), 0, "%s", mn_last_error());
    mn_viz_seg_layout L;
    cr_assert_eq(mn_viz_seg_overlay_layout(320, 240, lab, 21, voc_names, title, &L), 0);
    int s = 2;
    cr_expect_eq(L.scale, s);
    cr_expect_eq(L.title_h, 17 * s);
    cr_expect_eq(L.n_listed, 1);
    int cw = 320 + 24 * s + mn_viz_text_width("person", s), tw = mn_viz_text_width(title, s) + 8 * s;
    cr_expect_eq(out.w, cw > tw ? cw : tw);
    cr_expect_eq(out.h, 17 * s + 240);
    expect_px(&out, 1, 1, 40, 40, 40, "title bar");
    int white = 0;
    for (int y = 4 * s; y < 11 * s; y++)
        for (int x = 4 * s; x < tw; x++) white += is_rgb(px(&out, x, y), (mn_rgb){255, 255, 255});
    cr_expect_gt(white, 100, "title text");
    /* the picture sits below the bar */
    const uint8_t *i = px(&img, 5, 5);
    expect_px(&out, 5, 17 * s + 5, i[0], i[1], i[2], "background below the title");
    i = px(&img, 100, 150);
    mn_rgb c = mn_viz_voc_color(15);
    expect_px(&out, 100, 17 * s + 150, mn_viz_mix(i[0], c.r, 128), mn_viz_mix(i[1], c.g, 128), mn_viz_mix(i[2], c.b, 128),
              "person");
    expect_rgb(&out, 320 + 10 * s, 17 * s + 10 * s, c, "person swatch");
    mn_image_free(&out);

    /* nothing but background: the legend says so */
    memset(lab, 0, 320 * 240);
    cr_assert_eq(mn_viz_seg_overlay(&img, lab, 21, voc_names, 0.5f, &out), 0);
    cr_assert_eq(mn_viz_seg_overlay_layout(320, 240, lab, 21, voc_names, NULL, &L), 0);
    cr_expect_eq(L.n_listed, 0);
    cr_expect_eq(out.w, 320 + 24 * s + mn_viz_text_width("no objects", s));
    cr_expect_eq(memcmp(out.data, img.data, 320 * 3), 0, "first row untouched");
    mn_image_free(&out);
    mn_image_free(&img);
    free(lab);
}

Test(viz, seg_overlay_rejects_bad_input)
{
    mn_image img, out;
    random_image(&img, 64, 48, 3, 10);
    uint8_t *lab = seg_labels();
    lab[3 * 64 + 5] = 9;
    cr_expect_eq(mn_viz_seg_overlay(&img, lab, 8, NULL, 0.5f, &out), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "(5, 3)"), "message names the pixel: %s", mn_last_error());
    cr_expect_null(out.data);
    cr_expect_eq(mn_viz_seg_overlay(&img, lab, 21, NULL, 1.5f, &out), MN_EINVAL);
    cr_expect_eq(mn_viz_seg_overlay(&img, lab, 21, NULL, NAN, &out), MN_EINVAL);
    cr_expect_eq(mn_viz_seg_overlay(&img, lab, 0, NULL, 0.5f, &out), MN_EINVAL);
    cr_expect_eq(mn_viz_seg_overlay(&img, NULL, 21, NULL, 0.5f, &out), MN_EINVAL);
    mn_image none = {0};
    cr_expect_eq(mn_viz_seg_overlay(&none, lab, 21, NULL, 0.5f, &out), MN_EINVAL);
    mn_image_free(&img);
    free(lab);
}

/* ---------------------------------------------------------------- det overlay */

Test(viz, det_overlay_boxes_and_tags)
{
    mn_image img, out;
    random_image(&img, 320, 240, 3, 11);
    float boxes[] = {
        40.2f, 50.6f, 200, 180,  /* bird 0.90: X 40..199, Y 51..179 */
        60, 60, 100, 100,        /* cat 0.20: under the threshold */
        10, 0, 30, 25,           /* car 0.70: at the top edge, tag inside */
        300, 100, 330, 140,      /* dog 0.80: clipped at the right, tag moved left */
    };
    int labels[] = {3, 8, 7, 12};
    float scores[] = {0.9f, 0.2f, 0.7f, 0.8f};
    cr_assert_eq(mn_viz_det_overlay(&img, boxes, labels, scores, 4, voc_names, 0.5f, NULL, &out), 0, "%s",
                 mn_last_error());
    cr_expect_eq(out.w, 320);
    cr_expect_eq(out.h, 240);
    int s = mn_viz_text_scale(320, 240);
    cr_assert_eq(s, 2);
    mn_rgb bird = mn_viz_class_color(3);
    for (int y = 60; y < 170; y++) {
        expect_rgb(&out, 40, y, bird, "left edge");
        expect_rgb(&out, 41, y, bird, "left edge");
        expect_rgb(&out, 198, y, bird, "right edge");
        expect_rgb(&out, 199, y, bird, "right edge");
    }
    for (int x = 45; x < 195; x++) {
        expect_rgb(&out, x, 51, bird, "top edge");
        expect_rgb(&out, x, 52, bird, "top edge");
        expect_rgb(&out, x, 178, bird, "bottom edge");
        expect_rgb(&out, x, 179, bird, "bottom edge");
    }
    /* everything strictly inside the outline is the image (the cat box is not drawn) */
    for (int y = 53; y < 178; y++)
        for (int x = 42; x < 198; x++)
            cr_assert(!memcmp(px(&out, x, y), px(&img, x, y), 3), "interior pixel (%d, %d) changed", x, y);
    const uint8_t *o = px(&out, 39, 100), *i = px(&img, 39, 100);
    cr_expect(!memcmp(o, i, 3), "left of the box");
    o = px(&out, 120, 180), i = px(&img, 120, 180);
    cr_expect(!memcmp(o, i, 3), "below the box");

    /* the tag of the bird: above the box, rows [51 - 11 s, 51), from x = 40 */
    int tw = mn_viz_text_width("bird 0.90", s) + 4 * s, ty = 51 - 11 * s;
    for (int x = 40; x < 40 + tw; x++) expect_rgb(&out, x, ty + 10 * s, bird, "tag bottom padding");
    for (int y = ty; y < 51; y++) expect_rgb(&out, 40, y, bird, "tag left padding");
    o = px(&out, 40 + tw, ty + 5 * s), i = px(&img, 40 + tw, ty + 5 * s);
    cr_expect(!memcmp(o, i, 3), "right of the tag");
    mn_rgb tc = mn_viz_text_color_on(bird);
    int text_px = 0;
    for (int y = ty; y < 51; y++)
        for (int x = 40; x < 40 + tw; x++) text_px += is_rgb(px(&out, x, y), tc);
    cr_expect_gt(text_px, 100, "tag text");

    /* the car at the top edge: its tag starts inside the box, at row 0 */
    mn_rgb car = mn_viz_class_color(7);
    int ctw = mn_viz_text_width("car 0.70", s) + 4 * s;
    for (int x = 10; x < 10 + ctw; x++) expect_rgb(&out, x, 10 * s, car, "inside tag bottom padding");

    /* the dog: box clipped at column 319, tag moved left to end at the image edge */
    mn_rgb dog = mn_viz_class_color(12);
    int dtw = mn_viz_text_width("dog 0.80", s) + 4 * s;
    expect_rgb(&out, 319, 120, dog, "clipped right edge");
    expect_rgb(&out, 318, 120, dog, "clipped right edge");
    expect_rgb(&out, 320 - dtw, 100 - 11 * s + 10 * s, dog, "shifted tag");
    expect_rgb(&out, 319, 100 - 11 * s + 10 * s, dog, "shifted tag");
    o = px(&out, 319 - dtw, 100 - 11 * s + 10 * s), i = px(&img, 319 - dtw, 100 - 11 * s + 10 * s);
    cr_expect(!memcmp(o, i, 3), "left of the shifted tag");
    mn_image_free(&out);

    /* a title bar puts the picture lower; without scores the tag is just the name */
    cr_assert_eq(mn_viz_det_overlay(&img, boxes, labels, NULL, 1, voc_names, 0.5f, "AP 0.31", &out), 0);
    cr_expect_eq(out.h, 240 + 17 * s);
    expect_px(&out, 0, 0, 40, 40, 40, "title bar");
    expect_rgb(&out, 40, 17 * s + 100, bird, "left edge below the title");
    int ntw = mn_viz_text_width("bird", s) + 4 * s;
    expect_rgb(&out, 40 + ntw - 1, 17 * s + ty + 10 * s, bird, "name-only tag");
    o = px(&out, 40 + ntw, 17 * s + ty + 10 * s), i = px(&img, 40 + ntw, ty + 10 * s);
    cr_expect(!memcmp(o, i, 3), "name-only tag ends");
    mn_image_free(&out);
    mn_image_free(&img);
}

Test(viz, det_overlay_rejects_bad_input)
{
    mn_image img, out;
    random_image(&img, 50, 40, 3, 12);
    float boxes[] = {1, 2, 30, 20, 5, NAN, 10, 10};
    int labels[] = {1, 2}, bad[] = {1, -3};
    cr_expect_eq(mn_viz_det_overlay(&img, boxes, labels, NULL, 2, NULL, 0, NULL, &out), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "detection 1"), "%s", mn_last_error());
    cr_expect_eq(mn_viz_det_overlay(&img, boxes, bad, NULL, 1 + 1, NULL, 0, NULL, &out), MN_EINVAL);
    cr_expect_eq(mn_viz_det_overlay(&img, NULL, labels, NULL, 1, NULL, 0, NULL, &out), MN_EINVAL);
    /* zero detections is a plain copy; a box entirely outside is skipped */
    cr_assert_eq(mn_viz_det_overlay(&img, NULL, NULL, NULL, 0, NULL, 0, NULL, &out), 0);
    cr_expect_eq(memcmp(out.data, img.data, 50 * 40 * 3), 0);
    mn_image_free(&out);
    float outside[] = {60, 5, 90, 30};
    cr_assert_eq(mn_viz_det_overlay(&img, outside, labels, NULL, 1, NULL, 0, NULL, &out), 0);
    cr_expect_eq(memcmp(out.data, img.data, 50 * 40 * 3), 0);
    mn_image_free(&out);
    mn_image_free(&img);
}

/* ---------------------------------------------------------------- grids */

/* Six cells of different sizes, each one flat colour (cell 1 grey, cell 5 RGBA), in 2 rows x 3 columns. */
static const int grid_wh[6][2] = {{10, 6}, {20, 4}, {5, 9}, {7, 12}, {3, 3}, {15, 2}};

static mn_rgb grid_colour(int i) { return (mn_rgb){(uint8_t)(20 + 30 * i), (uint8_t)(200 - 25 * i), (uint8_t)(7 * i)}; }

static void grid_cells(mn_image *cells /* (6) */)
{
    for (int i = 0; i < 6; i++) {
        int c = i == 1 ? 1 : i == 5 ? 4 : 3;
        cr_assert_eq(mn_image_alloc(&cells[i], grid_wh[i][0], grid_wh[i][1], c), 0);
        mn_rgb col = grid_colour(i);
        for (int p = 0; p < grid_wh[i][0] * grid_wh[i][1]; p++) {
            uint8_t *d = cells[i].data + (size_t)p * c;
            if (c == 1) {
                d[0] = col.r;
                continue;
            }
            d[0] = col.r, d[1] = col.g, d[2] = col.b;
            if (c == 4) d[3] = 17; /* alpha is dropped */
        }
    }
}

/* The colour a cell lands in the grid with (grey repeated). */
static mn_rgb grid_landed(int i)
{
    mn_rgb c = grid_colour(i);
    return i == 1 ? (mn_rgb){c.r, c.r, c.r} : c;
}

/* Cells at their documented places (columns 10, 20, 15 wide at x = 0, 18, 46; rows 9, 12 tall at
 * y = top and top + 17), each exactly its own size, and panel colour everywhere else below top. */
static void expect_grid_cells(const mn_image *out, int top)
{
    const int col_x[3] = {0, 10 + 8, 10 + 8 + 20 + 8}, row_y[2] = {top, top + 9 + 8};
    int counted = 0;
    for (int i = 0; i < 6; i++) {
        int x0 = col_x[i % 3], y0 = row_y[i / 3], w = grid_wh[i][0], h = grid_wh[i][1];
        mn_rgb c = grid_landed(i);
        expect_rgb(out, x0, y0, c, "cell's top-left pixel");
        expect_rgb(out, x0 + w - 1, y0 + h - 1, c, "cell's bottom-right pixel");
        for (int y = y0; y < y0 + h; y++)
            for (int x = x0; x < x0 + w; x++) counted += is_rgb(px(out, x, y), c);
    }
    int area = 0, panel = 0;
    for (int i = 0; i < 6; i++) area += grid_wh[i][0] * grid_wh[i][1];
    cr_expect_eq(counted, area, "every cell pixel copied");
    for (int y = top; y < out->h; y++)
        for (int x = 0; x < out->w; x++) panel += is_rgb(px(out, x, y), MN_VIZ_PANEL);
    cr_expect_eq(panel, out->w * (out->h - top) - area, "panel colour everywhere else");
    /* the gaps: right of column 0, below row 0, and right of a narrower cell / below a shorter one */
    expect_rgb(out, 10, top, MN_VIZ_PANEL, "gap after column 0");
    expect_rgb(out, 17, top + 20, MN_VIZ_PANEL, "gap after column 0, last pixel");
    expect_rgb(out, 0, top + 9, MN_VIZ_PANEL, "gap after row 0");
    expect_rgb(out, 0, top + 16, MN_VIZ_PANEL, "gap after row 0, last pixel");
    expect_rgb(out, 7, top + 17, MN_VIZ_PANEL, "slot right of the narrower cell (1, 0)");
    expect_rgb(out, 18, top + 4, MN_VIZ_PANEL, "slot below the shorter cell (0, 1)");
}

Test(viz, grid_layout_without_and_with_caption)
{
    mn_image cells[6], out;
    grid_cells(cells);
    /* no caption: 10 + 8 + 20 + 8 + 15 wide, 9 + 8 + 12 tall */
    cr_assert_eq(mn_viz_grid(cells, 6, 2, 3, NULL, &out), 0, "%s", mn_last_error());
    cr_expect_eq(out.w, 61);
    cr_expect_eq(out.h, 29);
    cr_expect_eq(out.c, 3);
    expect_grid_cells(&out, 0);
    mn_image_free(&out);
    cr_assert_eq(mn_viz_grid(cells, 6, 2, 3, "", &out), 0, "an empty caption is no caption");
    cr_expect_eq(out.h, 29);
    mn_image_free(&out);

    /* a caption wider than the grid: scale 1 (the widest column is 20, the tallest row 12), a 17-pixel
     * bar, an 8-pixel gap, and the canvas as wide as the caption needs */
    const char *caption = "one set of weights at 3 budgets: seg_shapes / cal.safetensors";
    cr_assert_eq(mn_viz_grid(cells, 6, 2, 3, caption, &out), 0, "%s", mn_last_error());
    cr_expect_eq(out.w, mn_viz_text_width(caption, 1) + 8);
    cr_expect_eq(out.h, 17 + 8 + 29);
    expect_px(&out, 0, 0, 40, 40, 40, "caption bar");
    expect_px(&out, out.w - 1, 16, 40, 40, 40, "caption bar's last row");
    int white = 0;
    for (int y = 4; y < 11; y++)
        for (int x = 4; x < out.w - 4; x++) white += is_rgb(px(&out, x, y), (mn_rgb){255, 255, 255});
    cr_expect_gt(white, 100, "caption text");
    for (int x = 0; x < out.w; x++) {
        expect_rgb(&out, x, 17, MN_VIZ_PANEL, "gap under the caption");
        expect_rgb(&out, x, 24, MN_VIZ_PANEL, "gap under the caption, last row");
    }
    expect_grid_cells(&out, 25);
    mn_image_free(&out);
    for (int i = 0; i < 6; i++) mn_image_free(&cells[i]);
}

Test(viz, grid_caption_scale_follows_the_slot_size)
{
    /* one 300 x 250 cell: text scale 2, so the bar is 34 tall and the cell starts at 34 + 8 */
    mn_image cell, out;
    fill_image(&cell, 300, 250, 90);
    cr_assert_eq(mn_viz_grid(&cell, 1, 1, 1, "short", &out), 0, "%s", mn_last_error());
    cr_expect_eq(out.w, 300);
    cr_expect_eq(out.h, 34 + 8 + 250);
    expect_px(&out, 299, 33, 40, 40, 40, "caption bar at scale 2");
    expect_rgb(&out, 299, 34, MN_VIZ_PANEL, "gap");
    expect_px(&out, 0, 42, 90, 90, 90, "the cell");
    expect_px(&out, 299, 291, 90, 90, 90, "the cell's last pixel");
    mn_image_free(&out);
    mn_image_free(&cell);
}

Test(viz, grid_rejects_bad_input)
{
    mn_image cells[6], out;
    grid_cells(cells);
    cr_expect_eq(mn_viz_grid(cells, 5, 2, 3, NULL, &out), MN_EINVAL, "5 cells for 2 x 3");
    cr_expect(strstr(mn_last_error(), "5 cells for 2 rows x 3 columns"), "%s", mn_last_error());
    cr_expect_null(out.data);
    cr_expect_eq(mn_viz_grid(cells, 6, 3, 3, NULL, &out), MN_EINVAL, "6 cells for 3 x 3");
    cr_expect_eq(mn_viz_grid(cells, 0, 0, 0, NULL, &out), MN_EINVAL, "zero cells");
    cr_expect_eq(mn_viz_grid(NULL, 0, 1, 1, NULL, &out), MN_EINVAL, "no cells");
    cr_expect_eq(mn_viz_grid(cells, 6, -2, -3, NULL, &out), MN_EINVAL, "negative rows and columns");
    mn_image keep = cells[3];
    cells[3] = (mn_image){0};
    cr_expect_eq(mn_viz_grid(cells, 6, 2, 3, "caption", &out), MN_EINVAL, "a cell without pixels");
    cr_expect(strstr(mn_last_error(), "cell (row 1, column 0)"), "%s", mn_last_error());
    cr_expect_null(out.data);
    cells[3] = keep;
    /* a NULL caption is allowed, and so is one row or one column */
    cr_assert_eq(mn_viz_grid(cells, 6, 6, 1, NULL, &out), 0, "%s", mn_last_error());
    cr_expect_eq(out.w, 20);
    cr_expect_eq(out.h, 6 + 4 + 9 + 12 + 3 + 2 + 5 * 8);
    mn_image_free(&out);
    cr_assert_eq(mn_viz_grid(cells, 6, 1, 6, NULL, &out), 0, "%s", mn_last_error());
    cr_expect_eq(out.w, 10 + 20 + 5 + 7 + 3 + 15 + 5 * 8);
    cr_expect_eq(out.h, 12);
    mn_image_free(&out);
    for (int i = 0; i < 6; i++) mn_image_free(&cells[i]);
}

/* ---------------------------------------------------------------- charts */

/* The plot frame of a rendered chart: the columns and rows where more than half the picture is
 * frame grey (70, 70, 70). px0 = left + 1, px1 = right, likewise for y. */
static void find_frame(const mn_image *img, int *left, int *right, int *top, int *bottom)
{
    mn_rgb frame = {70, 70, 70};
    *left = *right = *top = *bottom = -1;
    for (int x = 0; x < img->w; x++) {
        int n = 0;
        for (int y = 0; y < img->h; y++) n += is_rgb(px(img, x, y), frame);
        if (n > img->h / 2) {
            if (*left < 0) *left = x;
            *right = x;
        }
    }
    for (int y = 0; y < img->h; y++) {
        int n = 0;
        for (int x = 0; x < img->w; x++) n += is_rgb(px(img, x, y), frame);
        if (n > img->w / 2) {
            if (*top < 0) *top = y;
            *bottom = y;
        }
    }
    cr_assert(*left >= 0 && *right > *left + 40 && *top >= 0 && *bottom > *top + 40, "frame not found");
}

Test(viz, chart_points_land_at_the_documented_pixel)
{
    mn_chart *c = mn_chart_new("test chart", "x value", "y value");
    cr_assert(c);
    double x[] = {1, 2, 3, 4, 5}, y[] = {10, 30, 20, 50, 40};
    cr_assert_eq(mn_chart_add_series(c, "points", x, y, 5, MN_CHART_MARKERS | MN_CHART_LINE), 0);
    mn_image img;
    cr_assert_eq(mn_chart_render(c, 640, 480, &img), 0, "%s", mn_last_error());
    cr_expect_eq(img.w, 640);
    cr_expect_eq(img.h, 480);
    cr_expect_eq(img.c, 3);
    int l, r, t, b;
    find_frame(&img, &l, &r, &t, &b);
    double px0 = l + 1, px1 = r, py0 = t + 1, py1 = b;
    /* limits: the data range padded by 4% each way */
    double xlo = 1 - 0.16, xhi = 5 + 0.16, ylo = 10 - 1.6, yhi = 50 + 1.6;
    for (int i = 0; i < 5; i++) {
        double wx = px0 + (x[i] - xlo) / (xhi - xlo) * (px1 - px0), wy = py1 - (y[i] - ylo) / (yhi - ylo) * (py1 - py0);
        double gx, gy;
        cr_assert_eq(mn_chart_to_pixel(c, 640, 480, x[i], y[i], &gx, &gy), 0);
        cr_expect(fabs(gx - wx) < 1e-9 && fabs(gy - wy) < 1e-9, "point %d at (%g, %g), expected (%g, %g)", i, gx, gy,
                  wx, wy);
    }
    /* the middle point is clear of the legend: its marker centre is the series colour */
    double gx, gy;
    mn_chart_to_pixel(c, 640, 480, 3, 20, &gx, &gy);
    expect_rgb(&img, (int)floor(gx), (int)floor(gy), mn_viz_series_color(0), "marker of (3, 20)");
    mn_image_free(&img);
    mn_chart_free(c);
}

Test(viz, chart_log_axis_frontier_and_marks)
{
    mn_chart *c = mn_chart_new(NULL, "GMACs", "mIoU");
    mn_chart_set_log_x(c, true);
    double x[] = {0.1, 1, 10}, flat1[] = {1, 1, 1}, flat3[] = {3, 3, 3};
    cr_assert_eq(mn_chart_add_series(c, "plain", x, flat1, 3, MN_CHART_LINE), 0);
    cr_assert_eq(mn_chart_add_series(c, "frontier", x, flat3, 3, MN_CHART_LINE | MN_CHART_FRONTIER), 1);
    cr_assert_eq(mn_chart_mark(c, 1, 2, "selected"), 0);
    double a, b, d, ya, yb;
    cr_assert_eq(mn_chart_to_pixel(c, 800, 600, 0.1, 1, &a, &ya), 0);
    cr_assert_eq(mn_chart_to_pixel(c, 800, 600, 1, 1, &b, &yb), 0);
    cr_assert_eq(mn_chart_to_pixel(c, 800, 600, 10, 3, &d, &yb), 0);
    cr_expect(fabs((b - a) - (d - b)) < 1e-9, "decades are equally long: %g vs %g", b - a, d - b);
    mn_image img;
    cr_assert_eq(mn_chart_render(c, 800, 600, &img), 0, "%s", mn_last_error());
    int l, r, t, bt;
    find_frame(&img, &l, &r, &t, &bt);
    /* log limits: [-1, 1] decades padded by 0.08 */
    double want = (l + 1) + (0 - -1.08) / 2.16 * (r - (l + 1));
    cr_expect(fabs(b - want) < 1e-9, "x = 1 at %g, expected %g", b, want);
    /* line thickness across the lines at a quarter of the width: 2 px vs 4 px (scale 2) */
    int col = (int)floor(a + (b - a) / 2);
    int thin = 0, thick = 0;
    for (int y = 0; y < img.h; y++) {
        thin += is_rgb(px(&img, col, y), mn_viz_series_color(0));
        thick += is_rgb(px(&img, col, y), mn_viz_series_color(1));
    }
    cr_expect(thin >= 1 && thin <= 2, "plain line is %d pixels thick", thin);
    cr_expect(thick >= 3 && thick <= 4, "frontier line is %d pixels thick", thick);
    /* the mark: a black ring around (1, 2), hollow */
    double mx, my;
    mn_chart_to_pixel(c, 800, 600, 1, 2, &mx, &my);
    int ring = 0;
    for (int y = (int)my - 12; y <= (int)my + 12; y++) ring += is_rgb(px(&img, (int)mx, y), (mn_rgb){0, 0, 0});
    cr_expect_geq(ring, 4, "ring pixels above and below the mark: %d", ring);
    mn_image_free(&img);
    /* x <= 0 cannot go on a log axis: the error names the series and point */
    double bad[] = {1, 0, 2};
    cr_assert_eq(mn_chart_add_series(c, "broken", bad, flat1, 3, 0), 2);
    cr_expect_eq(mn_chart_render(c, 800, 600, &img), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "'broken' point 1"), "%s", mn_last_error());
    cr_expect_null(img.data);
    mn_chart_free(c);
}

Test(viz, chart_svg_structure_and_agreement)
{
    mn_chart *c = mn_chart_new("acc & cost <test>", "GMACs", "mIoU");
    double x1[] = {0.5, 1, 2}, y1[] = {0.4, 0.5, 0.55}, x2[] = {0.6, 1.5}, y2[] = {0.45, 0.52};
    double x3[] = {0.7, 0.9, 1.2, 1.8}, y3[] = {0.41, 0.47, 0.5, 0.53}, nanx[] = {0.8, NAN, 1.1};
    double gapy[] = {0.43, 0.44, 0.46};
    cr_assert_eq(mn_chart_add_series(c, "frontier", x1, y1, 3, MN_CHART_LINE | MN_CHART_MARKERS | MN_CHART_FRONTIER), 0);
    cr_assert_eq(mn_chart_add_series(c, "US-Net", x2, y2, 2, MN_CHART_LINE), 1);
    cr_assert_eq(mn_chart_add_series(c, "all configs", x3, y3, 4, MN_CHART_MARKERS), 2);
    cr_assert_eq(mn_chart_add_series(c, "gap", nanx, gapy, 3, MN_CHART_LINE), 3);
    cr_assert_eq(mn_chart_mark(c, 1, 0.5, "w 0.75 @320"), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/chart.svg", dir);
    cr_assert_eq(mn_chart_save_svg(c, path, 720, 480), 0, "%s", mn_last_error());
    char *svg = read_text(path);
    cr_expect_eq(strncmp(svg, "<?xml", 5), 0);
    cr_expect_eq(count_of(svg, "<svg "), 1);
    cr_expect(strlen(svg) > 7 && !strcmp(svg + strlen(svg) - 7, "</svg>\n"), "ends with </svg>");
    cr_expect(strstr(svg, "width=\"720\" height=\"480\""));
    cr_expect_eq(count_of(svg, "<path"), 3, "one path per series with a line");
    cr_expect_eq(count_of(svg, "<text"), count_of(svg, "</text>"));
    cr_expect_eq(count_of(svg, "<g"), count_of(svg, "</g>"));
    cr_expect(strstr(svg, ">GMACs</text>"), "x label");
    cr_expect(strstr(svg, ">mIoU</text>"), "y label");
    cr_expect(strstr(svg, "acc &amp; cost &lt;test&gt;"), "escaped title");
    cr_expect_null(strstr(svg, "<test>"));
    cr_expect(strstr(svg, ">w 0.75 @320</text>"), "mark label");
    /* the first point of the first series where the image puts it */
    double gx, gy;
    cr_assert_eq(mn_chart_to_pixel(c, 720, 480, 0.5, 0.4, &gx, &gy), 0);
    char want[64];
    snprintf(want, sizeof want, "d=\"M%.2f %.2f L", gx, gy);
    cr_expect(strstr(svg, want), "SVG path does not start at %s", want);
    /* a NaN breaks the line into two pieces */
    cr_expect_eq(count_of(svg, " M"), 1, "one extra move-to for the gap");
    free(svg);
    /* the same chart as PNG */
    snprintf(path, sizeof path, "%s/chart.png", dir);
    cr_assert_eq(mn_chart_save_image(c, path, 720, 480), 0, "%s", mn_last_error());
    mn_image back;
    cr_assert_eq(mn_image_load(path, 0, &back), 0, "%s", mn_last_error());
    cr_expect(back.w == 720 && back.h == 480 && back.c == 3);
    mn_image_free(&back);
    mn_chart_free(c);
}

/* The SVG of a chart as text (the tick labels are easiest to read there). */
static char *svg_of(const mn_chart *c, const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(mn_chart_save_svg(c, path, 800, 500), 0, "%s", mn_last_error());
    return read_text(path);
}

Test(viz, chart_tick_labels)
{
    /* iterations: steps of 2.5k or 5k read "0", "5k", "10k" */
    mn_chart *c = mn_chart_new(NULL, "iteration", "loss");
    double x[] = {0, 15000}, y[] = {2.5, 0.25};
    mn_chart_add_series(c, "loss", x, y, 2, 0);
    char *svg = svg_of(c, "k.svg");
    cr_expect(strstr(svg, ">0</text>") && strstr(svg, ">5k</text>") && strstr(svg, ">10k</text>"), "k labels");
    cr_expect(strstr(svg, ">0.5</text>") && strstr(svg, ">1.0</text>"), "y labels share their decimals");
    free(svg);
    mn_chart_free(c);
    /* millions */
    c = mn_chart_new(NULL, NULL, NULL);
    double xm[] = {0, 3e6};
    mn_chart_add_series(c, "m", xm, y, 2, 0);
    svg = svg_of(c, "m.svg");
    cr_expect(strstr(svg, ">1M</text>") && strstr(svg, ">2M</text>"), "M labels");
    free(svg);
    mn_chart_free(c);
    /* log axis over two decades: powers of ten, then 1-2-5 */
    c = mn_chart_new(NULL, NULL, NULL);
    mn_chart_set_log_x(c, true);
    double xl[] = {0.1, 10};
    mn_chart_add_series(c, "log", xl, y, 2, 0);
    svg = svg_of(c, "log.svg");
    cr_expect(strstr(svg, ">0.1</text>") && strstr(svg, ">1</text>") && strstr(svg, ">10</text>"), "decades");
    free(svg);
    mn_chart_free(c);
    c = mn_chart_new(NULL, NULL, NULL);
    mn_chart_set_log_x(c, true);
    double xn[] = {0.31, 0.47};
    mn_chart_add_series(c, "narrow", xn, y, 2, 0);
    svg = svg_of(c, "narrow.svg");
    cr_expect(strstr(svg, ">0.35</text>") && strstr(svg, ">0.40</text>") && strstr(svg, ">0.45</text>"),
              "under a decade: plain steps of the values");
    free(svg);
    mn_chart_free(c);
    /* huge values switch to %g instead of overlong fixed decimals */
    c = mn_chart_new(NULL, NULL, NULL);
    double yh[] = {1e30, 3e30};
    mn_chart_add_series(c, "huge", x, yh, 2, 0);
    svg = svg_of(c, "huge.svg");
    cr_expect(strstr(svg, ">2e+30</text>"), "scientific labels");
    free(svg);
    mn_chart_free(c);
}

Test(viz, chart_rejects_bad_input)
{
    mn_chart *c = mn_chart_new("t", NULL, NULL);
    double x[] = {1}, y[] = {2};
    cr_expect_eq(mn_chart_add_series(c, "empty", x, y, 0, 0), MN_EINVAL);
    cr_expect_eq(mn_chart_add_series(c, "style", x, y, 1, 64), MN_EINVAL);
    cr_expect_eq(mn_chart_mark(c, NAN, 1, "m"), MN_EINVAL);
    mn_image img;
    cr_expect_eq(mn_chart_render(c, 100, 100, &img), MN_EINVAL, "too small");
    cr_expect(strstr(mn_last_error(), "100x100"), "%s", mn_last_error());
    /* an empty chart still renders: axes only */
    cr_assert_eq(mn_chart_render(c, 300, 200, &img), 0, "%s", mn_last_error());
    mn_image_free(&img);
    /* a single point (zero spans) renders with the point in the middle */
    cr_assert_eq(mn_chart_add_series(c, "one", x, y, 1, MN_CHART_MARKERS), 0);
    double a, b, lo, hi, dummy;
    cr_assert_eq(mn_chart_to_pixel(c, 300, 200, 1, 2, &a, &b), 0);
    cr_assert_eq(mn_chart_to_pixel(c, 300, 200, 0.9, 2, &lo, &dummy), 0);
    cr_assert_eq(mn_chart_to_pixel(c, 300, 200, 1.1, 2, &hi, &dummy), 0);
    cr_expect(fabs((a - lo) - (hi - a)) < 1e-9 && hi > a, "x = 1 centred between 0.9 and 1.1");
    /* a range too wide for doubles is refused, not drawn with NaN ticks */
    double huge_x[] = {-1e308, 1e308};
    cr_assert_eq(mn_chart_add_series(c, "huge", huge_x, huge_x, 2, 0), 1);
    cr_expect_eq(mn_chart_render(c, 300, 200, &img), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "range"), "%s", mn_last_error());
    mn_chart_free(c);
}

Test(viz, saving_to_an_unwritable_path_names_it)
{
    mn_chart *c = mn_chart_new("t", "x", "y");
    double x[] = {1, 2}, y[] = {3, 4};
    mn_chart_add_series(c, "s", x, y, 2, 0);
    const char *svg = "/nonexistent-mn-viz-dir/chart.svg", *png = "/nonexistent-mn-viz-dir/chart.png";
    cr_expect_eq(mn_chart_save_svg(c, svg, 400, 300), MN_EIO);
    cr_expect(strstr(mn_last_error(), svg), "message \"%s\" does not name %s", mn_last_error(), svg);
    cr_expect_eq(mn_chart_save_image(c, png, 400, 300), MN_EIO);
    cr_expect(strstr(mn_last_error(), png), "message \"%s\" does not name %s", mn_last_error(), png);
    /* a failed write leaves an existing file alone: here a directory stands where the temp file would go */
    char path[300], blocker[340];
    snprintf(path, sizeof path, "%s/keep.svg", dir);
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    snprintf(blocker, sizeof blocker, "%s.tmp.%ld", path, (long)getpid());
    cr_assert_eq(mkdir(blocker, 0700), 0);
    cr_expect_eq(mn_chart_save_svg(c, path, 400, 300), MN_EIO);
    char *kept = read_text(path);
    cr_expect_str_eq(kept, "old");
    free(kept);
    rmdir(blocker);
    mn_chart_free(c);
}

/* ---------------------------------------------------------------- real photos */

/* Where examples go: $MN_VIZ_EXAMPLES (created) or the test's temporary folder. */
static const char *examples_dir(void)
{
    const char *e = getenv("MN_VIZ_EXAMPLES");
    if (e && *e) {
        mkdir(e, 0755);
        return e;
    }
    return dir;
}

#define VOC_DIR "/voc-format-labelme/examples/semantic_segmentation/data_dataset_voc"

Test(viz, real_examples)
{
    char jpg[512], png[512], out_path[600];
    snprintf(jpg, sizeof jpg, "%s" VOC_DIR "/JPEGImages/2011_000006.jpg", MN_SHARED_DATA);
    snprintf(png, sizeof png, "%s" VOC_DIR "/SegmentationClassPNG/2011_000006.png", MN_SHARED_DATA);
    if (access(jpg, R_OK) != 0 || access(png, R_OK) != 0) cr_skip_test("VOC example not found at %s", jpg);
    const char *ex = examples_dir();

    mn_image img, lab, out;
    cr_assert_eq(mn_image_load(jpg, 3, &img), 0, "%s", mn_last_error());
    cr_assert_eq(mn_image_load_labels(png, &lab), 0, "%s", mn_last_error());
    cr_assert(lab.w == img.w && lab.h == img.h);
    bool present[256] = {false};
    for (int i = 0; i < lab.w * lab.h; i++) present[lab.data[i]] = true;
    int n_fg = 0;
    for (int k = 1; k < 21; k++) n_fg += present[k];
    const char *title = "width 0.50  500x375  0.42 GMACs";
    cr_assert_eq(mn_viz_seg_overlay_titled(&img, lab.data, 21, voc_names, 0.5f, title, &out), 0, "%s", mn_last_error());
    mn_viz_seg_layout L;
    cr_assert_eq(mn_viz_seg_overlay_layout(img.w, img.h, lab.data, 21, voc_names, title, &L), 0);
    cr_expect_eq(L.n_listed, n_fg);
    cr_expect_eq(n_fg, 3, "chair, person and sofa");
    cr_expect(out.w == L.canvas_w && out.h == L.canvas_h);
    /* an interior pixel of each class follows the blend formula */
    for (int k = 1; k < 21; k++) {
        if (!present[k]) continue;
        bool checked = false;
        for (int y = 1; y + 1 < lab.h && !checked; y++)
            for (int x = 1; x + 1 < lab.w && !checked; x++) {
                const uint8_t *l = lab.data + y * lab.w + x;
                if (l[0] != k || l[-1] != k || l[1] != k || l[-lab.w] != k || l[lab.w] != k) continue;
                const uint8_t *i = px(&img, x, y);
                mn_rgb c = mn_viz_voc_color(k);
                expect_px(&out, x, y + L.title_h, mn_viz_mix(i[0], c.r, 128), mn_viz_mix(i[1], c.g, 128),
                          mn_viz_mix(i[2], c.b, 128), voc_names[k]);
                checked = true;
            }
        cr_expect(checked, "no interior pixel of %s", voc_names[k]);
    }
    snprintf(out_path, sizeof out_path, "%s/seg_overlay.png", ex);
    cr_assert_eq(mn_image_save(out_path, &out, 0), 0, "%s", mn_last_error());
    mn_image_free(&out);
    mn_image_free(&img);
    mn_image_free(&lab);

    /* detection boxes (made up) on a COCO128 photo */
    snprintf(jpg, sizeof jpg, "%s/coco128/train2017/000000000009.jpg", MN_SHARED_DATA);
    if (access(jpg, R_OK) == 0) {
        cr_assert_eq(mn_image_load(jpg, 3, &img), 0, "%s", mn_last_error());
        static const char *const coco[] = {"person", "bicycle", "car", "bowl", "orange", "broccoli"};
        float boxes[] = {1, 187, 612, 473, 311, 4, 631, 232, 249, 229, 565, 474, 0, 13, 434, 388, 376, 40, 451, 86,
                         465, 38, 523, 85, 385, 73, 469, 144, 364, 2, 458, 73, -20, 300, 60, 500};
        int labels[] = {3, 3, 5, 3, 4, 4, 4, 4, 2};
        float scores[] = {0.91f, 0.87f, 0.99f, 0.64f, 0.45f, 0.72f, 0.80f, 0.33f, 0.58f};
        cr_assert_eq(mn_viz_det_overlay(&img, boxes, labels, scores, 9, coco, 0.4f, "width 1.00  640x480  AP 0.31", &out),
                     0, "%s", mn_last_error());
        cr_expect(out.w == img.w && out.h == img.h + 17 * 2);
        snprintf(out_path, sizeof out_path, "%s/det_overlay.png", ex);
        cr_assert_eq(mn_image_save(out_path, &out, 0), 0, "%s", mn_last_error());
        mn_image_free(&out);
        mn_image_free(&img);
    }

    /* the two charts `mutualnet plot` draws */
    mn_chart *loss = mn_chart_new("training loss", "iteration", "loss");
    static const char *const nets[] = {"width 1.00 @224", "width 0.25 @128", "random widths"};
    for (int k = 0; k < 3; k++) {
        double x[200], y[200];
        for (int j = 0; j < 200; j++) {
            x[j] = 50.0 * j;
            y[j] = (2.5 + 0.4 * k) * exp(-j / (50.0 + 15 * k)) + 0.3 + 0.15 * k + 0.04 * sin(j * 0.9 + k);
        }
        cr_assert_geq(mn_chart_add_series(loss, nets[k], x, y, 200, MN_CHART_LINE), 0);
    }
    snprintf(out_path, sizeof out_path, "%s/loss.png", ex);
    cr_assert_eq(mn_chart_save_image(loss, out_path, 960, 600), 0, "%s", mn_last_error());
    snprintf(out_path, sizeof out_path, "%s/loss.svg", ex);
    cr_assert_eq(mn_chart_save_svg(loss, out_path, 960, 600), 0, "%s", mn_last_error());
    mn_chart_free(loss);

    mn_chart *acc = mn_chart_new("mIoU vs cost", "GMACs", "mIoU");
    mn_chart_set_log_x(acc, true);
    double cx[20], cy[20], fx[20], fy[20];
    int n = 0, nf = 0;
    static const double widths[] = {0.35, 0.5, 0.75, 1.0};
    static const int sizes[] = {224, 256, 320, 384, 448};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 5; b++, n++) {
            double r = sizes[b] / 224.0;
            cx[n] = 0.9 * widths[a] * widths[a] * r * r;
            cy[n] = 0.40 + 0.12 * log(1 + 2 * widths[a]) + 0.05 * log(r + 0.3) + 0.01 * sin(3 * a + b);
        }
    /* frontier: sorted by cost, keep each configuration better than all cheaper ones */
    bool used[20] = {false};
    double best = -1;
    for (int step = 0; step < n; step++) {
        int m = -1;
        for (int i = 0; i < n; i++)
            if (!used[i] && (m < 0 || cx[i] < cx[m])) m = i;
        used[m] = true;
        if (cy[m] > best) best = cy[m], fx[nf] = cx[m], fy[nf] = cy[m], nf++;
    }
    cr_assert_eq(mn_chart_add_series(acc, "all configurations", cx, cy, n, MN_CHART_MARKERS), 0);
    cr_assert_eq(mn_chart_add_series(acc, "query-table frontier", fx, fy, nf,
                                     MN_CHART_LINE | MN_CHART_MARKERS | MN_CHART_FRONTIER), 1);
    cr_assert_eq(mn_chart_mark(acc, fx[nf / 2], fy[nf / 2], "selected"), 0);
    snprintf(out_path, sizeof out_path, "%s/acc_flops.png", ex);
    cr_assert_eq(mn_chart_save_image(acc, out_path, 960, 640), 0, "%s", mn_last_error());
    snprintf(out_path, sizeof out_path, "%s/acc_flops.svg", ex);
    cr_assert_eq(mn_chart_save_svg(acc, out_path, 960, 640), 0, "%s", mn_last_error());
    mn_chart_free(acc);
}
