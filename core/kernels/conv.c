#include <limits.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/kernels/conv.h"
#include "core/kernels/conv_taps.h"
#include "core/kernels/gemm.h"
#include "core/kernels/winograd.h"

/* Floats per 512-bit vector. Flat loop counts are rounded up to a multiple of this (the
 * buffers carry zero tails) so the vectorised body runs without a scalar remainder. */
#define LANES 16

/* The plane kernels below stay out of line: inlined into the OpenMP bodies, gcc ran out of
 * registers and reloaded the row pointers from the stack inside the vector loop. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Under -std=c11 gcc does not contract a*b+c into an FMA, so the loops call fmaf, which gcc
 * turns into vector FMAs. */

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

static int64_t div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static int64_t div_ceil(int64_t a, int64_t b) { return -div_floor(-a, b); }

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------------------------------ */
/* dimensions and plans                                                                       */

int mn_conv2d_dims_init(mn_conv2d_dims *d, int n, int cin, int h, int w, int cout, int kh, int kw,
                        const mn_conv2d_params *p, int64_t ldw)
{
    memset(d, 0, sizeof *d);
    if (n < 1 || cin < 1 || h < 1 || w < 1 || cout < 1 || kh < 1 || kw < 1)
        return mn_error(MN_ESHAPE, "conv2d: empty input (%d, %d, %d, %d) or weight (%d, ., %d, %d)", n, cin, h, w,
                        cout, kh, kw);
    if (p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1 || p->pad_h < 0 || p->pad_w < 0 ||
        p->groups < 1)
        return mn_error(MN_EINVAL, "conv2d: stride (%d, %d), dilation (%d, %d) and groups %d must be >= 1, padding "
                        "(%d, %d) >= 0", p->stride_h, p->stride_w, p->dil_h, p->dil_w, p->groups, p->pad_h, p->pad_w);
    if (cin % p->groups || cout % p->groups)
        return mn_error(MN_ESHAPE, "conv2d: groups %d do not divide Cin %d and Cout %d", p->groups, cin, cout);
    int64_t row = (int64_t)(cin / p->groups) * kh * kw;
    if (ldw < row || ldw > INT_MAX)
        return mn_error(MN_EINVAL, "conv2d: weight row stride %lld is not in [%lld, INT_MAX]", (long long)ldw,
                        (long long)row);
    int64_t eh = (int64_t)h + 2 * p->pad_h - (int64_t)p->dil_h * (kh - 1) - 1;
    int64_t ew = (int64_t)w + 2 * p->pad_w - (int64_t)p->dil_w * (kw - 1) - 1;
    if (eh < 0 || ew < 0)
        return mn_error(MN_ESHAPE, "conv2d: kernel %dx%d (dilation %d, %d) does not fit input %dx%d padded by (%d, %d)",
                        kh, kw, p->dil_h, p->dil_w, h, w, p->pad_h, p->pad_w);
    int64_t ho = eh / p->stride_h + 1, wo = ew / p->stride_w + 1;
    if (ho * wo > INT_MAX || row * ho * wo > (int64_t)1 << 40)
        return mn_error(MN_EINVAL, "conv2d: output %lldx%lld is too large", (long long)ho, (long long)wo);
    *d = (mn_conv2d_dims){.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .kh = kh, .kw = kw, .ho = (int)ho,
                          .wo = (int)wo, .stride_h = p->stride_h, .stride_w = p->stride_w, .pad_h = p->pad_h,
                          .pad_w = p->pad_w, .dil_h = p->dil_h, .dil_w = p->dil_w, .groups = p->groups, .ldw = ldw,
                          .nthreads = omp_get_max_threads()};
    return 0;
}

enum conv_path { PATH_DEPTHWISE, PATH_POINTWISE, PATH_IM2COL };

static enum conv_path conv_path(const mn_conv2d_dims *d)
{
    if (d->groups == d->cin && d->groups == d->cout) return PATH_DEPTHWISE;
    if (d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h == 0 && d->pad_w == 0)
        return PATH_POINTWISE;
    return PATH_IM2COL;
}

/* Backward through GEMM: threads that each take whole images (with single-threaded GEMMs), or
 * 1 when there are fewer images than threads: images run in turn and OpenBLAS threads each
 * GEMM (im2col and col2im are then spread over threads between the GEMMs). */
static int image_workers(const mn_conv2d_dims *d) { return d->nthreads > 1 && d->n >= d->nthreads ? d->nthreads : 1; }

enum dw_kind { DW_GENERIC, DW_3X3_S1, DW_3X3_S2 };

/* Per-thread scratch of the depthwise path, in floats (each a multiple of LANES). A thread
 * zeroes its scratch once per call; afterwards only data positions are written, which are
 * the same for every plane, so the padding stays zero. */
typedef struct dw_plan {
    enum dw_kind kind;
    int64_t wo16;    /* Wo rounded up to LANES: output rows are computed this long */
    int64_t hp, wp;  /* padded plane (generic, 3x3 s1); for 3x3 s1 wp >= wo16 + 2 */
    int64_t ws;      /* row length of the four polyphase planes (3x3 s2): wo16 + 1 */
    int64_t q;       /* backward: flat output positions (rows of stride wp or ws), rounded */
    int64_t qg;      /* backward: flat positions of the input-plane gradient, rounded */
    int64_t z;       /* backward: zeros in front of the upstream-gradient copy */
    int64_t plane;   /* one padded or polyphase plane */
    int64_t dbuf;    /* backward: the upstream-gradient copy */
    int64_t fwd, bwd;
    bool s2_even;    /* 3x3 s2 with padding 1 and even W: the forward pass splits x's columns
                      * flat instead of building polyphase planes */
    int64_t half;    /* s2_even: W / 2, the row stride of the even / odd column planes */
    int64_t split;   /* s2_even: floats per column plane, with a leading zero and a tail */
} dw_plan;

