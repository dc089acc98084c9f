/* The "coco" kind: COCO instances JSON (boxes, for detection; segmentations kept for masks).
 *
 *   <root>/<annotations>  (default annotations/instances_{split}.json)
 *   <root>/<images>/<file_name>  (default images/{split})
 *
 * Categories get contiguous labels 1..K in ascending category id (0 is background); the ids
 * come back through mn_dataset_category_id for writing results. Boxes [x, y, w, h] become
 * x1, y1, x2, y2 clipped to the image. Annotations that cannot be used (unknown image or
 * category, zero or negative size, no area left inside the image) are dropped at open time with
 * one warning per reason giving the count, and counted for mn_dataset_box_stats. Numbers that
 * are not finite (1e999 reads as infinity) in a bbox, area or polygon are errors naming the
 * annotation, never clamped. Crowd boxes stay in the sample with crowd = true: the detector
 * excludes them from its targets. Images without annotations are samples with no boxes.
 * Polygons and RLE (uncompressed counts or COCO's compressed string) are checked and stored
 * compactly for mn_dataset_mask.
 *
 * file_name is a path below the images folder: absolute paths and ".." that climbs out of the
 * folder are refused (a data set's JSON must not make the loader read files elsewhere), as is a
 * width x height above the pixel limit (masks are allocated from those numbers). Every image
 * file must exist at open.
 *
 * Everything is read at open; get() only reads the state, so it is safe from several
 * threads. Samples follow the order of the JSON's "images" array. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "mn/polygon.h"
#include "mn/fileio.h"
#include "mn/json.h"

/* Largest magnitude up to which every integer is exact in a double (cJSON numbers are doubles). */
#define EXACT_INT 9007199254740992.0

enum { SEG_NONE, SEG_POLY, SEG_RLE };

typedef struct coco_ann {
    mn_box box;          /* clipped, contiguous label */
    int32_t seg;         /* SEG_* */
    int32_t n;           /* SEG_POLY: polygons; SEG_RLE: run lengths */
    int64_t off;         /* SEG_POLY: first entry of poly_len; SEG_RLE: first entry of runs */
    int64_t coord;       /* SEG_POLY: first float of coords */
} coco_ann;

typedef struct coco_image {
    int64_t id;
    int w, h;            /* as the JSON gives them; the decoded image must agree */
    char *file;          /* file_name, relative to the images folder */
    int first, n;        /* its annotations: anns[first .. first + n) */
} coco_image;

typedef struct coco {
    char json[1024], images[1024];
    int64_t max_pixels;  /* pixel limit (resolved), for the JSON's sizes and the image files */
    bool check_files;    /* stat every image at open (off only for the fuzz target) */
    const mn_reporter *rep; /* notices of skipped annotations (may be NULL) */
    mn_box_stats stats;
    bool record_issues;  /* keep each dropped annotation in issues (mn_dataset_annotation_issues) */
    mn_dataset_issue *issues;
    int n_issues, cap_issues;
    coco_image *imgs;
    int n_imgs;
    coco_ann *anns;
    int n_anns;
    int n_cats;
    int *cat_ids;        /* (n_cats) ascending: label k has cat_ids[k - 1] */
    char **cat_names;    /* (n_cats) */
    /* segmentation pools */
    int32_t *poly_len;   /* vertices of each polygon */
    int64_t n_poly_len, cap_poly_len;
    float *coords;       /* interleaved x, y */
    int64_t n_coords, cap_coords;
    uint32_t *runs;      /* RLE run lengths, column-major, starting with a run of 0s */
    int64_t n_runs, cap_runs;
} coco;

/* ---- small helpers ---- */

static int grow(void **p, int64_t *cap, int64_t need, size_t elem, const char *where)
{
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return mn_error(MN_ENOMEM, "%s: out of memory", where);
    *p = q;
    *cap = c;
    return 0;
}

/* obj[key] as an integer within [lo, hi]; the message names file, array, index and key. */
static int need_int(int64_t *out, const cJSON *obj, const char *key, double lo, double hi, const char *path,
                    const char *arr, int i)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return mn_error(MN_EFORMAT, "%s: %s[%d]: key \"%s\" is missing", path, arr, i, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return mn_error(MN_EFORMAT, "%s: %s[%d]: \"%s\" must be an integer in [%.0f, %.0f]", path, arr, i, key, lo, hi);
    *out = (int64_t)v->valuedouble;
    return 0;
}

