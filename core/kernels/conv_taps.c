#include <omp.h>
#include <string.h>

#include "core/kernels/conv_taps.h"
#include "core/kernels/gemm.h"

/* The outputs of one tap that read the image: rows [oh0, oh1) x columns [ow0, ow1), reading
 * from (ih0, iw0) on (stride 1: the input moves with the output). */
typedef struct rect {
    int64_t oh0, oh1, ow0, ow1, ih0, iw0;
} rect;

/* outputs [o0, o1) of no whose input index o - pad + off lies in [0, n) */
static void span(int64_t n, int64_t no, int64_t pad, int64_t off, int64_t *o0, int64_t *o1)
{
    const int64_t lo = pad - off, hi = n + pad - off;
    *o0 = lo < 0 ? 0 : lo;
    *o1 = hi > no ? no : hi;
    if (*o1 < *o0) *o1 = *o0;
}

static rect tap_rect(const mn_conv2d_dims *d, int64_t a, int64_t b)
{
    rect r;
    span(d->h, d->ho, d->pad_h, a * d->dil_h, &r.oh0, &r.oh1);
    span(d->w, d->wo, d->pad_w, b * d->dil_w, &r.ow0, &r.ow1);
    r.ih0 = r.oh0 - d->pad_h + a * d->dil_h;
    r.iw0 = r.ow0 - d->pad_w + b * d->dil_w;
    return r;
}

static int64_t rect_pixels(const rect *r) { return (r->oh1 - r->oh0) * (r->ow1 - r->ow0); }

/* whole rows of both planes, same columns: the GEMM reads and writes the planes in place */
static bool in_place(const rect *r, const mn_conv2d_dims *d)
{
    return r->ow0 == 0 && r->ow1 == d->wo && d->w == d->wo && r->iw0 == 0;
}

bool mn_taps_applies(const mn_conv2d_dims *d)
{
    if (d->im2col_only || d->groups != 1 || d->stride_h != 1 || d->stride_w != 1 || (d->dil_h == 1 && d->dil_w == 1))
        return false;
    int64_t used = 0;
    for (int64_t a = 0; a < d->kh; a++)
        for (int64_t b = 0; b < d->kw; b++) {
            const rect r = tap_rect(d, a, b);
            used += rect_pixels(&r);
        }
    return used * 5 <= (int64_t)d->kh * d->kw * d->ho * d->wo * 4;
}

size_t mn_taps_workspace_floats(const mn_conv2d_dims *d, bool backward)
{
    const size_t taps = (size_t)d->kh * (size_t)d->kw * (size_t)d->cout * (size_t)d->cin;
    return (backward ? 2 : 1) * taps + (size_t)(d->cin + d->cout) * (size_t)d->ho * (size_t)d->wo;
}

/* dst (C, rows, cols) = the window at (r0, c0) of the planes src (C, ph, pw) */
static void gather(float *dst, const float *src, int64_t ch, int64_t ph, int64_t pw, int64_t r0, int64_t c0,
                   int64_t rows, int64_t cols, int nt)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < ch; c++)
        for (int64_t r = 0; r < rows; r++)
            memcpy(dst + (c * rows + r) * cols, src + (c * ph + r0 + r) * pw + c0, sizeof(float) * (size_t)cols);
}

/* the window at (r0, c0) of the planes dst (C, ph, pw) += src (C, rows, cols) */
static void scatter_add(float *dst, const float *src, int64_t ch, int64_t ph, int64_t pw, int64_t r0, int64_t c0,
                        int64_t rows, int64_t cols, int nt)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < ch; c++)
        for (int64_t r = 0; r < rows; r++) {
            float *restrict o = dst + (c * ph + r0 + r) * pw + c0;
            const float *restrict s = src + (c * rows + r) * cols;
            for (int64_t i = 0; i < cols; i++) o[i] += s[i];
        }
}

/* wt (KH*KW, Cout, Cin): each tap's weights as a matrix */
static void split_taps(float *wt, const float *w, const mn_conv2d_dims *d)
{
    const int64_t kk = (int64_t)d->kh * d->kw, cout = d->cout, cin = d->cin;
#pragma omp parallel for num_threads(d->nthreads) schedule(static)
    for (int64_t o = 0; o < cout; o++)
        for (int64_t t = 0; t < kk; t++)
            for (int64_t i = 0; i < cin; i++) wt[(t * cout + o) * cin + i] = w[o * d->ldw + i * kk + t];
}

