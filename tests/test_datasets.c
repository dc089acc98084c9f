/* Data sets, transforms and the loader: the folder, voc, cityscapes and coco kinds on small
 * trees written into a temporary folder (and on the real VOC, COCO128 and CamVid files under
 * shared/data when present), the fused segmentation transform against hand-computed values,
 * and the loader's determinism across worker counts, epochs and resumption. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"
#include "mn/dataset.h"
#include "mn/image.h"
#include "mn/ops.h"
#include "mn/rng.h"

/* ---- temporary trees ---- */

static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/mn_test_datasets_XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    setenv("MUTUALNET_LOG", "warn", 1); /* warnings are checked below */
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void remove_dir(void) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* dir + "/" + rel, creating the parent folders of the result. */
static void path_in(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", dir, rel);
    for (char *p = out + strlen(dir) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(out, 0755) != 0) cr_assert_eq(errno, EEXIST, "mkdir %s: %s", out, strerror(errno));
        *p = '/';
    }
}

static void write_text(const char *rel, const char *text)
{
    char path[512];
    path_in(path, sizeof path, rel);
    FILE *f = fopen(path, "w");
    cr_assert(f, "create %s", path);
    fputs(text, f);
    fclose(f);
}

static void save(const char *rel, const mn_image *im)
{
    char path[512];
    path_in(path, sizeof path, rel);
    cr_assert_eq(mn_image_save(path, im, 95), 0, "%s", mn_last_error());
}

/* An image whose every byte comes from a seeded generator. */
static mn_image random_image(int w, int h, int c, uint64_t seed, int hi)
{
    mn_image im;
    cr_assert_eq(mn_image_alloc(&im, w, h, c), 0);
    mn_rng r;
    mn_rng_seed(&r, seed);
    for (int64_t k = 0; k < (int64_t)w * h * c; k++) im.data[k] = (uint8_t)mn_rng_int(&r, 0, hi);
    return im;
}

static void save_random(const char *rel, int w, int h, int c, uint64_t seed, int hi)
{
    mn_image im = random_image(w, h, c, seed, hi);
    save(rel, &im);
    mn_image_free(&im);
}

static mn_dataset *open_ok(const mn_dataset_options *o)
{
    mn_dataset *d = NULL;
    int rc = mn_dataset_open(&d, o);
    cr_assert_eq(rc, 0, "open %s (%s): %s", o->root, o->kind, mn_last_error());
    return d;
}

static void get_ok(mn_dataset *d, int i, mn_sample *s)
{
    int rc = mn_dataset_get(d, i, s);
    cr_assert_eq(rc, 0, "get %d: %s", i, mn_last_error());
}

/* Collects a reporter's notices, one per line. */
static void collect(void *ctx, int level, const char *msg)
{
    static const char *const tag[] = {"error", "warning", "info", "debug"};
    char *text = ctx;
    size_t n = strlen(text);
    snprintf(text + n, 65536 - n, "%s: %s\n", tag[level], msg);
}

/* Runs mn_dataset_open with a reporter that collects its notices; returns them (caller frees). */
static char *open_capturing(mn_dataset **d, const mn_dataset_options *o, int *rc)
{
    char *text = calloc(1, 65536);
    mn_reporter rep = {.log = collect, .ctx = text};
    mn_dataset_options with = *o;
    with.reporter = &rep;
    *rc = mn_dataset_open(d, &with);
    return text;
}

static bool shared_dir(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", MN_SHARED_DATA, rel);
    struct stat sb;
    return stat(out, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* ======================================================================================== */
/* folder kind (datasets/folder.c)                                                          */
/* ======================================================================================== */

TestSuite(folder, .init = make_dir, .fini = remove_dir);

/* Two 8x6 images with labels 0..2 and 255; writes the class list in the given text. */
static void folder_tree(const char *classes)
{
    for (int i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "images/train/%c.png", 'a' + i);
        save_random(rel, 8, 6, 3, 10 + (uint64_t)i, 255);
        mn_image lb;
        cr_assert_eq(mn_image_alloc(&lb, 8, 6, 1), 0);
        for (int k = 0; k < 48; k++) lb.data[k] = (uint8_t)(k % 7 == 6 ? 255 : (k + i) % 3);
        snprintf(rel, sizeof rel, "labels/train/%c.png", 'a' + i);
        save(rel, &lb);
        mn_image_free(&lb);
    }
    write_text("classes.txt", classes);
}

Test(folder, loads_images_labels_and_class_names)
{
    folder_tree("# a comment\n0 background\n1 cat\n2 dog\n");
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 2);
    cr_assert_eq(mn_dataset_num_classes(d), 3);
    cr_assert_str_eq(mn_dataset_class_name(d, 0), "background");
    cr_assert_str_eq(mn_dataset_class_name(d, 2), "dog");
    cr_assert_str_eq(mn_dataset_kind_name(d), "folder");
    cr_assert_eq(mn_dataset_category_id(d, 2), 2, "kinds without category ids return the label");
    mn_sample s;
    get_ok(d, 1, &s);
    cr_assert_str_eq(s.name, "b");
    cr_assert_eq(s.image_id, 1);
    cr_assert(s.image.w == 8 && s.image.h == 6 && s.image.c == 3);
    mn_image want = random_image(8, 6, 3, 11, 255);
    cr_assert_eq(memcmp(s.image.data, want.data, 8 * 6 * 3), 0, "PNG pixels come back exactly");
    for (int k = 0; k < 48; k++)
        cr_assert_eq(s.label.data[k], k % 7 == 6 ? 255 : (k + 1) % 3, "label pixel %d", k);
    cr_assert_null(s.boxes);
    mn_image mask;
    cr_assert_eq(mn_dataset_mask(d, 0, 0, &mask), MN_EINVAL, "the folder kind has no masks");
    mn_image_free(&want);
    mn_sample_free(&s);
    mn_dataset_close(d);

    /* names only, and a void index that becomes ignore */
    write_text("classes.txt", "background\ncat\ndog\n");
    o.void_index = 2;
    d = open_ok(&o);
    cr_assert_str_eq(mn_dataset_class_name(d, 1), "cat");
    get_ok(d, 0, &s);
    for (int k = 0; k < 48; k++) {
        int raw = k % 7 == 6 ? 255 : k % 3;
        cr_assert_eq(s.label.data[k], raw == 2 ? 255 : raw, "label pixel %d with void 2", k);
    }
    mn_sample_free(&s);
    mn_dataset_close(d);
}

Test(folder, label_beyond_the_class_list_names_the_file)
{
    folder_tree("0 background\n1 cat\n2 dog\n");
    mn_image lb;
    cr_assert_eq(mn_image_alloc(&lb, 8, 6, 1), 0);
    lb.data[5 + 8 * 4] = 3; /* pixel (5, 4) */
    save("labels/train/a.png", &lb);
    mn_image_free(&lb);
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, 0, &s), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "labels/train/a.png") && strstr(mn_last_error(), "(5, 4)"), "%s",
              mn_last_error());
    cr_assert_null(s.image.data, "a failed get leaves nothing to free");
    get_ok(d, 1, &s); /* the other sample is fine */
    mn_sample_free(&s);
    cr_assert_eq(mn_dataset_get(d, 2, &s), MN_EINVAL, "index past the end");
    mn_dataset_close(d);
}

Test(folder, missing_label_file_fails_at_open)
{
    folder_tree("0 background\n1 cat\n2 dog\n");
    char path[512];
    path_in(path, sizeof path, "labels/train/b.png");
    cr_assert_eq(remove(path), 0);
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO);
    cr_assert_null(d);
    cr_assert(strstr(mn_last_error(), "labels/train/b.png"), "%s", mn_last_error());
    o.kind = "nonsense";
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "nonsense"), "%s", mn_last_error());
}

Test(folder, camvid_train_subset)
{
    char root[512];
    if (!shared_dir(root, sizeof root, "camvid/CamVid"))
        cr_skip_test("CamVid not found at %s (shared data absent)", root);
    write_text("camvid_classes.txt", "Sky\nBuilding\nPole\nRoad\nPavement\nTree\nSignSymbol\nFence\nCar\nPedestrian\n"
                                     "Bicyclist\n");
    char classes[512];
    path_in(classes, sizeof classes, "camvid_classes.txt");
    mn_dataset_options o = {.kind = "folder", .root = root, .split = "train", .images = "train",
                            .labels = "trainannot", .classes = classes, .void_index = 11};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 92);
    cr_assert_eq(mn_dataset_num_classes(d), 11);
    cr_assert_str_eq(mn_dataset_class_name(d, 10), "Bicyclist");
    int64_t void_total = 0;
    for (int i = 0; i < 92; i += 30) {
        mn_sample s;
        get_ok(d, i, &s);
        cr_assert(s.image.w == 480 && s.image.h == 360 && s.image.c == 3, "%s is %dx%dx%d", s.name, s.image.w,
                  s.image.h, s.image.c);
        char path[1024];
        snprintf(path, sizeof path, "%s/trainannot/%s.png", root, s.name);
        mn_image raw;
        cr_assert_eq(mn_image_load_labels(path, &raw), 0, "%s", mn_last_error());
        for (int64_t k = 0; k < 480 * 360; k++) {
            int want = raw.data[k] == 11 ? 255 : raw.data[k];
            cr_assert_eq(s.label.data[k], want, "%s pixel %lld", s.name, (long long)k);
            cr_assert(want < 11 || want == 255);
            void_total += want == 255;
        }
        mn_image_free(&raw);
        mn_sample_free(&s);
    }
    cr_assert_gt(void_total, 0, "some void pixels were seen and mapped");
    mn_dataset_close(d);
}


/* Opening a folder data set must fail with MN_EFORMAT and a message holding every fragment. */
static void expect_classes_error(const char *classes, const char *const *frags)
{
    write_text("classes.txt", classes);
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT, "%s: %s", classes, mn_last_error());
    cr_assert_null(d);
    for (const char *const *f = frags; *f; f++)
        cr_expect(strstr(mn_last_error(), *f), "class list \"%s\": message \"%s\" lacks \"%s\"", classes,
                  mn_last_error(), *f);
}

#define FRAGS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(folder, class_list_repeats_and_garbage_name_file_and_line)
{
    folder_tree("0 background\n1 cat\n2 dog\n");
    /* a repeated index used to rename class 1 silently */
    expect_classes_error("0 background\n1 cat\n1 dog\n", FRAGS("classes.txt:3", "index 1", "twice", "line 2", "cat"));
    expect_classes_error("# names\nbackground\ncat\n1 dog\n", FRAGS("classes.txt:4", "index 1", "twice"));
    expect_classes_error("0 background\n1 cat\n2 cat\n", FRAGS("classes.txt:3", "\"cat\"", "twice", "line 2"));
    expect_classes_error("background\ncat\n\ndog\ncat\n", FRAGS("classes.txt:5", "\"cat\"", "first at line 2"));
    expect_classes_error("0 background\n-1 cat\n", FRAGS("classes.txt:2", "-1", "outside [0, 254]"));
    expect_classes_error("0 background\n255 cat\n", FRAGS("classes.txt:2", "255", "outside [0, 254]"));
    expect_classes_error("0 bg\n99999999999999999999 cat\n", FRAGS("classes.txt:2", "outside [0, 254]"));
    expect_classes_error("0 background\n1x cat\n", FRAGS("classes.txt:2", "\"1x\" is not a class index"));
    expect_classes_error("0 background\n1.5 cat\n", FRAGS("classes.txt:2", "\"1.5\" is not a class index"));
    expect_classes_error("0 background\n1 cat\x01\n", FRAGS("classes.txt:2", "control character 0x01"));
    expect_classes_error("# empty\n\n   \n", FRAGS("classes.txt", "empty"));
    char line[2100];
    memset(line, 'a', 2000);
    snprintf(line + 2000, 100, "\n1 cat\n");
    expect_classes_error(line, FRAGS("classes.txt:1", "longer than"));
    expect_classes_error("0 background\n1 abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmn\n",
                         FRAGS("classes.txt:2", "longer than 63"));
    write_text("classes.txt", "0 background\n1 cat\n");
    char path[512];
    path_in(path, sizeof path, "classes.txt");
    FILE *f = fopen(path, "ab");
    fwrite("2 d\0g\n", 1, 6, f); /* a NUL byte: a binary file, not a list */
    fclose(f);
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_expect(strstr(mn_last_error(), "classes.txt:3") && strstr(mn_last_error(), "NUL"), "%s", mn_last_error());

    /* still accepted: gaps (named class<k>), CRLF, blanks around, tabs, one-word numeric names */
    write_text("classes.txt", "0 background\r\n\t2  dog \r\n");
    d = open_ok(&o);
    cr_assert_eq(mn_dataset_num_classes(d), 3);
    cr_expect_str_eq(mn_dataset_class_name(d, 1), "class1");
    cr_expect_str_eq(mn_dataset_class_name(d, 2), "dog");
    mn_dataset_close(d);
    write_text("classes.txt", "\xef\xbb\xbf" "background\ncat\n");
    d = open_ok(&o);
    cr_expect_str_eq(mn_dataset_class_name(d, 0), "background", "a UTF-8 byte-order mark is not part of the name");
    mn_dataset_close(d);
    write_text("classes.txt", "7\n8\n9\n");
    d = open_ok(&o);
    cr_expect_str_eq(mn_dataset_class_name(d, 0), "7", "a one-word line is a name, digits or not");
    cr_expect_str_eq(mn_dataset_class_name(d, 2), "9");
    mn_dataset_close(d);
}