static dw_plan make_dw_plan(const mn_conv2d_dims *d)
{
    dw_plan L;
    memset(&L, 0, sizeof L);
    L.wo16 = round_up(d->wo, LANES);
    L.hp = (int64_t)d->h + 2 * d->pad_h;
    L.wp = (int64_t)d->w + 2 * d->pad_w;
    bool k3 = d->kh == 3 && d->kw == 3 && d->dil_h == 1 && d->dil_w == 1;
    if (k3 && d->stride_h == 1 && d->stride_w == 1) {
        L.kind = DW_3X3_S1;
        L.wp = L.wo16 + 2; /* Wo = W + 2 pw - 2, so the padded row fits */
        L.q = round_up((int64_t)d->ho * L.wp, LANES);
        L.qg = round_up(L.hp * L.wp, LANES);
        L.z = 2 * L.wp + 2;
        /* one spare row: row windows read wo16 + 2 floats, flat windows 2 wp + 2 past q */
        L.plane = round_up((L.hp + 1) * L.wp, LANES);
        L.dbuf = round_up(L.z + L.qg, LANES);
        L.fwd = L.plane + L.wo16;
        L.bwd = L.plane + L.dbuf + L.qg;
    } else if (k3 && d->stride_h == 2 && d->stride_w == 2) {
        L.kind = DW_3X3_S2;
        L.ws = L.wo16 + 1;
        L.q = round_up((int64_t)d->ho * L.ws, LANES);
        L.qg = round_up(((int64_t)d->ho + 1) * L.ws, LANES);
        L.z = L.ws + 1;
        L.plane = round_up(((int64_t)d->ho + 2) * L.ws, LANES); /* Ho + 1 rows and a spare */
        L.dbuf = round_up(L.z + L.qg, LANES);
        L.fwd = 4 * L.plane + L.wo16;
        L.bwd = 4 * L.plane + L.dbuf + 4 * L.qg;
        L.s2_even = d->pad_h == 1 && d->pad_w == 1 && d->w % 2 == 0;
        if (L.s2_even) {
            /* rows are read wo16 + 1 long (one before, so a leading float) */
            L.half = d->w / 2;
            L.split = round_up(1 + (int64_t)d->h * L.half + L.wo16 + 1, LANES);
            L.fwd = 3 * L.split + L.wo16; /* even plane, odd plane, a zero row; spare row */
        }
    } else {
        L.kind = DW_GENERIC;
        L.plane = round_up(L.hp * L.wp, LANES);
        L.fwd = L.plane;
        L.bwd = 2 * L.plane;
    }
    return L;
}

/* Output pixels per forward block: the im2col block and the output block together take
 * about 512 KB, so they stay in L2 between the im2col, the bias fill and the GEMM. The block
 * count is raised until the threads get equal shares, and blocks are of equal size. */
static int64_t forward_block(const mn_conv2d_dims *d)
{
    const int64_t cout_g = d->cout / d->groups, pix = (int64_t)d->ho * d->wo, images = (int64_t)d->n * d->groups;
    const int64_t kdim = (int64_t)(d->cin / d->groups) * d->kh * d->kw, nt = d->nthreads > 1 ? d->nthreads : 1;
    const int64_t target = max64((128 * 1024) / (kdim + cout_g), 64);
    int64_t nb = (pix + target - 1) / target;
    for (int64_t extra = 0; extra < nt && (images * nb) % nt && nb < pix; extra++) nb++;
    return (pix + nb - 1) / nb;
}

/* A 1x1 forward pass with fewer images (x groups) than threads and fewer output pixels than
 * output channels (MobileNet's late layers at batch 1) splits each image's output channels
 * into this many row chunks instead of its pixels into blocks: each thread then packs its own
 * part of the weight matrix, the larger operand, rather than all of it. 1: split pixels. */
static int64_t forward_row_chunks(const mn_conv2d_dims *d)
{
    const int64_t cout_g = d->cout / d->groups, pix = (int64_t)d->ho * d->wo, nt = d->nthreads;
    if (conv_path(d) != PATH_POINTWISE || nt < 2 || (int64_t)d->n * d->groups >= nt || pix >= cout_g || cout_g < 32 * nt) return 1;
    return nt;
}

/* Blocks of every image and group are spread over threads, each running single-threaded
 * GEMMs; a lone block runs on its own and OpenBLAS may thread its GEMM. */
static int forward_workers(const mn_conv2d_dims *d)
{
    const int64_t pix = (int64_t)d->ho * d->wo, pb = forward_block(d);
    const int64_t items = (int64_t)d->n * d->groups * ((pix + pb - 1) / pb) * forward_row_chunks(d);
    return d->nthreads > 1 && items > 1 ? d->nthreads : 1;
}

size_t mn_conv2d_workspace_floats(const mn_conv2d_dims *d, bool backward)
{
    size_t nt = (size_t)(d->nthreads > 0 ? d->nthreads : 1);
    size_t cin_g = (size_t)(d->cin / d->groups);
    size_t kdim = cin_g * (size_t)d->kh * (size_t)d->kw, pix = (size_t)d->ho * (size_t)d->wo;
    size_t workers = (size_t)image_workers(d);
    if (mn_winograd_applies(d)) return mn_winograd_workspace_floats(d, backward);
    if (mn_taps_applies(d)) return mn_taps_workspace_floats(d, backward);
    if (!backward && conv_path(d) != PATH_DEPTHWISE)
        return conv_path(d) == PATH_POINTWISE ? 0 : (size_t)forward_workers(d) * kdim * (size_t)forward_block(d);
    switch (conv_path(d)) {
    case PATH_DEPTHWISE: {
        dw_plan L = make_dw_plan(d);
        return nt * (size_t)(backward ? L.bwd : L.fwd);
    }
    case PATH_POINTWISE:
        /* backward with images spread over threads: a private weight gradient each */
        return backward && workers > 1 ? workers * (size_t)d->cout * cin_g : 0;
    case PATH_IM2COL:
    default:
        return workers * kdim * pix + (backward && workers > 1 ? workers * (size_t)d->cout * kdim : 0);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

/* sum of p[0..n) (lane partial sums so gcc vectorises without reassociation flags) */
static double sum_row(const float *p, int64_t n)
{
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += p[i + l];
    double s = 0;
    for (; i < n; i++) s += p[i];
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}

/* sum_i a[i] b[i * sb] (scalar: only the generic depthwise path uses it) */
static double dot_strided(const float *a, const float *b, int64_t n, int64_t sb)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i * sb];
    return s;
}

/* db (Cout) += sums of dy (N, Cout, P) over images and pixels. */
static void bias_backward(float *db, const float *dy, int n, int cout, int64_t pix, int nthreads)
{
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int o = 0; o < cout; o++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += sum_row(dy + ((int64_t)i * cout + o) * pix, pix);
        db[o] += (float)s;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the output epilogue of mn_conv2d_forward_affine                                            */

/* Per output channel o: y = clamp(y * scale[o] + shift[o], lo, hi). Applied to each block of
 * output right after it is computed, while it is still in cache, instead of in later passes
 * over the whole tensor. NULL: plain convolution. */
typedef struct epilogue {
    const float *scale, *shift; /* (Cout) */
    float lo, hi;
} epilogue;

/* y (n) = clamp(y a + b, lo, hi). The expressions are those of mn_bn_forward_eval and
 * mn_relu6_forward (a NaN passes through both comparisons), so the values are the same. */
static void affine_clamp(float *restrict y, int64_t n, float a, float b, float lo, float hi)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float v = y[i] * a + b;
        v = v < lo ? lo : v;
        y[i] = v > hi ? hi : v;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* im2col / col2im for one image and group                                                    */

/* The output columns [ow0, ow1) whose input column ow*s - pad + off falls inside [0, w). */
static void valid_cols(int64_t w, int64_t wo, int64_t s, int64_t pad, int64_t off, int64_t *ow0, int64_t *ow1)
{
    *ow0 = clamp64(div_ceil(pad - off, s), 0, wo);
    *ow1 = clamp64(div_ceil(w + pad - off, s), *ow0, wo);
}

/* dst[i] = src[i * s] for i < n (stride 2 gets its own loop: gcc vectorises it with permutes) */
static void gather_row(float *restrict dst, const float *restrict src, int64_t n, int64_t s)
{
    if (s == 1) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
    } else if (s == 2) {
        for (int64_t i = 0; i < n; i++) dst[i] = src[2 * i];
    } else {
        for (int64_t i = 0; i < n; i++) dst[i] = src[i * s];
    }
}

