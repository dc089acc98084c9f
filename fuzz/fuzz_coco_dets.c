/* COCO results JSON (mn_coco_dets_parse) against a small fixed ground truth, then evaluated. */
#include <stdlib.h>

#include "fuzz_common.h"
#include "mn/coco_eval.h"

/* Three images (one without boxes), categories 1, 3 and 7, a crowd and boxes of every area range. */
static const char *const GT =
    "{\"images\": [{\"id\": 1}, {\"id\": 2}, {\"id\": 5}],"
    " \"categories\": [{\"id\": 1, \"name\": \"a\"}, {\"id\": 3, \"name\": \"b\"}, {\"id\": 7, \"name\": \"c\"}],"
    " \"annotations\": ["
    "  {\"id\": 1, \"image_id\": 1, \"category_id\": 1, \"bbox\": [10, 10, 20, 20], \"area\": 400},"
    "  {\"id\": 2, \"image_id\": 1, \"category_id\": 1, \"bbox\": [0, 0, 200, 150], \"area\": 30000},"
    "  {\"id\": 3, \"image_id\": 1, \"category_id\": 3, \"bbox\": [50, 50, 60, 40], \"area\": 2400, \"iscrowd\": 1},"
    "  {\"id\": 4, \"image_id\": 2, \"category_id\": 3, \"bbox\": [5, 5, 40, 40], \"area\": 1600},"
    "  {\"id\": 5, \"image_id\": 2, \"category_id\": 7, \"bbox\": [0.5, 0.5, 3, 3], \"area\": 9}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mn_coco_gt gt;
    if (mn_coco_gt_parse(&gt, GT, "fixed-gt.json") != 0) abort(); /* the fixture itself must load */
    char *text = mn_fuzz_text(data, size);
    mn_coco_dets d;
    if (text && mn_coco_dets_parse(&d, text, "fuzz-results.json", &gt) == 0) {
        mn_fuzz_sink(mn_fuzz_touch(d.skipped_cat_ids, sizeof *d.skipped_cat_ids * (size_t)d.n_skipped_cat_ids));
        mn_coco_eval ev;
        if (mn_coco_evaluate(&ev, &gt, &d, NULL) == 0) {
            double stats[MN_COCO_NSTATS];
            mn_coco_summarize(stats, &ev);
            mn_fuzz_sink(mn_fuzz_touch(stats, sizeof stats));
            mn_coco_eval_free(&ev);
        }
        mn_coco_dets_free(&d);
    }
    free(text);
    mn_coco_gt_free(&gt);
    return 0;
}
