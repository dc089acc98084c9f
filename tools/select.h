/* Choosing the configuration a command runs at: --budget through the query table, or
 * --width/--size directly. Shared by eval and predict. */
#ifndef MN_TOOLS_SELECT_H
#define MN_TOOLS_SELECT_H

#include <stdbool.h>

#include "mn/seg_model.h"

typedef struct mn_choice {
    double budget;          /* MACs; 0 = none given */
    double width;           /* 0 = none given */
    int h, w;               /* 0 = none given */
} mn_choice;

/* Parses --budget, --width, --size at argv[*i] (advancing *i); returns 1 when it took the
 * option, 0 when the option is not one of these, -1 on a bad value (message printed). */
int mn_choice_arg(const char *cmd, mn_choice *c, int argc, char **argv, int *i);
/* Resolves the choice against the model (budget -> table entry; defaults: full width at
 * data.eval_size), loads the matching BN statistics and prints what was chosen. */
int mn_choice_apply(const char *cmd, const mn_choice *c, mn_seg_model *m, float *width, int *h, int *w, int64_t *macs);

#endif
