/* safetensors: round trip and strict rejection of every kind of bad file. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "mn/safetensors.h"

static char dir[64];

static void mkdir_tmp(void)
{
    strcpy(dir, "/tmp/mn_st_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(safetensors, .init = mkdir_tmp, .fini = rm_tmp);

static void write_good(const char *path)
{
    float a[6] = {1, 2, 3, 4, 5, 6};
    int32_t b[3] = {7, -8, 9};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    mn_st_item items[2] = {{"layer.weight", MN_ST_F32, 2, sa, a}, {"labels", MN_ST_I32, 1, sb, b}};
    const char *k[1] = {"format"}, *v[1] = {"mutualnet"};
    cr_assert_eq(mn_st_write(path, items, 2, k, v, 1), 0, "%s", mn_last_error());
}

/* Writes a file from a raw header string and data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(header);
    fwrite(&len, 8, 1, f);
    fputs(header, f);
    fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_error(const char *path, const char *needle)
{
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    cr_assert_neq(rc, 0, "%s was accepted", path);
    cr_assert(strstr(mn_last_error(), needle), "message \"%s\" lacks \"%s\"", mn_last_error(), needle);
    cr_assert(strstr(mn_last_error(), path), "message \"%s\" does not name the file", mn_last_error());
    cr_assert_null(st.entries);
}

Test(safetensors, round_trip)
{
    char path[128];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    write_good(path);
    mn_safetensors st;
    cr_assert_eq(mn_st_read(path, &st), 0, "%s", mn_last_error());
    cr_assert_eq(st.n, 2);
    cr_assert_str_eq(mn_st_meta(&st, "format"), "mutualnet");
    mn_tensor t;
    int64_t shape[2] = {2, 3};
    cr_assert_eq(mn_st_get_f32(&st, "layer.weight", 2, shape, &t), 0);
    for (int i = 0; i < 6; i++) cr_assert_eq(t.data[i], (float)(i + 1));
    const mn_st_entry *e = mn_st_find(&st, "labels");
    cr_assert(e && e->dtype == MN_ST_I32 && ((int32_t *)e->data)[1] == -8);
    /* header is padded so the data section is 8-byte aligned */
    FILE *f = fopen(path, "rb");
    uint64_t hlen;
    cr_assert_eq(fread(&hlen, 8, 1, f), 1);
    fclose(f);
    cr_assert_eq(hlen % 8, 0);
    mn_st_free(&st);
}

Test(safetensors, wrong_shape_dtype_missing_name_the_tensor)
{
    char path[128];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    write_good(path);
    mn_safetensors st;
    cr_assert_eq(mn_st_read(path, &st), 0);
    mn_tensor t;
    int64_t bad[2] = {3, 2};
    cr_assert_eq(mn_st_get_f32(&st, "layer.weight", 2, bad, &t), MN_ESHAPE);
    cr_assert(strstr(mn_last_error(), "layer.weight has shape [2, 3], expected [3, 2]"), "%s", mn_last_error());
    cr_assert_eq(mn_st_get_any_f32(&st, "labels", &t), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "labels has dtype I32"), "%s", mn_last_error());
    cr_assert_eq(mn_st_get_any_f32(&st, "nope", &t), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "tensor nope is missing"), "%s", mn_last_error());
    mn_st_free(&st);
}

Test(safetensors, truncated_files)
{
    char good[128], path[128];
    snprintf(good, sizeof good, "%s/a.safetensors", dir);
    write_good(good);
    FILE *f = fopen(good, "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    size_t cuts[] = {0, 5, 8, 20, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        f = fopen(path, "wb");
        fwrite(buf, 1, cuts[i], f);
        fclose(f);
        mn_safetensors st;
        cr_assert_neq(mn_st_read(path, &st), 0, "accepted a file cut at %zu of %zu bytes", cuts[i], n);
        cr_assert(strstr(mn_last_error(), path));
    }
}

Test(safetensors, lying_headers)
{
    char path[128];
    snprintf(path, sizeof path, "%s/l.safetensors", dir);
    float d[4] = {0};
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12);
    expect_error(path, "overlap");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8);
    expect_error(path, "hole");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 8);
    expect_error(path, "outside the 8 data bytes");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8);
    expect_error(path, "shape needs 12 bytes");
    write_raw(path, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", d, 8);
    expect_error(path, "unsupported dtype BF16");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", d, 8);
    expect_error(path, "unknown header key");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", d, 8);
    expect_error(path, ": header: invalid JSON at line 1");
    write_raw(path, "[1, 2]", d, 8);
    expect_error(path, "header is not a JSON object");
    write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8);
    expect_error(path, "cover 4 of the 8");
}

