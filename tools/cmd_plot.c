/* mutualnet plot: loss curves from a run's metrics log and the accuracy-vs-FLOPs (or -vs-ms)
 * chart of a calibrated checkpoint, to PNG and SVG. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "commands.h"
#include "mn/model.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/seg_model.h"
#include "mn/viz.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet plot --run DIR [--checkpoint FILE [--x macs|ms]] [--budget MACS... | --budget-ms T...]\n"
               "       mutualnet plot --compare PREFIX LABEL=CKPT[,CKPT...]...\n\n"
               "Writes DIR/loss.png and DIR/loss.svg (training loss of the full network and of the narrowest\n"
               "sub-network per logged iteration, from DIR/metrics.jsonl), for a detection run also\n"
               "DIR/loss_parts.png and .svg (the full network's RPN objectness, RPN box, classification and box\n"
               "losses), and, with a calibrated --checkpoint, DIR/accuracy_flops.png and .svg: every\n"
               "(width, size) of the query table by GMACs and score (mIoU or AP), the frontier highlighted, and\n"
               "the configuration each --budget selects marked. --x ms (or --budget-ms) writes\n"
               "DIR/accuracy_ms.png and .svg instead: score against the milliseconds that calibrate --latency\n"
               "measured, the frontier by latency, each --budget-ms marked, the thread count and machine of the\n"
               "timing in the axis label (a table without timings is refused).\n\n"
               "--compare writes PREFIX.png and PREFIX.svg: one series per LABEL (e.g. a training mode), each\n"
               "point one (width, size) of the calibrated checkpoints' query tables with the score averaged\n"
               "over the checkpoints listed (e.g. seeds) that have it, joined along the series' frontier.\n");
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
           *narrow = malloc(sizeof(double) * (size_t)cap), *parts[4] = {NULL, NULL, NULL, NULL};
    static const char *const part_keys[4] = {"rpn_cls", "rpn_box", "cls", "box"};
    int n_parts = 0; /* detection lines carry the full network's four loss parts */
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
                for (int p = 0; p < 4; p++)
                    if (parts[p] && !(parts[p] = realloc(parts[p], sizeof(double) * (size_t)cap))) rc = MN_ENOMEM;
                if (!it || !full || !narrow || rc) rc = mn_error(MN_ENOMEM, "out of memory");
            }
            bool has_parts = true;
            for (int p = 0; p < 4; p++) has_parts &= cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, part_keys[p]));
            if (!rc && has_parts && n == n_parts) { /* parts only while every line so far had them */
                for (int p = 0; p < 4 && !rc; p++) {
                    if (!parts[p] && !(parts[p] = malloc(sizeof(double) * (size_t)cap)))
                        rc = mn_error(MN_ENOMEM, "out of memory");
                    else
                        parts[p][n] = cJSON_GetObjectItemCaseSensitive(o, part_keys[p])->valuedouble;
                }
                n_parts += !rc;
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
    if (!rc && n_parts > 0) {
        static const char *const part_names[4] = {"RPN objectness", "RPN box regression", "RoI classification",
                                                  "RoI box regression"};
        mn_chart *c = mn_chart_new("Detection losses of the full network", "iteration", "loss");
        for (int p = 0; p < 4 && c && !rc; p++)
            if (mn_chart_add_series(c, part_names[p], it, parts[p], n_parts, MN_CHART_LINE) < 0) rc = mn_last_error_code();
        if (!c) rc = mn_last_error_code();
        if (!rc) rc = save_both(c, dir, "loss_parts");
        mn_chart_free(c);
    }
    free(it);
    free(full);
    free(narrow);
    for (int p = 0; p < 4; p++) free(parts[p]);
    return rc;
}

/* The query table of a checkpoint of any task (q->n == 0 when uncalibrated). */
static int open_table(const char *ckpt, mn_query_table *q)
{
    mn_model m;
    int rc = mn_model_open(&m, ckpt);
    if (rc) return rc;
    mn_query_table *own = m.task == MN_TASK_DETECTION        ? &m.det.table
                          : m.task == MN_TASK_CLASSIFICATION ? &m.cls.table
                                                             : &m.seg.table;
    *q = *own; /* the table changes hands */
    memset(own, 0, sizeof *own);
    mn_model_free(&m);
    return 0;
}

/* What the table chart puts along x: GMACs (every entry, the table's frontier) or measured ms
 * (the timed entries, the frontier by ms), and the budgets it marks in that unit. */
