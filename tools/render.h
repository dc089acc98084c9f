/* One image's prediction drawn the way `mutualnet predict` writes it: the label map or the
 * detections, and the overlay titled with the configuration and its cost. predict and story both
 * draw through these functions, so a story cell is exactly predict's overlay. Nothing here prints:
 * errors come back as codes with mn_last_error() set. */
#ifndef MN_TOOLS_RENDER_H
#define MN_TOOLS_RENDER_H

#include <stdint.h>

#include "mn/det_eval.h"
#include "mn/det_model.h"
#include "mn/image.h"
#include "mn/seg_eval.h"
#include "mn/seg_model.h"
#include "mn/tape.h"

/* A configuration as chosen by mn_choice_apply / mn_choice_apply_det, with its cost.
 * Segmentation: input h x w. Detection: h is the short side, w is unused. */
typedef struct mn_render_config {
    float width;
    int h, w;
    int64_t macs;
} mn_render_config;

/* The segmenter at cfg on img: *labels (1 channel, img's size, class index per pixel) and *overlay
 * (mn_viz_seg_overlay_titled at opacity alpha, titled "width W  HxW  G GMACs"). The model's BN
 * statistics must already be those of cfg. On error both are left zeroed. */
int mn_render_seg(mn_seg_model *m, mn_tape *t, const mn_image *img, const mn_render_config *cfg, float alpha,
                  mn_image *labels, mn_image *overlay);

/* The detector at cfg on img: *dets (malloc'd, *n of them, every score) and *overlay (the
 * detections scoring at least thr, titled "width W  short side S  G GMACs", or a brief title when
 * that one would not fit the image's width). The model's BN statistics must already be those of
 * cfg. On error *dets is NULL, *n 0 and *overlay zeroed. */
int mn_render_det(mn_det_model *m, mn_tape *t, const mn_image *img, const mn_render_config *cfg, float thr,
                  mn_detection **dets, int *n, mn_image *overlay);

#endif
