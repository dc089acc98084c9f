/* The synthetic shapes data set and its polygon helpers: valid COCO JSON whose boxes and areas
 * agree with the polygons, label PNGs that agree with the polygons, determinism, size ranges,
 * empty images, refusal to write into a user's folder; rasteriser against its reference twin. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <omp.h>

#include "common.h"
#include "mn/dataset.h"
#include "mn/image.h"
#include "mn/polygon.h"
#include "mn/rng.h"
#include "mn/synth.h"

static char tmp[256];

static void make_tmp(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/mn_test_synth_XXXXXX");
    cr_assert(mkdtemp(tmp), "mkdtemp: %s", strerror(errno));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void remove_tmp(void) { nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

TestSuite(synth, .init = make_tmp, .fini = remove_tmp);
TestSuite(polygon);

/* Generates into tmp/name; returns the stats. */
static mn_synth_stats generate(const char *name, uint64_t seed, int n, int w, int h, const char *classes,
                               char *dir_out /* 512 */)
{
    mn_synth_config c;
    mn_synth_config_default(&c);
    snprintf(dir_out, 512, "%s/%s", tmp, name);
    c.out_dir = dir_out;
    c.seed = seed;
    c.n_images = n;
    c.width = w;
    c.height = h;
    if (classes) cr_assert_eq(mn_synth_set_classes(&c, classes), 0, "%s", mn_last_error());
    mn_synth_stats st;
    cr_assert_eq(mn_synth_generate(&c, &st), 0, "%s", mn_last_error());
    return st;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static cJSON *load_json(const char *dir, const char *split)
{
    char p[600];
    snprintf(p, sizeof p, "%s/annotations/instances_%s.json", dir, split);
    char *text = slurp(p, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert(j, "%s is not valid JSON", p);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "missing number \"%s\"", key);
    return v->valuedouble;
}

/* ---- independent geometry for checking (not the library's) ---- */

static bool inside(const double *xy, int n, double x, double y)
{
    int crossings = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
        double xi = xy[2 * i], yi = xy[2 * i + 1], xj = xy[2 * j], yj = xy[2 * j + 1];
        if ((yi > y) != (yj > y) && x < xj + (y - yj) * (xi - xj) / (yi - yj)) crossings++;
    }
    return crossings & 1;
}

static double seg_dist(double px, double py, double ax, double ay, double bx, double by)
{
    double dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = ax + t * dx - px, ey = ay + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

static double edge_dist(const double *xy, int n, double x, double y)
{
    double d = INFINITY;
    for (int i = 0, j = n - 1; i < n; j = i++)
        d = fmin(d, seg_dist(x, y, xy[2 * j], xy[2 * j + 1], xy[2 * i], xy[2 * i + 1]));
    return d;
}

typedef struct ann {
    int id, image_id, label;
    int n;
    double xy[2 * 600];
    double bbox[4], area;
} ann;

/* The annotations of one split in file order, with label indices from the categories (sorted
 * by id -> 1..K). */
static ann *read_anns(const cJSON *j, int *count, int *cat_ids /* (5) */, int *n_cats)
{
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(j, "categories");
    *n_cats = cJSON_GetArraySize(cats);
    cr_assert(*n_cats >= 1 && *n_cats <= 5);
    for (int k = 0; k < *n_cats; k++) cat_ids[k] = (int)num(cJSON_GetArrayItem(cats, k), "id");
    for (int k = 1; k < *n_cats; k++) cr_assert_gt(cat_ids[k], cat_ids[k - 1], "categories sorted by id, unique");
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(j, "annotations");
    int n = cJSON_GetArraySize(as);
    ann *out = calloc((size_t)(n ? n : 1), sizeof *out);
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(as, i);
        ann *o = &out[i];
        o->id = (int)num(a, "id");
        o->image_id = (int)num(a, "image_id");
        int cid = (int)num(a, "category_id");
        o->label = 0;
        for (int k = 0; k < *n_cats; k++)
            if (cat_ids[k] == cid) o->label = k + 1;
        cr_assert_gt(o->label, 0, "annotation %d: category %d not among the categories", o->id, cid);
        cr_assert_eq(num(a, "iscrowd"), 0);
        o->area = num(a, "area");
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(a, "bbox");
        cr_assert_eq(cJSON_GetArraySize(bb), 4);
        for (int k = 0; k < 4; k++) o->bbox[k] = cJSON_GetArrayItem(bb, k)->valuedouble;
        const cJSON *seg = cJSON_GetObjectItemCaseSensitive(a, "segmentation");
        cr_assert(cJSON_IsArray(seg) && cJSON_GetArraySize(seg) == 1, "annotation %d: one polygon", o->id);
        const cJSON *poly = cJSON_GetArrayItem(seg, 0);
        int m = cJSON_GetArraySize(poly);
        cr_assert(m >= 6 && m % 2 == 0 && m <= 2 * 600, "annotation %d: polygon of %d numbers", o->id, m);
        o->n = m / 2;
        for (int k = 0; k < m; k++) {
            const cJSON *v = cJSON_GetArrayItem(poly, k);
            cr_assert(cJSON_IsNumber(v));
            o->xy[k] = v->valuedouble;
        }
    }
    *count = n;
    return out;
}