typedef struct table_axis {
    bool ms;
    const double *budgets;   /* MACs or ms */
    int n_budgets;
} table_axis;

/* The configuration budget b selects and its label, or -1 when none fits. */
static int budget_mark(const mn_query_table *q, const table_axis *ax, double b, char *label, size_t n)
{
    int k = -1;
    if (ax->ms && mn_query_select_ms(q, b, &k)) return -1;
    if (!ax->ms) k = mn_query_select(q, b);
    if (k < 0) return -1;
    char what[32];
    if (ax->ms) snprintf(what, sizeof what, "%.3g ms", b);
    else snprintf(what, sizeof what, "%.2fG", b / 1e9);
    if (!strcmp(q->metric, "AP")) /* detection entries are (short side, max side) */
        snprintf(label, n, "%s budget: w %.2f short side %d", what, (double)q->e[k].width, q->e[k].h);
    else
        snprintf(label, n, "%s budget: w %.2f %dx%d", what, (double)q->e[k].width, q->e[k].h, q->e[k].w);
    return k;
}

static int plot_table(const char *dir, const char *ckpt, const table_axis *ax)
{
    mn_query_table table;
    int rc = open_table(ckpt, &table);
    if (rc) return rc;
    const mn_query_table *q = &table;
    if (q->n == 0) {
        mn_query_free(&table);
        return mn_error(MN_EINVAL, "%s: no query table (run mutualnet calibrate first)", ckpt);
    }
    if (ax->ms && !mn_query_has_ms(q)) {
        mn_query_free(&table);
        return mn_error(MN_EINVAL, "%s: the query table has no latencies to plot (time it on the machine that will run "
                                   "the model: mutualnet calibrate --latency-only --checkpoint %s)", ckpt, ckpt);
    }
    /* x, y of every entry; px, py the plotted ones; fx, fy the frontier in increasing cost */
    double *x = malloc(sizeof(double) * 6 * (size_t)q->n);
    double *y = x ? x + q->n : NULL, *px = x ? x + 2 * q->n : NULL, *py = x ? x + 3 * q->n : NULL;
    double *fx = x ? x + 4 * q->n : NULL, *fy = x ? x + 5 * q->n : NULL;
    int np = 0, nf = 0;
    mn_chart *c = NULL;
    if (!x) rc = mn_error(MN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < q->n; i++) {
        x[i] = ax->ms ? q->e[i].ms : (double)q->e[i].macs / 1e9;
        y[i] = 100 * q->e[i].score;
        if (ax->ms && !(q->e[i].ms > 0)) continue; /* an entry added after timing */
        px[np] = x[i];
        py[np++] = y[i];
        if (!(ax->ms ? mn_query_ms_frontier(q, i) : q->e[i].frontier)) continue;
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
        char ylabel[48], xlabel[160];
        snprintf(ylabel, sizeof ylabel, "%.15s (%%)", q->metric);
        if (ax->ms) /* the numbers hold for that machine and thread count only: say which */
            snprintf(xlabel, sizeof xlabel, "ms per image (batch 1, %d thread%s%s%.96s)", q->timing.threads,
                     q->timing.threads == 1 ? "" : "s", q->timing.machine[0] ? ", " : "", q->timing.machine);
        else
            snprintf(xlabel, sizeof xlabel, "GMACs per image");
        c = mn_chart_new(ax->ms ? "Accuracy vs latency: one set of weights, every (width, size)"
                                : "Accuracy vs cost: one set of weights, every (width, size)",
                         xlabel, ylabel);
        if (!c) rc = mn_last_error_code();
    }
    if (!rc) mn_chart_set_log_x(c, true);
    if (!rc && mn_chart_add_series(c, ax->ms ? "timed configurations" : "calibrated configurations", px, py, np,
                                   MN_CHART_MARKERS) < 0)
        rc = mn_last_error_code();
    if (!rc && mn_chart_add_series(c, ax->ms ? "frontier by latency" : "query-table frontier", fx, fy, nf,
                                   MN_CHART_LINE | MN_CHART_MARKERS | MN_CHART_FRONTIER) < 0)
        rc = mn_last_error_code();
    for (int b = 0; !rc && b < ax->n_budgets; b++) {
        char label[96];
        int k = budget_mark(q, ax, ax->budgets[b], label, sizeof label);
        if (k >= 0) rc = mn_chart_mark(c, x[k], y[k], label);
    }
    if (!rc) rc = save_both(c, dir, ax->ms ? "accuracy_ms" : "accuracy_flops");
    mn_chart_free(c);
    free(x);
    mn_query_free(&table);
    return rc;
}

