/* Image I/O: exact PNG and close JPEG round trips, refusal of truncated and corrupt files with
 * the path in the message, label PNGs (grey and palette) and atomic saving. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/image.h"
#include "mn/rng.h"

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/mn_test_image_XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_dir(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(image, .init = make_dir, .fini = remove_dir);

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "create %s", path);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void random_image(mn_image *img, int w, int h, int c, uint64_t seed)
{
    cr_assert_eq(mn_image_alloc(img, w, h, c), 0);
    mn_rng r;
    mn_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)w * h * c; i++) img->data[i] = (uint8_t)mn_rng_int(&r, 0, 255);
}

/* Asserts that loading fails with `code` and that the message names the path. */
static void expect_load_error(const char *path, int code, bool labels)
{
    mn_image img;
    mn_clear_error();
    int rc = labels ? mn_image_load_labels(path, &img) : mn_image_load(path, 0, &img);
    cr_assert_eq(rc, code, "loading %s returned %d (%s), expected %d", path, rc, mn_last_error(), code);
    cr_assert_null(img.data, "no partial image on failure");
    cr_assert(strstr(mn_last_error(), path), "message \"%s\" does not name %s", mn_last_error(), path);
}

Test(image, png_round_trip_is_exact)
{
    for (int c = 1; c <= 4; c++) {
        mn_image a, b;
        random_image(&a, 37, 23, c, 10 + (uint64_t)c);
        char p[300];
        path_of(p, sizeof p, "rt.png");
        cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
        cr_assert_eq(mn_image_load(p, 0, &b), 0, "%s", mn_last_error());
        cr_assert_eq(b.w, 37);
        cr_assert_eq(b.h, 23);
        cr_assert_eq(b.c, c);
        cr_assert_eq(memcmp(a.data, b.data, (size_t)37 * 23 * c), 0, "pixels differ with %d channels", c);
        mn_image_free(&a);
        mn_image_free(&b);
    }
}

Test(image, jpeg_round_trip_is_close)
{
    mn_image a, b;
    cr_assert_eq(mn_image_alloc(&a, 64, 48, 3), 0);
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++) {
            uint8_t *p = &a.data[(y * 64 + x) * 3];
            p[0] = (uint8_t)(x * 4);
            p[1] = (uint8_t)(y * 5);
            p[2] = (uint8_t)(128 + 60 * sin(x * 0.2) * cos(y * 0.15));
        }
    char p[300];
    path_of(p, sizeof p, "rt.JPG");
    cr_assert_eq(mn_image_save(p, &a, 95), 0, "%s", mn_last_error());
    cr_assert_eq(mn_image_load(p, 0, &b), 0, "%s", mn_last_error());
    cr_assert_eq(b.w, 64);
    cr_assert_eq(b.h, 48);
    cr_assert_eq(b.c, 3);
    double sum = 0;
    int worst = 0;
    for (int i = 0; i < 64 * 48 * 3; i++) {
        int d = abs((int)a.data[i] - (int)b.data[i]);
        sum += d;
        if (d > worst) worst = d;
    }
    cr_assert_lt(sum / (64 * 48 * 3), 2.0, "mean abs error %g", sum / (64 * 48 * 3));
    cr_assert_lt(worst, 24, "max abs error %d", worst);
    mn_image_free(&b);
    /* requested channel counts convert: grey is a weighted mean, alpha is opaque */
    cr_assert_eq(mn_image_load(p, 1, &b), 0, "%s", mn_last_error());
    cr_assert_eq(b.c, 1);
    mn_image_free(&b);
    cr_assert_eq(mn_image_load(p, 4, &b), 0, "%s", mn_last_error());
    cr_assert_eq(b.c, 4);
    for (int i = 0; i < 64 * 48; i++) cr_assert_eq(b.data[i * 4 + 3], 255);
    mn_image_free(&b);
    cr_assert_eq(mn_image_load(p, 2, &b), MN_EINVAL);
    mn_image_free(&a);
}

Test(image, truncated_png_is_refused)
{
    mn_image a;
    random_image(&a, 40, 30, 3, 7);
    char p[300], q[300];
    path_of(p, sizeof p, "full.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    /* halfway through the data, in the IEND CRC, without IEND, just after the signature */
    size_t cuts[] = {n / 2, n - 1, n - 12, 8, 20};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        path_of(q, sizeof q, "cut.png");
        write_bytes(q, b, cuts[i]);
        expect_load_error(q, MN_EFORMAT, false);
        expect_load_error(q, MN_EFORMAT, true);
    }
    free(b);
    mn_image_free(&a);
}

Test(image, corrupt_png_is_refused)
{
    mn_image a;
    random_image(&a, 40, 30, 1, 8);
    char p[300];
    path_of(p, sizeof p, "bad.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    b[n / 2] ^= 0x5a; /* inside IDAT: the CRC no longer matches */
    write_bytes(p, b, n);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "CRC"), "%s", mn_last_error());
    free(b);
    mn_image_free(&a);
}

