/* mutualnet info: what a checkpoint holds, without running it. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "mn/det_model.h"
#include "mn/model.h"
#include "mn/safetensors.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet info CHECKPOINT\n\n"
               "Prints what a checkpoint holds: its task, backbone and head, the widths and input scales it was\n"
               "trained at (mode), its classes, the iterations trained, the data set it came from, and the query\n"
               "table when it has been calibrated (every configuration's cost and score, * on the frontier).\n");
}

static const char *mode_name(enum mn_mode m)
{
    return m == MN_MODE_USNET ? "usnet (widths at full scale)" : m == MN_MODE_INDEPENDENT ? "independent (one width)"
                                                                                           : "mutualnet (widths x scales)";
}

int mn_cmd_info(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return MN_EXIT_OK;
    }
    if (argc != 2 || argv[1][0] == '-') {
        usage(stderr);
        return MN_EXIT_USAGE;
    }
    const char *path = argv[1];
    mn_model m;
    if (mn_model_open(&m, path)) {
        fprintf(stderr, "mutualnet info: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    mn_safetensors st; /* the iteration is the file's, not the model's */
    bool have_st = mn_st_read(path, &st) == 0;
    const char *iteration = have_st ? mn_st_meta(&st, "iteration") : NULL;
    const mn_config *c = mn_model_config(&m);
    static const char *const tasks[] = {"segmentation", "detection", "classification"};
    printf("checkpoint   %s\n", path);
    printf("task         %s\n", tasks[m.task]);
    if (m.task == MN_TASK_SEGMENTATION)
        printf("model        %s, DeepLab%s, output stride %d, head %d channels%s\n", c->model.backbone,
               strcmp(c->model.decoder, "v3plus") ? "V3" : "V3+", c->model.output_stride, c->model.aspp_channels,
               c->model.slim_head ? " (slimmable)" : " (full width)");
    else if (m.task == MN_TASK_DETECTION)
        printf("model        %s, Faster R-CNN + FPN %d, box head %d, short side %d, long side up to %d\n",
               c->model.backbone, c->det.fpn_channels, c->det.box_hidden, c->det.short_side, c->det.max_side);
    else
        printf("model        %s classifier\n", c->model.backbone);
    /* calibrate writes its copy without the iteration (0) */
    bool known = iteration && strcmp(iteration, "0");
    mn_fixed_info fx;
    if (mn_model_fixed(path, &fx)) fx.fixed = false; /* the file opened above: only its metadata can be odd */
    /* a cut checkpoint runs as one width; it was trained as its source was */
    printf("trained      %s, %s%s iterations of batch %d, seed %llu\n",
           fx.fixed ? fx.source_mode : mode_name(c->mutual.mode), known ? iteration : "",
           known ? "" : "(not recorded in this file)", c->train.batch_size, c->train.seed);
    if (fx.fixed) {
        printf("runs         one fixed configuration: width %.3g at ", (double)fx.width);
        if (m.task == MN_TASK_DETECTION) printf("short side %d (long side up to %d)", fx.h, fx.w);
        else printf("%dx%d", fx.h, fx.w);
        printf(", BN statistics from %s\n", fx.calibrated ? "calibration" : "training (that size was not calibrated)");
        printf("cut from     %s (%s, widths %.3g .. %.3g): only the channels this width reads are stored\n",
               fx.source[0] ? fx.source : "(not recorded)", fx.source_mode, (double)fx.source_width_min,
               (double)fx.source_width_max);
    } else {
        printf("runs         %s\n", c->mutual.mode == MN_MODE_INDEPENDENT
                                       ? "one width, at any input size"
                                       : "adaptive: any width in the range below, at any input size (--width/--size or "
                                         "--budget choose)");
    }
    if (c->mutual.mode == MN_MODE_INDEPENDENT) {
        printf("widths       %.3g\n", (double)c->mutual.width);
    } else {
        printf("widths       %.3g .. %.3g\n", (double)c->mutual.width_min, (double)c->mutual.width_max);
    }
    printf("channels     a layer of C channels at width 1 has make_divisible(C x width, 8) at a width (TF-slim "
           "rounding: the nearest multiple of 8, at least 8, one 8 more when that lost over 10%%)\n");
    printf("scales       ");
    int ns = c->mutual.mode == MN_MODE_MUTUALNET ? c->mutual.n_scales : 1;
    for (int i = 0; i < ns; i++) printf("%s%.3g", i ? ", " : "", (double)c->mutual.scales[i]);
    printf("\ndata         %s (%s), train split %s, val split %s\n", c->data.root, c->data.kind, c->data.train_split,
           c->data.val_split);
    int K = mn_model_num_classes(&m);
    printf("classes      %d:", K);
    for (int k = 0; k < K && k < 40; k++) printf(" %s", mn_model_class_name(&m, k));
    printf(K > 40 ? " ...\n" : "\n");
    const mn_query_table *q = mn_model_table(&m);
    if (q->n == 0) {
        printf("query table  none (not calibrated: mutualnet calibrate --checkpoint %s)\n", path);
    } else {
        printf("query table  %d configurations, %s\n", q->n, q->metric);
        if (m.task == MN_TASK_DETECTION) mn_det_table_print(&m.det, stdout);
        else mn_query_print(q, stdout);
    }
    if (have_st) mn_st_free(&st);
    mn_model_free(&m);
    return MN_EXIT_OK;
}