static const char *const splits[2] = {"train", "val"};

Test(synth, coco_json_is_valid_and_consistent)
{
    char dir[512];
    mn_synth_stats st = generate("a", 11, 50, 320, 320, NULL, dir);
    cr_assert_eq(st.n_train, 40);
    cr_assert_eq(st.n_val, 10);
    int seen_ann_ids[4096] = {0}, total_anns = 0, empty_per_split[2] = {0, 0};
    bool seen_image[51] = {false};
    for (int s = 0; s < 2; s++) {
        cJSON *j = load_json(dir, splits[s]);
        cr_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "info")));
        cr_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "licenses")));
        int cat_ids[5], n_cats, n;
        ann *as = read_anns(j, &n, cat_ids, &n_cats);
        cr_assert_eq(n_cats, 5);
        bool contiguous = true;
        for (int k = 0; k < 5; k++) contiguous = contiguous && cat_ids[k] == k + 1;
        cr_assert(!contiguous, "category ids should be non-contiguous");
        /* classes.txt names the label indices with the category names */
        char p[600];
        snprintf(p, sizeof p, "%s/classes.txt", dir);
        char *classes = slurp(p, NULL);
        char want[512] = "# label index and name; COCO category ids:", lines[256] = "\n0 background\n";
        const cJSON *cats = cJSON_GetObjectItemCaseSensitive(j, "categories");
        for (int k = 0; k < 5; k++) {
            const cJSON *cat = cJSON_GetArrayItem(cats, k);
            const char *name = cJSON_GetObjectItemCaseSensitive(cat, "name")->valuestring;
            char line[64];
            snprintf(line, sizeof line, " %s=%d", name, (int)num(cat, "id"));
            strcat(want, line);
            snprintf(line, sizeof line, "%d %s\n", k + 1, name);
            strcat(lines, line);
        }
        strcat(want, lines);
        cr_assert_str_eq(classes, want);
        free(classes);

        /* images: unique ids, files present with the declared size, split list in the same order */
        const cJSON *ims = cJSON_GetObjectItemCaseSensitive(j, "images");
        int n_im = cJSON_GetArraySize(ims);
        cr_assert_eq(n_im, s ? st.n_val : st.n_train);
        snprintf(p, sizeof p, "%s/splits/%s.txt", dir, splits[s]);
        char *list = slurp(p, NULL), *line = list;
        for (int i = 0; i < n_im; i++) {
            const cJSON *im = cJSON_GetArrayItem(ims, i);
            int id = (int)num(im, "id");
            cr_assert(id >= 1 && id <= 50 && !seen_image[id], "image id %d", id);
            seen_image[id] = true;
            cr_assert_eq((int)num(im, "width"), 320);
            cr_assert_eq((int)num(im, "height"), 320);
            const char *fn = cJSON_GetObjectItemCaseSensitive(im, "file_name")->valuestring;
            char stem[16];
            snprintf(stem, sizeof stem, "%06d", id);
            cr_assert(!strncmp(fn, stem, 6) && !strcmp(fn + 6, ".jpg"), "file_name %s", fn);
            cr_assert(!strncmp(line, stem, 6) && line[6] == '\n', "split list line %d", i);
            line += 7;
            snprintf(p, sizeof p, "%s/images/%s/%s", dir, splits[s], fn);
            mn_image img;
            cr_assert_eq(mn_image_load(p, 0, &img), 0, "%s", mn_last_error());
            cr_assert(img.w == 320 && img.h == 320 && img.c == 3);
            mn_image_free(&img);
            int n_for_image = 0;
            for (int a = 0; a < n; a++) n_for_image += as[a].image_id == id;
            if (!n_for_image) empty_per_split[s]++;
        }
        cr_assert_eq(*line, 0, "split list has extra lines");
        free(list);

        for (int a = 0; a < n; a++) {
            const ann *o = &as[a];
            cr_assert(o->id >= 1 && o->id < 4096 && !seen_ann_ids[o->id], "annotation id %d unique", o->id);
            seen_ann_ids[o->id] = 1;
            bool in_split = false;
            for (int i = 0; i < n_im; i++) in_split |= (int)num(cJSON_GetArrayItem(ims, i), "id") == o->image_id;
            cr_assert(in_split, "annotation %d: image %d not in %s", o->id, o->image_id, splits[s]);
            double xmin = INFINITY, ymin = INFINITY, xmax = -INFINITY, ymax = -INFINITY, area = 0;
            for (int k = 0; k < o->n; k++) {
                double x = o->xy[2 * k], y = o->xy[2 * k + 1];
                xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
                int k1 = (k + 1) % o->n;
                area += x * o->xy[2 * k1 + 1] - o->xy[2 * k1] * y;
            }
            area = fabs(area) / 2;
            cr_assert(o->bbox[0] >= 0 && o->bbox[1] >= 0 && o->bbox[2] > 0 && o->bbox[3] > 0 &&
                          o->bbox[0] + o->bbox[2] <= 320 && o->bbox[1] + o->bbox[3] <= 320,
                      "annotation %d: bbox [%g %g %g %g] outside the image", o->id, o->bbox[0], o->bbox[1],
                      o->bbox[2], o->bbox[3]);
            cr_assert(fabs(o->bbox[0] - xmin) < 1e-9 && fabs(o->bbox[1] - ymin) < 1e-9 &&
                          fabs(o->bbox[2] - (xmax - xmin)) < 1e-9 && fabs(o->bbox[3] - (ymax - ymin)) < 1e-9,
                      "annotation %d: bbox [%g %g %g %g], polygon spans [%g %g] x [%g %g]", o->id, o->bbox[0],
                      o->bbox[1], o->bbox[2], o->bbox[3], xmin, xmax, ymin, ymax);
            cr_assert(fabs(o->area - area) <= 1e-9 * area && area > 0, "annotation %d: area %g, polygon %g", o->id,
                      o->area, area);
        }
        total_anns += n;
        free(as);
        cJSON_Delete(j);
    }
    for (int id = 1; id <= 50; id++) cr_assert(seen_image[id], "image %d in neither split", id);
    cr_assert_eq(total_anns, st.n_objects);
    cr_assert_eq(st.n_small + st.n_medium + st.n_large, st.n_objects);
    /* empty images: the 10th, 20th, ... of each split */
    cr_assert_eq(empty_per_split[0], 4);
    cr_assert_eq(empty_per_split[1], 1);
    cr_assert_eq(st.n_empty, 5);
    /* COCO's three size ranges all occur */
    cr_assert(st.n_small > 0 && st.n_medium > 0 && st.n_large > 0, "small %d medium %d large %d", st.n_small,
              st.n_medium, st.n_large);
}

