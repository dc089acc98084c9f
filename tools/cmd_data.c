/* mutualnet data check: reads every image, label and annotation of both splits of the data set that a
 * training configuration describes, and reports counts per class, image sizes, the class mapping the
 * model will see and every problem found. mn_data_print_classes is the cheap part that training
 * prints at its start. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "commands.h"
#include "report.h"
#include "mn/config.h"
#include "mn/dataset.h"

enum { MAX_LISTED = 50, MAX_SETS = 64, N_VALUES = 256, CHUNK = 64, N_SPLITS = 2 };

static void usage(FILE *f)
{
    fprintf(f, "usage: mutualnet data check --config FILE [--json] [--set KEY=VALUE]...\n\n"
               "Reads every image, label and annotation of both splits (data.train_split, data.val_split) of the\n"
               "data set that a training configuration describes, and reports per split: the image count, counts\n"
               "per class (segmentation: pixels and images holding the class; detection: objects and crowd\n"
               "objects; classification: images), image sizes (min / median / max width and height, distinct\n"
               "sizes), objects per image and empty images; the class mapping as the model sees it (label value\n"
               "or category id -> index -> name), once; and every problem with its reason: an image that does\n"
               "not decode, a label of another size than its image, label values outside the class list,\n"
               "annotations dropped for an unknown image or category id or a box without area (warnings: training\n"
               "skips them), splits that map classes differently. The first %d problems are listed, then a count.\n"
               "--json prints the same content as one JSON object on standard output instead. --set overrides a\n"
               "configuration key, as for train (e.g. --set data.root=/data/camvid).\n"
               "Exit status: 0 no errors (warnings allowed), 1 errors, 2 usage error.\n",
            MAX_LISTED);
}

/* ---- problems ---- */

typedef struct problem {
    bool error;          /* false: a warning (training skips the item) */
    int split;           /* 0 train, 1 val */
    int phase;           /* 0 the split as a whole, 1 an annotation, 2 a sample: the listing order */
    int64_t index;       /* annotation or sample index within the phase */
    char message[1600];
} problem;

/* The first MAX_LISTED problems in (split, phase, index) order, whatever order they arrive in. */
typedef struct problems {
    problem *listed;     /* (MAX_LISTED) */
    int n_listed;
    int64_t errors, warnings;
} problems;

static int cmp_problem(const problem *a, const problem *b)
{
    if (a->split != b->split) return a->split - b->split;
    if (a->phase != b->phase) return a->phase - b->phase;
    return (a->index > b->index) - (a->index < b->index);
}

static void add_problem(problems *p, bool error, int split, int phase, int64_t index, const char *message)
{
    if (error) p->errors++;
    else p->warnings++;
    problem q = {.error = error, .split = split, .phase = phase, .index = index};
    snprintf(q.message, sizeof q.message, "%s", message);
    int at = p->n_listed;
    while (at > 0 && cmp_problem(&q, &p->listed[at - 1]) < 0) at--;
    if (at >= MAX_LISTED) return;
    int keep = p->n_listed < MAX_LISTED ? p->n_listed : MAX_LISTED - 1;
    memmove(&p->listed[at + 1], &p->listed[at], sizeof q * (size_t)(keep - at));
    p->listed[at] = q;
    if (p->n_listed < MAX_LISTED) p->n_listed++;
}

/* ---- the class mapping (shared with train) ---- */

/* Class 0 counts as background (for "empty" images) only when it is named so. */
static bool is_background(const char *name)
{
    return !strcasecmp(name, "background") || !strcasecmp(name, "_background_") || !strcasecmp(name, "bg");
}

/* What a class's value is in the kind's files, for the mapping's header. */
static const char *value_word(const char *kind)
{
    if (!strcmp(kind, "coco")) return "category id";
    if (!strcmp(kind, "cityscapes")) return "label id";
    if (!strcmp(kind, "imagefolder")) return "folder";
    return "label value";
}

