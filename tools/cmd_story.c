/* mutualnet story: the MutualNet story in one picture. The same images (rows) predicted by one
 * checkpoint at several budgets (columns), each cell exactly the overlay predict writes. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "commands.h"
#include "mn/fileio.h"
#include "mn/model.h"
#include "mn/viz.h"
#include "render.h"
#include "select.h"

enum { MAX_BUDGETS = 6, MAX_IMAGES = 8 };

typedef struct story_args {
    const char *ckpt, *out;
    double budgets[MAX_BUDGETS];   /* MACs, or ms where in_ms, in the order given */
    bool in_ms[MAX_BUDGETS];       /* given with --budget-ms */
    int n_budgets;                 /* may pass MAX_BUDGETS while parsing: refused afterwards */
    const char **images;           /* (argc) */
    int n_images;
    double alpha, thr, max_px;
    bool help;
} story_args;

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet story --checkpoint FILE --budget MACS|--budget-ms T [...]... --out FILE.png|.jpg\n"
               "                       [--alpha A] [--score-threshold T] [--max-pixels N] IMAGE...\n\n"
               "One picture of a checkpoint at several budgets: a row per IMAGE (1 to 8), a column per --budget\n"
               "(1 to 6, in the order given, e.g. 0.3G). Each column's configuration is the one `predict --budget`\n"
               "picks (the most accurate calibrated configuration that fits; --budget-ms T: within T milliseconds\n"
               "as calibrate --latency measured them), and each cell is exactly the overlay\n"
               "predict writes for that image there, titled with the width, input size and GMACs. A caption across\n"
               "the top names the run and the checkpoint; the folder of --out is made when missing. Works for\n"
               "segmenters and detectors (--alpha: segmentation overlay opacity, 0.55; --score-threshold: the least\n"
               "score of a box drawn, 0.5); a classifier is refused (exit status 2). A budget no configuration fits,\n"
               "or an image that cannot be read (or is larger than --max-pixels, default 64M), is an error: exit\n"
               "status 1 and no picture.\n");
}

/* Whether path ends in an extension mn_image_save writes. */
static bool image_extension(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* The options followed by a value, besides --checkpoint and --out. */
static bool takes_value(const char *o)
{
    return !strcmp(o, "--budget") || !strcmp(o, "--budget-ms") || !strcmp(o, "--alpha") || !strcmp(o, "--score-threshold") ||
           !strcmp(o, "--max-pixels");
}

/* One option at argv[*i]; returns false after printing why it is not usable. */
static bool parse_option(story_args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i], *v;
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) return a->help = true;
    if (!strcmp(o, "--checkpoint")) return (a->ckpt = mn_arg_value("story", argc, argv, i)) != NULL;
    if (!strcmp(o, "--out")) return (a->out = mn_arg_value("story", argc, argv, i)) != NULL;
    if (!takes_value(o)) {
        fprintf(stderr, "mutualnet story: unknown option %s (see mutualnet story --help)\n", o);
        return false;
    }
    if (!(v = mn_arg_value("story", argc, argv, i))) return false;
    if (!strcmp(o, "--budget") || !strcmp(o, "--budget-ms")) {
        double b;
        bool ms = !strcmp(o, "--budget-ms");
        if (ms ? !mn_arg_float("story", o, v, 1e-3, 1e7, &b) : !mn_arg_count("story", o, v, &b)) return false;
        if (a->n_budgets < MAX_BUDGETS) {
            a->budgets[a->n_budgets] = b;
            a->in_ms[a->n_budgets] = ms;
        }
        a->n_budgets++;
        return true;
    }
    if (!strcmp(o, "--alpha")) return mn_arg_float("story", o, v, 0, 1, &a->alpha);
    if (!strcmp(o, "--score-threshold")) return mn_arg_float("story", o, v, 0, 1, &a->thr);
    if (!mn_arg_count("story", o, v, &a->max_px)) return false;
    if (a->max_px >= 1 && a->max_px <= 9e15) return true;
    fprintf(stderr, "mutualnet story: --max-pixels %s is outside 1..9e15\n", v);
    return false;
}

