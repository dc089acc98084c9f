#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct mn_backbone {
    const mn_arch_impl *impl;
    void *state;
    mn_backbone_config cfg;
    mn_bn_list bns;
};

static const mn_arch_impl *const archs[] = {
    [MN_ARCH_MOBILENET_V2] = &mn_arch_mobilenet_v2,
    [MN_ARCH_MOBILENET_V1] = &mn_arch_mobilenet_v1,
    [MN_ARCH_RESNET50] = &mn_arch_resnet50,
};
enum { N_ARCHS = sizeof archs / sizeof *archs };

const char *mn_pname(char *buf, size_t size, const char *prefix, const char *fmt, ...)
{
    int n = snprintf(buf, size, "%s", prefix ? prefix : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, size - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

int mn_features_stage(const char *name, const int level_block[4])
{
    if (!strncmp(name, "classifier.", 11)) return MN_BACKBONE_STAGES;
    if (strncmp(name, "features.", 9) || name[9] < '0' || name[9] > '9') return -1;
    char *end;
    long k = strtol(name + 9, &end, 10);
    if (*end != '.') return -1;
    if (k == 0) return 0;
    for (int l = 0; l < 4; l++)
        if (k <= level_block[l]) return l + 1;
    return 4;
}

int mn_backbone_stage(enum mn_arch arch, const char *name)
{
    return (unsigned)arch < N_ARCHS ? archs[arch]->stage(name) : -1;
}

int mn_bn_list_add(mn_bn_list *l, mn_slim_bn *bn)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        mn_slim_bn **items = realloc(l->items, sizeof *items * (size_t)cap);
        if (!items) return mn_error(MN_ENOMEM, "out of memory listing BN layers");
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = bn;
    return 0;
}

const char *mn_arch_name(enum mn_arch a) { return (unsigned)a < N_ARCHS ? archs[a]->name : "?"; }

int mn_arch_parse(const char *s, enum mn_arch *a)
{
    for (int i = 0; i < N_ARCHS; i++)
        if (!strcmp(s, archs[i]->name)) {
            *a = (enum mn_arch)i;
            return 0;
        }
    return mn_error(MN_EINVAL, "unknown model \"%s\" (expected mobilenet_v2, mobilenet_v1 or resnet50)", s);
}

int mn_backbone_create(mn_backbone **out, const mn_backbone_config *cfg, mn_param_set *ps, const char *prefix,
                       mn_rng *rng)
{
    *out = NULL;
    if ((unsigned)cfg->arch >= N_ARCHS) return mn_error(MN_EINVAL, "unknown backbone architecture %d", cfg->arch);
    if (cfg->output_stride != 8 && cfg->output_stride != 16 && cfg->output_stride != 32)
        return mn_error(MN_EINVAL, "output_stride must be 8, 16 or 32, not %d", cfg->output_stride);
    mn_backbone *b = calloc(1, sizeof *b);
    if (!b) return mn_error(MN_ENOMEM, "out of memory creating a backbone");
    b->impl = archs[cfg->arch];
    b->cfg = *cfg;
    int rc = b->impl->create(&b->state, cfg, ps, prefix, rng, &b->bns);
    if (rc) {
        mn_backbone_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void mn_backbone_free(mn_backbone *b)
{
    if (!b) return;
    if (b->state) b->impl->destroy(b->state);
    free(b->bns.items);
    free(b);
}

const mn_backbone_config *mn_backbone_cfg(const mn_backbone *b) { return &b->cfg; }

int mn_backbone_forward(mn_backbone *b, mn_run *r, mn_var *x, mn_features *f, mn_var **logits)
{
    if (!x) return mn_error(MN_EINVAL, "%s: no input (%s)", b->impl->name, mn_last_error());
    if (x->val.ndim != 4 || x->val.shape[1] != 3) {
        char s[64];
        return mn_error(MN_ESHAPE, "%s: input must be (N, 3, H, W), got %s", b->impl->name,
                        mn_shape_str(&x->val, s, sizeof s));
    }
    if (r->width <= 0.0f || r->width > 1.0f)
        return mn_error(MN_EINVAL, "%s: width %g outside (0, 1]", b->impl->name, (double)r->width);
    return b->impl->forward(b->state, r, x, f, logits);
}

int mn_backbone_channels(const mn_backbone *b, float w, int level) { return b->impl->channels(b->state, w, level); }

int mn_backbone_bn_layers(mn_backbone *b, mn_slim_bn ***layers)
{
    *layers = b->bns.items;
    return b->bns.n;
}

int mn_backbone_flops(mn_backbone *b, float width, int h, int w_px, bool with_classifier, int64_t *macs,
                      int64_t *params)
{
    /* Run the real network once on a blank image without recording: the count then always
     * agrees with what the model executes. Eval-mode BN reads the running statistics only. */
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_tape_set_grad(&t, false);
    int64_t shape[4] = {1, 3, h, w_px};
    mn_var *x = mn_var_new(&t, 4, shape);
    int rc = x ? 0 : mn_last_error_code();
    mn_run r = {.tape = &t, .width = width, .training = false};
    if (!rc) {
        mn_tensor_fill(&x->val, 0.0f);
        mn_var *logits = NULL;
        rc = mn_backbone_forward(b, &r, x, NULL, with_classifier ? &logits : NULL);
    }
    mn_tape_free(&t);
    if (!rc) {
        *macs = r.macs;
        if (params) *params = r.params;
    }
    return rc;
}