static int need_string(const char **out, const cJSON *obj, const char *key, const char *path, const char *arr, int i)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return mn_error(MN_EFORMAT, "%s: %s[%d]: key \"%s\" is missing", path, arr, i, key);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return mn_error(MN_EFORMAT, "%s: %s[%d]: \"%s\" must be a non-empty string", path, arr, i, key);
    *out = v->valuestring;
    return 0;
}

static int need_array(const cJSON **out, const cJSON *root, const char *key, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return mn_error(MN_EFORMAT, "%s: key \"%s\" is missing", path, key);
    if (!cJSON_IsArray(v)) return mn_error(MN_EFORMAT, "%s: \"%s\" must be an array", path, key);
    *out = v;
    return 0;
}

typedef struct id_index {
    int64_t id;
    int index;
} id_index;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const id_index *)a)->id, y = ((const id_index *)b)->id;
    return (x > y) - (x < y);
}

/* Position of id in a sorted table, or -1. */
static int find_id(const id_index *t, int n, int64_t id)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (t[mid].id == id) return mid;
        if (t[mid].id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---- categories and images ---- */

static int load_categories(coco *c, const cJSON *arr, id_index **table)
{
    int n = cJSON_GetArraySize(arr), i = 0, rc = 0;
    if (n == 0) return mn_error(MN_EFORMAT, "%s: \"categories\" is empty", c->json);
    id_index *t = malloc(sizeof *t * (size_t)n);
    c->cat_ids = malloc(sizeof *c->cat_ids * (size_t)n);
    c->cat_names = calloc((size_t)n, sizeof *c->cat_names);
    if (!t || !c->cat_ids || !c->cat_names) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
    const char **names = rc ? NULL : malloc(sizeof *names * (size_t)n);
    if (!rc && !names) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
    for (const cJSON *e = arr->child; !rc && e; e = e->next, i++) {
        int64_t id;
        if (!cJSON_IsObject(e)) rc = mn_error(MN_EFORMAT, "%s: categories[%d] is not an object", c->json, i);
        if (!rc) rc = need_int(&id, e, "id", -2147483647.0, 2147483647.0, c->json, "categories", i);
        if (!rc) rc = need_string(&names[i], e, "name", c->json, "categories", i);
        if (!rc) t[i] = (id_index){id, i};
    }
    if (!rc) qsort(t, (size_t)n, sizeof *t, cmp_id);
    for (int k = 0; !rc && k < n; k++) {
        if (k && t[k].id == t[k - 1].id) {
            rc = mn_error(MN_EFORMAT, "%s: categories[%d] and categories[%d] share the id %lld", c->json,
                          t[k - 1].index, t[k].index, (long long)t[k].id);
            break;
        }
        c->cat_ids[k] = (int)t[k].id;
        if (!(c->cat_names[k] = strdup(names[t[k].index]))) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
        c->n_cats = k + 1;
    }
    free(names);
    if (rc) free(t);
    else *table = t;
    return rc;
}

/* file_name must stay below the images folder: relative, and no ".." climbing above its start. The
 * whole path must also fit the loader's buffers (a cut path would name another file). */
static int check_file_name(const coco *c, const char *file, int i)
{
    if (strlen(c->images) + 1 + strlen(file) >= 2048)
        return mn_error(MN_EFORMAT, "%s: images[%d]: file_name is too long (%zu bytes)", c->json, i, strlen(file));
    int depth = 0;
    bool escapes = file[0] == '/';
    for (const char *p = file; *p && !escapes;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') escapes = --depth < 0;
        else if (n > 0 && !(n == 1 && p[0] == '.')) depth++;
        p += n;
        while (*p == '/') p++;
    }
    if (escapes)
        return mn_error(MN_EFORMAT, "%s: images[%d]: file_name \"%s\" is outside the images folder %s (give paths "
                        "relative to it, without \"..\" above it)", c->json, i, file, c->images);
    return 0;
}

static int load_images(coco *c, const cJSON *arr, id_index **table)
{
    int n = cJSON_GetArraySize(arr), i = 0, rc = 0;
    id_index *t = malloc(sizeof *t * (size_t)(n ? n : 1));
    c->imgs = calloc((size_t)(n ? n : 1), sizeof *c->imgs);
    if (!t || !c->imgs) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
    char path[2100];
    for (const cJSON *e = arr->child; !rc && e; e = e->next, i++) {
        coco_image *im = &c->imgs[i];
        int64_t w, h;
        const char *file = NULL;
        if (!cJSON_IsObject(e)) rc = mn_error(MN_EFORMAT, "%s: images[%d] is not an object", c->json, i);
        if (!rc) rc = need_int(&im->id, e, "id", -EXACT_INT, EXACT_INT, c->json, "images", i);
        if (!rc) rc = need_string(&file, e, "file_name", c->json, "images", i);
        if (!rc) rc = need_int(&w, e, "width", 1, 65535, c->json, "images", i);
        if (!rc) rc = need_int(&h, e, "height", 1, 65535, c->json, "images", i);
        if (!rc && w * h > c->max_pixels)
            rc = mn_error(MN_EFORMAT, "%s: images[%d] (id %lld) is %lldx%lld, above the limit of %lld pixels", c->json,
                          i, (long long)im->id, (long long)w, (long long)h, (long long)c->max_pixels);
        if (!rc) rc = check_file_name(c, file, i);
        if (rc) break;
        im->w = (int)w;
        im->h = (int)h;
        if (!(im->file = strdup(file))) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
        c->n_imgs = i + 1;
        snprintf(path, sizeof path, "%s/%s", c->images, file);
        struct stat sb;
        if (!rc && c->check_files && (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)))
            rc = mn_error(MN_EIO, "%s: image file missing (images[%d] of %s)", path, i, c->json);
        t[i] = (id_index){im->id, i};
    }
    if (!rc && n) qsort(t, (size_t)n, sizeof *t, cmp_id);
    for (int k = 1; !rc && k < n; k++)
        if (t[k].id == t[k - 1].id)
            rc = mn_error(MN_EFORMAT, "%s: images[%d] and images[%d] share the id %lld", c->json, t[k - 1].index,
                          t[k].index, (long long)t[k].id);
    if (rc) free(t);
    else *table = t;
    return rc;
}

