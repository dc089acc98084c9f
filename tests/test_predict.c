/* mutualnet predict on hostile inputs: two images of one file stem are refused before any work,
 * an unreadable, truncated or oversized image among several is named, gives exit 1 and leaves the
 * other images' outputs (and older outputs of its own stem) alone, and --max-pixels sets the limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common.h"

#include "mn/image.h"
#include "mn/seg_model.h"
/* the command is compiled into this test so it runs in-process */
#include "tools/args.c"
#include "tools/cmd_predict.c"
#include "tools/select.c"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_predict_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(predict, .init = make_dir, .fini = remove_dir);

static void sub(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* Runs `mutualnet predict args...` in-process; returns the exit status, stderr in *err (malloc'd). */
static int run_predict(char **err, int argc, char **argv)
{
    char epath[128];
    sub(epath, sizeof epath, "stderr.txt");
    return tc_run_cmd(mn_cmd_predict, epath, err, argc, argv);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void write_image(const char *name, int w, int h, uint8_t seed)
{
    mn_image img;
    cr_assert_eq(mn_image_alloc(&img, w, h, 3), 0);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img.data[i] = (uint8_t)(i * 31 + seed);
    char p[256];
    sub(p, sizeof p, name);
    cr_assert_eq(mn_image_save(p, &img, 90), 0, "%s", mn_last_error());
    mn_image_free(&img);
}

Test(predict, same_stem_is_refused_before_any_work)
{
    char a[256], b[256], out[256], ckpt[256];
    sub(a, sizeof a, "a");
    sub(b, sizeof b, "b");
    cr_assert_eq(mkdir(a, 0755), 0);
    cr_assert_eq(mkdir(b, 0755), 0);
    write_image("a/x.jpg", 8, 8, 1);
    write_image("b/x.png", 8, 8, 2);
    write_image("a/y.png", 8, 8, 3);
    sub(a, sizeof a, "a/x.jpg");
    sub(b, sizeof b, "b/x.png");
    char y[256];
    sub(y, sizeof y, "a/y.png");
    sub(out, sizeof out, "out");
    /* no such checkpoint: the refusal must come before it is opened, and before --out is created */
    sub(ckpt, sizeof ckpt, "none.safetensors");
    char *argv[] = {"predict", "--checkpoint", ckpt, "--out", out, a, y, b};
    char *err;
    int status = run_predict(&err, 8, argv);
    cr_assert_eq(status, MN_EXIT_USAGE, "status %d: %s", status, err);
    char want[1024];
    snprintf(want, sizeof want,
             "mutualnet predict: %s and %s would both write %s/x_* (outputs are named by the file stem); rename one, or "
             "run predict twice into different --out folders\n",
             a, b, out);
    cr_assert_str_eq(err, want);
    cr_assert(!exists(out), "the output folder was created");
    free(err);
    /* the same file twice */
    char *argv2[] = {"predict", "--checkpoint", ckpt, "--out", out, y, a, y};
    status = run_predict(&err, 8, argv2);
    cr_assert_eq(status, MN_EXIT_USAGE);
    cr_assert(strstr(err, "is given twice; give each image once"), "%s", err);
    free(err);
}

static void save_tiny_segmenter(const char *path)
{
    mn_config c;
    mn_config_default(&c);
    c.model.aspp_channels = 16;
    c.model.low_level_channels = 8;
    const char *names[2] = {"background", "thing"};
    mn_seg_model m;
    cr_assert_eq(mn_seg_model_create(&m, &c, 2, names, 1), 0, "%s", mn_last_error());
    cr_assert_eq(mn_seg_model_save(&m, path, NULL, 0), 0, "%s", mn_last_error());
    mn_seg_model_free(&m);
}

/* A valid PNG whose header claims 12000x12000 (stored deflate of 64 zero bytes). */
static void write_huge_png(const char *path)
{
    mn_image img;
    cr_assert_eq(mn_image_alloc(&img, 4, 4, 3), 0);
    cr_assert_eq(mn_image_save(path, &img, 0), 0);
    mn_image_free(&img);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    uint8_t ihdr[17];
    cr_assert_eq(fseek(f, 12, SEEK_SET), 0);
    cr_assert_eq(fread(ihdr, 1, 17, f), 17);
    for (int k = 0; k < 2; k++) {
        ihdr[4 + 4 * k] = 0;
        ihdr[5 + 4 * k] = 0;
        ihdr[6 + 4 * k] = 12000 >> 8;
        ihdr[7 + 4 * k] = 12000 & 255;
    }
    uint32_t crc = 0xffffffffu;
    for (int i = 0; i < 17; i++) {
        crc ^= ihdr[i];
        for (int b = 0; b < 8; b++) crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
    }
    crc = ~crc;
    uint8_t c4[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8), (uint8_t)crc};
    cr_assert_eq(fseek(f, 12, SEEK_SET), 0);
    cr_assert_eq(fwrite(ihdr, 1, 17, f), 17);
    cr_assert_eq(fwrite(c4, 1, 4, f), 4);
    fclose(f);
}

Test(predict, bad_images_among_several_are_named_and_the_others_kept)
{
    char ckpt[256], out[256];
    sub(ckpt, sizeof ckpt, "seg.safetensors");
    save_tiny_segmenter(ckpt);
    sub(out, sizeof out, "out");
    cr_assert_eq(mkdir(out, 0755), 0);
    write_image("good1.png", 40, 32, 1);
    write_image("good2.jpg", 36, 30, 2);
    char good1[256], good2[256], huge[256], cut[256], missing[256];
    sub(good1, sizeof good1, "good1.png");
    sub(good2, sizeof good2, "good2.jpg");
    sub(huge, sizeof huge, "huge.png");
    write_huge_png(huge);
    /* a JPEG cut in half */
    write_image("cut.jpg", 64, 64, 3);
    sub(cut, sizeof cut, "cut.jpg");
    struct stat sb;
    cr_assert_eq(stat(cut, &sb), 0);
    cr_assert_eq(truncate(cut, sb.st_size / 2), 0);
    sub(missing, sizeof missing, "missing.png");
    /* an older output of the failing image's stem survives the failed run */
    char old[300];
    snprintf(old, sizeof old, "%s/huge_labels.png", out);
    FILE *f = fopen(old, "w");
    fputs("older output", f);
    fclose(f);

    char *argv[] = {"predict", "--checkpoint", ckpt, "--out", out, "--width", "1.0", "--size", "32x32",
                    good1, huge, cut, missing, good2};
    char *err;
    int status = run_predict(&err, 14, argv);
    cr_assert_eq(status, MN_EXIT_FAIL, "status %d: %s", status, err);
    char want[1024];
    snprintf(want, sizeof want,
             "mutualnet predict: %s: image is 12000x12000 (144.0 Mpx), above the limit of 64.0 Mpx (data.max_pixels / "
             "--max-pixels raises it)\n",
             huge);
    cr_assert(strstr(err, want), "stderr lacks the limit line:\n%s", err);
    snprintf(want, sizeof want, "mutualnet predict: %s: truncated JPEG", cut);
    cr_assert(strstr(err, want), "stderr lacks the truncation line:\n%s", err);
    snprintf(want, sizeof want, "mutualnet predict: %s: cannot open", missing);
    cr_assert(strstr(err, want), "stderr lacks the missing-file line:\n%s", err);
    cr_assert(strstr(err, "mutualnet predict: 3 of 5 images failed (named above); the outputs of the others are written"),
              "%s", err);
    const char *kept[] = {"good1_labels.png", "good1_overlay.png", "good2_labels.png", "good2_overlay.png"};
    for (int i = 0; i < 4; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s", out, kept[i]);
        mn_image img;
        cr_assert_eq(mn_image_load(p, 0, &img), 0, "%s", mn_last_error());
        if (i % 2 == 0) cr_assert_eq(img.w, i < 2 ? 40 : 36, "%s has the image's own size", kept[i]);
        mn_image_free(&img);
    }
    for (int i = 0; i < 2; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s_overlay.png", out, i ? "cut" : "missing");
        cr_assert(!exists(p), "%s was written for a failed image", p);
    }
    f = fopen(old, "r");
    char text[32] = {0};
    cr_assert(f && fgets(text, sizeof text, f));
    fclose(f);
    cr_assert_str_eq(text, "older output");
    free(err);
}

Test(predict, max_pixels_sets_the_limit)
{
    char ckpt[256], out[256], img[256];
    sub(ckpt, sizeof ckpt, "seg.safetensors");
    save_tiny_segmenter(ckpt);
    sub(out, sizeof out, "out");
    write_image("small.png", 40, 30, 4);
    sub(img, sizeof img, "small.png");
    char *argv[] = {"predict", "--checkpoint", ckpt, "--out", out, "--width", "1.0", "--size", "32x32",
                    "--max-pixels", "1k", img};
    char *err;
    int status = run_predict(&err, 12, argv);
    cr_assert_eq(status, MN_EXIT_FAIL, "%s", err);
    char want[512];
    snprintf(want, sizeof want,
             "mutualnet predict: %s: image is 40x30 (1200 px), above the limit of 1000 px (data.max_pixels / "
             "--max-pixels raises it)\n",
             img);
    cr_assert(strstr(err, want), "%s", err);
    free(err);
    argv[10] = "1200";
    status = run_predict(&err, 12, argv);
    cr_assert_eq(status, MN_EXIT_OK, "%s", err);
    char p[300];
    snprintf(p, sizeof p, "%s/small_labels.png", out);
    cr_assert(exists(p));
    free(err);
    argv[10] = "lots";
    status = run_predict(&err, 12, argv);
    cr_assert_eq(status, MN_EXIT_USAGE);
    cr_assert(strstr(err, "--max-pixels expects a positive count"), "%s", err);
    free(err);
    argv[10] = "0.5";
    status = run_predict(&err, 12, argv);
    cr_assert_eq(status, MN_EXIT_USAGE);
    cr_assert(strstr(err, "--max-pixels 0.5 is outside 1..9e15"), "%s", err);
    free(err);
}