/* ======================================================================================== */
/* voc kind                                                                                 */
/* ======================================================================================== */

TestSuite(voc, .init = make_dir, .fini = remove_dir);

/* The colours VOC publishes for its 21 classes, and the boundary colour (index 255). */
static const uint8_t voc_rgb[21][3] = {
    {0, 0, 0},       {128, 0, 0},   {0, 128, 0},    {128, 128, 0},  {0, 0, 128},    {128, 0, 128},
    {0, 128, 128},   {128, 128, 128}, {64, 0, 0},   {192, 0, 0},    {64, 128, 0},   {192, 128, 0},
    {64, 0, 128},    {192, 0, 128}, {64, 128, 128}, {192, 128, 128}, {0, 64, 0},    {128, 64, 0},
    {0, 192, 0},     {128, 192, 0}, {0, 64, 128},
};
static const uint8_t voc_boundary[3] = {224, 224, 192};

Test(voc, labelme_photos)
{
    char root[512];
    const char *rel = "voc-format-labelme/examples/semantic_segmentation/data_dataset_voc";
    if (!shared_dir(root, sizeof root, rel)) {
        /* Debian's labelme-examples package installs the same files */
        snprintf(root, sizeof root, "/usr/share/doc/labelme-examples/examples/semantic_segmentation/data_dataset_voc");
        struct stat sb;
        if (stat(root, &sb) != 0) cr_skip_test("labelme VOC example not found (shared data absent)");
    }
    mn_dataset_options o = {.kind = "voc", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    int rc;
    char *err = open_capturing(&d, &o, &rc);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_assert(strstr(err, "no split list") && strstr(err, "all 3 images"), "warning about the split list: %s", err);
    free(err);
    cr_assert_eq(mn_dataset_size(d), 3);
    cr_assert_eq(mn_dataset_num_classes(d), 21);
    cr_assert_str_eq(mn_dataset_class_name(d, 0), "_background_", "class_names.txt is used");
    cr_assert_str_eq(mn_dataset_class_name(d, 15), "person");
    cr_assert_str_eq(mn_dataset_class_name(d, 20), "tv/monitor");

    /* per-class pixel counts of the palette PNGs, as PIL reads their indices */
    static const struct {
        const char *name;
        int w, h;
        int n;
        int cls[5], count[5];
    } want[3] = {
        {"2011_000003", 500, 338, 4, {0, 5, 15, 255}, {125767, 873, 32900, 9460}},
        {"2011_000006", 500, 375, 5, {0, 9, 15, 18, 255}, {93492, 44306, 34792, 14001, 909}},
        {"2011_000025", 500, 375, 3, {0, 6, 7}, {62022, 118222, 7256}},
    };
    for (int i = 0; i < 3; i++) {
        mn_sample s;
        get_ok(d, i, &s);
        cr_assert_str_eq(s.name, want[i].name);
        cr_assert(s.image.w == want[i].w && s.image.h == want[i].h && s.image.c == 3);
        cr_assert(s.label.w == want[i].w && s.label.h == want[i].h && s.label.c == 1);
        int64_t hist[256] = {0};
        for (int64_t k = 0; k < (int64_t)s.label.w * s.label.h; k++) hist[s.label.data[k]]++;
        int64_t seen = 0;
        for (int j = 0; j < want[i].n; j++) {
            cr_assert_eq(hist[want[i].cls[j]], want[i].count[j], "%s: class %d has %lld pixels, expected %d",
                         s.name, want[i].cls[j], (long long)hist[want[i].cls[j]], want[i].count[j]);
            seen += hist[want[i].cls[j]];
        }
        cr_assert_eq(seen, (int64_t)s.label.w * s.label.h, "%s: no other classes", s.name);

        /* the colours behind the indices are VOC's, and the palette indices agree */
        char path[1024];
        snprintf(path, sizeof path, "%s/SegmentationClassPNG/%s.png", root, s.name);
        mn_image rgb, idx;
        cr_assert_eq(mn_image_load(path, 3, &rgb), 0);
        cr_assert_eq(mn_image_load_labels(path, &idx), 0);
        for (int64_t k = 0; k < (int64_t)s.label.w * s.label.h; k++) {
            int v = s.label.data[k];
            const uint8_t *c = v == 255 ? voc_boundary : voc_rgb[v];
            cr_assert(!memcmp(rgb.data + 3 * k, c, 3), "%s pixel %lld colour", s.name, (long long)k);
            cr_assert_eq(idx.data[k], v, "%s pixel %lld palette index", s.name, (long long)k);
        }
        mn_image_free(&rgb);
        mn_image_free(&idx);
        mn_sample_free(&s);
    }
    mn_dataset_close(d);
}

/* A VOC tree: x1 with an RGB (colour-coded) label, x2 with a grey (index) label, x3 unlisted. */
static void voc_tree(void)
{
    for (int i = 1; i <= 3; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "voc/JPEGImages/x%d.jpg", i);
        save_random(rel, 10, 4, 3, (uint64_t)i, 255);
    }
    mn_image rgb, grey;
    cr_assert_eq(mn_image_alloc(&rgb, 10, 4, 3), 0);
    cr_assert_eq(mn_image_alloc(&grey, 10, 4, 1), 0);
    for (int k = 0; k < 40; k++) {
        int v = k % 5 == 4 ? 255 : (k * 3) % 21;
        memcpy(rgb.data + 3 * k, v == 255 ? voc_boundary : voc_rgb[v], 3);
        grey.data[k] = (uint8_t)(v == 255 ? 255 : 20 - v);
    }
    save("voc/SegmentationClass/x1.png", &rgb);
    save("voc/SegmentationClass/x2.png", &grey);
    save("voc/SegmentationClass/x3.png", &grey);
    mn_image_free(&rgb);
    mn_image_free(&grey);
    write_text("voc/ImageSets/Segmentation/train.txt", "x2\n  x1  \n\n");
}

Test(voc, split_list_colour_and_index_labels)
{
    voc_tree();
    char root[512];
    path_in(root, sizeof root, "voc");
    mn_dataset_options o = {.kind = "voc", .root = root, .split = "train", .images = "ignored", .void_index = 3};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 2, "only the listed ids");
    cr_assert_eq(mn_dataset_num_classes(d), 21);
    cr_assert_str_eq(mn_dataset_class_name(d, 0), "background");
    cr_assert_str_eq(mn_dataset_class_name(d, 1), "aeroplane");
    cr_assert_str_eq(mn_dataset_class_name(d, 20), "tvmonitor");
    mn_sample a, b;
    get_ok(d, 0, &a);
    get_ok(d, 1, &b);
    cr_assert_str_eq(a.name, "x2", "split-list order");
    cr_assert_str_eq(b.name, "x1");
    cr_assert(a.image.w == 10 && a.image.h == 4);
    for (int k = 0; k < 40; k++) {
        int v = k % 5 == 4 ? 255 : (k * 3) % 21;
        cr_assert_eq(b.label.data[k], v, "colour label pixel %d", k);
        cr_assert_eq(a.label.data[k], v == 255 ? 255 : 20 - v, "index label pixel %d", k);
    }
    mn_sample_free(&a);
    mn_sample_free(&b);
    mn_dataset_close(d);
}

Test(voc, unknown_colour_and_bad_index_name_file_and_pixel)
{
    voc_tree();
    char root[512];
    path_in(root, sizeof root, "voc");
    mn_image rgb;
    cr_assert_eq(mn_image_alloc(&rgb, 10, 4, 3), 0);
    rgb.data[3 * (2 * 10 + 4) + 0] = 1; /* pixel (4, 2) = (1, 0, 0): no class has it */
    save("voc/SegmentationClass/x1.png", &rgb);
    mn_dataset_options o = {.kind = "voc", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, 1, &s), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "SegmentationClass/x1.png") && strstr(mn_last_error(), "(4, 2)") &&
                  strstr(mn_last_error(), "(1, 0, 0)"),
              "%s", mn_last_error());
    /* the VOC colour of index 21 is a real map colour, but there are only 21 classes */
    static const uint8_t c21[3] = {128, 64, 128};
    memset(rgb.data, 0, 120);
    memcpy(rgb.data + 3 * 7, c21, 3);
    save("voc/SegmentationClass/x1.png", &rgb);
    cr_assert_eq(mn_dataset_get(d, 1, &s), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "(7, 0)"), "%s", mn_last_error());
    mn_image_free(&rgb);

    mn_image grey;
    cr_assert_eq(mn_image_alloc(&grey, 10, 4, 1), 0);
    grey.data[39] = 21;
    save("voc/SegmentationClass/x2.png", &grey);
    cr_assert_eq(mn_dataset_get(d, 0, &s), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "x2.png") && strstr(mn_last_error(), "(9, 3)"), "%s", mn_last_error());
    mn_image_free(&grey);

    save_random("voc/SegmentationClass/x2.png", 9, 4, 1, 1, 20);
    cr_assert_eq(mn_dataset_get(d, 0, &s), MN_ESHAPE, "label and image sizes differ");
    cr_assert(strstr(mn_last_error(), "x2.png"), "%s", mn_last_error());
    mn_dataset_close(d);
}

Test(voc, open_errors_and_missing_split_list)
{
    voc_tree();
    char root[512], path[512];
    path_in(root, sizeof root, "voc");
    mn_dataset_options o = {.kind = "voc", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;

    write_text("voc/ImageSets/Segmentation/train.txt", "x1\nx9\n");
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO);
    cr_assert(strstr(mn_last_error(), "x9"), "%s", mn_last_error());

    write_text("voc/ImageSets/Segmentation/train.txt", "x3\n");
    path_in(path, sizeof path, "voc/SegmentationClass/x3.png");
    cr_assert_eq(remove(path), 0);
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO);
    cr_assert(strstr(mn_last_error(), "SegmentationClass/x3.png"), "%s", mn_last_error());

    /* no list: every image with a label (x3 now has none), and a warning */
    path_in(path, sizeof path, "voc/ImageSets/Segmentation/train.txt");
    cr_assert_eq(remove(path), 0);
    int rc;
    char *err = open_capturing(&d, &o, &rc);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_assert(strstr(err, "warning") && strstr(err, "all 2 images"), "%s", err);
    free(err);
    cr_assert_eq(mn_dataset_size(d), 2);
    mn_dataset_close(d);

    /* class_names.txt decides the classes; 2 classes make x2's indices invalid */
    write_text("voc/class_names.txt", "bg\r\nthing\r\n");
    free(open_capturing(&d, &o, &rc));
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_assert_eq(mn_dataset_num_classes(d), 2);
    cr_assert_str_eq(mn_dataset_class_name(d, 1), "thing");
    cr_assert_str_eq(mn_dataset_class_name(d, 2), "?");
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, 1, &s), MN_EFORMAT);
    mn_dataset_close(d);

    path_in(path, sizeof path, "voc/SegmentationClass");
    char moved[512];
    path_in(moved, sizeof moved, "voc/Elsewhere");
    cr_assert_eq(rename(path, moved), 0);
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO);
    cr_assert(strstr(mn_last_error(), "SegmentationClass"), "%s", mn_last_error());
}


