/* The checkpoint layout every task model shares (model/internal.h): weights, momentum buffers
 * and the query table's BN statistics as tensors, the configuration, task, classes, iteration and
 * table as metadata. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/checkpoint.h"
#include "model/internal.h"

int mdl_ckpt_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                  const char *task, const char *const *keys /* (n_keys) */, const char *const *vals /* (n_keys) */,
                  int n_keys, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut)
{
    int n_extra = 0, rc = 0;
    mn_st_item *extra = calloc((size_t)(ps->n + table->n + 1), sizeof *extra);
    char **names = calloc((size_t)(ps->n + table->n + 1), sizeof *names);
    int64_t *shapes = calloc((size_t)(table->n + 1), sizeof *shapes);
    char *config = mn_config_to_json(cfg), *table_s = mn_query_to_json(table);
    const char **meta_keys = calloc((size_t)(n_keys + 7), sizeof *meta_keys);
    const char **meta_vals = calloc((size_t)(n_keys + 7), sizeof *meta_vals);
    if (!extra || !names || !shapes || !config || !table_s || !meta_keys || !meta_vals) {
        rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (opt)
        for (int i = 0; i < ps->n; i++) {
            mn_tensor b = mn_sgd_momentum(opt, i);
            if (!b.data) continue;
            names[n_extra] = malloc(strlen(ps->items[i]->name) + 8);
            if (!names[n_extra]) {
                rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            sprintf(names[n_extra], "optim.%s", ps->items[i]->name);
            extra[n_extra] = (mn_st_item){names[n_extra], MN_ST_F32, b.ndim, ps->items[i]->var.val.shape, b.data};
            n_extra++;
        }
    for (int i = 0; !cut && i < table->n; i++) {
        if (!(names[n_extra] = malloc(32))) {
            rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        snprintf(names[n_extra], 32, "bn_bank.%d", i);
        shapes[i] = table->n_stats;
        extra[n_extra] = (mn_st_item){names[n_extra], MN_ST_F32, 1, &shapes[i], table->e[i].bn_stats};
        n_extra++;
    }
    char iter_s[32], steps_s[32];
    snprintf(iter_s, sizeof iter_s, "%lld", (long long)iteration);
    snprintf(steps_s, sizeof steps_s, "%lld", (long long)(opt ? mn_sgd_steps(opt) : 0));
    /* the order of the keys is the order in the file's header */
    int n_meta = 0;
    meta_keys[n_meta] = "format", meta_vals[n_meta++] = "mutualnet-1";
    meta_keys[n_meta] = "task", meta_vals[n_meta++] = task;
    meta_keys[n_meta] = "config", meta_vals[n_meta++] = config;
    for (int i = 0; i < n_keys; i++) meta_keys[n_meta] = keys[i], meta_vals[n_meta++] = vals[i];
    meta_keys[n_meta] = "iteration", meta_vals[n_meta++] = iter_s;
    meta_keys[n_meta] = "optim_steps", meta_vals[n_meta++] = steps_s;
    meta_keys[n_meta] = "query_table", meta_vals[n_meta++] = table_s;
    if (cut) meta_keys[n_meta] = "fixed_configuration", meta_vals[n_meta++] = cut->fixed_json;
    rc = mn_checkpoint_save_cut(path, ps, cut ? cut->keep : NULL, extra, n_extra, meta_keys, meta_vals, n_meta);
done:
    for (int i = 0; names && i < n_extra; i++) free(names[i]);
    free(names);
    free(extra);
    free(shapes);
    free(config);
    free(table_s);
    free(meta_keys);
    free(meta_vals);
    return rc;
}

const char *mdl_ckpt_meta(const mn_safetensors *st, const char *key)
{
    const char *v = mn_st_meta(st, key);
    if (!v) mn_error(MN_EFORMAT, "%s: metadata \"%s\" is missing (not a mutualnet checkpoint?)", st->path, key);
    return v;
}

int mdl_class_names(mn_class_name **out, int n, const char *const *names, const char *first)
{
    *out = calloc((size_t)(n > 0 ? n : 1), sizeof **out);
    if (!*out) return mn_error(MN_ENOMEM, "out of memory for %d class names", n);
    for (int k = 0; k < n; k++) {
        const char *name = k == 0 && first ? first : names && names[k] ? names[k] : "?";
        if (strlen(name) >= MN_CLASS_NAME_LEN) {
            free(*out);
            *out = NULL;
            return mn_error(MN_EINVAL, "class %d: the name \"%.24s...\" is %zu bytes long; a model keeps names of up to %d",
                            k, name, strlen(name), MN_CLASS_NAME_LEN - 1);
        }
        snprintf((*out)[k], MN_CLASS_NAME_LEN, "%s", name);
    }
    return 0;
}

int mdl_class_names_parse(const char *path, const char *json, int lo, int hi, mn_class_name **out, int *n)
{
    *out = NULL;
    cJSON *list = cJSON_Parse(json);
    *n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    int rc = 0;
    if (*n < lo || *n > hi) rc = mn_error(MN_EFORMAT, "%s: metadata \"classes\" is not a list of %d to %d names", path, lo, hi);
    const char **names = rc ? NULL : malloc(sizeof(char *) * (size_t)*n);
    if (!rc && !names) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    int k = 0;
    for (cJSON *c = rc ? NULL : list->child; c && !rc; c = c->next, k++) {
        if (!cJSON_IsString(c)) rc = mn_error(MN_EFORMAT, "%s: metadata \"classes\"[%d] is not a string", path, k);
        else names[k] = c->valuestring;
    }
    if (!rc) rc = mdl_class_names(out, *n, names, NULL);
    if (rc && rc != MN_EFORMAT && rc != MN_ENOMEM) rc = mn_error(MN_EFORMAT, "%s: %s", path, mn_last_error());
    free(names);
    cJSON_Delete(list);
    return rc;
}

char *mdl_class_names_json(const mn_class_name *names /* (n) */, int n)
{
    cJSON *list = cJSON_CreateArray();
    for (int k = 0; list && k < n; k++) cJSON_AddItemToArray(list, cJSON_CreateString(names[k]));
    char *text = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    if (!text) mn_error(MN_ENOMEM, "out of memory for %d class names", n);
    return text;
}

int mdl_named_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                   const char *task, const mn_class_name *names /* (n) */, int n, const mn_sgd *opt, int64_t iteration,
                   const mdl_cut *cut)
{
    char *list_s = mdl_class_names_json(names, n);
    if (!list_s) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *keys[] = {"classes", "num_classes"};
    const char *vals[] = {list_s, count};
    int rc = mdl_ckpt_save(path, ps, table, cfg, task, keys, vals, 2, opt, iteration, cut);
    free(list_s);
    return rc;
}

int mdl_named_open(const char *path, const char *task, int lo, int hi, mn_safetensors *st, mn_config *cfg,
                   mn_class_name **names /* (*n) */, int *n, const char **table_json)
{
    *names = NULL;
    int rc = mn_st_read(path, st);
    if (rc) return rc;
    const char *kind = mdl_ckpt_meta(st, "task"), *config = kind ? mdl_ckpt_meta(st, "config") : NULL,
               *classes = config ? mdl_ckpt_meta(st, "classes") : NULL;
    *table_json = classes ? mdl_ckpt_meta(st, "query_table") : NULL;
    if (!*table_json) rc = MN_EFORMAT;
    else if (strcmp(kind, task)) rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a %s one", path, kind, task);
    if (!rc) {
        mn_config_default(cfg);
        rc = mn_config_parse(config, path, cfg);
    }
    if (!rc) rc = mdl_class_names_parse(path, classes, lo, hi, names, n);
    if (rc) mn_st_free(st);
    return rc;
}

/* Tensors of a checkpoint that are not the model's parameters. */
static const char *const extra_prefixes[] = {"optim.", "bn_bank."};

int mdl_ckpt_load(const mn_safetensors *st, mn_param_set *ps, mn_slim_bn *const *bns /* (nb) */, int nb,
                  float *train_stats /* (table->n_stats) */, mn_query_table *table, const char *table_json)
{
    /* a checkpoint of one configuration holds the leading blocks its width uses, and no BN bank:
     * its one table entry has the statistics its BN layers were saved with */
    bool fixed = mn_st_meta(st, "fixed_configuration") != NULL;
    int rc = fixed ? mn_checkpoint_apply_cut(st, ps, extra_prefixes, 2) : mn_checkpoint_apply(st, ps, extra_prefixes, 2);
    if (rc) return rc;
    mn_query_save_stats(train_stats, bns, nb);
    int64_t n_stats = table->n_stats;
    mn_query_free(table);
    rc = mn_query_from_json(table, table_json, n_stats);
    for (int i = 0; !rc && i < table->n; i++) {
        char name[32];
        mn_tensor t;
        snprintf(name, sizeof name, "bn_bank.%d", i);
        int64_t shape[1] = {n_stats};
        if (fixed) t = mn_tensor_view(train_stats, 1, shape);
        else rc = mn_st_get_f32(st, name, 1, shape, &t);
        if (!rc) rc = mn_check_finite(t.data, n_stats, st->path, name);
        if (!rc && !(table->e[i].bn_stats = malloc(sizeof(float) * (size_t)n_stats)))
            rc = mn_error(MN_ENOMEM, "%s: out of memory", st->path);
        if (!rc) memcpy(table->e[i].bn_stats, t.data, sizeof(float) * (size_t)n_stats);
    }
    return rc;
}

int mdl_ckpt_resume(const char *path, const char *task, mn_param_set *ps, mn_sgd *opt, int64_t *iteration)
{
    mn_safetensors st;
    int rc = mn_st_read(path, &st);
    if (rc) return rc;
    const char *kind = task ? mdl_ckpt_meta(&st, "task") : NULL;
    if (kind && strcmp(kind, task)) rc = mn_error(MN_EINVAL, "%s: a %s checkpoint, not a %s one", path, kind, task);
    else if (task && !kind) rc = MN_EFORMAT;
    if (!rc) rc = mn_checkpoint_apply(&st, ps, extra_prefixes, 2);
    const char *it = rc ? NULL : mdl_ckpt_meta(&st, "iteration"), *steps = it ? mdl_ckpt_meta(&st, "optim_steps") : NULL;
    if (!rc && (!it || !steps)) rc = MN_EFORMAT;
    for (int i = 0; !rc && i < ps->n; i++) {
        mn_tensor b = mn_sgd_momentum(opt, i);
        if (!b.data) continue;
        char name[128];
        mn_tensor t;
        snprintf(name, sizeof name, "optim.%s", ps->items[i]->name);
        rc = mn_st_get_f32(&st, name, b.ndim, b.shape, &t);
        if (!rc) rc = mn_check_finite(t.data, mn_tensor_numel(&t), path, name);
        if (!rc) memcpy(b.data, t.data, sizeof(float) * (size_t)mn_tensor_numel(&t));
    }
    if (!rc) {
        *iteration = atoll(it);
        rc = mn_sgd_set_steps(opt, atoll(steps));
    }
    mn_st_free(&st);
    return rc;
}

int mdl_stats_alloc(mn_query_table *table, mn_slim_bn *const *bns /* (nb) */, int nb, float **train_stats)
{
    table->n_stats = mn_query_stats_size(bns, nb);
    *train_stats = malloc(sizeof(float) * (size_t)(table->n_stats + 1)); /* + 1: never malloc(0) */
    return *train_stats ? 0 : mn_error(MN_ENOMEM, "out of memory");
}
