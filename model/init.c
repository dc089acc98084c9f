/* Starting a model from other weights (model.init) and the fine-tuning controls
 * (model.frozen_stages, model.norm_eval, optim.backbone_lr_mult): model/internal.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/checkpoint.h"
#include "model/internal.h"

/* The backbone stage (0..4) of a model parameter, or -1 for the head, the classifier and names
 * outside the prefix. */
static int feature_stage(enum mn_arch arch, const char *prefix, const char *name)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n)) return -1;
    int s = mn_backbone_stage(arch, name + n);
    return s >= 0 && s < MN_BACKBONE_STAGES ? s : -1;
}

static bool listed(char *const *list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return true;
    return false;
}

/* ---- why almost nothing matched ---- */

typedef struct vote {
    char text[64];    /* a prefix to strip from the file's names, or to add to them */
    bool add;
    int count;
} vote;

static void cast(vote *v, int *nv, int cap, const char *text, size_t len, bool add)
{
    if (len == 0 || len >= sizeof v->text || text[len - 1] != '.') return; /* whole name components only */
    for (int i = 0; i < *nv; i++)
        if (v[i].add == add && strlen(v[i].text) == len && !strncmp(v[i].text, text, len)) {
            v[i].count++;
            return;
        }
    if (*nv == cap) return;
    snprintf(v[*nv].text, sizeof v->text, "%.*s", (int)len, text);
    v[*nv].add = add;
    v[*nv].count = 1;
    (*nv)++;
}

/* The prefix that, stripped from the file's unused names or added to them, would make most of the
 * backbone match: each unused name votes for the difference between it and every backbone name
 * it ends with (or that ends with it). */
static const vote *best_prefix(const mn_init_report *rep, const mn_param_set *ps, enum mn_arch arch,
                               const char *prefix, vote *v, int cap)
{
    int nv = 0;
    size_t np = strlen(prefix);
    for (int k = 0; k < ps->n; k++) {
        const char *full = ps->items[k]->name;
        if (feature_stage(arch, prefix, full) < 0) continue;
        const char *rel = full + np;
        size_t lr = strlen(rel), lf = strlen(full);
        for (int i = 0; i < rep->n_unused; i++) {
            const char *u = rep->unused[i];
            size_t lu = strlen(u);
            if (lu > lf && !strcmp(u + lu - lf, full)) cast(v, &nv, cap, u, lu - lf, false);
            else if (lu > lr && !strcmp(u + lu - lr, rel)) cast(v, &nv, cap, u, lu - lr, false);
            else if (lr > lu && !strcmp(rel + lr - lu, u)) cast(v, &nv, cap, rel, lr - lu, true);
        }
    }
    const vote *best = NULL;
    for (int i = 0; i < nv; i++)
        if (!best || v[i].count > best->count) best = &v[i];
    return best;
}

/* What the file's names look like, from marks each layout leaves; *ours gets the model.backbone
 * value that builds it (NULL when this project has none). */
static const char *guess_layout(const mn_init_report *rep, const char **ours)
{
    static const struct {
        const char *mark, *what, *ours;
    } layouts[] = {
        {".body.", "a MutualNet or US-Net release checkpoint in its own layout (features.N.body.M); convert it with "
                   "tools/import_torchvision.py --weights FILE",
         NULL},
        {".conv.0.0.weight", "MobileNetV2 (torchvision's names)", "mobilenet_v2"},
        {"layer1.0.conv1.weight", "ResNet (torchvision's names)", "resnet50"},
        {".dw.0.weight", "MobileNetV1 (this project's names)", "mobilenet_v1"},
        {".block.0.0.weight", "torchvision's MobileNetV3 or EfficientNet, which this project does not build", NULL},
    };
    *ours = NULL;
    for (size_t l = 0; l < sizeof layouts / sizeof *layouts; l++)
        for (int i = 0; i < rep->n_unused; i++)
            if (strstr(rep->unused[i], layouts[l].mark)) {
                *ours = layouts[l].ours;
                return layouts[l].what;
            }
    return NULL;
}