/* ---- segmentations ---- */

/* COCO's compressed RLE string: each count is a little-endian series of 5-bit groups stored
 * as characters from '0' (bit 5 says another group follows, bit 4 of the last group is the
 * sign), and from the fourth count on each is stored as its difference to the count two
 * before. */
static int decode_rle_string(coco *c, const char *s, int64_t *n_out, const char *where)
{
    int64_t n = 0;
    for (const char *p = s; *p;) {
        int64_t x = 0;
        int k = 0, more = 1;
        while (more) {
            if (!*p) return mn_error(MN_EFORMAT, "%s: RLE string ends inside a count", where);
            int ch = *p - 48;
            if (ch < 0 || ch > 63 || k > 6)
                return mn_error(MN_EFORMAT, "%s: RLE string has a bad character '%c' at %d", where, *p, (int)(p - s));
            x |= (int64_t)(ch & 0x1f) << (5 * k);
            more = ch & 0x20;
            p++;
            k++;
            if (!more && (ch & 0x10)) x -= (int64_t)1 << (5 * k); /* sign-extend */
        }
        if (n > 2) x += c->runs[c->n_runs + n - 2];
        if (x < 0 || x > UINT32_MAX)
            return mn_error(MN_EFORMAT, "%s: RLE count %lld is out of range", where, (long long)x);
        int rc = grow((void **)&c->runs, &c->cap_runs, c->n_runs + n + 1, sizeof *c->runs, c->json);
        if (rc) return rc;
        c->runs[c->n_runs + n++] = (uint32_t)x;
    }
    *n_out = n;
    return 0;
}

