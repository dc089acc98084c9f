/* torchvision AnchorGenerator: zero-centred base anchors per level, tiled over each feature map. */
#include <math.h>
#include <string.h>

#include "mn/boxes.h"

int mn_anchor_cell(float *cell /* (A, 4) */, const float *sizes /* (S) */, int n_sizes, const float *ratios /* (R) */,
                   int n_ratios)
{
    if (n_sizes <= 0 || n_ratios <= 0)
        return mn_error(MN_EINVAL, "mn_anchor_cell: %d sizes and %d ratios (need at least one of each)", n_sizes,
                        n_ratios);
    int a = 0;
    for (int r = 0; r < n_ratios; r++) {
        if (!(ratios[r] > 0.0f) || !isfinite(ratios[r]))
            return mn_error(MN_EINVAL, "mn_anchor_cell: aspect ratio %d is %g (must be positive)", r, (double)ratios[r]);
        /* ratio = h / w at constant area: h scales by sqrt(ratio), w by its reciprocal */
        float hr = sqrtf(ratios[r]), wr = 1.0f / hr;
        for (int s = 0; s < n_sizes; s++) {
            if (!(sizes[s] > 0.0f) || !isfinite(sizes[s]))
                return mn_error(MN_EINVAL, "mn_anchor_cell: size %d is %g (must be positive)", s, (double)sizes[s]);
            float ws = wr * sizes[s], hs = hr * sizes[s];
            float *c = cell + 4 * a++;
            /* rintf rounds half to even under the default rounding mode, like torch.round */
            c[0] = rintf(-ws / 2.0f);
            c[1] = rintf(-hs / 2.0f);
            c[2] = rintf(ws / 2.0f);
            c[3] = rintf(hs / 2.0f);
        }
    }
    return a;
}

int mn_anchor_gen_init(mn_anchor_gen *g, int n_levels, const float *const *sizes, const int *n_sizes,
                       const float *const *ratios, const int *n_ratios)
{
    memset(g, 0, sizeof *g);
    if (n_levels <= 0 || n_levels > MN_ANCHOR_MAX_LEVELS)
        return mn_error(MN_EINVAL, "mn_anchor_gen_init: %d levels (1..%d supported)", n_levels, MN_ANCHOR_MAX_LEVELS);
    for (int l = 0; l < n_levels; l++) {
        if (n_sizes[l] <= 0 || n_ratios[l] <= 0 || n_sizes[l] * n_ratios[l] > MN_ANCHOR_MAX_CELL)
            return mn_error(MN_EINVAL, "mn_anchor_gen_init: level %d has %d sizes x %d ratios (1..%d anchors supported)",
                            l, n_sizes[l], n_ratios[l], MN_ANCHOR_MAX_CELL);
        int a = mn_anchor_cell(&g->cell[l][0][0], sizes[l], n_sizes[l], ratios[l], n_ratios[l]);
        if (a < 0) return a; /* the message names the bad size or ratio */
        g->n_cell[l] = a;
    }
    g->n_levels = n_levels;
    return 0;
}

void mn_anchor_gen_fpn(mn_anchor_gen *g)
{
    static const float sizes[5] = {32, 64, 128, 256, 512};
    static const float ratios[3] = {0.5f, 1.0f, 2.0f};
    const float *sz[5], *rt[5];
    int ns[5], nr[5];
    for (int l = 0; l < 5; l++) {
        sz[l] = &sizes[l];
        rt[l] = ratios;
        ns[l] = 1;
        nr[l] = 3;
    }
    int rc = mn_anchor_gen_init(g, 5, sz, ns, rt, nr);
    MN_ASSERT(rc == 0);
}

int64_t mn_anchor_gen_count(const mn_anchor_gen *g, const int *grid_hw /* (L, 2) */)
{
    int64_t total = 0;
    for (int l = 0; l < g->n_levels; l++) total += (int64_t)grid_hw[2 * l] * grid_hw[2 * l + 1] * g->n_cell[l];
    return total;
}

void mn_anchor_grid(float *anchors /* (H * W * A, 4) */, const float *cell /* (A, 4) */, int a, int grid_h,
                    int grid_w, int stride_h, int stride_w)
{
    float *o = anchors;
    for (int y = 0; y < grid_h; y++) {
        float sy = (float)(y * stride_h);
        for (int x = 0; x < grid_w; x++) {
            float sx = (float)(x * stride_w);
            for (int k = 0; k < a; k++, o += 4) {
                o[0] = sx + cell[4 * k];
                o[1] = sy + cell[4 * k + 1];
                o[2] = sx + cell[4 * k + 2];
                o[3] = sy + cell[4 * k + 3];
            }
        }
    }
}

int mn_anchor_gen_run(const mn_anchor_gen *g, float *anchors /* (total, 4) */, int image_h, int image_w,
                      const int *grid_hw /* (L, 2) */)
{
    if (g->n_levels <= 0) return mn_error(MN_EINVAL, "mn_anchor_gen_run: the generator has no levels");
    size_t off = 0;
    for (int l = 0; l < g->n_levels; l++) {
        int gh = grid_hw[2 * l], gw = grid_hw[2 * l + 1];
        if (gh <= 0 || gw <= 0 || gh > image_h || gw > image_w)
            return mn_error(MN_EINVAL, "mn_anchor_gen_run: level %d feature map %dx%d does not fit the %dx%d image", l,
                            gh, gw, image_h, image_w);
        /* torchvision derives the stride from the padded batch size, rounding down */
        mn_anchor_grid(anchors + off, &g->cell[l][0][0], g->n_cell[l], gh, gw, image_h / gh, image_w / gw);
        off += 4 * (size_t)gh * (size_t)gw * (size_t)g->n_cell[l];
    }
    return 0;
}