static void zero_row(float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = 0.0f;
}

/* col (K, p1 - p0) with row stride ldc: rows [r0, r1) of K = Cin_g*KH*KW and output pixels
 * [p0, p1) of im2col(x (Cin_g, H, W)). */
static void im2col_block(float *col, int64_t ldc, const float *x, const mn_conv2d_dims *d, int64_t r0, int64_t r1,
                         int64_t p0, int64_t p1)
{
    const int64_t h = d->h, w = d->w, wo = d->wo;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / (d->kh * d->kw), a = r / d->kw % d->kh, b = r % d->kw;
        int64_t off_w = b * d->dil_w, ow0, ow1;
        valid_cols(w, wo, d->stride_w, d->pad_w, off_w, &ow0, &ow1);
        for (int64_t oh = p0 / wo; oh * wo < p1; oh++) {
            /* this output row's pixels in the block: columns [s, e) */
            const int64_t s = max64(p0 - oh * wo, 0), e = min64(p1 - oh * wo, wo);
            float *drow = col + r * ldc + oh * wo - p0; /* indexed by the column, from s on */
            const int64_t ih = oh * d->stride_h - d->pad_h + a * d->dil_h;
            const int64_t v0 = clamp64(ow0, s, e), v1 = clamp64(ow1, v0, e);
            if (ih < 0 || ih >= h || v0 >= v1) {
                zero_row(drow + s, e - s);
                continue;
            }
            zero_row(drow + s, v0 - s);
            zero_row(drow + v1, e - v1);
            gather_row(drow + v0, x + (c * h + ih) * w + v0 * d->stride_w - d->pad_w + off_w, v1 - v0, d->stride_w);
        }
    }
}

static void im2col_rows(float *col, const float *x, const mn_conv2d_dims *d, int64_t r0, int64_t r1)
{
    const int64_t pix = (int64_t)d->ho * d->wo;
    im2col_block(col, pix, x, d, r0, r1, 0, pix);
}

/* dx (Cin_g, H, W) channels [c0, c1) += col2im(dcol (K, Ho*Wo)). */
static void col2im_channels(float *dx, const float *dcol, const mn_conv2d_dims *d, int64_t c0, int64_t c1)
{
    const int64_t h = d->h, w = d->w, ho = d->ho, wo = d->wo, pix = ho * wo;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t a = 0; a < d->kh; a++)
            for (int64_t b = 0; b < d->kw; b++) {
                int64_t off_w = b * d->dil_w, ow0, ow1;
                valid_cols(w, wo, d->stride_w, d->pad_w, off_w, &ow0, &ow1);
                const float *src = dcol + ((c * d->kh + a) * d->kw + b) * pix;
                for (int64_t oh = 0; oh < ho; oh++) {
                    int64_t ih = oh * d->stride_h - d->pad_h + a * d->dil_h;
                    if (ih < 0 || ih >= h || ow0 >= ow1) continue;
                    float *drow = dx + (c * h + ih) * w + ow0 * d->stride_w - d->pad_w + off_w;
                    const float *srow = src + oh * wo + ow0;
                    if (d->stride_w == 1) {
                        for (int64_t i = 0; i < ow1 - ow0; i++) drow[i] += srow[i];
                    } else {
                        for (int64_t i = 0; i < ow1 - ow0; i++) drow[i * d->stride_w] += srow[i];
                    }
                }
            }
}

/* With `parallel` the rows (channels) are spread over threads: only when no GEMM runs. */
static void im2col(float *col, const float *x, const mn_conv2d_dims *d, bool parallel)
{
    int64_t k = (int64_t)(d->cin / d->groups) * d->kh * d->kw;
#pragma omp parallel for if (parallel) num_threads(d->nthreads) schedule(static)
    for (int64_t r = 0; r < k; r++) im2col_rows(col, x, d, r, r + 1);
}

static void col2im(float *dx, const float *dcol, const mn_conv2d_dims *d, bool parallel)
{
    int64_t cin_g = d->cin / d->groups;
#pragma omp parallel for if (parallel) num_threads(d->nthreads) schedule(static)
    for (int64_t c = 0; c < cin_g; c++) col2im_channels(dx, dcol, d, c, c + 1);
}

/* ------------------------------------------------------------------------------------------ */
/* dense, grouped and 1x1 convolution through GEMM                                            */

/* One block of output pixels [p0, p0 + len) and output channels [o0, o1) of group g of
 * image n: y_g[o0:o1, block] (o1 - o0, len) = w_g[o0:o1] (o1 - o0, K) [im2col block (K, len)
 * or x_g[:, block]] + b_g[o0:o1]. col (K, len) is scratch for the im2col path. */
static void gemm_forward_block(float *y, const float *x, const float *w, const float *b, const epilogue *e,
                               float *col, const mn_conv2d_dims *d, int64_t n, int64_t g, int64_t o0, int64_t o1,
                               int64_t p0, int64_t len, bool pointwise)
{
    const int64_t cin_g = d->cin / d->groups, cout_g = d->cout / d->groups, pix = (int64_t)d->ho * d->wo;
    const int64_t kdim = cin_g * d->kh * d->kw, rows = o1 - o0, oc = g * cout_g + o0; /* first channel */
    const float *xg = x + (n * d->cin + g * cin_g) * (int64_t)d->h * d->w;
    float *yg = y + (n * d->cout + oc) * pix + p0;
    const float *wg = w + oc * d->ldw;
    if (b)
        for (int64_t o = 0; o < rows; o++) {
            const float bv = b[oc + o];
            float *row = yg + o * pix;
            for (int64_t i = 0; i < len; i++) row[i] = bv;
        }
    if (pointwise) {
        mn_gemm(yg, wg, xg + p0, (int)rows, (int)len, (int)kdim, (int)d->ldw, (int)pix, (int)pix, false, false,
                b != NULL);
    } else {
        im2col_block(col, len, xg, d, 0, kdim, p0, p0 + len);
        mn_gemm(yg, wg, col, (int)rows, (int)len, (int)kdim, (int)d->ldw, (int)len, (int)pix, false, false,
                b != NULL);
    }
    if (e)
        for (int64_t o = 0; o < rows; o++)
            affine_clamp(yg + o * pix, len, e->scale[oc + o], e->shift[oc + o], e->lo, e->hi);
}