/* The folder kind's data.void_index, when it applies. */
static int void_value(const mn_dataset *d, const mn_config *c)
{
    return strcmp(mn_dataset_kind_name(d), "folder") ? -1 : c->data.void_index;
}

static void print_mapping(FILE *f, const mn_dataset *d, const mn_config *c)
{
    const char *kind = mn_dataset_kind_name(d);
    int K = mn_dataset_num_classes(d), vo = void_value(d, c);
    fprintf(f, "classes: %d (%s -> index -> name)\n", K, value_word(kind));
    for (int k = 0; k < K; k++) {
        int v = mn_dataset_class_value(d, k);
        const char *name = mn_dataset_class_name(d, k);
        if (!strcmp(kind, "imagefolder")) fprintf(f, "  %s -> %d %s\n", name, k, name);
        else if (v < 0) fprintf(f, "  (none) -> %d %s\n", k, name);
        else if (v == vo) fprintf(f, "  %d -> ignore (data.void_index; index %d %s gets no pixels)\n", v, k, name);
        else fprintf(f, "  %d -> %d %s\n", v, k, name);
    }
    if (vo >= K) fprintf(f, "  %d -> ignore (data.void_index)\n", vo);
    if (!strcmp(kind, "cityscapes")) fprintf(f, "  every other label id -> ignore\n");
    else if (strcmp(kind, "coco") && strcmp(kind, "imagefolder")) fprintf(f, "  %d -> ignore\n", MN_IGNORE_LABEL);
}

/* Opens a split; with record_issues the dropped annotations are kept for note_annotations. */
static int open_split(mn_dataset **d, const mn_config *c, const char *split, bool record_issues)
{
    mn_dataset_options o;
    mn_config_dataset_options(c, split, &o);
    o.record_issues = record_issues;
    return mn_dataset_open(d, &o);
}

int mn_data_print_classes(FILE *f, const mn_config *c)
{
    mn_dataset *d;
    int rc = open_split(&d, c, c->data.train_split, false);
    if (rc) return rc;
    print_mapping(f, d, c);
    fprintf(f, "split %s: %d images", c->data.train_split, mn_dataset_size(d));
    mn_dataset_close(d);
    if (!open_split(&d, c, c->data.val_split, false)) {
        fprintf(f, "; split %s: %d images", c->data.val_split, mn_dataset_size(d));
        mn_dataset_close(d);
    }
    fputc('\n', f);
    return 0;
}

/* ---- reading one split ---- */

typedef struct split_stats {
    const char *name;
    bool opened;
    int n, read;             /* samples, and those read without error */
    int K;
    int *w, *h, *objects;    /* (read) sizes and usable boxes of each sample read */
    int64_t count[N_VALUES]; /* seg: pixels per label value (255 ignore); det: objects; cls: images */
    int64_t images[N_VALUES];/* images holding the class (seg, det) */
    int64_t crowd[N_VALUES]; /* det: crowd objects */
    int64_t empty;           /* seg: labels all background or ignore; det: no usable box */
    mn_box_stats boxes;
} split_stats;

typedef struct sample_result {
    bool ok, empty;
    int w, h, objects;
    int64_t count[N_VALUES], crowd[N_VALUES];
    char error[1200];
} sample_result;

static void count_label(const mn_sample *s, int K, int bg, sample_result *r)
{
    int64_t n = (int64_t)s->label.w * s->label.h;
    for (int64_t p = 0; p < n; p++) r->count[s->label.data[p]]++;
    r->empty = true;
    for (int v = 0; v < K; v++)
        if (v != bg && r->count[v]) r->empty = false;
    for (int v = K; v < MN_IGNORE_LABEL; v++)
        if (r->count[v] && !r->error[0]) /* the kinds refuse these; a check on the check */
            snprintf(r->error, sizeof r->error, "%s: %lld pixels have label %d, outside the %d classes", s->name,
                     (long long)r->count[v], v, K);
}

