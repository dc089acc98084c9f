/* Choosing the configuration a command runs at: --budget (MACs) or --budget-ms (milliseconds
 * measured by calibrate --latency) through the query table, or --width/--size directly. Shared
 * by eval, predict, story and export, for every kind of model: the choice is
 * resolved against a query table, a trained width range and default size, and two callbacks
 * (load the BN statistics of a configuration, count its MACs). */
#ifndef MN_TOOLS_SELECT_H
#define MN_TOOLS_SELECT_H

#include <stdbool.h>

#include "mn/cls_model.h"
#include "mn/det_model.h"
#include "mn/seg_model.h"

typedef struct mn_choice {
    double budget;          /* MACs; 0 = none given */
    double budget_ms;       /* milliseconds per image on the timed machine; 0 = none given */
    double width;           /* 0 = none given */
    int h, w;               /* 0 = none given; --size S gives h = w = S */
    bool one_side;          /* --size was one number */
} mn_choice;

/* Parses --budget, --budget-ms, --width, --size at argv[*i] (advancing *i); returns 1 when it
 * took the option, 0 when the option is not one of these, -1 on a bad value (message printed).
 * --size takes S or HxW, each 32..8192 (a detector takes S only: its short side). Which of them
 * may be combined is checked when the choice is resolved. */
int mn_choice_arg(const char *cmd, mn_choice *c, int argc, char **argv, int *i);

/* A model as the selection sees it. Sizes are (h, w) for segmentation and (short side, max
 * side) for detection, as the query table keys them. */
typedef struct mn_choice_target {
    const mn_query_table *table;
    float width_lo, width_hi;                /* trained range */
    int def_h, def_w;                        /* size when --size is absent */
    bool short_side;                         /* detection: --size S is a short side (w stays def_w) */
    void *model;
    int (*select)(void *model, float width, int h, int w);             /* BN statistics */
    int (*flops)(void *model, float width, int h, int w, int64_t *macs);
    void (*describe)(void *model, float width, int h, int w, char *out, int size); /* "at 320x320" */
} mn_choice_target;

/* Resolves the choice (budget or budget_ms -> table entry; defaults: the widest trained width at
 * the default size), loads the matching BN statistics and prints what was chosen. Returns 0, -1
 * on failure (message printed: no table, no timings, nothing fits) or -2 for a usage error (more
 * than one of --budget, --budget-ms and --width/--size; HxW given to a detector). */
int mn_choice_resolve(const char *cmd, const mn_choice *c, const mn_choice_target *t, float *width, int *h, int *w,
                      int64_t *macs);

/* The three kinds of model. */
int mn_choice_apply(const char *cmd, const mn_choice *c, mn_seg_model *m, float *width, int *h, int *w, int64_t *macs);
int mn_choice_apply_det(const char *cmd, const mn_choice *c, mn_det_model *m, float *width, int *short_side,
                        int64_t *macs);
int mn_choice_apply_cls(const char *cmd, const mn_choice *c, mn_cls_model *m, float *width, int *h, int *w,
                        int64_t *macs);

#endif