/* The counts and the output name, once every argument is read. */
static bool check_args(const story_args *a)
{
    if (!a->ckpt || !a->out || a->n_budgets == 0 || a->n_images == 0) {
        fprintf(stderr, "mutualnet story: --checkpoint FILE, --out FILE, at least one --budget (or --budget-ms) and at "
                        "least one IMAGE are required (see mutualnet story --help)\n");
        return false;
    }
    if (a->n_budgets > MAX_BUDGETS || a->n_images > MAX_IMAGES) {
        fprintf(stderr, "mutualnet story: %d budget%s and %d image%s given; the picture takes 1 to %d budgets "
                        "(columns) and 1 to %d images (rows)\n",
                a->n_budgets, a->n_budgets == 1 ? "" : "s", a->n_images, a->n_images == 1 ? "" : "s", MAX_BUDGETS,
                MAX_IMAGES);
        return false;
    }
    if (!image_extension(a->out)) {
        fprintf(stderr, "mutualnet story: --out %s: the picture is written as .png or .jpg\n", a->out);
        return false;
    }
    return true;
}

/* Reads the command line into a; returns false after printing a usage error. */
static bool parse_args(story_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            if (!parse_option(a, argc, argv, &i)) return false;
            if (a->help) return true;
        } else {
            a->images[a->n_images++] = argv[i];
        }
    }
    return check_args(a);
}

/* Every image, or false after naming each that cannot be read. */
static bool load_images(const story_args *a, mn_image *imgs /* (n_images) */)
{
    bool ok = true;
    for (int r = 0; r < a->n_images; r++) {
        if (!mn_image_load_max(a->images[r], 3, (int64_t)a->max_px, &imgs[r])) continue;
        fprintf(stderr, "mutualnet story: %s\n", mn_last_error());
        ok = false;
    }
    return ok;
}

/* "one set of weights at 3 budgets: seg_shapes / cal.safetensors" (the run folder's name, when the
 * checkpoint's configuration has one, then the checkpoint's file name). */
static void caption_of(const story_args *a, const mn_config *cfg, char *out, size_t size)
{
    char run[512], file[1024];
    snprintf(run, sizeof run, "%s", cfg->train.out_dir);
    snprintf(file, sizeof file, "%s", a->ckpt);
    size_t n = strlen(run);
    while (n > 1 && run[n - 1] == '/') run[--n] = 0;
    snprintf(out, size, "one set of weights at %d budget%s: %s%s%s", a->n_budgets, a->n_budgets == 1 ? "" : "s",
             n ? basename(run) : "", n ? " / " : "", basename(file));
}

/* The choice of column c: its budget in MACs or in ms. */
static mn_choice column_choice(const story_args *a, int c)
{
    return a->in_ms[c] ? (mn_choice){.budget_ms = a->budgets[c]} : (mn_choice){.budget = a->budgets[c]};
}

/* Column c of a segmenter's story: the configuration of budget c, each image's overlay there. */
static int seg_column(mn_seg_model *m, mn_tape *t, const story_args *a, const mn_image *imgs /* (n_images) */, int c,
                      mn_image *cells /* (n_images, n_budgets) */)
{
    mn_choice ch = column_choice(a, c);
    mn_render_config cfg = {0};
    if (mn_choice_apply("story", &ch, m, &cfg.width, &cfg.h, &cfg.w, &cfg.macs)) return MN_EXIT_FAIL;
    for (int r = 0; r < a->n_images; r++) {
        mn_image labels;
        if (mn_render_seg(m, t, &imgs[r], &cfg, (float)a->alpha, &labels, &cells[r * a->n_budgets + c])) {
            fprintf(stderr, "mutualnet story: %s: %s\n", a->images[r], mn_last_error());
            return MN_EXIT_FAIL;
        }
        mn_image_free(&labels);
    }
    return MN_EXIT_OK;
}

/* Column c of a detector's story, as seg_column. */
static int det_column(mn_det_model *m, mn_tape *t, const story_args *a, const mn_image *imgs /* (n_images) */, int c,
                      mn_image *cells /* (n_images, n_budgets) */)
{
    mn_choice ch = column_choice(a, c);
    mn_render_config cfg = {0};
    int pick = mn_choice_apply_det("story", &ch, m, &cfg.width, &cfg.h, &cfg.macs);
    if (pick) return pick == -2 ? MN_EXIT_USAGE : MN_EXIT_FAIL;
    for (int r = 0; r < a->n_images; r++) {
        mn_detection *d;
        int n;
        if (mn_render_det(m, t, &imgs[r], &cfg, (float)a->thr, &d, &n, &cells[r * a->n_budgets + c])) {
            fprintf(stderr, "mutualnet story: %s: %s\n", a->images[r], mn_last_error());
            return MN_EXIT_FAIL;
        }
        free(d);
    }
    return MN_EXIT_OK;
}

