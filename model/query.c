#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/json.h"
#include "mn/query.h"

void mn_query_init(mn_query_table *q, const char *metric)
{
    memset(q, 0, sizeof *q);
    snprintf(q->metric, sizeof q->metric, "%s", metric);
}

void mn_query_free(mn_query_table *q)
{
    for (int i = 0; i < q->n; i++) free(q->e[i].bn_stats);
    free(q->e);
    memset(q, 0, sizeof *q);
}

int64_t mn_query_stats_size(mn_slim_bn *const *bns, int n)
{
    int64_t s = 0;
    for (int i = 0; i < n; i++) s += 2 * bns[i]->mean->var.val.shape[0];
    return s;
}

void mn_query_save_stats(float *dst, mn_slim_bn *const *bns, int n)
{
    for (int i = 0; i < n; i++) {
        size_t c = (size_t)bns[i]->mean->var.val.shape[0];
        memcpy(dst, bns[i]->mean->var.val.data, c * sizeof(float));
        memcpy(dst + c, bns[i]->var->var.val.data, c * sizeof(float));
        dst += 2 * c;
    }
}

void mn_query_load_stats(const float *src, mn_slim_bn *const *bns, int n)
{
    for (int i = 0; i < n; i++) {
        size_t c = (size_t)bns[i]->mean->var.val.shape[0];
        memcpy(bns[i]->mean->var.val.data, src, c * sizeof(float));
        memcpy(bns[i]->var->var.val.data, src + c, c * sizeof(float));
        src += 2 * c;
    }
}

static void mark_frontier(mn_query_table *q)
{
    for (int i = 0; i < q->n; i++) {
        q->e[i].frontier = true;
        for (int j = 0; j < q->n && q->e[i].frontier; j++)
            if (j != i && q->e[j].macs <= q->e[i].macs && q->e[j].score > q->e[i].score) q->e[i].frontier = false;
    }
}

int mn_query_add(mn_query_table *q, float width, int h, int w, int64_t macs, double score, const float *stats)
{
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 32;
        mn_query_entry *e = realloc(q->e, sizeof *e * (size_t)cap);
        if (!e) return mn_error(MN_ENOMEM, "query table: out of memory");
        q->e = e;
        q->cap = cap;
    }
    mn_query_entry *e = &q->e[q->n];
    *e = (mn_query_entry){.width = width, .h = h, .w = w, .macs = macs, .score = score};
    if (stats && q->n_stats) {
        e->bn_stats = malloc(sizeof(float) * (size_t)q->n_stats);
        if (!e->bn_stats) return mn_error(MN_ENOMEM, "query table: out of memory");
        memcpy(e->bn_stats, stats, sizeof(float) * (size_t)q->n_stats);
    }
    q->n++;
    mark_frontier(q);
    return 0;
}

int mn_query_select(const mn_query_table *q, double budget_macs)
{
    int best = -1;
    for (int i = 0; i < q->n; i++) {
        const mn_query_entry *e = &q->e[i];
        if ((double)e->macs > budget_macs) continue;
        if (best < 0 || e->score > q->e[best].score || (e->score == q->e[best].score && e->macs < q->e[best].macs))
            best = i;
    }
    return best;
}

bool mn_query_has_ms(const mn_query_table *q)
{
    for (int i = 0; i < q->n; i++)
        if (q->e[i].ms > 0) return true;
    return false;
}

bool mn_query_ms_frontier(const mn_query_table *q, int i)
{
    if (!(q->e[i].ms > 0)) return false;
    for (int j = 0; j < q->n; j++)
        if (j != i && q->e[j].ms > 0 && q->e[j].ms <= q->e[i].ms && q->e[j].score > q->e[i].score) return false;
    return true;
}

int mn_query_fastest(const mn_query_table *q)
{
    int best = -1;
    for (int i = 0; i < q->n; i++)
        if (q->e[i].ms > 0 && (best < 0 || q->e[i].ms < q->e[best].ms)) best = i;
    return best;
}