Test(image, truncated_jpeg_is_refused)
{
    mn_image a;
    random_image(&a, 48, 40, 3, 9);
    char p[300], q[300];
    path_of(p, sizeof p, "full.jpg");
    cr_assert_eq(mn_image_save(p, &a, 90), 0, "%s", mn_last_error());
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    mn_image ok;
    cr_assert_eq(mn_image_load(p, 3, &ok), 0, "the intact file loads: %s", mn_last_error());
    mn_image_free(&ok);
    size_t cuts[] = {n / 2, n - 2, n - 1, 4, 100};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        path_of(q, sizeof q, "cut.jpg");
        write_bytes(q, b, cuts[i]);
        expect_load_error(q, MN_EFORMAT, false);
    }
    free(b);
    mn_image_free(&a);
}

Test(image, garbage_empty_and_missing_files)
{
    char p[300];
    path_of(p, sizeof p, "garbage.png");
    uint8_t junk[500];
    mn_rng r;
    mn_rng_seed(&r, 3);
    for (int i = 0; i < 500; i++) junk[i] = (uint8_t)mn_rng_u32(&r);
    write_bytes(p, junk, sizeof junk);
    expect_load_error(p, MN_EFORMAT, false);
    /* a valid PNG signature followed by junk */
    memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
    write_bytes(p, junk, sizeof junk);
    expect_load_error(p, MN_EFORMAT, false);
    path_of(p, sizeof p, "empty.png");
    write_bytes(p, "", 0);
    expect_load_error(p, MN_EFORMAT, false);
    path_of(p, sizeof p, "missing.png");
    expect_load_error(p, MN_EIO, false);
    expect_load_error(p, MN_EIO, true);
}

Test(image, bmp_loads_and_truncated_bmp_is_refused)
{
    /* a 3x2 24-bit bottom-up BMP written by hand: rows padded to 12 bytes */
    uint8_t b[54 + 24] = {'B', 'M'};
    uint32_t fields[][2] = {{2, sizeof b}, {10, 54}, {14, 40}, {18, 3}, {22, 2}, {34, 24}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        for (int k = 0; k < 4; k++) b[fields[i][0] + k] = (uint8_t)(fields[i][1] >> (8 * k));
    b[26] = 1;  /* planes */
    b[28] = 24; /* bits per pixel */
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            uint8_t *px = &b[54 + (1 - y) * 12 + x * 3]; /* stored bottom-up, BGR */
            px[0] = (uint8_t)(10 * x + y);                /* blue */
            px[1] = (uint8_t)(100 + x);                   /* green */
            px[2] = (uint8_t)(200 + y);                   /* red */
        }
    char p[300];
    path_of(p, sizeof p, "small.bmp");
    write_bytes(p, b, sizeof b);
    mn_image img;
    cr_assert_eq(mn_image_load(p, 3, &img), 0, "%s", mn_last_error());
    cr_assert_eq(img.w, 3);
    cr_assert_eq(img.h, 2);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            const uint8_t *px = &img.data[(y * 3 + x) * 3];
            cr_assert(px[0] == 200 + y && px[1] == 100 + x && px[2] == 10 * x + y, "pixel (%d, %d)", x, y);
        }
    mn_image_free(&img);
    write_bytes(p, b, sizeof b - 5);
    expect_load_error(p, MN_EFORMAT, false);
}

