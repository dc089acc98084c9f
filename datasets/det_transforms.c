/* Detection transforms: the horizontal flip of torchvision's reference pipeline followed by
 * GeneralizedRCNNTransform (short-side resize with a long-side cap, normalisation, zero padding
 * of the batch to a multiple of 32), and re-sizing a finished batch for another sub-network. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mn/dataset.h"

void mn_det_aug_default(mn_det_aug *a, int min_size, int max_size, bool train)
{
    *a = (mn_det_aug){
        .min_size = min_size,
        .max_size = max_size,
        .size_divisible = 32,
        .hflip = train,
        .min_box = 0.0f,
        .mean = {0.485f, 0.456f, 0.406f}, /* torchvision's detection defaults */
        .std = {0.229f, 0.224f, 0.225f},
    };
}

int mn_det_resize_shape(const mn_det_aug *a, int h, int w, int *oh, int *ow, float *scale)
{
    if (a->min_size < 1 || a->max_size < 1)
        return mn_error(MN_EINVAL, "detection resize: min_size %d and max_size %d must be positive", a->min_size,
                        a->max_size);
    if (h < 1 || w < 1) return mn_error(MN_EINVAL, "detection resize: empty %dx%d image", w, h);
    /* float32 as torchvision computes it; the output side is floor(side * scale) in double */
    float lo = (float)(h < w ? h : w), hi = (float)(h < w ? w : h);
    float s1 = (float)a->min_size / lo, s2 = (float)a->max_size / hi;
    float s = s1 < s2 ? s1 : s2;
    *oh = (int)floor((double)h * (double)s);
    *ow = (int)floor((double)w * (double)s);
    if (*oh < 1) *oh = 1;
    if (*ow < 1) *ow = 1;
    if (scale) *scale = s;
    return 0;
}

/* PyTorch's bilinear source coordinate (align_corners = False) for output index o of a resize
 * from in to out: the lower index, its neighbour and the weight of the neighbour. */
static void src_coord(int o, int in, int out, int *i0, int *i1, float *frac)
{
    float sc = (float)in / (float)out;
    float s = sc * ((float)o + 0.5f) - 0.5f;
    if (s < 0.0f) s = 0.0f;
    int i = (int)s;
    if (i > in - 1) i = in - 1;
    *i0 = i;
    *i1 = i + (i < in - 1);
    *frac = s - (float)i;
    if (*frac > 1.0f) *frac = 1.0f;
}

/* Boxes scaled per axis by float32 ratios (torchvision resize_boxes), clipped to the w x h
 * image, those with a side <= min_box dropped; compacts in place, returns the count. */
static int scale_boxes(mn_box *b /* (N) */, int n, float rx, float ry, int w, int h, float min_box)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        mn_box e = b[i];
        e.x1 *= rx;
        e.x2 *= rx;
        e.y1 *= ry;
        e.y2 *= ry;
        e.x1 = fminf(fmaxf(e.x1, 0.0f), (float)w);
        e.x2 = fminf(fmaxf(e.x2, 0.0f), (float)w);
        e.y1 = fminf(fmaxf(e.y1, 0.0f), (float)h);
        e.y2 = fminf(fmaxf(e.y2, 0.0f), (float)h);
        if (!(e.x2 - e.x1 > min_box) || !(e.y2 - e.y1 > min_box)) continue; /* degenerate (or NaN) */
        b[k++] = e;
    }
    return k;
}

