/* Loading COCO ground truth and detection results for the bbox evaluator.
 *
 * Everything is checked while loading, so the evaluator never meets a malformed box: each error names the
 * file, the array index and the key at fault. Numbers are read as doubles (cJSON uses strtod, correctly
 * rounded like Python's float()), so the boxes are bit-identical to the ones pycocotools sees. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "mn/coco_eval.h"
#include "mn/fileio.h"
#include "mn/json.h"

/* Largest magnitude at which every integer is a double (ids are read through doubles). */
#define ID_LIMIT 9007199254740992.0

/* The error paths below all name "<file>: <array>[<index>]: ..." */
static int need_id(int64_t *out, const cJSON *obj, const char *key, const char *name, const char *arr, int i)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return mn_error(MN_EFORMAT, "%s: %s[%d]: missing key '%s'", name, arr, i, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > ID_LIMIT)
        return mn_error(MN_EFORMAT, "%s: %s[%d]: '%s' must be an integer", name, arr, i, key);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int need_number(double *out, const cJSON *obj, const char *key, const char *name, const char *arr, int i)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return mn_error(MN_EFORMAT, "%s: %s[%d]: missing key '%s'", name, arr, i, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return mn_error(MN_EFORMAT, "%s: %s[%d]: '%s' must be a finite number", name, arr, i, key);
    *out = v->valuedouble;
    return 0;
}

static int need_bbox(double *bb /* (4) */, const cJSON *obj, const char *name, const char *arr, int i)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "bbox");
    if (!v) return mn_error(MN_EFORMAT, "%s: %s[%d]: missing key 'bbox'", name, arr, i);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4)
        return mn_error(MN_EFORMAT, "%s: %s[%d]: 'bbox' must be an array of 4 numbers [x, y, w, h]", name, arr, i);
    int j = 0;
    for (const cJSON *e = v->child; e; e = e->next, j++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return mn_error(MN_EFORMAT, "%s: %s[%d]: 'bbox'[%d] must be a finite number", name, arr, i, j);
        bb[j] = e->valuedouble;
    }
    if (bb[2] < 0 || bb[3] < 0)
        return mn_error(MN_EFORMAT, "%s: %s[%d]: 'bbox' has a negative width or height (%g x %g)", name, arr, i,
                        bb[2], bb[3]);
    return 0;
}

static const cJSON *need_array(const cJSON *root, const char *key, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        mn_error(MN_EFORMAT, "%s: missing key '%s' (not a COCO instances file?)", name, key);
        return NULL;
    }
    if (!cJSON_IsArray(v)) {
        mn_error(MN_EFORMAT, "%s: '%s' must be an array", name, key);
        return NULL;
    }
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_cat(const void *a, const void *b)
{
    return cmp_i64(&((const mn_coco_category *)a)->id, &((const mn_coco_category *)b)->id);
}

int mn_coco_gt_img_index(const mn_coco_gt *gt, int64_t image_id)
{
    int lo = 0, hi = gt->n_imgs - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (gt->img_ids[mid] == image_id) return mid;
        if (gt->img_ids[mid] < image_id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int mn_coco_gt_cat_index(const mn_coco_gt *gt, int64_t category_id)
{
    int lo = 0, hi = gt->n_cats - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (gt->cats[mid].id == category_id) return mid;
        if (gt->cats[mid].id < category_id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

void mn_coco_gt_free(mn_coco_gt *gt)
{
    if (!gt) return;
    free(gt->img_ids);
    if (gt->cats)
        for (int i = 0; i < gt->n_cats; i++) free(gt->cats[i].name);
    free(gt->cats);
    free(gt->anns);
    memset(gt, 0, sizeof *gt);
}

static int load_images(mn_coco_gt *gt, const cJSON *arr, const char *name)
{
    int n = cJSON_GetArraySize(arr);
    gt->img_ids = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!gt->img_ids) return mn_error(MN_ENOMEM, "%s: out of memory for %d images", name, n);
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsObject(e)) return mn_error(MN_EFORMAT, "%s: images[%d]: not an object", name, i);
        int rc = need_id(&gt->img_ids[i], e, "id", name, "images", i);
        if (rc) return rc;
    }
    gt->n_imgs = n;
    qsort(gt->img_ids, (size_t)n, sizeof(int64_t), cmp_i64);
    for (i = 1; i < n; i++)
        if (gt->img_ids[i] == gt->img_ids[i - 1])
            return mn_error(MN_EFORMAT, "%s: images: id %lld appears more than once", name,
                            (long long)gt->img_ids[i]);
    return 0;
}

static int load_categories(mn_coco_gt *gt, const cJSON *arr, const char *name)
{
    int n = cJSON_GetArraySize(arr);
    gt->cats = calloc((size_t)(n ? n : 1), sizeof *gt->cats);
    if (!gt->cats) return mn_error(MN_ENOMEM, "%s: out of memory for %d categories", name, n);
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        gt->n_cats = i + 1; /* so that free releases the names read so far */
        if (!cJSON_IsObject(e)) return mn_error(MN_EFORMAT, "%s: categories[%d]: not an object", name, i);
        int rc = need_id(&gt->cats[i].id, e, "id", name, "categories", i);
        if (rc) return rc;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (nm && !cJSON_IsString(nm))
            return mn_error(MN_EFORMAT, "%s: categories[%d]: 'name' must be a string", name, i);
        const char *s = nm ? nm->valuestring : "";
        gt->cats[i].name = malloc(strlen(s) + 1);
        if (!gt->cats[i].name) return mn_error(MN_ENOMEM, "%s: out of memory", name);
        strcpy(gt->cats[i].name, s);
    }
    gt->n_cats = n;
    qsort(gt->cats, (size_t)n, sizeof *gt->cats, cmp_cat);
    for (i = 1; i < n; i++)
        if (gt->cats[i].id == gt->cats[i - 1].id)
            return mn_error(MN_EFORMAT, "%s: categories: id %lld appears more than once", name,
                            (long long)gt->cats[i].id);
    return 0;
}

