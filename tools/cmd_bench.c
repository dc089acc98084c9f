/* mutualnet bench: forward latency and training-step time of a backbone over widths and
 * sizes, in the same table layout as tools/bench_torch.py prints for PyTorch. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench_models.h"
#include "commands.h"
#include "latency.h"
#include "mn/backbone.h"
#include "mn/optim.h"
#include "mn/train.h"

int openblas_get_parallel(void);
char *openblas_get_corename(void);

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet bench [--model mobilenet_v2|mobilenet_v1|resnet50] [--reps N] [--quick]\n"
               "                       [--width W] [--size S] [--only forward|train]\n"
               "       mutualnet bench --model deeplabv3plus|faster_rcnn [--config FILE] [--classes K] [--batch B]\n"
               "                       [--reps N] [--quick] [--size HxW] [--only forward|train|sandwich] [--list]\n"
               "                       [--at HxW (segmenter) | --short-side S (detector)]\n\n"
               "Times, for widths 1.0, 0.5, 0.35 at 224, 160 and 128: a forward pass at batch 1 (inference,\n"
               "running BN statistics) and a training step at batch 8 (forward, cross-entropy, backward, SGD).\n"
               "Prints the median of N repetitions after two warm-ups (default 5), in milliseconds, as a\n"
               "Markdown table. tools/bench_torch.py prints the same rows for PyTorch; bench/compare.sh runs both.\n"
               "--quick: widths 1.0 and 0.5 at 224 only. --width / --size: that one width or size only;\n"
               "--only: time only the forward pass or only the training step (the other column shows -),\n"
               "for profiling one row, e.g. perf record -g mutualnet bench --width 1 --size 224 --only forward.\n\n"
               "Whole models (--model deeplabv3plus or faster_rcnn), built as --config describes (default\n"
               "configs/seg_cityscapes_mbv2.json, 19 classes / configs/det_coco128_mbv2.json, 81 classes), full\n"
               "width: forward at batch 1 (inference; the detector's whole test path: proposals, box head, NMS);\n"
               "train: one pass (forward, loss, backward, SGD step) at batch B (default: train.batch_size);\n"
               "sandwich (segmenter): the MutualNet iteration, four passes (full width, then widths evenly down\n"
               "to mutual.width_min at the configured scales, with the configured distillation) and one SGD step.\n"
               "Segmenter: forward at 512x512, 512x1024, 1024x2048; train and sandwich at 512x512 and 512x1024.\n"
               "Detector: a 480x640 image at short side 512 and 800 (long side capped at the ratio\n"
               "det.max_side / det.short_side), padded to multiples of 32, four boxes per image. --quick:\n"
               "128x256 / 128x128 and short side 128. --at HxW: the segmenter's three rows at that input instead;\n"
               "--short-side S: the detector's rows at that short side instead (e.g. a run configuration's own\n"
               "crop or size). --size HxW keeps only the rows with that input. Median\n"
               "of N (default 3) after two warm-ups; GFLOP/s counts 2 per MAC and a training pass as three\n"
               "forward passes. --list: the rows and their MACs, untimed. bench/models_torch.py prints the same\n"
               "rows for PyTorch;\n"
               "bench/compare_models.sh runs both.\n");
}

/* One timed unit: a batch-1 forward (train == false) or a batch-8 training step. The input
 * (8 images, of which the forward pass uses the first) is made before the clock starts, as
 * tools/bench_torch.py does. */
static int run_once(mn_backbone *b, mn_param_set *ps, mn_sgd *opt, mn_tape *t, float w, int size, bool train,
                    const int32_t *labels, float *input /* (8, 3, size, size) */)
{
    mn_tape_reset(t);
    mn_tape_set_grad(t, train);
    mn_var *x = mn_var_wrap(t, mn_tensor_4d(input, train ? 8 : 1, 3, size, size));
    if (!x) return mn_last_error_code();
    mn_run r = {.tape = t, .width = w, .training = train};
    mn_var *logits;
    int rc = mn_backbone_forward(b, &r, x, NULL, &logits);
    if (rc || !train) return rc;
    mn_param_zero_grad(ps);
    rc = mn_backward(t, mn_cross_entropy(t, logits, labels, -100));
    return rc ? rc : mn_sgd_step(opt, 0.01f);
}

