/* Class lists (datasets/lists.c) in the three formats the kinds use: folder ("index name"),
 * imagefolder (names in order) and labelme's class_names.txt (names only). */
#include <stdlib.h>
#include <string.h>

#include "datasets/internal.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct { enum mn_ds_class_format format; int max; } runs[3] = {
        {MN_DS_CLASSES_INDEXED, 255}, {MN_DS_CLASSES_ORDERED, 1 << 20}, {MN_DS_CLASSES_NAMES, 255}};
    for (int r = 0; r < 3; r++) {
        mn_ds_classes c;
        if (mn_ds_classes_parse(&c, (const char *)data, size, "fuzz-classes.txt", runs[r].format, runs[r].max)) continue;
        if (c.n < 1 || c.n > runs[r].max) __builtin_trap();
        uint32_t h = 0;
        for (int k = 0; k < c.n; k++) {
            if (runs[r].format != MN_DS_CLASSES_INDEXED && !c.names[k]) __builtin_trap(); /* no gaps there */
            if (!c.names[k]) continue;
            size_t n = strlen(c.names[k]);
            if (n == 0 || n > MN_DS_CLASS_NAME_MAX) __builtin_trap();
            for (int j = 0; j < k; j++) /* names are unique */
                if (c.names[j] && !strcmp(c.names[j], c.names[k])) __builtin_trap();
            h ^= mn_fuzz_touch(c.names[k], n) ^ (uint32_t)c.line[k];
        }
        mn_fuzz_sink(h);
        mn_ds_classes_free(&c);
    }
    return 0;
}
