/* Inference on RGB buffers through one handle: open a checkpoint of any task (a training
 * checkpoint, a calibrated one, or a compact exported .safetensors), pick a configuration by a
 * compute budget or by width and input size, run it on images, free it.
 *
 *     char err[256];
 *     mn_infer *inf = mn_infer_open("calibrated.safetensors", err, sizeof err);
 *     if (!inf) { fprintf(stderr, "%s\n", err); return 1; }
 *     if (mn_infer_select_budget(inf, 0.1e9)) fprintf(stderr, "%s\n", mn_infer_error(inf));
 *     uint8_t *labels = malloc((size_t)h * w);
 *     int rc = mn_infer_segment(inf, rgb, h, w, 0, labels);
 *     mn_infer_close(inf);
 *
 * Every function returns 0 or a negative MN_E* code (mn/error.h); the message of a handle's
 * latest failure is mn_infer_error(handle). A handle owns its model, its activations and its
 * buffers and touches nothing global, so separate handles may run at the same time on separate
 * threads; one handle must not be used by two threads at once. Each call runs on the OpenMP
 * threads of the calling thread (OMP_NUM_THREADS).
 *
 * The outputs are those of `mutualnet predict` at the same configuration: the same resizing and
 * normalisation of the image, the same label map, detections and class probabilities. */
#ifndef MN_INFER_H
#define MN_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The version of this API (and of the library: libmutualnet.so.MAJOR). Compare the header's
 * MN_API_VERSION with mn_api_version() to detect a header/library mismatch. */
#define MN_API_VERSION_MAJOR 0
#define MN_API_VERSION_MINOR 1
#define MN_API_VERSION_PATCH 0
#define MN_API_VERSION (MN_API_VERSION_MAJOR * 10000 + MN_API_VERSION_MINOR * 100 + MN_API_VERSION_PATCH)

/* MN_API_VERSION of the library linked at run time. */
MN_API int mn_api_version(void);

typedef struct mn_infer mn_infer;

enum mn_infer_task { MN_INFER_SEGMENTATION = 0, MN_INFER_DETECTION = 1, MN_INFER_CLASSIFICATION = 2 };

/* A configuration: the network width and its input size. Segmentation and classification: the
 * input is h x w (every image is resized to it). Detection: h is the short side and w the cap on
 * the long side (each image keeps its aspect ratio). */
typedef struct mn_infer_config {
    float width;
    int h, w;
    int64_t macs;       /* multiply-accumulates per image (detection: at the training set's typical size) */
    double score;       /* its validation score in the query table (mIoU, AP or top-1), -1 when not calibrated */
    double ms;          /* its latency per image as `calibrate --latency` measured it, 0 when not timed */
} mn_infer_config;

typedef struct mn_infer_box {
    float x1, y1, x2, y2;    /* corners in the image's pixels */
    float score;
    int class_index;         /* 1 .. num_classes - 1 (0 is the background) */
    int category_id;         /* the training annotations' category id of that class */
    const char *class_name;  /* owned by the handle, valid until mn_infer_close */
} mn_infer_box;

typedef struct mn_infer_class {
    int class_index;         /* 0 .. num_classes - 1 */
    float probability;
    const char *class_name;  /* owned by the handle, valid until mn_infer_close */
} mn_infer_class;

/* Opens a checkpoint of any task and selects its default configuration (the widest trained
 * width at the evaluation size, or at the training short side for a detector), with the
 * calibrated BN statistics when the query table holds that configuration. NULL on failure, with
 * the reason in err (err_size bytes, may be 0). */
MN_API mn_infer *mn_infer_open(const char *checkpoint, char *err, size_t err_size);
/* Frees the handle and everything it owns (NULL is allowed). */
MN_API void mn_infer_close(mn_infer *inf);
/* The message of the handle's latest failure ("" when none). */
MN_API const char *mn_infer_error(const mn_infer *inf);

MN_API enum mn_infer_task mn_infer_task(const mn_infer *inf);
/* Classes the model predicts; segmentation and detection count the background (index 0). */
MN_API int mn_infer_num_classes(const mn_infer *inf);
/* The name of class k, or NULL when k is out of range. */
MN_API const char *mn_infer_class_name(const mn_infer *inf, int k);

/* The most accurate calibrated configuration costing at most macs multiply-accumulates per image
 * (the query table's choice, as `mutualnet predict --budget`). MN_EINVAL when the checkpoint is
 * not calibrated or nothing fits (the message gives the cheapest cost); the selection is then
 * unchanged. */
MN_API int mn_infer_select_budget(mn_infer *inf, double macs);
/* The most accurate configuration whose measured latency is at most ms milliseconds per image
 * (as `mutualnet predict --budget-ms`). The times hold for the machine and thread count they were
 * measured with. MN_EINVAL when the table has no times or nothing fits; the selection is then
 * unchanged. */
MN_API int mn_infer_select_budget_ms(mn_infer *inf, double ms);
/* A configuration given directly (see mn_infer_config; a detector ignores w). The width must lie
 * in the trained range and each side in 32..8192. Uses the calibrated BN statistics of the
 * configuration when the query table has it, else those of training. */
MN_API int mn_infer_select(mn_infer *inf, float width, int h, int w);
/* The configuration selected now. */
MN_API void mn_infer_selected(const mn_infer *inf, mn_infer_config *out);
/* The trained width range (one width for a network trained alone). */
MN_API void mn_infer_width_range(const mn_infer *inf, float *lo, float *hi);
/* The query table: its number of configurations (0 when not calibrated) and entry i. */
MN_API int mn_infer_table_size(const mn_infer *inf);
MN_API int mn_infer_table_entry(const mn_infer *inf, int i, mn_infer_config *out);

/* Images are 8-bit RGB, rows of w pixels (r, g, b) stride bytes apart (stride 0: 3 * w), h rows,
 * at most 64 million pixels. A call on a model of another task is MN_EINVAL. */

/* The class index of every pixel: labels (h, w). */
MN_API int mn_infer_segment(mn_infer *inf, const uint8_t *rgb /* (h, stride) */, int h, int w, int stride,
                            uint8_t *labels /* (h, w) */);
/* The detections scoring at least min_score, by score descending: the first min(found, max_boxes)
 * go to boxes, *n is how many were written. */
MN_API int mn_infer_detect(mn_infer *inf, const uint8_t *rgb /* (h, stride) */, int h, int w, int stride,
                           float min_score, mn_infer_box *boxes /* (max_boxes) */, int max_boxes, int *n);
/* The k most probable classes, most probable first (ties: the lower index first): top gets
 * min(k, num_classes) of them, *n how many. */
MN_API int mn_infer_classify(mn_infer *inf, const uint8_t *rgb /* (h, stride) */, int h, int w, int stride,
                             mn_infer_class *top /* (k) */, int k, int *n);

/* Decodes a PNG, JPEG or BMP file into packed RGB: (h, w, 3), to free with mn_infer_image_free.
 * NULL on failure, with the reason in err. */
MN_API uint8_t *mn_infer_image_load(const char *path, int *h, int *w, char *err, size_t err_size);
MN_API void mn_infer_image_free(uint8_t *rgb);

#endif