/* A sentence naming the likely cause into out. */
static void diagnose(const mn_init_report *rep, const mn_param_set *ps, enum mn_arch arch, const char *prefix,
                     char *out, size_t size)
{
    const char *arch_name = mn_arch_name(arch);
    vote v[32];
    const vote *p = best_prefix(rep, ps, arch, prefix, v, 32);
    if (p && 2 * p->count >= rep->n_backbone) {
        snprintf(out, size,
                 "the file's names %s the prefix \"%s\" (%d backbone tensors would match %s it); %s it "
                 "(tools/import_torchvision.py strips \"module.\")",
                 p->add ? "lack" : "carry", p->text, p->count, p->add ? "with" : "without", p->add ? "add" : "strip");
        return;
    }
    const char *ours, *what = guess_layout(rep, &ours);
    if (what && ours && strcmp(ours, arch_name)) {
        snprintf(out, size, "the file looks like %s, this model is %s: set model.backbone=%s, or start from %s weights",
                 what, arch_name, ours, arch_name);
        return;
    }
    if (what && !ours) {
        snprintf(out, size, "the file looks like %s", what);
        return;
    }
    if (2 * rep->n_mismatched >= rep->n_backbone) {
        snprintf(out, size,
                 "%d tensors have this model's names but other shapes, e.g. %s: weights of another width "
                 "multiplier or variant of %s",
                 rep->n_mismatched, rep->mismatched[0], arch_name);
        return;
    }
    if (!rep->n_unused) {
        snprintf(out, size, "it holds nothing else (%d tensors of another shape, %d skipped as optimiser state, BN bank "
                 "or BN counters)", rep->n_mismatched, rep->n_skipped);
        return;
    }
    char model_name[128] = "";
    for (int k = 0; k < ps->n && !model_name[0]; k++)
        if (feature_stage(arch, prefix, ps->items[k]->name) == 1)
            snprintf(model_name, sizeof model_name, "%s", ps->items[k]->name + strlen(prefix));
    snprintf(out, size, "its names (%s%s%s%s) are not those of %s (%s, ...)", rep->unused[0], rep->n_unused > 1 ? ", " : "",
             rep->n_unused > 1 ? rep->unused[1] : "", rep->n_unused > 2 ? ", ..." : "", arch_name, model_name);
}

int mdl_init_from(mn_param_set *ps, const mn_config *cfg, const char *prefix, mn_init_report *rep)
{
    enum mn_arch arch;
    int rc = mn_arch_parse(cfg->model.backbone, &arch);
    if (rc) return rc;
    /* a mutualnet checkpoint's optimiser state and per-configuration statistics are not weights */
    static const char *const skip[] = {"optim.", "bn_bank."};
    rc = mn_checkpoint_init(cfg->model.init, ps, prefix, skip, 2, rep);
    if (rc) return rc;
    for (int k = 0; k < ps->n; k++) {
        if (feature_stage(arch, prefix, ps->items[k]->name) < 0) continue;
        rep->n_backbone++;
        rep->n_backbone_loaded += listed(rep->loaded, rep->n_loaded, ps->items[k]->name);
    }
    /* under 10% of the backbone: the wrong file, not a partial match worth training from */
    if (rep->n_backbone && 10 * rep->n_backbone_loaded < rep->n_backbone) {
        char why[512];
        diagnose(rep, ps, arch, prefix, why, sizeof why);
        rc = mn_error(MN_EINVAL,
                      "model.init %s: only %d of the %d tensors of this %s backbone are in the file with their name "
                      "and shape (%d tensors of the file fit nothing); %s",
                      cfg->model.init, rep->n_backbone_loaded, rep->n_backbone, cfg->model.backbone, rep->n_unused, why);
        mn_init_report_free(rep);
    }
    return rc;
}

int mdl_finetune(mn_param_set *ps, mn_slim_bn *const *bns /* (nb) */, int nb, const mn_config *cfg, const char *prefix)
{
    enum mn_arch arch;
    int rc = mn_arch_parse(cfg->model.backbone, &arch);
    if (rc) return rc;
    int frozen = cfg->model.frozen_stages; /* the stem is stage 0: k freezes stages 0..k-1 */
    for (int k = 0; k < ps->n; k++) {
        mn_param *p = ps->items[k];
        int s = feature_stage(arch, prefix, p->name);
        if (s < 0) continue;
        p->lr_mult = cfg->optim.backbone_lr_mult;
        if (s < frozen) p->var.requires_grad = false;
    }
    for (int i = 0; i < nb; i++) {
        int s = feature_stage(arch, prefix, bns[i]->gamma->name);
        if (s >= 0) bns[i]->frozen_stats = cfg->model.norm_eval || s < frozen;
    }
    return 0;
}