Test(synth, labels_agree_with_polygons)
{
    char dir[512];
    const int W = 200, H = 144;
    generate("b", 3, 24, W, H, NULL, dir);
    int checked_fg = 0, checked_bg = 0, occluded = 0, band = 0, anns_total = 0, anns_checked = 0, classes_seen = 0;
    for (int s = 0; s < 2; s++) {
        cJSON *j = load_json(dir, splits[s]);
        int cat_ids[5], n_cats, n;
        ann *as = read_anns(j, &n, cat_ids, &n_cats);
        const cJSON *ims = cJSON_GetObjectItemCaseSensitive(j, "images");
        for (int i = 0; i < cJSON_GetArraySize(ims); i++) {
            int id = (int)num(cJSON_GetArrayItem(ims, i), "id");
            char p[600];
            snprintf(p, sizeof p, "%s/labels/%s/%06d.png", dir, splits[s], id);
            mn_image lab;
            cr_assert_eq(mn_image_load_labels(p, &lab), 0, "%s", mn_last_error());
            cr_assert(lab.w == W && lab.h == H && lab.c == 1);
            /* this image's annotations in painting order (ids increase) */
            const ann *mine[MN_SYNTH_MAX_OBJECTS];
            int m = 0;
            for (int a = 0; a < n; a++)
                if (as[a].image_id == id) {
                    cr_assert(m == 0 || as[a].id > mine[m - 1]->id);
                    mine[m++] = &as[a];
                }
            bool hit[MN_SYNTH_MAX_OBJECTS] = {false};
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int v = lab.data[y * W + x];
                    cr_assert(v <= 5 || v == 255, "label value %d", v);
                    double px = x + 0.5, py = y + 0.5, dmin = INFINITY;
                    int top = -1, containing = 0;
                    for (int a = 0; a < m; a++) {
                        dmin = fmin(dmin, edge_dist(mine[a]->xy, mine[a]->n, px, py));
                        if (inside(mine[a]->xy, mine[a]->n, px, py)) {
                            top = a;
                            containing++;
                        }
                    }
                    if (v == 255) {
                        /* the ignore band hugs the outlines */
                        cr_assert_leq(dmin, 1.5, "ignore pixel (%d, %d) of %s is %g from every outline", x, y, p, dmin);
                        band++;
                        continue;
                    }
                    if (dmin < 2.0) continue; /* near an outline: band or either side */
                    int expect = top >= 0 ? mine[top]->label : 0;
                    cr_assert_eq(v, expect, "%s pixel (%d, %d): label %d, polygons say %d", p, x, y, v, expect);
                    if (top >= 0) {
                        checked_fg++;
                        hit[top] = true;
                        if (containing > 1) occluded++;
                    } else {
                        checked_bg++;
                    }
                }
            for (int a = 0; a < m; a++) anns_checked += hit[a];
            anns_total += m;
            mn_image_free(&lab);
        }
        for (int a = 0; a < n; a++) classes_seen |= 1 << as[a].label;
        free(as);
        cJSON_Delete(j);
    }
    cr_assert_gt(anns_total, 30);
    /* every object stays at least 40% visible, so nearly all show interior pixels */
    cr_assert_geq(anns_checked, anns_total * 9 / 10, "%d of %d objects have checked interior pixels", anns_checked,
                  anns_total);
    cr_assert_gt(checked_fg, 10000);
    cr_assert_gt(checked_bg, 10000);
    cr_assert_gt(occluded, 0, "no occlusion in 24 images");
    cr_assert_gt(band, 1000);
    cr_assert_eq(classes_seen, 0x3e, "all five classes appear (mask %x)", classes_seen);
}

