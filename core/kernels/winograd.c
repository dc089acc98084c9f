#include <omp.h>
#include <string.h>

#include "core/kernels/gemm.h"
#include "core/kernels/winograd.h"

/* Outputs per tile side, inputs per tile side, transformed points per tile. */
#define TILE 4
#define ALPHA 6
#define POINTS 36

/* Output tiles a block aims at: the GEMMs repack U's (Cout, Cin) slice for every block, so a
 * block needs enough columns to pay for that, while V and M of a block stay a few MB. */
#define BLOCK_TILES 256

/* G of F(4x4, 3x3): U = G g G^T. */
static const float G[ALPHA][3] = {
    {1.0f / 4, 0, 0},
    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
    {1.0f / 24, 1.0f / 12, 1.0f / 6},
    {1.0f / 24, -1.0f / 12, 1.0f / 6},
    {0, 0, 1},
};

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* One run of the tiled convolution: forward (x -> y) or the input gradient (dy -> dx). */
typedef struct wg_shape {
    int64_t n, cin, cout;   /* images, channels read, channels written */
    int64_t h, w, ho, wo;   /* the plane read and the plane written */
    int64_t ph, pw;         /* zero rows / columns around the plane read */
    int64_t th, tw;         /* tile rows and tile columns of the plane written */
    int64_t rows, blocks;   /* tile rows per block, blocks per image */
    int64_t tb;             /* tiles per block: rows * tw */
    int64_t lp;             /* length of a padded input row: 4 * (tw + 1) */
    int64_t scratch;        /* per worker: V, M and the row buffers, in floats */
    int workers;
} wg_shape;

static wg_shape make_shape(int64_t n, int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t ho, int64_t wo,
                           int64_t ph, int64_t pw, int nthreads)
{
    wg_shape s = {.n = n, .cin = cin, .cout = cout, .h = h, .w = w, .ho = ho, .wo = wo, .ph = ph, .pw = pw};
    const int64_t nt = nthreads > 1 ? nthreads : 1;
    s.th = ceil_div(ho, TILE);
    s.tw = ceil_div(wo, TILE);
    int64_t nb = ceil_div(s.th, max64(1, min64(BLOCK_TILES / s.tw, s.th)));
    /* more blocks until the threads get equal shares (or every tile row is a block) */
    for (int64_t extra = 0; extra < nt && (n * nb) % nt && nb < s.th; extra++) nb++;
    s.rows = ceil_div(s.th, nb);
    s.blocks = ceil_div(s.th, s.rows);
    s.tb = s.rows * s.tw;
    s.lp = TILE * (s.tw + 1);
    s.workers = (int)min64(nt, n * s.blocks);
    /* row buffers: 12 padded rows (input) or 40 tile-row vectors (output), and the 9 gathered
     * weight rows of the kernel transform */
    const int64_t line = max64(max64(12 * s.lp, 40 * (s.tw + 1) + s.lp), 9 * max64(cin, cout));
    /* (grad_tile_row needs 11 * lp: within 12 * lp) */
    s.scratch = POINTS * (cin + cout) * s.tb + line;
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* transforms                                                                                 */

/* u (36, rows, cols) row r = G g G^T for the kernels g of row r: gt (9, cols) holds, for each
 * of the nine taps, that tap of every kernel of the row. Vectorised over the row. */
static void kernel_transform_row(float *u, int64_t rows, int64_t cols, int64_t r, const float *gt)
{
    for (int p = 0; p < ALPHA; p++)
        for (int q = 0; q < ALPHA; q++) {
            float *dst = u + ((int64_t)(p * ALPHA + q) * rows + r) * cols;
            for (int64_t i = 0; i < cols; i++) dst[i] = 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    const float c = G[p][a] * G[q][b];
                    if (c == 0) continue;
                    const float *src = gt + (a * 3 + b) * cols;
                    for (int64_t i = 0; i < cols; i++) dst[i] += c * src[i];
                }
        }
}

/* The six rows of B^T d for d's rows r0..r5, element by element along the rows (gcc vectorises
 * it). Used down the columns (rows of the plane) and across (the phase rows of a tile row). */
