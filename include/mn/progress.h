/* Progress lines and the clock they read: what every long loop (training, evaluation,
 * calibration) shows while it runs. */
#ifndef MN_PROGRESS_H
#define MN_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* A progress line on standard error: a bar with rate and ETA on a terminal, plain lines
 * (one every `every` updates) otherwise. */
typedef struct mn_progress {
    char what[32];
    int64_t total, start, done;
    double t0, last_print;
    bool tty;
    int every;
} mn_progress;

MN_API void mn_progress_begin(mn_progress *p, const char *what, int64_t total, int64_t start, int every);
/* done: units finished so far; items_per_unit: images per unit for the images/s figure (0 leaves the
 * figure out, for units of no fixed image count); extra: free text. */
MN_API void mn_progress_update(mn_progress *p, int64_t done, double items_per_unit, const char *extra);
MN_API void mn_progress_end(mn_progress *p);

/* Monotonic seconds. */
MN_API double mn_now(void);

#endif