/* Pixel centres of one polygon, and how many of them no later polygon covers. */
typedef struct cover_ctx {
    const mn_synth_sample *s;
    int self;
    long full, visible;
} cover_ctx;

static void cover_span(void *ctx, int y, int x0, int x1)
{
    cover_ctx *c = ctx;
    for (int x = x0; x < x1; x++) {
        bool hidden = false;
        for (int j = c->self + 1; j < c->s->n_objects && !hidden; j++)
            hidden = inside(c->s->objects[j].xy, c->s->objects[j].n, x + 0.5, y + 0.5);
        c->full++;
        c->visible += !hidden;
    }
}

/* The least visible share of any object over `images` renders. */
static double least_visible(double min_visible, int images, int *objects)
{
    mn_synth_config c;
    mn_synth_config_default(&c);
    c.width = c.height = 128;
    c.n_images = images;
    c.seed = 11;
    c.max_objects = 3;
    c.large_objects = true;
    c.min_visible = min_visible;
    double least = 1;
    *objects = 0;
    for (int i = 0; i < images; i++) {
        mn_synth_sample s;
        cr_assert_eq(mn_synth_render(&c, i, &s), 0, "%s", mn_last_error());
        for (int k = 0; k < s.n_objects; k++) {
            cover_ctx cc = {&s, k, 0, 0};
            cr_assert_eq(mn_polygon_spans(s.objects[k].xy, s.objects[k].n, c.width, c.height, cover_span, &cc), 0);
            cr_assert_gt(cc.full, 0);
            least = fmin(least, (double)cc.visible / (double)cc.full);
        }
        *objects += s.n_objects;
        mn_synth_sample_free(&s);
    }
    return least;
}

Test(synth, min_visible_bounds_occlusion)
{
    int n40, n90, n100;
    double at40 = least_visible(0.4, 60, &n40), at90 = least_visible(0.9, 60, &n90), at100 = least_visible(1, 60, &n100);
    /* large, centred objects overlap a lot when allowed to */
    cr_assert_lt(at40, 0.7, "default: least visible share %g", at40);
    cr_assert_geq(at40, 0.4);
    cr_assert_geq(at90, 0.9, "min_visible 0.9: an object only %g visible", at90);
    cr_assert_eq(at100, 1.0, "min_visible 1: an object only %g visible", at100);
    /* fewer placements succeed as the rule tightens, yet some images keep several objects */
    cr_assert(n40 >= n90 && n90 >= n100, "objects %d %d %d", n40, n90, n100);
    cr_assert_gt(n100, 60, "objects without overlap: %d in 60 images", n100);
}

/* Compares every regular file under a with the one of the same name under b; returns how many differ. */
static int compare_trees(const char *a, const char *b, int *n_files)
{
    static const char *const files[] = {"annotations/instances_train.json", "annotations/instances_val.json",
                                        "splits/train.txt", "splits/val.txt", "classes.txt"};
    int differ = 0, count = 0;
    char pa[600], pb[600];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        size_t na, nb;
        char *x = slurp(pa, &na), *y = slurp(pb, &nb);
        differ += na != nb || memcmp(x, y, na);
        count++;
        free(x);
        free(y);
    }
    for (int s = 0; s < 2; s++) {
        snprintf(pa, sizeof pa, "%s/splits/%s.txt", a, splits[s]);
        char *list = slurp(pa, NULL);
        for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
            const char *kinds[2][2] = {{"images", "jpg"}, {"labels", "png"}};
            for (int k = 0; k < 2; k++) {
                snprintf(pa, sizeof pa, "%s/%s/%s/%s.%s", a, kinds[k][0], splits[s], line, kinds[k][1]);
                snprintf(pb, sizeof pb, "%s/%s/%s/%s.%s", b, kinds[k][0], splits[s], line, kinds[k][1]);
                size_t na, nb;
                char *x = slurp(pa, &na), *y = slurp(pb, &nb);
                differ += na != nb || memcmp(x, y, na);
                count++;
                free(x);
                free(y);
            }
        }
        free(list);
    }
    *n_files = count;
    return differ;
}

static int n_regular;

static int count_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)p;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(sb->st_mode)) n_regular++;
    return 0;
}

/* Regular files under path, at any depth. */
static int count_entries(const char *path)
{
    n_regular = 0;
    cr_assert_eq(nftw(path, count_entry, 16, FTW_PHYS), 0, "cannot walk %s", path);
    return n_regular;
}

Test(synth, output_is_deterministic_and_seed_dependent)
{
    char a[512], b[512], c[512];
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    generate("s5_one_thread", 5, 30, 160, 128, NULL, a);
    omp_set_num_threads(3);
    generate("s5_three_threads", 5, 30, 160, 128, NULL, b);
    omp_set_num_threads(threads);
    generate("s6", 6, 30, 160, 128, NULL, c);
    int n_files;
    cr_assert_eq(compare_trees(a, b, &n_files), 0, "same seed, different bytes");
    cr_assert_eq(n_files, 5 + 2 * 30);
    /* nothing but those files (no temp files left) */
    cr_assert_eq(count_entries(a), n_files);
    cr_assert_eq(count_entries(b), n_files);
    int differ = compare_trees(a, c, &n_files);
    /* classes.txt and the split lists do not depend on the seed; the JSON and nearly all images do */
    cr_assert_geq(differ, n_files - 3 - 6, "only %d of %d files differ between seeds", differ, n_files);
}

