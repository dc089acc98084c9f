/* calibrate --latency: each configuration of a query table timed as predict runs one image. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "latency.h"
#include "mn/cls_eval.h"
#include "mn/det_eval.h"
#include "mn/image.h"
#include "mn/seg_eval.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mn_median(double *v /* (n) */, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The value of the first line of /proc/cpuinfo that starts with key, trimmed. */
static bool cpuinfo_value(const char *key, char *out, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, key, strlen(key)) || !colon) continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        size_t len = strcspn(v, "\r\n");
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) len--;
        found = len > 0;
        if (found) snprintf(out, n, "%.*s", (int)len, v);
    }
    fclose(f);
    return found;
}

void mn_machine_name(char *out, size_t n)
{
    /* x86 names the model; ARM boards often only the "Hardware" or "cpu model" */
    static const char *const keys[] = {"model name", "Hardware", "cpu model"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (cpuinfo_value(keys[k], out, n)) return;
    struct utsname u;
    snprintf(out, n, "%s", uname(&u) == 0 ? u.machine : "");
}

/* A deterministic picture with edges and flat regions (gradients under a checkerboard), so that a
 * detector's proposals and NMS see structure rather than noise or a blank image. */
static void fill_synthetic(mn_image *img)
{
    for (int y = 0; y < img->h; y++)
        for (int x = 0; x < img->w; x++) {
            uint8_t *p = img->data + ((size_t)y * img->w + x) * 3;
            bool dark = ((x / 24) + (y / 24)) % 2;
            p[0] = (uint8_t)(255 * x / img->w);
            p[1] = (uint8_t)(255 * y / img->h);
            p[2] = dark ? 40 : 210;
        }
}

/* The image a configuration is timed on: the input it is costed at (mn_query_entry). */
static void timed_image_size(const mn_model *m, const mn_query_entry *e, int *h, int *w)
{
    if (m->task == MN_TASK_DETECTION) { /* the typical image, resized by the detector itself */
        *h = m->det.typical_h > 0 ? m->det.typical_h : e->h;
        *w = m->det.typical_w > 0 ? m->det.typical_w : e->h;
    } else {
        *h = e->h;
        *w = e->w;
    }
}

/* One image through the task's predict, as `mutualnet predict` runs it (no file I/O or drawing).
 * out: scratch for a segmenter's labels (img h x w) or a classifier's probabilities. */
static int predict_once(mn_model *m, mn_tape *t, const mn_image *img, const mn_query_entry *e, void *out)
{
    if (m->task == MN_TASK_SEGMENTATION) return mn_seg_predict(&m->seg, t, img, e->width, e->h, e->w, out);
    if (m->task == MN_TASK_CLASSIFICATION) return mn_cls_predict(&m->cls, t, img, e->width, e->h, e->w, out);
    mn_detection *d = NULL;
    int n = 0;
    int rc = mn_det_predict(&m->det, t, img, e->width, e->h, &d, &n);
    free(d);
    return rc;
}

/* The BN layers of any task model, to put the trained statistics back. */
static int bn_layers(mn_model *m, mn_slim_bn ***bns)
{
    if (m->task == MN_TASK_DETECTION) return mn_det_bn_layers(m->det.net, bns);
    if (m->task == MN_TASK_CLASSIFICATION) return mn_backbone_bn_layers(m->cls.net, bns);
    return mn_seg_bn_layers(m->seg.net, bns);
}

static mn_query_table *table_of(mn_model *m)
{
    return m->task == MN_TASK_DETECTION ? &m->det.table : m->task == MN_TASK_CLASSIFICATION ? &m->cls.table : &m->seg.table;
}

/* The median ms of `runs` predictions of entry e after the warm-ups; v (runs) is scratch. */
static int time_entry(mn_model *m, mn_tape *t, const mn_query_entry *e, int runs, double *v /* (runs) */, double *ms)
{
    int ih, iw;
    timed_image_size(m, e, &ih, &iw);
    mn_image img = {0};
    int rc = mn_image_alloc(&img, iw, ih, 3);
    int num_classes = mn_model_num_classes(m);
    size_t scratch = m->task == MN_TASK_CLASSIFICATION ? sizeof(float) * (size_t)num_classes : (size_t)ih * (size_t)iw;
    void *out = rc ? NULL : malloc(scratch + 1);
    if (!rc && !out) rc = mn_error(MN_ENOMEM, "latency: out of memory for a %dx%d image", ih, iw);
    if (!rc) {
        fill_synthetic(&img);
        rc = mn_model_select(m, e->width, e->h, e->w);
    }
    for (int k = -MN_LATENCY_WARMUP; k < runs && !rc; k++) {
        double t0 = mn_now();
        rc = predict_once(m, t, &img, e, out);
        if (k >= 0) v[k] = 1e3 * (mn_now() - t0);
    }
    if (!rc) *ms = mn_median(v, runs);
    free(out);
    mn_image_free(&img);
    return rc;
}

int mn_latency_time_table(mn_model *m, int runs, const char *machine, const mn_reporter *rep)
{
    mn_query_table *q = table_of(m);
    if (q->n == 0) return mn_error(MN_EINVAL, "latency: the checkpoint has no query table to time (run calibrate first)");
    if (runs < 1) return mn_error(MN_EINVAL, "latency: %d runs per configuration (at least 1)", runs);
    double *v = malloc(sizeof(double) * (size_t)runs);
    if (!v) return mn_error(MN_ENOMEM, "latency: out of memory");
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_progress pg;
    mn_progress_begin(&pg, rep, "latency", q->n, 0, 1);
    int rc = 0;
    for (int i = 0; i < q->n && !rc; i++) {
        mn_query_entry *e = &q->e[i];
        rc = time_entry(m, &t, e, runs, v, &e->ms);
        char extra[96];
        snprintf(extra, sizeof extra, "width %.2f %dx%d %.3f ms", (double)e->width, e->h, e->w, rc ? 0.0 : e->ms);
        mn_progress_update(&pg, i + 1, 0, extra);
    }
    mn_progress_end(&pg);
    mn_tape_free(&t);
    free(v);
    /* the saved weights must keep the statistics they were trained with */
    mn_slim_bn **bns;
    int nb = bn_layers(m, &bns);
    mn_query_load_stats(mn_model_train_stats(m), bns, nb);
    if (rc) {
        for (int i = 0; i < q->n; i++) q->e[i].ms = 0; /* no half-timed table */
        return rc;
    }
    q->timing.threads = omp_get_max_threads();
    q->timing.runs = runs;
    snprintf(q->timing.machine, sizeof q->timing.machine, "%s", machine ? machine : "");
    return 0;
}