static int parse_rle(coco *c, coco_ann *a, const cJSON *seg, const coco_image *im, const char *where)
{
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(seg, "size");
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(seg, "counts");
    if (!cJSON_IsArray(size) || cJSON_GetArraySize(size) != 2 || !cJSON_IsNumber(size->child) ||
        !cJSON_IsNumber(size->child->next))
        return mn_error(MN_EFORMAT, "%s: RLE \"size\" must be [height, width]", where);
    if (size->child->valuedouble != im->h || size->child->next->valuedouble != im->w)
        return mn_error(MN_EFORMAT, "%s: RLE size [%g, %g] differs from the image's [%d, %d]", where,
                        size->child->valuedouble, size->child->next->valuedouble, im->h, im->w);
    int64_t n = 0;
    if (cJSON_IsString(counts)) {
        int rc = decode_rle_string(c, counts->valuestring, &n, where);
        if (rc) return rc;
    } else if (cJSON_IsArray(counts)) {
        int64_t need = c->n_runs + cJSON_GetArraySize(counts);
        int rc = grow((void **)&c->runs, &c->cap_runs, need, sizeof *c->runs, c->json);
        if (rc) return rc;
        for (const cJSON *e = counts->child; e; e = e->next, n++) {
            if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
                e->valuedouble > UINT32_MAX)
                return mn_error(MN_EFORMAT, "%s: RLE counts[%lld] is not a count", where, (long long)n);
            c->runs[c->n_runs + n] = (uint32_t)e->valuedouble;
        }
    } else {
        return mn_error(MN_EFORMAT, "%s: RLE \"counts\" must be an array or a string", where);
    }
    int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += c->runs[c->n_runs + k];
    if (total != (int64_t)im->w * im->h)
        return mn_error(MN_EFORMAT, "%s: RLE counts add up to %lld pixels, the image has %lld", where, (long long)total,
                        (long long)im->w * im->h);
    if (n > INT32_MAX) return mn_error(MN_EFORMAT, "%s: RLE too long", where);
    a->seg = SEG_RLE;
    a->n = (int32_t)n;
    a->off = c->n_runs;
    c->n_runs += n;
    return 0;
}

static int parse_polygons(coco *c, coco_ann *a, const cJSON *seg, const char *where)
{
    int n = cJSON_GetArraySize(seg), rc = 0, j = 0;
    rc = grow((void **)&c->poly_len, &c->cap_poly_len, c->n_poly_len + n, sizeof *c->poly_len, c->json);
    int64_t coord = c->n_coords;
    for (const cJSON *p = seg->child; !rc && p; p = p->next, j++) {
        int m = cJSON_GetArraySize(p);
        if (!cJSON_IsArray(p) || m % 2)
            return mn_error(MN_EFORMAT, "%s: segmentation[%d] must be a list of x, y pairs", where, j);
        rc = grow((void **)&c->coords, &c->cap_coords, c->n_coords + m, sizeof *c->coords, c->json);
        int k = 0;
        for (const cJSON *v = p->child; !rc && v; v = v->next, k++) {
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
                return mn_error(MN_EFORMAT, "%s: segmentation[%d][%d] is not a number", where, j, k);
            c->coords[c->n_coords + k] = (float)v->valuedouble;
        }
        if (rc) break;
        c->n_coords += m;
        c->poly_len[c->n_poly_len + j] = m / 2;
    }
    if (rc) return rc;
    a->seg = SEG_POLY;
    a->n = n;
    a->off = c->n_poly_len;
    a->coord = coord;
    c->n_poly_len += n;
    return 0;
}

static int parse_segmentation(coco *c, coco_ann *a, const cJSON *seg, const coco_image *im, int i)
{
    char where[1200];
    snprintf(where, sizeof where, "%s: annotations[%d] \"segmentation\"", c->json, i);
    a->seg = SEG_NONE;
    if (!seg || cJSON_IsNull(seg) || (cJSON_IsArray(seg) && !seg->child)) return 0;
    if (cJSON_IsArray(seg)) return parse_polygons(c, a, seg, where);
    if (cJSON_IsObject(seg)) return parse_rle(c, a, seg, im, where);
    return mn_error(MN_EFORMAT, "%s must be a list of polygons or an RLE object", where);
}

/* ---- annotations ---- */

/* "<json>: annotations[i] (id N)" for messages (the id when the annotation has a usable one). */
static void ann_where(char *out, size_t size, const coco *c, const cJSON *e, int i)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    if (cJSON_IsNumber(id) && fabs(id->valuedouble) <= EXACT_INT && id->valuedouble == floor(id->valuedouble))
        snprintf(out, size, "%s: annotations[%d] (id %lld)", c->json, i, (long long)id->valuedouble);
    else snprintf(out, size, "%s: annotations[%d]", c->json, i);
}