static int load_annotations(mn_coco_gt *gt, const cJSON *arr, const char *name)
{
    int n = cJSON_GetArraySize(arr);
    gt->anns = calloc((size_t)(n ? n : 1), sizeof *gt->anns);
    if (!gt->anns) return mn_error(MN_ENOMEM, "%s: out of memory for %d annotations", name, n);
    int i = 0, rc;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        mn_coco_ann *a = &gt->anns[i];
        if (!cJSON_IsObject(e)) return mn_error(MN_EFORMAT, "%s: annotations[%d]: not an object", name, i);
        if ((rc = need_id(&a->id, e, "id", name, "annotations", i))) return rc;
        if ((rc = need_id(&a->image_id, e, "image_id", name, "annotations", i))) return rc;
        if ((rc = need_id(&a->category_id, e, "category_id", name, "annotations", i))) return rc;
        if ((rc = need_bbox(a->bbox, e, name, "annotations", i))) return rc;
        if ((rc = need_number(&a->area, e, "area", name, "annotations", i))) return rc;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "iscrowd");
        if (c) {
            if (cJSON_IsBool(c)) a->iscrowd = cJSON_IsTrue(c);
            else if (cJSON_IsNumber(c) && c->valuedouble == floor(c->valuedouble)) a->iscrowd = c->valuedouble != 0;
            else return mn_error(MN_EFORMAT, "%s: annotations[%d]: 'iscrowd' must be 0 or 1", name, i);
        }
        if (mn_coco_gt_img_index(gt, a->image_id) < 0)
            return mn_error(MN_EFORMAT, "%s: annotations[%d]: image_id %lld is not in 'images'", name, i,
                            (long long)a->image_id);
        if (mn_coco_gt_cat_index(gt, a->category_id) < 0)
            return mn_error(MN_EFORMAT, "%s: annotations[%d]: category_id %lld is not in 'categories'", name, i,
                            (long long)a->category_id);
    }
    gt->n_anns = n;
    /* pycocotools indexes annotations by id: a repeated id would silently replace one box by another */
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!ids) return mn_error(MN_ENOMEM, "%s: out of memory", name);
    for (i = 0; i < n; i++) ids[i] = gt->anns[i].id;
    qsort(ids, (size_t)n, sizeof(int64_t), cmp_i64);
    rc = 0;
    for (i = 1; i < n && !rc; i++)
        if (ids[i] == ids[i - 1])
            rc = mn_error(MN_EFORMAT, "%s: annotations: id %lld appears more than once", name, (long long)ids[i]);
    free(ids);
    return rc;
}

int mn_coco_gt_parse(mn_coco_gt *gt, const char *text, const char *name)
{
    memset(gt, 0, sizeof *gt);
    cJSON *root;
    int rc = mn_json_parse(text, strlen(text), name, &root);
    if (rc) return rc;
    const cJSON *imgs, *cats, *anns;
    if (!cJSON_IsObject(root)) {
        rc = mn_error(MN_EFORMAT, "%s: the top level must be an object with images, annotations, categories",
                      name);
    } else if (!(imgs = need_array(root, "images", name)) || !(cats = need_array(root, "categories", name)) ||
               !(anns = need_array(root, "annotations", name))) {
        rc = mn_last_error_code();
    } else if (!(rc = load_images(gt, imgs, name)) && !(rc = load_categories(gt, cats, name))) {
        rc = load_annotations(gt, anns, name);
    }
    cJSON_Delete(root);
    if (rc) mn_coco_gt_free(gt);
    return rc;
}

int mn_coco_gt_load(mn_coco_gt *gt, const char *path)
{
    memset(gt, 0, sizeof *gt);
    char *text;
    int rc = mn_read_file(path, MN_JSON_MAX_BYTES, "COCO annotations file", &text, NULL);
    if (rc) return rc;
    rc = mn_coco_gt_parse(gt, text, path);
    free(text);
    return rc;
}

void mn_coco_dets_free(mn_coco_dets *d)
{
    if (!d) return;
    free(d->dets);
    free(d->skipped_cat_ids);
    memset(d, 0, sizeof *d);
}