/* One --compare series: the mean score of each (width, h, w) over the tables that have it. */
typedef struct {
    float width;
    int h, w;
    double macs, sum;
    int n;
} cmp_point;

static int add_tables(const char *list, cmp_point **pts, int *n, int *cap, char *metric, size_t metric_len)
{
    char buf[4096];
    if (strlen(list) >= sizeof buf) return mn_error(MN_EINVAL, "--compare: checkpoint list too long");
    strcpy(buf, list);
    int rc = 0;
    for (char *save = NULL, *ck = strtok_r(buf, ",", &save); !rc && ck; ck = strtok_r(NULL, ",", &save)) {
        mn_query_table q;
        if ((rc = open_table(ck, &q))) break;
        if (q.n == 0) rc = mn_error(MN_EINVAL, "%s: no query table (run mutualnet calibrate first)", ck);
        if (!rc && metric[0] && strcmp(metric, q.metric))
            rc = mn_error(MN_EINVAL, "%s: scores %s, the other checkpoints %s", ck, q.metric, metric);
        if (!rc) snprintf(metric, metric_len, "%s", q.metric);
        for (int i = 0; !rc && i < q.n; i++) {
            const mn_query_entry *e = &q.e[i];
            int k = 0;
            while (k < *n && !((*pts)[k].width == e->width && (*pts)[k].h == e->h && (*pts)[k].w == e->w)) k++;
            if (k == *n) {
                if (*n == *cap) {
                    cmp_point *p = realloc(*pts, sizeof **pts * (size_t)(*cap * 2));
                    if (!p) {
                        rc = mn_error(MN_ENOMEM, "out of memory");
                        break;
                    }
                    *pts = p;
                    *cap *= 2;
                }
                (*pts)[(*n)++] = (cmp_point){e->width, e->h, e->w, (double)e->macs, 0.0, 0};
            }
            (*pts)[k].sum += e->score;
            (*pts)[k].n++;
        }
        mn_query_free(&q);
    }
    return rc;
}

static int by_macs(const void *a, const void *b)
{
    double x = ((const cmp_point *)a)->macs, y = ((const cmp_point *)b)->macs;
    return (x > y) - (x < y);
}

/* series: "LABEL=CKPT[,CKPT...]" */
static int plot_compare(const char *prefix, char **series, int n_series)
{
    char metric[16] = "";
    mn_chart *c = NULL;
    int rc = 0;
    cmp_point *pts[16] = {0};
    int np[16] = {0};
    for (int s = 0; !rc && s < n_series; s++) {
        const char *eq = strchr(series[s], '=');
        if (!eq || eq == series[s] || !eq[1]) {
            rc = mn_error(MN_EINVAL, "--compare: '%s' is not LABEL=CHECKPOINT[,CHECKPOINT...]", series[s]);
            break;
        }
        int cap = 64;
        if (!(pts[s] = malloc(sizeof(cmp_point) * (size_t)cap))) rc = mn_error(MN_ENOMEM, "out of memory");
        if (!rc) rc = add_tables(eq + 1, &pts[s], &np[s], &cap, metric, sizeof metric);
        if (!rc) qsort(pts[s], (size_t)np[s], sizeof(cmp_point), by_macs);
    }
    if (!rc) {
        char ylabel[32];
        snprintf(ylabel, sizeof ylabel, "%s (%%, mean over checkpoints)", metric);
        if (!(c = mn_chart_new("Accuracy vs cost by training mode", "GMACs per image", ylabel))) rc = mn_last_error_code();
    }
    if (!rc) mn_chart_set_log_x(c, true);
    for (int s = 0; !rc && s < n_series; s++) {
        double *x = malloc(sizeof(double) * (size_t)np[s] * 2), *y = x ? x + np[s] : NULL;
        if (!x) {
            rc = mn_error(MN_ENOMEM, "out of memory");
            break;
        }
        /* the frontier: each point better than every cheaper one */
        int nf = 0;
        double best = -1.0;
        for (int i = 0; i < np[s]; i++) {
            double m = pts[s][i].sum / pts[s][i].n;
            if (m > best) {
                best = m;
                x[nf] = pts[s][i].macs / 1e9;
                y[nf++] = 100 * m;
            }
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(strchr(series[s], '=') - series[s]), series[s]);
        if (mn_chart_add_series(c, name, x, y, nf, MN_CHART_LINE | MN_CHART_MARKERS) < 0) rc = mn_last_error_code();
        free(x);
    }
    if (!rc) {
        char dir[1024], *slash;
        snprintf(dir, sizeof dir, "%s", prefix);
        const char *base = prefix;
        if ((slash = strrchr(dir, '/'))) {
            *slash = 0;
            base = slash + 1;
        } else {
            strcpy(dir, ".");
        }
        rc = save_both(c, dir, base);
    }
    mn_chart_free(c);
    for (int s = 0; s < 16; s++) free(pts[s]);
    return rc;
}

