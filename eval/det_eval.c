/* Running a detection model on images and scoring it the COCO way: detections of every image of a
 * split, a standard results file, and COCOeval's 12 numbers computed in memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mn/det_eval.h"
#include "mn/fileio.h"
#include "mn/progress.h"

int mn_det_predict(mn_det_model *m, mn_tape *t, const mn_image *img, float width, int short_side, mn_detection **out,
                   int *n)
{
    *out = NULL;
    *n = 0;
    mn_det_aug a;
    mn_det_aug_default(&a, short_side, m->cfg.det.max_side, false);
    int rh, rw, rc = mn_det_resize_shape(&a, img->h, img->w, &rh, &rw, NULL);
    if (rc) return rc;
    int dv = a.size_divisible, ph = (rh + dv - 1) / dv * dv, pw = (rw + dv - 1) / dv * dv;
    mn_tape_reset(t);
    int64_t shape[4] = {1, 3, ph, pw};
    mn_var *x = mn_var_new(t, 4, shape);
    if (!x) return mn_last_error_code();
    mn_sample s = {.image = *img};
    mn_det_image info;
    int nb = 0;
    rc = mn_det_transform(&a, &s, NULL, x->val.data, ph, pw, NULL, &nb, &info);
    if (rc) return rc;
    mn_run r = {.tape = t, .width = width, .training = false};
    return mn_det_forward_test(m->net, &r, x, &info, out, n);
}

/* Pixels to 1/100 and scores to 1e-6, in double, so the in-memory evaluation sees exactly the
 * numbers the results file holds (k / 100 in IEEE division is what strtod makes of "%.2f"). */
static double q2(double v) { return round(v * 100.0) / 100.0; }
static double q6(double v) { return round(v * 1e6) / 1e6; }

/* Keeps only the images (and their annotations) that were evaluated. */
static void restrict_gt(mn_coco_gt *gt, const int64_t *ids /* (n) ascending */, int n)
{
    int k = 0, j = 0;
    for (int i = 0; i < gt->n_imgs; i++) {
        while (j < n && ids[j] < gt->img_ids[i]) j++;
        if (j < n && ids[j] == gt->img_ids[i]) gt->img_ids[k++] = gt->img_ids[i];
    }
    gt->n_imgs = k;
    int a = 0;
    for (int i = 0; i < gt->n_anns; i++) {
        int lo = 0, hi = gt->n_imgs - 1, found = 0;
        while (lo <= hi && !found) {
            int mid = (lo + hi) / 2;
            if (gt->img_ids[mid] == gt->anns[i].image_id) found = 1;
            else if (gt->img_ids[mid] < gt->anns[i].image_id) lo = mid + 1;
            else hi = mid - 1;
        }
        if (found) gt->anns[a++] = gt->anns[i];
    }
    gt->n_anns = a;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The model's classes must be the data set's: same count, same category ids. */
static int check_classes(const mn_det_model *m, mn_dataset *d)
{
    if (mn_dataset_num_classes(d) != m->num_classes)
        return mn_error(MN_EINVAL, "the data set has %d classes (background included), the model %d",
                        mn_dataset_num_classes(d), m->num_classes);
    for (int k = 1; k < m->num_classes; k++)
        if (mn_dataset_category_id(d, k) != m->category_ids[k])
            return mn_error(MN_EINVAL, "label %d (%s) is category %d in the data set but %d in the model", k,
                            m->class_names[k], mn_dataset_category_id(d, k), m->category_ids[k]);
    return 0;
}

int mn_det_evaluate(mn_det_model *m, mn_dataset *d, const char *annotations_path, float width, int short_side,
                    int max_images, const mn_reporter *rep, const char *results_path, mn_det_scores *out)
{
    memset(out, 0, sizeof *out);
    int n = mn_dataset_size(d);
    if (max_images > 0 && max_images < n) n = max_images;
    if (n < 1) return mn_error(MN_EINVAL, "%s: nothing to evaluate (the split has no images)", annotations_path);
    int rc = check_classes(m, d);
    if (rc) return rc;
    mn_coco_gt gt;
    rc = mn_coco_gt_load(&gt, annotations_path);
    if (rc) return rc;
    mn_atomic_file results; /* written whole or not at all */
    FILE *f = NULL;
    if (results_path) {
        rc = mn_atomic_open(&results, results_path);
        if (!rc) fputs("[", f = results.f);
    }
    mn_det_aug a;
    mn_det_aug_default(&a, short_side, m->cfg.det.max_side, false);
    /* one image per pass: a result never depends on which images share its batch */
    mn_loader_options lo = {.batch_size = 1, .shuffle = false, .drop_last = false, .workers = m->cfg.data.workers,
                            .prefetch = 4, .seed = 0};
    mn_loader *ld = NULL;
    if (!rc) rc = mn_loader_open_det(&ld, d, &a, &lo);
    if (!rc) rc = mn_loader_start(ld, 0, 0);
    mn_coco_dets dets = {0};
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
    if (!rc && !ids) rc = mn_error(MN_ENOMEM, "evaluation: out of memory");
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_progress pg;
    mn_progress_begin(&pg, rep, "evaluate", n, 0, n / 10 + 1);
    int done = 0;
    bool first = true;
    while (!rc && done < n) {
        const mn_det_batch *b = NULL;
        rc = mn_loader_next_det(ld, &b);
        if (!rc && !b) rc = mn_error(MN_EINVAL, "evaluation: the loader ended after %d of %d images", done, n);
        if (rc) break;
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
        mn_run r = {.tape = &t, .width = width, .training = false};
        mn_detection *det = NULL;
        int nd = 0;
        rc = mn_det_forward_test(m->net, &r, x, b->info, &det, &nd);
        for (int j = 0; j < nd && !rc; j++) {
            const mn_detection *e = &det[j];
            int cat = mn_dataset_category_id(d, e->label);
            double box[4] = {q2(e->x1), q2(e->y1), q2((double)e->x2 - (double)e->x1),
                             q2((double)e->y2 - (double)e->y1)};
            double score = q6(e->score);
            rc = mn_coco_dets_add(&dets, b->image_id[0], cat, box, score);
            if (!rc && f) {
                fprintf(f, "%s\n{\"image_id\": %lld, \"category_id\": %d, \"bbox\": [%.2f, %.2f, %.2f, %.2f], "
                           "\"score\": %.6f}", first ? "" : ",", (long long)b->image_id[0], cat, box[0], box[1], box[2],
                        box[3], score);
                first = false;
            }
        }
        free(det);
        if (!rc) ids[done++] = b->image_id[0];
        mn_progress_update(&pg, done, 1, NULL);
    }
    mn_progress_end(&pg);
    mn_tape_free(&t);
    mn_loader_close(ld);
    if (f && rc) {
        mn_atomic_abort(&results);
    } else if (f) {
        fputs(first ? "]\n" : "\n]\n", f);
        rc = mn_atomic_commit(&results, true);
    }
    if (!rc) {
        qsort(ids, (size_t)done, sizeof *ids, cmp_i64);
        restrict_gt(&gt, ids, done);
        mn_coco_eval ev;
        rc = mn_coco_evaluate(&ev, &gt, &dets, NULL);
        if (!rc) {
            mn_coco_summarize(out->stats, &ev);
            mn_coco_eval_free(&ev);
            out->n_images = done;
            out->n_detections = dets.n;
        }
    }
    free(ids);
    mn_coco_dets_free(&dets);
    mn_coco_gt_free(&gt);
    return rc;
}
