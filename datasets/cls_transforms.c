/* Classification augmentation (torchvision's RandomResizedCrop + flip for training, Resize +
 * CenterCrop for evaluation), each as one pass over the output: the source position of every
 * output row and column is worked out once, so no intermediate image is made. */
#include <math.h>
#include <stdlib.h>

#include "mn/dataset.h"

void mn_cls_aug_default(mn_cls_aug *a, int out_h, int out_w, bool train)
{
    *a = (mn_cls_aug){
        .out_h = out_h,
        .out_w = out_w,
        .train = train,
        .area_min = 0.08f,
        .area_max = 1.0f,
        .ratio_min = 3.0f / 4.0f,
        .ratio_max = 4.0f / 3.0f,
        .hflip = train,
        .crop_fraction = 0.875f,
        .mean = {0.485f, 0.456f, 0.406f},
        .std = {0.229f, 0.224f, 0.225f},
    };
}

/* Python's round(): halves to even, as torchvision's box arithmetic does. */
static int round_even(double v) { return (int)nearbyint(v); }

int mn_cls_crop_box(const mn_cls_aug *a, int ih, int iw, mn_rng *rng, int box[4])
{
    if (!a->train || !rng) return mn_error(MN_EINVAL, "classification crop box: only training draws one (and needs an rng)");
    if (!(a->area_min > 0 && a->area_min <= a->area_max && a->area_max <= 1) ||
        !(a->ratio_min > 0 && a->ratio_min <= a->ratio_max))
        return mn_error(MN_EINVAL, "classification crop: area [%g, %g] must lie in (0, 1] and ratio [%g, %g] be positive",
                        (double)a->area_min, (double)a->area_max, (double)a->ratio_min, (double)a->ratio_max);
    double area = (double)ih * iw, lr0 = log(a->ratio_min), lr1 = log(a->ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * mn_rng_range(rng, a->area_min, a->area_max);
        double aspect = exp(lr0 + (lr1 - lr0) * mn_rng_uniform(rng));
        int w = round_even(sqrt(target * aspect)), h = round_even(sqrt(target / aspect));
        if (w > 0 && w <= iw && h > 0 && h <= ih) {
            box[0] = mn_rng_int(rng, 0, ih - h);
            box[1] = mn_rng_int(rng, 0, iw - w);
            box[2] = h;
            box[3] = w;
            return 0;
        }
    }
    /* ten misses (a very elongated image): the central box of the nearest allowed ratio */
    double in_ratio = (double)iw / ih;
    int h = ih, w = iw;
    if (in_ratio < a->ratio_min) h = round_even(w / (double)a->ratio_min);
    else if (in_ratio > a->ratio_max) w = round_even(h * (double)a->ratio_max);
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    box[0] = (ih - h) / 2;
    box[1] = (iw - w) / 2;
    box[2] = h;
    box[3] = w;
    return 0;
}

/* One axis of a resize: output o reads source i0[o] and i1[o], weight frac[o] on the second.
 * Source position = off + (o + shift + 0.5) * scale - 0.5, kept inside [off, hi] (the box being
 * resized: its edge pixels repeat, nothing outside it is read). */
typedef struct axis {
    int *i0, *i1;
    float *frac;
} axis;

static int axis_make(axis *ax, int n, int off, int shift, float scale, int hi)
{
    ax->i0 = malloc(sizeof(int) * (size_t)n);
    ax->i1 = malloc(sizeof(int) * (size_t)n);
    ax->frac = malloc(sizeof(float) * (size_t)n);
    if (!ax->i0 || !ax->i1 || !ax->frac) return mn_error(MN_ENOMEM, "classification transform: out of memory");
    for (int o = 0; o < n; o++) {
        float s = scale * ((float)(o + shift) + 0.5f) - 0.5f; /* relative to the box; in float, as torch */
        if (s < 0) s = 0;
        int k = (int)s;
        if (off + k > hi) k = hi - off;
        int k1 = off + k < hi ? k + 1 : k;
        float f = s - (float)k;
        ax->i0[o] = off + k;
        ax->i1[o] = off + k1;
        ax->frac[o] = f > 1 ? 1 : f;
    }
    return 0;
}

