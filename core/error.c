/* Per-thread last error and leveled logging. The message buffer is thread-local (like errno)
 * so worker threads of the data loader report their own failures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/error.h"

static _Thread_local char last_msg[1024];
static _Thread_local int last_code;

int mn_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_code = code;
    return code;
}

const char *mn_last_error(void) { return last_msg; }
int mn_last_error_code(void) { return last_code; }

void mn_clear_error(void)
{
    last_msg[0] = 0;
    last_code = MN_OK;
}

const char *mn_status_str(int code)
{
    switch (code) {
    case MN_OK: return "ok";
    case MN_EINVAL: return "invalid argument";
    case MN_ENOMEM: return "out of memory";
    case MN_EIO: return "i/o error";
    case MN_EFORMAT: return "malformed input";
    case MN_ESHAPE: return "shape mismatch";
    case MN_ENUMERIC: return "non-finite value";
    case MN_ECANCELED: return "interrupted";
    case MN_EBUSY: return "in use";
    default: return "unknown error";
    }
}

void mn_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "mutualnet: internal error: assertion `%s' failed in %s (%s:%d)\n", expr, func, file, line);
    abort();
}