static void bt_rows(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                    float *restrict o4, float *restrict o5, const float *restrict r0, const float *restrict r1,
                    const float *restrict r2, const float *restrict r3, const float *restrict r4,
                    const float *restrict r5, int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        const float v0 = r0[j], v1 = r1[j], v2 = r2[j], v3 = r3[j], v4 = r4[j], v5 = r5[j];
        o0[j] = 4 * v0 - 5 * v2 + v4;
        o1[j] = -4 * (v1 + v2) + v3 + v4;
        o2[j] = 4 * (v1 - v2) - v3 + v4;
        o3[j] = 2 * (v3 - v1) - v2 + v4;
        o4[j] = 2 * (v1 - v3) - v2 + v4;
        o5[j] = 4 * v1 - 5 * v3 + v5;
    }
}

/* v (36, cin, tb): columns [col0, col0 + tw) for channel c and tile row r of x's plane
 * (H, W): B^T d B of each 6x6 input tile. buf: the worker's row scratch (12 * lp floats). */
static void input_tile_row(float *v, const float *plane, const wg_shape *s, int64_t c, int64_t r, int64_t col0,
                           float *buf)
{
    const int64_t lp = s->lp, tw = s->tw;
    float *raw = buf, *vert = buf + ALPHA * lp;
    /* the six input rows of the tile row, zero-padded: position k is column k - pw */
    const int64_t k0 = s->pw, k1 = min64(s->pw + s->w, lp); /* where the plane's columns land */
    for (int i = 0; i < ALPHA; i++) {
        float *row = raw + i * lp;
        const int64_t ih = r * TILE - s->ph + i;
        if (ih < 0 || ih >= s->h || k1 <= k0) {
            memset(row, 0, sizeof(float) * (size_t)lp);
            continue;
        }
        memset(row, 0, sizeof(float) * (size_t)k0);
        memcpy(row + k0, plane + ih * s->w, sizeof(float) * (size_t)(k1 - k0));
        memset(row + k1, 0, sizeof(float) * (size_t)(lp - k1));
    }
    bt_rows(vert, vert + lp, vert + 2 * lp, vert + 3 * lp, vert + 4 * lp, vert + 5 * lp, raw, raw + lp, raw + 2 * lp,
            raw + 3 * lp, raw + 4 * lp, raw + 5 * lp, lp);
    /* across: tile t reads positions 4t .. 4t+5, i.e. phases 0-3 at t and phases 0-1 at t + 1 */
    float *ph = raw; /* the raw rows are no longer needed: four phase rows of tw + 1 */
    const int64_t np = tw + 1;
    for (int k = 0; k < ALPHA; k++) {
        const float *row = vert + k * lp;
        for (int q = 0; q < TILE; q++)
            for (int64_t t = 0; t < np; t++) ph[q * np + t] = row[TILE * t + q];
        float *o[ALPHA];
        for (int l = 0; l < ALPHA; l++) o[l] = v + ((int64_t)(k * ALPHA + l) * s->cin + c) * s->tb + col0;
        bt_rows(o[0], o[1], o[2], o[3], o[4], o[5], ph, ph + np, ph + 2 * np, ph + 3 * np, ph + 1, ph + np + 1, tw);
    }
}

/* The four rows of A^T m for six input rows m0..m5. */
static void at_rows(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                    const float *restrict m0, const float *restrict m1, const float *restrict m2,
                    const float *restrict m3, const float *restrict m4, const float *restrict m5, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        const float a = m1[t] + m2[t], b = m1[t] - m2[t], c = m3[t] + m4[t], d = m3[t] - m4[t];
        o0[t] = m0[t] + a + c;
        o1[t] = b + 2 * d;
        o2[t] = a + 4 * c;
        o3[t] = b + 8 * d + m5[t];
    }
}

/* Channel o, tile row r of the plane written (Ho, Wo), from m (36, cout, tb) columns
 * [col0, col0 + tw): out = result (+ bias) then the affine clamp, or out += result. */
