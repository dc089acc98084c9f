/* The detection model bundle: building the detector from a run's configuration, checkpoints
 * (weights, optimiser state, classes, category ids, query table) and configuration selection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/det_model.h"
#include "mn/fileio.h"
#include "mn/json.h"
#include "model/internal.h"

int mn_det_config_from(const mn_config *c, int num_classes, mn_det_config *out)
{
    mn_det_config_default(out, num_classes);
    int rc = mn_arch_parse(c->model.backbone, &out->backbone.arch);
    if (rc) return rc;
    out->backbone.output_stride = 32; /* FPN reads strides 4..32; model.output_stride is DeepLab's */
    out->slim_head = c->model.slim_head;
    out->fpn_channels = c->det.fpn_channels;
    out->box_hidden = c->det.box_hidden;
    for (int l = 0; l < MN_DET_LEVELS; l++) out->anchor_sizes[l][0] = (float)(c->det.anchor_size << l);
    out->rpn_pre_nms_train = c->det.rpn_pre_nms_train;
    out->rpn_post_nms_train = c->det.rpn_post_nms_train;
    out->rpn_pre_nms_test = c->det.rpn_pre_nms_test;
    out->rpn_post_nms_test = c->det.rpn_post_nms_test;
    out->rpn_batch = c->det.rpn_batch;
    out->roi_batch = c->det.roi_batch;
    out->score_thresh = c->det.score_thresh;
    out->detections_per_img = c->det.detections_per_img;
    return 0;
}

static int build(mn_det_model *m, uint64_t seed)
{
    mn_det_config dc;
    int rc = mn_det_config_from(&m->cfg, m->num_classes, &dc);
    if (rc) return rc;
    mn_param_set_init(&m->ps);
    mn_rng rng;
    mn_rng_seed(&rng, seed);
    mn_query_init(&m->table, "AP");
    rc = mn_det_create(&m->net, &dc, &m->ps, &rng);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_det_bn_layers(m->net, &bns);
        rc = mdl_stats_alloc(&m->table, bns, n, &m->train_stats);
    }
    return rc;
}

/* Remembers the current running statistics as the trained ones. */
static void snapshot_stats(mn_det_model *m)
{
    mn_slim_bn **bns;
    int n = mn_det_bn_layers(m->net, &bns);
    mn_query_save_stats(m->train_stats, bns, n);
}

static int check_classes(int num_classes, const char *where)
{
    if (num_classes < 2 || num_classes > 256)
        return mn_error(MN_EINVAL, "%s: detection needs 1 to 255 classes besides background, not %d", where,
                        num_classes - 1);
    return 0;
}

int mn_det_model_create(mn_det_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                        const int *category_ids, int typical_h, int typical_w, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int rc = check_classes(num_classes, "mn_det_model_create");
    if (rc) return rc;
    m->num_classes = num_classes;
    rc = mdl_class_names(&m->class_names, num_classes, class_names, "background");
    if (rc) return rc;
    for (int k = 0; k < num_classes; k++) m->category_ids[k] = k == 0 ? 0 : category_ids ? category_ids[k] : k;
    m->typical_h = typical_h;
    m->typical_w = typical_w;
    rc = build(m, seed);
    if (!rc && cfg->model.init[0]) rc = mdl_init_from(&m->ps, cfg, "backbone.", &m->init);
    mn_slim_bn **bns;
    int nb = rc ? 0 : mn_det_bn_layers(m->net, &bns);
    if (!rc) rc = mdl_finetune(&m->ps, bns, nb, cfg, "backbone.");
    if (!rc) snapshot_stats(m);
    if (rc) mn_det_model_free(m);
    return rc;
}

void mn_det_model_free(mn_det_model *m)
{
    mn_det_free(m->net);
    mn_init_report_free(&m->init);
    mn_param_set_free(&m->ps);
    mn_query_free(&m->table);
    free(m->train_stats);
    free(m->class_names);
    memset(m, 0, sizeof *m);
}

int mn_det_model_save(const mn_det_model *m, const char *path, const mn_sgd *opt, int64_t iteration)
{
    return mdl_det_save(m, path, opt, iteration, NULL);
}

