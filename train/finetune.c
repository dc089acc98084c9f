/* What a run says at its start about the weights it starts from and the fine-tuning controls
 * (train/driver.h). */
#include <stdio.h>
#include <string.h>

#include "train/driver.h"

enum { SHOWN = 6 }; /* names listed per kind before "and N more" */

/* "a, b, c, ... and N more" into out. */
static void name_list(char *const *names, int n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; i < n && i < SHOWN && used < size; i++) {
        int w = snprintf(out + used, size - used, "%s%s", i ? ", " : "", names[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    if (n > SHOWN && used < size) snprintf(out + used, size - used, " and %d more", n - SHOWN);
}

void drv_report_start(const drv_run *run, const mn_init_report *r, const mn_param_set *ps)
{
    const mn_config *c = run->c;
    if (c->model.init[0]) {
        mn_report(run->rep, MN_LOG_INFO,
                  "model.init %s: loaded %d tensors (%d of the %d %s backbone tensors), re-initialised %d (%d not in "
                  "the file, %d of another shape), %d tensors of the file unused, %d skipped (optimiser state, BN "
                  "bank, BN counters)",
                  c->model.init, r->n_loaded, r->n_backbone_loaded, r->n_backbone, c->model.backbone,
                  r->n_missing + r->n_mismatched, r->n_missing, r->n_mismatched, r->n_unused, r->n_skipped);
        char list[1800];
        if (r->n_missing) {
            name_list(r->missing, r->n_missing, list, sizeof list);
            mn_report(run->rep, MN_LOG_INFO, "  re-initialised, not in the file (%d): %s", r->n_missing, list);
        }
        if (r->n_mismatched) {
            name_list(r->mismatched, r->n_mismatched, list, sizeof list);
            mn_report(run->rep, MN_LOG_INFO, "  re-initialised, another shape in the file (%d): %s", r->n_mismatched, list);
        }
        if (r->n_unused) {
            name_list(r->unused, r->n_unused, list, sizeof list);
            mn_report(run->rep, MN_LOG_INFO, "  unused tensors of the file (%d): %s", r->n_unused, list);
        }
    }
    if (c->model.frozen_stages || c->model.norm_eval || c->optim.backbone_lr_mult != 1.0f) {
        int frozen = 0;
        for (int i = 0; i < ps->n; i++)
            frozen += !(ps->items[i]->flags & MN_PARAM_BUFFER) && !ps->items[i]->var.requires_grad;
        char stages[96] = "no stage frozen";
        if (c->model.frozen_stages == 1) snprintf(stages, sizeof stages, "the stem frozen");
        else if (c->model.frozen_stages == 2) snprintf(stages, sizeof stages, "the stem and stage 1 frozen");
        else if (c->model.frozen_stages > 2)
            snprintf(stages, sizeof stages, "the stem and stages 1-%d frozen", c->model.frozen_stages - 1);
        mn_report(run->rep, MN_LOG_INFO,
                  "fine-tuning: %s (%d parameter tensors get no gradient and no update, their BN in eval mode), "
                  "backbone BN %s, backbone learning rate x %g",
                  stages, frozen, c->model.norm_eval ? "in eval mode (running statistics kept; calibration still re-estimates them)" : "in training mode",
                  (double)c->optim.backbone_lr_mult);
    }
}
