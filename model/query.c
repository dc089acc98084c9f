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
    *e = (mn_query_entry){width, h, w, macs, score, NULL, false};
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
    fprintf(f, "  %-7s %-9s %12s %8s  %s\n", "width", "input", "MACs", q->metric, "best for its budget");
    for (int i = 0; i < q->n; i++) {
        const mn_query_entry *e = order[i];
        char size[24];
        snprintf(size, sizeof size, "%dx%d", e->h, e->w);
        fprintf(f, "  %-7.2f %-9s %11.3fG %7.2f%%  %s\n", (double)e->width, size, (double)e->macs / 1e9, 100 * e->score,
                e->frontier ? "*" : "");
    }
    free(order);
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
        cJSON_AddItemToArray(a, o);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "metric", q->metric);
    cJSON_AddItemToObject(root, "entries", a);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
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
    }
    cJSON_Delete(root);
    if (rc) mn_query_free(q);
    return rc;
}