Test(voc, split_and_class_lists_refuse_repeats_and_paths)
{
    voc_tree();
    char root[512];
    path_in(root, sizeof root, "voc");
    mn_dataset_options o = {.kind = "voc", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    static const struct { const char *list, *frag1, *frag2; } bad[] = {
        {"x1\nx2\nx1\n", "train.txt:3", "\"x1\" is listed twice (first at line 1)"},
        {"x1\n../JPEGImages/x2\n", "train.txt:2", "not an image id"},
        {"x1\n..\n", "train.txt:2", "not an image id"},
        {"x1\nx\x7f" "2\n", "train.txt:2", "control character 0x7f"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        write_text("voc/ImageSets/Segmentation/train.txt", bad[k].list);
        cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT, "%s: %s", bad[k].list, mn_last_error());
        cr_expect(strstr(mn_last_error(), bad[k].frag1) && strstr(mn_last_error(), bad[k].frag2), "%s",
                  mn_last_error());
    }
    /* a missing image names the list's line */
    write_text("voc/ImageSets/Segmentation/train.txt", "x1\n\nx9 1\n");
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO);
    cr_expect(strstr(mn_last_error(), "x9") && strstr(mn_last_error(), "train.txt:3"), "%s", mn_last_error());
    /* a line longer than any id is one error, not two ids (fgets used to cut it in two) */
    char list[1500];
    memset(list, 'x', 1200);
    snprintf(list + 1200, 100, "\nx1\n");
    write_text("voc/ImageSets/Segmentation/train.txt", list);
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_expect(strstr(mn_last_error(), "train.txt:1") && strstr(mn_last_error(), "longer than"), "%s", mn_last_error());

    /* labelme's class_names.txt: a repeated name is refused, digits are names */
    write_text("voc/ImageSets/Segmentation/train.txt", "x2\nx3\n");
    write_text("voc/class_names.txt", "_background_\nperson\ncar\nperson\n");
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_expect(strstr(mn_last_error(), "class_names.txt:4") && strstr(mn_last_error(), "\"person\" is given twice"),
              "%s", mn_last_error());
    write_text("voc/class_names.txt",
               "_background_\n1 person\n2x car\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n");
    d = open_ok(&o);
    cr_expect_eq(mn_dataset_num_classes(d), 21);
    cr_expect_str_eq(mn_dataset_class_name(d, 1), "1 person");
    cr_expect_str_eq(mn_dataset_class_name(d, 2), "2x car");
    mn_dataset_close(d);
}

/* ======================================================================================== */
/* cityscapes kind                                                                          */
/* ======================================================================================== */

TestSuite(cityscapes, .init = make_dir, .fini = remove_dir);

/* train id of each label id that has one (the benchmark's 19 classes) */
static int want_train_id(int label_id)
{
    static const int pairs[19][2] = {{7, 0},   {8, 1},   {11, 2},  {12, 3},  {13, 4},  {17, 5},  {19, 6},
                                     {20, 7},  {21, 8},  {22, 9},  {23, 10}, {24, 11}, {25, 12}, {26, 13},
                                     {27, 14}, {28, 15}, {31, 16}, {32, 17}, {33, 18}};
    for (int k = 0; k < 19; k++)
        if (pairs[k][0] == label_id) return pairs[k][1];
    return 255;
}

static void city_image(const char *city, const char *name, int fill)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cs/leftImg8bit/train/%s/%s_leftImg8bit.png", city, name);
    save_random(rel, 16, 16, 3, (uint64_t)fill + 1, 255);
    mn_image lb;
    cr_assert_eq(mn_image_alloc(&lb, 16, 16, 1), 0);
    for (int k = 0; k < 256; k++) lb.data[k] = (uint8_t)(fill < 0 ? k : fill); /* fill < 0: every id once */
    snprintf(rel, sizeof rel, "cs/gtFine/train/%s/%s_gtFine_labelIds.png", city, name);
    save(rel, &lb);
    mn_image_free(&lb);
}

Test(cityscapes, fake_tree_maps_label_ids_to_train_ids)
{
    city_image("bremen", "bremen_000000_000019", 7);
    city_image("aachen", "aachen_000001_000019", 26);
    city_image("aachen", "aachen_000000_000019", -1);
    save_random("cs/leftImg8bit/train/aachen/aachen_000000_000019_other.png", 4, 4, 3, 1, 255); /* not an image */
    char root[512];
    path_in(root, sizeof root, "cs");
    mn_dataset_options o = {.kind = "cityscapes", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 3);
    cr_assert_eq(mn_dataset_num_classes(d), 19);
    cr_assert_str_eq(mn_dataset_class_name(d, 0), "road");
    cr_assert_str_eq(mn_dataset_class_name(d, 6), "traffic light");
    cr_assert_str_eq(mn_dataset_class_name(d, 18), "bicycle");
    static const char *const order[3] = {"aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019"};
    static const int fill[3] = {-1, 13, 0};
    for (int i = 0; i < 3; i++) {
        mn_sample s;
        get_ok(d, i, &s);
        cr_assert_str_eq(s.name, order[i]);
        cr_assert(s.image.w == 16 && s.image.h == 16 && s.image.c == 3);
        for (int k = 0; k < 256; k++) {
            int want = fill[i] < 0 ? want_train_id(k) : fill[i];
            cr_assert_eq(s.label.data[k], want, "%s: label id %d", s.name, fill[i] < 0 ? k : -1);
        }
        mn_sample_free(&s);
    }
    mn_dataset_close(d);

    char path[512];
    path_in(path, sizeof path, "cs/gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png");
    cr_assert_eq(remove(path), 0);
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO, "a missing label fails at open");
    cr_assert(strstr(mn_last_error(), "aachen_000001_000019_gtFine_labelIds.png"), "%s", mn_last_error());
    o.split = "val";
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO, "no such split");
    cr_assert(strstr(mn_last_error(), "leftImg8bit/val"), "%s", mn_last_error());
}

/* ======================================================================================== */
/* coco kind                                                                                */
/* ======================================================================================== */

TestSuite(coco, .init = make_dir, .fini = remove_dir);

static const char *coco_json =
    "{\"info\": {}, \"images\": ["
    " {\"id\": 100, \"file_name\": \"a.jpg\", \"width\": 32, \"height\": 24},"
    " {\"id\": 7, \"file_name\": \"sub/b.png\", \"width\": 32, \"height\": 24},"
    " {\"id\": 42, \"file_name\": \"c.png\", \"width\": 32, \"height\": 24},"
    " {\"id\": 3, \"file_name\": \"d.png\", \"width\": 12, \"height\": 10}],"
    "\"categories\": [{\"id\": 5, \"name\": \"cat\"}, {\"id\": 2, \"name\": \"dog\"}, {\"id\": 9, \"name\": \"bird\"}],"
    "\"annotations\": ["
    /* 0 */ " {\"id\": 1, \"image_id\": 100, \"category_id\": 5, \"bbox\": [1.5, 2, 10, 5], \"iscrowd\": 0,"
    "   \"area\": 18, \"segmentation\": [[2, 3, 8, 3, 8, 6, 2, 6]]},"
    /* 1 */ " {\"id\": 2, \"image_id\": 999, \"category_id\": 5, \"bbox\": [0, 0, 5, 5]},"
    /* 2 */ " {\"id\": 3, \"image_id\": 7, \"category_id\": 77, \"bbox\": [0, 0, 5, 5]},"
    /* 3 */ " {\"id\": 4, \"image_id\": 7, \"category_id\": 2, \"bbox\": [30, 0, 5, 5], \"iscrowd\": false,"
    "   \"segmentation\": []},"
    /* 4 */ " {\"id\": 5, \"image_id\": 100, \"category_id\": 9, \"bbox\": [-3, 20, 10, 10], \"iscrowd\": 1,"
    "   \"segmentation\": {\"size\": [24, 32], \"counts\": [20, 4, 20, 4, 720]}},"
    /* 5 */ " {\"id\": 6, \"image_id\": 7, \"category_id\": 12345, \"bbox\": [1, 1, 2, 2]},"
    /* 6 */ " {\"id\": 7, \"image_id\": 7, \"category_id\": 2, \"bbox\": [1, 1, 0, 3]},"
    /* 7 */ " {\"id\": 8, \"image_id\": 7, \"category_id\": 2, \"bbox\": [1, 1, 4, -2]},"
    /* 8 */ " {\"id\": 9, \"image_id\": 100, \"category_id\": 2, \"bbox\": [32, 0, 5, 5]},"
    /* 9 */ " {\"id\": 10, \"image_id\": 100, \"category_id\": 2, \"bbox\": [0, -10, 5, 10]},"
    /* 10 */ " {\"id\": 11, \"image_id\": 3, \"category_id\": 2, \"bbox\": [4, 0, 8, 10],"
    "   \"segmentation\": {\"size\": [10, 12], \"counts\": \"X1n05FN2\"}},"
    /* 11 */ " {\"id\": 12, \"image_id\": 100, \"category_id\": 2, \"bbox\": [0, 0, 32, 24], \"iscrowd\": 0,"
    "   \"segmentation\": [[0, 0, 4, 0, 4, 4, 0, 4], [10, 10, 12, 10, 12, 12, 10, 12]]}"
    "]}";

static void coco_tree(const char *json)
{
    save_random("coco/images/train/a.jpg", 32, 24, 3, 1, 255);
    save_random("coco/images/train/sub/b.png", 32, 24, 3, 2, 255);
    save_random("coco/images/train/c.png", 32, 24, 3, 3, 255);
    save_random("coco/images/train/d.png", 12, 10, 3, 4, 255);
    write_text("coco/annotations/instances_train.json", json);
}

static void expect_box(const mn_box *b, float x1, float y1, float x2, float y2, int label, bool crowd)
{
    cr_assert(b->x1 == x1 && b->y1 == y1 && b->x2 == x2 && b->y2 == y2,
              "box (%g, %g, %g, %g), expected (%g, %g, %g, %g)", b->x1, b->y1, b->x2, b->y2, x1, y1, x2, y2);
    cr_assert_eq(b->label, label);
    cr_assert_eq(b->crowd, crowd);
}

/* Checks mask pixels against a predicate given as a list of covered (x, y) rectangles. */
static void expect_mask(mn_dataset *d, int i, int j, int w, int h, int n_rect, const int (*rect)[4])
{
    mn_image m;
    cr_assert_eq(mn_dataset_mask(d, i, j, &m), 0, "%s", mn_last_error());
    cr_assert(m.w == w && m.h == h && m.c == 1);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int in = 0;
            for (int r = 0; r < n_rect; r++)
                in |= x >= rect[r][0] && x < rect[r][2] && y >= rect[r][1] && y < rect[r][3];
            cr_assert_eq(m.data[y * w + x], in, "mask %d/%d pixel (%d, %d)", i, j, x, y);
        }
    mn_image_free(&m);
}

Test(coco, boxes_labels_drops_and_masks)
{
    coco_tree(coco_json);
    char root[512];
    path_in(root, sizeof root, "coco");
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    int rc;
    char *err = open_capturing(&d, &o, &rc);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_assert(strstr(err, "dropped 1 annotations: their image_id"), "%s", err);
    cr_assert(strstr(err, "dropped 2 annotations: their category_id"), "%s", err);
    cr_assert(strstr(err, "dropped 2 annotations: their box has zero or negative"), "%s", err);
    cr_assert(strstr(err, "dropped 2 annotations: their box has no area inside the image"), "%s", err);
    free(err);
    /* 12 annotations: 1 unknown image, 2 unknown categories, 4 degenerate (zero, negative, two outside),
     * 5 kept of which 1 crowd; images 100, 7 and 3 hold boxes */
    mn_box_stats st;
    cr_assert_eq(mn_dataset_box_stats(d, &st), 0, "%s", mn_last_error());
    cr_expect_eq(st.annotations, 12);
    cr_expect_eq(st.usable, 4);
    cr_expect_eq(st.crowd, 1);
    cr_expect_eq(st.degenerate, 4);
    cr_expect_eq(st.unknown_image, 1);
    cr_expect_eq(st.unknown_category, 2);
    cr_expect_eq(st.images_with_boxes, 3);

    cr_assert_eq(mn_dataset_size(d), 4);
    cr_assert_eq(mn_dataset_num_classes(d), 4);
    cr_assert_str_eq(mn_dataset_class_name(d, 0), "background");
    cr_assert_str_eq(mn_dataset_class_name(d, 1), "dog", "labels follow ascending category id");
    cr_assert_str_eq(mn_dataset_class_name(d, 2), "cat");
    cr_assert_str_eq(mn_dataset_class_name(d, 3), "bird");
    cr_assert_str_eq(mn_dataset_class_name(d, 4), "?");
    cr_assert_eq(mn_dataset_category_id(d, 1), 2);
    cr_assert_eq(mn_dataset_category_id(d, 2), 5);
    cr_assert_eq(mn_dataset_category_id(d, 3), 9);
    cr_assert_eq(mn_dataset_category_id(d, 0), -1);
    cr_assert_eq(mn_dataset_category_id(d, 4), -1);

    mn_sample s;
    get_ok(d, 0, &s);
    cr_assert_eq(s.image_id, 100);
    cr_assert_str_eq(s.name, "a");
    cr_assert(s.image.w == 32 && s.image.h == 24 && s.image.c == 3);
    cr_assert_null(s.label.data);
    cr_assert_eq(s.n_boxes, 3);
    expect_box(&s.boxes[0], 1.5f, 2, 11.5f, 7, 2, false);
    expect_box(&s.boxes[1], 0, 20, 7, 24, 3, true); /* clipped on the left and bottom */
    expect_box(&s.boxes[2], 0, 0, 32, 24, 1, false);
    mn_sample_free(&s);

    get_ok(d, 1, &s);
    cr_assert_eq(s.image_id, 7);
    cr_assert_str_eq(s.name, "b");
    cr_assert_eq(s.n_boxes, 1);
    expect_box(&s.boxes[0], 30, 0, 32, 5, 1, false);
    mn_sample_free(&s);

    get_ok(d, 2, &s);
    cr_assert_eq(s.image_id, 42);
    cr_assert_eq(s.n_boxes, 0, "an image without annotations is a sample without boxes");
    cr_assert_null(s.boxes);
    mn_sample_free(&s);

    get_ok(d, 3, &s);
    cr_assert_eq(s.image_id, 3);
    cr_assert_eq(s.n_boxes, 1);
    expect_box(&s.boxes[0], 4, 0, 12, 10, 1, false); /* no iscrowd key: not a crowd */
    mn_sample_free(&s);

    /* polygon: pixel centres inside [2, 8] x [3, 6] */
    static const int poly[1][4] = {{2, 3, 8, 6}};
    expect_mask(d, 0, 0, 32, 24, 1, poly);
    /* uncompressed RLE, column-major: rows 20..23 of columns 0 and 1 */
    static const int rle[1][4] = {{0, 20, 2, 24}};
    expect_mask(d, 0, 1, 32, 24, 1, rle);
    /* two polygons are one object */
    static const int two[2][4] = {{0, 0, 4, 4}, {10, 10, 12, 12}};
    expect_mask(d, 0, 2, 32, 24, 2, two);
    /* compressed RLE "X1n05FN2" = counts 40, 30, 5, 20, 3, 22 on 10 x 12 (the 4th and later
     * counts are stored as differences to the count two before, two of them negative) */
    static const int str[6][4] = {{4, 0, 7, 10}, {7, 5, 8, 10}, {8, 0, 9, 10}, {9, 0, 10, 5}, {9, 8, 10, 10},
                                  {10, 0, 12, 10}};
    expect_mask(d, 3, 0, 12, 10, 6, str);
    mn_image m;
    cr_assert_eq(mn_dataset_mask(d, 1, 0, &m), MN_EINVAL, "empty segmentation: no mask");
    cr_assert(strstr(mn_last_error(), "no segmentation"), "%s", mn_last_error());
    cr_assert_eq(mn_dataset_mask(d, 0, 3, &m), MN_EINVAL, "box index past the sample's boxes");
    cr_assert_eq(mn_dataset_mask(d, 4, 0, &m), MN_EINVAL, "sample index past the end");
    mn_dataset_close(d);
}