Test(synth, class_subset_and_png_format)
{
    mn_synth_config c;
    mn_synth_config_default(&c);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sub/deeper", tmp); /* parents are created */
    c.out_dir = dir;
    c.n_images = 12;
    c.width = 96;
    c.height = 64;
    c.png = true;
    cr_assert_eq(mn_synth_set_classes(&c, "ring, circle"), 0, "%s", mn_last_error());
    cr_assert_eq(c.n_classes, 2);
    cr_assert(c.classes[0] == MN_SHAPE_CIRCLE && c.classes[1] == MN_SHAPE_RING, "sorted by category id");
    cr_assert_eq(mn_synth_generate(&c, NULL), 0, "%s", mn_last_error());
    char p[600];
    snprintf(p, sizeof p, "%s/classes.txt", dir);
    char *text = slurp(p, NULL);
    cr_assert_str_eq(text, "# label index and name; COCO category ids: circle=1 ring=13\n0 background\n1 circle\n2 ring\n");
    free(text);
    cJSON *j = load_json(dir, "train");
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(j, "categories");
    cr_assert_eq(cJSON_GetArraySize(cats), 2);
    cr_assert_eq(num(cJSON_GetArrayItem(cats, 0), "id"), mn_shape_category_id(MN_SHAPE_CIRCLE));
    cr_assert_eq(num(cJSON_GetArrayItem(cats, 1), "id"), mn_shape_category_id(MN_SHAPE_RING));
    const cJSON *im = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "images"), 0);
    const char *fn = cJSON_GetObjectItemCaseSensitive(im, "file_name")->valuestring;
    cr_assert(strstr(fn, ".png"), "%s", fn);
    snprintf(p, sizeof p, "%s/images/train/%s", dir, fn);
    mn_image img;
    cr_assert_eq(mn_image_load(p, 0, &img), 0, "%s", mn_last_error());
    cr_assert(img.w == 96 && img.h == 64 && img.c == 3);
    mn_image_free(&img);
    cJSON_Delete(j);
}

Test(synth, refuses_non_empty_directory_without_force)
{
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/user", tmp);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/precious.txt", dir);
    FILE *f = fopen(p, "w");
    fputs("keep me", f);
    fclose(f);
    mn_synth_config c;
    mn_synth_config_default(&c);
    c.out_dir = dir;
    c.n_images = 4;
    c.width = c.height = 64;
    mn_clear_error();
    cr_assert_eq(mn_synth_generate(&c, NULL), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), dir) && strstr(mn_last_error(), "not empty"), "%s", mn_last_error());
    cr_assert_eq(count_entries(dir), 1, "nothing written");
    snprintf(p, sizeof p, "%s/annotations", dir);
    cr_assert_neq(access(p, F_OK), 0);
    c.force = true;
    cr_assert_eq(mn_synth_generate(&c, NULL), 0, "%s", mn_last_error());
    snprintf(p, sizeof p, "%s/precious.txt", dir);
    char *text = slurp(p, NULL);
    cr_assert_str_eq(text, "keep me");
    free(text);
    /* an existing regular file is not a directory */
    c.out_dir = p;
    cr_assert_lt(mn_synth_generate(&c, NULL), 0);
    cr_assert(strstr(mn_last_error(), p), "%s", mn_last_error());
}

Test(synth, config_errors_name_the_field)
{
    mn_synth_config c;
    mn_synth_config_default(&c);
    cr_assert_eq(mn_synth_set_classes(&c, "circle,hexagon"), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "hexagon"), "%s", mn_last_error());
    cr_assert_eq(mn_synth_set_classes(&c, "circle,circle"), MN_EINVAL);
    cr_assert_eq(mn_synth_set_classes(&c, ""), MN_EINVAL);
    cr_assert_eq(mn_synth_set_classes(&c, "star,"), MN_EINVAL);
    cr_assert_eq(c.n_classes, 5, "failed calls leave the classes alone");
    cr_assert_eq(mn_synth_check_config(&c), 0);
    mn_synth_config bad = c;
    bad.width = 16;
    cr_assert_eq(mn_synth_check_config(&bad), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "16x320"), "%s", mn_last_error());
    bad = c;
    bad.val_fraction = 1.0;
    cr_assert_eq(mn_synth_check_config(&bad), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "val_fraction"), "%s", mn_last_error());
    bad = c;
    bad.max_objects = 0;
    cr_assert_eq(mn_synth_check_config(&bad), MN_EINVAL);
    bad = c;
    bad.n_images = 0;
    cr_assert_eq(mn_synth_check_config(&bad), MN_EINVAL);
    bad = c;
    bad.classes[1] = bad.classes[0];
    cr_assert_eq(mn_synth_check_config(&bad), MN_EINVAL);
    bad = c;
    bad.min_visible = 0.01;
    cr_assert_eq(mn_synth_check_config(&bad), MN_EINVAL);
    cr_assert(strstr(mn_last_error(), "min_visible"), "%s", mn_last_error());
    bad = c;
    bad.out_dir = NULL;
    cr_assert_eq(mn_synth_generate(&bad, NULL), MN_EINVAL);
    mn_synth_sample s;
    cr_assert_eq(mn_synth_render(&c, c.n_images, &s), MN_EINVAL, "index past the end");
}