static void gemm_forward(float *y, const float *x, const float *w, const float *b, const epilogue *e, float *ws,
                         const mn_conv2d_dims *d, bool pointwise)
{
    const int64_t kdim = (int64_t)(d->cin / d->groups) * d->kh * d->kw, pix = (int64_t)d->ho * d->wo;
    const int64_t groups = d->groups, cout_g = d->cout / groups, rc = forward_row_chunks(d);
    if (rc > 1) {
        /* chunks of output channels, multiples of 16 rows (OpenBLAS's micro-tile height) */
        const int64_t rows = round_up((cout_g + rc - 1) / rc, 16), items = (int64_t)d->n * groups * rc;
#pragma omp parallel for num_threads(forward_workers(d)) schedule(static)
        for (int64_t it = 0; it < items; it++) {
            const int64_t k = it % rc, g = it / rc % groups, n = it / rc / groups;
            const int64_t o0 = min64(k * rows, cout_g), o1 = min64(o0 + rows, cout_g);
            if (o1 > o0) gemm_forward_block(y, x, w, b, e, NULL, d, n, g, o0, o1, 0, pix, true);
        }
        return;
    }
    const int64_t pb = forward_block(d), nb = (pix + pb - 1) / pb;
    const int64_t items = (int64_t)d->n * groups * nb;
#pragma omp parallel num_threads(forward_workers(d))
    {
        float *col = pointwise ? NULL : ws + (int64_t)omp_get_thread_num() * kdim * pb;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            const int64_t blk = it % nb, g = it / nb % groups, n = it / nb / groups;
            gemm_forward_block(y, x, w, b, e, col, d, n, g, 0, cout_g, blk * pb, min64(pb, pix - blk * pb),
                               pointwise);
        }
    }
}

/* One image: dx_n += w^T dy_n (through col2im unless pointwise); dw += dy_n im2col(x_n)^T
 * into dwt with row stride lddw. col (K, P) is scratch. */
static void gemm_backward_image(float *dx, float *dwt, int64_t lddw, const float *dy, const float *x, const float *w,
                                float *col, const mn_conv2d_dims *d, int64_t n, bool pointwise, bool parallel)
{
    const int64_t cin_g = d->cin / d->groups, cout_g = d->cout / d->groups, pix = (int64_t)d->ho * d->wo;
    const int64_t kdim = cin_g * d->kh * d->kw, hw = (int64_t)d->h * d->w;
    for (int64_t g = 0; g < d->groups; g++) {
        const float *xg = x + (n * d->cin + g * cin_g) * hw;
        const float *dyg = dy + (n * d->cout + g * cout_g) * pix;
        const float *wg = w + g * cout_g * d->ldw;
        if (dx) {
            float *dxg = dx + (n * d->cin + g * cin_g) * hw;
            if (pointwise) {
                mn_gemm(dxg, wg, dyg, (int)cin_g, (int)pix, (int)cout_g, (int)d->ldw, (int)pix, (int)pix, true, false,
                        true);
            } else {
                mn_gemm(col, wg, dyg, (int)kdim, (int)pix, (int)cout_g, (int)d->ldw, (int)pix, (int)pix, true, false,
                        false);
                col2im(dxg, col, d, parallel);
            }
        }
        if (dwt) {
            const float *bmat = xg;
            if (!pointwise) {
                im2col(col, xg, d, parallel);
                bmat = col;
            }
            mn_gemm(dwt + g * cout_g * lddw, dyg, bmat, (int)cout_g, (int)kdim, (int)pix, (int)pix, (int)pix,
                    (int)lddw, false, true, true);
        }
    }
}

static void gemm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float *ws,
                          const mn_conv2d_dims *d, bool pointwise)
{
    const int64_t kdim = (int64_t)(d->cin / d->groups) * d->kh * d->kw, pix = (int64_t)d->ho * d->wo;
    const int64_t col_floats = pointwise ? 0 : kdim * pix;
    int workers = image_workers(d);
    if (workers == 1) {
        for (int64_t n = 0; n < d->n; n++)
            gemm_backward_image(dx, dw, d->ldw, dy, x, w, ws, d, n, pointwise, d->nthreads > 1);
        return;
    }
    /* images spread over threads: each sums its images' weight gradient privately, then the
     * private sums are added in thread order (deterministic for a given thread count) */
    float *priv_all = ws + workers * col_floats;
    const int64_t priv_floats = (int64_t)d->cout * kdim;
#pragma omp parallel num_threads(workers)
    {
        int tid = omp_get_thread_num(), team = omp_get_num_threads();
        float *col = ws + tid * col_floats;
        float *priv = dw ? priv_all + tid * priv_floats : NULL;
        if (priv) memset(priv, 0, sizeof(float) * (size_t)priv_floats);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < d->n; n++) gemm_backward_image(dx, priv, kdim, dy, x, w, col, d, n, pointwise, false);
        if (dw) {
#pragma omp for schedule(static)
            for (int64_t o = 0; o < d->cout; o++)
                for (int t = 0; t < team; t++) {
                    const float *src = priv_all + t * priv_floats + o * kdim;
                    float *dst = dw + o * d->ldw;
                    for (int64_t k = 0; k < kdim; k++) dst[k] += src[k];
                }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* depthwise                                                                                  */

/* The data rows of p (row stride wp, zero elsewhere) = x plane (H, W) shifted by (ph, pw). */
static void pad_plane(float *p, const float *x, int64_t h, int64_t w, int64_t ph, int64_t pw, int64_t wp)
{
    for (int64_t i = 0; i < h; i++) memcpy(p + (ph + i) * wp + pw, x + i * w, sizeof(float) * (size_t)w);
}

/* out[j] = bias + sum_{a,b < 3} k[3a + b] r_a[j + b] for j < n: one output row of a 3x3
 * stride-1 window; r_a are the three input rows. */
static inline void dw3_s1_row(float *restrict out, const float *restrict r0, const float *restrict r1,
                       const float *restrict r2, const float *k, float bias, int64_t n)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    /* three independent chains, one per kernel row, so the FMA latency overlaps */
    for (int64_t j = 0; j < n; j++) {
        float s0 = fmaf(k0, r0[j], bias), s1 = k3 * r1[j], s2 = k6 * r2[j];
        s0 = fmaf(k1, r0[j + 1], s0);
        s1 = fmaf(k4, r1[j + 1], s1);
        s2 = fmaf(k7, r2[j + 1], s2);
        s0 = fmaf(k2, r0[j + 2], s0);
        s1 = fmaf(k5, r1[j + 2], s1);
        s2 = fmaf(k8, r2[j + 2], s2);
        out[j] = s0 + (s1 + s2);
    }
}

/* dk[t] += sum_{q < nq} d[q] src[t][q] for the nine taps; nq is a multiple of LANES. */
static void dot9(float *dk, const float *restrict d, const float *const src[9], int64_t nq)
{
    const float *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3], *s4 = src[4], *s5 = src[5], *s6 = src[6],
                *s7 = src[7], *s8 = src[8];
    float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0}, a4[LANES] = {0}, a5[LANES] = {0},
          a6[LANES] = {0}, a7[LANES] = {0}, a8[LANES] = {0};
    for (int64_t q = 0; q < nq; q += LANES)
        for (int l = 0; l < LANES; l++) {
            float v = d[q + l];
            a0[l] = fmaf(v, s0[q + l], a0[l]);
            a1[l] = fmaf(v, s1[q + l], a1[l]);
            a2[l] = fmaf(v, s2[q + l], a2[l]);
            a3[l] = fmaf(v, s3[q + l], a3[l]);
            a4[l] = fmaf(v, s4[q + l], a4[l]);
            a5[l] = fmaf(v, s5[q + l], a5[l]);
            a6[l] = fmaf(v, s6[q + l], a6[l]);
            a7[l] = fmaf(v, s7[q + l], a7[l]);
            a8[l] = fmaf(v, s8[q + l], a8[l]);
        }
    double s[9] = {0};
    for (int l = 0; l < LANES; l++) {
        s[0] += a0[l], s[1] += a1[l], s[2] += a2[l], s[3] += a3[l], s[4] += a4[l];
        s[5] += a5[l], s[6] += a6[l], s[7] += a7[l], s[8] += a8[l];
    }
    for (int t = 0; t < 9; t++) dk[t] += (float)s[t];
}

