/* The detection targets that data sets produce and detectors consume: plain structs, so that the
 * heads need nothing from the data set layer. */
#ifndef MN_TARGETS_H
#define MN_TARGETS_H

#include <stdbool.h>

typedef struct mn_box {
    float x1, y1, x2, y2;    /* pixels, x2 > x1, y2 > y1 */
    int label;               /* contiguous class index 1..K (0 is background) */
    bool crowd;              /* iscrowd: excluded from training targets */
} mn_box;

/* Where an image sits in its padded batch tensor. */
typedef struct mn_det_image {
    int h, w;                    /* valid (resized, unpadded) region, top-left of the padded image */
    float scale;                 /* resize factor (float32, as torchvision computes it) */
    bool flipped;                /* mirrored horizontally */
    int orig_h, orig_w;          /* size of the original image (0: h / scale, w / scale) */
    int position;                /* its place in the global batch (data-parallel training: the
                                  * samplers' random draws for the image are keyed by it) */
} mn_det_image;

#endif