Test(synth, split_rule_and_render_match_files)
{
    mn_synth_config c;
    mn_synth_config_default(&c);
    c.n_images = 100;
    int val = 0, local;
    for (int i = 0; i < 100; i++) {
        int s = mn_synth_split_of(&c, i, &local);
        cr_assert_eq(s, i % 5 == 4, "image %d", i);
        cr_assert_eq(local, s ? i / 5 : i - (i + 1) / 5, "image %d local index", i);
        val += s;
    }
    cr_assert_eq(val, 20);
    c.val_fraction = 0;
    for (int i = 0; i < 100; i++) cr_assert_eq(mn_synth_split_of(&c, i, &local), 0);
    cr_assert_eq(local, 99);

    /* the in-memory render is what the files hold */
    char dir[512];
    generate("r", 9, 6, 96, 96, NULL, dir);
    c.val_fraction = 0.2;
    c.n_images = 6;
    c.width = c.height = 96;
    c.seed = 9;
    mn_synth_sample s;
    cr_assert_eq(mn_synth_render(&c, 2, &s), 0, "%s", mn_last_error());
    char p[600];
    snprintf(p, sizeof p, "%s/labels/train/000003.png", dir);
    mn_image lab;
    cr_assert_eq(mn_image_load_labels(p, &lab), 0, "%s", mn_last_error());
    cr_assert_eq(memcmp(lab.data, s.label.data, 96 * 96), 0);
    mn_image_free(&lab);
    mn_synth_sample_free(&s);
}

/* ---- classification layout ---- */

