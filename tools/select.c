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
    if (!strcmp(a, "--width")) {
        if (!(v = mn_arg_value(cmd, argc, argv, i)) || !mn_arg_float(cmd, a, v, 0.01, 1.0, &c->width)) return -1;
        return 1;
    }
    if (!strcmp(a, "--size")) {
        if (!(v = mn_arg_value(cmd, argc, argv, i))) return -1;
        int n = sscanf(v, "%dx%d", &c->h, &c->w);
        if (n == 1) c->w = c->h;
        if (n < 1 || c->h < 32 || c->w < 32 || c->h % 32 || c->w % 32 || c->h > 8192 || c->w > 8192) {
            fprintf(stderr, "mutualnet %s: --size expects S or HxW in multiples of 32, not \"%s\"\n", cmd, v);
            return -1;
        }
        return 1;
    }
    return 0;
}

int mn_choice_apply(const char *cmd, const mn_choice *c, mn_seg_model *m, float *width, int *h, int *w, int64_t *macs)
{
    if (c->budget > 0) {
        if (c->width > 0 || c->h > 0) {
            fprintf(stderr, "mutualnet %s: give either --budget or --width/--size, not both\n", cmd);
            return -1;
        }
        if (m->table.n == 0) {
            fprintf(stderr, "mutualnet %s: this checkpoint has no query table; run mutualnet calibrate first\n", cmd);
            return -1;
        }
        int k = mn_query_select(&m->table, c->budget);
        if (k < 0) {
            double least = (double)m->table.e[0].macs;
            for (int i = 1; i < m->table.n; i++)
                if ((double)m->table.e[i].macs < least) least = (double)m->table.e[i].macs;
            fprintf(stderr, "mutualnet %s: no configuration fits %.3g MACs; the cheapest needs %.3g\n", cmd, c->budget, least);
            return -1;
        }
        *width = m->table.e[k].width;
        *h = m->table.e[k].h;
        *w = m->table.e[k].w;
    } else {
        float lo = m->cfg.mutual.mode == MN_MODE_INDEPENDENT ? m->cfg.mutual.width : m->cfg.mutual.width_min;
        float hi = m->cfg.mutual.mode == MN_MODE_INDEPENDENT ? m->cfg.mutual.width : m->cfg.mutual.width_max;
        *width = c->width > 0 ? (float)c->width : hi;
        *h = c->h > 0 ? c->h : m->cfg.data.eval_size[0];
        *w = c->w > 0 ? c->w : m->cfg.data.eval_size[1];
        if (*width < lo - 1e-4f || *width > hi + 1e-4f)
            fprintf(stderr, "mutualnet %s: warning: width %.3g is outside the trained range [%.3g, %.3g]\n", cmd,
                    (double)*width, (double)lo, (double)hi);
    }
    mn_seg_model_select(m, *width, *h, *w);
    if (mn_query_find(&m->table, *width, *h, *w) < 0 && m->table.n > 0)
        fprintf(stderr, "mutualnet %s: note: width %.3g at %dx%d was not calibrated; using the training BN statistics\n",
                cmd, (double)*width, *h, *w);
    if (mn_seg_flops(m->net, *width, *h, *w, macs, NULL)) {
        fprintf(stderr, "mutualnet %s: %s\n", cmd, mn_last_error());
        return -1;
    }
    fprintf(stderr, "mutualnet %s: width %.2f at %dx%d, %.3f GMACs per image\n", cmd, (double)*width, *h, *w,
            (double)*macs / 1e9);
    return 0;
}
