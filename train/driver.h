/* What the segmentation and detection paths do alike, written once: the checkpoint layout
 * (train/seg_model.c, train/det_model.c), the training loop (train/seg_train.c,
 * train/det_train.c) and the calibration loop (train/calibrate.c, train/det_calibrate.c).
 * Each task keeps what is its own and hands it in through a small table of callbacks.
 * Internal to the library: nothing here is exported. */
#ifndef MN_TRAIN_DRIVER_H
#define MN_TRAIN_DRIVER_H

#include <stdio.h>

#include "mn/calibrate.h"
#include "mn/config.h"
#include "mn/dataset.h"
#include "mn/optim.h"
#include "mn/query.h"
#include "mn/safetensors.h"
#include "mn/tape.h"
#include "mn/train.h"

/* ---- checkpoints ---- */

/* Writes ps, the optimiser's momentum buffers ("optim.<name>", with opt) and the table's BN
 * statistics ("bn_bank.<i>") to path, with the metadata "format", "task", "config", then the
 * task's own n_keys pairs, then "iteration", "optim_steps" and "query_table". */
int drv_ckpt_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                  const char *task, const char *const *keys /* (n_keys) */, const char *const *vals /* (n_keys) */,
                  int n_keys, const mn_sgd *opt, int64_t iteration);
/* The metadata value of key; NULL and an error naming the file when it is missing. */
const char *drv_ckpt_meta(const mn_safetensors *st, const char *key);
/* Into a model just built from the checkpoint's configuration: the weights, those BN statistics
 * as the trained ones (train_stats), and the query table from its JSON and "bn_bank.<i>". */
int drv_ckpt_load(const mn_safetensors *st, mn_param_set *ps, mn_slim_bn *const *bns /* (nb) */, int nb,
                  float *train_stats /* (table->n_stats) */, mn_query_table *table, const char *table_json);
/* Restores weights, momentum buffers and step count from path and returns the iteration saved;
 * with task, refuses another task's checkpoint first. */
int drv_ckpt_resume(const char *path, const char *task, mn_param_set *ps, mn_sgd *opt, int64_t *iteration);
/* The checkpoint of a model that a task name and a class list describe (segmentation,
 * classification): drv_ckpt_save with the metadata "classes" (a JSON list of the n names, stride
 * bytes apart from names) and "num_classes". */
int drv_named_save(const char *path, const mn_param_set *ps, const mn_query_table *table, const mn_config *cfg,
                   const char *task, const char *names /* (n, stride) */, size_t stride, int n, const mn_sgd *opt,
                   int64_t iteration);
/* Reads such a checkpoint into *st (freed on error) after checking its task: the configuration
 * over the defaults into cfg, lo..hi class names into *names (malloc'd, *n of them, stride bytes
 * each, truncated), and *table_json (inside st). */
int drv_named_open(const char *path, const char *task, int lo, int hi, size_t stride, mn_safetensors *st, mn_config *cfg,
                   char **names /* (*n, stride) */, int *n, const char **table_json);
/* Starts the backbone from a file of weights under torchvision's names. */
int drv_backbone_init(mn_param_set *ps, const char *path, const char *backbone);
/* Sizes the table's BN statistics for the layers and allocates the trained ones. */
int drv_stats_alloc(mn_query_table *table, mn_slim_bn *const *bns /* (nb) */, int nb, float **train_stats);

/* ---- the training loop ---- */

/* What every task's run holds. A task's trainer starts with one, so that the callbacks can
 * convert the drv_run pointer they get back to the trainer. */
typedef struct drv_run {
    const mn_config *c;
    mn_param_set *ps;           /* the model's parameters, set by ops->open */
    mn_sgd opt;
    mn_tape tape;
    mn_dataset *train, *val;
    mn_loader *loader;
    FILE *metrics;
    int lock_fd;                /* the run folder's train.lock, held for the whole run */
    char path_last[1100], path_prev[1100], path_metrics[1100];
} drv_run;