int mn_query_select_ms(const mn_query_table *q, double budget_ms, int *index)
{
    *index = -1;
    if (!(budget_ms > 0))
        return mn_error(MN_EINVAL, "query table: a budget of %g ms; give a positive number of milliseconds", budget_ms);
    int fastest = mn_query_fastest(q);
    if (fastest < 0)
        return mn_error(MN_EINVAL, "the query table has no latencies: time it on the machine that will run the model "
                                   "with mutualnet calibrate --latency-only --checkpoint CKPT (or calibrate --latency)");
    for (int i = 0; i < q->n; i++) {
        const mn_query_entry *e = &q->e[i];
        if (!(e->ms > 0) || e->ms > budget_ms) continue;
        const mn_query_entry *b = *index >= 0 ? &q->e[*index] : NULL;
        if (!b || e->score > b->score || (e->score == b->score && (e->ms < b->ms || (e->ms == b->ms && e->macs < b->macs))))
            *index = i;
    }
    if (*index < 0) {
        char how[160] = ""; /* a table edited by hand may hold times without saying how they were taken */
        if (q->timing.threads > 0)
            snprintf(how, sizeof how, " (measured with %d thread%s%s%s)", q->timing.threads,
                     q->timing.threads == 1 ? "" : "s", q->timing.machine[0] ? " on " : "", q->timing.machine);
        return mn_error(MN_EINVAL, "no configuration fits %.4g ms; the fastest needs %.4g ms%s", budget_ms,
                        q->e[fastest].ms, how);
    }
    return 0;
}

int mn_query_find(const mn_query_table *q, float width, int h, int w)
{
    for (int i = 0; i < q->n; i++)
        if (fabsf(q->e[i].width - width) < 1e-4f && q->e[i].h == h && q->e[i].w == w) return i;
    return -1;
}

static int by_macs(const void *a, const void *b)
{
    const mn_query_entry *x = *(mn_query_entry *const *)a, *y = *(mn_query_entry *const *)b;
    return (x->macs > y->macs) - (x->macs < y->macs);
}

void mn_query_print(const mn_query_table *q, FILE *f)
{
    const mn_query_entry **order = malloc(sizeof *order * (size_t)(q->n + 1));
    if (!order) return;
    for (int i = 0; i < q->n; i++) order[i] = &q->e[i];
    qsort(order, (size_t)q->n, sizeof *order, by_macs);
    bool timed = mn_query_has_ms(q);
    mn_query_print_timing(q, f);
    fprintf(f, "  %-7s %-9s %12s %*s%8s  %s\n", "width", "input", "MACs", timed ? 10 : 0, timed ? "ms" : "", q->metric,
            timed ? "best for its budget (* in MACs, + in ms)" : "best for its budget");
    for (int i = 0; i < q->n; i++) {
        const mn_query_entry *e = order[i];
        char size[24], ms[24] = "", best[4];
        snprintf(size, sizeof size, "%dx%d", e->h, e->w);
        mn_query_entry_text(q, e, ms, sizeof ms, best);
        fprintf(f, "  %-7.2f %-9s %11.3fG %s%7.2f%%  %s\n", (double)e->width, size, (double)e->macs / 1e9, ms,
                100 * e->score, best);
    }
    free(order);
}

void mn_query_entry_text(const mn_query_table *q, const mn_query_entry *e, char *ms, size_t n, char *best /* (4) */)
{
    bool timed = mn_query_has_ms(q);
    ms[0] = 0;
    if (timed && e->ms > 0) snprintf(ms, n, " %9.3f", e->ms);
    else if (timed) snprintf(ms, n, " %9s", "-"); /* an entry added after timing */
    snprintf(best, 4, "%s%s", e->frontier ? "*" : "", mn_query_ms_frontier(q, (int)(e - q->e)) ? "+" : "");
}

void mn_query_print_timing(const mn_query_table *q, FILE *f)
{
    if (!mn_query_has_ms(q)) return;
    const mn_query_timing *t = &q->timing;
    if (t->threads <= 0) {
        fprintf(f, "  ms: measured on a machine and thread count the table does not record\n");
        return;
    }
    fprintf(f, "  ms: median of %d runs per image at batch 1, %d OpenMP thread%s%s%s (on that machine only: time the "
               "target with calibrate --latency-only)\n",
            t->runs, t->threads, t->threads == 1 ? "" : "s", t->machine[0] ? ", " : "", t->machine);
}

