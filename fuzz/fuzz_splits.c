/* Split lists (VOC ImageSets/Segmentation/<split>.txt: one image id per line). */
#include <stdlib.h>
#include <string.h>

#include "datasets/internal.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mn_ds_files ids;
    int *lines;
    if (mn_ds_split_parse(&ids, &lines, (const char *)data, size, "fuzz-split.txt") == 0) {
        uint32_t h = 0;
        for (int i = 0; i < ids.n; i++) {
            const char *id = ids.names[i];
            if (!*id || strchr(id, '/') || strchr(id, ' ') || !strcmp(id, "..")) __builtin_trap();
            if (i && lines[i] <= lines[i - 1]) __builtin_trap(); /* file order */
            h ^= mn_fuzz_touch(id, strlen(id));
        }
        mn_fuzz_sink(h);
        mn_ds_files_free(&ids);
        free(lines);
    }
    return 0;
}
