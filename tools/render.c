/* One image's prediction and its titled overlay, as predict writes them (see render.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/viz.h"
#include "render.h"

/* Pointers to the model's class names, as the overlays take them (class_names is not const: C17
 * cannot add const to a pointer to arrays implicitly). */
static void name_ptrs(mn_class_name *class_names /* (n) */, int n, const char **names /* (n) */)
{
    for (int k = 0; k < n; k++) names[k] = class_names[k];
}

int mn_render_seg(mn_seg_model *m, mn_tape *t, const mn_image *img, const mn_render_config *cfg, float alpha,
                  mn_image *labels, mn_image *overlay)
{
    memset(labels, 0, sizeof *labels);
    memset(overlay, 0, sizeof *overlay);
    const char *names[256];
    name_ptrs(m->class_names, m->num_classes, names);
    char title[160];
    snprintf(title, sizeof title, "width %.2f  %dx%d  %.3f GMACs", (double)cfg->width, cfg->h, cfg->w,
             (double)cfg->macs / 1e9);
    int rc = mn_image_alloc(labels, img->w, img->h, 1);
    if (!rc) rc = mn_seg_predict(m, t, img, cfg->width, cfg->h, cfg->w, labels->data);
    if (!rc) rc = mn_viz_seg_overlay_titled(img, labels->data, m->num_classes, names, alpha, title, overlay);
    if (rc) mn_image_free(labels);
    return rc;
}

/* Columns of the overlay's inputs: boxes (n, 4), labels (n) and scores (n) of the detections. */
typedef struct det_arrays {
    float *boxes;
    float *scores;
    int *labels;
} det_arrays;

static void det_arrays_free(det_arrays *a)
{
    free(a->boxes);
    free(a->scores);
    free(a->labels);
}

/* Splits detections into the overlay's arrays; a label past the class list draws as class 0. */
static int det_arrays_fill(det_arrays *a, const mn_detection *d /* (n) */, int n, int num_classes)
{
    a->boxes = malloc(sizeof(float) * 4 * (size_t)(n + 1));
    a->scores = malloc(sizeof(float) * (size_t)(n + 1));
    a->labels = malloc(sizeof(int) * (size_t)(n + 1));
    if (!a->boxes || !a->scores || !a->labels) return mn_error(MN_ENOMEM, "out of memory");
    for (int j = 0; j < n; j++) {
        a->boxes[4 * j] = d[j].x1;
        a->boxes[4 * j + 1] = d[j].y1;
        a->boxes[4 * j + 2] = d[j].x2;
        a->boxes[4 * j + 3] = d[j].y2;
        a->scores[j] = d[j].score;
        a->labels[j] = d[j].label < num_classes ? d[j].label : 0;
    }
    return 0;
}

/* The overlay is as wide as the image: a brief title where the long one would be cut. */
static void det_title(const mn_render_config *cfg, int img_w, int img_h, char *out, size_t size)
{
    char title[160];
    snprintf(title, sizeof title, "width %.2f  short side %d  %.3f GMACs", (double)cfg->width, cfg->h,
             (double)cfg->macs / 1e9);
    if (mn_viz_text_width(title, mn_viz_text_scale(img_w, img_h)) + 8 <= img_w)
        snprintf(out, size, "%s", title);
    else
        snprintf(out, size, "w %.2f  s %d  %.3fG", (double)cfg->width, cfg->h, (double)cfg->macs / 1e9);
}

int mn_render_det(mn_det_model *m, mn_tape *t, const mn_image *img, const mn_render_config *cfg, float thr,
                  mn_detection **dets, int *n, mn_image *overlay)
{
    *dets = NULL;
    *n = 0;
    memset(overlay, 0, sizeof *overlay);
    const char *names[256];
    name_ptrs(m->class_names, m->num_classes, names);
    char title[160];
    det_title(cfg, img->w, img->h, title, sizeof title);
    det_arrays a = {0};
    int rc = mn_det_predict(m, t, img, cfg->width, cfg->h, dets, n);
    if (!rc) rc = det_arrays_fill(&a, *dets, *n, m->num_classes);
    if (!rc) rc = mn_viz_det_overlay(img, a.boxes, a.labels, a.scores, *n, names, thr, title, overlay);
    det_arrays_free(&a);
    if (rc) {
        free(*dets);
        *dets = NULL;
        *n = 0;
    }
    return rc;
}