/* Opening a JSON must fail with a message naming the file and containing both fragments. */
static void expect_open_error(const char *json, int code, const char *frag1, const char *frag2)
{
    coco_tree(json);
    char root[512];
    path_in(root, sizeof root, "coco");
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), code, "%s: %s", json, mn_last_error());
    cr_assert_null(d);
    const char *e = mn_last_error();
    cr_assert(strstr(e, frag1) && strstr(e, frag2), "message \"%s\" lacks \"%s\" / \"%s\"", e, frag1, frag2);
}

#define IMG "{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 32, \"height\": 24}"
#define CAT "{\"id\": 1, \"name\": \"x\"}"

Test(coco, malformed_files_name_the_file_and_key)
{
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [", MN_EFORMAT,
                      "instances_train.json", "invalid JSON");
    expect_open_error("{\"categories\": [" CAT "], \"annotations\": []}", MN_EFORMAT, "instances_train.json",
                      "\"images\"");
    expect_open_error("{\"images\": [" IMG "], \"categories\": {}, \"annotations\": []}", MN_EFORMAT,
                      "instances_train.json", "\"categories\" must be an array");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT ", {\"id\": 2}], \"annotations\": []}",
                      MN_EFORMAT, "categories[1]", "\"name\"");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT ", " CAT "], \"annotations\": []}", MN_EFORMAT,
                      "instances_train.json", "share the id 1");
    expect_open_error("{\"images\": [" IMG ", " IMG "], \"categories\": [" CAT "], \"annotations\": []}", MN_EFORMAT,
                      "images[0] and images[1]", "share the id 1");
    expect_open_error("{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 32}], \"categories\": [" CAT
                      "], \"annotations\": []}",
                      MN_EFORMAT, "images[0]", "\"height\"");
    expect_open_error("{\"images\": [{\"id\": 1.5, \"file_name\": \"a.jpg\", \"width\": 32, \"height\": 24}], "
                      "\"categories\": [" CAT "], \"annotations\": []}",
                      MN_EFORMAT, "images[0]", "\"id\" must be an integer");
    expect_open_error("{\"images\": [{\"id\": 1, \"file_name\": \"zz.jpg\", \"width\": 32, \"height\": 24}], "
                      "\"categories\": [" CAT "], \"annotations\": []}",
                      MN_EIO, "images/train/zz.jpg", "missing");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3]}]}",
                      MN_EFORMAT, "annotations[0]", "\"bbox\"");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3, 4]}, {\"image_id\": 1, \"bbox\": [1, 2, 3, 4]}]}",
                      MN_EFORMAT, "annotations[1]", "\"category_id\"");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"iscrowd\": 2}]}",
                      MN_EFORMAT, "annotations[0]", "\"iscrowd\"");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"segmentation\": [[1, 2, 3]]}]}",
                      MN_EFORMAT, "annotations[0] \"segmentation\"", "segmentation[0]");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"segmentation\": {\"size\": [24, 32], "
                      "\"counts\": [700, 10]}}]}",
                      MN_EFORMAT, "annotations[0] \"segmentation\"", "add up to 710");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"segmentation\": {\"size\": [24, 32], "
                      "\"counts\": \"X1n0 \"}}]}",
                      MN_EFORMAT, "annotations[0] \"segmentation\"", "bad character");
    expect_open_error("{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [{\"image_id\": 1, "
                      "\"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"segmentation\": {\"size\": [10, 12], "
                      "\"counts\": \"X1n05FN2\"}}]}",
                      MN_EFORMAT, "annotations[0] \"segmentation\"", "differs from the image");

    /* a decoded image whose size differs from the JSON's is refused when loaded */
    coco_tree("{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 30, \"height\": 24}], "
              "\"categories\": [" CAT "], \"annotations\": []}");
    char root[512];
    path_in(root, sizeof root, "coco");
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, 0, &s), MN_ESHAPE);
    cr_assert(strstr(mn_last_error(), "images/train/a.jpg") && strstr(mn_last_error(), "30x24"), "%s",
              mn_last_error());
    mn_dataset_close(d);
}

#define ANN_BB(id, bbox, extra) \
    "{\"id\": " #id ", \"image_id\": 1, \"category_id\": 1, \"bbox\": " bbox extra "}"
#define ONE_IMAGE(anns) "{\"images\": [" IMG "], \"categories\": [" CAT "], \"annotations\": [" anns "]}"

Test(coco, non_finite_numbers_are_refused_with_the_annotation)
{
    /* 1e999 reads as infinity: it used to be clamped to the image edge */
    expect_open_error(ONE_IMAGE(ANN_BB(1, "[1, 2, 3, 4]", "") ", " ANN_BB(7, "[1, 2, 1e999, 4]", "")), MN_ENUMERIC,
                      "instances_train.json: annotations[1] (id 7)", "\"bbox\"[2] is inf, not a finite number");
    expect_open_error(ONE_IMAGE(ANN_BB(3, "[-1e999, 2, 3, 4]", "")), MN_ENUMERIC, "annotations[0] (id 3)",
                      "\"bbox\"[0] is -inf");
    expect_open_error(ONE_IMAGE("{\"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 1, 1e400]}"), MN_ENUMERIC,
                      "annotations[0]:", "\"bbox\"[3]");
    expect_open_error(ONE_IMAGE(ANN_BB(4, "[1, 2, 3, 4]", ", \"area\": -1e999")), MN_ENUMERIC, "annotations[0] (id 4)",
                      "\"area\" is -inf");
    expect_open_error(ONE_IMAGE(ANN_BB(4, "[1, 2, 3, 4]", ", \"area\": \"12\"")), MN_EFORMAT, "annotations[0] (id 4)",
                      "\"area\" must be a number");
    /* polygons are stored as float: 1e39 would become infinity there */
    expect_open_error(ONE_IMAGE(ANN_BB(5, "[1, 2, 3, 4]", ", \"segmentation\": [[1, 2, 3, 4, 1e39, 6]]")), MN_ENUMERIC,
                      "annotations[0] (id 5)", "\"segmentation\"[0][4] is 1e+39");
    /* checked on annotations that are dropped anyway (unknown image): the file is wrong either way */
    expect_open_error(ONE_IMAGE("{\"id\": 6, \"image_id\": 99, \"category_id\": 1, \"bbox\": [0, 0, 1e999, 1]}"),
                      MN_ENUMERIC, "annotations[0] (id 6)", "\"bbox\"[2]");
}

Test(coco, degenerate_boxes_are_skipped_and_counted)
{
    /* image 32x24. Kept: [1, 2, 3, 4] and a crowd. Degenerate: zero width, negative height, a box right of
     * the image, one entirely above it, and a sliver of 1e-10 px whose clipped edges are equal in float
     * (it used to become a zero-width training box) */
    coco_tree(ONE_IMAGE(ANN_BB(1, "[1, 2, 3, 4]", "") ", " ANN_BB(2, "[5, 5, 6, 6]", ", \"iscrowd\": 1") ", "
                        ANN_BB(3, "[1, 2, 0, 4]", "") ", " ANN_BB(4, "[1, 2, 3, -4]", "") ", "
                        ANN_BB(5, "[40, 2, 3, 4]", "") ", " ANN_BB(6, "[1, -10, 3, 4]", "") ", "
                        ANN_BB(7, "[20, 2, 1e-10, 4]", "")));
    char root[512];
    path_in(root, sizeof root, "coco");
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = NULL;
    int rc;
    char *err = open_capturing(&d, &o, &rc);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    cr_expect(strstr(err, "dropped 3 annotations: their box has no area inside the image"), "%s", err);
    free(err);
    mn_box_stats st;
    cr_assert_eq(mn_dataset_box_stats(d, &st), 0);
    cr_expect_eq(st.annotations, 7);
    cr_expect_eq(st.usable, 1);
    cr_expect_eq(st.crowd, 1);
    cr_expect_eq(st.degenerate, 5);
    cr_expect_eq(st.images_with_boxes, 1);
    mn_sample s;
    get_ok(d, 0, &s);
    cr_assert_eq(s.n_boxes, 2);
    for (int j = 0; j < s.n_boxes; j++)
        cr_expect(s.boxes[j].x2 > s.boxes[j].x1 && s.boxes[j].y2 > s.boxes[j].y1, "box %d is empty", j);
    mn_sample_free(&s);
    mn_dataset_close(d);

    /* no annotations at all: a valid split with nothing to train a detector on, which the counts show */
    coco_tree(ONE_IMAGE(""));
    d = open_ok(&o);
    cr_assert_eq(mn_dataset_box_stats(d, &st), 0);
    cr_expect(st.annotations == 0 && st.usable == 0 && st.images_with_boxes == 0);
    mn_dataset_close(d);
    /* only crowds: still nothing usable */
    coco_tree(ONE_IMAGE(ANN_BB(1, "[1, 2, 3, 4]", ", \"iscrowd\": 1")));
    d = open_ok(&o);
    cr_assert_eq(mn_dataset_box_stats(d, &st), 0);
    cr_expect(st.usable == 0 && st.crowd == 1 && st.images_with_boxes == 1);
    mn_dataset_close(d);
    /* kinds without boxes say so */
    folder_tree("0 background\n1 cat\n2 dog\n");
    mn_dataset_options of = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    d = open_ok(&of);
    cr_expect_eq(mn_dataset_box_stats(d, &st), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "folder") && strstr(mn_last_error(), "no boxes"), "%s", mn_last_error());
    cr_expect_eq(st.usable, 0);
    mn_dataset_close(d);
}

#define IMG_FILE(name) "{\"id\": 1, \"file_name\": \"" name "\", \"width\": 32, \"height\": 24}"

Test(coco, file_names_stay_inside_the_images_folder)
{
    static const char *const bad[] = {"../a.jpg", "/etc/passwd", "sub/../../train/a.jpg", "./../x.png", "..",
                                      "sub/./../.."};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"images\": [" IMG ", {\"id\": 2, \"file_name\": \"%s\", \"width\": 32, \"height\": 24}], "
                 "\"categories\": [" CAT "], \"annotations\": []}", bad[k]);
        char frag[64];
        snprintf(frag, sizeof frag, "file_name \"%s\" is outside the images folder", bad[k]);
        expect_open_error(json, MN_EFORMAT, "images[1]", frag);
    }
    /* ".." that stays inside, "." and doubled slashes are fine */
    coco_tree("{\"images\": [" IMG_FILE("sub/../a.jpg") ", {\"id\": 2, \"file_name\": \"./sub//b.png\", "
              "\"width\": 32, \"height\": 24}], \"categories\": [" CAT "], \"annotations\": []}");
    char root[512];
    path_in(root, sizeof root, "coco");
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    mn_sample s;
    get_ok(d, 0, &s);
    cr_expect_str_eq(s.name, "a");
    mn_sample_free(&s);
    get_ok(d, 1, &s);
    cr_expect_str_eq(s.name, "b");
    mn_sample_free(&s);
    mn_dataset_close(d);
    /* a file_name too long for a path is refused rather than cut to another file's name */
    char json[4096], name[2100];
    memset(name, 'n', 2050);
    name[2050] = 0;
    snprintf(json, sizeof json, "{\"images\": [{\"id\": 1, \"file_name\": \"%s\", \"width\": 32, \"height\": 24}], "
             "\"categories\": [" CAT "], \"annotations\": []}", name);
    expect_open_error(json, MN_EFORMAT, "images[0]", "too long");
}

