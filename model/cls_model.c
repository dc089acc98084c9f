/* The classifier's model, checkpoint and BN selection: the backbone under torchvision's own
 * parameter names (no prefix), so ImageNet weights of the same class count load as they are. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/checkpoint.h"
#include "mn/cls_model.h"
#include "model/internal.h"

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
        rc = mdl_stats_alloc(&m->table, bns, n, &m->train_stats);
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
    return 0;
}

int mn_cls_model_create(mn_cls_model *m, const mn_config *cfg, int num_classes, const char *const *class_names,
                        uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    int rc = set_classes(m, num_classes);
    if (!rc) rc = mdl_class_names(&m->class_names, num_classes, class_names, NULL);
    if (!rc) rc = build(m, seed);
    /* weights trained on other classes: a classifier of another shape stays as initialised */
    if (!rc && cfg->model.init[0]) rc = mdl_init_from(&m->ps, cfg, "", &m->init);
    mn_slim_bn **bns;
    int nb = rc ? 0 : mn_backbone_bn_layers(m->net, &bns);
    if (!rc) rc = mdl_finetune(&m->ps, bns, nb, cfg, "");
    if (!rc) snapshot_stats(m);
    if (rc) mn_cls_model_free(m);
    return rc;
}

void mn_cls_model_free(mn_cls_model *m)
{
    mn_backbone_free(m->net);
    mn_init_report_free(&m->init);
    mn_param_set_free(&m->ps);
    mn_query_free(&m->table);
    free(m->train_stats);
    free(m->class_names);
    memset(m, 0, sizeof *m);
}

int mdl_cls_save(const mn_cls_model *m, const char *path, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut)
{
    const mn_class_name *names = (const mn_class_name *)m->class_names;
    return mdl_named_save(path, &m->ps, &m->table, &m->cfg, "classification", names, m->num_classes, opt, iteration,
                          cut);
}

int mn_cls_model_save(const mn_cls_model *m, const char *path, const mn_sgd *opt, int64_t iteration)
{
    return mdl_cls_save(m, path, opt, iteration, NULL);
}

int mn_cls_model_open(mn_cls_model *m, const char *path)
{
    memset(m, 0, sizeof *m);
    mn_safetensors st;
    const char *table;
    int rc = mdl_named_open(path, "classification", 2, MN_CLS_MAX_CLASSES, &st, &m->cfg, &m->class_names,
                            &m->num_classes, &table);
    if (rc) return rc;
    rc = build(m, 0);
    if (!rc) {
        mn_slim_bn **bns;
        int n = mn_backbone_bn_layers(m->net, &bns);
        rc = mdl_ckpt_load(&st, &m->ps, bns, n, m->train_stats, &m->table, table);
    }
    mn_st_free(&st);
    if (rc) mn_cls_model_free(m);
    return rc;
}

int mn_cls_model_resume(mn_cls_model *m, const char *path, mn_sgd *opt, int64_t *iteration)
{
    return mdl_ckpt_resume(path, "classification", &m->ps, opt, iteration);
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