/* Generates the classification set of c into tmp/name with the given OpenMP thread count. */
static mn_synth_stats generate_cls(mn_synth_config *c, const char *name, int threads, char *dir_out /* 512 */)
{
    snprintf(dir_out, 512, "%s/%s", tmp, name);
    c->out_dir = dir_out;
    int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    mn_synth_stats st;
    int rc = mn_synth_generate(c, &st);
    omp_set_num_threads(saved);
    cr_assert_eq(rc, 0, "%s", mn_last_error());
    return st;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

Test(synth, classification_set_is_an_imagefolder)
{
    enum { N = 40 };
    mn_synth_config c;
    mn_synth_config_default(&c);
    c.n_images = N;
    c.width = c.height = 64;
    c.seed = 11;
    c.png = true;
    c.classification = true; /* max_objects stays at its default 6: classification ignores it */
    cr_assert_eq(mn_synth_set_classes(&c, "star, circle, square"), 0, "%s", mn_last_error());
    char a[512], b[512], plain[512];
    mn_synth_stats st = generate_cls(&c, "cls_one_thread", 1, a);
    mn_synth_stats st3 = generate_cls(&c, "cls_three_threads", 3, b);
    /* the normal layout with one object per image, for the byte comparison */
    mn_synth_config one = c;
    one.classification = false;
    one.max_objects = 1;
    one.large_objects = true;
    generate_cls(&one, "plain_one_object", 2, plain);

    /* what the split and every-10th rules leave, and the class of each image's one object */
    int want[2] = {0, 0}, cls_of[N];
    for (int i = 0; i < N; i++) {
        int local, s = mn_synth_split_of(&c, i, &local);
        mn_synth_sample r;
        cr_assert_eq(mn_synth_render(&one, i, &r), 0, "%s", mn_last_error());
        bool empty = local % 10 == 9;
        cr_assert_eq(r.n_objects, empty ? 0 : 1, "image %d (split %d, local %d): %d objects", i, s, local, r.n_objects);
        cls_of[i] = empty ? -1 : r.objects[0].label - 1;
        if (!empty) {
            cr_assert_eq(r.objects[0].shape, c.classes[cls_of[i]]);
            /* large and mostly inside: its box's centre in the middle of the image, its area from
             * 8 % of the image (35 % at most, before clipping) */
            const double *bb = r.objects[0].bbox;
            double mx = bb[0] + bb[2] / 2, my = bb[1] + bb[3] / 2;
            cr_assert(mx > 0.2 * 64 && mx < 0.8 * 64 && my > 0.2 * 64 && my < 0.8 * 64, "image %d: box %g %g %g %g", i, bb[0],
                      bb[1], bb[2], bb[3]);
            cr_assert(r.objects[0].area > 0.04 * 64 * 64 && r.objects[0].area < 0.36 * 64 * 64, "image %d: area %g", i,
                      r.objects[0].area);
            want[s]++;
        }
        mn_synth_sample_free(&r);
    }
    int total[2] = {0, 0};
    for (int i = 0; i < N; i++) total[mn_synth_split_of(&c, i, NULL)]++;
    for (int s = 0; s < 2; s++) /* a split of n images has floor(n / 10) empty ones */
        cr_assert_eq(want[s], total[s] - total[s] / 10, "split %d: %d written of %d", s, want[s], total[s]);
    cr_assert_eq(st.n_train, want[0]);
    cr_assert_eq(st.n_val, want[1]);
    cr_assert_eq(st.n_empty, 0);
    cr_assert_eq(st.n_objects, want[0] + want[1]);
    cr_assert(st3.n_train == st.n_train && st3.n_val == st.n_val);

    /* classes.txt, nothing of the normal layout, and one file per written image */
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/classes.txt", a);
    char *text = slurp(p, NULL);
    cr_assert_str_eq(text, "# class names in label order (the imagefolder data set kind's class list)\ncircle\nsquare\nstar\n");
    free(text);
    static const char *const absent[] = {"images", "labels", "annotations", "splits"};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s", a, absent[k]);
        cr_assert(!exists(p), "%s was written", p);
    }
    cr_assert_eq(count_entries(a), want[0] + want[1] + 1, "only the images and classes.txt");
    cr_assert_eq(count_entries(b), want[0] + want[1] + 1);

    for (int i = 0; i < N; i++) {
        int s = mn_synth_split_of(&c, i, NULL);
        for (int k = 0; k < c.n_classes; k++) {
            snprintf(p, sizeof p, "%s/%s/%s/%06d.png", a, splits[s], mn_shape_name(c.classes[k]), i + 1);
            cr_assert_eq(exists(p), k == cls_of[i], "image %d: %s %s", i, p, k == cls_of[i] ? "missing" : "written");
        }
        if (cls_of[i] < 0) continue;
        /* same bytes with three threads and in the normal layout */
        snprintf(p, sizeof p, "%s/%s/%s/%06d.png", a, splits[s], mn_shape_name(c.classes[cls_of[i]]), i + 1);
        size_t na, nb;
        char *x = slurp(p, &na);
        snprintf(q, sizeof q, "%s/%s/%s/%06d.png", b, splits[s], mn_shape_name(c.classes[cls_of[i]]), i + 1);
        char *y = slurp(q, &nb);
        cr_assert(na == nb && !memcmp(x, y, na), "image %d differs between thread counts", i);
        free(y);
        snprintf(q, sizeof q, "%s/images/%s/%06d.png", plain, splits[s], i + 1);
        y = slurp(q, &nb);
        cr_assert(na == nb && !memcmp(x, y, na), "image %d differs from the normal layout's", i);
        free(x);
        free(y);
    }

    /* the imagefolder kind reads it back: classes in label order, samples by (class, file) */
    for (int s = 0; s < 2; s++) {
        mn_dataset_options o = {.kind = "imagefolder", .root = a, .split = splits[s]};
        mn_dataset *d = NULL;
        cr_assert_eq(mn_dataset_open(&d, &o), 0, "%s", mn_last_error());
        cr_assert_eq(mn_dataset_size(d), want[s]);
        cr_assert_eq(mn_dataset_num_classes(d), 3);
        for (int k = 0; k < 3; k++) cr_assert_str_eq(mn_dataset_class_name(d, k), mn_shape_name(c.classes[k]));
        int prev_class = -1, prev_index = -1;
        for (int j = 0; j < want[s]; j++) {
            mn_sample smp;
            cr_assert_eq(mn_dataset_get(d, j, &smp), 0, "%s", mn_last_error());
            const char *us = strrchr(smp.name, '_');
            cr_assert(us, "%s", smp.name);
            int idx = atoi(us + 1) - 1;
            cr_assert(idx >= 0 && idx < N && mn_synth_split_of(&c, idx, NULL) == s, "%s", smp.name);
            cr_assert_eq(smp.class_id, cls_of[idx], "%s: class %d, want %d", smp.name, smp.class_id, cls_of[idx]);
            cr_assert(smp.class_id > prev_class || (smp.class_id == prev_class && idx > prev_index), "order at %s",
                      smp.name);
            prev_class = smp.class_id;
            prev_index = idx;
            cr_assert(smp.image.w == 64 && smp.image.h == 64 && smp.image.c == 3);
            mn_sample_free(&smp);
        }
        mn_dataset_close(d);
    }
}

/* ---- polygon helpers ---- */

Test(polygon, area_bounds_and_dedup)
{
    double sq[] = {1, 1, 4, 1, 4, 3, 1, 3};
    cr_assert_float_eq(mn_polygon_area(sq, 4), 6.0, 1e-12);
    double rev[] = {1, 1, 1, 3, 4, 3, 4, 1};
    cr_assert_float_eq(mn_polygon_area(rev, 4), -6.0, 1e-12);
    double tri[] = {0, 0, 10, 0, 0, 5};
    cr_assert_float_eq(fabs(mn_polygon_area(tri, 3)), 25.0, 1e-12);
    double box[4];
    mn_polygon_bounds(tri, 3, box);
    cr_assert(box[0] == 0 && box[1] == 0 && box[2] == 10 && box[3] == 5);
    double dup[] = {0, 0, 0, 0, 2, 0, 2, 2, 2, 2, 0, 2, 0, 0};
    cr_assert_eq(mn_polygon_dedup(dup, 7), 4);
    cr_assert(dup[2] == 2 && dup[3] == 0 && dup[6] == 0 && dup[7] == 2);
}