/* Every cell: the model opened once, one column per budget (a segmenter or a detector). */
static int story_cells(const story_args *a, const mn_image *imgs /* (n_images) */,
                       mn_image *cells /* (n_images, n_budgets) */, char *caption, size_t size)
{
    mn_model m;
    if (mn_model_open(&m, a->ckpt)) {
        fprintf(stderr, "mutualnet story: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    caption_of(a, mn_model_config(&m), caption, size);
    mn_tape t;
    mn_tape_init(&t, 0);
    int status = MN_EXIT_OK;
    for (int c = 0; c < a->n_budgets && status == MN_EXIT_OK; c++)
        status = m.task == MN_TASK_DETECTION ? det_column(&m.det, &t, a, imgs, c, cells)
                                             : seg_column(&m.seg, &t, a, imgs, c, cells);
    mn_tape_free(&t);
    mn_model_free(&m);
    return status;
}

/* The checkpoint's task; a classifier has no overlay to show, a usage error (checked before any
 * image is read, so the status does not depend on the images). */
static int story_task(const story_args *a, enum mn_task_kind *task)
{
    if (mn_model_task(a->ckpt, task)) {
        fprintf(stderr, "mutualnet story: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    if (*task != MN_TASK_CLASSIFICATION) return MN_EXIT_OK;
    fprintf(stderr, "mutualnet story: %s is a classifier; the story draws segmentation or detection overlays "
                    "(mutualnet predict gives a classifier's top-5 classes)\n", a->ckpt);
    return MN_EXIT_USAGE;
}

/* Composes the cells under the caption and writes the picture. */
static int write_story(const story_args *a, const mn_image *cells /* (n_images, n_budgets) */, const char *caption)
{
    mn_image pic;
    char folder[1024];
    snprintf(folder, sizeof folder, "%s", a->out);
    int rc = mn_viz_grid(cells, a->n_images * a->n_budgets, a->n_images, a->n_budgets, caption, &pic);
    if (!rc) rc = mn_mkdirs(dirname(folder)); /* as predict makes its --out folder */
    if (!rc) rc = mn_image_save(a->out, &pic, 92);
    if (rc) {
        fprintf(stderr, "mutualnet story: %s\n", mn_last_error());
        mn_image_free(&pic);
        return MN_EXIT_FAIL;
    }
    fprintf(stderr, "mutualnet story: %s (%dx%d: %d image%s x %d budget%s)\n", a->out, pic.w, pic.h, a->n_images,
            a->n_images == 1 ? "" : "s", a->n_budgets, a->n_budgets == 1 ? "" : "s");
    mn_image_free(&pic);
    return MN_EXIT_OK;
}

static int run_story(const story_args *a)
{
    mn_image imgs[MAX_IMAGES] = {0}, cells[MAX_IMAGES * MAX_BUDGETS] = {0};
    char caption[1200];
    enum mn_task_kind task;
    int status = story_task(a, &task);
    if (status == MN_EXIT_OK && !load_images(a, imgs)) status = MN_EXIT_FAIL;
    if (status == MN_EXIT_OK)
        status = story_cells(a, imgs, cells, caption, sizeof caption);
    if (status == MN_EXIT_OK) status = write_story(a, cells, caption);
    for (int i = 0; i < MAX_IMAGES * MAX_BUDGETS; i++) mn_image_free(&cells[i]);
    for (int i = 0; i < MAX_IMAGES; i++) mn_image_free(&imgs[i]);
    return status;
}

int mn_cmd_story(int argc, char **argv)
{
    story_args a = {.alpha = 0.55, .thr = 0.5};
    a.images = malloc(sizeof(char *) * (size_t)argc);
    if (!a.images) return MN_EXIT_FAIL;
    int status = MN_EXIT_USAGE;
    if (parse_args(&a, argc, argv)) {
        if (a.help) usage(stdout);
        status = a.help ? MN_EXIT_OK : run_story(&a);
    }
    free(a.images);
    return status;
}