Test(safetensors, missing_file_and_failed_write_keep_old_file)
{
    char path[128];
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    expect_error(path, "cannot open");
    /* a target that is a directory cannot be replaced: the write fails and leaves no temp file */
    snprintf(path, sizeof path, "%s/sub", dir);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir %s && touch %s/keep", path, path);
    cr_assert_eq(system(cmd), 0);
    float a[1] = {1};
    int64_t s[1] = {1};
    mn_st_item it = {"a", MN_ST_F32, 1, s, a};
    cr_assert_neq(mn_st_write(path, &it, 1, NULL, NULL, 0), 0);
    cr_assert(strstr(mn_last_error(), path));
    snprintf(cmd, sizeof cmd, "test -f %s/keep && test $(ls %s | wc -l) -eq 1", path, dir);
    cr_assert_eq(system(cmd), 0, "the directory was touched or a temp file was left behind");
}

/* Headers crafted to overflow or confuse the size arithmetic: each must be refused by
 * mn_st_read itself, naming the file and the tensor, before any product can wrap (the
 * suite runs under UBSan in CI). */
Test(safetensors, crafted_shapes_and_offsets)
{
    char path[128];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    float d[4] = {0};
    static const struct {
        const char *header;
        const char *needle;
    } cases[] = {
        /* a zero dim used to make the product 0, so the header matched its 0 data bytes and
         * a tensor view then multiplied 1e12 * 1e12 into its strides (signed overflow) */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[0,1000000000000,1000000000000],\"data_offsets\":[0,0]},"
         "\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "tensor w: shape overflows"},
        /* 2^32 * 2^32 wraps a size_t product to 0 */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]},"
         "\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "tensor w: shape overflows"},
        /* 2^62 elements of 4 bytes: the element count fits, the byte count does not */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,16]}}",
         "tensor w: shape overflows"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "tensor w: shape[0] = -4 is not a size"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", "tensor w: shape[0] = 2.5 is not a size"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", "tensor w: shape[0] = 1e+300"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", "tensor w: shape[0] is not a number"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}",
         "tensor w: rank 9 is above the limit of 8"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1e300]}}", "tensor w: data_offsets must be"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", "tensor w: data_offsets must be"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0.5,16.5]}}", "tensor w: data_offsets must be"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,\"16\"]}}", "tensor w: data_offsets must be"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}", "tensor w: data_offsets [16, 20] outside"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", "tensor w: data_offsets [8, 4] outside"},
        /* 2^64 - 16 as an offset: a double rounds it to 2^64, past any size_t */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[18446744073709551600,16]}}",
         "tensor w: data_offsets must be"},
        /* overlapping and non-contiguous tensors */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         "tensor b starts at byte 8 of the data, expected 16 (overlap)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         "tensor b starts at byte 8 of the data, expected 4 (hole)"},
        /* the same tensor name twice: JSON readers would keep one of them */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         ": header: duplicate key \"a\" in the top-level object"},
        {"{\"__metadata__\":{\"format\":\"pt\",\"step\":12},\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "__metadata__ value of \"step\" is not a string"},
        {"{\"__metadata__\":[\"pt\"],\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "__metadata__ is not an object of strings"},
        {"{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"},\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "duplicate key \"a\" in __metadata__"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} {}", "unexpected text after the value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_raw(path, cases[i].header, d, 16);
        mn_safetensors st;
        int rc = mn_st_read(path, &st);
        cr_assert_eq(rc, MN_EFORMAT, "case %zu accepted (%d): %s", i, rc, cases[i].header);
        cr_assert(strstr(mn_last_error(), cases[i].needle), "case %zu: message \"%s\" lacks \"%s\"", i, mn_last_error(),
                  cases[i].needle);
        cr_assert(!strncmp(mn_last_error(), path, strlen(path)), "case %zu: message \"%s\" does not start with the file",
                  i, mn_last_error());
        cr_assert_null(st.entries);
    }
}

