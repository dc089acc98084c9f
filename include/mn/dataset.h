/* Data sets behind one interface, a registry of kinds, transforms and a prefetching loader.
 *
 * Kinds: "voc" (JPEGImages + SegmentationClass palette PNGs + ImageSets/Segmentation lists),
 * "cityscapes" (leftImg8bit + gtFine *_labelIds.png mapped to the 19 train ids), "folder"
 * (a folder of images and a folder of index PNGs with the same stems, plus a class list),
 * "coco" (COCO instances JSON: boxes, for detection), "imagefolder" (ImageNet / torchvision
 * layout for image-level classification: {split}/<class name>/<image>, classes from classes.txt
 * or the sorted subfolder names). Every kind yields mn_sample's. */
#ifndef MN_DATASET_H
#define MN_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "progress.h"
#include "rng.h"
#include "targets.h"
#include "tensor.h"  /* MN_MAX_BATCH */

#define MN_IGNORE_LABEL 255

typedef struct mn_sample {
    mn_image image;          /* (H, W, 3) RGB */
    mn_image label;          /* (H, W, 1) class indices, 255 = ignore; data NULL when the kind has none */
    mn_box *boxes;           /* n_boxes detection targets (malloc'd), NULL for segmentation kinds */
    int n_boxes;
    int class_id;            /* image-level class 0..K-1 (imagefolder kind); -1 for the other kinds */
    int64_t image_id;        /* COCO image id, else the index */
    char name[256];          /* file stem, for naming outputs */
} mn_sample;

MN_API void mn_sample_free(mn_sample *s);

/* An annotation that the data set drops at open rather than train on, and why. */
typedef struct mn_dataset_issue {
    char file[1024];             /* the annotations file */
    int index;                   /* its position in the JSON's "annotations" array */
    int64_t id;                  /* its "id", or -1 when it has no usable one */
    int64_t image_id, category_id;
    char reason[160];            /* e.g. "category_id 99 is not in \"categories\"" */
} mn_dataset_issue;

typedef struct mn_dataset_options {
    const char *kind;        /* "voc" | "cityscapes" | "folder" | "coco" | "imagefolder" */
    const char *root;        /* data set root folder */
    const char *split;       /* "train", "val", ... */
    /* folder kind: images and labels folders under root ("{split}" is replaced; NULL:
     * "images/{split}", "labels/{split}") and a class list file (NULL: "classes.txt"; one
     * "index name" or "name" per line; root-relative unless absolute, else as given from the
     * working directory) */
    /* imagefolder kind: `images` is the split folder holding one subfolder per class (NULL:
     * "{split}"); `classes` an optional class list (NULL: "classes.txt", same path rule; one
     * "name" or "index name" per line, class k = k-th name; a list named other than "classes.txt"
     * must exist); without the file the classes are
     * the subfolder names sorted by strcmp. Images are ordered by (class, file name); labels unused */
    const char *images, *labels, *classes;
    int void_index;          /* folder kind: this label value becomes ignore; -1: none (a zeroed
                              * struct means 0, i.e. class 0 ignored: always set it) */
    /* coco kind: the instances JSON (NULL: "annotations/instances_{split}.json"); images
     * come from `images` */
    const char *annotations;
    /* Largest width x height of an image (and label) file, checked from its header before
     * decoding; 0: the image layer's default. The coco kind also refuses JSON image sizes above
     * it at open. */
    int64_t max_pixels;
    /* where notices go (annotations skipped, a split list missing); NULL: nowhere */
    const mn_reporter *reporter;
    /* coco kind: keep each annotation dropped at open (mn_dataset_annotation_issues) */
    bool record_issues;
} mn_dataset_options;

typedef struct mn_dataset mn_dataset;

/* What a split's box annotations give (kinds with boxes: coco), counted at open. */
typedef struct mn_box_stats {
    int64_t annotations;       /* entries of the annotations array */
    int64_t usable;            /* boxes a detector trains on: not crowd, positive area inside the image */
    int64_t crowd;             /* crowd regions kept (not targets; they only excuse detections) */
    int64_t degenerate;        /* skipped: zero or negative width or height, or no area inside the image */
    int64_t unknown_image;     /* skipped: image_id not in "images" */
    int64_t unknown_category;  /* skipped: category_id not in "categories" */
    int64_t images_with_boxes; /* images holding at least one kept box (usable or crowd) */
} mn_box_stats;