int mn_det_transform(const mn_det_aug *a, const mn_sample *s, mn_rng *rng, float *image_chw /* (3, ph, pw) */, int ph,
                     int pw, mn_box *boxes_out /* (s->n_boxes) */, int *n_out, mn_det_image *info)
{
    const mn_image *im = &s->image;
    if (im->c != 3) return mn_error(MN_EINVAL, "%s: expected an RGB image, got %d channels", s->name, im->c);
    int oh, ow, rc;
    float scale;
    if ((rc = mn_det_resize_shape(a, im->h, im->w, &oh, &ow, &scale))) return rc;
    if (oh > ph || ow > pw)
        return mn_error(MN_ESHAPE, "%s: resized %dx%d does not fit the padded %dx%d batch", s->name, ow, oh, pw, ph);
    bool flip = a->hflip && mn_rng_uniform(rng) < 0.5f;
    int64_t plane = (int64_t)ph * pw;
    memset(image_chw, 0, sizeof(float) * 3 * (size_t)plane);
    int W = im->w;
    for (int y = 0; y < oh; y++) {
        int y0, y1;
        float fy;
        src_coord(y, im->h, oh, &y0, &y1, &fy);
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            float fx;
            src_coord(x, W, ow, &x0, &x1, &fx);
            if (flip) { /* sample the mirrored image: flip first, then resize */
                x0 = W - 1 - x0;
                x1 = W - 1 - x1;
            }
            const uint8_t *r0 = im->data + (int64_t)y0 * W * 3, *r1 = im->data + (int64_t)y1 * W * 3;
            for (int c = 0; c < 3; c++) {
                float top = (float)r0[x0 * 3 + c] * (1.0f - fx) + (float)r0[x1 * 3 + c] * fx;
                float bot = (float)r1[x0 * 3 + c] * (1.0f - fx) + (float)r1[x1 * 3 + c] * fx;
                float v = top * (1.0f - fy) + bot * fy;
                image_chw[c * plane + (int64_t)y * pw + x] = (v / 255.0f - a->mean[c]) / a->std[c];
            }
        }
    }
    int n = 0;
    for (int i = 0; i < s->n_boxes; i++) {
        mn_box b = s->boxes[i];
        if (flip) { /* torchvision reference: x1' = W - x2, x2' = W - x1 */
            float x1 = (float)W - b.x2, x2 = (float)W - b.x1;
            b.x1 = x1;
            b.x2 = x2;
        }
        boxes_out[n++] = b;
    }
    *n_out = scale_boxes(boxes_out, n, (float)ow / (float)W, (float)oh / (float)im->h, ow, oh, a->min_box);
    *info = (mn_det_image){oh, ow, scale, flip, im->h, im->w, 0};
    return 0;
}

/* ---- batches at another size ---- */

static int round_up(int v, int m) { return m > 1 ? (v + m - 1) / m * m : v; }

void mn_det_batch_free(mn_det_batch *b)
{
    if (!b) return;
    free(b->images);
    for (int i = 0; i < 64; i++) free(b->boxes[i]);
    memset(b, 0, sizeof *b);
}

/* Bilinear resize of one float plane src (h, w) with row stride ss into dst (oh, ow), stride ds. */
static void resize_plane(float *dst /* (oh, ds) */, int64_t ds, int oh, int ow, const float *src /* (h, ss) */,
                         int64_t ss, int h, int w)
{
    for (int y = 0; y < oh; y++) {
        int y0, y1;
        float fy;
        src_coord(y, h, oh, &y0, &y1, &fy);
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            float fx;
            src_coord(x, w, ow, &x0, &x1, &fx);
            float top = src[y0 * ss + x0] * (1.0f - fx) + src[y0 * ss + x1] * fx;
            float bot = src[y1 * ss + x0] * (1.0f - fx) + src[y1 * ss + x1] * fx;
            dst[y * ds + x] = top * (1.0f - fy) + bot * fy;
        }
    }
}

int mn_det_batch_resize(mn_det_batch *dst, const mn_det_batch *src, const mn_det_aug *a, int min_size)
{
    return mn_det_batch_resize_pad(dst, src, a, min_size, 0, 0);
}