/* dst[i] += src[i] for i < n */
static void add_row(float *restrict dst, const float *restrict src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

/* Output rows are computed wo16 long straight into y: the overrun lands in the next rows,
 * which are written afterwards. A row whose overrun would leave the plane goes through the
 * scratch row `spare` instead. Returns where row oh is to be computed. */
static float *out_row(float *y, float *spare, int64_t oh, int64_t ho, int64_t wo, int64_t wo16)
{
    return oh * wo + wo16 <= ho * wo ? y + oh * wo : spare;
}

/* --- 3x3, stride 1: a zero-padded plane P (row stride Wp) --- */

/* y (Ho, Wo) from the padded plane p (row stride wp) */
NOINLINE static void dw3_s1_rows(float *y, float *spare, const float *p, int64_t wp, int64_t ho, int64_t wo,
                                 int64_t wo16, const float *kp, float bias)
{
    float k[9]; /* a local copy: the output stores cannot alias it, so it stays in registers */
    memcpy(k, kp, sizeof k);
    for (int64_t oh = 0; oh < ho; oh++) {
        float *out = out_row(y, spare, oh, ho, wo, wo16);
        const float *r0 = p + oh * wp;
        dw3_s1_row(out, r0, r0 + wp, r0 + 2 * wp, k, bias, wo16);
        if (out == spare) memcpy(y + oh * wo, spare, sizeof(float) * (size_t)wo);
    }
}

static void dw3_s1_forward_plane(float *y, const float *x, const float *k, float bias, float *buf,
                                 const mn_conv2d_dims *d, const dw_plan *L)
{
    pad_plane(buf, x, d->h, d->w, d->pad_h, d->pad_w, L->wp);
    dw3_s1_rows(y, buf + L->plane, buf, L->wp, d->ho, d->wo, L->wo16, k, bias);
}

/* dx (H, W) += and dk (9) += for one plane. The upstream gradient is copied into D with row
 * stride Wp (zero in the spare columns) after 2 Wp + 2 zeros, so the input gradient (a full
 * correlation with the flipped kernel) and the kernel gradient are flat loops over D. */
static void dw3_s1_backward_plane(float *dx, float *dk, const float *dy, const float *x, const float *k, float *buf,
                                  const mn_conv2d_dims *d, const dw_plan *L)
{
    const int64_t wp = L->wp, wo = d->wo, ho = d->ho, h = d->h, w = d->w, ph = d->pad_h, pw = d->pad_w;
    float *p = buf, *dd = buf + L->plane, *g = dd + L->dbuf;
    for (int64_t i = 0; i < ho; i++) memcpy(dd + L->z + i * wp, dy + i * wo, sizeof(float) * (size_t)wo);
    if (dx) {
        const float kf[9] = {k[8], k[7], k[6], k[5], k[4], k[3], k[2], k[1], k[0]};
        /* g = gradient of the padded plane, flat with row stride wp */
        dw3_s1_row(g, dd, dd + wp, dd + 2 * wp, kf, 0.0f, L->qg);
        for (int64_t i = 0; i < h; i++) add_row(dx + i * w, g + (i + ph) * wp + pw, w);
    }
    if (dk) {
        pad_plane(p, x, h, w, ph, pw, wp);
        const float *src[9];
        for (int t = 0; t < 9; t++) src[t] = p + (t / 3) * wp + t % 3;
        dot9(dk, dd + L->z, src, L->q);
    }
}

/* --- 3x3, stride 2: four polyphase planes (row parity x column parity of the padded input),
 * each (Ho + 1, ws); every tap is then a unit-stride read of one plane --- */

/* a[t] = x[2t], b[t] = x[2t + 1] for t < n */
static void deinterleave_row(float *restrict a, float *restrict b, const float *restrict x, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        a[t] = x[2 * t];
        b[t] = x[2 * t + 1];
    }
}

/* dx[2t] += a[t], dx[2t + 1] += b[t] for t < n */
static void interleave_add_row(float *restrict dx, const float *restrict a, const float *restrict b, int64_t n)
{
    for (int64_t t = 0; t < n; t++) {
        dx[2 * t] += a[t];
        dx[2 * t + 1] += b[t];
    }
}

/* The data positions of pl[2 rp + cp][m][j] = padded x[2m + rp][2j + cp]; planes are
 * L->plane floats apart. One pass per input row splits it into even and odd columns. */
static void polyphase_planes(float *pl, const float *x, const mn_conv2d_dims *d, const dw_plan *L)
{
    const int64_t ws = L->ws, h = d->h, w = d->w, ph = d->pad_h, pw = d->pad_w, half = w / 2;
    for (int64_t i = 0; i < h; i++) {
        const int64_t r = i + ph, row = (r & 1) * 2 * L->plane + (r >> 1) * ws;
        /* x[i][2t] lands at padded column 2t + pw, x[i][2t + 1] at 2t + 1 + pw */
        float *da = pl + row + (pw & 1) * L->plane + (pw >> 1);
        float *db = pl + row + ((pw + 1) & 1) * L->plane + ((pw + 1) >> 1);
        const float *xr = x + i * w;
        deinterleave_row(da, db, xr, half);
        if (w & 1) da[half] = xr[w - 1];
    }
}

/* One output row of a 3x3 stride-2 window from polyphase rows: e_a / o_a are the even / odd
 * columns of padded input row 2 oh + a. */
