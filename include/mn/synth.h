/* The synthetic shapes data set: detection + segmentation data in the formats real data sets
 * use, generated in seconds so that everything can be trained and checked without downloads.
 *
 * Layout under out_dir (NNNNNN is the COCO image id, 1-based over the whole set):
 *   images/{train,val}/NNNNNN.jpg (or .png)   RGB images
 *   labels/{train,val}/NNNNNN.png              8-bit grey: 0 background, 1..K class index, 255 ignore
 *   annotations/instances_{train,val}.json     COCO instances (images, categories, annotations)
 *   splits/{train,val}.txt                     VOC-style image lists: one NNNNNN per line
 *   classes.txt                                "index name" per line, from "0 background" (the
 *                                              folder kind's class list, see dataset.h), after a
 *                                              "#" comment line giving each name's category id
 *
 * Classification layout (config.classification; the imagefolder kind of dataset.h reads it):
 *   {train,val}/<class name>/NNNNNN.jpg (or .png)   each image holds exactly one object (as if
 *                                                   max_objects were 1), filed under its class
 *   classes.txt                                     a "#" comment line, then one class name per
 *                                                   line in label order (class k = label k + 1)
 *   Images without an object (the empty 10th, 20th, ... of each split, or the rare image whose
 *   placement failed) are not written; nothing else (labels, JSON, split lists) is. A written
 *   image is byte-identical to what the normal layout writes for the same index and config
 *   with max_objects 1 and large_objects.
 *
 * Shapes and geometry
 * - Classes: circle, square, triangle, star, ring. Each has a fixed, non-contiguous COCO
 *   category id (1, 3, 7, 9, 13) whatever subset is chosen. Label indices are 1..K in increasing
 *   category id order (the usual COCO -> contiguous mapping, so a COCO loader and the label
 *   PNGs agree); classes.txt and the JSON categories carry the same names.
 * - Every object is ONE polygon ("segmentation": [[x1, y1, x2, y2, ...]]). A circle is a regular
 *   polygon with enough sides that no chord strays more than 1/4 pixel from the circle. A ring
 *   (annulus) is a "keyhole" polygon: the outer circle, a zero-width cut to the inner circle, the
 *   inner circle the other way round and back along the cut. Filling it (even-odd or nonzero,
 *   as COCO's rasteriser does) leaves the hole empty and its shoelace area is the annulus'.
 * - Polygons are clipped to the image rectangle [0, W] x [0, H] and rounded to 1/8 pixel. The
 *   bbox [x, y, w, h] is the tight box of the written polygon and the area its shoelace area, so
 *   JSON numbers are exact binary fractions and agree with each other exactly.
 * - Occlusion: objects are painted in annotation order (ids increase within an image) and later
 *   ones cover earlier ones. Polygons are the full (amodal, as COCO) shape; label PNGs show what
 *   is visible. A placement that would leave an earlier object with under min_visible (default
 *   40%) of its pixels visible (1: no overlap at all), or that covers under 12 pixel centres
 *   itself, is drawn again.
 * - Label PNG: pixel centres sampled by the even-odd rule; 255 on every pixel whose 8-neighbour
 *   pixels show a different object (a 2-pixel ignore band straddling each visible outline,
 *   like VOC's void border); no band along the image edge.
 * - Sizes: each object picks COCO's small / medium / large (area < 32^2, < 96^2, above) with
 *   probabilities 0.4 / 0.35 / 0.25, then an area log-uniform in that range (small from 64 px^2,
 *   large up to 30% of the image; ranges that do not fit the image are not drawn). Clipping at
 *   the border can make an object smaller; the JSON area is what counts.
 * - Large objects (config.large_objects, and always in the classification layout): an area
 *   log-uniform in 8% .. 35% of the image and a centre in the middle 40% of each side, so that
 *   every object is large in COCO's sense and mostly inside the image.
 *
 * Splits, empty images, determinism
 * - Image i (0-based) is in val when floor((i+1) f) > floor(i f), f = val_fraction: exactly
 *   floor(N f) val images, spread evenly (f = 0.2: every 5th image).
 * - Within each split the 10th, 20th, 30th, ... image holds no objects, so any split of 10 or
 *   more images has an empty one. Other images hold 1..max_objects (fewer when a placement
 *   fails 25 times).
 * - Image i draws all its randomness from mn_rng_split(seed, i): output is byte-identical for the
 *   same configuration whatever the number of threads, and differs between seeds. */
