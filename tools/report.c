#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

static int level_from_env(void)
{
    const char *v = getenv("MUTUALNET_LOG");
    if (!v) return MN_LOG_INFO;
    if (!strcmp(v, "error")) return MN_LOG_ERROR;
    if (!strcmp(v, "warn")) return MN_LOG_WARN;
    if (!strcmp(v, "debug")) return MN_LOG_DEBUG;
    return MN_LOG_INFO;
}

static void put_line(int level, const char *msg)
{
    static const char *const tag[] = {"error", "warning", "info", "debug"};
    /* one fputs per line so that lines from several threads do not interleave */
    char out[2200];
    snprintf(out, sizeof out, "mutualnet: %s: %s\n", tag[level < 0 ? 0 : level > 3 ? 3 : level], msg);
    fputs(out, stderr);
}

void tool_log(int level, const char *fmt, ...)
{
    if (level > level_from_env()) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    put_line(level, msg);
}

static void clock_str(double s, char *buf, size_t n)
{
    int t = s < 0 ? 0 : (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

static void on_log(void *ctx, int level, const char *msg)
{
    tool_report *r = ctx;
    if (level > r->level) return;
    if (r->open_bar) { /* a notice starts on a line of its own */
        fputc('\n', stderr);
        r->open_bar = false;
    }
    put_line(level, msg);
}

/* On a terminal one bar redrawn at most 5 times a second; otherwise a plain line every e->every
 * units and at the last one. */
static void on_progress(void *ctx, const mn_progress_event *e)
{
    tool_report *r = ctx;
    if (e->end) {
        if (r->open_bar) fputc('\n', stderr);
        r->open_bar = false;
        return;
    }
    double now = mn_now();
    bool last = e->done >= e->total;
    if (r->tty ? (now - r->last_print < 0.2 && !last) : ((e->done - e->start) % e->every && !last)) return;
    r->last_print = now;
    char eta[16], ela[16], speed[32] = "";
    clock_str(e->eta, eta, sizeof eta);
    clock_str(e->elapsed, ela, sizeof ela);
    double frac = e->total ? (double)e->done / (double)e->total : 1;
    if (e->items_per_s > 0) snprintf(speed, sizeof speed, " %.1f img/s", e->items_per_s);
    const char *extra = e->extra ? e->extra : "";
    if (r->tty) {
        char bar[26];
        int fill = (int)(frac * 24 + 0.5);
        for (int i = 0; i < 24; i++) bar[i] = i < fill ? '#' : '.';
        bar[24] = 0;
        fprintf(stderr, "\r%-10s [%s] %lld/%lld %s<%s%s %s\033[K", e->what, bar, (long long)e->done,
                (long long)e->total, ela, eta, speed, extra);
        r->open_bar = true;
    } else {
        fprintf(stderr, "%s %lld/%lld (%.0f%%) elapsed %s eta %s%s %s\n", e->what, (long long)e->done,
                (long long)e->total, 100 * frac, ela, eta, speed, extra);
    }
    fflush(stderr);
}

mn_reporter tool_reporter(tool_report *state)
{
    memset(state, 0, sizeof *state);
    state->tty = isatty(fileno(stderr));
    state->level = level_from_env();
    return (mn_reporter){.progress = on_progress, .log = on_log, .ctx = state};
}
