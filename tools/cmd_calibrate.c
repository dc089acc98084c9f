/* mutualnet calibrate: BN calibration and scoring over a grid of configurations, stored as
 * the checkpoint's query table, and (--latency) each configuration's milliseconds on this machine. */
#include <libgen.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "latency.h"
#include "report.h"
#include "mn/model.h"
#include "mn/calibrate.h"
#include "mn/seg_eval.h"
#include "mn/cls_eval.h"
#include "mn/cls_model.h"
#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/dist.h"
#include "mn/safetensors.h"

static void calibrate_usage(FILE *f)
{
    fprintf(f, "usage: mutualnet calibrate --checkpoint FILE [--out FILE] [--width-step S] [--batches N]\n"
               "                           [--max-val-images N] [--scales LIST] [--split NAME]\n"
               "                           [--latency [--latency-runs N]]\n"
               "       mutualnet calibrate --checkpoint FILE --latency-only [--latency-runs N] [--out FILE]\n\n"
               "For every width from the trained maximum down to the minimum (step S, default calibrate.width_step)\n"
               "and every training scale of data.eval_size (segmentation) or of det.short_side (detection), or\n"
               "every scale of --scales (e.g. 1,0.75,0.5: to score a US-Net or independent network at inputs it was\n"
               "not trained at):\n"
               "recomputes BN statistics over N training batches (default calibrate.batches), measures mIoU or COCO\n"
               "AP on the validation split (or on --split NAME) and the multiply-accumulates (a detector's at the median image size of\n"
               "the validation split, resized and padded), prints the query table and writes it, with each\n"
               "configuration's BN statistics, into --out (default: calibrated.safetensors beside the checkpoint).\n"
               "The input checkpoint is not modified (unless it is that calibrated.safetensors).\n\n"
               "--latency also times every configuration on this machine: one image at batch 1 (a synthetic\n"
               "picture of the configuration's input size; a detector's typical image, with proposals and NMS),\n"
               "its BN statistics selected, 2 warm-ups, then the median of N runs (--latency-runs, default 10) of\n"
               "what predict runs, with the OpenMP threads in force (OMP_NUM_THREADS). The milliseconds are stored\n"
               "beside the MACs, with the thread count and the CPU model, for eval/predict/story --budget-ms and\n"
               "plot --x ms. --latency-only times the table a checkpoint already has, without data or\n"
               "recalibration, and writes it back into that checkpoint (or into --out): run it on the device that\n"
               "will run the model. A calibration without --latency writes a table without timings.\n\n"
               "--split NAME scores the table on another split of the data set than the validation split, so that\n"
               "the configurations a budget picks can be scored afterwards (eval --split) on images that played no\n"
               "part in the choice: a table picked and scored on one split overstates what the choice gives.\n\n"
               "Under mpirun or srun a checkpoint calibrates as a data-parallel job: each rank takes its slice of\n"
               "every calibration batch (the rank count must divide train.batch_size) and a share of the validation\n"
               "images, and rank 0 writes what one process writes (byte for byte for segmentation and\n"
               "classification). --latency and --latency-only are refused there (time in one process).\n");
}

/* The configured training split of a checkpoint's data set and the split that scores the table. */
static int open_splits(const mn_config *c, const char *scored, mn_dataset **tr, mn_dataset **va)
{
    mn_dataset_options o;
    mn_config_dataset_options(c, c->data.train_split, &o);
    int rc = mn_dataset_open(tr, &o);
    o.split = scored;
    if (!rc) rc = mn_dataset_open(va, &o);
    return rc;
}

/* What the command line asks for beyond the checkpoint's configuration (0: the configured value). */
typedef struct calib_args {
    double step;
    int batches, max_val;
    float scales[MN_MAX_SCALES];
    int n_scales;
    int latency_runs;        /* > 0: time every configuration (--latency, --latency-only) */
    const char *split;       /* the split that scores the table; NULL: the configured validation split */
} calib_args;

/* --width-step and --batches over the checkpoint's configuration. */
static void apply_overrides(mn_config *c, const calib_args *a)
{
    if (a->step > 0) c->calibrate.width_step = (float)a->step;
    if (a->batches > 0) c->calibrate.batches = a->batches;
}

