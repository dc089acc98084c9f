/* torchvision BoxCoder: regression deltas (dx, dy, dw, dh) between boxes and reference boxes.
 * The arithmetic follows torchvision's float32 operation order (widths without +1, centres
 * x1 + 0.5 w, dw clamped before exp) so results agree to rounding. */
#include <math.h>
#include <stddef.h>

#include "mn/boxes.h"

mn_box_coder mn_box_coder_make(float wx, float wy, float ww, float wh)
{
    /* torchvision's bbox_xform_clip: no box grows more than 1000/16 times its reference */
    mn_box_coder c = {wx, wy, ww, wh, (float)log(1000.0 / 16.0)};
    return c;
}

void mn_box_encode(const mn_box_coder *c, float *deltas /* (N, 4) */, const float *gt /* (N, 4) */,
                   const float *ref /* (N, 4) */, int n)
{
    for (int i = 0; i < n; i++) {
        const float *r = ref + 4 * (size_t)i, *g = gt + 4 * (size_t)i;
        float rw = r[2] - r[0], rh = r[3] - r[1];
        float rx = r[0] + 0.5f * rw, ry = r[1] + 0.5f * rh;
        float gw = g[2] - g[0], gh = g[3] - g[1];
        float gx = g[0] + 0.5f * gw, gy = g[1] + 0.5f * gh;
        float *d = deltas + 4 * (size_t)i;
        d[0] = c->wx * (gx - rx) / rw;
        d[1] = c->wy * (gy - ry) / rh;
        d[2] = c->ww * logf(gw / rw);
        d[3] = c->wh * logf(gh / rh);
    }
}

void mn_box_decode(const mn_box_coder *c, float *boxes /* (N, K, 4) */, const float *deltas /* (N, K, 4) */,
                   const float *ref /* (N, 4) */, int n, int k)
{
    for (int i = 0; i < n; i++) {
        const float *r = ref + 4 * (size_t)i;
        float w = r[2] - r[0], h = r[3] - r[1];
        float cx = r[0] + 0.5f * w, cy = r[1] + 0.5f * h;
        for (int j = 0; j < k; j++) {
            size_t o = 4 * ((size_t)i * (size_t)k + (size_t)j);
            const float *d = deltas + o;
            float dx = d[0] / c->wx, dy = d[1] / c->wy;
            float dw = d[2] / c->ww, dh = d[3] / c->wh;
            /* comparisons, not fminf, so a NaN delta stays NaN as under torch.clamp */
            if (dw > c->clip) dw = c->clip;
            if (dh > c->clip) dh = c->clip;
            float px = dx * w + cx, py = dy * h + cy;
            float hw = 0.5f * (expf(dw) * w), hh = 0.5f * (expf(dh) * h);
            float *b = boxes + o;
            b[0] = px - hw;
            b[1] = py - hh;
            b[2] = px + hw;
            b[3] = py + hh;
        }
    }
}