/* Polygon coordinates must be finite in float, the type they are stored in; checked for every
 * annotation, used or dropped, so a file never holds an infinity unnoticed. */
static int check_polygon_numbers(const cJSON *seg, const char *where)
{
    if (!cJSON_IsArray(seg)) return 0;
    int j = 0;
    for (const cJSON *p = seg->child; p; p = p->next, j++) {
        int k = 0;
        for (const cJSON *v = cJSON_IsArray(p) ? p->child : NULL; v; v = v->next, k++)
            if (cJSON_IsNumber(v) && !(fabs(v->valuedouble) <= FLT_MAX))
                return mn_error(MN_ENUMERIC, "%s: \"segmentation\"[%d][%d] is %g, not a finite number", where, j, k,
                                v->valuedouble);
    }
    return 0;
}

enum { DROP_IMAGE, DROP_CATEGORY, DROP_EMPTY, DROP_OUTSIDE, N_DROP };

/* Keeps dropped annotation i and why, when the caller asked for the list. */
static int note_drop(coco *c, const cJSON *e, int i, int64_t image_id, int64_t cat_id, const double xywh[4], int why)
{
    if (!c->record_issues) return 0;
    if (c->n_issues == c->cap_issues) {
        int cap = c->cap_issues ? 2 * c->cap_issues : 64;
        mn_dataset_issue *t = realloc(c->issues, sizeof *t * (size_t)cap);
        if (!t) return mn_error(MN_ENOMEM, "%s: out of memory", c->json);
        c->issues = t;
        c->cap_issues = cap;
    }
    mn_dataset_issue *is = &c->issues[c->n_issues++];
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    bool has_id = cJSON_IsNumber(id) && fabs(id->valuedouble) <= EXACT_INT && id->valuedouble == floor(id->valuedouble);
    *is = (mn_dataset_issue){.index = i, .id = has_id ? (int64_t)id->valuedouble : -1, .image_id = image_id,
                             .category_id = cat_id};
    snprintf(is->file, sizeof is->file, "%s", c->json);
    if (why == DROP_IMAGE)
        snprintf(is->reason, sizeof is->reason, "image_id %lld is not in \"images\"", (long long)image_id);
    else if (why == DROP_CATEGORY)
        snprintf(is->reason, sizeof is->reason, "category_id %lld is not in \"categories\"", (long long)cat_id);
    else
        snprintf(is->reason, sizeof is->reason, "bbox [%g, %g, %g, %g] %s", xywh[0], xywh[1], xywh[2], xywh[3],
                 why == DROP_EMPTY ? "has zero or negative width or height" : "has no area inside its image");
    return 0;
}

typedef struct pending {
    int img;             /* index into imgs, -1 when dropped */
    mn_box box;
    const cJSON *seg;
} pending;

