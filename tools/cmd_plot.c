/* mutualnet plot: loss curves from a run's metrics log and the accuracy-vs-FLOPs chart of a
 * calibrated checkpoint, to PNG and SVG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "commands.h"
#include "mn/seg_model.h"
#include "mn/viz.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet plot --run DIR [--checkpoint FILE] [--budget MACS]...\n\n"
               "Writes DIR/loss.png and DIR/loss.svg (training loss of the full network and of the narrowest\n"
               "sub-network per logged iteration, from DIR/metrics.jsonl) and, with a calibrated --checkpoint,\n"
               "DIR/accuracy_flops.png and .svg: every (width, size) of the query table by GMACs and score, the\n"
               "frontier highlighted, and the configuration each --budget selects marked.\n");
}

static int save_both(const mn_chart *c, const char *dir, const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    int rc = mn_chart_save_image(c, path, 960, 600);
    if (!rc) {
        snprintf(path, sizeof path, "%s/%s.svg", dir, name);
        rc = mn_chart_save_svg(c, path, 960, 600);
    }
    if (!rc) fprintf(stderr, "mutualnet plot: wrote %s/%s.png and .svg\n", dir, name);
    return rc;
}

static int plot_losses(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return mn_error(MN_EIO, "%s: cannot open the metrics log", path);
    int cap = 1024, n = 0, rc = 0;
    double *it = malloc(sizeof(double) * (size_t)cap), *full = malloc(sizeof(double) * (size_t)cap),
           *narrow = malloc(sizeof(double) * (size_t)cap);
    char line[8192];
    int lineno = 0;
    while (!rc && it && full && narrow && fgets(line, sizeof line, f)) {
        lineno++;
        cJSON *o = cJSON_Parse(line);
        cJSON *i = cJSON_GetObjectItemCaseSensitive(o, "iter"), *l = cJSON_GetObjectItemCaseSensitive(o, "loss"),
              *sub = cJSON_GetObjectItemCaseSensitive(o, "subnets");
        if (!o) rc = mn_error(MN_EFORMAT, "%s:%d: not a JSON line", path, lineno);
        else if (cJSON_IsNumber(i) && cJSON_IsNumber(l)) { /* training lines; validation lines lack "loss" */
            if (n == cap) {
                cap *= 2;
                it = realloc(it, sizeof(double) * (size_t)cap);
                full = realloc(full, sizeof(double) * (size_t)cap);
                narrow = realloc(narrow, sizeof(double) * (size_t)cap);
                if (!it || !full || !narrow) rc = mn_error(MN_ENOMEM, "out of memory");
            }
            if (!rc) {
                it[n] = i->valuedouble;
                full[n] = l->valuedouble;
                narrow[n] = full[n];
                int k = cJSON_GetArraySize(sub);
                cJSON *last = k > 0 ? cJSON_GetArrayItem(sub, k - 1) : NULL;
                cJSON *ll = cJSON_GetObjectItemCaseSensitive(last, "loss");
                if (cJSON_IsNumber(ll)) narrow[n] = ll->valuedouble;
                n++;
            }
        }
        cJSON_Delete(o);
    }
    fclose(f);
    if (!rc && n == 0) rc = mn_error(MN_EFORMAT, "%s: no training lines", path);
    if (!rc) {
        mn_chart *c = mn_chart_new("Training loss", "iteration", "loss");
        if (!c || mn_chart_add_series(c, "full width, full size (ground truth)", it, full, n, MN_CHART_LINE) < 0 ||
            mn_chart_add_series(c, "narrowest sub-network (ground truth + distillation)", it, narrow, n, MN_CHART_LINE) < 0)
            rc = mn_last_error_code();
        if (!rc) rc = save_both(c, dir, "loss");
        mn_chart_free(c);
    }
    free(it);
    free(full);
    free(narrow);
    return rc;
}

static int plot_table(const char *dir, const char *ckpt, const double *budgets, int n_budgets)
{
    mn_seg_model m;
    int rc = mn_seg_model_open(&m, ckpt);
    if (rc) return rc;
    const mn_query_table *q = &m.table;
    if (q->n == 0) {
        mn_seg_model_free(&m);
        return mn_error(MN_EINVAL, "%s: no query table (run mutualnet calibrate first)", ckpt);
    }
    double *x = malloc(sizeof(double) * (size_t)q->n), *y = malloc(sizeof(double) * (size_t)q->n);
    double *fx = malloc(sizeof(double) * (size_t)q->n), *fy = malloc(sizeof(double) * (size_t)q->n);
    int nf = 0;
    mn_chart *c = NULL;
    if (!x || !y || !fx || !fy) rc = mn_error(MN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < q->n; i++) {
        x[i] = (double)q->e[i].macs / 1e9;
        y[i] = 100 * q->e[i].score;
    }
    /* the frontier in increasing cost, as a line */
    for (int i = 0; !rc && i < q->n; i++)
        if (q->e[i].frontier) {
            int j = nf++;
            while (j > 0 && fx[j - 1] > x[i]) {
                fx[j] = fx[j - 1];
                fy[j] = fy[j - 1];
                j--;
            }
            fx[j] = x[i];
            fy[j] = y[i];
        }
    if (!rc) {
        char ylabel[32];
        snprintf(ylabel, sizeof ylabel, "%s (%%)", q->metric);
        c = mn_chart_new("Accuracy vs cost: one set of weights, every (width, size)", "GMACs per image", ylabel);
        if (!c) rc = mn_last_error_code();
    }
    if (!rc) mn_chart_set_log_x(c, true);
    if (!rc && mn_chart_add_series(c, "calibrated configurations", x, y, q->n, MN_CHART_MARKERS) < 0) rc = mn_last_error_code();
    if (!rc && mn_chart_add_series(c, "query-table frontier", fx, fy, nf, MN_CHART_LINE | MN_CHART_MARKERS | MN_CHART_FRONTIER) < 0)
        rc = mn_last_error_code();
    for (int b = 0; !rc && b < n_budgets; b++) {
        int k = mn_query_select(q, budgets[b]);
        if (k < 0) continue;
        char label[96];
        snprintf(label, sizeof label, "%.2fG budget: w %.2f %dx%d", budgets[b] / 1e9, (double)q->e[k].width, q->e[k].h,
                 q->e[k].w);
        rc = mn_chart_mark(c, x[k], y[k], label);
    }
    if (!rc) rc = save_both(c, dir, "accuracy_flops");
    mn_chart_free(c);
    free(x);
    free(y);
    free(fx);
    free(fy);
    mn_seg_model_free(&m);
    return rc;
}

int mn_cmd_plot(int argc, char **argv)
{
    const char *run = NULL, *ckpt = NULL, *v;
    double budgets[8];
    int n_budgets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--run")) {
            if (!(run = mn_arg_value("plot", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("plot", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--budget") && n_budgets < 8) {
            if (!(v = mn_arg_value("plot", argc, argv, &i)) || !mn_arg_count("plot", a, v, &budgets[n_budgets++]))
                return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet plot: unknown option %s (see mutualnet plot --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!run) {
        fprintf(stderr, "mutualnet plot: --run DIR is required\n");
        return MN_EXIT_USAGE;
    }
    int rc = plot_losses(run);
    if (!rc && ckpt) rc = plot_table(run, ckpt, budgets, n_budgets);
    if (rc) {
        fprintf(stderr, "mutualnet plot: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    return MN_EXIT_OK;
}
