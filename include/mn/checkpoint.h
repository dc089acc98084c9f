/* Model checkpoints: every parameter and buffer of an mn_param_set under its own name in a
 * safetensors file, plus any extra tensors (optimiser state, BN statistics per configuration)
 * and string metadata. Saving is atomic; loading validates the whole file against the set
 * (missing or unknown tensors, wrong dtype or shape) before a single value is copied. */
#ifndef MN_CHECKPOINT_H
#define MN_CHECKPOINT_H

#include "param.h"
#include "safetensors.h"

/* 0 when the n values are all finite; otherwise MN_ENUMERIC with a message naming file, tensor,
 * the first bad element and how many there are. */
MN_API int mn_check_finite(const float *v /* (n) */, int64_t n, const char *file, const char *tensor);

/* Writes ps (values only) and extra items to path; refuses (and writes nothing) when a float
 * tensor holds NaN or Inf, so a diverged model never replaces a good checkpoint. */
MN_API int mn_checkpoint_save(const char *path, const mn_param_set *ps, const mn_st_item *extra, int n_extra,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta);

/* The same keeping of each parameter i only its leading block keep[i] (keep[i][d] <= its shape;
 * keep[i][0] == 0: the whole tensor): a checkpoint of one narrow configuration of a slimmable
 * model, whose unused channels are cut away. keep may be NULL. */
MN_API int mn_checkpoint_save_cut(const char *path, const mn_param_set *ps, const int64_t (*keep)[MN_MAX_DIMS],
                                  const mn_st_item *extra, int n_extra, const char *const *meta_keys,
                                  const char *const *meta_values, int n_meta);

/* Copies every tensor of ps from st, refusing non-finite values. Tensors of st whose names start with one of the
 * `extra_prefixes` are left for the caller; any other tensor not in ps is an error, as is any
 * tensor of ps absent from st. Nothing is copied unless everything checks out. */
MN_API int mn_checkpoint_apply(const mn_safetensors *st, mn_param_set *ps, const char *const *extra_prefixes,
                               int n_prefixes);

/* The same for a file written by mn_checkpoint_save_cut: a tensor may be a leading block of its
 * parameter (same rank, no dim larger); the rest of the parameter is set to zero. */
MN_API int mn_checkpoint_apply_cut(const mn_safetensors *st, mn_param_set *ps, const char *const *extra_prefixes,
                                   int n_prefixes);

/* mn_st_read + mn_checkpoint_apply with no extra tensors allowed. */
MN_API int mn_checkpoint_load(const char *path, mn_param_set *ps);

/* What mn_checkpoint_init did, as PyTorch's load_state_dict(strict=False) reports it, with
 * shape mismatches kept apart. Every list holds malloc'd names, n_* of them. */
typedef struct mn_init_report {
    int n_loaded;        /* parameters (and buffers) filled from the file: name and shape match */
    int n_missing;       /* parameters the file has no tensor for: they keep their initial values */
    int n_mismatched;    /* parameters the file names with another shape or a non-float type: kept too */
    int n_unused;        /* tensors of the file that fill no parameter */
    int n_skipped;       /* tensors left out on purpose: skip_prefixes, PyTorch's num_batches_tracked */
    char **loaded, **missing, **unused;
    char **mismatched;   /* "name (file [a, b], model [c, d])" */
    /* filled by the model layer: its backbone's feature tensors, and how many of them were loaded */
    int n_backbone, n_backbone_loaded;
} mn_init_report;

/* Starts ps from the weights of the file at path wherever name and shape agree: a file tensor
 * fills the parameter of its own name, else the one with `prefix` in front (e.g. "backbone."
 * for a detector started from backbone weights under torchvision's names); every other
 * parameter keeps its value. Tensors whose names start with one of skip_prefixes are not
 * weights (a mutualnet checkpoint's "optim.", "bn_bank.") and are counted, not listed. The
 * whole file is checked (finite values) before a single value is copied. *rep is filled (free
 * it with mn_init_report_free); matching nothing is not an error here: the caller judges. */
MN_API int mn_checkpoint_init(const char *path, mn_param_set *ps, const char *prefix, const char *const *skip_prefixes,
                              int n_skip, mn_init_report *rep);
MN_API void mn_init_report_free(mn_init_report *rep);

#endif
