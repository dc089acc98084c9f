/* Error codes, the last-error message, assertions and logging.
 *
 * Library functions return 0 on success or a negative MN_E* code, after recording a message
 * that names the file, key or tensor at fault (read it with mn_last_error()). Functions that
 * return pointers return NULL on failure with the same message set. MN_ASSERT is for
 * programmer errors only: it prints file and line and aborts. */
#ifndef MN_ERROR_H
#define MN_ERROR_H

#include <stdarg.h>

#if defined(__GNUC__)
#define MN_API __attribute__((visibility("default")))
#define MN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MN_API
#define MN_PRINTF(f, a)
#endif

enum mn_status {
    MN_OK = 0,
    MN_EINVAL = -1,    /* bad argument or configuration */
    MN_ENOMEM = -2,    /* allocation failed */
    MN_EIO = -3,       /* file missing, unreadable or unwritable */
    MN_EFORMAT = -4,   /* malformed file contents (JSON, image, checkpoint) */
    MN_ESHAPE = -5,    /* tensor shapes disagree */
    MN_ENUMERIC = -6,  /* NaN or Inf where a finite number is required */
    MN_ECANCELED = -7, /* stopped on request (SIGINT / SIGTERM) after saving what it had */
    MN_EBUSY = -8,     /* a resource (a run folder) is in use by another process */
};

/* Records a message for the calling thread and returns code, so callers can write
 * `return mn_error(MN_EIO, "%s: cannot open", path);`. */
MN_API int mn_error(int code, const char *fmt, ...) MN_PRINTF(2, 3);
/* The message of the calling thread's most recent error ("" if none). */
MN_API const char *mn_last_error(void);
/* The code of the calling thread's most recent error (MN_OK if none). */
MN_API int mn_last_error_code(void);
/* Forgets the calling thread's last error. */
MN_API void mn_clear_error(void);
/* A short name for a code ("invalid argument", ...). */
MN_API const char *mn_status_str(int code);

MN_API void mn_assert_fail(const char *expr, const char *file, int line, const char *func);
#define MN_ASSERT(x) ((x) ? (void)0 : mn_assert_fail(#x, __FILE__, __LINE__, __func__))


#endif