int mdl_det_save(const mn_det_model *m, const char *path, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut)
{
    cJSON *ids = cJSON_CreateArray();
    for (int k = 0; ids && k < m->num_classes; k++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(m->category_ids[k]));
    char *classes_s = mdl_class_names_json((const mn_class_name *)m->class_names, m->num_classes);
    char *ids_s = cJSON_PrintUnformatted(ids);
    cJSON_Delete(ids);
    int rc = 0;
    if (!classes_s || !ids_s) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    char ncls[16], typical[48];
    snprintf(ncls, sizeof ncls, "%d", m->num_classes);
    snprintf(typical, sizeof typical, "[%d, %d]", m->typical_h, m->typical_w);
    const char *keys[] = {"classes", "category_ids", "num_classes", "typical_size"};
    const char *vals[] = {classes_s, ids_s, ncls, typical};
    if (!rc) rc = mdl_ckpt_save(path, &m->ps, &m->table, &m->cfg, "detection", keys, vals, 4, opt, iteration, cut);
    free(classes_s);
    free(ids_s);
    return rc;
}

/* Classes, category ids and the typical size from the metadata. */
static int parse_classes(mn_det_model *m, const char *path, const char *classes, const char *ids, const char *typical)
{
    int n = 0, rc = mdl_class_names_parse(path, classes, 2, 256, &m->class_names, &n);
    if (rc) return rc;
    cJSON *id = cJSON_Parse(ids), *ty = cJSON_Parse(typical);
    if (!cJSON_IsArray(id) || cJSON_GetArraySize(id) != n)
        rc = mn_error(MN_EFORMAT, "%s: metadata \"category_ids\" is not a list of %d numbers", path, n);
    else if (!cJSON_IsArray(ty) || cJSON_GetArraySize(ty) != 2 || !cJSON_IsNumber(cJSON_GetArrayItem(ty, 0)) ||
             !cJSON_IsNumber(cJSON_GetArrayItem(ty, 1)))
        rc = mn_error(MN_EFORMAT, "%s: metadata \"typical_size\" is not [h, w]", path);
    if (!rc) {
        m->num_classes = n;
        int k = 0;
        for (cJSON *i = id->child; i; i = i->next, k++) {
            if (!cJSON_IsNumber(i)) {
                rc = mn_error(MN_EFORMAT, "%s: metadata \"category_ids\"[%d] is not a number", path, k);
                break;
            }
            m->category_ids[k] = i->valueint;
        }
        m->typical_h = cJSON_GetArrayItem(ty, 0)->valueint;
        m->typical_w = cJSON_GetArrayItem(ty, 1)->valueint;
    }
    cJSON_Delete(id);
    cJSON_Delete(ty);
    return rc;
}

int mn_det_model_open(mn_det_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    const char *task = mdl_ckpt_meta(&st, "task");
    if (task && strcmp(task, "detection")) {
        rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a detection one", path, task); /* before task is freed */
        mn_st_free(&st);
        return rc;
    }
    const char *config = task ? mdl_ckpt_meta(&st, "config") : NULL,
               *classes = config ? mdl_ckpt_meta(&st, "classes") : NULL,
               *ids = classes ? mdl_ckpt_meta(&st, "category_ids") : NULL,
               *typical = ids ? mdl_ckpt_meta(&st, "typical_size") : NULL,
               *table = typical ? mdl_ckpt_meta(&st, "query_table") : NULL;
    if (!table) {
        mn_st_free(&st);
        return MN_EFORMAT;
    }
    mn_config_default(&m->cfg);
    rc = mn_config_parse(config, path, &m->cfg);
    if (!rc) rc = parse_classes(m, path, classes, ids, typical);
    if (!rc) rc = build(m, 0);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_det_bn_layers(m->net, &bns);
        rc = mdl_ckpt_load(&st, &m->ps, bns, n, m->train_stats, &m->table, table);
    }
    mn_st_free(&st);
    if (rc) mn_det_model_free(m);
    return rc;
}

