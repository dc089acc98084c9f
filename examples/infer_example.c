/* Runs a mutualnet checkpoint of any task on one image through the installed library:
 *
 *     cc infer_example.c $(pkg-config --cflags --libs mutualnet) -o infer_example
 *     ./infer_example CHECKPOINT IMAGE [--budget MACS | --budget-ms MS | --width W --size HxW]
 *
 * It prints the library's version, the model, its query table, the configuration chosen and the
 * prediction: pixels per class for a segmenter, the boxes scoring at least 0.5 for a detector,
 * the five most probable classes for a classifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mn/infer.h>

static const char *task_name(enum mn_infer_task t)
{
    return t == MN_INFER_DETECTION ? "detection" : t == MN_INFER_CLASSIFICATION ? "classification" : "segmentation";
}

static void print_config(const char *what, const mn_infer_config *c)
{
    printf("%s width %.2f, input %dx%d, %lld MACs", what, (double)c->width, c->h, c->w, (long long)c->macs);
    if (c->score >= 0) printf(", score %.3f", c->score);
    if (c->ms > 0) printf(", %.3f ms", c->ms);
    printf("\n");
}

static int segment(mn_infer *inf, const uint8_t *rgb, int h, int w)
{
    uint8_t *labels = malloc((size_t)h * (size_t)w);
    int K = mn_infer_num_classes(inf);
    long *count = calloc((size_t)K, sizeof *count);
    int rc = labels && count ? mn_infer_segment(inf, rgb, h, w, 0, labels) : MN_ENOMEM;
    for (long i = 0; !rc && i < (long)h * w; i++) count[labels[i]]++;
    for (int k = 0; !rc && k < K; k++)
        if (count[k]) printf("class %d %s: %ld pixels\n", k, mn_infer_class_name(inf, k), count[k]);
    free(labels);
    free(count);
    return rc;
}

static int detect(mn_infer *inf, const uint8_t *rgb, int h, int w)
{
    mn_infer_box boxes[100];
    int n;
    int rc = mn_infer_detect(inf, rgb, h, w, 0, 0.5f, boxes, 100, &n);
    if (!rc) printf("%d boxes at score >= 0.5\n", n);
    for (int i = 0; !rc && i < n; i++)
        printf("box %s (%d) %.4f: %.2f %.2f %.2f %.2f\n", boxes[i].class_name, boxes[i].class_index,
               (double)boxes[i].score, (double)boxes[i].x1, (double)boxes[i].y1, (double)boxes[i].x2,
               (double)boxes[i].y2);
    return rc;
}

static int classify(mn_infer *inf, const uint8_t *rgb, int h, int w)
{
    mn_infer_class top[5];
    int n;
    int rc = mn_infer_classify(inf, rgb, h, w, 0, top, 5, &n);
    for (int r = 0; !rc && r < n; r++)
        printf("top %d: %s (%d) %.6f\n", r + 1, top[r].class_name, top[r].class_index, (double)top[r].probability);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 5 && argc != 7) {
        fprintf(stderr, "usage: infer_example CHECKPOINT IMAGE [--budget MACS | --budget-ms MS | --width W --size HxW]\n");
        return 2;
    }
    printf("mutualnet API %d (header %d)\n", mn_api_version(), MN_API_VERSION);
    char err[512];
    mn_infer *inf = mn_infer_open(argv[1], err, sizeof err);
    if (!inf) {
        fprintf(stderr, "infer_example: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (argc == 5 && !strcmp(argv[3], "--budget")) {
        rc = mn_infer_select_budget(inf, strtod(argv[4], NULL));
    } else if (argc == 5 && !strcmp(argv[3], "--budget-ms")) {
        rc = mn_infer_select_budget_ms(inf, strtod(argv[4], NULL));
    } else if (argc == 7 && !strcmp(argv[3], "--width") && !strcmp(argv[5], "--size")) {
        int h = 0, w = 0;
        if (sscanf(argv[6], "%dx%d", &h, &w) < 1) h = w = 0;
        rc = mn_infer_select(inf, (float)strtod(argv[4], NULL), h, w ? w : h);
    } else if (argc != 3) {
        fprintf(stderr, "usage: infer_example CHECKPOINT IMAGE [--budget MACS | --budget-ms MS | --width W --size HxW]\n");
        mn_infer_close(inf);
        return 2;
    }
    printf("task %s, %d classes\n", task_name(mn_infer_task(inf)), mn_infer_num_classes(inf));
    for (int i = 0; i < mn_infer_table_size(inf); i++) {
        mn_infer_config e;
        mn_infer_table_entry(inf, i, &e);
        print_config("table:", &e);
    }
    mn_infer_config c;
    mn_infer_selected(inf, &c);
    print_config("selected:", &c);

    int h = 0, w = 0;
    uint8_t *rgb = rc ? NULL : mn_infer_image_load(argv[2], &h, &w, err, sizeof err);
    if (!rc && !rgb) {
        fprintf(stderr, "infer_example: %s\n", err);
        mn_infer_close(inf);
        return 1;
    }
    if (!rc) {
        printf("image %dx%d\n", w, h);
        switch (mn_infer_task(inf)) {
        case MN_INFER_SEGMENTATION: rc = segment(inf, rgb, h, w); break;
        case MN_INFER_DETECTION: rc = detect(inf, rgb, h, w); break;
        case MN_INFER_CLASSIFICATION: rc = classify(inf, rgb, h, w); break;
        }
    }
    if (rc) fprintf(stderr, "infer_example: %s\n", mn_infer_error(inf));
    mn_infer_image_free(rgb);
    mn_infer_close(inf);
    return rc ? 1 : 0;
}
