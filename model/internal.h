/* What the three task models (model/seg_model.c, det_model.c, cls_model.c) share, written once:
 * the checkpoint layout and the BN re-estimation loop of calibration. Internal to the model
 * layer and the layers above it: nothing here is exported. */
#ifndef MN_MODEL_INTERNAL_H
#define MN_MODEL_INTERNAL_H

#include "mn/calibrate.h"
#include "mn/checkpoint.h"
#include "mn/classes.h"
#include "mn/cls_model.h"
#include "mn/det_model.h"
#include "mn/seg_model.h"
#include "mn/config.h"
#include "mn/dataset.h"
#include "mn/optim.h"
#include "mn/query.h"
#include "mn/safetensors.h"
#include "mn/tape.h"

/* ---- checkpoints ---- */

/* A checkpoint of one configuration (mn_model_save_fixed): each parameter's leading block keep[i]
 * (keep[i][0] == 0: all of it), no per-configuration BN statistics (the one configuration's are
 * the parameters'), and the metadata "fixed_configuration" (fixed_json). */
typedef struct mdl_cut {
    const int64_t (*keep)[MN_MAX_DIMS];  /* (ps->n) */
    const char *fixed_json;
} mdl_cut;

/* Writes ps, the optimiser's momentum buffers ("optim.<name>", with opt) and the table's BN
 * statistics ("bn_bank.<i>") to path, with the metadata "format", "task", "config", then the
 * task's own n_keys pairs, then "iteration", "optim_steps" and "query_table". */
int mdl_ckpt_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                  const char *task, const char *const *keys /* (n_keys) */, const char *const *vals /* (n_keys) */,
                  int n_keys, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut);
/* The metadata value of key; NULL and an error naming the file when it is missing. */
const char *mdl_ckpt_meta(const mn_safetensors *st, const char *key);
/* Into a model just built from the checkpoint's configuration: the weights, those BN statistics
 * as the trained ones (train_stats), and the query table from its JSON and "bn_bank.<i>". */
int mdl_ckpt_load(const mn_safetensors *st, mn_param_set *ps, mn_slim_bn *const *bns /* (nb) */, int nb,
                  float *train_stats /* (table->n_stats) */, mn_query_table *table, const char *table_json);
/* Restores weights, momentum buffers and step count from path and returns the iteration saved;
 * with task, refuses another task's checkpoint first. */
int mdl_ckpt_resume(const char *path, const char *task, mn_param_set *ps, mn_sgd *opt, int64_t *iteration);
/* A model's class list: n names copied from names (a NULL entry or list gives "?"), with
 * `first` as name 0 when not NULL; a name of MN_CLASS_NAME_LEN bytes or more is refused. */
int mdl_class_names(mn_class_name **out /* (n), malloc'd */, int n, const char *const *names, const char *first);
/* The class list of a checkpoint's metadata (a JSON list of lo..hi strings) into *out. */
int mdl_class_names_parse(const char *path, const char *json, int lo, int hi, mn_class_name **out, int *n);
/* The names as a JSON list (malloc'd), or NULL when out of memory. */
char *mdl_class_names_json(const mn_class_name *names /* (n) */, int n);
/* The checkpoint of a model that a task name and a class list describe (segmentation,
 * classification): mdl_ckpt_save with the metadata "classes" (a JSON list of the n names) and
 * "num_classes". */
int mdl_named_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                   const char *task, const mn_class_name *names /* (n) */, int n, const mn_sgd *opt, int64_t iteration,
                   const mdl_cut *cut);
/* Each task's save with a cut (NULL: the task's public save). */
int mdl_seg_save(const mn_seg_model *m, const char *path, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut);
int mdl_det_save(const mn_det_model *m, const char *path, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut);
int mdl_cls_save(const mn_cls_model *m, const char *path, const mn_sgd *opt, int64_t iteration, const mdl_cut *cut);
/* Reads such a checkpoint into *st (freed on error) after checking its task: the configuration
 * over the defaults into cfg, lo..hi class names into *names (malloc'd, *n of them), and
 * *table_json (inside st). */
int mdl_named_open(const char *path, const char *task, int lo, int hi, mn_safetensors *st, mn_config *cfg,
                   mn_class_name **names /* (*n) */, int *n, const char **table_json);
/* Starts ps from cfg->model.init (mn_checkpoint_init: tensors whose name, or prefix + name, and
 * shape match; a mutualnet checkpoint's optimiser state and BN bank skipped) and counts the
 * backbone's feature tensors (those under prefix with a stage 0..4) loaded into rep. Refuses a
 * file that fills under 10% of them, nothing copied, with the likely cause: a prefix to strip or
 * add, another architecture, another width. */
int mdl_init_from(mn_param_set *ps, const mn_config *cfg, const char *prefix, mn_init_report *rep);
/* The fine-tuning controls on the backbone registered under prefix: optim.backbone_lr_mult as
 * its feature parameters' lr_mult; model.frozen_stages k: stages 0..k-1 (stem first) need no
 * gradient; their BN layers, and with model.norm_eval all of the backbone's, keep their running
 * statistics in training (mn_slim_bn.frozen_stats). A classifier is never frozen. */
int mdl_finetune(mn_param_set *ps, mn_slim_bn *const *bns /* (nb) */, int nb, const mn_config *cfg, const char *prefix);
/* Sizes the table's BN statistics for the layers and allocates the trained ones. */
int mdl_stats_alloc(mn_query_table *table, mn_slim_bn *const *bns /* (nb) */, int nb, float **train_stats);

/* Resets the BN layers, then sets their statistics to the exact average over `batches` batches of
 * an image loader (started afresh, wrapping round when it has fewer) resized to h x w and run by
 * forward at width in training mode without gradients. With comm (NULL: one process) the loader
 * gives this rank's slice of each batch and the statistics are the whole batch's (SyncBN); every
 * failure is agreed by all ranks. */
int mdl_calib_image_bn(mn_loader *ld, mn_slim_bn *const *bns /* (nb) */, int nb, float width, int h, int w, int batches,
                       int (*forward)(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */), void *net, mn_comm *comm);
/* The input scales a calibration grid spans: scales (n_scales) when given, else those the run
 * trained at (a MutualNet's list, 1 for the other modes), their count into *n_scales. */
const float *mdl_calib_scales(const mn_config *c, const float *scales, int *n_scales);

#endif
