#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mn/fileio.h"

int mn_read_file(const char *path, size_t max_bytes, const char *what, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mn_error(MN_EIO, "%s: cannot open the %s: %s", path, what, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return mn_error(MN_EIO, "%s: a folder, not the %s", path, what);
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = buf ? 0 : mn_error(MN_ENOMEM, "%s: out of memory", path);
    while (!rc) {
        if (n == cap) {
            if (cap > max_bytes) {
                rc = mn_error(MN_EFORMAT, "%s: larger than %zu bytes: not a %s", path, max_bytes, what);
                break;
            }
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) {
                rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = mn_error(MN_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!rc && n > max_bytes) rc = mn_error(MN_EFORMAT, "%s: larger than %zu bytes: not a %s", path, max_bytes, what);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

void mn_sync_parent_dir(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = 0;
    else if (slash) *slash = 0;
    else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int mn_atomic_open(mn_atomic_file *a, const char *path)
{
    memset(a, 0, sizeof *a);
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
        snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof a->tmp)
        return mn_error(MN_EINVAL, "%s: path too long", path);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return mn_error(MN_EIO, "%s: cannot create %s: %s", path, a->tmp, strerror(errno));
    return 0;
}

int mn_atomic_commit(mn_atomic_file *a, bool write_ok)
{
    int err = errno; /* a failed write of the caller's set it */
    if (!a->f) return mn_error(MN_EINVAL, "%s: not open", a->path);
    bool ok = write_ok && !ferror(a->f) && fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    if (write_ok) err = errno;
    if (fclose(a->f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(a->tmp);
        return mn_error(MN_EIO, "%s: write failed: %s (the previous file, if any, is unchanged)", a->path,
                        strerror(err));
    }
    mn_sync_parent_dir(a->path);
    return 0;
}

void mn_atomic_abort(mn_atomic_file *a)
{
    if (!a->f) return;
    fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}

int mn_write_file_atomic(const char *path, const void *data, size_t n)
{
    mn_atomic_file a;
    int rc = mn_atomic_open(&a, path);
    if (rc) return rc;
    return mn_atomic_commit(&a, fwrite(data, 1, n, a.f) == n);
}

/* One folder: made, or already there as a folder (a file of that name is an error). */
static int make_folder(const char *path)
{
    if (mkdir(path, 0777) == 0) return 0;
    int err = errno;
    struct stat sb;
    if (err == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return 0;
    if (err == EEXIST) return mn_error(MN_EIO, "%s: exists and is not a folder", path);
    return mn_error(MN_EIO, "%s: cannot create the folder: %s", path, strerror(err));
}

int mn_mkdirs(const char *dir)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return mn_error(MN_EINVAL, "%s: path too long", dir);
    int rc = 0;
    for (char *p = buf + 1; *p && !rc; p++)
        if (*p == '/') {
            *p = 0;
            rc = make_folder(buf);
            *p = '/';
        }
    return rc ? rc : make_folder(buf);
}
