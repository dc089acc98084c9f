/* Pictures of predictions and results: palettes, drawing primitives with a bitmap font,
 * segmentation and detection overlays, and line/scatter charts (PNG/JPEG through mn_image_save,
 * and hand-written SVG).
 *
 * Conventions
 * - Pixel (x, y) covers [x, x+1) x [y, y+1); integer rectangles are half-open [x0, x1) x [y0, y1).
 *   Everything is clipped to the image: drawing outside it is not an error.
 * - Drawing works on 1-, 3- and 4-channel images (grey receives the colour's luma, RGBA has its
 *   alpha set to 255 wherever something is drawn). Overlays and charts are 3-channel RGB.
 * - Blending a colour s into a byte d with opacity A in 0..255 gives
 *   (d (255 - A) + s A + 127) / 255 in integer arithmetic (mn_viz_mix); a float opacity a is
 *   first turned into A = round(255 a).
 * - Text is stb_easy_font's stroke font drawn as filled pixel blocks at an integer scale s: a line
 *   is 12 s pixels apart from the next, its ink lies within [y, y + 9 s) (capitals and digits within
 *   [y, y + 7 s)), and a string is mn_viz_text_width() wide. Bytes outside printable ASCII draw
 *   as '?' and tabs as spaces.
 * - Functions that make an image allocate it (free with mn_image_free); on error it is left
 *   zeroed. Nothing here keeps state between calls: every function is safe to call from
 *   several threads on different images. */
#ifndef MN_VIZ_H
#define MN_VIZ_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"

typedef struct mn_rgb {
    uint8_t r, g, b;
} mn_rgb;

/* ---------------------------------------------------------------- palettes */

/* The PASCAL VOC colour map: the bits of the index are dealt round-robin to R, G, B from the most
 * significant bit down (1 = (128,0,0), 2 = (0,128,0), 15 = (192,128,128)); index 255, the ignore
 * label, comes out light grey (224,224,192). Indices are taken modulo 256. */
MN_API mn_rgb mn_viz_voc_color(int index);
/* All 256 VOC colours. */
MN_API void mn_viz_voc_palette(uint8_t *rgb /* (256, 3) */);
/* Detection class colours. The first MN_VIZ_GREEDY_COLORS are chosen greedily from bright
 * hues (each the one farthest in L*a*b* from all earlier classes), so any few classes look
 * clearly different; later ones step round the hue circle by the golden angle. The sequence is
 * fixed: class k always has the same colour whatever else is drawn. */
#define MN_VIZ_GREEDY_COLORS 128
MN_API mn_rgb mn_viz_class_color(int k);
/* The first n class colours at once (cheaper than n calls of mn_viz_class_color). */
MN_API void mn_viz_class_colors(int n, mn_rgb *out /* (n) */);
/* A categorical colour for chart series i (ten well separated colours, then repeats). */
MN_API mn_rgb mn_viz_series_color(int i);
/* Black or white, whichever has the higher WCAG contrast ratio on bg (for text on a filled tag). */
MN_API mn_rgb mn_viz_text_color_on(mn_rgb bg);

/* ---------------------------------------------------------------- drawing */

/* d blended towards s with opacity a255 in 0..255 (see the conventions above). */
static inline uint8_t mn_viz_mix(uint8_t d, uint8_t s, int a255)
{
    return (uint8_t)(((int)d * (255 - a255) + (int)s * a255 + 127) / 255);
}

/* Blends c into pixel (x, y) with opacity alpha in [0, 1]; outside the image: nothing. */
MN_API void mn_viz_blend_pixel(mn_image *img, int x, int y, mn_rgb c, float alpha);
/* Fills [x0, x1) x [y0, y1) with c at opacity alpha (1: plain fill). */
MN_API void mn_viz_fill_rect(mn_image *img, int x0, int y0, int x1, int y1, mn_rgb c, float alpha);
/* The outline of [x0, x1) x [y0, y1), `thickness` pixels wide, drawn inside the rectangle. */
MN_API void mn_viz_rect(mn_image *img, int x0, int y0, int x1, int y1, int thickness, mn_rgb c);
/* An anti-aliased segment of the given width (pixels) between two points with round caps. */
MN_API void mn_viz_line(mn_image *img, float x0, float y0, float x1, float y1, float width, mn_rgb c, float alpha);