int mn_det_batch_resized_size(const mn_det_batch *src, const mn_det_aug *a, int min_size, int *pad_h, int *pad_w)
{
    mn_det_aug at = *a;
    at.min_size = min_size;
    int ph = 0, pw = 0;
    for (int i = 0; i < src->n; i++) {
        const mn_det_image *in = &src->info[i];
        int h0 = in->orig_h > 0 ? in->orig_h : (int)lroundf((float)in->h / in->scale);
        int w0 = in->orig_w > 0 ? in->orig_w : (int)lroundf((float)in->w / in->scale);
        int oh, ow, rc = mn_det_resize_shape(&at, h0, w0, &oh, &ow, NULL);
        if (rc) return rc;
        if (oh > ph) ph = oh;
        if (ow > pw) pw = ow;
    }
    *pad_h = round_up(ph, a->size_divisible);
    *pad_w = round_up(pw, a->size_divisible);
    return 0;
}

int mn_det_batch_resize_pad(mn_det_batch *dst, const mn_det_batch *src, const mn_det_aug *a, int min_size, int pad_h,
                            int pad_w)
{
    if (dst == src) return mn_error(MN_EINVAL, "mn_det_batch_resize: source and destination are the same batch");
    if (src->n < 1 || src->n > MN_MAX_BATCH) return mn_error(MN_EINVAL, "mn_det_batch_resize: batch of %d images", src->n);
    mn_det_aug at = *a;
    at.min_size = min_size;
    int oh[MN_MAX_BATCH], ow[MN_MAX_BATCH], ph = 0, pw = 0, rc;
    float sc[MN_MAX_BATCH];
    for (int i = 0; i < src->n; i++) {
        const mn_det_image *in = &src->info[i];
        int h0 = in->orig_h > 0 ? in->orig_h : (int)lroundf((float)in->h / in->scale);
        int w0 = in->orig_w > 0 ? in->orig_w : (int)lroundf((float)in->w / in->scale);
        if ((rc = mn_det_resize_shape(&at, h0, w0, &oh[i], &ow[i], &sc[i]))) return rc;
        if (oh[i] > ph) ph = oh[i];
        if (ow[i] > pw) pw = ow[i];
    }
    ph = round_up(ph, a->size_divisible);
    pw = round_up(pw, a->size_divisible);
    if (pad_h > ph) ph = pad_h;
    if (pad_w > pw) pw = pad_w;
    size_t need = (size_t)src->n * 3 * (size_t)ph * (size_t)pw;
    if (need > dst->cap_images) {
        float *p = realloc(dst->images, sizeof(float) * need);
        if (!p) return mn_error(MN_ENOMEM, "mn_det_batch_resize: cannot allocate a %dx%dx%d batch", src->n, pw, ph);
        dst->images = p;
        dst->cap_images = need;
    }
    memset(dst->images, 0, sizeof(float) * need);
    dst->n = src->n;
    dst->h = ph;
    dst->w = pw;
    for (int i = 0; i < src->n; i++) {
        const mn_det_image *in = &src->info[i];
        for (int c = 0; c < 3; c++)
            resize_plane(dst->images + ((size_t)i * 3 + (size_t)c) * (size_t)ph * (size_t)pw, pw, oh[i], ow[i],
                         src->images + ((size_t)i * 3 + (size_t)c) * (size_t)src->h * (size_t)src->w, src->w, in->h,
                         in->w);
        int nb = src->n_boxes[i];
        if (nb > dst->cap_boxes[i]) {
            mn_box *b = realloc(dst->boxes[i], sizeof(mn_box) * (size_t)nb);
            if (!b) return mn_error(MN_ENOMEM, "mn_det_batch_resize: cannot allocate %d boxes", nb);
            dst->boxes[i] = b;
            dst->cap_boxes[i] = nb;
        }
        if (nb) memcpy(dst->boxes[i], src->boxes[i], sizeof(mn_box) * (size_t)nb);
        dst->n_boxes[i] = scale_boxes(dst->boxes[i], nb, (float)ow[i] / (float)in->w, (float)oh[i] / (float)in->h,
                                      ow[i], oh[i], a->min_box);
        dst->info[i] = (mn_det_image){oh[i], ow[i], sc[i], in->flipped, in->orig_h, in->orig_w, in->position};
        dst->index[i] = src->index[i];
        dst->image_id[i] = src->image_id[i];
    }
    return 0;
}
