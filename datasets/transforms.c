/* Segmentation augmentation as one pass per output pixel: rescale, crop (with ignore padding),
 * flip and normalisation are fused, so no intermediate image is materialised. */
#include <math.h>
#include <string.h>

#include "mn/dataset.h"

void mn_seg_aug_default(mn_seg_aug *a, int crop_h, int crop_w, bool train)
{
    *a = (mn_seg_aug){
        .crop_h = crop_h,
        .crop_w = crop_w,
        .scale_min = train ? 0.5f : 1.0f,
        .scale_max = train ? 2.0f : 1.0f,
        .hflip = train,
        .train = train,
        .mean = {0.485f, 0.456f, 0.406f}, /* ImageNet statistics, as the torchvision weights expect */
        .std = {0.229f, 0.224f, 0.225f},
    };
}

/* Bilinear sample (align_corners = False) of channel c at source position (sy, sx). */
static float sample(const mn_image *im, float sy, float sx, int c)
{
    if (sy < 0) sy = 0;
    if (sx < 0) sx = 0;
    int y0 = (int)sy, x0 = (int)sx;
    if (y0 > im->h - 1) y0 = im->h - 1;
    if (x0 > im->w - 1) x0 = im->w - 1;
    int y1 = y0 + (y0 < im->h - 1), x1 = x0 + (x0 < im->w - 1);
    float fy = sy - (float)y0, fx = sx - (float)x0;
    if (fy > 1) fy = 1;
    if (fx > 1) fx = 1;
    const uint8_t *d = im->data;
    int C = im->c;
    float a = d[((int64_t)y0 * im->w + x0) * C + c], b = d[((int64_t)y0 * im->w + x1) * C + c];
    float e = d[((int64_t)y1 * im->w + x0) * C + c], f = d[((int64_t)y1 * im->w + x1) * C + c];
    return (a * (1 - fx) + b * fx) * (1 - fy) + (e * (1 - fx) + f * fx) * fy;
}

int mn_seg_transform(const mn_seg_aug *a, const mn_sample *s, mn_rng *rng, float *image_chw, int32_t *label_hw)
{
    const mn_image *im = &s->image, *lb = &s->label;
    if (im->c != 3) return mn_error(MN_EINVAL, "%s: expected an RGB image, got %d channels", s->name, im->c);
    if (lb->data && (lb->w != im->w || lb->h != im->h))
        return mn_error(MN_ESHAPE, "%s: label %dx%d does not match image %dx%d", s->name, lb->w, lb->h, im->w, im->h);
    int H = a->crop_h, W = a->crop_w;
    /* scaled image size and where the crop starts in it */
    float sy, sx;
    int oy = 0, ox = 0;
    bool flip = false;
    if (a->train) {
        float sc = mn_rng_range(rng, a->scale_min, a->scale_max);
        if (a->scale_max <= a->scale_min) sc = a->scale_min;
        sy = sx = sc;
        int sh = (int)lroundf((float)im->h * sc), sw = (int)lroundf((float)im->w * sc);
        if (sh > H) oy = mn_rng_int(rng, 0, sh - H);
        if (sw > W) ox = mn_rng_int(rng, 0, sw - W);
        flip = a->hflip && mn_rng_uniform(rng) < 0.5f;
        sy = (float)sh / (float)im->h;
        sx = (float)sw / (float)im->w;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int cy = y + oy, cx = (flip ? W - 1 - x : x) + ox; /* pixel in the scaled image */
                int64_t o = (int64_t)y * W + x;
                if (cy >= sh || cx >= sw) { /* padding: mean colour (0 after normalising), ignored */
                    for (int c = 0; c < 3; c++) image_chw[c * (int64_t)H * W + o] = 0.0f;
                    if (label_hw) label_hw[o] = MN_IGNORE_LABEL;
                    continue;
                }
                float py = ((float)cy + 0.5f) / sy - 0.5f, px = ((float)cx + 0.5f) / sx - 0.5f;
                for (int c = 0; c < 3; c++)
                    image_chw[c * (int64_t)H * W + o] = (sample(im, py, px, c) / 255.0f - a->mean[c]) / a->std[c];
                if (!label_hw) continue;
                if (lb->data) {
                    int ly = (int)((float)cy / sy), lx = (int)((float)cx / sx);
                    if (ly > im->h - 1) ly = im->h - 1;
                    if (lx > im->w - 1) lx = im->w - 1;
                    label_hw[o] = lb->data[(int64_t)ly * lb->w + lx];
                } else {
                    label_hw[o] = MN_IGNORE_LABEL;
                }
            }
        return 0;
    }
    /* evaluation: the whole image resized to the crop size */
    sy = (float)H / (float)im->h;
    sx = (float)W / (float)im->w;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int64_t o = (int64_t)y * W + x;
            float py = ((float)y + 0.5f) / sy - 0.5f, px = ((float)x + 0.5f) / sx - 0.5f;
            for (int c = 0; c < 3; c++)
                image_chw[c * (int64_t)H * W + o] = (sample(im, py, px, c) / 255.0f - a->mean[c]) / a->std[c];
            if (label_hw) {
                int ly = (int)((int64_t)y * im->h / H), lx = (int)((int64_t)x * im->w / W);
                label_hw[o] = lb->data ? lb->data[(int64_t)ly * lb->w + lx] : MN_IGNORE_LABEL;
            }
        }
    return 0;
}