Test(polygon, fill_of_a_rectangle_is_exact)
{
    uint8_t m[10 * 8] = {0};
    double r[] = {2, 3, 7, 3, 7, 5, 2, 5}; /* covers centres x in 2.5..6.5, y in 3.5..4.5 */
    cr_assert_eq(mn_polygon_fill(m, 10, 8, r, 4, 7), 10);
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++)
            cr_assert_eq(m[y * 10 + x], (x >= 2 && x < 7 && y >= 3 && y < 5) ? 7 : 0, "(%d, %d)", x, y);
    /* partly outside the grid: only the inside part is drawn */
    double big[] = {-5, -5, 3, -5, 3, 2, -5, 2};
    memset(m, 0, sizeof m);
    cr_assert_eq(mn_polygon_fill(m, 10, 8, big, 4, 1), 6);
}

/* Random polygons (vertices around a centre at random radii, some self-intersecting) on a grid. */
static void random_polygon(mn_rng *r, double *xy, int n, bool eighths, bool tangled)
{
    double cx = mn_rng_range(r, -10, 70), cy = mn_rng_range(r, -10, 50);
    for (int k = 0; k < n; k++) {
        double ang = tangled ? mn_rng_range(r, 0, 6.2832f) : 6.2831853 * k / n;
        double rad = mn_rng_range(r, 2, 40);
        xy[2 * k] = cx + rad * cos(ang);
        xy[2 * k + 1] = cy + rad * sin(ang);
        if (eighths) {
            xy[2 * k] = round(xy[2 * k] * 8) / 8;
            xy[2 * k + 1] = round(xy[2 * k + 1] * 8) / 8;
        }
    }
}

Test(polygon, fill_matches_reference)
{
    mn_rng r;
    mn_rng_seed(&r, 21);
    const int W = 64, H = 48;
    uint8_t *a = malloc(W * H), *b = malloc(W * H);
    for (int trial = 0; trial < 300; trial++) {
        int n = mn_rng_int(&r, 3, 40);
        double xy[80];
        /* 1/8-pixel vertices put crossings exactly on pixel centres: the tie rules must agree */
        random_polygon(&r, xy, n, trial % 2 == 0, trial % 3 == 0);
        memset(a, 0, W * H);
        memset(b, 0, W * H);
        int64_t ca = mn_polygon_fill(a, W, H, xy, n, 1), cb = mn_polygon_fill_ref(b, W, H, xy, n, 1);
        cr_assert_eq(ca, cb, "trial %d: %lld pixels vs reference %lld", trial, (long long)ca, (long long)cb);
        cr_assert_eq(memcmp(a, b, W * H), 0, "trial %d: masks differ", trial);
    }
    free(a);
    free(b);
}

Test(polygon, clipping_keeps_area_and_pixels)
{
    double sq[] = {-5, -5, 5, -5, 5, 5, -5, 5}, *out;
    int m = mn_polygon_clip_rect(&out, sq, 4, 0, 0, 10, 10);
    cr_assert_geq(m, 4);
    cr_assert_float_eq(fabs(mn_polygon_area(out, m)), 25.0, 1e-12);
    double box[4];
    mn_polygon_bounds(out, m, box);
    cr_assert(box[0] == 0 && box[1] == 0 && box[2] == 5 && box[3] == 5);
    free(out);
    double away[] = {20, 20, 30, 20, 25, 30};
    cr_assert_eq(mn_polygon_clip_rect(&out, away, 3, 0, 0, 10, 10), 0);
    cr_assert_null(out);
    double nan_poly[] = {0, 0, NAN, 1, 1, 1};
    cr_assert_eq(mn_polygon_clip_rect(&out, nan_poly, 3, 0, 0, 10, 10), MN_EINVAL);

    /* a concave star half outside: clipping changes no pixel inside the rectangle, and the clipped
     * area is the area of the part inside (checked on a 1/16-pixel grid of sample points) */
    mn_rng r;
    mn_rng_seed(&r, 5);
    const int W = 64, H = 48;
    uint8_t *a = malloc(W * H), *b = malloc(W * H);
    for (int trial = 0; trial < 100; trial++) {
        int n = mn_rng_int(&r, 3, 30);
        double xy[60];
        random_polygon(&r, xy, n, false, trial % 4 == 0);
        m = mn_polygon_clip_rect(&out, xy, n, 0, 0, W, H);
        cr_assert_geq(m, 0);
        memset(a, 0, W * H);
        memset(b, 0, W * H);
        mn_polygon_fill(a, W, H, xy, n, 1);
        if (m) mn_polygon_fill(b, W, H, out, m, 1);
        cr_assert_eq(memcmp(a, b, W * H), 0, "trial %d: clipping changed the covered pixels", trial);
        if (trial % 4 != 0) { /* simple (star-shaped) polygons: the area is well defined */
            double inside_area = 0;
            for (double y = 1.0 / 32; y < H; y += 1.0 / 16)
                for (double x = 1.0 / 32; x < W; x += 1.0 / 16)
                    inside_area += mn_polygon_contains(xy, n, x, y) ? 1.0 / 256 : 0;
            double clipped = m ? fabs(mn_polygon_area(out, m)) : 0;
            cr_assert(fabs(clipped - inside_area) <= 0.02 * inside_area + 2.0,
                      "trial %d: clipped area %g, sampled %g", trial, clipped, inside_area);
        }
        free(out);
    }
    free(a);
    free(b);
}