int mn_cmd_bench(int argc, char **argv)
{
    const char *model = "mobilenet_v2";
    int reps = 5;
    bool quick = false, reps_set = false;
    mn_bench_models_options mo = {.only = -1};
    const char *size_arg = NULL;
    double only_w = 0;
    int only_s = 0, first_mode = 0, last_mode = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--model")) {
            if (!(model = mn_arg_value("bench", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--reps")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i)) || !mn_arg_int("bench", a, v, 1, 1000, &reps))
                return MN_EXIT_USAGE;
            reps_set = true;
        } else if (!strcmp(a, "--config")) {
            if (!(mo.config = mn_arg_value("bench", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--classes")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i)) || !mn_arg_int("bench", a, v, 2, 255, &mo.classes))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i)) || !mn_arg_int("bench", a, v, 1, 64, &mo.batch))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--list")) {
            mo.list = true;
        } else if (!strcmp(a, "--width")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i)) || !mn_arg_float("bench", a, v, 0.01, 1.0, &only_w))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--size")) {
            if (!(size_arg = mn_arg_value("bench", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--at")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i))) return MN_EXIT_USAGE;
            if (sscanf(v, "%dx%d", &mo.at_h, &mo.at_w) != 2 || mo.at_h < 32 || mo.at_w < 32 || mo.at_h > 4096 ||
                mo.at_w > 4096) {
                fprintf(stderr, "mutualnet bench: --at takes HxW, each in [32, 4096], not %s\n", v);
                return MN_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--short-side")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i)) ||
                !mn_arg_int("bench", a, v, 32, 4096, &mo.short_side))
                return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--only")) {
            if (!(v = mn_arg_value("bench", argc, argv, &i))) return MN_EXIT_USAGE;
            if (!strcmp(v, "forward")) {
                last_mode = 0;
                mo.only = 0;
            } else if (!strcmp(v, "train")) {
                first_mode = 1;
                mo.only = 1;
            } else if (!strcmp(v, "sandwich")) {
                mo.only = 2;
            } else {
                fprintf(stderr, "mutualnet bench: --only takes forward, train or sandwich, not %s\n", v);
                return MN_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "mutualnet bench: unknown option %s (see mutualnet bench --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!strcmp(model, "deeplabv3plus") || !strcmp(model, "faster_rcnn")) {
        if (size_arg && (sscanf(size_arg, "%dx%d", &mo.h, &mo.w) != 2 || mo.h < 32 || mo.w < 32)) {
            fprintf(stderr, "mutualnet bench: --size takes HxW for a whole model (a row's input), not %s\n", size_arg);
            return MN_EXIT_USAGE;
        }
        const bool det = !strcmp(model, "faster_rcnn");
        if ((det && mo.at_h) || (!det && mo.short_side)) {
            fprintf(stderr, "mutualnet bench: --at is for the segmenter, --short-side for the detector\n");
            return MN_EXIT_USAGE;
        }
        mo.model = model;
        mo.reps = reps_set ? reps : 3;
        mo.quick = quick;
        return mn_bench_models(&mo);
    }
    if (mo.only == 2 || mo.config || mo.classes || mo.batch || mo.list || mo.at_h || mo.short_side) {
        fprintf(stderr, "mutualnet bench: --only sandwich, --config, --classes, --batch, --list, --at and "
                        "--short-side are for --model deeplabv3plus or faster_rcnn\n");
        return MN_EXIT_USAGE;
    }
    if (size_arg && !mn_arg_int("bench", "--size", size_arg, 32, 4096, &only_s)) return MN_EXIT_USAGE;
    mn_backbone_config cfg = {.num_classes = 1000, .output_stride = 32};
    if (mn_arch_parse(model, &cfg.arch)) {
        fprintf(stderr, "mutualnet bench: %s\n", mn_last_error());
        return MN_EXIT_USAGE;
    }
    mn_param_set ps;
    mn_param_set_init(&ps);
    mn_rng rng;
    mn_rng_seed(&rng, 1);
    mn_backbone *b = NULL;
    mn_sgd opt;
    memset(&opt, 0, sizeof opt);
    mn_sgd_config oc = {0.01f, 0.9f, 0.0f, true, 1e-4f};
    int rc = mn_backbone_create(&b, &cfg, &ps, "", &rng);
    if (!rc) rc = mn_sgd_init(&opt, &ps, &oc);
    mn_tape t;
    mn_tape_init(&t, 0);
    int32_t labels[8] = {1, 7, 42, 100, 3, 999, 500, 0};
    static const float widths[3] = {1.0f, 0.5f, 0.35f};
    static const int sizes[3] = {224, 160, 128};
    printf("mutualnet %s, %d OpenMP threads, OpenBLAS %s (%s kernels), median of %d\n\n", model,
           omp_get_max_threads(), openblas_get_parallel() == 2 ? "OpenMP build" : "NOT the OpenMP build",
           openblas_get_corename(), reps);
    printf("| width | size | MMACs | forward b=1 (ms) | train step b=8 (ms) |\n|---|---|---|---|---|\n");
    for (int wi = 0; wi < (quick ? 2 : 3) && !rc; wi++)
        for (int si = 0; si < (quick ? 1 : 3) && !rc; si++) {
            float w = widths[wi];
            int s = sizes[si];
            if ((only_w > 0 && fabs(only_w - (double)w) > 1e-6) || (only_s && only_s != s)) continue;
            int64_t macs = 0;
            rc = mn_backbone_flops(b, w, s, s, true, &macs, NULL);
            const int64_t n_in = 8 * 3 * (int64_t)s * s;
            float *input = malloc(sizeof(float) * (size_t)n_in);
            if (!input) {
                rc = mn_error(MN_ENOMEM, "bench: out of memory for a %dx%d input", s, s);
                break;
            }
            for (int64_t i = 0; i < n_in; i++) input[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1;
            double ms[2] = {-1, -1};
            for (int train = first_mode; train <= last_mode && !rc; train++) {
                double v[1000];
                /* k < 0: two warm-ups; the first sizes the arena, the second touches the
                 * one block the arena then consolidates into */
                for (int k = -2; k < reps && !rc; k++) {
                    double t0 = mn_now();
                    rc = run_once(b, &ps, &opt, &t, w, s, train, labels, input);
                    if (k >= 0) v[k] = 1e3 * (mn_now() - t0);
                }
                if (!rc) ms[train] = mn_median(v, reps);
            }
            free(input);
            if (rc) break;
            char f[32] = "-", tr[32] = "-";
            if (ms[0] >= 0) snprintf(f, sizeof f, "%.2f", ms[0]);
            if (ms[1] >= 0) snprintf(tr, sizeof tr, "%.1f", ms[1]);
            printf("| %.2f | %d | %.1f | %s | %s |\n", (double)w, s, (double)macs / 1e6, f, tr);
            fflush(stdout);
        }
    if (rc) fprintf(stderr, "mutualnet bench: %s\n", mn_last_error());
    mn_tape_free(&t);
    mn_sgd_free(&opt);
    mn_backbone_free(b);
    mn_param_set_free(&ps);
    return rc ? MN_EXIT_FAIL : MN_EXIT_OK;
}