Test(image, grey_labels_round_trip)
{
    mn_image a, b;
    cr_assert_eq(mn_image_alloc(&a, 33, 17, 1), 0);
    for (int i = 0; i < 33 * 17; i++) a.data[i] = (uint8_t)(i % 7 == 6 ? 255 : i % 7);
    char p[300];
    path_of(p, sizeof p, "lab.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    cr_assert_eq(mn_image_load_labels(p, &b), 0, "%s", mn_last_error());
    cr_assert(b.w == 33 && b.h == 17 && b.c == 1);
    cr_assert_eq(memcmp(a.data, b.data, 33 * 17), 0);
    mn_image_free(&a);
    mn_image_free(&b);
}

Test(image, labels_refuse_colour_and_jpeg)
{
    mn_image a;
    random_image(&a, 20, 20, 3, 4);
    char p[300];
    path_of(p, sizeof p, "rgb.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    expect_load_error(p, MN_EFORMAT, true);
    cr_assert(strstr(mn_last_error(), "3 channels"), "%s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "colour map") && strstr(mn_last_error(), "palette"), "%s", mn_last_error());
    mn_image_free(&a);
    random_image(&a, 20, 20, 4, 5);
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    expect_load_error(p, MN_EFORMAT, true);
    cr_assert(strstr(mn_last_error(), "4 channels"), "%s", mn_last_error());
    mn_image_free(&a);
    random_image(&a, 20, 20, 1, 6);
    path_of(p, sizeof p, "grey.jpg");
    cr_assert_eq(mn_image_save(p, &a, 90), 0, "%s", mn_last_error());
    expect_load_error(p, MN_EFORMAT, true);
    mn_image_free(&a);
}

/* --- a palette PNG written by hand (stb cannot write one): stored deflate blocks --- */

static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

static size_t put32(uint8_t *o, uint32_t v)
{
    for (int i = 0; i < 4; i++) o[i] = (uint8_t)(v >> (24 - 8 * i));
    return 4;
}

static size_t put_chunk(uint8_t *o, const char *type, const uint8_t *data, size_t len)
{
    size_t k = put32(o, (uint32_t)len);
    memcpy(o + k, type, 4);
    if (len) memcpy(o + k + 4, data, len);
    put32(o + k + 4 + len, crc_bitwise(o + 4, len + 4));
    return 12 + len;
}

/* indices (h, w), each < 2^depth; returns the file size written into out */
static size_t palette_png(uint8_t *out, const uint8_t *idx, int w, int h, int depth)
{
    size_t row = ((size_t)w * depth + 7) / 8 + 1;
    size_t raw_n = row * h;
    uint8_t *raw = calloc(raw_n, 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int bit = x * depth;
            raw[y * row + 1 + bit / 8] |= (uint8_t)(idx[y * w + x] << (8 - depth - bit % 8));
        }
    uint8_t *z = malloc(raw_n + 64);
    size_t k = 0;
    z[k++] = 0x78;
    z[k++] = 0x01;
    z[k++] = 1; /* one final stored block */
    z[k++] = (uint8_t)raw_n;
    z[k++] = (uint8_t)(raw_n >> 8);
    z[k++] = (uint8_t)~raw_n;
    z[k++] = (uint8_t)(~raw_n >> 8);
    memcpy(z + k, raw, raw_n);
    k += raw_n;
    uint32_t s1 = 1, s2 = 0;
    for (size_t i = 0; i < raw_n; i++) {
        s1 = (s1 + raw[i]) % 65521;
        s2 = (s2 + s1) % 65521;
    }
    k += put32(z + k, s2 << 16 | s1);

    size_t n = 0;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    uint8_t ihdr[13] = {0};
    put32(ihdr, (uint32_t)w);
    put32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = 3;
    n += put_chunk(out + n, "IHDR", ihdr, 13);
    uint8_t plte[256 * 3];
    int entries = 1 << depth;
    for (int i = 0; i < entries * 3; i++) plte[i] = (uint8_t)(i * 37 + 11); /* colours unrelated to indices */
    n += put_chunk(out + n, "PLTE", plte, (size_t)entries * 3);
    uint8_t trns[2] = {0, 128};
    n += put_chunk(out + n, "tRNS", trns, 2);
    n += put_chunk(out + n, "IDAT", z, k);
    n += put_chunk(out + n, "IEND", NULL, 0);
    free(raw);
    free(z);
    return n;
}

Test(image, palette_labels_give_indices)
{
    int depths[] = {8, 4, 2, 1};
    for (int d = 0; d < 4; d++) {
        int w = 13, h = 9, depth = depths[d];
        uint8_t idx[13 * 9];
        for (int i = 0; i < w * h; i++) idx[i] = (uint8_t)((i * 5 + i / w) % (1 << depth));
        if (depth == 8) idx[3] = 255;
        uint8_t *file = malloc(4096);
        size_t n = palette_png(file, idx, w, h, depth);
        char p[300];
        path_of(p, sizeof p, "pal.png");
        write_bytes(p, file, n);
        mn_image img;
        cr_assert_eq(mn_image_load_labels(p, &img), 0, "depth %d: %s", depth, mn_last_error());
        cr_assert(img.w == w && img.h == h && img.c == 1);
        for (int i = 0; i < w * h; i++)
            cr_assert_eq(img.data[i], idx[i], "depth %d pixel %d: %d, expected %d", depth, i, img.data[i], idx[i]);
        mn_image_free(&img);
        /* the ordinary loader expands the palette to colours */
        cr_assert_eq(mn_image_load(p, 3, &img), 0, "%s", mn_last_error());
        cr_assert_eq(img.data[0], (uint8_t)(idx[0] * 3 * 37 + 11));
        mn_image_free(&img);
        free(file);
    }
}

Test(image, failed_save_leaves_existing_file_intact)
{
    char p[300];
    path_of(p, sizeof p, "keep.txt");
    const char text[] = "precious data";
    write_bytes(p, text, sizeof text);
    mn_image a;
    random_image(&a, 8, 8, 3, 1);
    mn_clear_error();
    cr_assert_eq(mn_image_save(p, &a, 90), MN_EINVAL, "unknown extension");
    cr_assert(strstr(mn_last_error(), p), "%s", mn_last_error());
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    cr_assert(n == sizeof text && !memcmp(b, text, n), "file changed");
    free(b);

    /* an existing PNG survives a save with bad arguments */
    path_of(p, sizeof p, "keep.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    size_t n0;
    uint8_t *b0 = read_bytes(p, &n0);
    mn_image bad = a;
    bad.c = 5;
    cr_assert_eq(mn_image_save(p, &bad, 0), MN_EINVAL);
    cr_assert_eq(mn_image_save(p, &(mn_image){0}, 0), MN_EINVAL);
    char j[300];
    path_of(j, sizeof j, "q.jpg");
    cr_assert_eq(mn_image_save(j, &a, 0), MN_EINVAL, "JPEG quality 0");
    b = read_bytes(p, &n);
    cr_assert(n == n0 && !memcmp(b, b0, n), "PNG changed by a failed save");
    free(b);
    free(b0);

    /* unwritable location: the parent "directory" is a regular file */
    char q[400];
    snprintf(q, sizeof q, "%s/sub.png", p);
    mn_clear_error();
    cr_assert_eq(mn_image_save(q, &a, 0), MN_EIO);
    cr_assert(strstr(mn_last_error(), q), "%s", mn_last_error());
    mn_image_free(&a);
}

Test(image, save_replaces_atomically_and_cleans_up)
{
    char p[300];
    path_of(p, sizeof p, "x.png");
    mn_image a, b, c;
    random_image(&a, 10, 10, 3, 1);
    random_image(&b, 12, 6, 1, 2);
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    cr_assert_eq(mn_image_save(p, &b, 0), 0, "%s", mn_last_error());
    cr_assert_eq(mn_image_load(p, 0, &c), 0, "%s", mn_last_error());
    cr_assert(c.w == 12 && c.h == 6 && c.c == 1 && !memcmp(c.data, b.data, 72), "second save replaced the first");
    mn_image_free(&c);
    /* the target is a directory: rename fails, the directory stays, no temp file is left */
    char d[300];
    path_of(d, sizeof d, "adir.png");
    cr_assert_eq(mkdir(d, 0755), 0);
    cr_assert_eq(mn_image_save(d, &a, 0), MN_EIO);
    struct stat sb;
    cr_assert(stat(d, &sb) == 0 && S_ISDIR(sb.st_mode));
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", d, (long)getpid());
    cr_assert_neq(access(tmp, F_OK), 0, "temp file %s left behind", tmp);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    cr_assert_neq(access(tmp, F_OK), 0, "temp file %s left behind", tmp);
    mn_image_free(&a);
    mn_image_free(&b);
}

Test(image, alloc_checks_sizes)
{
    mn_image a;
    cr_assert_eq(mn_image_alloc(&a, 0, 5, 3), MN_EINVAL);
    cr_assert_null(a.data);
    cr_assert_eq(mn_image_alloc(&a, 5, -1, 3), MN_EINVAL);
    cr_assert_eq(mn_image_alloc(&a, 5, 5, 5), MN_EINVAL);
    cr_assert_eq(mn_image_alloc(&a, 7, 5, 3), 0);
    for (int i = 0; i < 7 * 5 * 3; i++) cr_assert_eq(a.data[i], 0);
    mn_image_free(&a);
    cr_assert_null(a.data);
    mn_image_free(&a); /* twice is harmless */
    mn_image_free(NULL);
}

/* --- hostile input: truncation at every point, headers claiming huge sizes --- */

/* Writes the first `keep` bytes of b to a file and asserts that every loader refuses it
 * with MN_EFORMAT and the path in the message (labels too when `labels`). */
static void expect_cut_refused(const uint8_t *b, size_t n, size_t keep, const char *name, bool labels)
{
    char q[300];
    path_of(q, sizeof q, name);
    write_bytes(q, b, keep);
    mn_image img;
    int rc = mn_image_load(q, 3, &img);
    cr_assert_neq(rc, 0, "%s cut to %zu of %zu bytes was accepted", name, keep, n);
    cr_assert_null(img.data);
    cr_assert(strstr(mn_last_error(), q), "cut at %zu: message \"%s\" does not name the file", keep, mn_last_error());
    if (labels) {
        rc = mn_image_load_labels(q, &img);
        cr_assert_neq(rc, 0, "%s cut to %zu of %zu bytes was accepted as labels", name, keep, n);
        cr_assert(strstr(mn_last_error(), q), "%s", mn_last_error());
    }
}

static void expect_every_cut_refused(const char *saved, const char *name, bool labels)
{
    size_t n;
    uint8_t *b = read_bytes(saved, &n);
    for (int k = 0; k < 10; k++) expect_cut_refused(b, n, n * (size_t)k / 10, name, labels);
    expect_cut_refused(b, n, n - 1, name, labels);
    free(b);
}

Test(image, every_truncation_point_is_refused)
{
    mn_image a;
    random_image(&a, 64, 48, 3, 21);
    char p[300];
    path_of(p, sizeof p, "full.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    expect_every_cut_refused(p, "cut.png", false);
    path_of(p, sizeof p, "full.jpg");
    cr_assert_eq(mn_image_save(p, &a, 85), 0, "%s", mn_last_error());
    expect_every_cut_refused(p, "cut.jpg", false);
    mn_image_free(&a);
    random_image(&a, 64, 48, 1, 22);
    path_of(p, sizeof p, "lab.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    expect_every_cut_refused(p, "cutlab.png", true);
    mn_image_free(&a);
}

/* A w x h 24-bit bottom-up BMP header (54 bytes) followed by `pixels` bytes of data. */
static uint8_t *bmp_file(int32_t w, int32_t h, size_t pixels, size_t *n)
{
    *n = 54 + pixels;
    uint8_t *b = calloc(*n, 1);
    cr_assert_not_null(b);
    b[0] = 'B';
    b[1] = 'M';
    uint32_t fields[][2] = {{2, (uint32_t)*n}, {10, 54}, {14, 40}, {18, (uint32_t)w}, {22, (uint32_t)h}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        for (int k = 0; k < 4; k++) b[fields[i][0] + k] = (uint8_t)(fields[i][1] >> (8 * k));
    b[26] = 1;  /* planes */
    b[28] = 24; /* bits per pixel */
    for (size_t i = 54; i < *n; i++) b[i] = (uint8_t)(i * 7);
    return b;
}

Test(image, truncated_bmp_is_refused_at_every_point)
{
    size_t n;
    uint8_t *b = bmp_file(20, 10, 60 * 10, &n); /* rows of 60 bytes, already a multiple of 4 */
    char p[300];
    path_of(p, sizeof p, "full.bmp");
    write_bytes(p, b, n);
    mn_image img;
    cr_assert_eq(mn_image_load(p, 3, &img), 0, "%s", mn_last_error());
    cr_assert(img.w == 20 && img.h == 10);
    mn_image_free(&img);
    for (int k = 0; k < 10; k++) expect_cut_refused(b, n, n * (size_t)k / 10, "cut.bmp", false);
    expect_cut_refused(b, n, n - 1, "cut.bmp", false);
    free(b);
}

/* Copies a small JPEG written by mn_image_save into buf and returns its size; *sof is the
 * offset of its frame header's height field. */
static size_t small_jpeg(uint8_t *buf, size_t cap, int w, int h, size_t *sof)
{
    mn_image a;
    random_image(&a, w, h, 3, 31);
    char p[300];
    path_of(p, sizeof p, "small.jpg");
    cr_assert_eq(mn_image_save(p, &a, 75), 0, "%s", mn_last_error());
    mn_image_free(&a);
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    cr_assert_leq(n, cap);
    memcpy(buf, b, n);
    free(b);
    *sof = 0;
    for (size_t i = 2; i + 9 < n; i++)
        if (buf[i] == 0xff && buf[i + 1] == 0xc0) {
            *sof = i + 5; /* marker(2) length(2) precision(1), then height and width */
            break;
        }
    cr_assert_neq(*sof, 0, "no SOF0 in the saved JPEG");
    return n;
}

static void put16(uint8_t *p, int v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* A PNG of w x h RGB whose IDAT holds only `rows` filtered rows of zeros (stored deflate). */
static size_t short_png(uint8_t *out, uint32_t w, uint32_t h, size_t raw_n)
{
    uint8_t *z = calloc(raw_n + 16, 1);
    size_t k = 0;
    z[k++] = 0x78;
    z[k++] = 0x01;
    z[k++] = 1;
    z[k++] = (uint8_t)raw_n;
    z[k++] = (uint8_t)(raw_n >> 8);
    z[k++] = (uint8_t)~raw_n;
    z[k++] = (uint8_t)(~raw_n >> 8);
    k += raw_n; /* zeros: filter 0, black pixels */
    k += put32(z + k, (uint32_t)((raw_n % 65521) << 16 | 1)); /* adler32 of zeros */
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    size_t n = 8;
    uint8_t ihdr[13] = {0};
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = 2;
    n += put_chunk(out + n, "IHDR", ihdr, 13);
    n += put_chunk(out + n, "IDAT", z, k);
    n += put_chunk(out + n, "IEND", NULL, 0);
    free(z);
    return n;
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Loads path expecting the pixel-limit error for a w x h header, in well under a second. */
static void expect_limit(const char *path, int w, int h, int64_t max_pixels, bool labels)
{
    mn_image img;
    double t0 = seconds_now();
    int rc = labels ? mn_image_load_labels_max(path, max_pixels, &img) : mn_image_load_max(path, 3, max_pixels, &img);
    double dt = seconds_now() - t0;
    cr_assert_eq(rc, MN_EFORMAT, "%s: %d (%s)", path, rc, mn_last_error());
    cr_assert_null(img.data);
    char want[400], size[32], limit[32];
    int64_t lim = max_pixels > 0 ? max_pixels : MN_IMAGE_DEFAULT_MAX_PIXELS;
    if ((double)w * h >= 1e5) snprintf(size, sizeof size, "%.1f Mpx", (double)w * h / 1e6);
    else snprintf(size, sizeof size, "%d px", w * h);
    if (lim >= 100000) snprintf(limit, sizeof limit, "%.1f Mpx", (double)lim / 1e6);
    else snprintf(limit, sizeof limit, "%lld px", (long long)lim);
    snprintf(want, sizeof want, "%s: image is %dx%d (%s), above the limit of %s (data.max_pixels / --max-pixels raises it)",
             path, w, h, size, limit);
    cr_assert_str_eq(mn_last_error(), want);
    cr_assert_lt(dt, 2.0, "refusing %s took %.2f s: it decoded first", path, dt);
}

Test(image, limit_message_reads_well_at_both_ends)
{
    char p[300];
    uint8_t *png = malloc(4096);
    size_t n = short_png(png, 12000, 12000, 1024);
    path_of(p, sizeof p, "huge.png");
    write_bytes(p, png, n);
    free(png);
    mn_image img;
    cr_assert_eq(mn_image_load(p, 3, &img), MN_EFORMAT);
    char want[600];
    snprintf(want, sizeof want,
             "%s: image is 12000x12000 (144.0 Mpx), above the limit of 64.0 Mpx (data.max_pixels / --max-pixels "
             "raises it)",
             p);
    cr_assert_str_eq(mn_last_error(), want);
    cr_assert_eq(mn_image_load_max(p, 3, 5000, &img), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "(144.0 Mpx), above the limit of 5000 px"), "%s", mn_last_error());
}

Test(image, huge_headers_are_refused_before_decoding)
{
    char p[300];
    /* PNG: a valid file whose IHDR claims the size (the 140 KB file of the report) */
    uint8_t *png = malloc(4096);
    for (int s = 0; s < 2; s++) {
        int side = s ? 30000 : 12000;
        size_t n = short_png(png, (uint32_t)side, (uint32_t)side, 1024);
        path_of(p, sizeof p, "huge.png");
        write_bytes(p, png, n);
        expect_limit(p, side, side, 0, false);
        expect_limit(p, side, side, 0, true);
    }
    free(png);
    /* JPEG: a real 32x24 file with its frame header patched (the 792-byte file of the report) */
    uint8_t jpg[16384];
    size_t sof, n = small_jpeg(jpg, sizeof jpg, 32, 24, &sof);
    for (int s = 0; s < 2; s++) {
        int side = s ? 30000 : 12000;
        put16(jpg + sof, side);
        put16(jpg + sof + 2, side);
        path_of(p, sizeof p, "huge.jpg");
        write_bytes(p, jpg, n);
        expect_limit(p, side, side, 0, false);
    }
    /* BMP: the header alone */
    for (int s = 0; s < 2; s++) {
        int side = s ? 30000 : 12000;
        size_t bn;
        uint8_t *bmp = bmp_file(side, side, 64, &bn);
        path_of(p, sizeof p, "huge.bmp");
        write_bytes(p, bmp, bn);
        expect_limit(p, side, side, 0, false);
        /* top-down rows (negative height) are the same size */
        bmp = realloc(bmp, bn);
        for (int k = 0; k < 4; k++) bmp[22 + k] = (uint8_t)((uint32_t)-side >> (8 * k));
        write_bytes(p, bmp, bn);
        expect_limit(p, side, side, 0, false);
        free(bmp);
    }
    /* just past the default: 8000 x 8001 */
    path_of(p, sizeof p, "edge.bmp");
    size_t bn;
    uint8_t *bmp = bmp_file(8000, 8001, 64, &bn);
    write_bytes(p, bmp, bn);
    expect_limit(p, 8000, 8001, 0, false);
    free(bmp);
}

Test(image, raised_limit_still_refuses_small_files_claiming_huge_images)
{
    /* with the limit raised, the size checks of the data catch the same files without decoding */
    char p[300];
    uint8_t *png = malloc(4096);
    size_t n = short_png(png, 12000, 12000, 1024);
    path_of(p, sizeof p, "huge.png");
    write_bytes(p, png, n);
    free(png);
    mn_image img;
    double t0 = seconds_now();
    cr_assert_eq(mn_image_load_max(p, 3, 200000000, &img), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "truncated PNG: 1035 bytes of image data cannot hold 12000x12000 pixels"), "%s",
              mn_last_error());
    uint8_t jpg[16384];
    size_t sof, jn = small_jpeg(jpg, sizeof jpg, 32, 24, &sof);
    put16(jpg + sof, 12000);
    put16(jpg + sof + 2, 12000);
    path_of(p, sizeof p, "huge.jpg");
    write_bytes(p, jpg, jn);
    cr_assert_eq(mn_image_load_max(p, 3, 200000000, &img), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "truncated JPEG: the scan at byte") &&
                  strstr(mn_last_error(), "a 12000x12000 image needs at least"),
              "%s", mn_last_error());
    size_t bn;
    uint8_t *bmp = bmp_file(12000, 12000, 64, &bn);
    path_of(p, sizeof p, "huge.bmp");
    write_bytes(p, bmp, bn);
    free(bmp);
    cr_assert_eq(mn_image_load_max(p, 3, 200000000, &img), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "truncated BMP: pixel data needs 432000054 bytes"), "%s", mn_last_error());
    cr_assert_lt(seconds_now() - t0, 2.0);
}

Test(image, pixel_limit_is_configurable_per_call)
{
    mn_image a, b;
    random_image(&a, 40, 30, 1, 23);
    char p[300];
    path_of(p, sizeof p, "small.png");
    cr_assert_eq(mn_image_save(p, &a, 0), 0, "%s", mn_last_error());
    /* 1200 pixels: refused at 1199, loaded at 1200 and with the default (0 or negative) */
    expect_limit(p, 40, 30, 1199, false);
    expect_limit(p, 40, 30, 1199, true);
    cr_assert_eq(mn_image_load_max(p, 0, 1200, &b), 0, "%s", mn_last_error());
    cr_assert(b.w == 40 && b.h == 30 && !memcmp(a.data, b.data, 1200));
    mn_image_free(&b);
    cr_assert_eq(mn_image_load_max(p, 0, 0, &b), 0, "%s", mn_last_error());
    mn_image_free(&b);
    cr_assert_eq(mn_image_load_labels_max(p, -5, &b), 0, "%s", mn_last_error());
    mn_image_free(&b);
    cr_assert_eq(mn_image_load_labels_max(p, 1200, &b), 0, "%s", mn_last_error());
    mn_image_free(&b);
    mn_image_free(&a);
}

Test(image, zero_sizes_in_headers_are_refused)
{
    char p[300];
    uint8_t *png = malloc(4096);
    size_t n = short_png(png, 0, 10, 16);
    path_of(p, sizeof p, "zero.png");
    write_bytes(p, png, n);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "corrupt image header: 0x10 pixels (sizes must be positive)"), "%s",
              mn_last_error());
    expect_load_error(p, MN_EFORMAT, true);
    n = short_png(png, 10, 0, 16);
    write_bytes(p, png, n);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "10x0 pixels"), "%s", mn_last_error());
    /* IHDR sizes are unsigned 32-bit: 2^32 - 1 is a size, refused by the limit */
    n = short_png(png, 0xffffffffu, 0xffffffffu, 16);
    write_bytes(p, png, n);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "image is 4294967295x4294967295"), "%s", mn_last_error());
    free(png);

    uint8_t jpg[16384];
    size_t sof, jn = small_jpeg(jpg, sizeof jpg, 32, 24, &sof);
    put16(jpg + sof, 0);
    path_of(p, sizeof p, "zero.jpg");
    write_bytes(p, jpg, jn);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "the frame header gives a height of 0"), "%s", mn_last_error());
    put16(jpg + sof, 24);
    put16(jpg + sof + 2, 0);
    write_bytes(p, jpg, jn);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "corrupt image header: 0x24 pixels"), "%s", mn_last_error());

    size_t bn;
    uint8_t *bmp = bmp_file(0, 10, 64, &bn);
    path_of(p, sizeof p, "zero.bmp");
    write_bytes(p, bmp, bn);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "0x10 pixels"), "%s", mn_last_error());
    free(bmp);
    bmp = bmp_file(-4, 10, 64, &bn);
    write_bytes(p, bmp, bn);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "-4x10 pixels"), "%s", mn_last_error());
    free(bmp);
}