static inline void dw3_s2_row(float *restrict out, const float *restrict e0, const float *restrict o0,
                                const float *restrict e1, const float *restrict o1, const float *restrict e2,
                                const float *restrict o2, const float *k, float bias, int64_t n)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    for (int64_t j = 0; j < n; j++) {
        float s0 = fmaf(k0, e0[j], bias), s1 = k3 * e1[j], s2 = k6 * e2[j];
        s0 = fmaf(k1, o0[j], s0);
        s1 = fmaf(k4, o1[j], s1);
        s2 = fmaf(k7, o2[j], s2);
        s0 = fmaf(k2, e0[j + 1], s0);
        s1 = fmaf(k5, e1[j + 1], s1);
        s2 = fmaf(k8, e2[j + 1], s2);
        out[j] = s0 + (s1 + s2);
    }
}

/* y (Ho, Wo) from the four polyphase planes at pl (pl_n floats apart, row stride ws) */
NOINLINE static void dw3_s2_rows(float *y, float *spare, const float *pl, int64_t pl_n, int64_t ws, int64_t ho,
                                 int64_t wo, int64_t wo16, const float *kp, float bias)
{
    float k[9];
    memcpy(k, kp, sizeof k);
    for (int64_t oh = 0; oh < ho; oh++) {
        float *out = out_row(y, spare, oh, ho, wo, wo16);
        const float *e0 = pl + oh * ws, *e1 = e0 + 2 * pl_n;
        dw3_s2_row(out, e0, e0 + pl_n, e1, e1 + pl_n, e0 + ws, e0 + pl_n + ws, k, bias, wo16);
        if (out == spare) memcpy(y + oh * wo, spare, sizeof(float) * (size_t)wo);
    }
}

/* --- 3x3, stride 2, padding 1, even W (MobileNet's downsampling): x's even and odd columns
 * are split into two planes by one flat loop; padded row 2 oh + a is x row 2 oh + a - 1, and
 * padded columns 2 ow, 2 ow + 1, 2 ow + 2 are x's odd column ow - 1, even ow, odd ow. --- */

/* a[i] = x[2i], b[i] = x[2i + 1] for i < n */
NOINLINE static void split_columns(float *restrict a, float *restrict b, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        a[i] = x[2 * i];
        b[i] = x[2 * i + 1];
    }
}

static inline void dw3_s2p1_row(float *restrict out, const float *restrict e0, const float *restrict o0,
                                const float *restrict e1, const float *restrict o1, const float *restrict e2,
                                const float *restrict o2, const float *k, float bias, int64_t n)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    /* o_a[j - 1] at j = 0 reads the float before the row; the caller rewrites out[0] */
    for (int64_t j = 0; j < n; j++) {
        float s0 = fmaf(k0, o0[j - 1], bias), s1 = k3 * o1[j - 1], s2 = k6 * o2[j - 1];
        s0 = fmaf(k1, e0[j], s0);
        s1 = fmaf(k4, e1[j], s1);
        s2 = fmaf(k7, e2[j], s2);
        s0 = fmaf(k2, o0[j], s0);
        s1 = fmaf(k5, o1[j], s1);
        s2 = fmaf(k8, o2[j], s2);
        out[j] = s0 + (s1 + s2);
    }
}

/* y (Ho, Wo) from the column planes xe, xo (row stride half; zrow: a zero row) */
NOINLINE static void dw3_s2p1_rows(float *y, float *spare, const float *xe, const float *xo, const float *zrow,
                                   int64_t half, int64_t h, int64_t ho, int64_t wo, int64_t wo16,
                                   const float *kp, float bias)
{
    float k[9];
    memcpy(k, kp, sizeof k);
    for (int64_t oh = 0; oh < ho; oh++) {
        const float *e[3], *o[3];
        for (int a = 0; a < 3; a++) {
            int64_t r = 2 * oh + a - 1; /* x row; outside x it is padding */
            e[a] = r >= 0 && r < h ? xe + r * half : zrow;
            o[a] = r >= 0 && r < h ? xo + r * half : zrow;
        }
        float *out = out_row(y, spare, oh, ho, wo, wo16);
        dw3_s2p1_row(out, e[0], o[0], e[1], o[1], e[2], o[2], k, bias, wo16);
        /* output column 0: its left tap is padding */
        float s = bias;
        for (int a = 0; a < 3; a++) s += k[3 * a + 1] * e[a][0] + k[3 * a + 2] * o[a][0];
        out[0] = s;
        if (out == spare) memcpy(y + oh * wo, spare, sizeof(float) * (size_t)wo);
    }
}

static void dw3_s2_forward_plane(float *y, const float *x, const float *k, float bias, float *buf,
                                 const mn_conv2d_dims *d, const dw_plan *L)
{
    if (L->s2_even) {
        /* each plane has one float in front (read as column -1 of row 0) */
        float *xe = buf + 1, *xo = buf + L->split + 1, *zrow = buf + 2 * L->split + 1;
        split_columns(xe, xo, x, (int64_t)d->h * L->half);
        dw3_s2p1_rows(y, buf + 3 * L->split, xe, xo, zrow, L->half, d->h, d->ho, d->wo, L->wo16, k, bias);
        return;
    }
    polyphase_planes(buf, x, d, L);
    dw3_s2_rows(y, buf + 4 * L->plane, buf, L->plane, L->ws, d->ho, d->wo, L->wo16, k, bias);
}

/* g (qg) = the gradients of the four polyphase planes: each a flat gather over dz, the
 * upstream gradient with row stride ws (zero spare columns, ws + 1 zeros in front). */
static void dw3_s2_plane_grads(float *restrict g00, float *restrict g01, float *restrict g10, float *restrict g11,
                               const float *restrict dz, const float *k, int64_t ws, int64_t nq)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    const float *restrict up = dz - ws; /* the row above */
    for (int64_t q = 0; q < nq; q++) {
        g00[q] = fmaf(k0, dz[q + 1], fmaf(k2, dz[q], fmaf(k6, up[q + 1], k8 * up[q])));
        g01[q] = fmaf(k1, dz[q + 1], k7 * up[q + 1]);
        g10[q] = fmaf(k3, dz[q + 1], k5 * dz[q]);
        g11[q] = k4 * dz[q + 1];
    }
}

