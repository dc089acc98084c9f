/* Image files through the project's own image layer (PNG, JPEG, BMP: container checks, pixel
 * limit, then stb_image), as RGB the way the loaders ask and as stored. PNG chunk CRCs are
 * repaired before writing so mutations reach the decoder. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "mn/image.h"

/* Small enough that a header claiming a huge image costs the fuzzer nothing. */
#define FUZZ_MAX_PIXELS (1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    mn_fuzz_fix_png_crcs(copy, size);
    char path[512];
    int rc = mn_fuzz_write("image", copy, size, path, sizeof path);
    free(copy);
    if (rc) return 0;
    static const int channels[2] = {3, 0};
    for (int k = 0; k < 2; k++) {
        mn_image img;
        if (mn_image_load_max(path, channels[k], FUZZ_MAX_PIXELS, &img) == 0) {
            mn_fuzz_sink(mn_fuzz_touch(img.data, (size_t)img.w * (size_t)img.h * (size_t)img.c));
            mn_image_free(&img);
        }
    }
    mn_fuzz_unlink(path);
    return 0;
}
