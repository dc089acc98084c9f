/* The mutual-learning training driver (spec §1, §8.3) and its pieces. */
#ifndef MN_TRAIN_H
#define MN_TRAIN_H

#include <stdint.h>

#include "config.h"
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

/* A progress line on standard error: a bar with rate and ETA on a terminal, plain lines
 * (one every `every` updates) otherwise. */
typedef struct mn_progress {
    char what[32];
    int64_t total, start, done;
    double t0, last_print;
    bool tty;
    int every;
} mn_progress;

MN_API void mn_progress_begin(mn_progress *p, const char *what, int64_t total, int64_t start, int every);
/* done: units finished so far; items_per_unit: images per unit for the images/s figure (0 leaves the
 * figure out, for units of no fixed image count); extra: free text. */
MN_API void mn_progress_update(mn_progress *p, int64_t done, double items_per_unit, const char *extra);
MN_API void mn_progress_end(mn_progress *p);

/* Creates dir and any missing parents (a run folder); error naming the folder. */
MN_API int mn_mkdirs(const char *dir);

/* Monotonic seconds. */
MN_API double mn_now(void);

/* Trains a segmenter as configured; resume: a checkpoint of the same run to continue from
 * (NULL to start afresh). Writes <out_dir>/last.safetensors (atomic, every checkpoint_every
 * iterations and at the end), <out_dir>/metrics.jsonl and <out_dir>/config.json.
 * stop_at > 0 ends the run after that iteration as if interrupted (no final evaluation). */
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