char *mn_query_to_json(const mn_query_table *q)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < q->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "width", q->e[i].width);
        cJSON_AddNumberToObject(o, "h", q->e[i].h);
        cJSON_AddNumberToObject(o, "w", q->e[i].w);
        cJSON_AddNumberToObject(o, "macs", (double)q->e[i].macs);
        cJSON_AddNumberToObject(o, "score", q->e[i].score);
        if (q->e[i].ms > 0) cJSON_AddNumberToObject(o, "ms", q->e[i].ms);
        cJSON_AddItemToArray(a, o);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "metric", q->metric);
    cJSON_AddItemToObject(root, "entries", a);
    if (q->timing.threads > 0) {
        cJSON *t = cJSON_AddObjectToObject(root, "latency");
        cJSON_AddNumberToObject(t, "threads", q->timing.threads);
        cJSON_AddNumberToObject(t, "runs", q->timing.runs);
        cJSON_AddStringToObject(t, "machine", q->timing.machine);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* The optional "latency" object: {"threads": T >= 1, "runs": N >= 1, "machine": "..."}. */
static int timing_from_json(mn_query_timing *t, const cJSON *o)
{
    if (!o) return 0;
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(o, "threads"), *ru = cJSON_GetObjectItemCaseSensitive(o, "runs"),
                *ma = cJSON_GetObjectItemCaseSensitive(o, "machine");
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(th) || !cJSON_IsNumber(ru) || th->valuedouble < 1 ||
        th->valuedouble > 1e6 || ru->valuedouble < 1 || ru->valuedouble > 1e9 || (ma && !cJSON_IsString(ma)))
        return mn_error(MN_EFORMAT, "query table: \"latency\" needs threads and runs (at least 1) and a machine string");
    t->threads = th->valueint;
    t->runs = ru->valueint;
    snprintf(t->machine, sizeof t->machine, "%s", ma ? ma->valuestring : "");
    return 0;
}

int mn_query_from_json(mn_query_table *q, const char *json, int64_t n_stats)
{
    if (!json) return mn_error(MN_EFORMAT, "query table: missing");
    cJSON *root = NULL;
    int rc = mn_json_parse(json, strlen(json), "query table", &root);
    if (rc) return rc;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "metric");
    cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "entries");
    if (!cJSON_IsString(m) || !cJSON_IsArray(a)) {
        cJSON_Delete(root);
        return mn_error(MN_EFORMAT, "query table: malformed JSON (needs a metric string and an entries array)");
    }
    mn_query_init(q, m->valuestring);
    q->n_stats = n_stats;
    for (cJSON *o = a->child; o && !rc; o = o->next) {
        cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "width"), *h = cJSON_GetObjectItemCaseSensitive(o, "h"),
              *wd = cJSON_GetObjectItemCaseSensitive(o, "w"), *mc = cJSON_GetObjectItemCaseSensitive(o, "macs"),
              *sc = cJSON_GetObjectItemCaseSensitive(o, "score");
        if (!cJSON_IsNumber(w) || !cJSON_IsNumber(h) || !cJSON_IsNumber(wd) || !cJSON_IsNumber(mc) || !cJSON_IsNumber(sc))
            rc = mn_error(MN_EFORMAT, "query table: entry lacks width, h, w, macs or score");
        else
            rc = mn_query_add(q, (float)w->valuedouble, h->valueint, wd->valueint, (int64_t)mc->valuedouble,
                              sc->valuedouble, NULL);
        cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "ms");
        if (!rc && ms) { /* absent in tables written before timings existed, and for untimed entries */
            if (!cJSON_IsNumber(ms) || !(ms->valuedouble >= 0 && isfinite(ms->valuedouble)))
                rc = mn_error(MN_EFORMAT, "query table: entry %d has an \"ms\" that is not a finite number >= 0",
                              q->n - 1);
            else
                q->e[q->n - 1].ms = ms->valuedouble;
        }
    }
    if (!rc) rc = timing_from_json(&q->timing, cJSON_GetObjectItemCaseSensitive(root, "latency"));
    cJSON_Delete(root);
    if (rc) mn_query_free(q);
    return rc;
}