Test(coco, image_sizes_above_the_pixel_limit_are_refused)
{
    /* the JSON's own sizes are checked at open (masks are allocated from them) */
    coco_tree(ONE_IMAGE(""));
    char root[512];
    path_in(root, sizeof root, "coco");
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train", .void_index = -1, .max_pixels = 700};
    mn_dataset *d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_expect(strstr(mn_last_error(), "images[0] (id 1) is 32x24") && strstr(mn_last_error(), "limit of 700"), "%s",
              mn_last_error());
    o.max_pixels = 768; /* exactly 32 x 24 */
    d = open_ok(&o);
    mn_sample s;
    get_ok(d, 0, &s);
    mn_sample_free(&s);
    mn_dataset_close(d);
    /* 65535 x 65535 in the JSON: over the default limit, refused before any mask could be allocated */
    expect_open_error("{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 65535, \"height\": 65535}], "
                      "\"categories\": [" CAT "], \"annotations\": []}",
                      MN_EFORMAT, "images[0] (id 1) is 65535x65535", "above the limit");
    o.max_pixels = -1;
    cr_expect_eq(mn_dataset_open(&d, &o), MN_EINVAL);
    cr_expect(strstr(mn_last_error(), "max_pixels"), "%s", mn_last_error());
}

Test(coco, coco128)
{
    char root[512];
    if (!shared_dir(root, sizeof root, "coco128")) cr_skip_test("COCO128 not found at %s (shared data absent)", root);
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "train2017", .images = "{split}",
                            .void_index = -1};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 128);
    cr_assert_eq(mn_dataset_num_classes(d), 81, "80 categories and background");
    cr_assert_str_eq(mn_dataset_class_name(d, 1), "person");
    cr_assert_str_eq(mn_dataset_class_name(d, 17), "dog");
    cr_assert_str_eq(mn_dataset_class_name(d, 80), "toothbrush");
    cr_assert_eq(mn_dataset_category_id(d, 1), 1);
    cr_assert_eq(mn_dataset_category_id(d, 17), 18, "id 12 is unused, so labels lag the ids from 13 on");
    cr_assert_eq(mn_dataset_category_id(d, 80), 90);

    int total = 0, crowds = 0, empty = 0;
    for (int i = 0; i < 128; i++) {
        mn_sample s;
        get_ok(d, i, &s);
        total += s.n_boxes;
        empty += s.n_boxes == 0;
        for (int j = 0; j < s.n_boxes; j++) {
            const mn_box *b = &s.boxes[j];
            crowds += b->crowd;
            cr_assert(b->x1 >= 0 && b->y1 >= 0 && b->x2 <= s.image.w && b->y2 <= s.image.h && b->x2 > b->x1 &&
                          b->y2 > b->y1 && b->label >= 1 && b->label <= 80,
                      "%s box %d", s.name, j);
        }
        if (i == 12) {
            /* annotation 1774: dog, bbox [61.87, 276.25, 296.42, 103.18] */
            cr_assert_eq(s.image_id, 74);
            cr_assert_str_eq(s.name, "000000000074");
            cr_assert(s.image.w == 640 && s.image.h == 426);
            cr_assert_eq(s.n_boxes, 8);
            expect_box(&s.boxes[0], 61.87f, 276.25f, (float)(61.87 + 296.42), (float)(276.25 + 103.18), 17, false);
            mn_image m;
            cr_assert_eq(mn_dataset_mask(d, i, 0, &m), 0, "%s", mn_last_error());
            int64_t on = 0;
            for (int64_t k = 0; k < 640 * 426; k++) on += m.data[k];
            cr_assert(fabs((double)on - 18234.62355) < 0.02 * 18234.62355, "polygon mask has %lld pixels",
                      (long long)on);
            mn_image_free(&m);
        }
        if (i == 43) {
            /* image 257 holds a crowd RLE (bbox [16, 301, 611, 178], 10513 pixels set) */
            cr_assert_eq(s.image_id, 257);
            int k = -1;
            for (int j = 0; j < s.n_boxes; j++)
                if (s.boxes[j].crowd) k = j;
            cr_assert_geq(k, 0);
            expect_box(&s.boxes[k], 16, 301, 627, 479, 1, true);
            mn_image m;
            cr_assert_eq(mn_dataset_mask(d, i, k, &m), 0, "%s", mn_last_error());
            int64_t on = 0;
            for (int64_t p = 0; p < 640 * 480; p++) on += m.data[p];
            cr_assert_eq(on, 10513);
            mn_image_free(&m);
        }
        if (i == 42 || i == 92) cr_assert_eq(s.n_boxes, 0, "images 250 and 508 have no annotations");
        mn_sample_free(&s);
    }
    cr_assert_eq(total, 939, "no annotation is dropped");
    cr_assert_eq(crowds, 10);
    cr_assert_eq(empty, 2);
    mn_dataset_close(d);
}

/* ======================================================================================== */
/* transforms (datasets/transforms.c)                                                       */
/* ======================================================================================== */

/* PyTorch's bilinear resize (align_corners = False) of channel c at output pixel (oy, ox),
 * written out in double: source = (dst + 0.5) * in / out - 0.5, clamped at 0. */
static double bilinear_ref(const mn_image *im, int c, int oy, int ox, int H, int W)
{
    double sy = fmax((oy + 0.5) * im->h / H - 0.5, 0), sx = fmax((ox + 0.5) * im->w / W - 0.5, 0);
    int y0 = (int)floor(sy), x0 = (int)floor(sx);
    if (y0 > im->h - 1) y0 = im->h - 1;
    if (x0 > im->w - 1) x0 = im->w - 1;
    int y1 = y0 + 1 < im->h ? y0 + 1 : im->h - 1, x1 = x0 + 1 < im->w ? x0 + 1 : im->w - 1;
    double ly = sy - y0, lx = sx - x0;
#define PX(y, x) ((double)im->data[((y) * im->w + (x)) * im->c + c])
    return (1 - ly) * ((1 - lx) * PX(y0, x0) + lx * PX(y0, x1)) + ly * ((1 - lx) * PX(y1, x0) + lx * PX(y1, x1));
#undef PX
}

static void plain_aug(mn_seg_aug *a, int h, int w, bool train)
{
    mn_seg_aug_default(a, h, w, train);
    for (int c = 0; c < 3; c++) {
        a->mean[c] = 0;
        a->std[c] = 1;
    }
}

Test(transforms, eval_resizes_exactly)
{
    /* 2x2 -> 32x32 with hand-computed values */
    mn_sample s = {0};
    cr_assert_eq(mn_image_alloc(&s.image, 2, 2, 3), 0);
    cr_assert_eq(mn_image_alloc(&s.label, 2, 2, 1), 0);
    static const uint8_t px[4] = {0, 100, 200, 40}; /* a b / c d in channel 0 */
    for (int k = 0; k < 4; k++) {
        s.image.data[3 * k] = px[k];
        s.image.data[3 * k + 1] = 255;
        s.image.data[3 * k + 2] = (uint8_t)(k * 60);
        s.label.data[k] = (uint8_t)(k + 1);
    }
    mn_seg_aug a;
    plain_aug(&a, 32, 32, false);
    float *img = malloc(sizeof(float) * 3 * 32 * 32);
    int32_t *lab = malloc(sizeof(int32_t) * 32 * 32);
    mn_rng r;
    mn_rng_seed(&r, 1);
    cr_assert_eq(mn_seg_transform(&a, &s, &r, img, lab), 0, "%s", mn_last_error());
    /* corners copy the corner pixels; the step across the middle, at output 16, samples source
     * 16.5 / 16 - 0.5 = 0.53125; output 8 samples 0.03125; output 20 samples 0.78125 */
    cr_assert_float_eq(img[0], 0.0f, 1e-6);
    cr_assert_float_eq(img[31], 100 / 255.0f, 1e-6);
    cr_assert_float_eq(img[31 * 32], 200 / 255.0f, 1e-6);
    cr_assert_float_eq(img[31 * 32 + 31], 40 / 255.0f, 1e-6);
    cr_assert_float_eq(img[16], 0.53125f * 100 / 255.0f, 1e-6);
    cr_assert_float_eq(img[8], 0.03125f * 100 / 255.0f, 1e-6);
    cr_assert_float_eq(img[16 * 32], 0.53125f * 200 / 255.0f, 1e-6);
    float v = (0.21875f * (0.21875f * 0 + 0.78125f * 100) + 0.78125f * (0.21875f * 200 + 0.78125f * 40)) / 255.0f;
    cr_assert_float_eq(img[20 * 32 + 20], v, 1e-6);
    cr_assert_float_eq(img[32 * 32 + 500], 1.0f, 1e-6, "a constant channel stays constant");
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            cr_assert_eq(lab[y * 32 + x], 1 + (y >= 16) * 2 + (x >= 16), "nearest label at (%d, %d)", x, y);
            for (int c = 0; c < 3; c++)
                cr_assert_float_eq(img[c * 1024 + y * 32 + x], bilinear_ref(&s.image, c, y, x, 32, 32) / 255.0, 1e-5);
        }
    mn_sample_free(&s);

    /* a 7x5 image to 64x32 (different factors in x and y), with the default normalisation */
    s.image = random_image(7, 5, 3, 9, 255);
    mn_seg_aug_default(&a, 32, 64, false);
    float *big = malloc(sizeof(float) * 3 * 32 * 64);
    int32_t *blab = malloc(sizeof(int32_t) * 32 * 64);
    cr_assert_eq(mn_seg_transform(&a, &s, &r, big, blab), 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 64; x++) {
                double want = (bilinear_ref(&s.image, c, y, x, 32, 64) / 255.0 - a.mean[c]) / a.std[c];
                cr_assert_float_eq(big[(c * 32 + y) * 64 + x], want, 2e-5, "(%d, %d, %d)", c, y, x);
                if (!c) cr_assert_eq(blab[y * 64 + x], 255, "no label data: ignore");
            }
    free(big);
    free(blab);
    free(img);
    free(lab);
    mn_sample_free(&s);
}

Test(transforms, train_padding_is_zero_and_ignored)
{
    mn_sample s = {0};
    s.image = random_image(20, 10, 3, 5, 255);
    s.label = random_image(20, 10, 1, 6, 20);
    mn_seg_aug a;
    mn_seg_aug_default(&a, 32, 32, true);
    a.scale_min = a.scale_max = 1;
    a.hflip = false;
    float *img = malloc(sizeof(float) * 3 * 32 * 32);
    int32_t *lab = malloc(sizeof(int32_t) * 32 * 32);
    mn_rng r;
    mn_rng_seed(&r, 3);
    cr_assert_eq(mn_seg_transform(&a, &s, &r, img, lab), 0);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            bool inside = x < 20 && y < 10;
            cr_assert_eq(lab[y * 32 + x], inside ? s.label.data[y * 20 + x] : 255, "label at (%d, %d)", x, y);
            for (int c = 0; c < 3; c++) {
                float want = inside ? (s.image.data[(y * 20 + x) * 3 + c] / 255.0f - a.mean[c]) / a.std[c] : 0.0f;
                cr_assert_float_eq(img[c * 1024 + y * 32 + x], want, 1e-5, "image at (%d, %d, %d)", c, x, y);
            }
        }
    free(img);
    free(lab);
    mn_sample_free(&s);
}