enum mn_viz_marker {
    MN_MARKER_CIRCLE,
    MN_MARKER_SQUARE,
    MN_MARKER_DIAMOND,
    MN_MARKER_TRIANGLE,
    MN_MARKER_RING,      /* an unfilled circle with a 2-pixel stroke */
    MN_MARKER_COUNT
};
/* An anti-aliased marker of the given diameter (pixels) centred at (cx, cy). Filled shapes cover
 * the pixel containing the centre fully, so it holds exactly c when size >= 4. */
MN_API void mn_viz_marker(mn_image *img, float cx, float cy, float size, int shape, mn_rgb c);

/* Text scale for an image of w x h: 1 below 240 pixels on the longer side, 3 from 1200, else 2. */
MN_API int mn_viz_text_scale(int w, int h);
/* Width in pixels of text at scale s (its longest line, each glyph's advance included). */
MN_API int mn_viz_text_width(const char *text, int scale);
/* Height in pixels of text at scale s: 9 s for one line, plus 12 s per further line; 0 if empty. */
MN_API int mn_viz_text_height(const char *text, int scale);
/* Draws text with its top-left corner at (x, y); returns mn_viz_text_width(text, scale). */
MN_API int mn_viz_text(mn_image *img, int x, int y, const char *text, int scale, mn_rgb c);
/* Draws text turned 90 degrees counter-clockwise (reading upwards) so that the line's start is at
 * the bottom: it occupies [x, x + height) x [y - width, y). Returns the width. */
MN_API int mn_viz_text_up(mn_image *img, int x, int y, const char *text, int scale, mn_rgb c);

/* ---------------------------------------------------------------- overlays */

/* Where mn_viz_seg_overlay puts things, all in canvas pixels, s = scale:
 * - a title bar [0, canvas_w) x [0, title_h), title_h = 17 s with a title and 0 without; the title
 *   is drawn in white at (4 s, 4 s) on dark grey (40, 40, 40);
 * - the image at [0, w) x [title_h, title_h + h);
 * - the legend panel [legend_x, canvas_w) x [title_h, canvas_h), legend_x = w, filled with
 *   MN_VIZ_PANEL after a 1-pixel grey rule in its first column; it lists every foreground class
 *   present (labels 1 .. num_classes-1, in increasing order) in rows of 14 s: row i has a swatch
 *   of the class colour (with a 1-pixel border at 3/5 of it) at
 *   [legend_x + 5 s, legend_x + 15 s) x [title_h + 5 s + 14 s i, ... + 10 s) and the class name
 *   (cut to 40 characters) in dark text from x = legend_x + 19 s. With no foreground class the
 *   panel reads "no objects".
 * - legend_w = 5 s + 10 s + 4 s + (widest name) + 5 s, legend_h = 5 s + 14 s rows - 4 s + 5 s;
 *   canvas_w = max(w + legend_w, title width + 8 s), canvas_h = title_h + max(h, legend_h);
 *   canvas area below the image and right of the legend is panel colour. */
#define MN_VIZ_PANEL ((mn_rgb){248, 248, 248})

typedef struct mn_viz_seg_layout {
    int scale;               /* text scale: mn_viz_text_scale(w, h) */
    int title_h;
    int legend_x, legend_w, legend_h;
    int canvas_w, canvas_h;
    int n_listed;            /* classes listed in the legend */
} mn_viz_seg_layout;

/* The layout for labels of w x h (values checked as in mn_viz_seg_overlay). */
MN_API int mn_viz_seg_overlay_layout(int w, int h, const uint8_t *labels /* (h, w) */, int num_classes,
                                     const char *const *class_names, const char *title, mn_viz_seg_layout *out);

