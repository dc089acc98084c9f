#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "select.h"

int mn_choice_arg(const char *cmd, mn_choice *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--budget")) {
        if (!(v = mn_arg_value(cmd, argc, argv, i)) || !mn_arg_count(cmd, a, v, &c->budget)) return -1;
        return 1;
    }
    if (!strcmp(a, "--budget-ms")) {
        if (!(v = mn_arg_value(cmd, argc, argv, i)) || !mn_arg_float(cmd, a, v, 1e-3, 1e7, &c->budget_ms)) return -1;
        return 1;
    }
    if (!strcmp(a, "--width")) {
        if (!(v = mn_arg_value(cmd, argc, argv, i)) || !mn_arg_float(cmd, a, v, 0.01, 1.0, &c->width)) return -1;
        return 1;
    }
    if (!strcmp(a, "--size")) {
        if (!(v = mn_arg_value(cmd, argc, argv, i))) return -1;
        char tail = 0;
        int n = sscanf(v, "%dx%d%c", &c->h, &c->w, &tail);
        c->one_side = n == 1;
        if (n == 1) c->w = c->h;
        if (n < 1 || n > 2 || c->h < 32 || c->w < 32 || c->h > 8192 || c->w > 8192) {
            fprintf(stderr, "mutualnet %s: --size expects S or HxW (32 to 8192), not \"%s\"\n", cmd, v);
            return -1;
        }
        return 1;
    }
    return 0;
}

int mn_choice_resolve(const char *cmd, const mn_choice *c, const mn_choice_target *t, float *width, int *h, int *w,
                      int64_t *macs)
{
    const mn_query_table *q = t->table;
    if ((c->budget > 0) + (c->budget_ms > 0) + (c->width > 0 || c->h > 0) > 1) {
        fprintf(stderr, "mutualnet %s: give one of --budget, --budget-ms or --width/--size\n", cmd);
        return -2;
    }
    if ((c->budget > 0 || c->budget_ms > 0) && q->n == 0) {
        fprintf(stderr, "mutualnet %s: this checkpoint has no query table; run mutualnet calibrate%s first\n", cmd,
                c->budget_ms > 0 ? " --latency" : "");
        return -1;
    }
    int k = -1;
    if (c->budget_ms > 0) {
        if (mn_query_select_ms(q, c->budget_ms, &k)) {
            fprintf(stderr, "mutualnet %s: %s%s\n", cmd, mn_last_error(),
                    mn_query_has_ms(q) ? " (give a larger --budget-ms)" : "");
            return -1;
        }
        if (q->timing.threads > 0 && q->timing.threads != omp_get_max_threads())
            fprintf(stderr, "mutualnet %s: note: the table was timed with %d OpenMP thread%s, this run has %d\n", cmd,
                    q->timing.threads, q->timing.threads == 1 ? "" : "s", omp_get_max_threads());
    } else if (c->budget > 0) {
        k = mn_query_select(q, c->budget);
        if (k < 0) {
            double least = (double)q->e[0].macs;
            for (int i = 1; i < q->n; i++)
                if ((double)q->e[i].macs < least) least = (double)q->e[i].macs;
            fprintf(stderr, "mutualnet %s: no configuration fits %.3gG MACs; the cheapest needs %.3gG (give a larger --budget)\n",
                    cmd, c->budget / 1e9, least / 1e9);
            return -1;
        }
    }
    if (k >= 0) {
        *width = q->e[k].width;
        *h = q->e[k].h;
        *w = q->e[k].w;
    } else {
        *width = c->width > 0 ? (float)c->width : t->width_hi;
        *h = c->h > 0 ? c->h : t->def_h;
        *w = c->w > 0 && !t->short_side ? c->w : t->def_w;
        /* weights never trained at that width give no meaningful answer (and a compact checkpoint
         * does not even hold its channels): refused, not warned about */
        if (*width < t->width_lo - 1e-4f || *width > t->width_hi + 1e-4f) {
            fprintf(stderr, "mutualnet %s: width %.3g is outside the trained range [%.3g, %.3g]%s\n", cmd,
                    (double)*width, (double)t->width_lo, (double)t->width_hi,
                    t->width_lo == t->width_hi ? " (this checkpoint holds one width)" : "");
            return -1;
        }
    }
    char where[160];
    t->describe(t->model, *width, *h, *w, where, sizeof where);
    if (t->select(t->model, *width, *h, *w)) {
        fprintf(stderr, "mutualnet %s: %s\n", cmd, mn_last_error());
        return -1;
    }
    int at = mn_query_find(q, *width, *h, *w);
    if (at < 0 && q->n > 0)
        fprintf(stderr, "mutualnet %s: note: width %.3g %s was not calibrated; using the training BN statistics\n", cmd,
                (double)*width, where);
    if (t->flops(t->model, *width, *h, *w, macs)) {
        fprintf(stderr, "mutualnet %s: %s\n", cmd, mn_last_error());
        return -1;
    }
    char ms[64] = "";
    if (at >= 0 && q->e[at].ms > 0 && q->timing.threads > 0)
        snprintf(ms, sizeof ms, ", %.3g ms measured (%d thread%s)", q->e[at].ms, q->timing.threads,
                 q->timing.threads == 1 ? "" : "s");
    else if (at >= 0 && q->e[at].ms > 0)
        snprintf(ms, sizeof ms, ", %.3g ms measured", q->e[at].ms);
    fprintf(stderr, "mutualnet %s: width %.2f %s, %.3f GMACs per image%s\n", cmd, (double)*width, where,
            (double)*macs / 1e9, ms);
    return 0;
}

