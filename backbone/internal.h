/* What backbone.c needs from each architecture. */
#ifndef MN_BACKBONE_INTERNAL_H
#define MN_BACKBONE_INTERNAL_H

#include "mn/backbone.h"

/* BN layers of a model in registration order, for calibration. */
typedef struct mn_bn_list {
    mn_slim_bn **items;
    int n, cap;
} mn_bn_list;

int mn_bn_list_add(mn_bn_list *l, mn_slim_bn *bn);

typedef struct mn_arch_impl {
    const char *name;
    /* registers and initialises parameters; adds every BN layer to bns */
    int (*create)(void **impl, const mn_backbone_config *cfg, mn_param_set *ps, const char *prefix, mn_rng *rng,
                  mn_bn_list *bns);
    void (*destroy)(void *impl);
    int (*forward)(void *impl, mn_run *r, mn_var *x, mn_features *f, mn_var **logits);
    int (*channels)(const void *impl, float w, int level);
    /* mn_backbone_stage for a parameter name without the prefix */
    int (*stage)(const char *name);
} mn_arch_impl;

extern const mn_arch_impl mn_arch_mobilenet_v2;
extern const mn_arch_impl mn_arch_mobilenet_v1;
extern const mn_arch_impl mn_arch_resnet50;

/* The stage of a MobileNet's "features.<k>..." or "classifier..." name, given the (1-based) block
 * whose output is each feature level; blocks past the last level (a tail) join stage 4. */
int mn_features_stage(const char *name, const int level_block[4]);

/* "<prefix><fmt...>" into buf. */
const char *mn_pname(char *buf, size_t size, const char *prefix, const char *fmt, ...) MN_PRINTF(4, 5);

#endif