int mn_coco_dets_add(mn_coco_dets *d, int64_t image_id, int64_t category_id, const double *bbox, double score)
{
    if (!isfinite(score) || !isfinite(bbox[0]) || !isfinite(bbox[1]) || !isfinite(bbox[2]) || !isfinite(bbox[3]))
        return mn_error(MN_ENUMERIC, "detection %d (image %lld): non-finite box or score", d->n,
                        (long long)image_id);
    if (bbox[2] < 0 || bbox[3] < 0)
        return mn_error(MN_EINVAL, "detection %d (image %lld): negative width or height (%g x %g)", d->n,
                        (long long)image_id, bbox[2], bbox[3]);
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 256;
        mn_coco_ann *nd = realloc(d->dets, sizeof *nd * (size_t)cap);
        if (!nd) return mn_error(MN_ENOMEM, "out of memory for %d detections", cap);
        d->dets = nd;
        d->cap = cap;
    }
    mn_coco_ann *a = &d->dets[d->n];
    memset(a, 0, sizeof *a);
    a->id = (int64_t)d->n + 1; /* loadRes numbers results from 1 */
    a->image_id = image_id;
    a->category_id = category_id;
    memcpy(a->bbox, bbox, sizeof a->bbox);
    a->area = bbox[2] * bbox[3];
    a->score = score;
    d->n++;
    return 0;
}

/* Remembers the category id of a skipped result (kept distinct at the end; a run of one id adds it once). */
static int skip_category(mn_coco_dets *d, int64_t cat, const char *name)
{
    int n = d->n_skipped_cat_ids;
    if (n && d->skipped_cat_ids[n - 1] == cat) return 0;
    if ((n & (n - 1)) == 0) { /* n is 0 or a power of two: grow to 2n */
        int64_t *t = realloc(d->skipped_cat_ids, sizeof *t * (size_t)(n ? 2 * n : 1));
        if (!t) return mn_error(MN_ENOMEM, "%s: out of memory", name);
        d->skipped_cat_ids = t;
    }
    d->skipped_cat_ids[d->n_skipped_cat_ids++] = cat;
    return 0;
}

int mn_coco_dets_parse(mn_coco_dets *d, const char *text, const char *name, const mn_coco_gt *gt)
{
    memset(d, 0, sizeof *d);
    cJSON *root;
    int rc = mn_json_parse(text, strlen(text), name, &root);
    if (rc) return rc;
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return mn_error(MN_EFORMAT, "%s: results must be a JSON array of {image_id, category_id, bbox, score}",
                        name);
    }
    int i = 0;
    for (const cJSON *e = root->child; e && !rc; e = e->next, i++) {
        int64_t img = 0, cat = 0;
        double bb[4] = {0}, score = 0;
        if (!cJSON_IsObject(e)) rc = mn_error(MN_EFORMAT, "%s: results[%d]: not an object", name, i);
        else if ((rc = need_id(&img, e, "image_id", name, "results", i)) ||
                 (rc = need_id(&cat, e, "category_id", name, "results", i)) ||
                 (rc = need_bbox(bb, e, name, "results", i)) ||
                 (rc = need_number(&score, e, "score", name, "results", i))) {
        } else if (mn_coco_gt_img_index(gt, img) < 0) {
            rc = mn_error(MN_EINVAL, "%s: results[%d]: image_id %lld is not an image of the ground truth "
                          "(pycocotools refuses these too: \"Results do not correspond to current coco set\")", name,
                          i, (long long)img);
        } else if (mn_coco_gt_cat_index(gt, cat) < 0) {
            if (!d->n_skipped++) d->first_skipped = i;
            rc = skip_category(d, cat, name);
        } else if ((rc = mn_coco_dets_add(d, img, cat, bb, score))) {
            char why[512]; /* the message is rewritten in place, so copy it first */
            snprintf(why, sizeof why, "%s", mn_last_error());
            rc = mn_error(rc, "%s: results[%d]: %s", name, i, why);
        } else {
            d->dets[d->n - 1].id = (int64_t)i + 1; /* loadRes numbers every result, the skipped ones too */
        }
    }
    cJSON_Delete(root);
    if (!rc && d->n_skipped_cat_ids) {
        int64_t *ids = d->skipped_cat_ids;
        qsort(ids, (size_t)d->n_skipped_cat_ids, sizeof *ids, cmp_i64);
        int m = 1;
        for (int k = 1; k < d->n_skipped_cat_ids; k++)
            if (ids[k] != ids[m - 1]) ids[m++] = ids[k];
        d->n_skipped_cat_ids = m;
    }
    if (rc) mn_coco_dets_free(d);
    return rc;
}

int mn_coco_dets_load(mn_coco_dets *d, const char *path, const mn_coco_gt *gt)
{
    memset(d, 0, sizeof *d);
    char *text;
    int rc = mn_read_file(path, MN_JSON_MAX_BYTES, "COCO results file", &text, NULL);
    if (rc) return rc;
    rc = mn_coco_dets_parse(d, text, path, gt);
    free(text);
    return rc;
}
