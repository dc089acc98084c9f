#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/seg_model.h"
#include "model/internal.h"

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
        rc = mdl_stats_alloc(&m->table, bns, n, &m->train_stats);
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

int mn_seg_model_create(mn_seg_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                        uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (num_classes < 1 || num_classes > 255)
        return mn_error(MN_EINVAL, "segmentation needs 1 to 255 classes, not %d", num_classes);
    m->num_classes = num_classes;
    int rc = mdl_class_names(&m->class_names, num_classes, class_names, NULL);
    if (!rc) rc = build(m, seed);
    if (!rc && cfg->model.init[0]) rc = mdl_init_from(&m->ps, cfg, "backbone.", &m->init);
    mn_slim_bn **bns;
    int nb = rc ? 0 : mn_seg_bn_layers(m->net, &bns);
    if (!rc) rc = mdl_finetune(&m->ps, bns, nb, cfg, "backbone.");
    if (!rc) snapshot_stats(m);
    if (rc) mn_seg_model_free(m);
    return rc;
}

void mn_seg_model_free(mn_seg_model *m)
{
    mn_seg_free(m->net);
    mn_init_report_free(&m->init);
    mn_param_set_free(&m->ps);
    mn_query_free(&m->table);
    free(m->train_stats);
    free(m->class_names);
    memset(m, 0, sizeof *m);
}

int mdl_seg_save(const mn_seg_model *m, const char *path, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut)
{
    const mn_class_name *names = (const mn_class_name *)m->class_names;
    return mdl_named_save(path, &m->ps, &m->table, &m->cfg, "segmentation", names, m->num_classes, opt, iteration, cut);
}

int mn_seg_model_save(const mn_seg_model *m, const char *path, const mn_sgd *opt, int64_t iteration)
{
    return mdl_seg_save(m, path, opt, iteration, NULL);
}

int mn_seg_model_open(mn_seg_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    mn_safetensors st;
    const char *table;
    int rc = mdl_named_open(path, "segmentation", 1, 255, &st, &m->cfg, &m->class_names, &m->num_classes, &table);
    if (rc) return rc;
    rc = build(m, 0);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_seg_bn_layers(m->net, &bns);
        rc = mdl_ckpt_load(&st, &m->ps, bns, n, m->train_stats, &m->table, table);
    }
    mn_st_free(&st);
    if (rc) mn_seg_model_free(m);
    return rc;
}

int mn_seg_model_resume(mn_seg_model *m, const char *path, mn_sgd *opt, int64_t *iteration)
{
    /* no check of the "task" metadata here: another task's checkpoint fails on its tensor names */
    return mdl_ckpt_resume(path, "segmentation", &m->ps, opt, iteration);
}

int mn_seg_model_select(mn_seg_model *m, float width, int h, int w)
{
    int k = mn_query_find(&m->table, width, h, w);
    mn_slim_bn **bns;
    int n = mn_seg_bn_layers(m->net, &bns);
    mn_query_load_stats(k >= 0 && m->table.e[k].bn_stats ? m->table.e[k].bn_stats : m->train_stats, bns, n);
    return 0;
}
