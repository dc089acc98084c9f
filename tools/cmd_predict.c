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
#include "mn/model.h"
#include "mn/cls_eval.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/fileio.h"
#include "mn/seg_eval.h"
#include "render.h"
#include "select.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet predict --checkpoint FILE --out DIR [--budget MACS | --budget-ms T | --width W\n"
               "                         --size S|HxW] [--alpha A] [--score-threshold T] [--format png|jpg]\n"
               "                         [--max-pixels N] IMAGE...\n\n"
               "Runs the model on each IMAGE. A segmenter writes DIR/<name>_labels.png (class index per pixel, at\n"
               "the image's own size) and DIR/<name>_overlay.<format> (the image blended with the class colours, a\n"
               "legend of the classes present). A detector writes DIR/<name>_boxes.json (every detection scoring at\n"
               "least T, default 0.5: class name, category id, score and COCO bbox [x, y, w, h] in the image's\n"
               "pixels) and DIR/<name>_overlay.<format> (those boxes with class names and scores). Overlays carry a\n"
               "title with the configuration and its cost. --budget (e.g. 0.5G) picks the most accurate calibrated\n"
               "configuration that fits; --budget-ms T (e.g. 20) the most accurate whose milliseconds per image,\n"
               "as calibrate --latency measured them, fit; --width/--size pick one directly (default: full width\n"
               "at data.eval_size, or at det.short_side for a detector, whose --size is one short side S).\n"
               "--alpha: segmentation overlay opacity (0.55). A classifier writes DIR/<name>_classes.json: its five\n"
               "most probable classes with their probabilities, most probable first.\n\n"
               "Outputs are named by the image's file stem, so two images with the same stem (a/x.jpg, b/x.png) are\n"
               "refused before any work. An image that cannot be read (missing, truncated, corrupt, or larger than\n"
               "--max-pixels, default 64M = 64 million pixels, checked from its header) is reported by name; the\n"
               "others are still predicted and the exit status is 1.\n");
}

static void stem_of(const char *path, char *out, size_t n)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    const char *b = basename(tmp);
    const char *dot = strrchr(b, '.');
    snprintf(out, n, "%.*s", (int)(dot && dot != b ? dot - b : (long)strlen(b)), b);
}

typedef struct stem_entry {
    char stem[512];
    int index;        /* in the command line's image list */
} stem_entry;

static int cmp_stem(const void *a, const void *b)
{
    const stem_entry *x = a, *y = b;
    int c = strcmp(x->stem, y->stem);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Outputs are DIR/<stem>_*: two images of one stem would overwrite each other's, so they are
 * refused before anything is loaded or written. Sorting keeps this n log n for long globs. */
static int check_stems(const char *const *images, int n, const char *out)
{
    stem_entry *e = malloc(sizeof *e * (size_t)n);
    if (!e) {
        fprintf(stderr, "mutualnet predict: out of memory\n");
        return MN_EXIT_FAIL;
    }
    for (int i = 0; i < n; i++) {
        stem_of(images[i], e[i].stem, sizeof e[i].stem);
        e[i].index = i;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_stem);
    int status = MN_EXIT_OK;
    for (int i = 1; i < n && status == MN_EXIT_OK; i++) {
        if (strcmp(e[i - 1].stem, e[i].stem)) continue;
        const char *a = images[e[i - 1].index], *b = images[e[i].index];
        if (!strcmp(a, b))
            fprintf(stderr, "mutualnet predict: %s is given twice; give each image once\n", a);
        else
            fprintf(stderr,
                    "mutualnet predict: %s and %s would both write %s/%s_* (outputs are named by the file stem); "
                    "rename one, or run predict twice into different --out folders\n",
                    a, b, out, e[i].stem);
        status = MN_EXIT_USAGE;
    }
    free(e);
    return status;
}

/* The closing line when some images failed: the others' outputs were written. */
static int report_failures(int failures, int n_images)
{
    if (!failures) return MN_EXIT_OK;
    fprintf(stderr, "mutualnet predict: %d of %d image%s failed (named above); the outputs of the others are written\n",
            failures, n_images, n_images == 1 ? "" : "s");
    return MN_EXIT_FAIL;
}

/* Writes the detections scoring at least thr as JSON, atomically. */
static int write_boxes(const char *path, const char *image, const mn_image *img, const mn_det_model *m,
                       const mn_detection *d, int n, float thr)
{
    mn_atomic_file out;
    int rc = mn_atomic_open(&out, path);
    if (rc) return rc;
    FILE *f = out.f;
    fprintf(f, "{\"image\": \"");
    for (const char *p = image; *p; p++) { /* a JSON string: escape quotes, backslashes, controls */
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if ((unsigned char)*p < 0x20) fprintf(f, "\\u%04x", (unsigned char)*p);
        else fputc(*p, f);
    }
    fprintf(f, "\", \"width\": %d, \"height\": %d, \"score_threshold\": %.4g, \"detections\": [", img->w, img->h,
            (double)thr);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!(d[i].score >= thr)) continue;
        const char *name = d[i].label < m->num_classes ? m->class_names[d[i].label] : "?";
        fprintf(f, "%s\n  {\"label\": \"", k++ ? "," : "");
        for (const char *p = name; *p; p++) {
            if (*p == '"' || *p == '\\') fputc('\\', f);
            fputc(*p, f);
        }
        fprintf(f, "\", \"label_index\": %d, \"category_id\": %d, \"score\": %.4f, \"bbox\": [%.2f, %.2f, %.2f, %.2f]}",
                d[i].label, d[i].label < m->num_classes ? m->category_ids[d[i].label] : -1, (double)d[i].score,
                (double)d[i].x1, (double)d[i].y1, (double)(d[i].x2 - d[i].x1), (double)(d[i].y2 - d[i].y1));
    }
    fprintf(f, "%s]}\n", k ? "\n" : "");
    return mn_atomic_commit(&out, true);
}

