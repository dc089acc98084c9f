/* The install check's fixtures (tests/install_check.sh): infer_fixture DIR writes DIR/seg,
 * DIR/det and DIR/cls.safetensors (tiny untrained models with a query table) and DIR/image.png,
 * then prints one line per task, "TASK MACS0 MACS1 MACS2": the cost of each table entry. */
#include <stdio.h>

#include "mn/error.h"
#include "tiny_models.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: infer_fixture DIR\n");
        return 2;
    }
    const char *names[3] = {"seg", "det", "cls"};
    const enum mn_task_kind tasks[3] = {MN_TASK_SEGMENTATION, MN_TASK_DETECTION, MN_TASK_CLASSIFICATION};
    char path[4096];
    for (int t = 0; t < 3; t++) {
        tm_entry e[TM_ENTRIES];
        snprintf(path, sizeof path, "%s/%s.safetensors", argv[1], names[t]);
        if (tm_save(path, tasks[t], true, e)) {
            fprintf(stderr, "infer_fixture: %s\n", mn_last_error());
            return 1;
        }
        printf("%s %lld %lld %lld\n", names[t], (long long)e[0].macs, (long long)e[1].macs, (long long)e[2].macs);
    }
    snprintf(path, sizeof path, "%s/image.png", argv[1]);
    if (tm_write_image(path, 80, 60, 3)) {
        fprintf(stderr, "infer_fixture: %s\n", mn_last_error());
        return 1;
    }
    return 0;
}
