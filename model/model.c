/* One handle over the three task models (mn/model.h): each operation goes to the task's own. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/json.h"
#include "mn/model.h"

int mn_model_task(const char *path, enum mn_task_kind *task)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mn_error(MN_EIO, "%s: cannot open the checkpoint", path);
    unsigned char len8[8];
    uint64_t len = 0;
    int rc = 0;
    if (fread(len8, 1, 8, f) != 8) rc = mn_error(MN_EFORMAT, "%s: not a safetensors file (too short)", path);
    for (int i = 7; !rc && i >= 0; i--) len = len << 8 | len8[i];
    if (!rc && (len < 2 || len > (64u << 20))) rc = mn_error(MN_EFORMAT, "%s: not a safetensors file (header size)", path);
    char *text = rc ? NULL : malloc((size_t)len + 1);
    if (!rc && !text) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    if (!rc && fread(text, 1, (size_t)len, f) != (size_t)len)
        rc = mn_error(MN_EFORMAT, "%s: not a safetensors file (truncated header)", path);
    fclose(f);
    cJSON *root = NULL;
    if (!rc) {
        text[len] = 0;
        rc = mn_json_parse(text, (size_t)len, path, &root);
    }
    if (!rc) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), "task");
        if (!cJSON_IsString(t))
            rc = mn_error(MN_EFORMAT, "%s: metadata \"task\" is missing (not a mutualnet checkpoint?)", path);
        else if (!strcmp(t->valuestring, "segmentation"))
            *task = MN_TASK_SEGMENTATION;
        else if (!strcmp(t->valuestring, "detection"))
            *task = MN_TASK_DETECTION;
        else if (!strcmp(t->valuestring, "classification"))
            *task = MN_TASK_CLASSIFICATION;
        else
            rc = mn_error(MN_EFORMAT, "%s: unknown task \"%s\"", path, t->valuestring);
    }
    cJSON_Delete(root);
    free(text);
    return rc;
}

int mn_model_open(mn_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    int rc = mn_model_task(path, &m->task);
    if (rc) return rc;
    switch (m->task) {
    case MN_TASK_SEGMENTATION: return mn_seg_model_open(&m->seg, path);
    case MN_TASK_DETECTION: return mn_det_model_open(&m->det, path);
    case MN_TASK_CLASSIFICATION: return mn_cls_model_open(&m->cls, path);
    }
    return mn_error(MN_EFORMAT, "%s: unknown task", path);
}

int mn_model_save(const mn_model *m, const char *path, const mn_sgd *opt, int64_t iteration)
{
    switch (m->task) {
    case MN_TASK_SEGMENTATION: return mn_seg_model_save(&m->seg, path, opt, iteration);
    case MN_TASK_DETECTION: return mn_det_model_save(&m->det, path, opt, iteration);
    case MN_TASK_CLASSIFICATION: return mn_cls_model_save(&m->cls, path, opt, iteration);
    }
    return mn_error(MN_EINVAL, "%s: a model of no known task", path);
}

void mn_model_free(mn_model *m)
{
    switch (m->task) {
    case MN_TASK_SEGMENTATION: mn_seg_model_free(&m->seg); break;
    case MN_TASK_DETECTION: mn_det_model_free(&m->det); break;
    case MN_TASK_CLASSIFICATION: mn_cls_model_free(&m->cls); break;
    }
}

const mn_config *mn_model_config(const mn_model *m)
{
    return m->task == MN_TASK_DETECTION ? &m->det.cfg : m->task == MN_TASK_CLASSIFICATION ? &m->cls.cfg : &m->seg.cfg;
}

int mn_model_num_classes(const mn_model *m)
{
    return m->task == MN_TASK_DETECTION        ? m->det.num_classes
           : m->task == MN_TASK_CLASSIFICATION ? m->cls.num_classes
                                               : m->seg.num_classes;
}

const char *mn_model_class_name(const mn_model *m, int k)
{
    if (k < 0 || k >= mn_model_num_classes(m)) return NULL;
    return m->task == MN_TASK_DETECTION        ? m->det.class_names[k]
           : m->task == MN_TASK_CLASSIFICATION ? m->cls.class_names[k]
                                               : m->seg.class_names[k];
}

mn_param_set *mn_model_params(mn_model *m)
{
    return m->task == MN_TASK_DETECTION ? &m->det.ps : m->task == MN_TASK_CLASSIFICATION ? &m->cls.ps : &m->seg.ps;
}

const mn_query_table *mn_model_table(const mn_model *m)
{
    return m->task == MN_TASK_DETECTION        ? &m->det.table
           : m->task == MN_TASK_CLASSIFICATION ? &m->cls.table
                                               : &m->seg.table;
}

const float *mn_model_train_stats(const mn_model *m)
{
    return m->task == MN_TASK_DETECTION        ? m->det.train_stats
           : m->task == MN_TASK_CLASSIFICATION ? m->cls.train_stats
                                               : m->seg.train_stats;
}

int mn_model_select(mn_model *m, float width, int h, int w)
{
    switch (m->task) {
    case MN_TASK_SEGMENTATION: return mn_seg_model_select(&m->seg, width, h, w);
    case MN_TASK_DETECTION: return mn_det_model_select(&m->det, width, h);
    case MN_TASK_CLASSIFICATION: return mn_cls_model_select(&m->cls, width, h, w);
    }
    return mn_error(MN_EINVAL, "a model of no known task");
}

int mn_model_flops(mn_model *m, float width, int h, int w, int64_t *macs)
{
    switch (m->task) {
    case MN_TASK_SEGMENTATION: return mn_seg_flops(m->seg.net, width, h, w, macs, NULL);
    case MN_TASK_DETECTION: return mn_det_model_flops(&m->det, width, h, macs);
    case MN_TASK_CLASSIFICATION: return mn_cls_model_flops(&m->cls, width, h, w, macs);
    }
    return mn_error(MN_EINVAL, "a model of no known task");
}
