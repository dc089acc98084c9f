/* What long loops (training, evaluation, calibration) and the library's notices report, and the
 * clock they read. The library never prints: it hands events to a reporter that the caller
 * supplies (tools/report.c shows them on standard error); a NULL reporter keeps it silent. */
#ifndef MN_PROGRESS_H
#define MN_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

enum mn_log_level { MN_LOG_ERROR = 0, MN_LOG_WARN = 1, MN_LOG_INFO = 2, MN_LOG_DEBUG = 3 };

/* One step of a loop. */
typedef struct mn_progress_event {
    const char *what;        /* "train", "evaluate", "calibrate" */
    int64_t done, total;     /* units finished so far, of total */
    int64_t start;           /* units done before this run (a resumed training run) */
    double elapsed, eta;     /* seconds */
    double items_per_s;      /* images per second; 0 when a unit has no fixed number of images */
    const char *extra;       /* free text (loss, learning rate, the configuration); may be NULL */
    int every;               /* the loop's suggestion for plain logs: one line every `every` units */
    bool end;                /* the loop is over (done may be below total when it stopped early) */
} mn_progress_event;

typedef struct mn_reporter {
    void (*progress)(void *ctx, const mn_progress_event *e);   /* may be NULL */
    void (*log)(void *ctx, int level, const char *message);    /* may be NULL */
    void *ctx;
} mn_reporter;

/* A notice (a skipped file, a resumed run, a validation score) for rep's log; nothing when rep or
 * its log is NULL. */
MN_API void mn_report(const mn_reporter *rep, int level, const char *fmt, ...) MN_PRINTF(3, 4);

/* A loop's progress: begin, an update per unit, end. */
typedef struct mn_progress {
    const mn_reporter *rep;
    char what[32];
    int64_t total, start, done;
    double t0;
    int every;
} mn_progress;

MN_API void mn_progress_begin(mn_progress *p, const mn_reporter *rep, const char *what, int64_t total, int64_t start,
                              int every);
/* done: units finished so far; items_per_unit: images per unit for the images/s figure (0 leaves the
 * figure out, for units of no fixed image count); extra: free text. */
MN_API void mn_progress_update(mn_progress *p, int64_t done, double items_per_unit, const char *extra);
MN_API void mn_progress_end(mn_progress *p);

/* Monotonic seconds. */
MN_API double mn_now(void);

#endif