static void dw3_s2_backward_plane(float *dx, float *dk, const float *dy, const float *x, const float *k, float *buf,
                                  const mn_conv2d_dims *d, const dw_plan *L)
{
    const int64_t ws = L->ws, wo = d->wo, ho = d->ho, h = d->h, w = d->w, ph = d->pad_h, pw = d->pad_w;
    const int64_t qg = L->qg, half = w / 2;
    float *pl = buf, *dd = buf + 4 * L->plane, *g = dd + L->dbuf;
    for (int64_t i = 0; i < ho; i++) memcpy(dd + L->z + i * ws, dy + i * wo, sizeof(float) * (size_t)wo);
    const float *dz = dd + L->z;
    if (dx) {
        /* the gather reads dz[q - 1]: pass dz - 1 and index q + 1 so no index is negative */
        dw3_s2_plane_grads(g, g + qg, g + 2 * qg, g + 3 * qg, dz - 1, k, ws, qg);
        for (int64_t i = 0; i < h; i++) {
            /* padded (r, c) = (i + ph, j + pw) lives in plane (r & 1, c & 1) at (r >> 1, c >> 1) */
            const int64_t r = i + ph, row = (r & 1) * 2 * qg + (r >> 1) * ws;
            const float *ga = g + row + (pw & 1) * qg + (pw >> 1);
            const float *gb = g + row + ((pw + 1) & 1) * qg + ((pw + 1) >> 1);
            float *drow = dx + i * w;
            interleave_add_row(drow, ga, gb, half);
            if (w & 1) drow[w - 1] += ga[half];
        }
    }
    if (dk) {
        polyphase_planes(pl, x, d, L);
        const float *p00 = pl, *p01 = pl + L->plane, *p10 = pl + 2 * L->plane, *p11 = pl + 3 * L->plane;
        const float *src[9] = {p00, p01, p00 + 1, p10, p11, p10 + 1, p00 + ws, p01 + ws, p00 + ws + 1};
        dot9(dk, dz, src, L->q);
    }
}

/* --- any kernel, stride and dilation: direct loops over a padded plane --- */

static void dw_generic_forward_plane(float *y, const float *x, const float *k, float bias, float *buf,
                                     const mn_conv2d_dims *d, const dw_plan *L)
{
    const int64_t wp = L->wp, ho = d->ho, wo = d->wo, kh = d->kh, kw = d->kw, sh = d->stride_h, sw = d->stride_w;
    const int64_t dh = d->dil_h, dwl = d->dil_w;
    pad_plane(buf, x, d->h, d->w, d->pad_h, d->pad_w, wp);
    for (int64_t oh = 0; oh < ho; oh++) {
        float *restrict yrow = y + oh * wo;
        for (int64_t ow = 0; ow < wo; ow++) yrow[ow] = bias;
        for (int64_t a = 0; a < kh; a++)
            for (int64_t b = 0; b < kw; b++) {
                const float kv = k[a * kw + b];
                const float *restrict src = buf + (oh * sh + a * dh) * wp + b * dwl;
                if (sw == 1) {
                    for (int64_t ow = 0; ow < wo; ow++) yrow[ow] = fmaf(kv, src[ow], yrow[ow]);
                } else {
                    for (int64_t ow = 0; ow < wo; ow++) yrow[ow] = fmaf(kv, src[ow * sw], yrow[ow]);
                }
            }
    }
}

static void dw_generic_backward_plane(float *dx, float *dk, const float *dy, const float *x, const float *k,
                                      float *buf, const mn_conv2d_dims *d, const dw_plan *L)
{
    const int64_t wp = L->wp, ho = d->ho, wo = d->wo, kh = d->kh, kw = d->kw, sh = d->stride_h, sw = d->stride_w;
    const int64_t dh = d->dil_h, dwl = d->dil_w, h = d->h, w = d->w, ph = d->pad_h, pw = d->pad_w;
    float *p = buf, *gp = buf + L->plane;
    pad_plane(p, x, h, w, ph, pw, wp);
    if (dx) memset(gp, 0, sizeof(float) * (size_t)L->plane);
    for (int64_t a = 0; a < kh; a++)
        for (int64_t b = 0; b < kw; b++) {
            const float kv = k[a * kw + b];
            double acc = 0;
            for (int64_t oh = 0; oh < ho; oh++) {
                const int64_t off = (oh * sh + a * dh) * wp + b * dwl;
                const float *restrict dyrow = dy + oh * wo;
                float *restrict grow = gp + off;
                if (dx)
                    for (int64_t ow = 0; ow < wo; ow++) grow[ow * sw] = fmaf(kv, dyrow[ow], grow[ow * sw]);
                if (dk) acc += dot_strided(dyrow, p + off, wo, sw);
            }
            if (dk) dk[a * kw + b] += (float)acc;
        }
    if (dx)
        for (int64_t i = 0; i < h; i++) add_row(dx + i * w, gp + (i + ph) * wp + pw, w);
}

static void depthwise_forward(float *y, const float *x, const float *w, const float *b, const epilogue *e,
                              float *ws, const mn_conv2d_dims *d)
{
    const dw_plan L = make_dw_plan(d);
    const int64_t planes = (int64_t)d->n * d->cin, c_n = d->cin, hw = (int64_t)d->h * d->w;
    const int64_t pix = (int64_t)d->ho * d->wo, ldw = d->ldw;
#pragma omp parallel num_threads(d->nthreads)
    {
        float *buf = ws + (int64_t)omp_get_thread_num() * L.fwd;
        memset(buf, 0, sizeof(float) * (size_t)L.fwd);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < planes; i++) {
            const int64_t c = i % c_n;
            const float *k = w + c * ldw;
            const float bias = b ? b[c] : 0.0f;
            if (L.kind == DW_3X3_S1)
                dw3_s1_forward_plane(y + i * pix, x + i * hw, k, bias, buf, d, &L);
            else if (L.kind == DW_3X3_S2)
                dw3_s2_forward_plane(y + i * pix, x + i * hw, k, bias, buf, d, &L);
            else
                dw_generic_forward_plane(y + i * pix, x + i * hw, k, bias, buf, d, &L);
            if (e) affine_clamp(y + i * pix, pix, e->scale[c], e->shift[c], e->lo, e->hi);
        }
    }
}

/* Channels are spread over threads and each thread walks the images of its channels, so a
 * channel's kernel gradient has one writer. */