Test(transforms, train_crop_keeps_image_and_label_aligned)
{
    /* pixel (x, y) holds red 5x, green 6y; its label is (x + 2y) mod 7 */
    mn_sample s = {0};
    cr_assert_eq(mn_image_alloc(&s.image, 50, 40, 3), 0);
    cr_assert_eq(mn_image_alloc(&s.label, 50, 40, 1), 0);
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 50; x++) {
            uint8_t *p = s.image.data + (y * 50 + x) * 3;
            p[0] = (uint8_t)(5 * x);
            p[1] = (uint8_t)(6 * y);
            p[2] = 7;
            s.label.data[y * 50 + x] = (uint8_t)((x + 2 * y) % 7);
        }
    mn_seg_aug a;
    plain_aug(&a, 16, 24, true);
    a.scale_min = a.scale_max = 1;
    float img[3 * 16 * 24];
    int32_t lab[16 * 24];
    int flips = 0, offsets[2][64] = {{0}};
    for (int seed = 0; seed < 40; seed++) {
        mn_rng r;
        mn_rng_seed(&r, (uint64_t)seed);
        cr_assert_eq(mn_seg_transform(&a, &s, &r, img, lab), 0);
        int sx0 = (int)lroundf(img[0] * 255 / 5), sx1 = (int)lroundf(img[1] * 255 / 5);
        int dir = sx1 - sx0;
        cr_assert(dir == 1 || dir == -1, "neighbouring outputs come from neighbouring columns");
        flips += dir < 0;
        int oy = (int)lroundf(img[16 * 24] * 255 / 6);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 24; x++) {
                int o = y * 24 + x;
                int sx = (int)lroundf(img[o] * 255 / 5), sy = (int)lroundf(img[16 * 24 + o] * 255 / 6);
                cr_assert_eq(sx, sx0 + dir * x, "seed %d: column at (%d, %d)", seed, x, y);
                cr_assert_eq(sy, oy + y, "seed %d: row at (%d, %d)", seed, x, y);
                cr_assert_eq(lab[o], (sx + 2 * sy) % 7, "seed %d: label at (%d, %d)", seed, x, y);
            }
        offsets[0][dir < 0 ? sx0 - 23 : sx0] = 1;
        offsets[1][oy] = 1;
    }
    int nx = 0, ny = 0;
    for (int k = 0; k < 64; k++) nx += offsets[0][k], ny += offsets[1][k];
    cr_assert(flips > 5 && flips < 35, "%d of 40 crops were flipped", flips);
    cr_assert(nx > 5 && ny > 5, "crop offsets vary with the seed (%d columns, %d rows)", nx, ny);
    mn_sample_free(&s);
}

Test(transforms, flip_mirrors_image_and_label)
{
    mn_sample s = {0};
    s.image = random_image(32, 32, 3, 21, 255);
    s.label = random_image(32, 32, 1, 22, 10);
    mn_seg_aug a;
    mn_seg_aug_default(&a, 32, 32, true);
    a.scale_min = a.scale_max = 1;
    float img[3 * 32 * 32], ref[3 * 32 * 32];
    int32_t lab[32 * 32], rlab[32 * 32];
    a.hflip = false;
    mn_rng r;
    mn_rng_seed(&r, 0);
    cr_assert_eq(mn_seg_transform(&a, &s, &r, ref, rlab), 0);
    a.hflip = true;
    int flipped = 0, kept = 0;
    for (int seed = 0; seed < 20; seed++) {
        mn_rng_seed(&r, (uint64_t)seed);
        cr_assert_eq(mn_seg_transform(&a, &s, &r, img, lab), 0);
        bool same = !memcmp(img, ref, sizeof img) && !memcmp(lab, rlab, sizeof lab);
        bool mirror = true;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++) {
                    mirror &= img[(c * 32 + y) * 32 + x] == ref[(c * 32 + y) * 32 + 31 - x];
                    if (!c) mirror &= lab[y * 32 + x] == rlab[y * 32 + 31 - x];
                }
        cr_assert(same != mirror, "seed %d: the output is the input or its mirror image", seed);
        flipped += mirror;
        kept += same;
    }
    cr_assert(flipped > 2 && kept > 2, "%d flipped, %d kept", flipped, kept);
    mn_sample_free(&s);
}

/* ======================================================================================== */
/* loader (datasets/loader.c)                                                               */
/* ======================================================================================== */

TestSuite(loader, .init = make_dir, .fini = remove_dir);

/* n images of 40x30 named s00.png ... with labels 0..3; image `corrupt` is cut in half. */
static mn_dataset *loader_tree(int n, int corrupt)
{
    for (int i = 0; i < n; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "ld/images/train/s%02d.png", i);
        save_random(rel, 40, 30, 3, 100 + (uint64_t)i, 255);
        if (i == corrupt) {
            char path[512];
            path_in(path, sizeof path, rel);
            struct stat sb;
            cr_assert_eq(stat(path, &sb), 0);
            cr_assert_eq(truncate(path, sb.st_size / 2), 0);
        }
        snprintf(rel, sizeof rel, "ld/labels/train/s%02d.png", i);
        save_random(rel, 40, 30, 1, 200 + (uint64_t)i, 3);
    }
    write_text("ld/classes.txt", "a\nb\nc\nd\n");
    char root[512];
    path_in(root, sizeof root, "ld");
    mn_dataset_options o = {.kind = "folder", .root = root, .split = "train", .void_index = -1};
    return open_ok(&o);
}

typedef struct epoch_copy {
    int n_batches;
    int n[8], index[8][64];
    float *images;      /* (8, B, 3, H, W) */
    int32_t *labels;    /* (8, B, H, W) */
} epoch_copy;

enum { LB = 3, LH = 32, LW = 32 };

static void copy_batch(epoch_copy *e, int b, const mn_seg_batch *bt)
{
    cr_assert(b < 8 && bt->n <= LB && bt->h == LH && bt->w == LW);
    e->n[b] = bt->n;
    memcpy(e->index[b], bt->index, sizeof(int) * (size_t)bt->n);
    memcpy(e->images + (size_t)b * LB * 3 * LH * LW, bt->images, sizeof(float) * (size_t)bt->n * 3 * LH * LW);
    memcpy(e->labels + (size_t)b * LB * LH * LW, bt->labels, sizeof(int32_t) * (size_t)bt->n * LH * LW);
}

static void run_epoch(mn_loader *l, int epoch, epoch_copy *e)
{
    e->images = calloc(8 * LB * 3 * LH * LW, sizeof(float));
    e->labels = calloc(8 * LB * LH * LW, sizeof(int32_t));
    cr_assert_eq(mn_loader_start(l, epoch, 0), 0);
    const mn_seg_batch *bt;
    int b = 0;
    for (;;) {
        int rc = mn_loader_next(l, &bt);
        cr_assert_eq(rc, 0, "%s", mn_last_error());
        if (!bt) break;
        copy_batch(e, b++, bt);
    }
    e->n_batches = b;
    cr_assert_eq(mn_loader_next(l, &bt), 0, "past the end stays at the end");
    cr_assert_null(bt);
}

static bool same_batch(const epoch_copy *x, int bx, const epoch_copy *y, int by)
{
    size_t ni = (size_t)x->n[bx] * 3 * LH * LW, nl = (size_t)x->n[bx] * LH * LW;
    return x->n[bx] == y->n[by] && !memcmp(x->index[bx], y->index[by], sizeof(int) * (size_t)x->n[bx]) &&
           !memcmp(x->images + (size_t)bx * LB * 3 * LH * LW, y->images + (size_t)by * LB * 3 * LH * LW,
                   sizeof(float) * ni) &&
           !memcmp(x->labels + (size_t)bx * LB * LH * LW, y->labels + (size_t)by * LB * LH * LW, sizeof(int32_t) * nl);
}

static void free_epoch(epoch_copy *e)
{
    free(e->images);
    free(e->labels);
}

Test(loader, same_seed_same_batches_for_any_worker_count)
{
    mn_dataset *d = loader_tree(11, -1);
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, LH, LW, true);
    aug.scale_min = 0.6f;
    aug.scale_max = 1.6f;
    mn_loader_options lo = {.batch_size = LB, .shuffle = true, .drop_last = false, .workers = 0, .seed = 42};
    epoch_copy ref[2];
    static const int workers[3] = {0, 1, 3};
    for (int w = 0; w < 3; w++) {
        lo.workers = workers[w];
        mn_loader *l;
        cr_assert_eq(mn_loader_open(&l, d, &aug, &lo), 0, "%s", mn_last_error());
        cr_assert_eq(mn_loader_batches_per_epoch(l), 4);
        for (int ep = 0; ep < 2; ep++) {
            epoch_copy e;
            run_epoch(l, ep, &e);
            cr_assert_eq(e.n_batches, 4);
            cr_assert_eq(e.n[3], 2, "the last batch holds the remainder");
            if (w == 0) {
                ref[ep] = e;
                continue;
            }
            for (int b = 0; b < 4; b++)
                cr_assert(same_batch(&e, b, &ref[ep], b), "%d workers, epoch %d, batch %d differs from 0 workers",
                          workers[w], ep, b);
            free_epoch(&e);
        }
        /* resuming at batch 2 gives batch 2 */
        cr_assert_eq(mn_loader_start(l, 1, 2), 0);
        const mn_seg_batch *bt;
        cr_assert_eq(mn_loader_next(l, &bt), 0, "%s", mn_last_error());
        epoch_copy one = {.images = calloc(8 * LB * 3 * LH * LW, sizeof(float)),
                          .labels = calloc(8 * LB * LH * LW, sizeof(int32_t))};
        copy_batch(&one, 0, bt);
        cr_assert(same_batch(&one, 0, &ref[1], 2), "%d workers: start(1, 2) differs from batch 2", workers[w]);
        free_epoch(&one);
        mn_loader_close(l);
    }
    /* each epoch is a permutation, and the epochs differ */
    for (int ep = 0; ep < 2; ep++) {
        int seen[11] = {0};
        for (int b = 0; b < 4; b++)
            for (int j = 0; j < ref[ep].n[b]; j++) seen[ref[ep].index[b][j]]++;
        for (int i = 0; i < 11; i++) cr_assert_eq(seen[i], 1, "epoch %d: sample %d appears %d times", ep, i, seen[i]);
    }
    bool same_order = true;
    for (int b = 0; b < 4; b++) same_order &= !memcmp(ref[0].index[b], ref[1].index[b], sizeof(int) * LB);
    cr_assert(!same_order, "a new epoch is a new order");
    /* augmentation is random but sane: labels are classes or ignore */
    for (int k = 0; k < 4 * LB * LH * LW; k++) {
        int32_t v = ref[0].labels[k];
        cr_assert((v >= 0 && v <= 3) || v == 255);
    }
    free_epoch(&ref[0]);
    free_epoch(&ref[1]);

    /* another seed, another first batch */
    lo.seed = 43;
    lo.workers = 0;
    mn_loader *l;
    cr_assert_eq(mn_loader_open(&l, d, &aug, &lo), 0);
    epoch_copy e;
    run_epoch(l, 0, &e);
    mn_loader_close(l);
    lo.seed = 42;
    cr_assert_eq(mn_loader_open(&l, d, &aug, &lo), 0);
    epoch_copy f;
    run_epoch(l, 0, &f);
    mn_loader_close(l);
    cr_assert(!same_batch(&e, 0, &f, 0), "the seed matters");
    free_epoch(&e);
    free_epoch(&f);

    /* no shuffle, drop_last: 0, 1, 2 / 3, 4, 5 / 6, 7, 8 */
    lo.shuffle = false;
    lo.drop_last = true;
    lo.workers = 2;
    cr_assert_eq(mn_loader_open(&l, d, &aug, &lo), 0);
    cr_assert_eq(mn_loader_batches_per_epoch(l), 3);
    run_epoch(l, 5, &e);
    cr_assert_eq(e.n_batches, 3);
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < LB; j++) cr_assert_eq(e.index[b][j], 3 * b + j);
    free_epoch(&e);
    mn_loader_close(l);
    mn_dataset_close(d);
}

Test(loader, corrupt_image_is_an_error_naming_the_file)
{
    mn_dataset *d = loader_tree(7, 4);
    mn_seg_aug aug;
    mn_seg_aug_default(&aug, LH, LW, false);
    for (int w = 0; w <= 2; w += 2) {
        mn_loader_options lo = {.batch_size = 2, .shuffle = false, .workers = w, .seed = 1};
        mn_loader *l;
        cr_assert_eq(mn_loader_open(&l, d, &aug, &lo), 0);
        cr_assert_eq(mn_loader_start(l, 0, 0), 0);
        const mn_seg_batch *bt;
        for (int b = 0; b < 2; b++) {
            cr_assert_eq(mn_loader_next(l, &bt), 0, "%d workers, batch %d: %s", w, b, mn_last_error());
            cr_assert_not_null(bt);
        }
        int rc = mn_loader_next(l, &bt); /* batch 2 holds samples 4 and 5 */
        cr_assert_eq(rc, MN_EFORMAT, "%d workers: %s", w, mn_last_error());
        cr_assert_null(bt);
        cr_assert(strstr(mn_last_error(), "images/train/s04.png"), "%s", mn_last_error());
        mn_loader_close(l);
    }
    mn_dataset_close(d);
}

/* ======================================================================================== */
/* imagefolder kind (datasets/imagefolder.c)                                                */
/* ======================================================================================== */

static void remove_tree(void) { tc_remove_tree(dir); }

TestSuite(imagefolder, .init = make_dir, .fini = remove_tree);

/* if/train: ant/{z.png, m.PNG}, cat/{b.png, a.png}, dog/c.png, plus files and a folder that
 * do not count; if/val: cat/a.png, dog/d.png. Image "<split>/<class>/<file>" of size w x h
 * has seed seed_of(...) so that tests can rebuild its pixels. */