Test(safetensors, empty_tensors_and_huge_but_honest_shapes_are_fine)
{
    char path[128];
    snprintf(path, sizeof path, "%s/e.safetensors", dir);
    float d[4] = {1, 2, 3, 4};
    /* empty tensors at the start, between and after the data, in any header order */
    write_raw(path,
              "{\"z2\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[16,16]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
              "\"z0\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[0,0]},"
              "\"z1\":{\"dtype\":\"U8\",\"shape\":[0,1000000,1000000],\"data_offsets\":[0,0]},"
              "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,16]}}",
              d, 16);
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    /* "s" is a scalar (rank 0: one element) that claims 0 bytes */
    cr_assert_eq(rc, MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "tensor s: shape needs 4 bytes but data_offsets give 0"), "%s", mn_last_error());
    write_raw(path,
              "{\"z2\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[16,16]},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
              "\"z0\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[0,0]},"
              "\"z1\":{\"dtype\":\"U8\",\"shape\":[0,1000000,1000000],\"data_offsets\":[0,0]}}",
              d, 16);
    cr_assert_eq(mn_st_read(path, &st), 0, "%s", mn_last_error());
    cr_assert_eq(st.n, 4);
    mn_tensor t;
    int64_t shape[2] = {2, 2};
    cr_assert_eq(mn_st_get_f32(&st, "w", 2, shape, &t), 0, "%s", mn_last_error());
    cr_assert_eq(t.data[3], 4.0f);
    cr_assert_eq(mn_st_find(&st, "z1")->shape[2], 1000000);
    mn_st_free(&st);
}

/* Half precision: the bit patterns IEEE 754 gives (round to nearest even at every boundary), and
 * an F16 file read back through the float32 reader. */
Test(safetensors, half_precision_is_exact_and_read_as_float)
{
    static const struct {
        float v;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},       {-0.0f, 0x8000},          {1.0f, 0x3c00},        {-2.5f, 0xc100},
        {65504.0f, 0x7bff},   {65519.0f, 0x7bff},       {65520.0f, 0x7c00},    {1.0f / 3.0f, 0x3555},
        {0x1p-24f, 0x0001},   {0x1p-25f, 0x0000},       {0x3p-25f, 0x0002},    {0x1p-14f, 0x0400},
        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x3p-11f, 0x3c02}, {-INFINITY, 0xfc00}, {1e-10f, 0x0000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(mn_f32_to_f16(cases[i].v), cases[i].h, "%a -> 0x%04x, expected 0x%04x", (double)cases[i].v,
                     mn_f32_to_f16(cases[i].v), cases[i].h);
        /* and back, where the value is exactly representable */
        float back = mn_f16_to_f32(cases[i].h);
        cr_assert_eq(mn_f32_to_f16(back), cases[i].h, "0x%04x -> %a does not come back", cases[i].h, (double)back);
    }
    cr_assert(isnan(mn_f16_to_f32(mn_f32_to_f16(NAN))));
    cr_assert_eq(mn_f16_to_f32(0x0001), 0x1p-24f);
    cr_assert_eq(mn_f16_to_f32(0x3555), 0x1.554p-2f);

    char path[128];
    snprintf(path, sizeof path, "%s/half.safetensors", dir);
    uint16_t halves[6] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x3555, 0x8000};
    int64_t shape[2] = {2, 3};
    mn_st_item item = {"w", MN_ST_F16, 2, shape, halves};
    cr_assert_eq(mn_st_write(path, &item, 1, NULL, NULL, 0), 0, "%s", mn_last_error());
    mn_safetensors st;
    cr_assert_eq(mn_st_read(path, &st), 0, "%s", mn_last_error());
    cr_assert_eq(st.entries[0].dtype, MN_ST_F16);
    cr_assert_eq(st.entries[0].nbytes, 12, "two bytes a value in the file");
    mn_tensor t;
    cr_assert_eq(mn_st_get_f32(&st, "w", 2, shape, &t), 0, "%s", mn_last_error());
    const float want[6] = {1.0f, -2.5f, 65504.0f, 0x1p-24f, 0x1.554p-2f, -0.0f};
    for (int i = 0; i < 6; i++) cr_assert_eq(t.data[i], want[i], "value %d: %a", i, (double)t.data[i]);
    mn_st_free(&st);
}