static int load_annotations(coco *c, const cJSON *arr, const id_index *imgs, const id_index *cats)
{
    int n = cJSON_GetArraySize(arr), i = 0, rc = 0;
    int dropped[N_DROP] = {0};
    pending *pd = malloc(sizeof *pd * (size_t)(n ? n : 1));
    if (!pd) return mn_error(MN_ENOMEM, "%s: out of memory", c->json);
    for (const cJSON *e = arr->child; !rc && e; e = e->next, i++) {
        pending *p = &pd[i];
        p->img = -1;
        int64_t image_id, cat_id, crowd = 0;
        if (!cJSON_IsObject(e)) rc = mn_error(MN_EFORMAT, "%s: annotations[%d] is not an object", c->json, i);
        if (!rc) rc = need_int(&image_id, e, "image_id", -EXACT_INT, EXACT_INT, c->json, "annotations", i);
        if (!rc) rc = need_int(&cat_id, e, "category_id", -EXACT_INT, EXACT_INT, c->json, "annotations", i);
        const cJSON *cr = cJSON_GetObjectItemCaseSensitive(e, "iscrowd");
        if (!rc && cJSON_IsBool(cr)) crowd = cJSON_IsTrue(cr); /* some converters write true / false */
        else if (!rc && cr) rc = need_int(&crowd, e, "iscrowd", 0, 1, c->json, "annotations", i);
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(e, "bbox");
        double xywh[4];
        int k = 0;
        char where[1200];
        if (!rc) ann_where(where, sizeof where, c, e, i);
        if (!rc && !cJSON_IsArray(bb))
            rc = mn_error(MN_EFORMAT, "%s: key \"bbox\" is %s", where, bb ? "not an array [x, y, w, h]" : "missing");
        for (const cJSON *v = bb ? bb->child : NULL; !rc && v; v = v->next, k++)
            if (k < 4 && cJSON_IsNumber(v)) xywh[k] = v->valuedouble;
            else rc = mn_error(MN_EFORMAT, "%s: \"bbox\" must hold 4 numbers", where);
        if (!rc && k != 4) rc = mn_error(MN_EFORMAT, "%s: \"bbox\" must hold 4 numbers", where);
        for (k = 0; !rc && k < 4; k++)
            if (!isfinite(xywh[k]))
                rc = mn_error(MN_ENUMERIC, "%s: \"bbox\"[%d] is %g, not a finite number", where, k, xywh[k]);
        const cJSON *area = cJSON_GetObjectItemCaseSensitive(e, "area");
        if (!rc && area && !(cJSON_IsNumber(area) && isfinite(area->valuedouble)))
            rc = cJSON_IsNumber(area) ? mn_error(MN_ENUMERIC, "%s: \"area\" is %g, not a finite number", where,
                                                 area->valuedouble)
                                      : mn_error(MN_EFORMAT, "%s: \"area\" must be a number", where);
        if (!rc) rc = check_polygon_numbers(cJSON_GetObjectItemCaseSensitive(e, "segmentation"), where);
        if (rc) break;

        int img = find_id(imgs, c->n_imgs, image_id), cat = find_id(cats, c->n_cats, cat_id);
        int why = img < 0 ? DROP_IMAGE : cat < 0 ? DROP_CATEGORY : !(xywh[2] > 0) || !(xywh[3] > 0) ? DROP_EMPTY : -1;
        if (why >= 0) {
            dropped[why]++;
            rc = note_drop(c, e, i, image_id, cat_id, xywh, why);
            continue;
        }
        const coco_image *im = &c->imgs[imgs[img].index];
        double dx1 = fmax(xywh[0], 0), dy1 = fmax(xywh[1], 0);
        double dx2 = fmin(xywh[0] + xywh[2], im->w), dy2 = fmin(xywh[1] + xywh[3], im->h);
        /* then in float, as the box is stored: a sliver thinner than float's spacing is empty too */
        bool inside = dx2 > dx1 && dy2 > dy1;
        float x1 = inside ? (float)dx1 : 0, y1 = inside ? (float)dy1 : 0;
        float x2 = inside ? (float)dx2 : 0, y2 = inside ? (float)dy2 : 0;
        if (!(x2 > x1) || !(y2 > y1)) {
            dropped[DROP_OUTSIDE]++;
            rc = note_drop(c, e, i, image_id, cat_id, xywh, DROP_OUTSIDE);
            continue;
        }
        if (crowd) c->stats.crowd++;
        else c->stats.usable++;
        p->img = imgs[img].index;
        p->box = (mn_box){x1, y1, x2, y2, cat + 1, crowd != 0};
        p->seg = cJSON_GetObjectItemCaseSensitive(e, "segmentation");
        c->imgs[p->img].n++;
        c->n_anns++;
    }
    /* group by image, keeping file order within each */
    if (!rc) {
        int first = 0;
        for (int m = 0; m < c->n_imgs; m++) {
            c->imgs[m].first = first;
            first += c->imgs[m].n;
            c->imgs[m].n = 0;
        }
        c->anns = calloc((size_t)(c->n_anns ? c->n_anns : 1), sizeof *c->anns);
        if (!c->anns) rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
    }
    for (int m = 0; !rc && m < n; m++) {
        if (pd[m].img < 0) continue;
        coco_image *im = &c->imgs[pd[m].img];
        coco_ann *a = &c->anns[im->first + im->n++];
        a->box = pd[m].box;
        rc = parse_segmentation(c, a, pd[m].seg, im, m);
    }
    free(pd);
    if (rc) return rc;
    c->stats.annotations = n;
    c->stats.unknown_image = dropped[DROP_IMAGE];
    c->stats.unknown_category = dropped[DROP_CATEGORY];
    c->stats.degenerate = dropped[DROP_EMPTY] + dropped[DROP_OUTSIDE];
    for (int m = 0; m < c->n_imgs; m++) c->stats.images_with_boxes += c->imgs[m].n > 0;
    static const char *const why[N_DROP] = {
        "their image_id is not in \"images\"",
        "their category_id is not in \"categories\"",
        "their box has zero or negative width or height",
        "their box has no area inside the image",
    };
    for (int k = 0; k < N_DROP; k++)
        if (dropped[k]) mn_report(c->rep, MN_LOG_WARN, "%s: dropped %d annotations: %s", c->json, dropped[k], why[k]);
    return 0;
}