static void output_tile_row(float *out, const float *m, const wg_shape *s, int64_t o, int64_t r, int64_t col0,
                            float bias, const float *scale, const float *shift, float lo, float hi, bool accumulate,
                            float *buf)
{
    const int64_t tw = s->tw, np = tw + 1;
    float *z = buf;                            /* z[i][c]: (6, 4) rows of tw: m A, row by row */
    float *y = buf + 24 * np;                  /* y[r][c]: (4, 4) rows of tw */
    float *line = buf + 40 * np;               /* one output row, tw * 4 long */
    for (int i = 0; i < ALPHA; i++) {
        const float *mi[ALPHA];
        for (int j = 0; j < ALPHA; j++) mi[j] = m + ((int64_t)(i * ALPHA + j) * s->cout + o) * s->tb + col0;
        float *zi = z + i * TILE * np;
        at_rows(zi, zi + np, zi + 2 * np, zi + 3 * np, mi[0], mi[1], mi[2], mi[3], mi[4], mi[5], tw);
    }
    for (int c = 0; c < TILE; c++) {
        const float *zc[ALPHA];
        for (int i = 0; i < ALPHA; i++) zc[i] = z + (i * TILE + c) * np;
        at_rows(y + c * np, y + (TILE + c) * np, y + (2 * TILE + c) * np, y + (3 * TILE + c) * np, zc[0], zc[1],
                zc[2], zc[3], zc[4], zc[5], tw);
    }
    const float a = scale ? scale[o] : 1, sh = scale ? shift[o] : 0;
    for (int rr = 0; rr < TILE; rr++) {
        const int64_t oh = r * TILE + rr;
        if (oh >= s->ho) break;
        for (int c = 0; c < TILE; c++) {
            const float *src = y + (rr * TILE + c) * np;
            for (int64_t t = 0; t < tw; t++) line[TILE * t + c] = src[t];
        }
        float *dst = out + oh * s->wo;
        if (accumulate) {
            for (int64_t i = 0; i < s->wo; i++) dst[i] += line[i];
        } else if (scale) {
            /* conv.c's affine_clamp, so that NaN passes and values match the im2col path's */
            for (int64_t i = 0; i < s->wo; i++) {
                float v = (line[i] + bias) * a + sh;
                v = v < lo ? lo : v;
                dst[i] = v > hi ? hi : v;
            }
        } else {
            for (int64_t i = 0; i < s->wo; i++) dst[i] = line[i] + bias;
        }
    }
}

/* The six rows of A e for four input rows e0..e3 (A = (A^T)^T, 6x4). */
static void a_rows(float *restrict o0, float *restrict o1, float *restrict o2, float *restrict o3,
                   float *restrict o4, float *restrict o5, const float *restrict e0, const float *restrict e1,
                   const float *restrict e2, const float *restrict e3, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        const float ev = e0[t] + e2[t], od = e1[t] + e3[t], ev4 = e0[t] + 4 * e2[t], od4 = 2 * e1[t] + 8 * e3[t];
        o0[t] = e0[t];
        o1[t] = ev + od;
        o2[t] = ev - od;
        o3[t] = ev4 + od4;
        o4[t] = ev4 - od4;
        o5[t] = e3[t];
    }
}

/* e (36, cout, tb): columns [col0, col0 + tw) for channel o and tile row r of the upstream
 * gradient's plane (Ho, Wo): A e A^T of each 4x4 tile, zero beyond the plane. */