typedef struct mn_dataset_kind {
    const char *name;
    int (*open)(void **state, const mn_dataset_options *o);
    int (*size)(const void *state);
    /* loads sample i; must be safe to call from several threads for different i */
    int (*get)(void *state, int i, mn_sample *out);
    int (*num_classes)(const void *state);             /* including background / index 0 (imagefolder: K, no background) */
    const char *(*class_name)(const void *state, int k);
    void (*close)(void *state);
    /* optional (NULL when the kind has none): the file's own category id of label k (COCO),
     * and the instance mask of box j of sample i (same contract as mn_dataset_mask) */
    int (*category_id)(const void *state, int k);
    int (*mask)(void *state, int i, int j, mn_image *out);
    /* optional: the box counts of mn_dataset_box_stats */
    int (*box_stats)(const void *state, mn_box_stats *out);
    /* optional: the annotations dropped at open (mn_dataset_annotation_issues) */
    void (*issues)(const void *state, const mn_dataset_issue **out, int *n);
} mn_dataset_kind;

MN_API int mn_dataset_open(mn_dataset **out, const mn_dataset_options *o);
MN_API void mn_dataset_close(mn_dataset *d);
MN_API int mn_dataset_size(const mn_dataset *d);
MN_API int mn_dataset_get(mn_dataset *d, int i, mn_sample *out);
MN_API int mn_dataset_num_classes(const mn_dataset *d);
MN_API const char *mn_dataset_class_name(const mn_dataset *d, int k);
MN_API const char *mn_dataset_kind_name(const mn_dataset *d);
/* The data set's own category id of contiguous label k, for writing results files: the coco
 * kind maps 1..K back to the JSON's category ids (-1 for any other k); kinds without ids
 * return k itself. */
MN_API int mn_dataset_category_id(const mn_dataset *d, int k);
/* The instance mask of box j of sample i (j indexes mn_sample.boxes): out = (H, W, 1) at the
 * image size the annotations give, 1 inside the object and 0 elsewhere, rasterised from the
 * annotation's polygons or RLE. Errors for kinds without masks and for annotations that have
 * no segmentation. Safe to call from several threads. */
MN_API int mn_dataset_mask(mn_dataset *d, int i, int j, mn_image *out);
/* The box counts of a split, for refusing one with nothing to train on (out->usable == 0) or
 * reporting what was skipped. MN_EINVAL (and *out zeroed) for kinds without boxes. */
MN_API int mn_dataset_box_stats(const mn_dataset *d, mn_box_stats *out);

/* ---- transforms (datasets/transforms.c) ---- */

typedef struct mn_seg_aug {
    int crop_h, crop_w;          /* output size (multiples of 32) */
    float scale_min, scale_max;  /* random rescale range before cropping (1, 1: none) */
    bool hflip;                  /* random horizontal flip */
    bool train;                  /* false: no randomness; resize to crop size (eval) */
    float mean[3], std[3];       /* normalisation on [0, 1] pixel values */
} mn_seg_aug;

MN_API void mn_seg_aug_default(mn_seg_aug *a, int crop_h, int crop_w, bool train);

/* Turns one sample into a normalised float image and a label map of the crop size:
 * image_chw (3, crop_h, crop_w), label_hw (crop_h, crop_w) int32 (255 in padding) or NULL. Images are
 * resized bilinearly, labels with nearest neighbour. A sample without a label map (label.data
 * NULL, e.g. imagefolder) gets label_hw all 255. */
MN_API int mn_seg_transform(const mn_seg_aug *a, const mn_sample *s, mn_rng *rng, float *image_chw,
                            int32_t *label_hw);

/* ---- classification transforms (datasets/cls_transforms.c) ----
 * torchvision's ImageNet pipeline. Training: RandomResizedCrop (a box of a random fraction of
 * the image's area and a random aspect ratio, ten draws, else the central box of the widest
 * allowed ratio) resized to the crop, then a random horizontal flip. Evaluation: the image
 * resized to cover size / crop_fraction (Resize(256) for 224 at 0.875), then the centre crop.
 * Resizing is bilinear with align_corners = False and no antialiasing (torchvision's tensor path
 * with antialias=False), each output pixel sampled from inside the box only. */

typedef struct mn_cls_aug {
    int out_h, out_w;            /* output size */
    bool train;                  /* false: resize + centre crop, no randomness */
    float area_min, area_max;    /* train: crop box area as a fraction of the image's (0.08, 1) */
    float ratio_min, ratio_max;  /* train: crop box width / height (3/4, 4/3) */
    bool hflip;                  /* train: random horizontal flip */
    float crop_fraction;         /* eval: centre crop / resized image side (0.875) */
    float mean[3], std[3];       /* normalisation on [0, 1] pixel values */
} mn_cls_aug;