/* The outcome: a failure on every rank that has one (each rank's own message), success by rank 0. */
static int report(int rc, const char *out, bool timed, mn_comm *comm)
{
    if (rc && mn_comm_size(comm) > 1)
        fprintf(stderr, "mutualnet calibrate (rank %d): %s\n", mn_comm_rank(comm), mn_last_error());
    else if (rc) fprintf(stderr, "mutualnet calibrate: %s\n", mn_last_error());
    else if (mn_comm_rank(comm) == 0)
        fprintf(stderr, "mutualnet calibrate: query table written to %s (use it with eval/predict --budget%s)\n", out,
                timed ? " or --budget-ms" : "");
    return rc ? MN_EXIT_FAIL : MN_EXIT_OK;
}

static void print_table(mn_model *m)
{
    if (m->task == MN_TASK_DETECTION) mn_det_table_print(&m->det, stdout);
    else mn_query_print(mn_model_table(m), stdout);
}

/* Times every configuration of the model's table (a->latency_runs > 0), saying how first. */
static int time_table(mn_model *m, const calib_args *a, const mn_reporter *rep)
{
    char machine[96];
    mn_machine_name(machine, sizeof machine);
    fprintf(stderr, "mutualnet calibrate: timing %d configurations at batch 1: %d warm-ups, then the median of %d runs "
                    "each, %d OpenMP thread%s, on %s\n",
            mn_model_table(m)->n, MN_LATENCY_WARMUP, a->latency_runs, omp_get_max_threads(),
            omp_get_max_threads() == 1 ? "" : "s", machine[0] ? machine : "an unnamed machine");
    return mn_latency_time_table(m, a->latency_runs, machine, rep);
}

