/* Export of one configuration of a slimmable model, found by tracing one pass at that width and
 * input size (mn/trace.h): only the channels that width reads are kept.
 *
 * - A compact checkpoint (.safetensors): mn_model_save_fixed with the leading block of each
 *   parameter the pass read; it opens, evaluates and predicts like any checkpoint.
 * - ONNX (opset 13): the network with its calibrated BN folded into the convolutions, its class
 *   names, input size and normalisation in the metadata. Segmentation: input (1, 3, h, w) ->
 *   "logits" (1, K, h/4, w/4) for DeepLabV3+ (h/16 for V3; resize them to the image and take the
 *   argmax, as predict does). Classification: input (1, 3, h, w) -> "logits" (1, K). Detection:
 *   two files, because the part between them (anchors, proposals, multi-level RoIAlign, box
 *   decoding, per-class NMS) is data-dependent control flow that ONNX's fixed operators do not
 *   reproduce: FILE (input (1, 3, H, W) -> "p2".."p6" FPN maps, "objectness2".."objectness6" and
 *   "deltas2".."deltas6" RPN maps) and FILE with ".box_head.onnx" (pooled (N, C, 7, 7) ->
 *   "class_logits" (N, K), "box_deltas" (N, 4K)). */
#ifndef MN_EXPORT_H
#define MN_EXPORT_H

#include "image.h"
#include "model.h"

/* The leading block of every parameter that the pass at (width, h x w) reads: *keep is malloc'd,
 * (params->n) rows; a row of zeros is a parameter the pass does not read. */
MN_API int mn_export_keep(mn_model *m, float width, int h, int w, int64_t (**keep)[MN_MAX_DIMS]);

/* The compact checkpoint of (width, h x w) at path; source names the checkpoint it came from. */
MN_API int mn_export_compact(mn_model *m, float width, int h, int w, const char *path, const char *source);

/* Whether this build writes ONNX (protobuf-c and onnx.proto were found). */
MN_API bool mn_export_has_onnx(void);

/* A test vector for a runtime: where not NULL, `golden` is a directory that receives the input the
 * model saw for `image` (RGB, as predict prepares it) and the outputs this library computes from it,
 * as raw little-endian float32 files listed in golden/manifest.json. */
typedef struct mn_export_golden {
    const char *dir;
    const mn_image *image;
} mn_export_golden;

/* The ONNX model of (width, h x w) at path (and the detector's box head at *second, malloc'd, when
 * second is not NULL). */
MN_API int mn_export_onnx(mn_model *m, float width, int h, int w, const char *path, const char *source,
                          const mn_export_golden *golden, char **second);

#endif