static void grad_tile_row(float *e, const float *plane, const wg_shape *s, int64_t o, int64_t r, int64_t col0,
                          float *buf)
{
    const int64_t lp = s->lp, tw = s->tw, n = min64(s->wo, lp);
    float *raw = buf, *vert = buf + TILE * lp, *ph = buf + (TILE + ALPHA) * lp;
    for (int i = 0; i < TILE; i++) {
        float *row = raw + i * lp;
        const int64_t oh = r * TILE + i;
        if (oh >= s->ho) {
            memset(row, 0, sizeof(float) * (size_t)lp);
            continue;
        }
        memcpy(row, plane + oh * s->wo, sizeof(float) * (size_t)n);
        memset(row + n, 0, sizeof(float) * (size_t)(lp - n));
    }
    a_rows(vert, vert + lp, vert + 2 * lp, vert + 3 * lp, vert + 4 * lp, vert + 5 * lp, raw, raw + lp, raw + 2 * lp,
           raw + 3 * lp, lp);
    for (int k = 0; k < ALPHA; k++) {
        const float *row = vert + k * lp;
        for (int q = 0; q < TILE; q++)
            for (int64_t t = 0; t < tw; t++) ph[q * tw + t] = row[TILE * t + q];
        float *d[ALPHA];
        for (int l = 0; l < ALPHA; l++) d[l] = e + ((int64_t)(k * ALPHA + l) * s->cout + o) * s->tb + col0;
        a_rows(d[0], d[1], d[2], d[3], d[4], d[5], ph, ph + tw, ph + 2 * tw, ph + 3 * tw, tw);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the tiled convolution                                                                      */

/* The kernel's tap (a, b) for output channel o and input channel i of the run: forward reads
 * w[o][i][a][b]; the input gradient's run has the roles swapped and the kernel flipped. */
static float tap(const float *w, int64_t ldw, int64_t o, int64_t i, int ab, bool flipped)
{
    return flipped ? w[i * ldw + o * 9 + (8 - ab)] : w[o * ldw + i * 9 + ab];
}

/* out (N, cout, ho, wo) = or += the 3x3 convolution of in (N, cin, h, w) padded by (ph, pw).
 * flipped: the weight is read as the input gradient's kernel (see tap). */
static void run(float *out, const float *in, const float *w, int64_t ldw, bool flipped, const float *b,
                const float *scale, const float *shift, float lo, float hi, bool accumulate, float *ws,
                const wg_shape *s)
{
    const int64_t cin = s->cin, cout = s->cout, tb = s->tb;
    float *u = ws; /* (36, cout, cin) */
    float *own_all = ws + POINTS * cout * cin;
#pragma omp parallel num_threads(s->workers)
    {
        float *own = own_all + (int64_t)omp_get_thread_num() * s->scratch;
        float *v = own, *m = own + POINTS * cin * tb, *buf = m + POINTS * cout * tb;
#pragma omp for schedule(static)
        for (int64_t o = 0; o < cout; o++) {
            for (int ab = 0; ab < 9; ab++)
                for (int64_t i = 0; i < cin; i++) buf[ab * cin + i] = tap(w, ldw, o, i, ab, flipped);
            kernel_transform_row(u, cout, cin, o, buf);
        }
#pragma omp for schedule(static)
        for (int64_t item = 0; item < s->n * s->blocks; item++) {
            const int64_t img = item / s->blocks, r0 = item % s->blocks * s->rows, r1 = min64(r0 + s->rows, s->th);
            const int64_t cols = (r1 - r0) * s->tw;
            const float *x = in + img * cin * s->h * s->w;
            for (int64_t c = 0; c < cin; c++)
                for (int64_t r = r0; r < r1; r++)
                    input_tile_row(v, x + c * s->h * s->w, s, c, r, (r - r0) * s->tw, buf);
            for (int p = 0; p < POINTS; p++)
                mn_gemm(m + p * cout * tb, u + p * cout * cin, v + p * cin * tb, (int)cout, (int)cols, (int)cin,
                        (int)cin, (int)tb, (int)tb, false, false, false);
            float *y = out + img * cout * s->ho * s->wo;
            for (int64_t o = 0; o < cout; o++)
                for (int64_t r = r0; r < r1; r++)
                    output_tile_row(y + o * s->ho * s->wo, m, s, o, r, (r - r0) * s->tw, b ? b[o] : 0, scale, shift,
                                    lo, hi, accumulate, buf);
        }
    }
}

/* dw (Cout, Cin, 3, 3) with row stride ldw += the weight gradient: per point, the sum over
 * tiles of (A dy A^T) (x's tile transformed as forward does) = dU (Cout, Cin), one GEMM per
 * point and block into a private dU per worker; then dw += G^T dU G, the workers' dU added in
 * thread order (deterministic for a given thread count). */
static void run_weight_grad(float *dw, int64_t ldw, const float *dy, const float *x, float *ws, const wg_shape *s)
{
    const int64_t cin = s->cin, cout = s->cout, tb = s->tb, per = s->scratch + POINTS * cout * cin;
#pragma omp parallel num_threads(s->workers)
    {
        const int team = omp_get_num_threads();
        float *own = ws + (int64_t)omp_get_thread_num() * per;
        float *du = own, *v = du + POINTS * cout * cin, *e = v + POINTS * cin * tb, *buf = e + POINTS * cout * tb;
        memset(du, 0, sizeof(float) * (size_t)(POINTS * cout * cin));
#pragma omp for schedule(static)
        for (int64_t item = 0; item < s->n * s->blocks; item++) {
            const int64_t img = item / s->blocks, r0 = item % s->blocks * s->rows, r1 = min64(r0 + s->rows, s->th);
            const float *xi = x + img * cin * s->h * s->w, *dyi = dy + img * cout * s->ho * s->wo;
            for (int64_t c = 0; c < cin; c++)
                for (int64_t r = r0; r < r1; r++)
                    input_tile_row(v, xi + c * s->h * s->w, s, c, r, (r - r0) * s->tw, buf);
            for (int64_t o = 0; o < cout; o++)
                for (int64_t r = r0; r < r1; r++)
                    grad_tile_row(e, dyi + o * s->ho * s->wo, s, o, r, (r - r0) * s->tw, buf);
            for (int p = 0; p < POINTS; p++)
                mn_gemm(du + p * cout * cin, e + p * cout * tb, v + p * cin * tb, (int)cout, (int)cin,
                        (int)((r1 - r0) * s->tw), (int)tb, (int)tb, (int)cin, false, true, true);
        }
        /* implicit barrier: every private dU is complete */
#pragma omp for schedule(static)
        for (int64_t o = 0; o < cout; o++) {
            float *acc = buf; /* (9, cin) */
            memset(acc, 0, sizeof(float) * (size_t)(9 * cin));
            for (int t = 0; t < team; t++)
                for (int p = 0; p < ALPHA; p++)
                    for (int q = 0; q < ALPHA; q++) {
                        const float *src = ws + t * per + ((int64_t)(p * ALPHA + q) * cout + o) * cin;
                        for (int a = 0; a < 3; a++)
                            for (int b = 0; b < 3; b++) {
                                const float c = G[p][a] * G[q][b];
                                if (c == 0) continue;
                                float *dst = acc + (a * 3 + b) * cin;
                                for (int64_t i = 0; i < cin; i++) dst[i] += c * src[i];
                            }
                    }
            for (int64_t i = 0; i < cin; i++)
                for (int ab = 0; ab < 9; ab++) dw[o * ldw + i * 9 + ab] += acc[ab * cin + i];
        }
    }
}

static wg_shape forward_shape(const mn_conv2d_dims *d)
{
    return make_shape(d->n, d->cin, d->cout, d->h, d->w, d->ho, d->wo, d->pad_h, d->pad_w, d->nthreads);
}

/* the input gradient: dy (Cout, Ho, Wo) padded by 2 - pad gives (Cin, H, W) */
static wg_shape backward_shape(const mn_conv2d_dims *d)
{
    return make_shape(d->n, d->cout, d->cin, d->ho, d->wo, d->h, d->w, 2 - d->pad_h, 2 - d->pad_w, d->nthreads);
}

/* Where Winograd pays (bench/bench_conv's second table): 32+ channels, and 64+ tiles per
 * image (a 32x32 output plane). On smaller planes, e.g. 14x14 or 16x22 at 256 channels, the
 * kernel transform and the per-block repacking of the GEMMs cost as much as they save. */
bool mn_winograd_applies(const mn_conv2d_dims *d)
{
    return !d->im2col_only && d->kh == 3 && d->kw == 3 && d->stride_h == 1 && d->stride_w == 1 && d->dil_h == 1 &&
           d->dil_w == 1 && d->groups == 1 && d->pad_h <= 2 && d->pad_w <= 2 && d->cin >= 32 && d->cout >= 32 &&
           ceil_div(d->ho, TILE) * ceil_div(d->wo, TILE) >= 64;
}

size_t mn_winograd_workspace_floats(const mn_conv2d_dims *d, bool backward)
{
    const wg_shape f = forward_shape(d);
    const int64_t fwd = POINTS * f.cin * f.cout + f.workers * f.scratch;
    if (!backward) return (size_t)fwd;
    const wg_shape b = backward_shape(d);
    const int64_t data = POINTS * b.cin * b.cout + b.workers * b.scratch;
    const int64_t weight = f.workers * (f.scratch + POINTS * f.cin * f.cout);
    return (size_t)(data > weight ? data : weight);
}

void mn_winograd_forward(float *y, const float *x, const float *w, const float *b, const float *scale,
                         const float *shift, float lo, float hi, float *ws, const mn_conv2d_dims *d)
{
    const wg_shape s = forward_shape(d);
    run(y, x, w, d->ldw, false, b, scale, shift, lo, hi, false, ws, &s);
}

void mn_winograd_backward_data(float *dx, const float *dy, const float *w, float *ws, const mn_conv2d_dims *d)
{
    const wg_shape s = backward_shape(d);
    run(dx, dy, w, d->ldw, true, NULL, NULL, NULL, 0, 0, true, ws, &s);
}

void mn_winograd_backward_weight(float *dw, const float *dy, const float *x, float *ws, const mn_conv2d_dims *d)
{
    const wg_shape s = forward_shape(d);
    run_weight_grad(dw, d->ldw, dy, x, ws, &s);
}