static void axis_free(axis *ax)
{
    free(ax->i0);
    free(ax->i1);
    free(ax->frac);
}

/* Evaluation's resize: the image scaled to cover out / crop_fraction on both sides, the side
 * that decides rounded and the other truncated (torchvision's Resize(int) for a square crop). */
static void eval_resized(const mn_cls_aug *a, int ih, int iw, int *rh, int *rw)
{
    double th = a->out_h / (double)a->crop_fraction, tw = a->out_w / (double)a->crop_fraction;
    if (th / ih >= tw / iw) {
        *rh = round_even(th);
        *rw = (int)((double)*rh * iw / ih);
    } else {
        *rw = round_even(tw);
        *rh = (int)((double)*rw * ih / iw);
    }
    if (*rh < a->out_h) *rh = a->out_h;
    if (*rw < a->out_w) *rw = a->out_w;
}

int mn_cls_transform(const mn_cls_aug *a, const mn_sample *s, mn_rng *rng, float *image_chw)
{
    const mn_image *im = &s->image;
    if (im->c != 3) return mn_error(MN_EINVAL, "%s: expected an RGB image, got %d channels", s->name, im->c);
    if (im->h < 1 || im->w < 1) return mn_error(MN_EINVAL, "%s: empty image", s->name);
    if (a->out_h < 1 || a->out_w < 1 || !(a->crop_fraction > 0 && a->crop_fraction <= 1))
        return mn_error(MN_EINVAL, "classification transform: output %dx%d, crop fraction %g", a->out_h, a->out_w,
                        (double)a->crop_fraction);
    int H = a->out_h, W = a->out_w;
    axis ay = {0}, ax = {0};
    bool flip = false;
    int rc;
    if (a->train) {
        int box[4];
        rc = mn_cls_crop_box(a, im->h, im->w, rng, box);
        if (!rc) rc = axis_make(&ay, H, box[0], 0, (float)box[2] / (float)H, box[0] + box[2] - 1);
        if (!rc) rc = axis_make(&ax, W, box[1], 0, (float)box[3] / (float)W, box[1] + box[3] - 1);
        flip = a->hflip && mn_rng_uniform(rng) < 0.5f;
    } else {
        int rh, rw;
        eval_resized(a, im->h, im->w, &rh, &rw);
        int top = round_even((rh - H) / 2.0), left = round_even((rw - W) / 2.0);
        rc = axis_make(&ay, H, 0, top, (float)im->h / (float)rh, im->h - 1);
        if (!rc) rc = axis_make(&ax, W, 0, left, (float)im->w / (float)rw, im->w - 1);
    }
    const uint8_t *d = im->data;
    const int64_t stride = (int64_t)im->w * 3, plane = (int64_t)H * W;
    for (int y = 0; !rc && y < H; y++) {
        const uint8_t *r0 = d + ay.i0[y] * stride, *r1 = d + ay.i1[y] * stride;
        float fy = ay.frac[y];
        for (int x = 0; x < W; x++) {
            int sx = flip ? W - 1 - x : x;
            int64_t c0 = (int64_t)ax.i0[sx] * 3, c1 = (int64_t)ax.i1[sx] * 3;
            float fx = ax.frac[sx];
            for (int c = 0; c < 3; c++) {
                float top = r0[c0 + c] * (1 - fx) + r0[c1 + c] * fx, bot = r1[c0 + c] * (1 - fx) + r1[c1 + c] * fx;
                float v = top * (1 - fy) + bot * fy;
                image_chw[c * plane + (int64_t)y * W + x] = (v / 255.0f - a->mean[c]) / a->std[c];
            }
        }
    }
    axis_free(&ay);
    axis_free(&ax);
    return rc;
}
