#include <stdlib.h>
#include <string.h>

#include "mn/cls_model.h"
#include "mn/det_model.h"
#include "mn/image.h"
#include "mn/seg_model.h"
#include "tiny_models.h"

static void small_config(mn_config *c, enum mn_task_kind task)
{
    mn_config_default(c);
    c->task = task;
    const char *kind = task == MN_TASK_DETECTION ? "coco" : task == MN_TASK_CLASSIFICATION ? "imagefolder" : "folder";
    strcpy(c->data.kind, kind);
    c->model.aspp_channels = 16;
    c->model.low_level_channels = 16;
    c->det.fpn_channels = 16;
    c->det.box_hidden = 32;
    c->det.short_side = 64;
    c->det.max_side = 96;
    c->data.eval_size[0] = c->data.eval_size[1] = 64;
}

void tm_entries(enum mn_task_kind task, tm_entry *e /* (TM_ENTRIES) */)
{
    bool det = task == MN_TASK_DETECTION;
    const float widths[TM_ENTRIES] = {0.35f, 0.7f, 1.0f};
    const int sides[TM_ENTRIES] = {32, 48, 64};
    for (int k = 0; k < TM_ENTRIES; k++) e[k] = (tm_entry){widths[k], sides[k], det ? 96 : sides[k], 0};
}

/* Which parameters wobble gets at. */
enum wobble_part { CLASSIFIER_WEIGHTS, CLASSIFIER, ALL_TRAINED };

/* Adds a deterministic wobble (uniform, amplitude amp) to part of the parameters: untrained, the
 * zero or tiny initialisation of the classifying layers, or activations dying out in an unscaled
 * network, give every class the same score, and ties would make the tests weaker. Which part
 * works was found per task by looking at the outputs. */
static void wobble(mn_param_set *ps, enum wobble_part part, float amp)
{
    uint32_t x = 12345;
    for (int i = 0; i < ps->n; i++) {
        const mn_param *p = ps->items[i];
        const char *dot = strrchr(p->name, '.');
        bool head = strstr(p->name, "classifier") || strstr(p->name, "cls_");
        if (p->flags & MN_PARAM_BUFFER) continue;
        if (part != ALL_TRAINED && !head) continue;
        if (part == CLASSIFIER_WEIGHTS && (!dot || strcmp(dot, ".weight"))) continue;
        const mn_tensor *v = &p->var.val;
        int64_t n = mn_tensor_numel(v);
        for (int64_t k = 0; k < n; k++) {
            x = x * 1664525u + 1013904223u;
            v->data[k] += amp * ((float)(x >> 8) / 16777216.0f - 0.5f);
        }
    }
}

/* The entries, each with BN statistics of its own (the trained ones scaled by 1 + k / 4), so that
 * a caller that loads the wrong entry's statistics, or none, gets other outputs. */
static int add_table(mn_query_table *q, const float *stats, tm_entry *e /* (TM_ENTRIES) */)
{
    float *own = malloc(sizeof(float) * (size_t)q->n_stats);
    if (!own) return mn_error(MN_ENOMEM, "out of memory");
    int rc = 0;
    for (int k = 0; k < TM_ENTRIES && !rc; k++) {
        for (int64_t i = 0; i < q->n_stats; i++) own[i] = stats[i] * (1.0f + 0.25f * (float)k);
        rc = mn_query_add(q, e[k].width, e[k].h, e[k].w, e[k].macs, 0.2 + 0.1 * k, own);
        if (!rc) q->e[q->n - 1].ms = TM_MS(k);
    }
    q->timing.threads = 1;
    q->timing.runs = 1;
    free(own);
    return rc;
}

int tm_save(const char *path, enum mn_task_kind task, bool with_table, tm_entry *out /* (TM_ENTRIES) or NULL */)
{
    mn_config c;
    small_config(&c, task);
    tm_entry e[TM_ENTRIES];
    tm_entries(task, e);
    int rc = 0;
    if (task == MN_TASK_SEGMENTATION) {
        const char *names[3] = {"background", "thing", "other thing"};
        mn_seg_model m;
        if ((rc = mn_seg_model_create(&m, &c, 3, names, 1))) return rc;
        wobble(&m.ps, CLASSIFIER_WEIGHTS, 1.0f);
        for (int k = 0; k < TM_ENTRIES && !rc; k++) rc = mn_seg_flops(m.net, e[k].width, e[k].h, e[k].w, &e[k].macs, NULL);
        if (!rc && with_table) rc = add_table(&m.table, m.train_stats, e);
        if (!rc) rc = mn_seg_model_save(&m, path, NULL, 0);
        mn_seg_model_free(&m);
    } else if (task == MN_TASK_DETECTION) {
        const char *names[3] = {"background", "cat", "dog"};
        int ids[3] = {0, 17, 18};
        mn_det_model m;
        if ((rc = mn_det_model_create(&m, &c, 3, names, ids, 48, 64, 1))) return rc;
        wobble(&m.ps, CLASSIFIER, 1.0f);
        for (int k = 0; k < TM_ENTRIES && !rc; k++) rc = mn_det_model_flops(&m, e[k].width, e[k].h, &e[k].macs);
        if (!rc && with_table) rc = add_table(&m.table, m.train_stats, e);
        if (!rc) rc = mn_det_model_save(&m, path, NULL, 0);
        mn_det_model_free(&m);
    } else {
        const char *names[4] = {"circle", "square", "triangle", "star"};
        mn_cls_model m;
        if ((rc = mn_cls_model_create(&m, &c, 4, names, 1))) return rc;
        wobble(&m.ps, ALL_TRAINED, 0.2f);
        for (int k = 0; k < TM_ENTRIES && !rc; k++) rc = mn_cls_model_flops(&m, e[k].width, e[k].h, e[k].w, &e[k].macs);
        if (!rc && with_table) rc = add_table(&m.table, m.train_stats, e);
        if (!rc) rc = mn_cls_model_save(&m, path, NULL, 0);
        mn_cls_model_free(&m);
    }
    if (!rc && out) memcpy(out, e, sizeof e);
    return rc;
}

int tm_write_image(const char *path, int w, int h, uint8_t seed)
{
    mn_image img;
    int rc = mn_image_alloc(&img, w, h, 3);
    if (rc) return rc;
    /* smooth blobs over a gradient, so that resizing matters and classes vary across the image */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.data + ((size_t)y * w + x) * 3;
            int dx = x - w / 3, dy = y - h / 2, in = dx * dx + dy * dy < (w * h) / 12;
            p[0] = (uint8_t)(in ? 220 : x * 255 / w);
            p[1] = (uint8_t)(in ? 40 + seed : y * 255 / h);
            p[2] = (uint8_t)((x * 7 + y * 13 + seed) & 0xff);
        }
    rc = mn_image_save(path, &img, 0);
    mn_image_free(&img);
    return rc;
}
