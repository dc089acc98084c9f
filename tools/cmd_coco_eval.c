/* mutualnet coco-eval: score a COCO bbox results JSON against ground truth, with pycocotools' numbers. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "mn/coco_eval.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mutualnet coco-eval GT.json RESULTS.json [--per-category] [--strict]\n\n"
            "Scores COCO bbox results ([{image_id, category_id, bbox: [x,y,w,h], score}, ...]) against a COCO\n"
            "instances file exactly as pycocotools' COCOeval does (IoU .50:.05:.95, 101 recall points, areas\n"
            "small/medium/large by the annotation's area, maxDets 1/10/100, crowds ignored) and prints one JSON\n"
            "object: AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl as fractions, -1 where a\n"
            "figure has no ground truth. --per-category adds \"per_category\": [{category_id, name, AP}, ...].\n"
            "Results on images that are not in GT.json are refused (pycocotools refuses them too). Results whose\n"
            "category_id is not a category of GT.json are ignored, as pycocotools ignores them, with a warning on\n"
            "stderr giving their number and ids (a 0..K-1 numbering instead of the file's ids is the usual cause);\n"
            "--strict makes them an error.\n\n"
            "exit status: 0 scored, 1 unreadable or malformed input, 2 usage error\n");
}

/* The shortest of %.15g..%.17g that reads back to the same double, as Python's repr prints it. */
static void print_number(FILE *f, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

static void print_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

/* "N of M results have a category_id that is not a category of GT (ids A, B, ..." (the first 20 ids). */
static void print_skipped(FILE *f, const mn_coco_dets *d, const char *gt_path)
{
    fprintf(f, "%d of %d results have a category_id that is not a category of %s (id%s ", d->n_skipped,
            d->n + d->n_skipped, gt_path, d->n_skipped_cat_ids > 1 ? "s" : "");
    int shown = d->n_skipped_cat_ids < 20 ? d->n_skipped_cat_ids : 20;
    for (int k = 0; k < shown; k++) fprintf(f, "%s%lld", k ? ", " : "", (long long)d->skipped_cat_ids[k]);
    if (shown < d->n_skipped_cat_ids) fprintf(f, " and %d more", d->n_skipped_cat_ids - shown);
}

int mn_cmd_coco_eval(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0;
    bool per_cat = false, strict = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--per-category")) {
            per_cat = true;
        } else if (!strcmp(a, "--strict")) {
            strict = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "mutualnet coco-eval: unknown option %s (see mutualnet coco-eval --help)\n", a);
            return MN_EXIT_USAGE;
        } else if (n_paths < 2) {
            paths[n_paths++] = a;
        } else {
            fprintf(stderr, "mutualnet coco-eval: too many arguments (%s); expected GT.json RESULTS.json\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (n_paths != 2) {
        usage(stderr);
        return MN_EXIT_USAGE;
    }
    mn_coco_gt gt;
    mn_coco_dets dets;
    mn_coco_eval ev;
    if (mn_coco_gt_load(&gt, paths[0])) {
        fprintf(stderr, "mutualnet coco-eval: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    int rc = mn_coco_dets_load(&dets, paths[1], &gt);
    if (!rc && dets.n_skipped) {
        fprintf(stderr, "mutualnet coco-eval: %s%s: ", strict ? "" : "warning: ", paths[1]);
        print_skipped(stderr, &dets, paths[0]);
        if (strict) {
            fprintf(stderr, "; the first is results[%d]): --strict refuses them (without it they are ignored, as "
                    "pycocotools ignores them)\n", dets.first_skipped);
            mn_coco_dets_free(&dets);
            mn_coco_gt_free(&gt);
            return MN_EXIT_FAIL;
        }
        fprintf(stderr, "): they are ignored, as pycocotools ignores them. Results numbered 0..K-1 instead of with "
                "the ground truth's category ids? --strict makes this an error\n");
    }
    if (!rc) {
        rc = mn_coco_evaluate(&ev, &gt, &dets, NULL);
        mn_coco_dets_free(&dets);
    }
    if (rc) {
        fprintf(stderr, "mutualnet coco-eval: %s\n", mn_last_error());
        mn_coco_gt_free(&gt);
        return MN_EXIT_FAIL;
    }
    double stats[MN_COCO_NSTATS];
    mn_coco_summarize(stats, &ev);
    printf("{");
    for (int i = 0; i < MN_COCO_NSTATS; i++) {
        printf("%s\"%s\": ", i ? ", " : "", mn_coco_stat_name(i));
        print_number(stdout, stats[i]);
    }
    if (per_cat) {
        printf(",\n \"per_category\": [");
        for (int k = 0; k < ev.n_cats; k++) {
            printf("%s\n  {\"category_id\": %lld, \"name\": ", k ? "," : "", (long long)gt.cats[k].id);
            print_string(stdout, gt.cats[k].name);
            printf(", \"AP\": ");
            print_number(stdout, mn_coco_category_ap(&ev, k));
            printf("}");
        }
        printf("\n ]");
    }
    printf("}\n");
    mn_coco_eval_free(&ev);
    mn_coco_gt_free(&gt);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "mutualnet coco-eval: cannot write the output\n");
        return MN_EXIT_FAIL;
    }
    return MN_EXIT_OK;
}
