/* mutualnet train: one mutual-learning run from a JSON configuration. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "report.h"
#include "mn/dist.h"
#include "mn/train.h"

/* Set by the SIGINT/SIGTERM handler, read by the training loop between iterations: the one
 * piece of state a signal handler may share, so it lives here in the tool, not in the library. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet train --config FILE [--set KEY=VALUE]... [--resume CHECKPOINT]\n"
               "                       [--allow-config-change] [--overwrite]\n"
               "       mutualnet train --help-config\n\n"
               "Trains the configured model with mutual learning across widths and input scales. Writes\n"
               "<train.out_dir>/last.safetensors (every train.checkpoint_every iterations, atomically; the one\n"
               "before it stays as previous.safetensors), metrics.jsonl and config.json, and holds\n"
               "<train.out_dir>/train.lock so that no second run writes there at the same time.\n"
               "--resume continues a run from its checkpoint with the same losses an uninterrupted run\n"
               "would have had; a configuration that changes the run (seed, batch size, data, classes,\n"
               "mode, widths, scales, optimiser, schedule) is refused with the differences listed unless\n"
               "--allow-config-change. A folder that already holds a run is refused unless --overwrite.\n"
               "--set overrides one configuration key, e.g. --set train.iterations=200 --set\n"
               "model.backbone=resnet50; the result is checked once, after every --set. --help-config\n"
               "lists every key. Ctrl-C or SIGTERM finishes the current iteration, writes a checkpoint\n"
               "and exits with 130 (143 for SIGTERM); a second Ctrl-C stops at once.\n"
               "Detection (\"task\": \"detection\", COCO-format data) also evaluates COCO AP on the validation\n"
               "split at the end and writes <train.out_dir>/val_results.json.\n");
}

int mn_cmd_train(int argc, char **argv)
{
    const char *cfg_path = NULL;
    tool_report tr_state;
    mn_reporter rep = tool_reporter(&tr_state);
    mn_train_options o = {.stop = &stop_signal, .reporter = &rep};
    enum { MAX_SETS = 64 };
    const char *sets[MAX_SETS];
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--help-config")) {
            mn_config_describe(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--config")) {
            if (!(cfg_path = mn_arg_value("train", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--resume")) {
            if (!(o.resume = mn_arg_value("train", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--allow-config-change")) {
            o.allow_changes = true;
        } else if (!strcmp(a, "--overwrite")) {
            o.overwrite = true;
        } else if (!strcmp(a, "--set")) {
            if (!mn_arg_set("train", argc, argv, &i, sets, &n_sets, MAX_SETS)) return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet train: unknown option %s (see mutualnet train --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!cfg_path) {
        fprintf(stderr, "mutualnet train: --config FILE is required (configs/ has one per recipe)\n");
        return MN_EXIT_USAGE;
    }
    if (o.resume && o.overwrite) {
        fprintf(stderr, "mutualnet train: --overwrite starts a new run; it cannot go with --resume\n");
        return MN_EXIT_USAGE;
    }
    mn_config c;
    mn_config_default(&c);
    if (mn_config_load_with(cfg_path, sets, n_sets, &c)) {
        fprintf(stderr, "mutualnet train: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    /* under mpirun / srun: one rank of a data-parallel job (mn/dist.h); rank 0 speaks for it */
    mn_dist dist;
    if (mn_dist_open(&dist)) {
        fprintf(stderr, "mutualnet train: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    bool speaker = dist.comm.rank == 0;
    if (speaker && dist.comm.size > 1) fprintf(stderr, "mutualnet train: MPI %s\n", dist.info);
    o.comm = mn_dist_comm(&dist);
    if (!speaker) o.reporter = NULL;
    /* a wrong class mapping is cheaper to see now than after hours; a data set that does not open is
     * left for mn_train to report */
#ifdef MN_HAVE_CMD_DATA
    if (speaker) mn_data_print_classes(stderr, &c);
#endif
    /* SA_RESETHAND: the first signal asks for a checkpoint, a second one kills as usual */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = mn_train(&c, &o);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc) {
        if (dist.comm.size > 1) fprintf(stderr, "mutualnet train (rank %d): %s\n", dist.comm.rank, mn_last_error());
        else fprintf(stderr, "mutualnet train: %s\n", mn_last_error());
        /* a stop that every rank agreed on ends them all normally; another failure ends the job */
        mn_dist_close(&dist, rc == MN_ECANCELED ? 0 : rc);
        if (rc == MN_ECANCELED) return 128 + (stop_signal ? (int)stop_signal : SIGINT);
        return MN_EXIT_FAIL;
    }
    mn_dist_close(&dist, 0);
    if (!speaker) return MN_EXIT_OK;
    fprintf(stderr, "mutualnet train: done; checkpoint %s/last.safetensors, metrics %s/metrics.jsonl\n", c.train.out_dir,
            c.train.out_dir);
    return MN_EXIT_OK;
}