typedef struct drv_train_ops {
    /* Refuses a configuration the task cannot train (may be NULL). */
    int (*check)(drv_run *run);
    /* Opens run->train, run->val and run->loader, creates the model and sets run->ps. */
    int (*open)(drv_run *run);
    /* Restores the model and run->opt from a checkpoint; the iteration it was saved at. */
    int (*resume)(drv_run *run, const char *path, int64_t *iteration);
    /* Allocates what the passes need, once the model exists (may be NULL). */
    int (*buffers)(drv_run *run);
    /* The loader's next batch; NULL at the end of the epoch. */
    int (*next)(mn_loader *ld, const void **batch);
    /* Forward and backward of network k of iteration it on the batch, adding to the gradients;
     * the pass's loss through *loss. */
    int (*pass)(drv_run *run, const void *batch, const mn_subnet *sn, int64_t it, int k, double *loss);
    /* The task's own keys of a metrics line after "loss", each with a leading ", " (may be NULL). */
    void (*metrics_losses)(drv_run *run, FILE *f);
    /* One object of a metrics line's "subnets" list for network k. */
    void (*metrics_subnet)(drv_run *run, FILE *f, const mn_subnet *sn, int k, double loss);
    int (*save)(drv_run *run, const char *path, int64_t iteration);
    /* Scores the model on run->val, logs it and writes a metrics line. */
    int (*evaluate)(drv_run *run, int64_t iteration);
    /* Frees the model and the task's buffers. */
    void (*close)(drv_run *run);
} drv_train_ops;

/* Opens run->train and run->val from the configured splits; the training split must fill a batch. */
int drv_open_splits(drv_run *run);
/* The training loader's options: shuffled full batches, seeded by train.seed. */
mn_loader_options drv_loader_options(const mn_config *c);

/* For the tasks whose batches are whole images (segmentation, classification): the data
 * augmentation the configuration asks for (crop, rescale range, flip; train or eval), the
 * training loader (run->loader), its next-batch callback and a plain "subnets" metrics entry. */
mn_seg_aug drv_seg_aug(const mn_config *c, bool train);
int drv_open_image_loader(drv_run *run);
int drv_next_image_batch(mn_loader *ld, const void **batch);
void drv_metrics_subnet_plain(drv_run *run, FILE *f, const mn_subnet *sn, int k, double loss);

/* The mutual-learning run of every task (include/mn/train.h): run is the start of the task's
 * zeroed trainer; closes everything before returning. */
int drv_train(drv_run *run, const drv_train_ops *ops, const mn_config *c, const mn_train_options *o);
/* Each task's entry (train/seg_train.c, det_train.c, cls_train.c), dispatched by mn_train. */
int drv_train_segmentation(const mn_config *c, const mn_train_options *o);
int drv_train_detection(const mn_config *c, const mn_train_options *o);
int drv_train_classification(const mn_config *c, const mn_train_options *o);
/* Flushes the metrics log; an error naming the file when the disk refused a line. */
int drv_metrics_flush(drv_run *run);

/* ---- the calibration loop ---- */

typedef struct drv_calib_ops {
    const char *metric; /* the table's: "mIoU" | "AP" */
    /* Opens a loader of training batches with these options. */
    int (*open)(void *self, mn_dataset *train_set, const mn_loader_options *lo, mn_loader **ld);
    /* Calibrates the BN statistics at (width, size), then costs and scores that configuration. */
    int (*point)(void *self, mn_loader *ld, float width, const int *size /* (2) */, int batches, int64_t *macs,
                 double *score);
    /* How a progress line names a size. */
    void (*size_text)(char *buf, size_t n, const int *size /* (2) */);
} drv_calib_ops;

/* Calibrates, scores and costs every configuration of g into a fresh table of ops->metric,
 * keyed by (width, g->sizes[s]), and leaves the BN layers with the trained statistics. */
int drv_calib_table(const drv_calib_ops *ops, void *self, mn_query_table *table, mn_slim_bn *const *bns /* (nb) */,
                    int nb, const float *train_stats /* (table->n_stats) */, mn_dataset *train_set,
                    const mn_calib_config *g, int batch_size, int workers, uint64_t seed);
/* Resets the BN layers, then sets their statistics to the exact average over `batches` batches of
 * an image loader (started afresh, wrapping round when it has fewer) resized to h x w and run by
 * forward at width in training mode without gradients. */
int drv_calib_image_bn(mn_loader *ld, mn_slim_bn *const *bns /* (nb) */, int nb, float width, int h, int w, int batches,
                       int (*forward)(void *net, mn_run *r, mn_var *x /* (N, 3, h, w) */), void *net);
/* The input scales a calibration grid spans: scales (n_scales) when given, else those the run
 * trained at (a MutualNet's list, 1 for the other modes), their count into *n_scales. */
const float *drv_calib_scales(const mn_config *c, const float *scales, int *n_scales);

#endif