static void count_boxes(const mn_sample *s, sample_result *r)
{
    for (int j = 0; j < s->n_boxes; j++) {
        int l = s->boxes[j].label;
        if (l < 0 || l >= N_VALUES) continue;
        if (s->boxes[j].crowd) r->crowd[l]++;
        else r->count[l]++, r->objects++;
    }
    r->empty = r->objects == 0;
}

/* Reads sample i into r: its size and counts, or the reason it failed. */
static void check_sample(mn_dataset *d, int i, enum mn_task_kind task, int K, int bg, sample_result *r)
{
    memset(r, 0, sizeof *r);
    mn_sample s;
    if (mn_dataset_get(d, i, &s)) {
        snprintf(r->error, sizeof r->error, "%s", mn_last_error());
        return;
    }
    r->ok = true;
    r->w = s.image.w;
    r->h = s.image.h;
    if (task == MN_TASK_SEGMENTATION && s.label.data) count_label(&s, K, bg, r);
    else if (task == MN_TASK_DETECTION) count_boxes(&s, r);
    else if (task == MN_TASK_CLASSIFICATION && s.class_id >= 0 && s.class_id < N_VALUES) r->count[s.class_id]++;
    mn_sample_free(&s);
    if (r->error[0]) r->ok = false;
}

static void merge_sample(split_stats *st, const sample_result *r)
{
    st->w[st->read] = r->w;
    st->h[st->read] = r->h;
    st->objects[st->read] = r->objects;
    st->read++;
    st->empty += r->empty;
    for (int v = 0; v < N_VALUES; v++) {
        st->count[v] += r->count[v];
        st->crowd[v] += r->crowd[v];
        st->images[v] += r->count[v] > 0;
    }
}

/* Every sample of d, CHUNK at a time in parallel, merged in sample order. */
static int read_samples(mn_dataset *d, const mn_config *c, int split, split_stats *st, problems *pr,
                        const mn_reporter *rep)
{
    int bg = is_background(mn_dataset_class_name(d, 0)) ? 0 : -1;
    sample_result *res = malloc(sizeof *res * CHUNK);
    st->w = malloc(sizeof *st->w * (size_t)st->n);
    st->h = malloc(sizeof *st->h * (size_t)st->n);
    st->objects = malloc(sizeof *st->objects * (size_t)st->n);
    if (!res || !st->w || !st->h || !st->objects) {
        free(res);
        return mn_error(MN_ENOMEM, "out of memory checking %d images", st->n);
    }
    mn_progress prog;
    char what[32];
    snprintf(what, sizeof what, "check %s", st->name);
    mn_progress_begin(&prog, rep, what, st->n, 0, CHUNK * 8);
    for (int first = 0; first < st->n; first += CHUNK) {
        int m = st->n - first < CHUNK ? st->n - first : CHUNK;
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < m; j++) check_sample(d, first + j, c->task, st->K, bg, &res[j]);
        for (int j = 0; j < m; j++) {
            if (res[j].ok) merge_sample(st, &res[j]);
            else add_problem(pr, true, split, 2, first + j, res[j].error);
        }
        mn_progress_update(&prog, first + m, 1, NULL);
    }
    mn_progress_end(&prog);
    free(res);
    return 0;
}

/* The annotations that opening the split dropped, as warnings. */
static void note_annotations(const mn_dataset *d, int split, problems *pr)
{
    const mn_dataset_issue *is;
    int n;
    mn_dataset_annotation_issues(d, &is, &n);
    char msg[1400];
    for (int k = 0; k < n; k++) {
        snprintf(msg, sizeof msg, "%s: annotations[%d] (id %lld, image %lld): %s", is[k].file, is[k].index,
                 (long long)is[k].id, (long long)is[k].image_id, is[k].reason);
        add_problem(pr, false, split, 1, is[k].index, msg);
    }
}

