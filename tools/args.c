#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "args.h"

const char *mn_arg_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "mutualnet %s: %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool mn_arg_set(const char *cmd, int argc, char **argv, int *i, const char **sets, int *n, int max)
{
    if (*n == max) {
        fprintf(stderr, "mutualnet %s: more than %d --set options\n", cmd, max);
        return false;
    }
    const char *v = mn_arg_value(cmd, argc, argv, i);
    if (v) sets[(*n)++] = v;
    return v != NULL;
}

bool mn_arg_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "mutualnet %s: %s expects a whole number in [%d, %d], not \"%s\"\n", cmd, flag, lo, hi, s);
        return false;
    }
    *out = (int)v;
    return true;
}

bool mn_arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "mutualnet %s: %s expects a number in [%g, %g], not \"%s\"\n", cmd, flag, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool mn_arg_floats(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out, int max, int *n)
{
    const char *p = s;
    *n = 0;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || (*end && *end != ',') || !(v >= lo && v <= hi) || *n == max) {
            fprintf(stderr, "mutualnet %s: %s expects up to %d comma-separated numbers in [%g, %g], not \"%s\"\n", cmd,
                    flag, max, lo, hi, s);
            return false;
        }
        out[(*n)++] = (float)v;
        if (!*end) return true;
        p = end + 1;
    }
}

bool mn_arg_count(const char *cmd, const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double scale = 1;
    if (*end == 'k' || *end == 'K') scale = 1e3, end++;
    else if (*end == 'M' || *end == 'm') scale = 1e6, end++;
    else if (*end == 'G' || *end == 'g') scale = 1e9, end++;
    if (errno || end == s || *end || !(v > 0) || !isfinite(v)) {
        fprintf(stderr, "mutualnet %s: %s expects a positive count such as 1.5G, 300M or 25k, not \"%s\"\n", cmd, flag,
                s);
        return false;
    }
    *out = v * scale;
    return true;
}