/* Whether two paths name one existing file. */
static bool same_file(const char *a, const char *b)
{
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* Rewriting a checkpoint in place keeps what a calibrated one holds; a training checkpoint's
 * iteration and momentum buffers would be lost, so it is refused. */
static int check_in_place(const char *ckpt)
{
    mn_safetensors st;
    int rc = mn_st_read(ckpt, &st);
    if (rc) return rc;
    const char *it = mn_st_meta(&st, "iteration");
    if (it && strcmp(it, "0"))
        rc = mn_error(MN_EINVAL, "%s is a training checkpoint (iteration %s); rewriting it would drop its optimiser "
                                 "state: give --out FILE", ckpt, it);
    mn_st_free(&st);
    return rc;
}

/* --latency-only: the table the checkpoint has, timed; no data set is opened. Without --out the
 * checkpoint itself is rewritten (atomically: a failed write leaves it as it was). */
static int time_existing(mn_model *m, const char *ckpt, const char *out, const calib_args *a)
{
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    int rc = 0;
    if (mn_model_table(m)->n == 0)
        rc = mn_error(MN_EINVAL, "%s has no query table to time; calibrate and time it at once with mutualnet calibrate "
                                 "--latency --checkpoint %s", ckpt, ckpt);
    if (!rc && same_file(out, ckpt)) rc = check_in_place(ckpt);
    if (!rc) rc = time_table(m, a, &rep);
    if (!rc) print_table(m);
    if (!rc) rc = mn_model_save(m, out, NULL, 0);
    return report(rc, out, true, NULL);
}

/* Detectors, as calibrate_image_model below: under a launcher each rank takes its slice of every
 * calibration batch (padded as the whole batch is) and runs a share of the validation images,
 * whose detections are gathered and scored once. */
static int calibrate_det(mn_model *whole, const char *out, const calib_args *a, mn_comm *comm)
{
    mn_det_model *m = &whole->det;
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    bool speaker = mn_comm_rank(comm) == 0;
    apply_overrides(&m->cfg, a);
    const mn_config *c = &m->cfg;
    mn_calib_config g;
    mn_dataset *tr = NULL, *va = NULL;
    int rc = mn_det_calib_grid(c, a->n_scales ? a->scales : NULL, a->n_scales, &g);
    const char *scored = a->split ? a->split : c->data.val_split;
    if (!rc) rc = mn_comm_agree(comm, open_splits(c, scored, &tr, &va));
    char ann[1100];
    mn_det_annotations_path(ann, sizeof ann, c, scored);
    if (!rc && speaker)
        fprintf(stderr, "mutualnet calibrate: %d widths x %d short sides, %d batches of %d training images each, "
                        "scored on split %s%s\n",
                g.n_widths, g.n_sizes, g.batches, c->train.batch_size, scored,
                mn_comm_size(comm) > 1 ? " (shared out over the ranks, BN statistics over all of them)" : "");
    /* with timings the table is printed once, after them */
    FILE *shown = a->latency_runs || !speaker ? NULL : stdout;
    if (!rc)
        rc = mn_det_build_table_ranks(m, tr, va, ann, &g, c->train.batch_size, a->max_val, c->train.seed,
                                      speaker ? &rep : NULL, shown, comm);
    /* timing is one process's (mn_cmd_calibrate refuses it with ranks) */
    if (!rc && a->latency_runs) rc = time_table(whole, a, &rep);
    if (!rc && a->latency_runs) print_table(whole);
    if (!rc) rc = mn_comm_agree(comm, speaker ? mn_det_model_save(m, out, NULL, 0) : 0);
    mn_dataset_close(tr);
    mn_dataset_close(va);
    return report(rc, out, a->latency_runs > 0, comm);
}

/* Segmenters and classifiers: both run on whole images at (width, h x w). Under mpirun or srun
 * (comm) each rank takes its slice of every calibration batch and scores its share of the
 * validation images; rank 0 alone reports, prints and writes. */
static int calibrate_image_model(mn_model *whole, const char *out, const calib_args *a, mn_comm *comm)
{
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    bool speaker = mn_comm_rank(comm) == 0;
    bool cls = whole->task == MN_TASK_CLASSIFICATION;
    mn_config *c = cls ? &whole->cls.cfg : &whole->seg.cfg;
    apply_overrides(c, a);
    mn_calib_config g;
    mn_dataset *tr = NULL, *va = NULL;
    int rc = mn_calib_grid(c, a->n_scales ? a->scales : NULL, a->n_scales, &g);
    const char *scored = a->split ? a->split : c->data.val_split;
    if (!rc) rc = mn_comm_agree(comm, open_splits(c, scored, &tr, &va));
    int ranks = mn_comm_size(comm);
    if (!rc && speaker)
        fprintf(stderr, "mutualnet calibrate: %d widths x %d sizes, %d batches of %d training images each, "
                        "scored on split %s%s\n",
                g.n_widths, g.n_sizes, g.batches, c->train.batch_size, scored,
                ranks > 1 ? " (shared out over the ranks, BN statistics over all of them)" : "");
    int n = c->train.batch_size;
    uint64_t seed = c->train.seed;
    FILE *shown = a->latency_runs || !speaker ? NULL : stdout;
    const mn_reporter *r = speaker ? &rep : NULL;
    if (!rc)
        rc = cls ? mn_cls_build_table_ranks(&whole->cls, tr, va, &g, n, a->max_val, seed, r, shown, comm)
                 : mn_seg_build_table_ranks(&whole->seg, tr, va, &g, n, a->max_val, seed, r, shown, comm);
    /* timing is one process's (mn_cmd_calibrate refuses it with ranks) */
    if (!rc && a->latency_runs) rc = time_table(whole, a, &rep);
    if (!rc && a->latency_runs) print_table(whole);
    if (!rc) rc = mn_comm_agree(comm, speaker ? mn_model_save(whole, out, NULL, 0) : 0);
    mn_dataset_close(tr);
    mn_dataset_close(va);
    return report(rc, out, a->latency_runs > 0, comm);
}

/* A job of several ranks does what one process can share out, and refuses the rest before any
 * work (every rank decides alike from the arguments and the checkpoint; rank 0 says why). */
static int refuse_as_job(const char *ckpt, const calib_args *a, bool speaker)
{
    const char *why = NULL;
    if (a->latency_runs)
        /* the other ranks would share the cores the times are taken on, at a rank's thread count */
        why = "--latency and --latency-only time configurations in one process on an otherwise idle machine: "
              "calibrate under the launcher without them, then time the table in one process with mutualnet "
              "calibrate --latency-only --checkpoint OUT";
    if (why && speaker) fprintf(stderr, "mutualnet calibrate: %s\n", why);
    return why != NULL;
}

int mn_cmd_calibrate(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL;
    calib_args ca = {0};
    bool latency = false, latency_only = false, grid_options = false;
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            calibrate_usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("calibrate", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--out")) {
            if (!(out = mn_arg_value("calibrate", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--latency")) {
            latency = true;
        } else if (!strcmp(a, "--latency-only")) {
            latency_only = true;
        } else if (!strcmp(a, "--latency-runs")) {
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_int("calibrate", a, v, 1, 10000, &runs))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--width-step")) {
            grid_options = true;
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_float("calibrate", a, v, 0.01, 1, &ca.step))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--batches")) {
            grid_options = true;
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_int("calibrate", a, v, 1, 100000, &ca.batches))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--max-val-images")) {
            grid_options = true;
            if (!(v = mn_arg_value("calibrate", argc, argv, &i)) || !mn_arg_int("calibrate", a, v, 1, 1 << 30, &ca.max_val))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--split")) {
            grid_options = true;
            if (!(ca.split = mn_arg_value("calibrate", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--scales")) {
            grid_options = true;
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
    if (latency && latency_only) {
        fprintf(stderr, "mutualnet calibrate: give --latency (calibrate, then time) or --latency-only (time the "
                        "existing table), not both\n");
        return MN_EXIT_USAGE;
    }
    if (latency_only && grid_options) {
        fprintf(stderr, "mutualnet calibrate: --latency-only times the table the checkpoint has; --width-step, "
                        "--batches, --max-val-images, --scales and --split are for calibrating (use --latency)\n");
        return MN_EXIT_USAGE;
    }
    if (runs && !latency && !latency_only) {
        fprintf(stderr, "mutualnet calibrate: --latency-runs needs --latency or --latency-only\n");
        return MN_EXIT_USAGE;
    }
    if (latency || latency_only) ca.latency_runs = runs ? runs : 10;
    char def_out[1200];
    if (!out && latency_only) {
        out = ckpt; /* timings added to the calibrated checkpoint itself */
    } else if (!out) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", ckpt);
        snprintf(def_out, sizeof def_out, "%s/calibrated.safetensors", dirname(tmp));
        out = def_out;
    }
    /* under mpirun / srun: one rank of a data-parallel calibration (mn/dist.h) */
    mn_dist dist;
    if (mn_dist_open(&dist)) {
        fprintf(stderr, "mutualnet calibrate: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    mn_comm *comm = mn_dist_comm(&dist);
    bool speaker = dist.comm.rank == 0;
    if (comm && refuse_as_job(ckpt, &ca, speaker)) {
        mn_dist_close(&dist, 0);
        return MN_EXIT_USAGE;
    }
    if (speaker && comm) fprintf(stderr, "mutualnet calibrate: MPI %s\n", dist.info);
    mn_model m;
    int opened = mn_model_open(&m, ckpt), rc = mn_comm_agree(comm, opened);
    if (!rc && comm && mn_model_config(&m)->train.batch_size % dist.comm.size) {
        /* the calibration batch is the checkpoint's: every rank sees it, rank 0 says so */
        if (speaker)
            fprintf(stderr, "mutualnet calibrate: the calibration batch (train.batch_size %d of the checkpoint) does "
                            "not split into %d equal parts: run a number of ranks that divides it\n",
                    mn_model_config(&m)->train.batch_size, dist.comm.size);
        mn_model_free(&m);
        mn_dist_close(&dist, 0);
        return MN_EXIT_USAGE;
    }
    if (rc) { /* every rank knows: none is left waiting */
        report(rc, out, false, comm);
        if (!opened) mn_model_free(&m);
        mn_dist_close(&dist, 0);
        return MN_EXIT_FAIL;
    }
    int status = latency_only                  ? time_existing(&m, ckpt, out, &ca)
                 : m.task == MN_TASK_DETECTION ? calibrate_det(&m, out, &ca, comm)
                                               : calibrate_image_model(&m, out, &ca, comm);
    mn_model_free(&m);
    /* a rank that failed alone may have left the others inside a collective: then the job ends */
    mn_dist_close(&dist, status == MN_EXIT_OK ? 0 : MN_EINVAL);
    return status;
}
