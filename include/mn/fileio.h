/* Whole-file reads and crash-safe whole-file writes. */
#ifndef MN_FILEIO_H
#define MN_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* Reads path into a malloc'd, NUL-terminated buffer (*len bytes before the NUL); files over
 * max_bytes are refused as not what the caller expects (`what` names it in messages). */
MN_API int mn_read_file(const char *path, size_t max_bytes, const char *what, char **out, size_t *len);

/* Writes n bytes to path as one step: a temp file beside it (path.tmp.<pid>), fsync, rename,
 * fsync of the folder. On any failure (a full disk included) the old file is left as it was,
 * the temp file is removed and the message names path and the system's reason. */
MN_API int mn_write_file_atomic(const char *path, const void *data, size_t n);

/* The same for a file written piece by piece: mn_atomic_open gives a stream to a temp file beside
 * path; mn_atomic_commit flushes, fsyncs, closes and renames it over path (write_ok false: the
 * caller's own writes failed, with errno set, so it only cleans up); on any failure the temp
 * file is removed, path is left as it was, and the message names path and the reason. */
typedef struct mn_atomic_file {
    FILE *f;
    char path[4096], tmp[4200];
} mn_atomic_file;

MN_API int mn_atomic_open(mn_atomic_file *a, const char *path);
MN_API int mn_atomic_commit(mn_atomic_file *a, bool write_ok);
/* Drops the temp file without a word (the caller failed for its own reason); path is untouched. */
MN_API void mn_atomic_abort(mn_atomic_file *a);

/* Creates dir and any missing parents (a run folder); a file in the way, or a folder that cannot
 * be made, is an error naming it (with the system's reason). */
MN_API int mn_mkdirs(const char *dir);

/* Fsyncs the folder holding path so that a rename into it survives a power cut (best effort:
 * some file systems refuse to sync a folder). */
MN_API void mn_sync_parent_dir(const char *path);

#endif
