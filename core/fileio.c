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

int mn_write_file_atomic(const char *path, const void *data, size_t n)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return mn_error(MN_EINVAL, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return mn_error(MN_EIO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        unlink(tmp);
        return mn_error(MN_EIO, "%s: write failed: %s (the previous file, if any, is unchanged)", path, strerror(err));
    }
    mn_sync_parent_dir(path);
    return 0;
}

int mn_mkdirs(const char *dir)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return mn_error(MN_EINVAL, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return mn_error(MN_EIO, "%s: cannot create folder", buf);
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return mn_error(MN_EIO, "%s: cannot create folder", buf);
    return 0;
}