/* ---- the kind ---- */

static void coco_close(void *state)
{
    coco *c = state;
    if (!c) return;
    for (int i = 0; i < c->n_imgs; i++) free(c->imgs[i].file);
    for (int k = 0; k < c->n_cats; k++) free(c->cat_names[k]);
    free(c->imgs);
    free(c->anns);
    free(c->cat_ids);
    free(c->cat_names);
    free(c->poly_len);
    free(c->coords);
    free(c->runs);
    free(c->issues);
    free(c);
}

/* Everything but reading the file: the JSON text into c (json and images already set). */
static int coco_parse(coco *c, const char *text, size_t len)
{
    cJSON *root = NULL;
    id_index *imgs = NULL, *cats = NULL;
    const cJSON *a_imgs = NULL, *a_cats = NULL, *a_anns = NULL;
    int rc = mn_json_parse(text, len, c->json, &root);
    if (!rc && !cJSON_IsObject(root)) rc = mn_error(MN_EFORMAT, "%s: the top level must be an object", c->json);
    if (!rc) rc = need_array(&a_imgs, root, "images", c->json);
    if (!rc) rc = need_array(&a_cats, root, "categories", c->json);
    if (!rc) rc = need_array(&a_anns, root, "annotations", c->json);
    if (!rc) rc = load_categories(c, a_cats, &cats);
    if (!rc) rc = load_images(c, a_imgs, &imgs);
    if (!rc) rc = load_annotations(c, a_anns, imgs, cats);
    free(imgs);
    free(cats);
    cJSON_Delete(root);
    return rc;
}

int mn_ds_coco_parse(void **state, const char *text, size_t len, const char *json, const char *images,
                     int64_t max_pixels)
{
    coco *c = calloc(1, sizeof *c);
    *state = c;
    if (!c) return mn_error(MN_ENOMEM, "%s: out of memory", json);
    snprintf(c->json, sizeof c->json, "%s", json);
    snprintf(c->images, sizeof c->images, "%s", images);
    c->max_pixels = max_pixels;
    int rc = coco_parse(c, text, len);
    if (rc) {
        coco_close(c);
        *state = NULL;
    }
    return rc;
}

static int coco_open(void **state, const mn_dataset_options *o)
{
    coco *c = calloc(1, sizeof *c);
    *state = c;
    if (!c) return mn_error(MN_ENOMEM, "%s: out of memory", o->root);
    mn_ds_path(c->json, sizeof c->json, o->root, o->annotations ? o->annotations : "annotations/instances_{split}.json",
               o->split);
    mn_ds_path(c->images, sizeof c->images, o->root, o->images ? o->images : "images/{split}", o->split);
    c->max_pixels = o->max_pixels > 0 ? o->max_pixels : MN_IMAGE_DEFAULT_MAX_PIXELS;
    c->check_files = true;
    c->record_issues = o->record_issues;
    c->rep = o->reporter;
    char *text = NULL;
    size_t len = 0;
    int rc = mn_read_file(c->json, MN_JSON_MAX_BYTES, "annotations file", &text, &len);
    if (!rc) rc = coco_parse(c, text, len);
    free(text);
    if (rc) {
        coco_close(c);
        *state = NULL;
    }
    return rc;
}

static void coco_issues(const void *state, const mn_dataset_issue **out, int *n)
{
    const coco *c = state;
    *out = c->issues;
    *n = c->n_issues;
}

