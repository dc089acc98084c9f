/* The budget -> configuration query table (spec §7): for every (width, input size) of a grid,
 * its multiply-accumulates, its validation score and its own BN statistics; a budget picks the
 * most accurate configuration that fits. */
#ifndef MN_QUERY_H
#define MN_QUERY_H

#include <stdint.h>
#include <stdio.h>

#include "slim.h"

typedef struct mn_query_entry {
    float width;
    int h, w;                /* input size */
    int64_t macs;            /* whole model, per image */
    double score;            /* mIoU or AP on the validation split, in [0, 1] */
    float *bn_stats;         /* running mean then var of every BN layer (n_stats floats) */
    bool frontier;           /* no other entry is both cheaper-or-equal and more accurate */
} mn_query_entry;

typedef struct mn_query_table {
    mn_query_entry *e;
    int n, cap;
    int64_t n_stats;         /* floats per entry's BN statistics */
    char metric[16];         /* "mIoU" | "AP" */
} mn_query_table;

MN_API void mn_query_init(mn_query_table *q, const char *metric);
MN_API void mn_query_free(mn_query_table *q);
/* Floats needed to hold the statistics of these BN layers (2 x their full channels). */
MN_API int64_t mn_query_stats_size(mn_slim_bn *const *bns, int n);
/* Copies the layers' running statistics into / out of a flat buffer. */
MN_API void mn_query_save_stats(float *dst, mn_slim_bn *const *bns, int n);
MN_API void mn_query_load_stats(const float *src, mn_slim_bn *const *bns, int n);
/* Appends an entry (stats copied); recomputes the frontier. */
MN_API int mn_query_add(mn_query_table *q, float width, int h, int w, int64_t macs, double score, const float *stats);
/* The entry with the best score whose macs fit the budget (ties: fewer macs), or -1. */
MN_API int mn_query_select(const mn_query_table *q, double budget_macs);
/* The entry for exactly (width, h, w) (width within 1e-4), or -1. */
MN_API int mn_query_find(const mn_query_table *q, float width, int h, int w);
/* Prints the table, cheapest first, frontier marked. */
MN_API void mn_query_print(const mn_query_table *q, FILE *f);
/* JSON (malloc'd) without the statistics: [{"width":..,"h":..,"w":..,"macs":..,"score":..}, ...]. */
MN_API char *mn_query_to_json(const mn_query_table *q);
/* Parses mn_query_to_json's output; statistics are attached separately (entry i's from
 * the tensor "bn_bank.<i>"). */
MN_API int mn_query_from_json(mn_query_table *q, const char *json, int64_t n_stats);

#endif
