#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/checkpoint.h"
#include "mn/seg_model.h"

static int build(mn_seg_model *m, uint64_t seed)
{
    mn_seg_config sc;
    mn_seg_config_default(&sc, m->num_classes);
    int rc = mn_arch_parse(m->cfg.model.backbone, &sc.backbone.arch);
    if (rc) return rc;
    sc.backbone.output_stride = m->cfg.model.output_stride;
    sc.v3plus = !strcmp(m->cfg.model.decoder, "v3plus");
    sc.slim_head = m->cfg.model.slim_head;
    sc.aspp_channels = m->cfg.model.aspp_channels;
    sc.low_level_channels = m->cfg.model.low_level_channels;
    mn_param_set_init(&m->ps);
    mn_rng rng;
    mn_rng_seed(&rng, seed);
    mn_query_init(&m->table, "mIoU");
    rc = mn_seg_create(&m->net, &sc, &m->ps, &rng);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_seg_bn_layers(m->net, &bns);
        m->table.n_stats = mn_query_stats_size(bns, n);
        m->train_stats = malloc(sizeof(float) * (size_t)m->table.n_stats);
        if (!m->train_stats) rc = mn_error(MN_ENOMEM, "out of memory");
    }
    return rc;
}

/* Remembers the current running statistics as the trained ones. */
static void snapshot_stats(mn_seg_model *m)
{
    mn_slim_bn **bns;
    int n = mn_seg_bn_layers(m->net, &bns);
    mn_query_save_stats(m->train_stats, bns, n);
}

/* Starts the backbone from a file of weights under torchvision's names. */
static int load_backbone_init(mn_seg_model *m, const char *path)
{
    int copied = 0;
    int rc = mn_checkpoint_apply_prefixed(path, &m->ps, "backbone.", &copied);
    if (!rc) mn_info("%s: initialised %d %s backbone tensors", path, copied, m->cfg.model.backbone);
    return rc;
}

int mn_seg_model_create(mn_seg_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                        uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (num_classes < 1 || num_classes > 255)
        return mn_error(MN_EINVAL, "segmentation needs 1 to 255 classes, not %d", num_classes);
    m->num_classes = num_classes;
    for (int k = 0; k < num_classes; k++)
        snprintf(m->class_names[k], sizeof m->class_names[k], "%s", class_names && class_names[k] ? class_names[k] : "?");
    int rc = build(m, seed);
    if (!rc && cfg->model.init[0]) rc = load_backbone_init(m, cfg->model.init);
    if (!rc) snapshot_stats(m);
    if (rc) mn_seg_model_free(m);
    return rc;
}

void mn_seg_model_free(mn_seg_model *m)
{
    mn_seg_free(m->net);
    mn_param_set_free(&m->ps);
    mn_query_free(&m->table);
    free(m->train_stats);
    memset(m, 0, sizeof *m);
}