static const char *const if_files[7] = {"train/ant/z.png", "train/ant/m.PNG", "train/cat/b.png", "train/cat/a.png",
                                        "train/dog/c.png", "val/cat/a.png",   "val/dog/d.png"};

static uint64_t if_seed(int f) { return 500 + (uint64_t)f; }
static int if_w(int f) { return 9 + f; }
static int if_h(int f) { return 7 + 2 * f; }

static void if_tree(void)
{
    for (int f = 0; f < 7; f++) {
        char rel[128];
        snprintf(rel, sizeof rel, "if/%s", if_files[f]);
        save_random(rel, if_w(f), if_h(f), 3, if_seed(f), 255);
    }
    write_text("if/train/cat/notes.txt", "not an image\n");
    write_text("if/train/dog/.hidden.png", "not even a PNG\n");
    save_random("if/train/dog/extra/e.png", 8, 8, 3, 1, 255); /* sub-subfolders are ignored */
    write_text("if/train/readme.txt", "a file beside the class folders\n");
}

/* Checks sample i of d: class, name, id and pixels of file if_files[f]. */
static void expect_if_sample(mn_dataset *d, int i, int f, int class_id, const char *name)
{
    mn_sample s;
    get_ok(d, i, &s);
    cr_assert_eq(s.class_id, class_id, "sample %d (%s): class %d, want %d", i, if_files[f], s.class_id, class_id);
    cr_assert_str_eq(s.name, name);
    cr_assert_eq(s.image_id, i);
    cr_assert_null(s.label.data, "no label map");
    cr_assert_null(s.boxes);
    cr_assert_eq(s.n_boxes, 0);
    cr_assert(s.image.w == if_w(f) && s.image.h == if_h(f) && s.image.c == 3, "%s: %dx%dx%d", if_files[f], s.image.w,
              s.image.h, s.image.c);
    mn_image want = random_image(if_w(f), if_h(f), 3, if_seed(f), 255);
    cr_assert_eq(memcmp(s.image.data, want.data, (size_t)if_w(f) * if_h(f) * 3), 0, "%s: pixels differ", if_files[f]);
    mn_image_free(&want);
    mn_sample_free(&s);
}

Test(imagefolder, sorted_folders_give_classes_and_order)
{
    if_tree();
    char root[512];
    path_in(root, sizeof root, "if");
    mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "train"};
    mn_dataset *d = open_ok(&o);
    cr_assert_str_eq(mn_dataset_kind_name(d), "imagefolder");
    cr_assert_eq(mn_dataset_size(d), 5, "images in the class folders only");
    cr_assert_eq(mn_dataset_num_classes(d), 3, "no background class");
    cr_assert_str_eq(mn_dataset_class_name(d, 0), "ant");
    cr_assert_str_eq(mn_dataset_class_name(d, 1), "cat");
    cr_assert_str_eq(mn_dataset_class_name(d, 2), "dog");
    cr_assert_str_eq(mn_dataset_class_name(d, 3), "?");
    /* (class, strcmp file name): "m.PNG" < "z.png", "a.png" < "b.png" */
    expect_if_sample(d, 0, 1, 0, "ant_m");
    expect_if_sample(d, 1, 0, 0, "ant_z");
    expect_if_sample(d, 2, 3, 1, "cat_a");
    expect_if_sample(d, 3, 2, 1, "cat_b");
    expect_if_sample(d, 4, 4, 2, "dog_c");
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, 5, &s), MN_EINVAL, "index past the end");
    cr_assert_eq(s.class_id, -1);
    mn_dataset_close(d);

    /* without a class list each split's own folders are the classes */
    o.split = "val";
    d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 2);
    cr_assert_eq(mn_dataset_num_classes(d), 2);
    expect_if_sample(d, 0, 5, 0, "cat_a");
    expect_if_sample(d, 1, 6, 1, "dog_d");
    mn_dataset_close(d);

    /* another images pattern */
    o.images = "{split}/../val";
    o.split = "train";
    d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 2);
    mn_dataset_close(d);
}

Test(imagefolder, class_list_sets_the_order)
{
    if_tree();
    char root[512];
    path_in(root, sizeof root, "if");
    static const char *const lists[3] = {"dog\ncat\n\nant\n", "# index name\n0 dog\n1 cat\n2 ant\n",
                                         "  # names with spaces around are trimmed\r\n dog \r\ncat\r\nant\r\n"};
    for (int l = 0; l < 3; l++) {
        write_text("if/classes.txt", lists[l]);
        mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "train"};
        mn_dataset *d = open_ok(&o);
        cr_assert_eq(mn_dataset_num_classes(d), 3, "list %d", l);
        cr_assert_str_eq(mn_dataset_class_name(d, 0), "dog");
        cr_assert_str_eq(mn_dataset_class_name(d, 2), "ant");
        cr_assert_eq(mn_dataset_size(d), 5);
        expect_if_sample(d, 0, 4, 0, "dog_c");
        expect_if_sample(d, 1, 3, 1, "cat_a");
        expect_if_sample(d, 2, 2, 1, "cat_b");
        expect_if_sample(d, 3, 1, 2, "ant_m");
        expect_if_sample(d, 4, 0, 2, "ant_z");
        mn_dataset_close(d);
        /* the val split holds no ant but keeps the list's numbering */
        o.split = "val";
        d = open_ok(&o);
        cr_assert_eq(mn_dataset_num_classes(d), 3);
        expect_if_sample(d, 0, 6, 0, "dog_d");
        expect_if_sample(d, 1, 5, 1, "cat_a");
        mn_dataset_close(d);
    }
    /* a named list, root-relative, overrides classes.txt */
    write_text("if/lists/mine.txt", "ant\ndog\ncat\nbee\n");
    mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "train", .classes = "lists/mine.txt"};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_num_classes(d), 4, "listed classes without a folder still count");
    cr_assert_str_eq(mn_dataset_class_name(d, 3), "bee");
    expect_if_sample(d, 2, 4, 1, "dog_c");
    expect_if_sample(d, 4, 2, 2, "cat_b");
    mn_dataset_close(d);
    /* a named list that does not exist is an error, not a fallback to the folders */
    o.classes = "lists/missing.txt";
    d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EIO);
    cr_assert_null(d);
    cr_assert(strstr(mn_last_error(), "lists/missing.txt"), "%s", mn_last_error());
    /* "index name" lines must count up from 0 */
    write_text("if/classes.txt", "0 dog\n2 cat\n1 ant\n");
    o.classes = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "classes.txt:2"), "%s", mn_last_error());
    write_text("if/classes.txt", "dog\ncat\nant\ndog\n");
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "classes.txt:4") && strstr(mn_last_error(), "twice"), "%s", mn_last_error());
}

Test(imagefolder, folder_missing_from_the_class_list_is_refused)
{
    if_tree();
    write_text("if/classes.txt", "cat\ndog\n");
    char root[512];
    path_in(root, sizeof root, "if");
    mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "train"};
    mn_dataset *d = NULL;
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_assert_null(d);
    cr_assert(strstr(mn_last_error(), "train/ant") && strstr(mn_last_error(), "if/classes.txt"), "%s", mn_last_error());
    o.split = "val"; /* val has only cat and dog */
    d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 2);
    mn_dataset_close(d);
}

Test(imagefolder, empty_or_missing_split_is_refused)
{
    if_tree();
    char root[512], path[512];
    path_in(root, sizeof root, "if");
    mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "test"};
    mn_dataset *d = NULL;
    cr_assert_lt(mn_dataset_open(&d, &o), 0, "a split folder that does not exist");
    cr_assert(strstr(mn_last_error(), "if/test"), "%s", mn_last_error());
    /* class folders holding no images */
    write_text("if/test/cat/notes.txt", "no images here\n");
    path_in(path, sizeof path, "if/test/dog/x");
    cr_assert_eq(mkdir(path, 0755), 0);
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_assert_null(d);
    cr_assert(strstr(mn_last_error(), "if/test") && strstr(mn_last_error(), "no images"), "%s", mn_last_error());
    /* no class folders and no class list */
    path_in(path, sizeof path, "if/empty/x"); /* creates if/empty */
    mn_dataset_options e = {.kind = "imagefolder", .root = root, .split = "empty"};
    cr_assert_eq(mn_dataset_open(&d, &e), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "if/empty") && strstr(mn_last_error(), "no class folders"), "%s", mn_last_error());
    /* with a class list but no images */
    write_text("if/classes.txt", "cat\ndog\nant\n");
    cr_assert_eq(mn_dataset_open(&d, &e), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "if/empty") && strstr(mn_last_error(), "no images"), "%s", mn_last_error());
    /* an empty class list */
    write_text("if/classes.txt", "# nothing\n\n");
    o.split = "train";
    cr_assert_eq(mn_dataset_open(&d, &o), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "classes.txt") && strstr(mn_last_error(), "empty"), "%s", mn_last_error());
}

Test(imagefolder, corrupt_image_names_the_file)
{
    if_tree();
    char root[512], path[512];
    path_in(root, sizeof root, "if");
    path_in(path, sizeof path, "if/train/cat/b.png");
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(truncate(path, sb.st_size / 2), 0);
    mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "train"};
    mn_dataset *d = open_ok(&o);
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, 3, &s), MN_EFORMAT);
    cr_assert(strstr(mn_last_error(), "if/train/cat/b.png"), "%s", mn_last_error());
    cr_assert_null(s.image.data, "a failed get leaves nothing to free");
    cr_assert_eq(s.class_id, -1);
    expect_if_sample(d, 2, 3, 1, "cat_a"); /* the others are fine */
    mn_dataset_close(d);
}

Test(imagefolder, classification_batches_carry_class_ids_for_any_worker_count)
{
    /* 3 classes of 4, 3 and 4 images of different sizes */
    static const int per_class[3] = {4, 3, 4};
    int want_class[11], n = 0;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < per_class[k]; j++) {
            char rel[128];
            snprintf(rel, sizeof rel, "ld/train/c%d/img%02d.png", k, j);
            save_random(rel, 30 + 3 * j, 20 + 5 * k, 3, 900 + (uint64_t)n, 255);
            want_class[n++] = k;
        }
    char root[512];
    path_in(root, sizeof root, "ld");
    mn_dataset_options o = {.kind = "imagefolder", .root = root, .split = "train"};
    mn_dataset *d = open_ok(&o);
    cr_assert_eq(mn_dataset_size(d), 11);
    const size_t per_image = 3 * LH * LW;
    for (int train = 0; train < 2; train++) {
        mn_cls_aug aug;
        mn_cls_aug_default(&aug, LH, LW, train);
        float *ref = calloc(11 * per_image, sizeof(float)), *got = calloc(11 * per_image, sizeof(float));
        for (int w = 0; w <= 2; w += 2) {
            mn_loader_options lo = {.batch_size = LB, .shuffle = true, .workers = w, .seed = 7};
            mn_loader *l;
            cr_assert_eq(mn_loader_open_cls(&l, d, &aug, &lo), 0, "%s", mn_last_error());
            cr_assert_eq(mn_loader_start(l, 1, 0), 0);
            int seen[11] = {0}, b = 0;
            const mn_cls_batch *bt;
            for (;; b++) {
                cr_assert_eq(mn_loader_next_cls(l, &bt), 0, "%s", mn_last_error());
                if (!bt) break;
                cr_assert(bt->h == LH && bt->w == LW);
                for (int j = 0; j < bt->n; j++) {
                    int idx = bt->index[j];
                    cr_assert(idx >= 0 && idx < 11);
                    seen[idx]++;
                    cr_assert_eq(bt->classes[j], want_class[idx], "%d workers, batch %d, sample %d (index %d)", w, b, j,
                                 idx);
                    memcpy((w ? got : ref) + idx * per_image, bt->images + j * per_image, sizeof(float) * per_image);
                }
            }
            cr_assert_eq(b, 4);
            for (int i = 0; i < 11; i++) cr_assert_eq(seen[i], 1, "sample %d seen %d times", i, seen[i]);
            const mn_seg_batch *sb;
            cr_assert_eq(mn_loader_next(l, &sb), MN_EINVAL, "a classification loader refuses mn_loader_next");
            mn_loader_close(l);
        }
        cr_assert(!memcmp(ref, got, sizeof(float) * 11 * per_image), "pixels differ between 0 and 2 workers");
        free(ref);
        free(got);
    }
    mn_dataset_close(d);
}

Test(imagefolder, other_kinds_have_no_class_for_a_classification_loader)
{
    folder_tree("0 background\n1 cat\n2 dog\n");
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1};
    mn_dataset *d = open_ok(&o);
    mn_sample s;
    get_ok(d, 1, &s);
    cr_assert_eq(s.class_id, -1);
    mn_sample_free(&s);
    mn_cls_aug aug;
    mn_cls_aug_default(&aug, LH, LW, false);
    mn_loader_options lo = {.batch_size = 2, .workers = 0, .seed = 1};
    mn_loader *l;
    cr_assert_eq(mn_loader_open_cls(&l, d, &aug, &lo), 0, "%s", mn_last_error());
    cr_assert_eq(mn_loader_start(l, 0, 0), 0);
    const mn_cls_batch *bt;
    cr_assert_eq(mn_loader_next_cls(l, &bt), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "has no class"), "%s", mn_last_error());
    cr_assert_null(bt);
    mn_loader_close(l);
    mn_dataset_close(d);
}