static int coco_get(void *state, int i, mn_sample *out)
{
    const coco *c = state;
    const coco_image *im = &c->imgs[i];
    const char *base = strrchr(im->file, '/');
    mn_ds_stem(base ? base + 1 : im->file, out->name, sizeof out->name);
    out->image_id = im->id;
    char path[2100];
    snprintf(path, sizeof path, "%s/%s", c->images, im->file);
    int rc = mn_image_load_max(path, 3, c->max_pixels, &out->image);
    if (rc) return rc;
    if (out->image.w != im->w || out->image.h != im->h)
        return mn_error(MN_ESHAPE, "%s: image is %dx%d but %s says %dx%d", path, out->image.w, out->image.h, c->json,
                        im->w, im->h);
    if (im->n) {
        out->boxes = malloc(sizeof *out->boxes * (size_t)im->n);
        if (!out->boxes) return mn_error(MN_ENOMEM, "%s: out of memory", path);
        for (int j = 0; j < im->n; j++) out->boxes[j] = c->anns[im->first + j].box;
    }
    out->n_boxes = im->n;
    return 0;
}

static int coco_mask(void *state, int i, int j, mn_image *out)
{
    const coco *c = state;
    const coco_image *im = &c->imgs[i];
    if (j < 0 || j >= im->n)
        return mn_error(MN_EINVAL, "%s: box %d of image %lld is outside its %d boxes", c->json, j, (long long)im->id,
                        im->n);
    const coco_ann *a = &c->anns[im->first + j];
    if (a->seg == SEG_NONE)
        return mn_error(MN_EINVAL, "%s: box %d of image %lld has no segmentation", c->json, j, (long long)im->id);
    int rc = mn_image_alloc(out, im->w, im->h, 1);
    if (rc) return rc;
    if (a->seg == SEG_RLE) {
        /* column-major runs, alternating 0s and 1s, starting with 0s */
        int64_t at = 0;
        for (int32_t r = 0; r < a->n; r++) {
            uint32_t len = c->runs[a->off + r];
            if (r % 2)
                for (int64_t p = at; p < at + len; p++) out->data[(p % im->h) * im->w + p / im->h] = 1;
            at += len;
        }
        return 0;
    }
    int64_t coord = a->coord;
    double *xy = NULL;
    for (int32_t k = 0; k < a->n && !rc; k++) {
        int m = c->poly_len[a->off + k];
        double *t = realloc(xy, sizeof *xy * (size_t)(2 * m + 1));
        if (!t) {
            rc = mn_error(MN_ENOMEM, "%s: out of memory", c->json);
            break;
        }
        xy = t;
        for (int v = 0; v < 2 * m; v++) xy[v] = c->coords[coord + v];
        coord += 2 * m;
        /* polygons of one object are unioned, as COCO does */
        int64_t got = mn_polygon_fill(out->data, im->w, im->h, xy, m, 1);
        if (got < 0) rc = (int)got;
    }
    free(xy);
    if (rc) mn_image_free(out);
    return rc;
}

static int coco_size(const void *state) { return ((const coco *)state)->n_imgs; }
static int coco_num_classes(const void *state) { return ((const coco *)state)->n_cats + 1; }

static const char *coco_class_name(const void *state, int k)
{
    const coco *c = state;
    if (k == 0) return "background";
    return k > 0 && k <= c->n_cats ? c->cat_names[k - 1] : "?";
}

int mn_ds_coco_boxes(const void *state, int i, mn_box *out, int cap)
{
    const coco *c = state;
    const coco_image *im = &c->imgs[i];
    for (int j = 0; j < im->n && j < cap; j++) out[j] = c->anns[im->first + j].box;
    return im->n;
}

static int coco_box_stats(const void *state, mn_box_stats *out)
{
    *out = ((const coco *)state)->stats;
    return 0;
}

static int coco_category_id(const void *state, int k)
{
    const coco *c = state;
    return k >= 1 && k <= c->n_cats ? c->cat_ids[k - 1] : -1;
}

const mn_dataset_kind mn_dataset_coco = {
    .name = "coco",
    .open = coco_open,
    .size = coco_size,
    .get = coco_get,
    .num_classes = coco_num_classes,
    .class_name = coco_class_name,
    .close = coco_close,
    .category_id = coco_category_id,
    .mask = coco_mask,
    .box_stats = coco_box_stats,
    .issues = coco_issues,
};