int mn_seg_model_save(const mn_seg_model *m, const char *path, const mn_sgd *opt, int64_t iteration)
{
    int n_extra = 0, rc = 0;
    mn_st_item *extra = calloc((size_t)(m->ps.n + m->table.n + 1), sizeof *extra);
    char **names = calloc((size_t)(m->ps.n + m->table.n + 1), sizeof *names);
    int64_t *shapes = calloc((size_t)(m->table.n + 1), sizeof *shapes);
    char *config = mn_config_to_json(&m->cfg), *table = mn_query_to_json(&m->table);
    cJSON *classes = cJSON_CreateArray();
    for (int k = 0; classes && k < m->num_classes; k++) cJSON_AddItemToArray(classes, cJSON_CreateString(m->class_names[k]));
    char *classes_s = cJSON_PrintUnformatted(classes);
    cJSON_Delete(classes);
    if (!extra || !names || !shapes || !config || !table || !classes_s) {
        rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (opt)
        for (int i = 0; i < m->ps.n; i++) {
            mn_tensor b = mn_sgd_momentum(opt, i);
            if (!b.data) continue;
            names[n_extra] = malloc(strlen(m->ps.items[i]->name) + 8);
            sprintf(names[n_extra], "optim.%s", m->ps.items[i]->name);
            extra[n_extra] = (mn_st_item){names[n_extra], MN_ST_F32, b.ndim, m->ps.items[i]->var.val.shape, b.data};
            n_extra++;
        }
    for (int i = 0; i < m->table.n; i++) {
        names[n_extra] = malloc(32);
        snprintf(names[n_extra], 32, "bn_bank.%d", i);
        shapes[i] = m->table.n_stats;
        extra[n_extra++] = (mn_st_item){names[n_extra - 1], MN_ST_F32, 1, &shapes[i], m->table.e[i].bn_stats};
    }
    char iter_s[32], steps_s[32], ncls[16];
    snprintf(iter_s, sizeof iter_s, "%lld", (long long)iteration);
    snprintf(steps_s, sizeof steps_s, "%lld", (long long)(opt ? mn_sgd_steps(opt) : 0));
    snprintf(ncls, sizeof ncls, "%d", m->num_classes);
    const char *keys[] = {"format", "task", "config", "classes", "num_classes", "iteration", "optim_steps", "query_table"};
    const char *vals[] = {"mutualnet-1", "segmentation", config, classes_s, ncls, iter_s, steps_s, table};
    rc = mn_checkpoint_save(path, &m->ps, extra, n_extra, keys, vals, 8);
done:
    for (int i = 0; names && i < n_extra; i++) free(names[i]);
    free(names);
    free(extra);
    free(shapes);
    free(config);
    free(table);
    free(classes_s);
    return rc;
}

static const char *need_meta(const mn_safetensors *st, const char *key)
{
    const char *v = mn_st_meta(st, key);
    if (!v) mn_error(MN_EFORMAT, "%s: metadata \"%s\" is missing (not a mutualnet checkpoint?)", st->path, key);
    return v;
}

int mn_seg_model_open(mn_seg_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    const char *task = need_meta(&st, "task"), *config = need_meta(&st, "config"), *classes = need_meta(&st, "classes"),
               *table = need_meta(&st, "query_table");
    if (!task || !config || !classes || !table) {
        mn_st_free(&st);
        return MN_EFORMAT;
    }
    if (strcmp(task, "segmentation")) {
        rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a segmentation one", path, task); /* before st is freed */
        mn_st_free(&st);
        return rc;
    }
    mn_config_default(&m->cfg);
    rc = mn_config_parse(config, path, &m->cfg);
    cJSON *cl = rc ? NULL : cJSON_Parse(classes);
    if (!rc && (!cJSON_IsArray(cl) || cJSON_GetArraySize(cl) < 1 || cJSON_GetArraySize(cl) > 255))
        rc = mn_error(MN_EFORMAT, "%s: metadata \"classes\" is not a list of 1 to 255 names", path);
    if (!rc) {
        m->num_classes = cJSON_GetArraySize(cl);
        int k = 0;
        for (cJSON *c = cl->child; c; c = c->next, k++)
            snprintf(m->class_names[k], sizeof m->class_names[k], "%s", cJSON_IsString(c) ? c->valuestring : "?");
    }
    cJSON_Delete(cl);
    if (!rc) rc = build(m, 0);
    static const char *const extra[] = {"optim.", "bn_bank."};
    if (!rc) rc = mn_checkpoint_apply(&st, &m->ps, extra, 2);
    if (!rc) snapshot_stats(m);
    if (!rc) {
        int64_t n_stats = m->table.n_stats;
        mn_query_free(&m->table);
        rc = mn_query_from_json(&m->table, table, n_stats);
        for (int i = 0; !rc && i < m->table.n; i++) {
            char name[32];
            mn_tensor t;
            snprintf(name, sizeof name, "bn_bank.%d", i);
            int64_t shape[1] = {n_stats};
            rc = mn_st_get_f32(&st, name, 1, shape, &t);
            if (!rc && !(m->table.e[i].bn_stats = malloc(sizeof(float) * (size_t)n_stats)))
                rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
            if (!rc) memcpy(m->table.e[i].bn_stats, t.data, sizeof(float) * (size_t)n_stats);
        }
    }
    mn_st_free(&st);
    if (rc) mn_seg_model_free(m);
    return rc;
}

int mn_seg_model_resume(mn_seg_model *m, const char *path, mn_sgd *opt, int64_t *iteration)
{
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    static const char *const extra[] = {"optim.", "bn_bank."};
    rc = mn_checkpoint_apply(&st, &m->ps, extra, 2);
    const char *it = rc ? NULL : need_meta(&st, "iteration"), *steps = it ? need_meta(&st, "optim_steps") : NULL;
    if (!rc && (!it || !steps)) rc = MN_EFORMAT;
    for (int i = 0; !rc && i < m->ps.n; i++) {
        mn_tensor b = mn_sgd_momentum(opt, i);
        if (!b.data) continue;
        char name[128];
        mn_tensor t;
        snprintf(name, sizeof name, "optim.%s", m->ps.items[i]->name);
        rc = mn_st_get_f32(&st, name, b.ndim, b.shape, &t);
        if (!rc) memcpy(b.data, t.data, sizeof(float) * (size_t)mn_tensor_numel(&t));
    }
    if (!rc) {
        *iteration = atoll(it);
        rc = mn_sgd_set_steps(opt, atoll(steps));
    }
    mn_st_free(&st);
    return rc;
}

int mn_seg_model_select(mn_seg_model *m, float width, int h, int w)
{
    int k = mn_query_find(&m->table, width, h, w);
    mn_slim_bn **bns;
    int n = mn_seg_bn_layers(m->net, &bns);
    mn_query_load_stats(k >= 0 && m->table.e[k].bn_stats ? m->table.e[k].bn_stats : m->train_stats, bns, n);
    return 0;
}
