/* mutualnet: one network trained once, run at many costs. Command dispatcher. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <omp.h>

#include "commands.h"
#include "mn/dist.h"
#include "mn/error.h"

int openblas_get_parallel(void);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"help", cmd_help, "list the commands"},
#ifdef MN_HAVE_CMD_TRAIN
    {"train", mn_cmd_train, "train a model with mutual learning across widths and input scales"},
#endif
#ifdef MN_HAVE_CMD_EXPORT
    {"export", mn_cmd_export, "one configuration alone: a compact checkpoint or ONNX"},
#endif
#ifdef MN_HAVE_CMD_INFO
    {"info", mn_cmd_info, "what a checkpoint holds: task, model, widths and scales, classes, query table"},
#endif
#ifdef MN_HAVE_CMD_DATA
    {"data", mn_cmd_data, "check a data set: class counts, sizes, the class mapping, bad files and boxes"},
#endif
#ifdef MN_HAVE_CMD_CALIBRATE
    {"calibrate", mn_cmd_calibrate, "BN calibration and accuracy/FLOPs for a grid of configurations: the query table"},
#endif
#ifdef MN_HAVE_CMD_EVAL
    {"eval", mn_cmd_eval, "score a checkpoint on the validation split at one configuration or a budget"},
#endif
#ifdef MN_HAVE_CMD_PREDICT
    {"predict", mn_cmd_predict, "predict images at a budget or configuration and render overlays"},
#endif
#ifdef MN_HAVE_CMD_STORY
    {"story", mn_cmd_story, "one picture: the same images at several budgets side by side, as predict draws them"},
#endif
#ifdef MN_HAVE_CMD_PLOT
    {"plot", mn_cmd_plot, "draw loss curves, the accuracy-FLOPs chart of a run, or compare runs"},
#endif
#ifdef MN_HAVE_CMD_SYNTH
    {"synth", mn_cmd_synth, "generate the synthetic shapes data set (COCO JSON, label PNGs, splits)"},
#endif
#ifdef MN_HAVE_CMD_COCO_EVAL
    {"coco-eval", mn_cmd_coco_eval, "score a COCO results JSON against ground truth (pycocotools' numbers)"},
#endif
#ifdef MN_HAVE_CMD_MIOU
    {"miou", mn_cmd_miou, "score predicted index PNGs against ground-truth PNGs (mIoU, aAcc, mAcc)"},
#endif
#ifdef MN_HAVE_CMD_FLOPS
    {"flops", mn_cmd_flops, "count multiply-accumulates and parameters of a model at a width and size"},
#endif
#ifdef MN_HAVE_CMD_BENCH
    {"bench", mn_cmd_bench, "time kernels and models"},
#endif
};
static const int n_commands = (int)(sizeof commands / sizeof *commands);

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet COMMAND [options]   (mutualnet COMMAND --help for its options)\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n  --version   print the version and the threading set-up\n");
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return MN_EXIT_OK;
}

/* Both settings below are read by libraries when the process loads (OpenBLAS picks its kernels,
 * libgomp its wait policy), before main runs: the only way to change them is to set the
 * environment and start again, which main does at most once. A user's own settings are kept. */

/* OpenBLAS 0.3.21 (Debian 12) does not recognise AVX-512 CPUs newer than it (Zen 4/5) and falls
 * back to its AVX2 "Haswell" kernels; its SkylakeX kernels run there at about twice the speed
 * (docs/BENCHMARKS.md). True when it set OPENBLAS_CORETYPE. */
static bool prefer_avx512_blas(void)
{
    if (getenv("OPENBLAS_CORETYPE")) return false;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq") ||
        !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl"))
        return false;
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Haswell") && strcmp(core, "Zen"))) return false;
    return setenv("OPENBLAS_CORETYPE", "SkylakeX", 1) == 0;
}

#ifndef MN_DEFAULT_SPINCOUNT
#define MN_DEFAULT_SPINCOUNT "1000"
#endif

/* libgomp's default lets an idle worker spin for 300000 iterations before it sleeps: free on an
 * idle machine, but when another program wants the same cores the spinning threads take their
 * time slices. Measured with bench/wait_policy.sh (docs/BENCHMARKS.md): a spin of 1000 halves a
 * run's time beside two busy loops (as passive waiting does) and costs about 4 % alone, within
 * the noise. True when it set GOMP_SPINCOUNT. */
static bool gentle_openmp_wait(void)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return false;
    return setenv("GOMP_SPINCOUNT", MN_DEFAULT_SPINCOUNT, 1) == 0;
}

int main(int argc, char **argv)
{
    bool blas = prefer_avx512_blas(), omp = gentle_openmp_wait();
    if (blas || omp) execv("/proc/self/exe", argv); /* returns only on failure: carry on as loaded */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MN_EXIT_USAGE : MN_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        /* openblas_get_parallel: 0 sequential, 1 pthreads, 2 OpenMP (the build we want) */
        int par = openblas_get_parallel();
        printf("mutualnet 0.1.0\nOpenMP threads: %d\nOpenBLAS: %s build, %d threads, %s kernels\n",
               omp_get_max_threads(), par == 2 ? "OpenMP" : par == 1 ? "pthreads (expected the OpenMP build)" : "sequential",
               openblas_get_num_threads(), openblas_get_corename());
        const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
        printf("OpenMP idle wait: OMP_WAIT_POLICY=%s, GOMP_SPINCOUNT=%s\n", policy ? policy : "(unset)",
               spin ? spin : "(unset)");
        printf("MPI: %s\n", mn_dist_has_mpi() ? "yes (train, eval and calibrate run as data-parallel jobs under "
                                                 "mpirun or srun)"
                                               : "no (built without it)");
        return MN_EXIT_OK;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            /* every rank of an MPI job would do the whole work of the others and write the same files */
            if (mn_dist_launched() && strcmp(argv[1], "train") && strcmp(argv[1], "eval") &&
                strcmp(argv[1], "calibrate")) {
                fprintf(stderr, "mutualnet %s: runs as one process; start it without mpirun or srun (train, eval "
                                "and calibrate run as data-parallel jobs)\n", argv[1]);
                return MN_EXIT_USAGE;
            }
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "mutualnet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return MN_EXIT_USAGE;
}
