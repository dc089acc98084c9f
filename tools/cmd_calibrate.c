/* mutualnet calibrate: BN calibration and scoring over a grid of configurations, stored as
 * the checkpoint's query table. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "report.h"
#include "mn/model.h"
#include "mn/calibrate.h"
#include "mn/seg_eval.h"
#include "mn/cls_eval.h"
#include "mn/cls_model.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"

static void calibrate_usage(FILE *f)
{
    fprintf(f, "usage: mutualnet calibrate --checkpoint FILE [--out FILE] [--width-step S] [--batches N]\n"
               "                           [--max-val-images N] [--scales LIST]\n\n"
               "For every width from the trained maximum down to the minimum (step S, default calibrate.width_step)\n"
               "and every training scale of data.eval_size (segmentation) or of det.short_side (detection), or\n"
               "every scale of --scales (e.g. 1,0.75,0.5: to score a US-Net or independent network at inputs it was\n"
               "not trained at):\n"
               "recomputes BN statistics over N training batches (default calibrate.batches), measures mIoU or COCO\n"
               "AP on the validation split and the multiply-accumulates (a detector's at the median image size of\n"
               "the validation split, resized and padded), prints the query table and writes it, with each\n"
               "configuration's BN statistics, into --out (default: calibrated.safetensors beside the checkpoint).\n"
               "The input checkpoint is not modified.\n");
}

/* The configured training and validation splits of a checkpoint's data set. */
static int open_splits(const mn_config *c, mn_dataset **tr, mn_dataset **va)
{
    mn_dataset_options o;
    mn_config_dataset_options(c, c->data.train_split, &o);
    int rc = mn_dataset_open(tr, &o);
    o.split = c->data.val_split;
    if (!rc) rc = mn_dataset_open(va, &o);
    return rc;
}

/* What the command line asks for beyond the checkpoint's configuration (0: the configured value). */
typedef struct calib_args {
    double step;
    int batches, max_val;
    float scales[MN_MAX_SCALES];
    int n_scales;
} calib_args;

/* --width-step and --batches over the checkpoint's configuration. */
static void apply_overrides(mn_config *c, const calib_args *a)
{
    if (a->step > 0) c->calibrate.width_step = (float)a->step;
    if (a->batches > 0) c->calibrate.batches = a->batches;
}

static int report(int rc, const char *out)
{
    if (rc) fprintf(stderr, "mutualnet calibrate: %s\n", mn_last_error());
    else fprintf(stderr, "mutualnet calibrate: query table written to %s (use it with eval/predict --budget)\n", out);
    return rc ? MN_EXIT_FAIL : MN_EXIT_OK;
}

static int calibrate_det(const char *ckpt, const char *out, const calib_args *a)
{
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    mn_det_model m;
    if (mn_det_model_open(&m, ckpt)) return report(-1, out);
    apply_overrides(&m.cfg, a);
    const mn_config *c = &m.cfg;
    mn_calib_config g;
    mn_dataset *tr = NULL, *va = NULL;
    int rc = mn_det_calib_grid(c, a->n_scales ? a->scales : NULL, a->n_scales, &g);
    if (!rc) rc = open_splits(c, &tr, &va);
    char ann[1100];
    mn_det_annotations_path(ann, sizeof ann, c, c->data.val_split);
    if (!rc)
        fprintf(stderr, "mutualnet calibrate: %d widths x %d short sides, %d batches of %d training images each\n",
                g.n_widths, g.n_sizes, g.batches, c->train.batch_size);
    if (!rc) rc = mn_det_build_table(&m, tr, va, ann, &g, c->train.batch_size, a->max_val, c->train.seed, &rep, stdout);
    if (!rc) rc = mn_det_model_save(&m, out, NULL, 0);
    mn_dataset_close(tr);
    mn_dataset_close(va);
    mn_det_model_free(&m);
    return report(rc, out);
}

/* Segmenters and classifiers: both run on whole images at (width, h x w). */
static int calibrate_image_model(const char *ckpt, const char *out, const calib_args *a, bool cls)
{
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    mn_seg_model sm;
    mn_cls_model cm;
    if (cls ? mn_cls_model_open(&cm, ckpt) : mn_seg_model_open(&sm, ckpt)) return report(-1, out);
    mn_config *c = cls ? &cm.cfg : &sm.cfg;
    apply_overrides(c, a);
    mn_calib_config g;
    mn_dataset *tr = NULL, *va = NULL;
    int rc = mn_calib_grid(c, a->n_scales ? a->scales : NULL, a->n_scales, &g);
    if (!rc) rc = open_splits(c, &tr, &va);
    if (!rc)
        fprintf(stderr, "mutualnet calibrate: %d widths x %d sizes, %d batches of %d training images each\n",
                g.n_widths, g.n_sizes, g.batches, c->train.batch_size);
    int n = c->train.batch_size;
    uint64_t seed = c->train.seed;
    if (!rc)
        rc = cls ? mn_cls_build_table(&cm, tr, va, &g, n, a->max_val, seed, &rep, stdout)
                 : mn_seg_build_table(&sm, tr, va, &g, n, a->max_val, seed, &rep, stdout);
    if (!rc) rc = cls ? mn_cls_model_save(&cm, out, NULL, 0) : mn_seg_model_save(&sm, out, NULL, 0);
    mn_dataset_close(tr);
    mn_dataset_close(va);
    if (cls) mn_cls_model_free(&cm);
    else mn_seg_model_free(&sm);
    return report(rc, out);
}

int mn_cmd_calibrate(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL;
    calib_args ca = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            calibrate_usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("calibrate", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--out")) {
            if (!(out = mn_arg_value("calibrate", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--width-step")) {
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_float("calibrate", a, v, 0.01, 1, &ca.step))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--batches")) {
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_int("calibrate", a, v, 1, 100000, &ca.batches))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--max-val-images")) {
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_int("calibrate", a, v, 1, 1 << 30, &ca.max_val))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--scales")) {
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) ||
                !mn_arg_floats("calibrate", a, v, 0.05, 4, ca.scales, MN_MAX_SCALES, &ca.n_scales))
                return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet calibrate: unknown option %s (see mutualnet calibrate --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "mutualnet calibrate: --checkpoint FILE is required\n");
        return MN_EXIT_USAGE;
    }
    char def_out[1200];
    if (!out) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", ckpt);
        snprintf(def_out, sizeof def_out, "%s/calibrated.safetensors", dirname(tmp));
        out = def_out;
    }
    enum mn_task_kind task;
    if (mn_model_task(ckpt, &task)) {
        fprintf(stderr, "mutualnet calibrate: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    if (task == MN_TASK_DETECTION) return calibrate_det(ckpt, out, &ca);
    return calibrate_image_model(ckpt, out, &ca, task == MN_TASK_CLASSIFICATION);
}