int mn_det_model_resume(mn_det_model *m, const char *path, mn_sgd *opt, int64_t *iteration)
{
    return mdl_ckpt_resume(path, "detection", &m->ps, opt, iteration);
}

int mn_det_model_select(mn_det_model *m, float width, int short_side)
{
    int k = mn_query_find(&m->table, width, short_side, m->cfg.det.max_side);
    mn_slim_bn **bns;
    int n = mn_det_bn_layers(m->net, &bns);
    mn_query_load_stats(k >= 0 && m->table.e[k].bn_stats ? m->table.e[k].bn_stats : m->train_stats, bns, n);
    return 0;
}

int mn_det_model_input_size(const mn_det_model *m, int short_side, int *h, int *w)
{
    mn_det_aug a;
    mn_det_aug_default(&a, short_side, m->cfg.det.max_side, false);
    /* without a known typical size, a square image */
    int th = m->typical_h > 0 ? m->typical_h : short_side, tw = m->typical_w > 0 ? m->typical_w : short_side;
    int rh, rw, rc = mn_det_resize_shape(&a, th, tw, &rh, &rw, NULL);
    if (rc) return rc;
    *h = (rh + a.size_divisible - 1) / a.size_divisible * a.size_divisible;
    *w = (rw + a.size_divisible - 1) / a.size_divisible * a.size_divisible;
    return 0;
}

int mn_det_model_flops(mn_det_model *m, float width, int short_side, int64_t *macs)
{
    int h, w, rc = mn_det_model_input_size(m, short_side, &h, &w);
    return rc ? rc : mn_det_flops(m->net, width, h, w, macs, NULL);
}


static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int mn_coco_median_size(const char *path, int *h, int *w)
{
    char *text = NULL;
    size_t got = 0;
    int rc = mn_read_file(path, (size_t)1 << 32, "annotations file", &text, &got);
    if (rc) return rc;
    cJSON *root = NULL;
    rc = mn_json_parse(text, got, path, &root);
    free(text);
    if (rc) return rc;
    cJSON *imgs = cJSON_GetObjectItemCaseSensitive(root, "images");
    int cnt = cJSON_IsArray(imgs) ? cJSON_GetArraySize(imgs) : 0;
    int *hs = malloc(sizeof(int) * (size_t)(cnt + 1)), *ws = malloc(sizeof(int) * (size_t)(cnt + 1));
    if (!cJSON_IsArray(imgs) || cnt == 0) rc = mn_error(MN_EFORMAT, "%s: no \"images\" to take a typical size from", path);
    else if (!hs || !ws) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    int i = 0;
    for (cJSON *e = rc ? NULL : imgs->child; e && !rc; e = e->next, i++) {
        cJSON *eh = cJSON_GetObjectItemCaseSensitive(e, "height"), *ew = cJSON_GetObjectItemCaseSensitive(e, "width");
        if (!cJSON_IsNumber(eh) || !cJSON_IsNumber(ew) || eh->valuedouble < 1 || ew->valuedouble < 1)
            rc = mn_error(MN_EFORMAT, "%s: images[%d] lacks a positive \"height\" and \"width\"", path, i);
        else
            hs[i] = eh->valueint, ws[i] = ew->valueint;
    }
    if (!rc) {
        qsort(hs, (size_t)cnt, sizeof *hs, cmp_int);
        qsort(ws, (size_t)cnt, sizeof *ws, cmp_int);
        *h = hs[(cnt - 1) / 2]; /* the lower median: a size some image really has */
        *w = ws[(cnt - 1) / 2];
    }
    free(hs);
    free(ws);
    cJSON_Delete(root);
    return rc;
}

void mn_det_annotations_path(char *out, size_t size, const mn_config *c, const char *split)
{
    char pat[1024];
    const char *pattern = c->data.annotations, *at = strstr(pattern, "{split}");
    if (at) snprintf(pat, sizeof pat, "%.*s%s%s", (int)(at - pattern), pattern, split, at + 7);
    else snprintf(pat, sizeof pat, "%s", pattern);
    if (pat[0] == '/' || !c->data.root[0]) snprintf(out, size, "%s", pat);
    else snprintf(out, size, "%s/%s", c->data.root, pat);
}