/* ---- segmentation: sizes are the network input h x w ---- */

static int seg_select(void *m, float width, int h, int w) { return mn_seg_model_select(m, width, h, w); }

static int seg_flops(void *m, float width, int h, int w, int64_t *macs)
{
    return mn_seg_flops(((mn_seg_model *)m)->net, width, h, w, macs, NULL);
}

static void seg_describe(void *m, float width, int h, int w, char *out, int size)
{
    (void)m, (void)width;
    snprintf(out, (size_t)size, "at %dx%d", h, w);
}

/* A model run on whole images (segmentation, classification): the trained width range, and
 * data.eval_size when no size is given. */
static mn_choice_target image_target(const mn_config *cfg, const mn_query_table *table, void *model,
                                     int (*select)(void *, float, int, int),
                                     int (*flops)(void *, float, int, int, int64_t *))
{
    bool one = cfg->mutual.mode == MN_MODE_INDEPENDENT;
    return (mn_choice_target){
        .table = table,
        .width_lo = one ? cfg->mutual.width : cfg->mutual.width_min,
        .width_hi = one ? cfg->mutual.width : cfg->mutual.width_max,
        .def_h = cfg->data.eval_size[0],
        .def_w = cfg->data.eval_size[1],
        .model = model,
        .select = select,
        .flops = flops,
        .describe = seg_describe,
    };
}

int mn_choice_apply(const char *cmd, const mn_choice *c, mn_seg_model *m, float *width, int *h, int *w, int64_t *macs)
{
    mn_choice_target t = image_target(&m->cfg, &m->table, m, seg_select, seg_flops);
    return mn_choice_resolve(cmd, c, &t, width, h, w, macs);
}

/* ---- detection: sizes are (short side, max side) ---- */

static int det_select(void *m, float width, int h, int w)
{
    (void)w;
    return mn_det_model_select(m, width, h);
}

static int det_flops(void *m, float width, int h, int w, int64_t *macs)
{
    (void)w;
    return mn_det_model_flops(m, width, h, macs);
}

static void det_describe(void *m, float width, int h, int w, char *out, int size)
{
    (void)width;
    int ih = 0, iw = 0;
    mn_det_model_input_size(m, h, &ih, &iw);
    snprintf(out, (size_t)size, "at short side %d (max %d; typical input %dx%d)", h, w, ih, iw);
}

int mn_choice_apply_det(const char *cmd, const mn_choice *c, mn_det_model *m, float *width, int *short_side,
                        int64_t *macs)
{
    if (c->h > 0 && !c->one_side) {
        fprintf(stderr, "mutualnet %s: --size takes one short side S for a detector (the long side is capped at "
                        "det.max_side %d), not HxW\n", cmd, m->cfg.det.max_side);
        return -2;
    }
    const mn_config *cfg = &m->cfg;
    mn_choice_target t = {
        .table = &m->table,
        .width_lo = cfg->mutual.mode == MN_MODE_INDEPENDENT ? cfg->mutual.width : cfg->mutual.width_min,
        .width_hi = cfg->mutual.mode == MN_MODE_INDEPENDENT ? cfg->mutual.width : cfg->mutual.width_max,
        .def_h = cfg->det.short_side,
        .def_w = cfg->det.max_side,
        .short_side = true,
        .model = m,
        .select = det_select,
        .flops = det_flops,
        .describe = det_describe,
    };
    int max_side;
    return mn_choice_resolve(cmd, c, &t, width, short_side, &max_side, macs);
}

/* ---- classification: sizes are the network input h x w, as for segmentation ---- */

static int cls_select(void *m, float width, int h, int w) { return mn_cls_model_select(m, width, h, w); }

static int cls_flops(void *m, float width, int h, int w, int64_t *macs) { return mn_cls_model_flops(m, width, h, w, macs); }

int mn_choice_apply_cls(const char *cmd, const mn_choice *c, mn_cls_model *m, float *width, int *h, int *w,
                        int64_t *macs)
{
    mn_choice_target t = image_target(&m->cfg, &m->table, m, cls_select, cls_flops);
    return mn_choice_resolve(cmd, c, &t, width, h, w, macs);
}
