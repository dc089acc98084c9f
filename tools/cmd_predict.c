/* mutualnet predict: a checkpoint's predictions on image files, as index PNGs and overlays,
 * at a budget or at one configuration. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "mn/seg_eval.h"
#include "mn/viz.h"
#include "select.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet predict --checkpoint FILE --out DIR [--budget MACS | --width W --size HxW]\n"
               "                         [--alpha A] [--format png|jpg] IMAGE...\n\n"
               "Runs the model on each IMAGE and writes DIR/<name>_labels.png (class index per pixel, at the\n"
               "image's own size) and DIR/<name>_overlay.<format> (the image blended with the class colours,\n"
               "a legend of the classes present and a title with the configuration and its cost). --budget\n"
               "(e.g. 0.5G) picks the most accurate calibrated configuration that fits; --width/--size pick\n"
               "one directly (default: full width at data.eval_size). --alpha: overlay opacity (0.55).\n");
}

static void stem_of(const char *path, char *out, size_t n)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *b = basename(tmp);
    const char *dot = strrchr(b, '.');
    snprintf(out, n, "%.*s", (int)(dot && dot != b ? dot - b : (long)strlen(b)), b);
}

int mn_cmd_predict(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *format = "png";
    double alpha = 0.55;
    mn_choice ch = {0};
    const char **images = malloc(sizeof(char *) * (size_t)argc);
    int n_images = 0, status = MN_EXIT_USAGE;
    if (!images) return MN_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int took = mn_choice_arg("predict", &ch, argc, argv, &i);
        if (took < 0) goto done;
        if (took) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            status = MN_EXIT_OK;
            goto done;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("predict", argc, argv, &i))) goto done;
        } else if (!strcmp(a, "--out")) {
            if (!(out = mn_arg_value("predict", argc, argv, &i))) goto done;
        } else if (!strcmp(a, "--format")) {
            if (!(format = mn_arg_value("predict", argc, argv, &i))) goto done;
            if (strcmp(format, "png") && strcmp(format, "jpg")) {
                fprintf(stderr, "mutualnet predict: --format is png or jpg, not \"%s\"\n", format);
                goto done;
            }
        } else if (!strcmp(a, "--alpha")) {
            if (!(v = mn_arg_value("predict", argc, argv, &i)) || !mn_arg_float("predict", a, v, 0, 1, &alpha)) goto done;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mutualnet predict: unknown option %s (see mutualnet predict --help)\n", a);
            goto done;
        } else {
            images[n_images++] = a;
        }
    }
    if (!ckpt || !out || n_images == 0) {
        fprintf(stderr, "mutualnet predict: --checkpoint FILE, --out DIR and at least one IMAGE are required\n");
        goto done;
    }
    if (mkdir(out, 0777) && errno != EEXIST) {
        fprintf(stderr, "mutualnet predict: %s: cannot create the output folder: %s\n", out, strerror(errno));
        status = MN_EXIT_FAIL;
        goto done;
    }
    status = MN_EXIT_FAIL;
    mn_seg_model m;
    if (mn_seg_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
        goto done;
    }
    float width;
    int h, w;
    int64_t macs;
    if (mn_choice_apply("predict", &ch, &m, &width, &h, &w, &macs)) {
        mn_seg_model_free(&m);
        goto done;
    }
    const char *names[256];
    for (int k = 0; k < m.num_classes; k++) names[k] = m.class_names[k];
    char title[160];
    snprintf(title, sizeof title, "width %.2f  %dx%d  %.3f GMACs", (double)width, h, w, (double)macs / 1e9);
    mn_tape t;
    mn_tape_init(&t, 0);
    int failures = 0;
    for (int i = 0; i < n_images; i++) {
        mn_image img = {0}, lab = {0}, ov = {0};
        char stem[512], path[1600];
        stem_of(images[i], stem, sizeof stem);
        int rc = mn_image_load(images[i], 3, &img);
        if (!rc) rc = mn_image_alloc(&lab, img.w, img.h, 1);
        if (!rc) rc = mn_seg_predict(&m, &t, &img, width, h, w, lab.data);
        if (!rc) {
            snprintf(path, sizeof path, "%s/%s_labels.png", out, stem);
            rc = mn_image_save(path, &lab, 0);
        }
        if (!rc) rc = mn_viz_seg_overlay_titled(&img, lab.data, m.num_classes, names, (float)alpha, title, &ov);
        if (!rc) {
            snprintf(path, sizeof path, "%s/%s_overlay.%s", out, stem, format);
            rc = mn_image_save(path, &ov, 92);
        }
        if (rc) {
            fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
            failures++;
        } else {
            fprintf(stderr, "mutualnet predict: %s -> %s\n", images[i], path);
        }
        mn_image_free(&img);
        mn_image_free(&lab);
        mn_image_free(&ov);
    }
    mn_tape_free(&t);
    mn_seg_model_free(&m);
    status = failures ? MN_EXIT_FAIL : MN_EXIT_OK;
done:
    free(images);
    return status;
}