/* torchvision's defaults for an out_h x out_w input; flips when train; ImageNet statistics. */
MN_API void mn_cls_aug_default(mn_cls_aug *a, int out_h, int out_w, bool train);
/* The source box (y, x, h, w) in image pixels that the transform reads for an ih x iw image:
 * random draws from rng when a->train (rng may be NULL otherwise). */
MN_API int mn_cls_crop_box(const mn_cls_aug *a, int ih, int iw, mn_rng *rng, int box[4]);
/* One sample into a normalised image_chw (3, out_h, out_w): its crop box resized, flipped when
 * drawn. The rng draws are the box's, then the flip's. */
MN_API int mn_cls_transform(const mn_cls_aug *a, const mn_sample *s, mn_rng *rng, float *image_chw /* (3, out_h, out_w) */);

/* ---- detection transforms (datasets/det_transforms.c) ----
 * torchvision's detection pipeline: optional horizontal flip, then GeneralizedRCNNTransform's
 * resize (scale = min(min_size / short side, max_size / long side) in float32, output sides
 * floor(side * scale), bilinear with align_corners = False), normalisation, and zero padding
 * at the bottom and right to a multiple of size_divisible for the whole batch. */

typedef struct mn_det_aug {
    int min_size;                /* short side after resizing (torchvision 800) */
    int max_size;                /* cap on the long side (1333) */
    int size_divisible;          /* batch padding multiple (32) */
    bool hflip;                  /* random horizontal flip with probability 0.5 */
    float min_box;               /* after resizing and clipping to the image, boxes with a side
                                  * <= min_box are dropped (0: only empty boxes) */
    float mean[3], std[3];       /* normalisation on [0, 1] pixel values */
} mn_det_aug;

/* min_size / max_size as given, divisible 32, flip when train, ImageNet statistics. */
MN_API void mn_det_aug_default(mn_det_aug *a, int min_size, int max_size, bool train);
/* The resized size of an h x w image and its scale factor. */
MN_API int mn_det_resize_shape(const mn_det_aug *a, int h, int w, int *oh, int *ow, float *scale);
/* One sample into the top-left of a zeroed-padding image_chw (3, ph, pw) (ph, pw at least the
 * resized size); boxes_out (room for s->n_boxes) gets the boxes scaled per axis by
 * resized / original, mirrored when flipped, clipped to the resized image, degenerate ones
 * dropped (crowd flags and labels kept), *n_out their number; info describes the placement. */
MN_API int mn_det_transform(const mn_det_aug *a, const mn_sample *s, mn_rng *rng, float *image_chw /* (3, ph, pw) */,
                            int ph, int pw, mn_box *boxes_out /* (s->n_boxes) */, int *n_out, mn_det_image *info);

/* ---- batches (datasets/loader.c) ---- */

typedef struct mn_seg_batch {
    int n, h, w;
    float *images;               /* (n, 3, h, w) */
    int32_t *labels;             /* (n, h, w) */
    int index[MN_MAX_BATCH];     /* data set indices of the samples */
} mn_seg_batch;

/* A classification batch: images of one size and their image-level classes. */
typedef struct mn_cls_batch {
    int n, h, w;
    float *images;               /* (n, 3, h, w) */
    int index[MN_MAX_BATCH];     /* data set indices of the samples */
    int32_t classes[MN_MAX_BATCH]; /* class_id of each sample */
} mn_cls_batch;

/* A detection batch: images of different sizes resized by short side, padded together. */
typedef struct mn_det_batch {
    int n, h, w;                 /* h, w: padded size, multiples of size_divisible */
    float *images;               /* (n, 3, h, w), zero beyond each image's valid region */
    mn_det_image info[MN_MAX_BATCH];
    mn_box *boxes[MN_MAX_BATCH]; /* n_boxes[i] boxes of image i in padded-image pixels (crowd kept) */
    int n_boxes[MN_MAX_BATCH];
    int index[MN_MAX_BATCH];     /* data set indices */
    int64_t image_id[MN_MAX_BATCH]; /* the samples' image ids (COCO ids) */
    size_t cap_images;           /* floats allocated in images (owned memory, grown as needed) */
    int cap_boxes[MN_MAX_BATCH];
} mn_det_batch;

/* The same batch at another short side, for a sub-network's input scale: each valid region is
 * resampled bilinearly to the size torchvision's rule gives the ORIGINAL image at short side
 * min_size (long side capped at a->max_size), so sizes agree with transforming the samples
 * directly (the pixels are already normalised, which resizing commutes with); boxes are scaled
 * per axis, clipped, degenerate ones dropped; the batch is padded to a->size_divisible. dst owns
 * its memory: zero it before first use, reuse it, release it with mn_det_batch_free. */
