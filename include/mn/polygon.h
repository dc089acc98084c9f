/* Polygon geometry for annotations: area, bounds, clipping and rasterisation.
 *
 * A polygon is n vertices stored as interleaved (x, y) doubles in pixel units; the closing edge
 * from the last vertex back to the first is implied. Pixel (i, j) covers [i, i+1) x [j, j+1)
 * and is sampled at its centre (i + 0.5, j + 0.5), as COCO and PIL's polygon fill do.
 *
 * Inside/outside is the even-odd rule with a half-open convention on y (an edge counts for a
 * horizontal line at height y when exactly one end satisfies vy <= y) and on x (a point exactly
 * on a left crossing is inside, on a right crossing outside). mn_polygon_contains and the span
 * rasteriser compute the crossings with the same expression, so they agree bit for bit. The
 * even-odd rule lets one self-touching polygon carry a hole (see datasets/synth.c's rings). */
#ifndef MN_POLYGON_H
#define MN_POLYGON_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Signed shoelace area; its sign gives the winding (positive when the vertices turn from +x
 * towards +y). The area of a polygon is fabs() of this. */
MN_API double mn_polygon_area(const double *xy /* (n, 2) */, int n);
/* box = {xmin, ymin, xmax, ymax} over the vertices; all zero when n == 0. */
MN_API void mn_polygon_bounds(const double *xy /* (n, 2) */, int n, double box[4]);
/* Whether (x, y) is inside by the even-odd rule (conventions above). */
MN_API bool mn_polygon_contains(const double *xy /* (n, 2) */, int n, double x, double y);
/* Clips to the rectangle [x0, x1] x [y0, y1] (Sutherland-Hodgman; a concave polygon may keep
 * zero-width slivers along the rectangle's sides, which add no area and cover no pixel centre).
 * *out gets a malloc'd (m, 2) array; returns m >= 0 (0 when nothing is left, *out == NULL) or a
 * negative error code. Consecutive duplicate vertices are removed. */
MN_API int mn_polygon_clip_rect(double **out, const double *xy /* (n, 2) */, int n, double x0, double y0, double x1,
                                double y1);
/* Removes consecutive duplicate vertices (and a last vertex equal to the first) in place;
 * returns the new count. */
MN_API int mn_polygon_dedup(double *xy /* (n, 2) */, int n);

/* Called once per run of covered pixels: columns x0 .. x1-1 of row y. */
typedef void (*mn_span_fn)(void *ctx, int y, int x0, int x1);
/* Visits the pixels of a w x h grid whose centres are inside the polygon, row by row, as
 * horizontal spans (left to right within a row). Returns 0 or MN_ENOMEM. */
MN_API int mn_polygon_spans(const double *xy /* (n, 2) */, int n, int w, int h, mn_span_fn fn, void *ctx);
/* Sets dst to value at every covered pixel (scan lines through mn_polygon_spans); returns how
 * many pixels were set, or a negative error code. */
MN_API int64_t mn_polygon_fill(uint8_t *dst /* (h, w) */, int w, int h, const double *xy /* (n, 2) */, int n,
                               uint8_t value);
/* The reference twin of mn_polygon_fill: asks mn_polygon_contains about every pixel centre. */
MN_API int64_t mn_polygon_fill_ref(uint8_t *dst /* (h, w) */, int w, int h, const double *xy /* (n, 2) */, int n,
                                   uint8_t value);

#endif
