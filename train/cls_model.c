/* The classifier's model, checkpoint and BN selection: the backbone under torchvision's own
 * parameter names (no prefix), so ImageNet weights of the same class count load as they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/checkpoint.h"
#include "mn/cls_model.h"
#include "train/driver.h"

static int build(mn_cls_model *m, uint64_t seed)
{
    mn_backbone_config bc = {.num_classes = m->num_classes, .output_stride = 32};
    int rc = mn_arch_parse(m->cfg.model.backbone, &bc.arch);
    if (rc) return rc;
    mn_param_set_init(&m->ps);
    mn_rng rng;
    mn_rng_seed(&rng, seed);
    mn_query_init(&m->table, "top-1");
    rc = mn_backbone_create(&m->net, &bc, &m->ps, "", &rng);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_backbone_bn_layers(m->net, &bns);
        rc = drv_stats_alloc(&m->table, bns, n, &m->train_stats);
    }
    return rc;
}

static void snapshot_stats(mn_cls_model *m)
{
    mn_slim_bn **bns;
    int n = mn_backbone_bn_layers(m->net, &bns);
    mn_query_save_stats(m->train_stats, bns, n);
}

static int set_classes(mn_cls_model *m, int num_classes)
{
    if (num_classes < 2 || num_classes > MN_CLS_MAX_CLASSES)
        return mn_error(MN_EINVAL, "classification needs 2 to %d classes, not %d", MN_CLS_MAX_CLASSES, num_classes);
    m->num_classes = num_classes;
    m->class_names = calloc((size_t)num_classes, sizeof *m->class_names);
    return m->class_names ? 0 : mn_error(MN_ENOMEM, "out of memory for %d class names", num_classes);
}

int mn_cls_model_create(mn_cls_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                        uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int rc = set_classes(m, num_classes);
    for (int k = 0; !rc && k < num_classes; k++)
        snprintf(m->class_names[k], sizeof m->class_names[k], "%s", class_names && class_names[k] ? class_names[k] : "?");
    if (!rc) rc = build(m, seed);
    if (!rc && cfg->model.init[0]) {
        int copied = 0;
        rc = mn_checkpoint_apply_prefixed(cfg->model.init, &m->ps, "", &copied);
        if (!rc) mn_info("%s: initialised %d %s tensors", cfg->model.init, copied, cfg->model.backbone);
    }
    if (!rc) snapshot_stats(m);
    if (rc) mn_cls_model_free(m);
    return rc;
}

void mn_cls_model_free(mn_cls_model *m)
{
    mn_backbone_free(m->net);
    mn_param_set_free(&m->ps);
    mn_query_free(&m->table);
    free(m->train_stats);
    free(m->class_names);
    memset(m, 0, sizeof *m);
}

int mn_cls_model_save(const mn_cls_model *m, const char *path, const mn_sgd *opt, int64_t iteration)
{
    cJSON *classes = cJSON_CreateArray();
    for (int k = 0; classes && k < m->num_classes; k++) cJSON_AddItemToArray(classes, cJSON_CreateString(m->class_names[k]));
    char *classes_s = cJSON_PrintUnformatted(classes);
    cJSON_Delete(classes);
    if (!classes_s) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    char ncls[16];
    snprintf(ncls, sizeof ncls, "%d", m->num_classes);
    const char *keys[] = {"classes", "num_classes"};
    const char *vals[] = {classes_s, ncls};
    int rc = drv_ckpt_save(path, &m->ps, &m->table, &m->cfg, "classification", keys, vals, 2, opt, iteration);
    free(classes_s);
    return rc;
}

int mn_cls_model_open(mn_cls_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    const char *task = drv_ckpt_meta(&st, "task"), *config = drv_ckpt_meta(&st, "config"),
               *classes = drv_ckpt_meta(&st, "classes"), *table = drv_ckpt_meta(&st, "query_table");
    if (!task || !config || !classes || !table) {
        mn_st_free(&st);
        return MN_EFORMAT;
    }
    if (strcmp(task, "classification")) {
        rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a classification one", path, task); /* before st is freed */
        mn_st_free(&st);
        return rc;
    }
    mn_config_default(&m->cfg);
    rc = mn_config_parse(config, path, &m->cfg);
    cJSON *cl = rc ? NULL : cJSON_Parse(classes);
    if (!rc && !cJSON_IsArray(cl)) rc = mn_error(MN_EFORMAT, "%s: metadata \"classes\" is not a list of names", path);
    if (!rc) rc = set_classes(m, cJSON_GetArraySize(cl));
    if (!rc) {
        int k = 0;
        for (cJSON *c = cl->child; c; c = c->next, k++)
            snprintf(m->class_names[k], sizeof m->class_names[k], "%s", cJSON_IsString(c) ? c->valuestring : "?");
    }
    cJSON_Delete(cl);
    if (!rc) rc = build(m, 0);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_backbone_bn_layers(m->net, &bns);
        rc = drv_ckpt_load(&st, &m->ps, bns, n, m->train_stats, &m->table, table);
    }
    mn_st_free(&st);
    if (rc) mn_cls_model_free(m);
    return rc;
}

int mn_cls_model_resume(mn_cls_model *m, const char *path, mn_sgd *opt, int64_t *iteration)
{
    return drv_ckpt_resume(path, "classification", &m->ps, opt, iteration);
}

int mn_cls_model_select(mn_cls_model *m, float width, int h, int w)
{
    int k = mn_query_find(&m->table, width, h, w);
    mn_slim_bn **bns;
    int n = mn_backbone_bn_layers(m->net, &bns);
    mn_query_load_stats(k >= 0 && m->table.e[k].bn_stats ? m->table.e[k].bn_stats : m->train_stats, bns, n);
    return 0;
}

int mn_cls_model_flops(mn_cls_model *m, float width, int h, int w, int64_t *macs)
{
    return mn_backbone_flops(m->net, width, h, w, true, macs, NULL);
}
