/* Label PNGs (mn_image_load_labels_max: 8-bit grey or palette indices, everything else refused).
 * PNG chunk CRCs are repaired before writing so mutations reach the decoder. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mn/image.h"

#define FUZZ_MAX_PIXELS (1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    mn_fuzz_fix_png_crcs(copy, size);
    char path[512];
    int rc = mn_fuzz_write("labels", copy, size, path, sizeof path);
    free(copy);
    if (rc) return 0;
    mn_image img;
    if (mn_image_load_labels_max(path, FUZZ_MAX_PIXELS, &img) == 0) {
        if (img.c != 1) __builtin_trap(); /* a label map has one channel */
        mn_fuzz_sink(mn_fuzz_touch(img.data, (size_t)img.w * (size_t)img.h));
        mn_image_free(&img);
    }
    mn_fuzz_unlink(path);
    return 0;
}
