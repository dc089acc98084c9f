/* How the mutualnet command shows what the library reports (mn/progress.h): progress bars on a
 * terminal, plain lines otherwise, and notices as "mutualnet: LEVEL: message", filtered by
 * $MUTUALNET_LOG (error | warn | info | debug; default info), all on standard error. */
#ifndef MN_TOOLS_REPORT_H
#define MN_TOOLS_REPORT_H

#include <stdbool.h>

#include "mn/progress.h"

typedef struct tool_report {
    bool tty;            /* standard error is a terminal: one updating bar */
    int level;           /* notices up to this level are shown */
    double last_print;   /* when the bar was last drawn */
    bool open_bar;       /* a bar is on screen without its newline */
} tool_report;

/* A reporter over *state (which must outlive it). */
mn_reporter tool_reporter(tool_report *state);
/* A notice of the command itself, through the same filter. */
void tool_log(int level, const char *fmt, ...) MN_PRINTF(2, 3);

#endif
