/* mutualnet eval: a checkpoint's validation scores at one configuration. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mn/seg_eval.h"
#include "select.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet eval --checkpoint FILE [--budget MACS | --width W --size HxW] [--split NAME]\n"
               "                      [--max-images N]\n\n"
               "Scores a segmentation checkpoint on a split of its data set (default: the configured validation\n"
               "split) and prints JSON {\"mIoU\", \"aAcc\", \"mAcc\", \"IoU\": [per class, null if absent], \"width\",\n"
               "\"size\", \"macs\"}. --budget (e.g. 1.5G) picks the most accurate calibrated configuration that fits;\n"
               "--width/--size pick one directly (default: full width at data.eval_size).\n");
}

int mn_cmd_eval(int argc, char **argv)
{
    const char *ckpt = NULL, *split = NULL;
    int max_images = 0;
    mn_choice ch = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int took = mn_choice_arg("eval", &ch, argc, argv, &i);
        if (took < 0) return MN_EXIT_USAGE;
        if (took) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--checkpoint")) {
            if (!(ckpt = mn_arg_value("eval", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--split")) {
            if (!(split = mn_arg_value("eval", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--max-images")) {
            if (!(v = mn_arg_value("eval", argc, argv, &i)) || !mn_arg_int("eval", a, v, 1, 1 << 30, &max_images))
                return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet eval: unknown option %s (see mutualnet eval --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "mutualnet eval: --checkpoint FILE is required\n");
        return MN_EXIT_USAGE;
    }
    mn_seg_model m;
    if (mn_seg_model_open(&m, ckpt)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    float width;
    int h, w, rc = MN_EXIT_FAIL;
    int64_t macs;
    mn_dataset *d = NULL;
    mn_seg_scores s;
    if (mn_choice_apply("eval", &ch, &m, &width, &h, &w, &macs)) goto done;
    const mn_config *c = &m.cfg;
    mn_dataset_options o = {.kind = c->data.kind, .root = c->data.root, .split = split ? split : c->data.val_split,
                            .images = c->data.images, .labels = c->data.labels, .classes = c->data.classes,
                            .annotations = c->data.annotations, .void_index = c->data.void_index};
    if (mn_dataset_open(&d, &o) || mn_seg_evaluate(&m, d, width, h, w, max_images, true, &s)) {
        fprintf(stderr, "mutualnet eval: %s\n", mn_last_error());
        goto done;
    }
    printf("{\"mIoU\": %.6f, \"aAcc\": %.6f, \"mAcc\": %.6f, \"IoU\": [", s.miou, s.aacc, s.macc);
    for (int k = 0; k < s.num_classes; k++) {
        if (isnan(s.iou[k])) printf("%snull", k ? ", " : "");
        else printf("%s%.6f", k ? ", " : "", s.iou[k]);
    }
    printf("], \"width\": %.4f, \"size\": [%d, %d], \"macs\": %lld}\n", (double)width, h, w, (long long)macs);
    rc = MN_EXIT_OK;
done:
    mn_dataset_close(d);
    mn_seg_model_free(&m);
    return rc;
}