/* A segmentation prediction over its image, with a legend (layout above), as a new RGB image.
 * rgb has 1, 3 or 4 channels (grey is repeated, alpha dropped); labels are class indices of the
 * same size: 0 background, 1 .. num_classes-1 classes, 255 ignore; any other value is an error
 * naming the pixel. Colours are mn_viz_voc_color(k). Per pixel:
 * - background (0) and ignore (255): the image pixel unchanged;
 * - class k inside its region: mn_viz_mix(image, colour, round(255 alpha)) per channel;
 * - class k with a 4-neighbour of another label (a boundary): colour * 3/5 (integer division),
 *   opaque, so outlines stay visible at low alpha.
 * class_names (num_classes entries, NULL entries allowed) may be NULL: rows then read "class k".
 * alpha is in [0, 1]. num_classes is in 1..255. */
MN_API int mn_viz_seg_overlay(const mn_image *rgb, const uint8_t *labels /* (h, w) */, int num_classes,
                              const char *const *class_names, float alpha, mn_image *out);
/* The same with a title line across the top (e.g. "width 0.50  320x320  0.42 GMACs"); NULL or ""
 * gives no title bar. */
MN_API int mn_viz_seg_overlay_titled(const mn_image *rgb, const uint8_t *labels /* (h, w) */, int num_classes,
                                     const char *const *class_names, float alpha, const char *title,
                                     mn_image *out);

/* Detection boxes over their image, as a new RGB image of w x (title_h + h), the image at
 * y offset title_h (17 s with a title, 0 without; s = mn_viz_text_scale(w, h); the title is
 * white on dark grey at (4 s, 4 s)). Detection i is drawn when scores is NULL or
 * scores[i] >= score_threshold (NaN scores never), lowest score first so the best lie on top.
 * - Box pixels: columns X1 = round(x1) .. X2 = max(round(x2) - 1, X1) and rows likewise
 *   (Y1, Y2), then clipped to the image (coordinates are pixel edges, so a box [0, W] covers
 *   every column). A box with no pixel inside the image is skipped. Its outline is
 *   2 pixels thick inside those bounds in mn_viz_class_color(labels[i]).
 * - Tag: "name 0.87" (the score with two decimals; just "name" when scores is NULL) in
 *   mn_viz_text_color_on(colour) on a filled rectangle of the class colour, tag_w =
 *   text width + 4 s wide and 11 s tall, text at (+2 s, +s). It sits on the box, bottom row
 *   touching the top edge (rows [Y1 - 11 s, Y1)), or inside from row Y1 when there is no
 *   room above; its left side is X1, moved left as needed to stay inside the image.
 * All boxes are drawn before all tags so a tag is never crossed by another box's outline.
 * class_names may be NULL (then "class k"); labels must be >= 0 (names are indexed by label, so
 * the caller guarantees labels[i] < its number of names). Boxes with non-finite coordinates
 * are an error naming the detection. */
MN_API int mn_viz_det_overlay(const mn_image *rgb, const float *boxes /* (n, 4) x1 y1 x2 y2 */,
                              const int *labels /* (n) */, const float *scores /* (n) or NULL */, int n,
                              const char *const *class_names, float score_threshold, const char *title,
                              mn_image *out);

/* ---------------------------------------------------------------- grids */

/* Pictures side by side: n = rows * cols cells, row-major, composed into one RGB image, e.g. the
 * same image (rows) at several budgets (columns). Layout, in canvas pixels, G = MN_VIZ_GRID_GAP:
 * - col_w[c] = the widest cell of column c, row_h[r] = the tallest cell of row r;
 *   grid_w = sum(col_w) + G (cols - 1), grid_h = sum(row_h) + G (rows - 1).
 * - s = mn_viz_text_scale(max col_w, max row_h): the text scale of one slot, so the caption's
 *   letters match the cells' own titles.
 * - With a caption (non-NULL, non-empty): a bar [0, canvas_w) x [0, cap_h), cap_h = 17 s, in dark
 *   grey (40, 40, 40) with the caption in white at (4 s, 4 s), as an overlay's title bar; the
 *   cells start G rows below it, at top = cap_h + G. Without one: cap_h = 0, top = 0.
 * - Cell (r, c) is copied top-left-aligned at x = sum(col_w[0 .. c)) + G c,
 *   y = top + sum(row_h[0 .. r)) + G r (1 channel repeated, a 4th channel dropped).
 * - canvas_w = max(grid_w, caption width + 8 s) with a caption, else grid_w;
 *   canvas_h = top + grid_h. Every pixel no cell or caption bar covers (the gaps, and each slot
 *   right of and below a smaller cell) is MN_VIZ_PANEL. */
