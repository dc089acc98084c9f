/* stb_image's decoder compiled into the image fuzz targets: the system libstb is built without
 * libFuzzer's coverage and without ASan, so the fuzzer would be blind inside the decoder. The
 * executable's definitions take precedence over libstb.so's. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