int mn_cmd_plot(int argc, char **argv)
{
    const char *run = NULL, *ckpt = NULL, *compare = NULL, *v;
    char *series[16];
    int n_series = 0;
    double budgets[8], budgets_ms[8];
    int n_budgets = 0, n_budgets_ms = 0;
    const char *x_axis = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--run")) {
            if (!(run = mn_arg_value("plot", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("plot", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--compare")) {
            if (!(compare = mn_arg_value("plot", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (compare && a[0] != '-' && n_series < 16) {
            series[n_series++] = argv[i];
        } else if (!strcmp(a, "--budget") && n_budgets < 8) {
            if (!(v = mn_arg_value("plot", argc, argv, &i)) || !mn_arg_count("plot", a, v, &budgets[n_budgets++]))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--budget-ms") && n_budgets_ms < 8) {
            if (!(v = mn_arg_value("plot", argc, argv, &i)) ||
                !mn_arg_float("plot", a, v, 1e-3, 1e7, &budgets_ms[n_budgets_ms++]))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--x")) {
            if (!(x_axis = mn_arg_value("plot", argc, argv, &i))) return MN_EXIT_USAGE;
            if (strcmp(x_axis, "macs") && strcmp(x_axis, "ms")) {
                fprintf(stderr, "mutualnet plot: --x takes macs or ms, not %s\n", x_axis);
                return MN_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "mutualnet plot: unknown option %s (see mutualnet plot --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (compare && (run || ckpt || n_budgets || n_budgets_ms || x_axis)) {
        fprintf(stderr, "mutualnet plot: --compare takes no --run, --checkpoint, --budget, --budget-ms or --x\n");
        return MN_EXIT_USAGE;
    }
    /* --budget-ms marks a chart in ms (the default then), --budget one in MACs */
    bool ms = x_axis ? !strcmp(x_axis, "ms") : n_budgets_ms > 0;
    if (n_budgets && n_budgets_ms) {
        fprintf(stderr, "mutualnet plot: give --budget (GMACs chart) or --budget-ms (ms chart), not both\n");
        return MN_EXIT_USAGE;
    }
    if ((ms && n_budgets) || (!ms && n_budgets_ms)) {
        fprintf(stderr, "mutualnet plot: --x %s marks budgets given with %s\n", ms ? "ms" : "macs",
                ms ? "--budget-ms" : "--budget");
        return MN_EXIT_USAGE;
    }
    if ((x_axis || n_budgets_ms) && !ckpt) {
        fprintf(stderr, "mutualnet plot: --x and --budget-ms are for the chart of a --checkpoint's query table\n");
        return MN_EXIT_USAGE;
    }
    if (compare && !n_series) {
        fprintf(stderr, "mutualnet plot: --compare PREFIX needs at least one LABEL=CHECKPOINT[,CHECKPOINT...]\n");
        return MN_EXIT_USAGE;
    }
    if (!compare && !run) {
        fprintf(stderr, "mutualnet plot: --run DIR (or --compare PREFIX) is required\n");
        return MN_EXIT_USAGE;
    }
    int rc = compare ? plot_compare(compare, series, n_series) : plot_losses(run);
    const table_axis ax = {.ms = ms, .budgets = ms ? budgets_ms : budgets, .n_budgets = ms ? n_budgets_ms : n_budgets};
    if (!rc && !compare && ckpt) rc = plot_table(run, ckpt, &ax);
    if (rc) {
        fprintf(stderr, "mutualnet plot: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    return MN_EXIT_OK;
}
