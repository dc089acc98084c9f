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
    return mn_det_evaluate_ranks(m, d, annotations_path, width, short_side, max_images, rep, results_path, NULL, out);
}

/* One detection as the ranks exchange it: where it came from (image position, rank within the
 * image's list) orders the gathered list as one process makes it. */
typedef struct det_record {
    int64_t image_id;
    int32_t position, order;
    int64_t category_id;
    double box[4], score;
} det_record;

static int cmp_record(const void *a, const void *b)
{
    const det_record *x = a, *y = b;
    if (x->position != y->position) return x->position < y->position ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* Every rank's records (and image ids) in every rank's hands, in one process's order. */
static int gather_records(mn_comm *comm, det_record **recs, int64_t *n, int64_t **ids, int *n_ids)
{
    if (mn_comm_size(comm) < 2) return 0;
    void *all = NULL, *all_ids = NULL;
    int64_t bytes = 0, id_bytes = 0;
    int rc = comm->allgather(comm, *recs, (int64_t)sizeof(det_record) * *n, &all, &bytes, NULL);
    if (!rc) rc = comm->allgather(comm, *ids, (int64_t)sizeof(int64_t) * *n_ids, &all_ids, &id_bytes, NULL);
    if (rc) {
        free(all), free(all_ids);
        return rc;
    }
    free(*recs), free(*ids);
    *recs = all, *n = bytes / (int64_t)sizeof(det_record);
    *ids = all_ids, *n_ids = (int)(id_bytes / (int64_t)sizeof(int64_t));
    qsort(*recs, (size_t)*n, sizeof(det_record), cmp_record);
    return 0;
}

int mn_det_evaluate_ranks(mn_det_model *m, mn_dataset *d, const char *annotations_path, float width, int short_side,
                          int max_images, const mn_reporter *rep, const char *results_path, mn_comm *comm,
                          mn_det_scores *out)
{
    memset(out, 0, sizeof *out);
    const int R = mn_comm_size(comm), me = mn_comm_rank(comm);
    int n = mn_dataset_size(d);
    if (max_images > 0 && max_images < n) n = max_images;
    if (n < 1) return mn_error(MN_EINVAL, "%s: nothing to evaluate (the split has no images)", annotations_path);
    int rc = check_classes(m, d);
    if (rc) return rc;
    mn_coco_gt gt;
    rc = mn_coco_gt_load(&gt, annotations_path);
    if (rc) return rc;
    mn_det_aug a;
    mn_det_aug_default(&a, short_side, m->cfg.det.max_side, false);
    /* one image per pass: a result never depends on which images share its batch */
    mn_loader_options lo = {.batch_size = 1, .shuffle = false, .drop_last = false, .workers = m->cfg.data.workers,
                            .prefetch = 4, .seed = 0};
    mn_loader *ld = NULL;
    if (!rc) rc = mn_loader_open_det(&ld, d, &a, &lo);
    if (!rc) rc = mn_loader_start(ld, 0, 0);
    det_record *recs = NULL;
    int64_t n_recs = 0, cap = 0;
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n);
    if (!rc && !ids) rc = mn_error(MN_ENOMEM, "evaluation: out of memory");
    mn_tape t;
    mn_tape_init(&t, 0);
    mn_progress pg;
    mn_progress_begin(&pg, rep, "evaluate", n, 0, n / 10 + 1);
    int done = 0, mine = 0;
    while (!rc && done < n) {
        const mn_det_batch *b = NULL;
        rc = mn_loader_next_det(ld, &b);
        if (!rc && !b) rc = mn_error(MN_EINVAL, "evaluation: the loader ended after %d of %d images", done, n);
        if (rc) break;
        /* the ranks take every R-th image (each still decoded by all: the loader reads in order) */
        if (done % R != me) {
            done++;
            continue;
        }
        mn_tape_reset(&t);
        mn_var *x = mn_var_wrap(&t, mn_tensor_4d(b->images, b->n, 3, b->h, b->w));
        mn_run r = {.tape = &t, .width = width, .training = false};
        mn_detection *det = NULL;
        int nd = 0;
        rc = mn_det_forward_test(m->net, &r, x, b->info, &det, &nd);
        if (!rc && n_recs + nd > cap) {
            int64_t nc = (n_recs + nd) * 2 + 64;
            det_record *p = realloc(recs, sizeof(det_record) * (size_t)nc);
            if (!p) rc = mn_error(MN_ENOMEM, "evaluation: out of memory for %lld detections", (long long)nc);
            else recs = p, cap = nc;
        }
        for (int j = 0; j < nd && !rc; j++) {
            const mn_detection *e = &det[j];
            det_record *o = &recs[n_recs++];
            *o = (det_record){.image_id = b->image_id[0], .position = done, .order = j,
                              .category_id = mn_dataset_category_id(d, e->label), .score = q6(e->score)};
            o->box[0] = q2(e->x1), o->box[1] = q2(e->y1);
            o->box[2] = q2((double)e->x2 - (double)e->x1), o->box[3] = q2((double)e->y2 - (double)e->y1);
        }
        free(det);
        if (!rc) ids[mine++] = b->image_id[0];
        done++;
        mn_progress_update(&pg, done, 1, NULL);
    }
    mn_progress_end(&pg);
    mn_tape_free(&t);
    mn_loader_close(ld);
    rc = mn_comm_agree(comm, rc);
    if (!rc) rc = gather_records(comm, &recs, &n_recs, &ids, &mine);
    mn_coco_dets dets = {0};
    for (int64_t k = 0; k < n_recs && !rc; k++)
        rc = mn_coco_dets_add(&dets, recs[k].image_id, recs[k].category_id, recs[k].box, recs[k].score);
    /* written whole or not at all, by one rank */
    if (!rc && results_path && me == 0) {
        mn_atomic_file results;
        rc = mn_atomic_open(&results, results_path);
        if (!rc) {
            FILE *f = results.f;
            fputs("[", f);
            for (int64_t k = 0; k < n_recs; k++)
                fprintf(f, "%s\n{\"image_id\": %lld, \"category_id\": %lld, \"bbox\": [%.2f, %.2f, %.2f, %.2f], "
                           "\"score\": %.6f}", k ? "," : "", (long long)recs[k].image_id, (long long)recs[k].category_id,
                        recs[k].box[0], recs[k].box[1], recs[k].box[2], recs[k].box[3], recs[k].score);
            fputs(n_recs ? "\n]\n" : "]\n", f);
            rc = mn_atomic_commit(&results, true);
        }
    }
    rc = mn_comm_agree(comm, rc);
    if (!rc) {
        qsort(ids, (size_t)mine, sizeof *ids, cmp_i64);
        restrict_gt(&gt, ids, mine);
        mn_coco_eval ev;
        rc = mn_coco_evaluate(&ev, &gt, &dets, NULL);
        if (!rc) {
            mn_coco_summarize(out->stats, &ev);
            mn_coco_eval_free(&ev);
            out->n_images = mine;
            out->n_detections = dets.n;
        }
    }
    free(recs);
    free(ids);
    mn_coco_dets_free(&dets);
    mn_coco_gt_free(&gt);
    return rc;
}