/* Index k of val must be index k of train: same value and name. */
static void compare_mappings(const mn_dataset *a, const mn_dataset *b, const mn_config *c, problems *pr)
{
    char msg[1200];
    int Ka = mn_dataset_num_classes(a), Kb = mn_dataset_num_classes(b);
    if (Ka != Kb) {
        snprintf(msg, sizeof msg, "split %s has %d classes but split %s has %d: the indices disagree",
                 c->data.train_split, Ka, c->data.val_split, Kb);
        add_problem(pr, true, 1, 0, 0, msg);
        return;
    }
    for (int k = 0; k < Ka; k++) {
        int va = mn_dataset_class_value(a, k), vb = mn_dataset_class_value(b, k);
        const char *na = mn_dataset_class_name(a, k), *nb = mn_dataset_class_name(b, k);
        if (va == vb && !strcmp(na, nb)) continue;
        snprintf(msg, sizeof msg, "index %d is %s %d \"%s\" in split %s but %d \"%s\" in split %s", k,
                 value_word(mn_dataset_kind_name(a)), va, na, c->data.train_split, vb, nb, c->data.val_split);
        add_problem(pr, true, 1, 0, k + 1, msg);
    }
}

static void free_stats(split_stats *st)
{
    free(st->w);
    free(st->h);
    free(st->objects);
}

/* ---- figures ---- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* min, median (the lower middle one for an even count) and max of v (n > 0); sorts v */
static void min_med_max(int *v, int n, int out[3])
{
    qsort(v, (size_t)n, sizeof *v, cmp_int);
    out[0] = v[0];
    out[1] = v[(n - 1) / 2];
    out[2] = v[n - 1];
}

static int distinct_sizes(const split_stats *st)
{
    int64_t *wh = malloc(sizeof *wh * (size_t)(st->read ? st->read : 1));
    if (!wh) return -1;
    for (int i = 0; i < st->read; i++) wh[i] = (int64_t)st->w[i] << 32 | (uint32_t)st->h[i];
    int n = 0;
    for (int i = 0; i < st->read; i++) { /* sizes are few: a linear scan of the ones seen */
        int j = 0;
        while (j < n && wh[j] != wh[i]) j++;
        if (j == n) wh[n++] = wh[i];
    }
    free(wh);
    return n;
}

/* The figures of a split, in the form both reports use. */
typedef struct figures {
    int width[3], height[3], objects[3], sizes;
    int64_t pixels;          /* seg: all pixels read */
} figures;

static void split_figures(split_stats *st, figures *fg)
{
    memset(fg, 0, sizeof *fg);
    if (!st->read) return;
    fg->sizes = distinct_sizes(st);
    for (int i = 0; i < st->read; i++) fg->pixels += (int64_t)st->w[i] * st->h[i];
    min_med_max(st->w, st->read, fg->width);
    min_med_max(st->h, st->read, fg->height);
    min_med_max(st->objects, st->read, fg->objects);
}

/* ---- the text report ---- */

static void print_classes_table(const split_stats *st, const mn_dataset *d, enum mn_task_kind task, int64_t pixels)
{
    if (task == MN_TASK_SEGMENTATION) {
        printf("  %5s  %-20s %12s %7s %7s\n", "index", "name", "pixels", "share", "images");
        for (int k = 0; k < st->K; k++)
            printf("  %5d  %-20s %12lld %6.2f%% %7lld\n", k, mn_dataset_class_name(d, k), (long long)st->count[k],
                   pixels ? 100.0 * (double)st->count[k] / (double)pixels : 0, (long long)st->images[k]);
        int64_t ig = st->count[MN_IGNORE_LABEL];
        printf("  %5s  %-20s %12lld %6.2f%% %7lld\n", "", "(ignore)", (long long)ig,
               pixels ? 100.0 * (double)ig / (double)pixels : 0, (long long)st->images[MN_IGNORE_LABEL]);
    } else if (task == MN_TASK_DETECTION) {
        printf("  %5s  %-20s %8s %7s %7s\n", "index", "name", "objects", "crowd", "images");
        for (int k = 1; k < st->K; k++)
            printf("  %5d  %-20s %8lld %7lld %7lld\n", k, mn_dataset_class_name(d, k), (long long)st->count[k],
                   (long long)st->crowd[k], (long long)st->images[k]);
    } else {
        printf("  %5s  %-20s %7s\n", "index", "name", "images");
        for (int k = 0; k < st->K; k++)
            printf("  %5d  %-20s %7lld\n", k, mn_dataset_class_name(d, k), (long long)st->count[k]);
    }
}

