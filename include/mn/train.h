/* The mutual-learning training driver (spec §1, §8.3) and its pieces. */
#ifndef MN_TRAIN_H
#define MN_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "fileio.h"   /* mn_mkdirs, for the tools that make run folders */
#include "progress.h"
#include "rng.h"

#define MN_MAX_SUBNETS 16

typedef struct mn_subnet {
    float width;        /* width multiplier */
    float scale;        /* input scale relative to the full network's */
} mn_subnet;

/* The networks of iteration `iter` (the sandwich rule): out[0] is the full width at scale 1;
 * then w_min and num_subnets - 2 uniform widths in [w_min, w_max), each with its own scale
 * drawn from mutual.scales (mutualnet), at scale 1 (usnet); independent mode gives one
 * network at mutual.width. Widths after the first are sorted descending. Depends only on
 * (seed, iter), so a resumed run draws the same networks. Returns the count. */
MN_API int mn_sandwich(const mn_config *c, uint64_t seed, int64_t iter, mn_subnet *out);

/* Learning rate at iteration iter (0-based): linear warm-up from lr * warmup_factor, then
 * cosine to 0 or poly (1 - t / T)^power over the remaining iterations. */
MN_API float mn_lr_at(const mn_config *c, int64_t iter);

/* How a training run starts and stops (mn_train). */
typedef struct mn_train_options {
    const char *resume;     /* a checkpoint to continue from; NULL starts afresh */
    int64_t stop_at;        /* > 0: end after that iteration as if interrupted (no final evaluation) */
    bool overwrite;         /* a fresh run may replace a run already in train.out_dir */
    bool allow_changes;     /* resume although keys that change the run differ from the checkpoint's */
    /* when non-NULL and set (by a SIGINT/SIGTERM handler): finish the current iteration, write a
     * checkpoint and return MN_ECANCELED */
    const volatile sig_atomic_t *stop;
    const mn_reporter *reporter;  /* progress and notices (mn/progress.h); NULL: silent */
    /* data-parallel training (mn/comm.h; NULL: one process): train.batch_size is the global batch,
     * each rank takes its slice of every batch in one process's order, draws the same sub-networks,
     * averages gradients once per iteration and (model.sync_bn) normalises with the whole batch's
     * statistics, so any rank count computes what one process computes, up to the order of float
     * sums. Rank 0 alone writes the run folder and reports; the others stay silent. */
    mn_comm *comm;
} mn_train_options;

/* Trains the configured task into train.out_dir, which it locks (train.lock) for the run:
 * last.safetensors (atomic; every checkpoint_every iterations, at the end and on a stop
 * request; never with a non-finite value), previous.safetensors (the checkpoint before it),
 * metrics.jsonl and config.json. A fresh run refuses a folder that holds a run unless
 * overwrite; a resumed one refuses a configuration that changes the run unless allow_changes,
 * and cuts metrics.jsonl back to the checkpoint's iteration. The final evaluation runs whenever
 * the last iteration is reached, a resume from the final checkpoint included. Any rank count
 * resumes from any checkpoint: the global batch, not the rank count, decides the data order. */
MN_API int mn_train(const mn_config *c, const mn_train_options *o);

/* Trains a segmenter as configured; resume: a checkpoint of the same run to continue from
 * (NULL to start afresh); stop_at as in mn_train_options: mn_train with those two options. */
MN_API int mn_train_segmentation(const mn_config *c, const char *resume, int64_t stop_at);

/* The same for a detector (task "detection", data.kind "coco"): full width at det.short_side,
 * sub-networks at det.short_side x their drawn scale (include/mn/det_model.h). Metrics lines add
 * the full network's four loss parts ("rpn_cls", "rpn_box", "cls", "box") and each sub-network's
 * short side (and "distill" when distilling); the final evaluation writes COCO AP on the
 * validation split to metrics.jsonl and the detections to <out_dir>/val_results.json. */
MN_API int mn_train_detection(const mn_config *c, const char *resume, int64_t stop_at);

/* The same for an image classifier (task "classification", data.kind "imagefolder"): the
 * backbone's own global-pool + linear head at output stride 32, cross-entropy for the full
 * network, mutual.gt_weight x cross-entropy and/or mutual.distill_weight x KL to the full
 * network's softmax for the sub-networks (the paper's recipe: gt_weight 0, distill "kl"). The
 * final evaluation writes top-1 and top-5 accuracy ("val_top1", "val_top5") to metrics.jsonl. */
MN_API int mn_train_classification(const mn_config *c, const char *resume, int64_t stop_at);

#endif