void mn_taps_forward(float *y, const float *x, const float *w, const float *b, const float *scale, const float *shift,
                     float lo, float hi, float *ws, const mn_conv2d_dims *d)
{
    const int64_t kk = (int64_t)d->kh * d->kw, cin = d->cin, cout = d->cout, pix = (int64_t)d->ho * d->wo;
    const int64_t hw = (int64_t)d->h * d->w;
    const int nt = d->nthreads;
    float *wt = ws, *xg = wt + kk * cout * cin, *yg = xg + cin * pix;
    split_taps(wt, w, d);
    for (int64_t n = 0; n < d->n; n++) {
        const float *xn = x + n * cin * hw;
        float *yn = y + n * cout * pix;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t o = 0; o < cout; o++) {
            const float v = b ? b[o] : 0;
            for (int64_t i = 0; i < pix; i++) yn[o * pix + i] = v;
        }
        for (int64_t t = 0; t < kk; t++) {
            const rect r = tap_rect(d, t / d->kw, t % d->kw);
            const int64_t np = rect_pixels(&r), rows = r.oh1 - r.oh0, cols = r.ow1 - r.ow0;
            if (!np) continue;
            const float *wtt = wt + t * cout * cin;
            if (in_place(&r, d)) {
                mn_gemm(yn + r.oh0 * d->wo, wtt, xn + r.ih0 * d->w, (int)cout, (int)np, (int)cin, (int)cin, (int)hw,
                        (int)pix, false, false, true);
                continue;
            }
            gather(xg, xn, cin, d->h, d->w, r.ih0, r.iw0, rows, cols, nt);
            mn_gemm(yg, wtt, xg, (int)cout, (int)np, (int)cin, (int)cin, (int)np, (int)np, false, false, false);
            scatter_add(yn, yg, cout, d->ho, d->wo, r.oh0, r.ow0, rows, cols, nt);
        }
        if (scale) {
            /* conv.c's affine_clamp expressions, so that values match the other paths' */
#pragma omp parallel for num_threads(nt) schedule(static)
            for (int64_t o = 0; o < cout; o++)
                for (int64_t i = 0; i < pix; i++) {
                    float v = yn[o * pix + i] * scale[o] + shift[o];
                    v = v < lo ? lo : v;
                    yn[o * pix + i] = v > hi ? hi : v;
                }
        }
    }
}

void mn_taps_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float *ws,
                      const mn_conv2d_dims *d)
{
    const int64_t kk = (int64_t)d->kh * d->kw, cin = d->cin, cout = d->cout, pix = (int64_t)d->ho * d->wo;
    const int64_t hw = (int64_t)d->h * d->w;
    const int nt = d->nthreads;
    float *wt = ws, *dwt = wt + kk * cout * cin, *xg = dwt + kk * cout * cin, *yg = xg + cin * pix;
    if (dx) split_taps(wt, w, d);
    if (dw) memset(dwt, 0, sizeof(float) * (size_t)(kk * cout * cin));
    for (int64_t n = 0; n < d->n; n++) {
        const float *xn = x + n * cin * hw, *dyn = dy + n * cout * pix;
        float *dxn = dx ? dx + n * cin * hw : NULL;
        for (int64_t t = 0; t < kk; t++) {
            const rect r = tap_rect(d, t / d->kw, t % d->kw);
            const int64_t np = rect_pixels(&r), rows = r.oh1 - r.oh0, cols = r.ow1 - r.ow0;
            if (!np) continue;
            const float *wtt = wt + t * cout * cin;
            float *dwtt = dwt + t * cout * cin;
            if (in_place(&r, d)) {
                if (dx)
                    mn_gemm(dxn + r.ih0 * d->w, wtt, dyn + r.oh0 * d->wo, (int)cin, (int)np, (int)cout, (int)cin,
                            (int)pix, (int)hw, true, false, true);
                if (dw)
                    mn_gemm(dwtt, dyn + r.oh0 * d->wo, xn + r.ih0 * d->w, (int)cout, (int)cin, (int)np, (int)pix,
                            (int)hw, (int)cin, false, true, true);
                continue;
            }
            gather(yg, dyn, cout, d->ho, d->wo, r.oh0, r.ow0, rows, cols, nt);
            if (dx) {
                mn_gemm(xg, wtt, yg, (int)cin, (int)np, (int)cout, (int)cin, (int)np, (int)np, true, false, false);
                scatter_add(dxn, xg, cin, d->h, d->w, r.ih0, r.iw0, rows, cols, nt);
            }
            if (dw) {
                gather(xg, xn, cin, d->h, d->w, r.ih0, r.iw0, rows, cols, nt);
                mn_gemm(dwtt, yg, xg, (int)cout, (int)cin, (int)np, (int)np, (int)np, (int)cin, false, true, true);
            }
        }
    }
    if (dw) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t o = 0; o < cout; o++)
            for (int64_t i = 0; i < cin; i++)
                for (int64_t t = 0; t < kk; t++) dw[o * d->ldw + i * kk + t] += dwt[(t * cout + o) * cin + i];
    }
}