/* ======================================================================================== */
/* classification transforms                                                                */
/* ======================================================================================== */

/* A random RGB image of h x w (owned by the caller). */
static mn_sample random_sample(int h, int w, uint64_t seed)
{
    mn_sample s = {.image = {.w = w, .h = h, .c = 3, .data = malloc((size_t)h * w * 3)}, .class_id = 0};
    mn_rng r;
    mn_rng_seed(&r, seed);
    for (int i = 0; i < h * w * 3; i++) s.image.data[i] = (uint8_t)(mn_rng_u32(&r) & 255);
    snprintf(s.name, sizeof s.name, "random%dx%d", h, w);
    return s;
}

/* The reference: the box's pixels as floats, resized by mn_resize_bilinear (align_corners
 * False, itself checked against F.interpolate in test_resize), then normalised; (3, oh, ow). */
static void reference_resize(const mn_image *im, int y0, int x0, int bh, int bw, int oh, int ow, const mn_cls_aug *a,
                             float *out)
{
    mn_tape t;
    mn_tape_init(&t, 0);
    float *box = malloc(sizeof(float) * 3 * (size_t)bh * bw);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bw; x++)
                box[((size_t)c * bh + y) * bw + x] = im->data[((size_t)(y0 + y) * im->w + x0 + x) * 3 + c];
    mn_var *r = mn_resize_bilinear(&t, mn_var_wrap(&t, mn_tensor_4d(box, 1, 3, bh, bw)), oh, ow, false);
    cr_assert_not_null(r, "%s", mn_last_error());
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < oh * ow; i++) out[c * oh * ow + i] = (r->val.data[c * oh * ow + i] / 255.0f - a->mean[c]) / a->std[c];
    free(box);
    mn_tape_free(&t);
}

/* 1e-4 after normalising (0.006 of a grey level): float rounding, as the two interpolate in
 * different orders and normalise at different points */
static void expect_close(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++) cr_assert_float_eq(got[i], want[i], 1e-4f, "%s: element %d: %g, expected %g", what, i, got[i], want[i]);
}

Test(cls_transform, training_crop_is_the_box_resized_like_interpolate)
{
    mn_sample s = random_sample(37, 53, 11);
    mn_cls_aug a;
    mn_cls_aug_default(&a, 24, 20, true);
    a.hflip = false;
    float got[3 * 24 * 20], want[3 * 24 * 20];
    for (uint64_t seed = 0; seed < 20; seed++) {
        mn_rng r1, r2;
        mn_rng_seed(&r1, seed);
        r2 = r1;
        int box[4];
        cr_assert_eq(mn_cls_crop_box(&a, 37, 53, &r1, box), 0, "%s", mn_last_error());
        cr_assert_eq(mn_cls_transform(&a, &s, &r2, got), 0, "%s", mn_last_error());
        reference_resize(&s.image, box[0], box[1], box[2], box[3], 24, 20, &a, want);
        expect_close(got, want, 3 * 24 * 20, "random resized crop");
    }
    mn_sample_free(&s);
}

Test(cls_transform, flip_mirrors_the_unflipped_output)
{
    mn_sample s = random_sample(30, 40, 12);
    mn_cls_aug a;
    mn_cls_aug_default(&a, 16, 18, true);
    float plain[3 * 16 * 18], flipped[3 * 16 * 18];
    int flips = 0;
    for (uint64_t seed = 0; seed < 16; seed++) {
        mn_rng r1, r2;
        mn_rng_seed(&r1, seed);
        r2 = r1;
        a.hflip = true;
        cr_assert_eq(mn_cls_transform(&a, &s, &r1, flipped), 0);
        a.hflip = false;
        cr_assert_eq(mn_cls_transform(&a, &s, &r2, plain), 0);
        bool same = !memcmp(plain, flipped, sizeof plain), mirrored = true;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 18; x++)
                    mirrored &= flipped[(c * 16 + y) * 18 + x] == plain[(c * 16 + y) * 18 + 17 - x];
        cr_assert(same || mirrored, "seed %llu: neither the same crop nor its mirror image", (unsigned long long)seed);
        flips += !same;
    }
    cr_assert(flips > 2 && flips < 14, "%d of 16 flipped", flips);
    mn_sample_free(&s);
}

Test(cls_transform, boxes_follow_area_and_ratio_ranges)
{
    mn_cls_aug a;
    mn_cls_aug_default(&a, 32, 32, true);
    a.area_min = 0.25f;
    a.area_max = 0.5f;
    a.ratio_min = 0.5f;
    a.ratio_max = 2.0f;
    mn_rng r;
    mn_rng_seed(&r, 3);
    double smallest = 1, largest = 0;
    for (int i = 0; i < 2000; i++) {
        int box[4];
        cr_assert_eq(mn_cls_crop_box(&a, 200, 300, &r, box), 0);
        cr_assert(box[0] >= 0 && box[1] >= 0 && box[0] + box[2] <= 200 && box[1] + box[3] <= 300, "box %d %d %d %d", box[0],
                  box[1], box[2], box[3]);
        double area = (double)box[2] * box[3] / (200.0 * 300.0), ratio = (double)box[3] / box[2];
        /* sides are rounded to whole pixels: a little slack around the ranges */
        cr_assert(area > 0.24 && area < 0.51, "area fraction %g", area);
        cr_assert(ratio > 0.49 && ratio < 2.03, "ratio %g", ratio);
        smallest = area < smallest ? area : smallest;
        largest = area > largest ? area : largest;
    }
    cr_assert(smallest < 0.27 && largest > 0.48, "areas drawn over [%g, %g] only", smallest, largest);
}

Test(cls_transform, elongated_images_fall_back_to_the_central_box)
{
    mn_cls_aug a;
    mn_cls_aug_default(&a, 32, 32, true); /* ratio [3/4, 4/3]: a 4 x 100 strip fits no draw */
    mn_rng r;
    mn_rng_seed(&r, 1);
    int box[4];
    cr_assert_eq(mn_cls_crop_box(&a, 4, 100, &r, box), 0);
    /* the whole height, width round(4 x 4/3) = 5, centred: (100 - 5) / 2 = 47 */
    cr_assert(box[0] == 0 && box[1] == 47 && box[2] == 4 && box[3] == 5, "box %d %d %d %d", box[0], box[1], box[2], box[3]);
    cr_assert_eq(mn_cls_crop_box(&a, 100, 4, &r, box), 0);
    /* tall: the whole width, height round(4 / (3/4)) = 5 */
    cr_assert(box[0] == 47 && box[1] == 0 && box[2] == 5 && box[3] == 4, "box %d %d %d %d", box[0], box[1], box[2], box[3]);
}

Test(cls_transform, evaluation_resizes_then_takes_the_centre)
{
    /* 224 / 0.875 = 256: a 300 x 400 image goes to 256 x 341 (the long side truncated), the
     * centre 224 x 224 starts at row 16, column round(58.5) = 58 */
    mn_sample s = random_sample(300, 400, 13);
    mn_cls_aug a;
    mn_cls_aug_default(&a, 224, 224, false);
    size_t n = 3 * 224 * 224;
    float *got = malloc(sizeof(float) * n), *full = malloc(sizeof(float) * 3 * 256 * 341), *want = malloc(sizeof(float) * n);
    cr_assert_eq(mn_cls_transform(&a, &s, NULL, got), 0, "%s", mn_last_error());
    reference_resize(&s.image, 0, 0, 300, 400, 256, 341, &a, full);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 224; y++)
            for (int x = 0; x < 224; x++) want[((size_t)c * 224 + y) * 224 + x] = full[((size_t)c * 256 + y + 16) * 341 + x + 58];
    expect_close(got, want, (int)n, "resize + centre crop");
    /* crop fraction 1 on a square image: a plain resize */
    mn_sample q = random_sample(50, 50, 14);
    a.out_h = a.out_w = 32;
    a.crop_fraction = 1.0f;
    cr_assert_eq(mn_cls_transform(&a, &q, NULL, got), 0);
    reference_resize(&q.image, 0, 0, 50, 50, 32, 32, &a, want);
    expect_close(got, want, 3 * 32 * 32, "plain resize");
    free(got);
    free(full);
    free(want);
    mn_sample_free(&s);
    mn_sample_free(&q);
}

Test(cls_transform, bad_settings_are_refused)
{
    mn_sample s = random_sample(8, 8, 15);
    mn_cls_aug a;
    mn_cls_aug_default(&a, 8, 8, true);
    float out[3 * 8 * 8];
    mn_rng r;
    mn_rng_seed(&r, 1);
    a.area_min = 0.0f;
    cr_assert_eq(mn_cls_transform(&a, &s, &r, out), MN_EINVAL);
    mn_cls_aug_default(&a, 8, 8, false);
    a.crop_fraction = 0.0f;
    cr_assert_eq(mn_cls_transform(&a, &s, NULL, out), MN_EINVAL);
    mn_sample_free(&s);
    mn_sample g = {.image = {.w = 8, .h = 8, .c = 1, .data = calloc(64, 1)}};
    mn_cls_aug_default(&a, 8, 8, false);
    cr_assert_eq(mn_cls_transform(&a, &g, NULL, out), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "RGB"), "%s", mn_last_error());
    mn_sample_free(&g);
}

/* ======================================================================================== */
/* pixel limits across kinds                                                                */
/* ======================================================================================== */

TestSuite(limits, .init = make_dir, .fini = remove_dir);

/* mn_dataset_get of sample i fails with the image layer's limit message naming `file`. */
static void expect_get_over_limit(mn_dataset *d, int i, const char *file)
{
    mn_sample s;
    cr_assert_eq(mn_dataset_get(d, i, &s), MN_EFORMAT);
    cr_expect(strstr(mn_last_error(), file) && strstr(mn_last_error(), "above the limit"), "%s", mn_last_error());
}

Test(limits, max_pixels_reaches_every_loader)
{
    /* folder: 8x6 images (48 px) */
    folder_tree("0 background\n1 cat\n2 dog\n");
    mn_dataset_options o = {.kind = "folder", .root = dir, .split = "train", .void_index = -1, .max_pixels = 47};
    mn_dataset *d = open_ok(&o);
    expect_get_over_limit(d, 0, "images/train/a.png");
    mn_dataset_close(d);
    o.max_pixels = 48;
    d = open_ok(&o);
    mn_sample s;
    get_ok(d, 0, &s);
    mn_sample_free(&s);
    mn_dataset_close(d);
    /* the label goes through the same limit: a label larger than its image */
    save_random("labels/train/a.png", 8, 7, 1, 1, 2);
    d = open_ok(&o);
    expect_get_over_limit(d, 0, "labels/train/a.png");
    mn_dataset_close(d);

    /* voc: 10x4 images */
    voc_tree();
    char root[512];
    path_in(root, sizeof root, "voc");
    mn_dataset_options ov = {.kind = "voc", .root = root, .split = "train", .void_index = -1, .max_pixels = 39};
    d = open_ok(&ov);
    expect_get_over_limit(d, 0, "JPEGImages/x2.jpg");
    mn_dataset_close(d);

    /* cityscapes: 16x16 */
    city_image("bremen", "bremen_000000_000019", 7);
    path_in(root, sizeof root, "cs");
    mn_dataset_options oc = {.kind = "cityscapes", .root = root, .split = "train", .void_index = -1,
                             .max_pixels = 255};
    d = open_ok(&oc);
    expect_get_over_limit(d, 0, "bremen_000000_000019_leftImg8bit.png");
    mn_dataset_close(d);

    /* imagefolder */
    save_random("ifl/train/cat/a.png", 5, 5, 3, 1, 255);
    path_in(root, sizeof root, "ifl");
    mn_dataset_options oi = {.kind = "imagefolder", .root = root, .split = "train", .max_pixels = 24};
    d = open_ok(&oi);
    expect_get_over_limit(d, 0, "cat/a.png");
    mn_dataset_close(d);

    /* coco: the image file itself larger than its JSON says and than the limit */
    save_random("coco/images/train/a.jpg", 40, 24, 3, 1, 255);
    write_text("coco/annotations/instances_train.json", ONE_IMAGE(""));
    path_in(root, sizeof root, "coco");
    mn_dataset_options oo = {.kind = "coco", .root = root, .split = "train", .void_index = -1, .max_pixels = 800};
    d = open_ok(&oo);
    expect_get_over_limit(d, 0, "images/train/a.jpg");
    mn_dataset_close(d);
}
