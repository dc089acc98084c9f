/* mutualnet miou: score folders of predicted index PNGs against ground-truth index PNGs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mn/miou.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mutualnet miou --gt DIR --pred DIR --num-classes N [--ignore V]\n\n"
            "Scores every DIR/*.png of --gt against the file of the same name in --pred (8-bit single-channel\n"
            "PNGs of class indices) and prints one JSON object:\n"
            "  mIoU  mean IoU over the classes present in the ground truth or the predictions\n"
            "  aAcc  overall pixel accuracy;  mAcc  mean per-class accuracy over classes with ground truth\n"
            "  IoU, Acc  per-class lists, null where a class never occurs;  images  pairs scored\n"
            "Fractions in [0, 1], following mmsegmentation. Ground-truth pixels equal to V (default 255; -1 for\n"
            "none) are skipped; predicted values >= N count as wrong. A missing or extra file, different image\n"
            "sizes or a ground-truth value that is neither a class nor V is an error.\n\n"
            "exit status: 0 scored, 1 unreadable or mismatched input, 2 usage error\n");
}

/* The shortest of %.15g..%.17g that reads back to the same double; NaN (undefined) as null. */
static void print_number(double v)
{
    if (isnan(v)) {
        fputs("null", stdout);
        return;
    }
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, stdout);
}

static void print_list(const char *key, const double *v, int n)
{
    printf(", \"%s\": [", key);
    for (int k = 0; k < n; k++) {
        if (k) fputs(", ", stdout);
        print_number(v[k]);
    }
    fputs("]", stdout);
}

int mn_cmd_miou(int argc, char **argv)
{
    const char *cmd = "miou", *gt = NULL, *pred = NULL;
    int n = 0, ignore = 255;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--gt")) {
            if (!(gt = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--pred")) {
            if (!(pred = mn_arg_value(cmd, argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--num-classes")) {
            /* label PNGs are 8-bit: at most 256 classes */
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_int(cmd, a, v, 1, 256, &n)) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--ignore")) {
            if (!(v = mn_arg_value(cmd, argc, argv, &i)) || !mn_arg_int(cmd, a, v, -1, 255, &ignore))
                return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet miou: unknown argument %s (see mutualnet miou --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!gt || !pred || !n) {
        fprintf(stderr, "mutualnet miou: --gt, --pred and --num-classes are required\n\n");
        usage(stderr);
        return MN_EXIT_USAGE;
    }
    mn_confusion c;
    mn_miou_result r;
    int files = 0;
    int rc = mn_confusion_init(&c, n);
    if (!rc) rc = mn_miou_score_dirs(&c, gt, pred, ignore, &files);
    if (!rc) rc = mn_miou_compute(&r, &c);
    mn_confusion_free(&c);
    if (rc) {
        fprintf(stderr, "mutualnet miou: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    fputs("{\"mIoU\": ", stdout);
    print_number(r.miou);
    fputs(", \"aAcc\": ", stdout);
    print_number(r.aacc);
    fputs(", \"mAcc\": ", stdout);
    print_number(r.macc);
    print_list("IoU", r.iou, r.n);
    print_list("Acc", r.acc, r.n);
    printf(", \"images\": %d}\n", files);
    mn_miou_result_free(&r);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "mutualnet miou: cannot write the output\n");
        return MN_EXIT_FAIL;
    }
    return MN_EXIT_OK;
}