#define MN_VIZ_GRID_GAP 8

/* The grid above as a new RGB image. n must equal rows * cols (both >= 1); every cell must be
 * drawable (an error names the first that is not by row and column). caption may be NULL. */
MN_API int mn_viz_grid(const mn_image *cells /* (rows * cols), row-major */, int n, int rows, int cols,
                       const char *caption, mn_image *out);

/* ---------------------------------------------------------------- charts */

/* A chart of named (x, y) series. Build it, add series, then render to an image or SVG; both
 * use one layout, so points land at the same place.
 * - Axes: linear or log10 x, linear y. Limits are the data range (all series and marks) padded
 *   by 4% of the span at each end; a zero span is first widened by 10% of the value each way
 *   (+-1 around 0; +-0.05 decades on a log axis).
 * - Ticks at "nice" steps (1, 2, 2.5 or 5 x 10^k), with a light grid. On a log axis: powers of
 *   ten, then 1-2-5 or 1..9 multiples when fewer than 3 would show, then nice steps of the
 *   values. Thousands and millions on a linear axis read "20k", "1.5M"; x tick labels that would
 *   touch are thinned out.
 * - A legend of every series sits in the corner of the plot with the fewest points under it.
 * - Non-finite points are skipped (and break lines); on a log axis x <= 0 is an error at render
 *   time naming the series and point. */
typedef struct mn_chart mn_chart;

enum mn_chart_style {
    MN_CHART_LINE = 1,       /* join the points in the order given */
    MN_CHART_MARKERS = 2,    /* a marker at each point (shape cycles with the series index) */
    MN_CHART_FRONTIER = 4,   /* highlighted: a thick line (width 2x), drawn over the others */
};

/* A new chart (strings copied; any may be NULL); NULL with the error set on OOM. */
MN_API mn_chart *mn_chart_new(const char *title, const char *x_label, const char *y_label);
MN_API void mn_chart_free(mn_chart *c);
MN_API void mn_chart_set_log_x(mn_chart *c, bool log_x);
/* Adds a series of n >= 1 points (copied) with a style of MN_CHART_* flags (0 means LINE);
 * returns its index (0, 1, ...) or a negative error. Colour: mn_viz_series_color(index). */
MN_API int mn_chart_add_series(mn_chart *c, const char *name, const double *x /* (n) */, const double *y /* (n) */,
                               int n, int style);
/* Marks one point with a black ring and a label beside it (e.g. the selected configuration):
 * right of the ring, else left, else below or above it, always inside the plot. */
MN_API int mn_chart_mark(mn_chart *c, double x, double y, const char *label);
/* Where (x, y) lands on a w x h rendering (continuous pixel coordinates: the point lies in pixel
 * (floor(px), floor(py))). Errors as for rendering. */
MN_API int mn_chart_to_pixel(const mn_chart *c, int w, int h, double x, double y, double *px, double *py);
/* Renders to a new RGB image of exactly w x h (w >= 240, h >= 180; text scale 1 below 480
 * pixels wide, 3 from 1600 wide, else 2). */
MN_API int mn_chart_render(const mn_chart *c, int w, int h, mn_image *out);
/* Renders and saves by extension (.png, .jpg at quality 95) atomically (mn_image_save). */
MN_API int mn_chart_save_image(const mn_chart *c, const char *path, int w, int h);
/* Writes the same chart as SVG text, atomically (temp file, fsync, rename). Each series drawn
 * with a line is one <path> element; markers are <circle>, <rect> or <polygon> elements. */
MN_API int mn_chart_save_svg(const mn_chart *c, const char *path, int w, int h);

#endif