#ifndef MN_SYNTH_H
#define MN_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "image.h"

enum mn_shape { MN_SHAPE_CIRCLE, MN_SHAPE_SQUARE, MN_SHAPE_TRIANGLE, MN_SHAPE_STAR, MN_SHAPE_RING, MN_SHAPE_COUNT };

#define MN_SYNTH_MAX_OBJECTS 32

typedef struct mn_synth_config {
    const char *out_dir;          /* created if missing; must be empty unless force */
    int n_images;                 /* total over both splits, 1 .. 10,000,000 */
    int width, height;            /* pixels, 32 .. 8192 each */
    uint64_t seed;
    int n_classes;                /* entries used in classes[] */
    int classes[MN_SHAPE_COUNT];  /* enum mn_shape, increasing; label index = position + 1 */
    bool png;                     /* images as PNG (lossless) instead of JPEG */
    int jpeg_quality;             /* 1 .. 100 */
    double val_fraction;          /* in [0, 1) */
    int max_objects;              /* per non-empty image, 1 .. MN_SYNTH_MAX_OBJECTS */
    bool force;                   /* write into a non-empty out_dir, replacing files of the same names */
    bool classification;          /* write an imagefolder classification set (see layout) */
    bool large_objects;           /* objects of 8-35% of the image, centred (implied by classification) */
    double min_visible;           /* share of an object's pixels later objects must leave visible, [0.05, 1] */
} mn_synth_config;

/* Defaults: 300 images of 320x320, seed 0, all five classes, JPEG quality 90, 20% val, up to
 * 6 objects per image, 40% of each object left visible, out_dir NULL, the detection + segmentation
 * layout. */
MN_API void mn_synth_config_default(mn_synth_config *c);
/* Sets classes from a comma-separated list of names ("star,circle"), in any order; they are
 * stored in increasing category id order. */
MN_API int mn_synth_set_classes(mn_synth_config *c, const char *list);
/* "circle", ... or NULL for a bad value. */
MN_API const char *mn_shape_name(int shape);
/* The COCO category id of a shape (1, 3, 7, 9, 13), or -1 for a bad value. */
MN_API int mn_shape_category_id(int shape);
/* Checks every field but out_dir; the message names the field at fault. */
MN_API int mn_synth_check_config(const mn_synth_config *c);
/* The split of image `index`: 0 train, 1 val; *local (may be NULL) gets its 0-based position
 * within that split. */
MN_API int mn_synth_split_of(const mn_synth_config *c, int index, int *local);

typedef struct mn_synth_object {
    int shape;        /* enum mn_shape */
    int label;        /* label index 1..K */
    int n;            /* vertices */
    double *xy;       /* (n, 2) the written polygon: clipped, rounded (malloc'd) */
    double bbox[4];   /* x, y, w, h */
    double area;      /* shoelace area of xy */
} mn_synth_object;

typedef struct mn_synth_sample {
    mn_image image;   /* (h, w, 3) */
    mn_image label;   /* (h, w, 1) label indices as written to the PNG */
    int n_objects;
    mn_synth_object objects[MN_SYNTH_MAX_OBJECTS]; /* in painting order */
} mn_synth_sample;

/* Renders image `index` of the set in memory (what mn_synth_generate writes for it). */
MN_API int mn_synth_render(const mn_synth_config *c, int index, mn_synth_sample *out);
MN_API void mn_synth_sample_free(mn_synth_sample *s);

typedef struct mn_synth_stats {
    int n_train, n_val;                /* images written (classification: without the skipped empty ones) */
    int n_empty;                       /* images written without objects (classification: 0) */
    int n_objects;                     /* annotations over both splits */
    int n_small, n_medium, n_large;    /* annotations by COCO area range */
} mn_synth_stats;

/* Writes the whole data set (layout above). Refuses a non-empty out_dir unless c->force.
 * Images are made in parallel (OpenMP); stats may be NULL. */
MN_API int mn_synth_generate(const mn_synth_config *c, mn_synth_stats *stats);

#endif
