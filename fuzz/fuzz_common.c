#include "fuzz_common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *mn_fuzz_text(const uint8_t *data, size_t size)
{
    char *t = malloc(size + 1);
    if (!t) return NULL;
    if (size) memcpy(t, data, size);
    t[size] = 0;
    return t;
}

int mn_fuzz_write(const char *target, const uint8_t *data, size_t size, char *path, size_t path_size)
{
    struct stat sb;
    const char *dir = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : getenv("TMPDIR");
    snprintf(path, path_size, "%s/mn_fuzz_%s_%ld", dir ? dir : "/tmp", target, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    close(fd);
    return done == size ? 0 : -1;
}

void mn_fuzz_unlink(const char *path) { unlink(path); }

/* CRC-32 as PNG defines it (polynomial 0xEDB88320, reflected), bit by bit: inputs are small. */
static uint32_t crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return c ^ 0xffffffffu;
}

void mn_fuzz_fix_png_crcs(uint8_t *data, size_t size)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 8 || memcmp(data, sig, 8)) return;
    size_t at = 8;
    while (size - at >= 12) {
        uint32_t len = (uint32_t)data[at] << 24 | (uint32_t)data[at + 1] << 16 | (uint32_t)data[at + 2] << 8 |
                       data[at + 3];
        if (len > size - at - 12) return;
        uint32_t c = crc32(data + at + 4, (size_t)len + 4);
        uint8_t *out = data + at + 8 + len;
        out[0] = (uint8_t)(c >> 24);
        out[1] = (uint8_t)(c >> 16);
        out[2] = (uint8_t)(c >> 8);
        out[3] = (uint8_t)c;
        at += 12 + (size_t)len;
    }
}

uint32_t mn_fuzz_touch(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

void mn_fuzz_sink(uint32_t v) { __asm__ volatile("" : : "r"(v) : "memory"); }
