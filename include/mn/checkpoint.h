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

/* Copies every tensor of the file at path whose name, with `prefix` in front, is a parameter of
 * ps (others, e.g. an ImageNet classifier, are skipped): how a detector or segmenter starts from
 * backbone weights saved under torchvision's names. Shapes are checked for all before any copy;
 * a file matching nothing is an error. *copied gets the count (may be NULL). */
MN_API int mn_checkpoint_apply_prefixed(const char *path, mn_param_set *ps, const char *prefix, int *copied);
/* The same, except that a tensor whose full name starts with head_prefix and whose shape differs
 * from its parameter's is left out (the parameter keeps its initial values): a classifier of
 * another class count, when a model starts from weights trained on other classes. *skipped
 * counts those (may be NULL). */
MN_API int mn_checkpoint_apply_head(const char *path, mn_param_set *ps, const char *prefix, const char *head_prefix,
                                    int *copied, int *skipped);

#endif