MN_API int mn_det_batch_resize(mn_det_batch *dst, const mn_det_batch *src, const mn_det_aug *a, int min_size);
/* The same padded to at least pad_h x pad_w (0: what its own images need): a data-parallel rank
 * pads its part as the whole batch would be padded (the largest over every rank's images). */
MN_API int mn_det_batch_resize_pad(mn_det_batch *dst, const mn_det_batch *src, const mn_det_aug *a, int min_size,
                                   int pad_h, int pad_w);
/* The padded size mn_det_batch_resize gives src at short side min_size. */
MN_API int mn_det_batch_resized_size(const mn_det_batch *src, const mn_det_aug *a, int min_size, int *pad_h,
                                     int *pad_w);
MN_API void mn_det_batch_free(mn_det_batch *b);

typedef struct mn_loader mn_loader;

typedef struct mn_loader_options {
    int batch_size;
    bool shuffle;                /* reshuffled each epoch from the seed */
    bool drop_last;
    int workers;                 /* background threads (0: load in the caller's thread) */
    int prefetch;                /* batches ready ahead (default 2) */
    uint64_t seed;               /* shuffling and augmentation: batch contents depend only on
                                  * (seed, epoch, position), never on thread timing */
    int rank, ranks;             /* data-parallel: this process takes positions [rank B / ranks,
                                  * (rank + 1) B / ranks) of every batch of B (batch_size is the
                                  * global batch, a multiple of ranks); ranks 0 or 1: all of it.
                                  * The order and each sample's augmentation stay those of one
                                  * process, and detection pads to the whole batch's largest image */
} mn_loader_options;

MN_API int mn_loader_open(mn_loader **out, mn_dataset *d, const mn_seg_aug *aug, const mn_loader_options *o);
/* A loader of detection batches (mn_loader_next_det) with the same threading, ordering and
 * determinism guarantees; the data set kind must provide boxes (coco). Images without
 * annotations are kept (n_boxes 0). */
MN_API int mn_loader_open_det(mn_loader **out, mn_dataset *d, const mn_det_aug *aug, const mn_loader_options *o);
/* A loader of classification batches (mn_loader_next_cls); every sample must have a class. */
MN_API int mn_loader_open_cls(mn_loader **out, mn_dataset *d, const mn_cls_aug *aug, const mn_loader_options *o);
/* Starts an epoch at batch `first` (for resuming mid-epoch). */
MN_API int mn_loader_start(mn_loader *l, int epoch, int first);
/* *out = the next batch of the epoch (owned by the loader, valid until the next call), or
 * NULL at the end of the epoch. Errors (a corrupt image, ...) return a negative code whose
 * message names the file. */
MN_API int mn_loader_next(mn_loader *l, const mn_seg_batch **out);
/* The detection counterpart of mn_loader_next (a loader opened with mn_loader_open_det; each
 * kind of loader refuses the other's call). */
MN_API int mn_loader_next_det(mn_loader *l, const mn_det_batch **out);
/* The classification counterpart (a loader opened with mn_loader_open_cls). */
MN_API int mn_loader_next_cls(mn_loader *l, const mn_cls_batch **out);
/* The images of the next batch of a segmentation or classification loader, whatever its kind:
 * *n = 0 at the end of the epoch (BN calibration needs nothing else). */
MN_API int mn_loader_next_images(mn_loader *l, int *n, int *h, int *w, const float **images /* (n, 3, h, w) */);
MN_API int mn_loader_batches_per_epoch(const mn_loader *l);
MN_API void mn_loader_close(mn_loader *l);

/* ---- checking a data set (datasets/dataset.c, datasets/coco.c; `mutualnet data check`) ---- */

/* The value in the data set's own files that becomes class index k: the label PNG value
 * (folder and voc: k itself; cityscapes: the label id of train id k), the COCO category id
 * (coco), or -1 where no value exists (coco's background 0, every imagefolder class, whose
 * source is its folder name, and k outside the classes). */
MN_API int mn_dataset_class_value(const mn_dataset *d, int k);


/* Every annotation that opening the data set dropped (an image_id or category_id the file does
 * not define, a box of zero or negative width or height, a box with no area inside its image),
 * in file order: *out (owned by d, valid while it is open) and *n. Recorded only when it was
 * opened with record_issues; kinds without annotations (all but coco) give *n = 0. */
MN_API int mn_dataset_annotation_issues(const mn_dataset *d, const mn_dataset_issue **out /* (*n) */, int *n);

#endif
