/* 8-bit image files (PNG, JPEG, BMP through stb_image) in and out.
 *
 * Pixels are interleaved HWC uint8. Loading checks the whole file: truncated or corrupt
 * images give an error naming the file, never a partial image. The width and height are read
 * from the header (PNG IHDR, JPEG SOF, BMP info header) and checked against a pixel limit
 * before anything is decoded, so a small file claiming a huge image costs nothing. Saving is
 * atomic (temp file then rename), so a failed write never destroys an existing file. */
#ifndef MN_IMAGE_H
#define MN_IMAGE_H

#include <stdint.h>
#include "error.h"

typedef struct mn_image {
    int w, h, c;            /* width, height, channels (1 gray or label, 3 RGB, 4 RGBA) */
    uint8_t *data;          /* (h, w, c), malloc'd */
} mn_image;

/* Largest image loaded unless the caller says otherwise: 64 million pixels (8000x8000, a
 * 64 MP photo), 192 MB decoded as RGB. Larger headers are refused before decoding. */
#define MN_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)64000000)

/* Loads path with `channels` channels (0: as stored; 1: gray; 3: RGB; 4: RGBA), refusing
 * images above MN_IMAGE_DEFAULT_MAX_PIXELS. */
MN_API int mn_image_load(const char *path, int channels, mn_image *out);
/* mn_image_load with a pixel limit of max_pixels (width x height; <= 0: the default). */
MN_API int mn_image_load_max(const char *path, int channels, int64_t max_pixels, mn_image *out);
/* Loads a label image of class indices: an 8-bit single-channel PNG (gray or palette
 * indices as gray). Multi-channel files are refused with a message suggesting a colour map.
 * The default pixel limit applies. */
MN_API int mn_image_load_labels(const char *path, mn_image *out);
/* mn_image_load_labels with a pixel limit of max_pixels (<= 0: the default). */
MN_API int mn_image_load_labels_max(const char *path, int64_t max_pixels, mn_image *out);
/* Saves by extension (.png, .jpg/.jpeg); quality applies to JPEG (1..100). */
MN_API int mn_image_save(const char *path, const mn_image *img, int quality);
/* A zeroed w x h x c image; error on OOM or non-positive sizes. */
MN_API int mn_image_alloc(mn_image *img, int w, int h, int c);
MN_API void mn_image_free(mn_image *img);

#endif