Test(image, jpeg_scan_cut_short_before_its_end_marker_is_refused)
{
    /* a cut file "repaired" with an end marker: every segment is intact, but stb would fill
     * the missing blocks with grey without complaint */
    mn_image a;
    random_image(&a, 256, 256, 3, 41);
    char p[300];
    path_of(p, sizeof p, "full.jpg");
    cr_assert_eq(mn_image_save(p, &a, 90), 0, "%s", mn_last_error());
    mn_image_free(&a);
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    size_t sos = 0;
    for (size_t i = 2; i + 4 < n; i++)
        if (b[i] == 0xff && b[i + 1] == 0xda) {
            sos = i + 2 + ((size_t)b[i + 2] << 8 | b[i + 3]);
            break;
        }
    cr_assert_neq(sos, 0);
    uint8_t *cut = malloc(sos + 64);
    memcpy(cut, b, sos + 60);
    if (cut[sos + 59] == 0xff) cut[sos + 59] = 0; /* do not leave half a marker */
    cut[sos + 60] = 0xff;
    cut[sos + 61] = 0xd9;
    path_of(p, sizeof p, "patched.jpg");
    write_bytes(p, cut, sos + 62);
    expect_load_error(p, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "truncated JPEG: the scan at byte"), "%s", mn_last_error());
    cr_assert(strstr(mn_last_error(), "has 60 bytes of data, a 256x256 image needs at least"), "%s", mn_last_error());
    free(cut);
    /* bytes after the end marker are ignored, as decoders do (camera trailers) */
    uint8_t *more = malloc(n + 100);
    memcpy(more, b, n);
    memset(more + n, 0xab, 100);
    write_bytes(p, more, n + 100);
    cr_assert_eq(mn_image_load(p, 3, &a), 0, "%s", mn_last_error());
    cr_assert(a.w == 256 && a.h == 256);
    mn_image_free(&a);
    free(more);
    free(b);
}

