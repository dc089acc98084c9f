#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mn/progress.h"

void mn_report(const mn_reporter *rep, int level, const char *fmt, ...)
{
    if (!rep || !rep->log) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rep->log(rep->ctx, level, msg);
}

void mn_progress_begin(mn_progress *p, const mn_reporter *rep, const char *what, int64_t total, int64_t start,
                       int every)
{
    memset(p, 0, sizeof *p);
    p->rep = rep && rep->progress ? rep : NULL;
    snprintf(p->what, sizeof p->what, "%s", what);
    p->total = total;
    p->start = p->done = start;
    p->t0 = mn_now();
    p->every = every > 0 ? every : 1;
}

static void send(mn_progress *p, double items_per_unit, const char *extra, bool end)
{
    if (!p->rep) return;
    double el = mn_now() - p->t0;
    double rate = el > 0 ? (double)(p->done - p->start) / el : 0;
    mn_progress_event e = {.what = p->what, .done = p->done, .total = p->total, .start = p->start, .elapsed = el,
                           .eta = rate > 0 ? (double)(p->total - p->done) / rate : 0,
                           .items_per_s = items_per_unit > 0 ? rate * items_per_unit : 0, .extra = extra,
                           .every = p->every, .end = end};
    p->rep->progress(p->rep->ctx, &e);
}

void mn_progress_update(mn_progress *p, int64_t done, double items_per_unit, const char *extra)
{
    p->done = done;
    send(p, items_per_unit, extra, false);
}

void mn_progress_end(mn_progress *p)
{
    send(p, 0, NULL, true);
    p->rep = NULL; /* ending twice reports once */
}

double mn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