static void print_split(split_stats *st, const mn_dataset *d, enum mn_task_kind task)
{
    if (!st->opened) {
        printf("\nsplit %s: not opened (see problems)\n", st->name);
        return;
    }
    figures fg;
    split_figures(st, &fg);
    printf("\nsplit %s: %d images, %d read\n", st->name, st->n, st->read);
    if (!st->read) return;
    printf("  sizes    width %d / %d / %d, height %d / %d / %d (min / median / max), %d distinct\n", fg.width[0],
           fg.width[1], fg.width[2], fg.height[0], fg.height[1], fg.height[2], fg.sizes);
    if (task == MN_TASK_SEGMENTATION)
        printf("  empty    %lld images (labels all background or ignore)\n", (long long)st->empty);
    if (task == MN_TASK_DETECTION) {
        printf("  boxes    %lld annotations: %lld usable, %lld crowd, %lld dropped (%lld degenerate, "
               "%lld unknown image, %lld unknown category)\n", (long long)st->boxes.annotations,
               (long long)st->boxes.usable, (long long)st->boxes.crowd,
               (long long)(st->boxes.degenerate + st->boxes.unknown_image + st->boxes.unknown_category),
               (long long)st->boxes.degenerate, (long long)st->boxes.unknown_image,
               (long long)st->boxes.unknown_category);
        printf("  objects  %d / %d / %d per image (min / median / max), %lld images with none\n", fg.objects[0],
               fg.objects[1], fg.objects[2], (long long)st->empty);
    }
    print_classes_table(st, d, task, fg.pixels);
}

static void print_problems(const problems *pr, const split_stats *st)
{
    if (!pr->errors && !pr->warnings) {
        printf("\nproblems: none\n");
        return;
    }
    printf("\nproblems: %lld errors, %lld warnings\n", (long long)pr->errors, (long long)pr->warnings);
    for (int i = 0; i < pr->n_listed; i++)
        printf("  %-7s %s: %s\n", pr->listed[i].error ? "error" : "warning", st[pr->listed[i].split].name,
               pr->listed[i].message);
    int64_t rest = pr->errors + pr->warnings - pr->n_listed;
    if (rest > 0) printf("  ... and %lld more\n", (long long)rest);
}

/* ---- the JSON report ---- */

static void add_mmm(cJSON *o, const char *key, const int v[3])
{
    cJSON *m = cJSON_AddObjectToObject(o, key);
    cJSON_AddNumberToObject(m, "min", v[0]);
    cJSON_AddNumberToObject(m, "median", v[1]);
    cJSON_AddNumberToObject(m, "max", v[2]);
}

