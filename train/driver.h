/* The training loop the three tasks share (train/seg_train.c, det_train.c, cls_train.c): run
 * folder, lock, resume checks, checkpoints, metrics, stop requests. Each task keeps what is its
 * own and hands it in through a small table of callbacks. Internal to the train layer: nothing
 * here is exported. */
#ifndef MN_TRAIN_DRIVER_H
#define MN_TRAIN_DRIVER_H

#include <stdio.h>

#include "mn/checkpoint.h"
#include "mn/config.h"
#include "mn/dataset.h"
#include "mn/optim.h"
#include "mn/query.h"
#include "mn/safetensors.h"
#include "mn/tape.h"
#include "mn/train.h"

/* ---- the training loop ---- */

/* What every task's run holds. A task's trainer starts with one, so that the callbacks can
 * convert the drv_run pointer they get back to the trainer. */
typedef struct drv_run {
    const mn_config *c;
    mn_comm *comm;              /* data-parallel ranks (NULL: one process) */
    int rank, ranks;            /* mn_comm_rank / mn_comm_size of comm */
    double reduce_seconds;      /* several ranks: time spent averaging gradients since the last metrics line */
    double data_seconds;        /* time spent waiting for the loader's batches since the last metrics line */
    float *bucket;              /* several ranks: the gradient-averaging buffer, kept for the run */
    mn_param_set *ps;           /* the model's parameters, set by ops->open */
    mn_sgd opt;
    mn_tape tape;
    mn_dataset *train, *val;
    mn_loader *loader;
    FILE *metrics;
    const mn_reporter *rep;     /* where progress and notices go (the caller's; may be NULL) */
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
/* The training loader's options: shuffled full batches, seeded by train.seed, this rank's slice of each. */
mn_loader_options drv_loader_options(const drv_run *run);
/* The communicator a training pass's BN layers synchronise over (mn_run.sync_bn): run->comm with
 * more than one rank when model.sync_bn, else NULL. */
mn_comm *drv_sync_bn(const drv_run *run);
/* The factor that makes this rank's mean over its `mine` counted elements (pixels, samples) a share
 * of the mean over every rank's: mine x ranks / total, with total reduced over the ranks (1 for one
 * process), so that averaging the ranks' gradients gives the gradient of the global mean. */
int drv_mean_share(drv_run *run, int64_t mine, float *factor);

/* For the tasks whose batches are whole images (segmentation, classification): the data
 * augmentation the configuration asks for (crop, rescale range, flip; train or eval), the
 * training loader (run->loader), its next-batch callback and a plain "subnets" metrics entry. */
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

/* Start-of-run notices (train/finetune.c): what model.init loaded, re-initialised and left
 * unused (r, counts and abbreviated names), and the fine-tuning controls in force over ps. */
void drv_report_start(const drv_run *run, const mn_init_report *r, const mn_param_set *ps);

#endif
