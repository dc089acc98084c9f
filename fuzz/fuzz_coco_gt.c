/* COCO instances JSON as the evaluator reads it (mn_coco_gt_parse); an accepted file is then
 * scored against its own boxes, so the evaluator meets hostile numbers too. */
#include <stdlib.h>

#include "fuzz_common.h"
#include "mn/coco_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = mn_fuzz_text(data, size);
    if (!text) return 0;
    mn_coco_gt gt;
    if (mn_coco_gt_parse(&gt, text, "fuzz-gt.json") == 0) {
        mn_coco_dets d = {0};
        int rc = 0;
        for (int i = 0; !rc && i < gt.n_anns; i++) {
            const mn_coco_ann *a = &gt.anns[i];
            /* scores tie on purpose every third box: the stable ordering is part of what is checked */
            rc = mn_coco_dets_add(&d, a->image_id, a->category_id, a->bbox, (double)(i / 3 % 7) / 7.0);
        }
        mn_coco_eval ev;
        if (!rc && mn_coco_evaluate(&ev, &gt, &d, NULL) == 0) {
            double stats[MN_COCO_NSTATS];
            mn_coco_summarize(stats, &ev);
            for (int k = 0; k < ev.n_cats; k++) stats[0] += mn_coco_category_ap(&ev, k);
            mn_fuzz_sink(mn_fuzz_touch(stats, sizeof stats));
            mn_coco_eval_free(&ev);
        }
        mn_coco_dets_free(&d);
        mn_coco_gt_free(&gt);
    }
    free(text);
    return 0;
}
