/* A checkpoint of one configuration: the slimmable model cut down to the channels one width
 * reads, saved as an ordinary checkpoint of a one-width ("independent") model at that width and
 * input size. Loading it builds the full-width layers and fills what was cut with zeros, which
 * that width never reads, so eval, predict and calibrate run it unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/model.h"
#include "model/internal.h"

static int bn_layers(mn_model *m, mn_slim_bn ***bns)
{
    switch (m->task) {
    case MN_TASK_SEGMENTATION: return mn_seg_bn_layers(m->seg.net, bns);
    case MN_TASK_DETECTION: return mn_det_bn_layers(m->det.net, bns);
    case MN_TASK_CLASSIFICATION: return mn_backbone_bn_layers(m->cls.net, bns);
    }
    return 0;
}

static const char *mode_name(enum mn_mode m)
{
    return m == MN_MODE_USNET ? "usnet" : m == MN_MODE_INDEPENDENT ? "independent" : "mutualnet";
}

/* What the file says about where it came from, for `mutualnet info`. */
static char *fixed_json(const mn_config *src, float width, int h, int w, bool calibrated, const char *source)
{
    cJSON *o = cJSON_CreateObject();
    bool one = src->mutual.mode == MN_MODE_INDEPENDENT;
    cJSON_AddNumberToObject(o, "width", width);
    cJSON_AddNumberToObject(o, "h", h);
    cJSON_AddNumberToObject(o, "w", w);
    cJSON_AddBoolToObject(o, "calibrated", calibrated);
    cJSON_AddStringToObject(o, "source", source ? source : "");
    cJSON_AddStringToObject(o, "source_mode", mode_name(src->mutual.mode));
    cJSON_AddNumberToObject(o, "source_width_min", one ? src->mutual.width : src->mutual.width_min);
    cJSON_AddNumberToObject(o, "source_width_max", one ? src->mutual.width : src->mutual.width_max);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int mn_model_save_fixed(mn_model *m, const char *path, float width, int h, int w, const int64_t (*keep)[MN_MAX_DIMS],
                        const char *source)
{
    const mn_query_table *table = mn_model_table(m);
    int64_t macs = 0;
    int rc = mn_model_select(m, width, h, w);
    if (!rc) rc = mn_model_flops(m, width, h, w, &macs);
    if (rc) return rc;
    mn_slim_bn **bns;
    int nb = bn_layers(m, &bns);
    float *stats = malloc(sizeof(float) * (size_t)(table->n_stats + 1));
    mn_config cfg = *mn_model_config(m);
    /* the table keys a detector's entries by (short side, max side) */
    int key_w = m->task == MN_TASK_DETECTION ? cfg.det.max_side : w;
    int k = mn_query_find(table, width, h, key_w);
    char *info = fixed_json(&cfg, width, h, key_w, k >= 0, source);
    mn_query_table one;
    mn_query_init(&one, table->metric);
    if (!stats || !info) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    if (!rc) {
        mn_query_save_stats(stats, bns, nb);
        one.n_stats = table->n_stats;
        /* an uncalibrated configuration has no validation score: 0, and "calibrated": false says so */
        rc = mn_query_add(&one, width, h, key_w, macs, k >= 0 ? table->e[k].score : 0.0, stats);
    }
    if (!rc) {
        cfg.mutual.mode = MN_MODE_INDEPENDENT;
        cfg.mutual.width = width;
        if (m->task == MN_TASK_DETECTION) cfg.det.short_side = h;
        else cfg.data.eval_size[0] = h, cfg.data.eval_size[1] = w;
        mdl_cut cut = {keep, info};
        switch (m->task) {
        case MN_TASK_SEGMENTATION: {
            mn_seg_model c = m->seg;
            c.cfg = cfg, c.table = one;
            rc = mdl_seg_save(&c, path, NULL, 0, &cut);
            break;
        }
        case MN_TASK_DETECTION: {
            mn_det_model c = m->det;
            c.cfg = cfg, c.table = one;
            rc = mdl_det_save(&c, path, NULL, 0, &cut);
            break;
        }
        case MN_TASK_CLASSIFICATION: {
            mn_cls_model c = m->cls;
            c.cfg = cfg, c.table = one;
            rc = mdl_cls_save(&c, path, NULL, 0, &cut);
            break;
        }
        }
    }
    mn_query_free(&one);
    free(stats);
    free(info);
    return rc;
}

int mn_model_fixed(const char *path, mn_fixed_info *out)
{
    memset(out, 0, sizeof *out);
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    const char *s = mn_st_meta(&st, "fixed_configuration");
    cJSON *o = s ? cJSON_Parse(s) : NULL;
    if (s && !cJSON_IsObject(o)) rc = mn_error(MN_EFORMAT, "%s: metadata \"fixed_configuration\" is not an object", path);
    if (o && !rc) {
        out->fixed = true;
        const cJSON *v;
        if ((v = cJSON_GetObjectItem(o, "width")) && cJSON_IsNumber(v)) out->width = (float)v->valuedouble;
        if ((v = cJSON_GetObjectItem(o, "h")) && cJSON_IsNumber(v)) out->h = v->valueint;
        if ((v = cJSON_GetObjectItem(o, "w")) && cJSON_IsNumber(v)) out->w = v->valueint;
        if ((v = cJSON_GetObjectItem(o, "calibrated"))) out->calibrated = cJSON_IsTrue(v);
        if ((v = cJSON_GetObjectItem(o, "source")) && cJSON_IsString(v))
            snprintf(out->source, sizeof out->source, "%s", v->valuestring);
        if ((v = cJSON_GetObjectItem(o, "source_mode")) && cJSON_IsString(v))
            snprintf(out->source_mode, sizeof out->source_mode, "%s", v->valuestring);
        if ((v = cJSON_GetObjectItem(o, "source_width_min")) && cJSON_IsNumber(v))
            out->source_width_min = (float)v->valuedouble;
        if ((v = cJSON_GetObjectItem(o, "source_width_max")) && cJSON_IsNumber(v))
            out->source_width_max = (float)v->valuedouble;
    }
    cJSON_Delete(o);
    mn_st_free(&st);
    return rc;
}