/* Two inputs that fuzzing with stb_image compiled in found to reach undefined behaviour inside the
 * decoder; the container checks refuse them first. */
Test(image, fuzz_findings_in_stb_are_refused_before_decoding)
{
    /* F1: a DHT segment shorter than its 16 code counts; stb wrote past a 257-byte array */
    char path[512];
    snprintf(path, sizeof path, "%s/fuzz/regressions/image/stb_jpeg_dht_counts_past_257.jpg", MN_SOURCE_DIR);
    expect_load_error(path, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "corrupt JPEG: Huffman table at byte 2 is cut short"), "%s", mn_last_error());
    /* the same with the counts declaring more than 256 codes in a segment long enough for them */
    uint8_t jpg[600];
    size_t n = 0;
    jpg[n++] = 0xff, jpg[n++] = 0xd8, jpg[n++] = 0xff, jpg[n++] = 0xc4;
    size_t seg = 2 + 17 + 300;
    jpg[n++] = (uint8_t)(seg >> 8), jpg[n++] = (uint8_t)seg, jpg[n++] = 0x00;
    for (int k = 0; k < 16; k++) jpg[n++] = k < 15 ? 20 : 0; /* 300 codes */
    memset(jpg + n, 1, 300);
    n += 300;
    jpg[n++] = 0xff, jpg[n++] = 0xd9;
    path_of(path, sizeof path, "dht300.jpg");
    write_bytes(path, jpg, n);
    expect_load_error(path, MN_EFORMAT, false);
    cr_assert(strstr(mn_last_error(), "declares 300 codes"), "%s", mn_last_error());
    /* F2: an empty IDAT chunk (valid CRCs); stb computed NULL + 0 */
    uint8_t png[256], ihdr[13] = {0, 0, 0, 8, 0, 0, 0, 8, 8, 0, 0, 0, 0}, row[9 * 8] = {0};
    n = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    n += put_chunk(png + n, "IHDR", ihdr, 13);
    n += put_chunk(png + n, "IDAT", NULL, 0);
    /* the scan lines (8 rows of a filter byte and 8 zero pixels) as one stored deflate block */
    uint8_t zbuf[100];
    size_t z = 0, rl = sizeof row;
    zbuf[z++] = 0x78, zbuf[z++] = 0x01, zbuf[z++] = 0x01;
    zbuf[z++] = (uint8_t)rl, zbuf[z++] = (uint8_t)(rl >> 8), zbuf[z++] = (uint8_t)~rl, zbuf[z++] = (uint8_t)(~rl >> 8);
    memcpy(zbuf + z, row, rl);
    z += rl;
    z += put32(zbuf + z, (uint32_t)rl << 16 | 1); /* Adler-32 of zeros: a = 1, b = their count */
    n += put_chunk(png + n, "IDAT", zbuf, z);
    n += put_chunk(png + n, "IEND", NULL, 0);
    path_of(path, sizeof path, "empty_idat.png");
    write_bytes(path, png, n);
    expect_load_error(path, MN_EFORMAT, true);
    cr_assert(strstr(mn_last_error(), "corrupt PNG: empty IDAT chunk at byte 33"), "%s", mn_last_error());
}

/* F3: scans that name a Huffman table no DHT defined (one file has no DQT either); stb decoded
 * with the undefined tables and read past a 257-byte array. */
Test(image, jpeg_scans_need_defined_tables)
{
    static const char *const files[] = {"stb_jpeg_scan_uses_undefined_huffman_table.jpg",
                                         "stb_jpeg_no_dqt_scan_uses_undefined_dc_table.jpg"};
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/fuzz/regressions/image/%s", MN_SOURCE_DIR, files[i]);
        expect_load_error(path, MN_EFORMAT, false);
        cr_assert(strstr(mn_last_error(), "uses a Huffman table no DHT defined"), "%s", mn_last_error());
    }
}
