/* Pictures side by side in rows and columns, with an optional caption bar (layout in mn/viz.h). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mn/viz.h"

#define CAPTION_BG ((mn_rgb){40, 40, 40})
#define CAPTION_TEXT ((mn_rgb){255, 255, 255})

typedef struct grid_layout {
    int *col_x;          /* (cols) left edge of each column's slots */
    int *row_y;          /* (rows) top edge of each row's slots */
    int scale, cap_h;
    int canvas_w, canvas_h;
} grid_layout;

static void layout_free(grid_layout *L)
{
    free(L->col_x);
    free(L->row_y);
}

static int check_cell(const mn_image *cell, int r, int c)
{
    if (!cell->data || cell->w <= 0 || cell->h <= 0 || cell->c < 1 || cell->c > 4)
        return mn_error(MN_EINVAL, "grid: cell (row %d, column %d) of %dx%dx%d%s is not drawable", r, c, cell->w,
                        cell->h, cell->c, cell->data ? "" : " without pixels");
    return 0;
}

/* Slot edges from the widest cell of each column and the tallest of each row; false when the
 * canvas would not fit an int. */
static bool place_slots(const mn_image *cells /* (rows * cols) */, int rows, int cols, grid_layout *L, int *max_w,
                        int *max_h)
{
    int64_t x = 0, y = 0;
    *max_w = *max_h = 0;
    for (int c = 0; c < cols; c++) {
        int cw = 0;
        for (int r = 0; r < rows; r++)
            if (cells[r * cols + c].w > cw) cw = cells[r * cols + c].w;
        L->col_x[c] = (int)x;
        x += cw + (c + 1 < cols ? MN_VIZ_GRID_GAP : 0);
        if (cw > *max_w) *max_w = cw;
        if (x > INT_MAX / 8) return false;
    }
    for (int r = 0; r < rows; r++) {
        int rh = 0;
        for (int c = 0; c < cols; c++)
            if (cells[r * cols + c].h > rh) rh = cells[r * cols + c].h;
        L->row_y[r] = (int)y;
        y += rh + (r + 1 < rows ? MN_VIZ_GRID_GAP : 0);
        if (rh > *max_h) *max_h = rh;
        if (y > INT_MAX / 8) return false;
    }
    L->canvas_w = (int)x;
    L->canvas_h = (int)y;
    return true;
}

static int grid_layout_of(const mn_image *cells /* (rows * cols) */, int rows, int cols, const char *caption,
                          grid_layout *L)
{
    memset(L, 0, sizeof *L);
    L->col_x = malloc(sizeof(int) * (size_t)cols);
    L->row_y = malloc(sizeof(int) * (size_t)rows);
    if (!L->col_x || !L->row_y) {
        layout_free(L);
        return mn_error(MN_ENOMEM, "grid: out of memory for %d x %d cells", rows, cols);
    }
    int max_w, max_h;
    if (!place_slots(cells, rows, cols, L, &max_w, &max_h)) {
        layout_free(L);
        return mn_error(MN_EINVAL, "grid: %d x %d cells make a canvas too large to draw", rows, cols);
    }
    L->scale = mn_viz_text_scale(max_w, max_h);
    if (!caption || !*caption) return 0;
    int s = L->scale, top = 17 * s + MN_VIZ_GRID_GAP;
    L->cap_h = 17 * s;
    for (int r = 0; r < rows; r++) L->row_y[r] += top;
    L->canvas_h += top;
    int tw = mn_viz_text_width(caption, s) + 8 * s;
    if (tw > L->canvas_w) L->canvas_w = tw;
    return 0;
}

/* Copies cell into the RGB canvas with its top-left corner at (x0, y0) (grey repeated, alpha dropped). */
static void copy_cell(mn_image *canvas, const mn_image *cell, int x0, int y0)
{
    for (int y = 0; y < cell->h; y++) {
        const uint8_t *src = cell->data + (size_t)y * (size_t)cell->w * (size_t)cell->c;
        uint8_t *dst = canvas->data + ((size_t)(y0 + y) * (size_t)canvas->w + (size_t)x0) * 3;
        for (int x = 0; x < cell->w; x++, src += cell->c, dst += 3) {
            bool grey = cell->c < 3;
            dst[0] = src[0];
            dst[1] = src[grey ? 0 : 1];
            dst[2] = src[grey ? 0 : 2];
        }
    }
}

int mn_viz_grid(const mn_image *cells /* (rows * cols), row-major */, int n, int rows, int cols, const char *caption,
                mn_image *out)
{
    memset(out, 0, sizeof *out);
    if (!cells || rows < 1 || cols < 1 || (int64_t)rows * cols != n)
        return mn_error(MN_EINVAL, "grid: %d cell%s%s for %d rows x %d columns", n, n == 1 ? "" : "s",
                        cells ? "" : " (none given)", rows, cols);
    for (int i = 0; i < n; i++) {
        int rc = check_cell(&cells[i], i / cols, i % cols);
        if (rc) return rc;
    }
    grid_layout L;
    int rc = grid_layout_of(cells, rows, cols, caption, &L);
    if (rc) return rc;
    mn_image cv;
    rc = mn_image_alloc(&cv, L.canvas_w, L.canvas_h, 3);
    if (rc) {
        layout_free(&L);
        return rc;
    }
    mn_viz_fill_rect(&cv, 0, 0, cv.w, cv.h, MN_VIZ_PANEL, 1);
    if (L.cap_h) {
        mn_viz_fill_rect(&cv, 0, 0, cv.w, L.cap_h, CAPTION_BG, 1);
        mn_viz_text(&cv, 4 * L.scale, 4 * L.scale, caption, L.scale, CAPTION_TEXT);
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) copy_cell(&cv, &cells[r * cols + c], L.col_x[c], L.row_y[r]);
    layout_free(&L);
    *out = cv;
    return 0;
}