static void depthwise_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, float *ws,
                               const mn_conv2d_dims *d)
{
    const dw_plan L = make_dw_plan(d);
    const int64_t c_n = d->cin, n_n = d->n, hw = (int64_t)d->h * d->w, pix = (int64_t)d->ho * d->wo, ldw = d->ldw;
#pragma omp parallel num_threads(d->nthreads)
    {
        float *buf = ws + (int64_t)omp_get_thread_num() * L.bwd;
        memset(buf, 0, sizeof(float) * (size_t)L.bwd);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < c_n; c++)
            for (int64_t n = 0; n < n_n; n++) {
                const int64_t i = n * c_n + c;
                float *dxp = dx ? dx + i * hw : NULL, *dk = dw ? dw + c * ldw : NULL;
                const float *k = w + c * ldw;
                if (L.kind == DW_3X3_S1)
                    dw3_s1_backward_plane(dxp, dk, dy + i * pix, x + i * hw, k, buf, d, &L);
                else if (L.kind == DW_3X3_S2)
                    dw3_s2_backward_plane(dxp, dk, dy + i * pix, x + i * hw, k, buf, d, &L);
                else
                    dw_generic_backward_plane(dxp, dk, dy + i * pix, x + i * hw, k, buf, d, &L);
            }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* entry points                                                                               */

static void forward_dispatch(float *y, const float *x, const float *w, const float *b, const epilogue *e, float *ws,
                             const mn_conv2d_dims *d)
{
    if (mn_winograd_applies(d)) {
        mn_winograd_forward(y, x, w, b, e ? e->scale : NULL, e ? e->shift : NULL, e ? e->lo : 0, e ? e->hi : 0, ws, d);
        return;
    }
    if (mn_taps_applies(d)) {
        mn_taps_forward(y, x, w, b, e ? e->scale : NULL, e ? e->shift : NULL, e ? e->lo : 0, e ? e->hi : 0, ws, d);
        return;
    }
    switch (conv_path(d)) {
    case PATH_DEPTHWISE: depthwise_forward(y, x, w, b, e, ws, d); break;
    case PATH_POINTWISE: gemm_forward(y, x, w, b, e, ws, d, true); break;
    case PATH_IM2COL: gemm_forward(y, x, w, b, e, ws, d, false); break;
    }
}

void mn_conv2d_forward(float *y, const float *x, const float *w, const float *b, float *ws, const mn_conv2d_dims *d)
{
    forward_dispatch(y, x, w, b, NULL, ws, d);
}

void mn_conv2d_forward_affine(float *y, const float *x, const float *w, const float *b, const float *scale,
                              const float *shift, float lo, float hi, float *ws, const mn_conv2d_dims *d)
{
    const epilogue e = {scale, shift, lo, hi};
    forward_dispatch(y, x, w, b, &e, ws, d);
}

void mn_conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, float *ws,
                        const mn_conv2d_dims *d)
{
    if (db) bias_backward(db, dy, d->n, d->cout, (int64_t)d->ho * d->wo, d->nthreads);
    if (!dx && !dw) return;
    if (mn_winograd_applies(d)) {
        if (dx) mn_winograd_backward_data(dx, dy, w, ws, d);
        if (dw) mn_winograd_backward_weight(dw, dy, x, ws, d);
        return;
    }
    if (mn_taps_applies(d)) {
        mn_taps_backward(dx, dw, dy, x, w, ws, d);
        return;
    }
    switch (conv_path(d)) {
    case PATH_DEPTHWISE: depthwise_backward(dx, dw, dy, x, w, ws, d); break;
    case PATH_POINTWISE: gemm_backward(dx, dw, dy, x, w, ws, d, true); break;
    case PATH_IM2COL: gemm_backward(dx, dw, dy, x, w, ws, d, false); break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* reference twins                                                                            */

void mn_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, const mn_conv2d_dims *d)
{
    const int cin_g = d->cin / d->groups, cout_g = d->cout / d->groups;
    for (int n = 0; n < d->n; n++)
        for (int o = 0; o < d->cout; o++)
            for (int oh = 0; oh < d->ho; oh++)
                for (int ow = 0; ow < d->wo; ow++) {
                    const int g = o / cout_g;
                    double s = b ? b[o] : 0.0;
                    for (int c = 0; c < cin_g; c++)
                        for (int a = 0; a < d->kh; a++)
                            for (int bb = 0; bb < d->kw; bb++) {
                                int ih = oh * d->stride_h - d->pad_h + a * d->dil_h;
                                int iw = ow * d->stride_w - d->pad_w + bb * d->dil_w;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                s += (double)x[(((int64_t)n * d->cin + g * cin_g + c) * d->h + ih) * d->w + iw] *
                                     w[o * d->ldw + ((int64_t)c * d->kh + a) * d->kw + bb];
                            }
                    y[(((int64_t)n * d->cout + o) * d->ho + oh) * d->wo + ow] = (float)s;
                }
}

void mn_conv2d_forward_affine_ref(float *y, const float *x, const float *w, const float *b, const float *scale,
                                  const float *shift, float lo, float hi, const mn_conv2d_dims *d)
{
    mn_conv2d_forward_ref(y, x, w, b, d);
    const int64_t pix = (int64_t)d->ho * d->wo;
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t o = 0; o < d->cout; o++)
            for (int64_t k = 0; k < pix; k++) {
                float *v = &y[(n * d->cout + o) * pix + k];
                float z = *v * scale[o] + shift[o];
                if (z < lo) z = lo;
                if (z > hi) z = hi;
                *v = z;
            }
}

void mn_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                            const mn_conv2d_dims *d)
{
    const int cin_g = d->cin / d->groups, cout_g = d->cout / d->groups;
    for (int o = 0; o < d->cout; o++) {
        const int g = o / cout_g;
        double sb = 0;
        for (int n = 0; n < d->n; n++)
            for (int oh = 0; oh < d->ho; oh++)
                for (int ow = 0; ow < d->wo; ow++) {
                    const float gy = dy[(((int64_t)n * d->cout + o) * d->ho + oh) * d->wo + ow];
                    sb += gy;
                    for (int c = 0; c < cin_g; c++)
                        for (int a = 0; a < d->kh; a++)
                            for (int bb = 0; bb < d->kw; bb++) {
                                int ih = oh * d->stride_h - d->pad_h + a * d->dil_h;
                                int iw = ow * d->stride_w - d->pad_w + bb * d->dil_w;
                                if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) continue;
                                int64_t xi = (((int64_t)n * d->cin + g * cin_g + c) * d->h + ih) * d->w + iw;
                                int64_t wi = o * d->ldw + ((int64_t)c * d->kh + a) * d->kw + bb;
                                if (dx) dx[xi] += w[wi] * gy;
                                if (dw) dw[wi] += x[xi] * gy;
                            }
                }
        if (db) db[o] += (float)sb;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* linear                                                                                     */

void mn_linear_forward(float *y, const float *x, const float *w, const float *b, int n, int in, int out, int64_t ldw)
{
    if (b)
        for (int i = 0; i < n; i++) memcpy(y + (int64_t)i * out, b, sizeof(float) * (size_t)out);
    mn_gemm(y, x, w, n, out, in, in, (int)ldw, out, false, true, b != NULL);
}

void mn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                        int in, int out, int64_t ldw)
{
    if (dx) mn_gemm(dx, dy, w, n, in, out, out, (int)ldw, in, false, false, true);
    if (dw) mn_gemm(dw, dy, x, out, in, n, out, in, (int)ldw, true, false, true);
    if (db)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dy[(int64_t)i * out + o];
            db[o] += (float)s;
        }
}

void mn_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                           int64_t ldw)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++) s += (double)x[(int64_t)i * in + k] * w[o * ldw + k];
            y[(int64_t)i * out + o] = (float)s;
        }
}

void mn_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                            int in, int out, int64_t ldw)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            const float gy = dy[(int64_t)i * out + o];
            if (db) db[o] += gy;
            for (int k = 0; k < in; k++) {
                if (dx) dx[(int64_t)i * in + k] += gy * w[o * ldw + k];
                if (dw) dw[o * ldw + k] += gy * x[(int64_t)i * in + k];
            }
        }
}