static int predict_det(const char *ckpt, const mn_choice *ch, const char *out, const char *format, double thr,
                       int64_t max_pixels, const char *const *images, int n_images)
{
    mn_det_model m;
    if (mn_det_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int side;
    int64_t macs;
    int pick = mn_choice_apply_det("predict", ch, &m, &width, &side, &macs);
    if (pick) {
        mn_det_model_free(&m);
        return pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
    }
    const mn_render_config cfg = {.width = width, .h = side, .macs = macs};
    mn_tape t;
    mn_tape_init(&t, 0);
    int failures = 0;
    for (int i = 0; i < n_images; i++) {
        mn_image img = {0}, ov = {0};
        mn_detection *d = NULL;
        int n = 0;
        char stem[512], path[1600];
        stem_of(images[i], stem, sizeof stem);
        int rc = mn_image_load_max(images[i], 3, max_pixels, &img);
        if (!rc) rc = mn_render_det(&m, &t, &img, &cfg, (float)thr, &d, &n, &ov);
        if (!rc) {
            snprintf(path, sizeof path, "%s/%s_boxes.json", out, stem);
            rc = write_boxes(path, images[i], &img, &m, d, n, (float)thr);
        }
        if (!rc) {
            snprintf(path, sizeof path, "%s/%s_overlay.%s", out, stem, format);
            rc = mn_image_save(path, &ov, 92);
        }
        int shown = 0;
        for (int j = 0; j < n; j++) shown += d[j].score >= (float)thr;
        if (rc) {
            fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
            failures++;
        } else {
            fprintf(stderr, "mutualnet predict: %s -> %s (%d detections at score >= %.2f)\n", images[i], path, shown, thr);
        }
        free(d);
        mn_image_free(&img);
        mn_image_free(&ov);
    }
    mn_tape_free(&t);
    mn_det_model_free(&m);
    return report_failures(failures, n_images);
}

static int predict_cls(const char *ckpt, const mn_choice *ch, const char *out, int64_t max_pixels, const char **images,
                       int n_images)
{
    mn_cls_model m;
    if (mn_cls_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int h, w;
    int64_t macs;
    int pick = mn_choice_apply_cls("predict", ch, &m, &width, &h, &w, &macs);
    float *probs = malloc(sizeof(float) * (size_t)m.num_classes);
    int top[5];
    int failures = 0;
    mn_tape t;
    mn_tape_init(&t, 0);
    for (int i = 0; !pick && probs && i < n_images; i++) {
        mn_image img = {0};
        char stem[512], path[1600];
        stem_of(images[i], stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%s_classes.json", out, stem);
        int rc = mn_image_load_max(images[i], 3, max_pixels, &img);
        if (!rc) rc = mn_cls_predict(&m, &t, &img, width, h, w, probs);
        mn_atomic_file json;
        if (!rc) rc = mn_atomic_open(&json, path);
        if (!rc) {
            FILE *f = json.f;
            int n_top = m.num_classes < 5 ? m.num_classes : 5;
            mn_cls_topk(probs, m.num_classes, n_top, top);
            fprintf(f, "[");
            for (int r = 0; r < n_top; r++) {
                int k = top[r];
                fprintf(f, "%s{\"class\": \"%s\", \"index\": %d, \"probability\": %.6f}", r ? ", " : "", m.class_names[k], k,
                        (double)probs[k]);
                if (r == 0) fprintf(stderr, "mutualnet predict: %s: %s (%.1f%%)\n", images[i], m.class_names[k], 100.0 * probs[k]);
            }
            fprintf(f, "]\n");
            rc = mn_atomic_commit(&json, true);
        }
        if (rc) {
            fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
            failures++;
        }
        mn_image_free(&img);
    }
    if (!probs) failures = fprintf(stderr, "mutualnet predict: out of memory\n");
    mn_tape_free(&t);
    free(probs);
    mn_cls_model_free(&m);
    if (pick) return pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
    return report_failures(failures, n_images);
}

int mn_cmd_predict(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL, *format = "png";
    double alpha = 0.55, thr = 0.5, max_px = 0;
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
        } else if (!strcmp(a, "--score-threshold")) {
            if (!(v = mn_arg_value("predict", argc, argv, &i)) || !mn_arg_float("predict", a, v, 0, 1, &thr)) goto done;
        } else if (!strcmp(a, "--max-pixels")) {
            if (!(v = mn_arg_value("predict", argc, argv, &i)) || !mn_arg_count("predict", a, v, &max_px)) goto done;
            if (max_px < 1 || max_px > 9e15) {
                fprintf(stderr, "mutualnet predict: --max-pixels %s is outside 1..9e15\n", v);
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
    if ((status = check_stems(images, n_images, out)) != MN_EXIT_OK) goto done;
    status = MN_EXIT_USAGE;
    int64_t max_pixels = (int64_t)max_px;
    if (mn_mkdirs(out)) {
        fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
        status = MN_EXIT_FAIL;
        goto done;
    }
    status = MN_EXIT_FAIL;
    enum mn_task_kind task;
    if (mn_model_task(ckpt, &task)) {
        fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
        goto done;
    }
    if (task == MN_TASK_DETECTION) {
        status = predict_det(ckpt, &ch, out, format, thr, max_pixels, images, n_images);
        goto done;
    }
    if (task == MN_TASK_CLASSIFICATION) {
        status = predict_cls(ckpt, &ch, out, max_pixels, images, n_images);
        goto done;
    }
    mn_seg_model m;
    if (mn_seg_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet predict: %s\n", mn_last_error());
        goto done;
    }
    float width;
    int h, w;
    int64_t macs;
    int pick = mn_choice_apply("predict", &ch, &m, &width, &h, &w, &macs);
    if (pick) {
        if (pick == -2) status = MN_EXIT_USAGE;
        mn_seg_model_free(&m);
        goto done;
    }
    const mn_render_config cfg = {.width = width, .h = h, .w = w, .macs = macs};
    mn_tape t;
    mn_tape_init(&t, 0);
    int failures = 0;
    for (int i = 0; i < n_images; i++) {
        mn_image img = {0}, lab = {0}, ov = {0};
        char stem[512], path[1600];
        stem_of(images[i], stem, sizeof stem);
        int rc = mn_image_load_max(images[i], 3, max_pixels, &img);
        if (!rc) rc = mn_render_seg(&m, &t, &img, &cfg, (float)alpha, &lab, &ov);
        if (!rc) {
            snprintf(path, sizeof path, "%s/%s_labels.png", out, stem);
            rc = mn_image_save(path, &lab, 0);
        }
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
    status = report_failures(failures, n_images);
done:
    free(images);
    return status;
}