static cJSON *json_mapping(const mn_dataset *d, const mn_config *c)
{
    cJSON *a = cJSON_CreateArray();
    int vo = void_value(d, c);
    for (int k = 0; k < mn_dataset_num_classes(d); k++) {
        cJSON *e = cJSON_CreateObject();
        int v = mn_dataset_class_value(d, k);
        if (v < 0) cJSON_AddNullToObject(e, "value");
        else cJSON_AddNumberToObject(e, "value", v);
        cJSON_AddNumberToObject(e, "index", k);
        cJSON_AddStringToObject(e, "name", mn_dataset_class_name(d, k));
        cJSON_AddBoolToObject(e, "ignored", v >= 0 && v == vo);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static cJSON *json_classes(const split_stats *st, const mn_dataset *d, enum mn_task_kind task)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = task == MN_TASK_DETECTION ? 1 : 0; k < st->K; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", k);
        cJSON_AddStringToObject(e, "name", mn_dataset_class_name(d, k));
        const char *what = task == MN_TASK_SEGMENTATION ? "pixels" : task == MN_TASK_DETECTION ? "objects" : "images";
        cJSON_AddNumberToObject(e, what, (double)st->count[k]);
        if (task == MN_TASK_DETECTION) cJSON_AddNumberToObject(e, "crowd", (double)st->crowd[k]);
        if (task != MN_TASK_CLASSIFICATION) cJSON_AddNumberToObject(e, "images", (double)st->images[k]);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static void json_boxes(cJSON *o, const mn_box_stats *b)
{
    cJSON *m = cJSON_AddObjectToObject(o, "annotations");
    cJSON_AddNumberToObject(m, "total", (double)b->annotations);
    cJSON_AddNumberToObject(m, "usable", (double)b->usable);
    cJSON_AddNumberToObject(m, "crowd", (double)b->crowd);
    cJSON_AddNumberToObject(m, "degenerate", (double)b->degenerate);
    cJSON_AddNumberToObject(m, "unknown_image", (double)b->unknown_image);
    cJSON_AddNumberToObject(m, "unknown_category", (double)b->unknown_category);
}

static cJSON *json_split(split_stats *st, const mn_dataset *d, enum mn_task_kind task)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "opened", st->opened);
    cJSON_AddNumberToObject(o, "images", st->n);
    cJSON_AddNumberToObject(o, "read", st->read);
    if (!st->opened || !st->read) return o;
    figures fg;
    split_figures(st, &fg);
    add_mmm(o, "width", fg.width);
    add_mmm(o, "height", fg.height);
    cJSON_AddNumberToObject(o, "distinct_sizes", fg.sizes);
    if (task == MN_TASK_SEGMENTATION) {
        cJSON_AddNumberToObject(o, "pixels", (double)fg.pixels);
        cJSON_AddNumberToObject(o, "ignore_pixels", (double)st->count[MN_IGNORE_LABEL]);
        cJSON_AddNumberToObject(o, "empty_images", (double)st->empty);
    } else if (task == MN_TASK_DETECTION) {
        add_mmm(o, "objects_per_image", fg.objects);
        cJSON_AddNumberToObject(o, "images_without_objects", (double)st->empty);
        json_boxes(o, &st->boxes);
    }
    cJSON_AddItemToObject(o, "classes", json_classes(st, d, task));
    return o;
}

static cJSON *json_problems(const problems *pr, const split_stats *st)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < pr->n_listed; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "severity", pr->listed[i].error ? "error" : "warning");
        cJSON_AddStringToObject(e, "split", st[pr->listed[i].split].name);
        cJSON_AddStringToObject(e, "message", pr->listed[i].message);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static int print_json(const mn_config *c, const char *cfg_path, split_stats *st, mn_dataset *const *d,
                      const problems *pr)
{
    static const char *const tasks[] = {"segmentation", "detection", "classification"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "config", cfg_path);
    cJSON_AddStringToObject(o, "task", tasks[c->task]);
    cJSON_AddStringToObject(o, "kind", c->data.kind);
    cJSON_AddStringToObject(o, "root", c->data.root);
    const mn_dataset *first = d[0] ? d[0] : d[1];
    if (first) cJSON_AddItemToObject(o, "class_mapping", json_mapping(first, c));
    cJSON *splits = cJSON_AddObjectToObject(o, "splits");
    for (int s = 0; s < N_SPLITS; s++) cJSON_AddItemToObject(splits, st[s].name, json_split(&st[s], d[s], c->task));
    cJSON_AddNumberToObject(o, "errors", (double)pr->errors);
    cJSON_AddNumberToObject(o, "warnings", (double)pr->warnings);
    cJSON_AddItemToObject(o, "problems", json_problems(pr, st));
    cJSON_AddNumberToObject(o, "problems_not_listed", (double)(pr->errors + pr->warnings - pr->n_listed));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return mn_error(MN_ENOMEM, "out of memory writing the report");
    puts(text);
    free(text);
    return 0;
}

/* ---- the command ---- */

