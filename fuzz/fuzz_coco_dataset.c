/* The training loader's COCO instances parser (datasets/coco.c, from memory: the image files are
 * not looked for), then every sample's boxes and instance masks (polygons and RLE rasterised). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/internal.h"
#include "fuzz_common.h"

/* Masks are allocated from the JSON's width x height: keep them small so the fuzzer stays fast. */
#define FUZZ_MAX_PIXELS (1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void *state;
    if (mn_ds_coco_parse(&state, (const char *)data, size, "fuzz.json", "images", FUZZ_MAX_PIXELS) != 0) return 0;
    const mn_dataset_kind *k = &mn_dataset_coco;
    mn_box_stats st;
    k->box_stats(state, &st);
    uint32_t h = mn_fuzz_touch(&st, sizeof st);
    for (int c = 0; c < k->num_classes(state); c++) {
        const char *name = k->class_name(state, c);
        h ^= mn_fuzz_touch(name, strlen(name)) ^ (uint32_t)k->category_id(state, c);
    }
    for (int i = 0; i < k->size(state); i++) {
        mn_box boxes[64];
        int n = mn_ds_coco_boxes(state, i, boxes, 64);
        for (int j = 0; j < n && j < 64; j++) {
            const mn_box *b = &boxes[j];
            if (!(b->x1 >= 0 && b->x2 > b->x1 && b->y1 >= 0 && b->y2 > b->y1) || b->label < 1 ||
                b->label >= k->num_classes(state)) {
                fprintf(stderr, "sample %d box %d: (%g, %g, %g, %g) label %d kept\n", i, j, b->x1, b->y1, b->x2, b->y2,
                        b->label);
                abort(); /* a kept box must be usable: positive size, inside the image, a real class */
            }
            h ^= mn_fuzz_touch(b, sizeof *b);
        }
        for (int j = 0; j <= n; j++) { /* j == n: one past the end must be refused */
            mn_image m;
            if (k->mask(state, i, j, &m) == 0) {
                h ^= mn_fuzz_touch(m.data, (size_t)m.w * (size_t)m.h);
                mn_image_free(&m);
            }
        }
    }
    mn_fuzz_sink(h);
    k->close(state);
    return 0;
}
