#include <stdio.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "mn/progress.h"

void mn_progress_begin(mn_progress *p, const char *what, int64_t total, int64_t start, int every)
{
    memset(p, 0, sizeof *p);
    snprintf(p->what, sizeof p->what, "%s", what);
    p->total = total;
    p->start = p->done = start;
    p->t0 = mn_now();
    p->tty = isatty(fileno(stderr));
    p->every = every > 0 ? every : 1;
}

static void clock_str(double s, char *buf, size_t n)
{
    int t = s < 0 ? 0 : (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

void mn_progress_update(mn_progress *p, int64_t done, double items_per_unit, const char *extra)
{
    p->done = done;
    double now = mn_now(), el = now - p->t0;
    double rate = el > 0 ? (double)(done - p->start) / el : 0;
    bool last = done >= p->total;
    if (p->tty ? (now - p->last_print < 0.2 && !last) : ((done - p->start) % p->every && !last)) return;
    p->last_print = now;
    char eta[16], ela[16];
    clock_str(rate > 0 ? (double)(p->total - done) / rate : 0, eta, sizeof eta);
    clock_str(el, ela, sizeof ela);
    double frac = p->total ? (double)done / (double)p->total : 1;
    char speed[32] = "";
    if (items_per_unit > 0) snprintf(speed, sizeof speed, " %.1f img/s", rate * items_per_unit);
    if (p->tty) {
        char bar[26];
        int fill = (int)(frac * 24 + 0.5);
        for (int i = 0; i < 24; i++) bar[i] = i < fill ? '#' : '.';
        bar[24] = 0;
        fprintf(stderr, "\r%-10s [%s] %lld/%lld %s<%s%s %s\033[K", p->what, bar, (long long)done, (long long)p->total,
                ela, eta, speed, extra ? extra : "");
    } else {
        fprintf(stderr, "%s %lld/%lld (%.0f%%) elapsed %s eta %s%s %s\n", p->what, (long long)done, (long long)p->total,
                100 * frac, ela, eta, speed, extra ? extra : "");
    }
    fflush(stderr);
}

void mn_progress_end(mn_progress *p)
{
    if (p->tty) fputc('\n', stderr);
}

double mn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