/* Opens split s and reads all of it into st[s]; a split that does not open is one error. */
static int check_split(const mn_config *c, int s, split_stats *st, mn_dataset **d, problems *pr,
                       const mn_reporter *rep)
{
    st->name = s ? c->data.val_split : c->data.train_split;
    if (open_split(d, c, st->name, true)) {
        add_problem(pr, true, s, 0, 0, mn_last_error());
        return 0;
    }
    st->opened = true;
    st->n = mn_dataset_size(*d);
    st->K = mn_dataset_num_classes(*d);
    if (c->task == MN_TASK_DETECTION) mn_dataset_box_stats(*d, &st->boxes); /* zeroed for kinds without boxes */
    note_annotations(*d, s, pr);
    return read_samples(*d, c, s, st, pr, rep);
}

static int run_check(const mn_config *c, const char *cfg_path, bool json)
{
    split_stats st[N_SPLITS] = {{0}};
    mn_dataset *d[N_SPLITS] = {NULL, NULL};
    problems pr = {.listed = calloc(MAX_LISTED, sizeof(problem))};
    tool_report tr;
    mn_reporter rep = tool_reporter(&tr);
    int rc = pr.listed ? 0 : mn_error(MN_ENOMEM, "out of memory");
    for (int s = 0; !rc && s < N_SPLITS; s++) rc = check_split(c, s, &st[s], &d[s], &pr, &rep);
    if (!rc && d[0] && d[1]) compare_mappings(d[0], d[1], c, &pr);
    if (!rc && json) {
        rc = print_json(c, cfg_path, st, d, &pr);
    } else if (!rc) {
        printf("data set: %s, %s kind, root %s (%s)\n", cfg_path, c->data.kind, c->data.root,
               c->task == MN_TASK_SEGMENTATION ? "segmentation" : c->task == MN_TASK_DETECTION ? "detection"
                                                                                          : "classification");
        if (d[0] || d[1]) print_mapping(stdout, d[0] ? d[0] : d[1], c);
        for (int s = 0; s < N_SPLITS; s++) print_split(&st[s], d[s], c->task);
        print_problems(&pr, st);
    }
    for (int s = 0; s < N_SPLITS; s++) {
        free_stats(&st[s]);
        mn_dataset_close(d[s]);
    }
    free(pr.listed);
    if (rc) {
        fprintf(stderr, "mutualnet data check: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    return pr.errors ? MN_EXIT_FAIL : MN_EXIT_OK;
}

static bool is_help(const char *a) { return !strcmp(a, "--help") || !strcmp(a, "-h"); }

int mn_cmd_data(int argc, char **argv)
{
    if (argc >= 2 && is_help(argv[1])) {
        usage(stdout);
        return MN_EXIT_OK;
    }
    if (argc < 2 || strcmp(argv[1], "check")) {
        fprintf(stderr, "mutualnet data: expected the subcommand check\n\n");
        usage(stderr);
        return MN_EXIT_USAGE;
    }
    const char *cfg_path = NULL, *sets[MAX_SETS];
    int n_sets = 0;
    bool json = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a)) {
            usage(stdout);
            return MN_EXIT_OK;
        } else if (!strcmp(a, "--config")) {
            if (!(cfg_path = mn_arg_value("data check", argc, argv, &i))) return MN_EXIT_USAGE;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--set")) {
            if (!mn_arg_set("data check", argc, argv, &i, sets, &n_sets, MAX_SETS)) return MN_EXIT_USAGE;
        } else {
            fprintf(stderr, "mutualnet data check: unknown option %s (see mutualnet data --help)\n", a);
            return MN_EXIT_USAGE;
        }
    }
    if (!cfg_path) {
        fprintf(stderr, "mutualnet data check: --config FILE is required\n");
        return MN_EXIT_USAGE;
    }
    mn_config c;
    mn_config_default(&c);
    if (mn_config_load_with(cfg_path, sets, n_sets, &c)) {
        fprintf(stderr, "mutualnet data check: %s\n", mn_last_error());
        return MN_EXIT_FAIL;
    }
    return run_check(&c, cfg_path, json);
}
