/* The budget -> configuration query table (spec §7): for every (width, input size) of a grid,
 * its multiply-accumulates, its validation score and its own BN statistics; a budget picks the
 * most accurate configuration that fits. `calibrate --latency` adds each configuration's
 * latency measured on one machine, so that a budget can also be given in milliseconds. */
#ifndef MN_QUERY_H
#define MN_QUERY_H

#include <stdbool.h>
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
    double ms;               /* measured latency per image (batch 1, see timing); 0 = not measured */
} mn_query_entry;

/* How the entries' ms were measured: they hold for that machine and thread count only. */
typedef struct mn_query_timing {
    int threads;             /* OpenMP threads while timing; 0 = the table was never timed */
    int runs;                /* timed runs per configuration (after warm-ups), median kept */
    char machine[96];        /* what ran them, e.g. the CPU model ("" = unknown) */
} mn_query_timing;

typedef struct mn_query_table {
    mn_query_entry *e;
    int n, cap;
    int64_t n_stats;         /* floats per entry's BN statistics */
    char metric[16];         /* "mIoU" | "AP" */
    mn_query_timing timing;  /* threads == 0 until timed */
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
/* Whether any entry has a measured latency (ms > 0). */
MN_API bool mn_query_has_ms(const mn_query_table *q);
/* The entry with the best score whose measured ms fit budget_ms (ties: fewer ms, then fewer macs),
 * in *index. Entries without a timing are skipped. Fails with MN_EINVAL when no entry is timed (the
 * message names `calibrate --latency`) or when none fits (the message gives the fastest's ms). */
MN_API int mn_query_select_ms(const mn_query_table *q, double budget_ms, int *index);
/* Whether timed entry i is on the latency frontier: no timed entry is as fast or faster and more
 * accurate (false for an untimed entry). */
MN_API bool mn_query_ms_frontier(const mn_query_table *q, int i);
/* The timed entry with the fewest ms, or -1 when none is timed. */
MN_API int mn_query_fastest(const mn_query_table *q);
/* The entry for exactly (width, h, w) (width within 1e-4), or -1. */
MN_API int mn_query_find(const mn_query_table *q, float width, int h, int w);
/* Prints the table, cheapest first, frontier marked (*); when the table has timings, an ms
 * column, how it was timed, and the latency frontier marked (+). */
MN_API void mn_query_print(const mn_query_table *q, FILE *f);
/* The columns a printed row adds for entry e of q: ms gets " %9.3f" of its ms (" -" padded when
 * untimed; "" when the table has no timings), best gets "*" on the MACs frontier, "+" on the
 * latency frontier. */
MN_API void mn_query_entry_text(const mn_query_table *q, const mn_query_entry *e, char *ms, size_t n,
                                char *best /* (4) */);
/* The line saying how the ms were measured ("  ms: median of 10 runs ..."); nothing when untimed. */
MN_API void mn_query_print_timing(const mn_query_table *q, FILE *f);
/* JSON (malloc'd) without the statistics: {"metric":.., "entries":[{"width":..,"h":..,"w":..,
 * "macs":..,"score":..[,"ms":..]}, ...][, "latency":{"threads":..,"runs":..,"machine":..}]}; ms and
 * latency only when measured. */
MN_API char *mn_query_to_json(const mn_query_table *q);
/* Parses mn_query_to_json's output (tables written before timings existed load untimed);
 * statistics are attached separately (entry i's from the tensor "bn_bank.<i>"). */
MN_API int mn_query_from_json(mn_query_table *q, const char *json, int64_t n_stats);

#endif
