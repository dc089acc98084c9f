/* Small helpers for the commands' argument parsing. */
#ifndef MN_TOOLS_ARGS_H
#define MN_TOOLS_ARGS_H

#include <stdbool.h>

/* The value after argv[*i] (advancing *i), or NULL after printing "<cmd>: <flag> needs a value". */
const char *mn_arg_value(const char *cmd, int argc, char **argv, int *i);
/* Takes the KEY=VALUE after --set at argv[*i] into sets[*n] (advancing *i and *n); false after
 * printing why when the value is missing or more than `max` were given. */
bool mn_arg_set(const char *cmd, int argc, char **argv, int *i, const char **sets /* (max) */, int *n, int max);
/* Parses a whole number / a float; prints "<cmd>: <flag>: ..." and returns false otherwise. */
bool mn_arg_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out);
bool mn_arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, double *out);
/* Parses a comma-separated list of at most `max` numbers in [lo, hi] into out[], its length into *n. */
bool mn_arg_floats(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out, int max, int *n);
/* Parses "1.5G", "300M", "25k" or a plain number. */
bool mn_arg_count(const char *cmd, const char *flag, const char *s, double *out);

#endif
