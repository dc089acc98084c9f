/* `mutualnet data check` (tools/cmd_data.c) and the datasets functions it adds: counts checked against
 * the synthetic set's own samples, bad files and annotations reported, the JSON report, usage errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "common.h"

#include "mn/dataset.h"
#include "mn/synth.h"
/* the command is compiled into this test so that it runs in-process */
#include "tools/args.c"
#include "tools/report.c"
#include "tools/cmd_data.c"

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/mn_data_check_XXXXXX");
    cr_assert(mkdtemp(dir));
}

static void remove_dir(void) { tc_remove_tree(dir); }

TestSuite(data_check, .init = make_dir, .fini = remove_dir);

static char *read_all(int fd)
{
    off_t n = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(read(fd, buf, (size_t)n), n);
    buf[n] = 0;
    close(fd);
    return buf;
}

/* Runs `mutualnet data ARGS...` in-process: its exit status, its stdout in *out (malloc'd); stderr is
 * passed on to the test log. */
static int run_data(char **out, int argc, char **argv)
{
    char opath[] = "/tmp/mn_dc_out_XXXXXX";
    int ofd = mkstemp(opath);
    cr_assert(ofd >= 0);
    fflush(stdout);
    int so = dup(1);
    dup2(ofd, 1);
    int status = mn_cmd_data(argc, argv);
    fflush(stdout);
    dup2(so, 1);
    close(so);
    *out = read_all(ofd);
    unlink(opath);
    return status;
}

/* `data check --config CONFIG --set data.root=ROOT [--json]` with a root of this test's folder. */
static int check_set(char **out, const char *config, const char *root, bool json)
{
    char cfg[512], set[600];
    snprintf(cfg, sizeof cfg, "%s/configs/%s", MN_SOURCE_DIR, config);
    snprintf(set, sizeof set, "data.root=%s", root);
    char *argv[] = {"data", "check", "--config", cfg, "--set", set, "--json"};
    return run_data(out, json ? 7 : 6, argv);
}

static cJSON *parse(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    cr_assert(j, "the report is not JSON:\n%s", text);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(cJSON_IsNumber(v), "key %s missing", key);
    return v->valuedouble;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    cr_assert(v, "key %s missing", key);
    return v;
}

static void synth_set(mn_synth_config *c, const char *out, int n)
{
    mn_synth_config_default(c);
    c->out_dir = out;
    c->n_images = n;
    c->width = 64;
    c->height = 48;
    c->seed = 7;
    c->png = true;
    cr_assert_eq(mn_synth_generate(c, NULL), 0, "%s", mn_last_error());
}

/* What the check should find in one split, counted from the samples the generator renders. */
typedef struct expected {
    int images, empty_seg, empty_det;
    int min_objects, max_objects;
    int64_t pixels[256], with_class[256];
    int64_t objects[8], with_object[8];
} expected;

static void count_rendered(const mn_synth_config *c, int split, expected *e)
{
    memset(e, 0, sizeof *e);
    e->min_objects = MN_SYNTH_MAX_OBJECTS;
    for (int i = 0; i < c->n_images; i++) {
        if (mn_synth_split_of(c, i, NULL) != split) continue;
        mn_synth_sample s;
        cr_assert_eq(mn_synth_render(c, i, &s), 0);
        e->images++;
        int64_t hist[256] = {0};
        for (int p = 0; p < s.label.w * s.label.h; p++) hist[s.label.data[p]]++;
        bool any = false;
        for (int v = 0; v < 256; v++) {
            e->pixels[v] += hist[v];
            e->with_class[v] += hist[v] > 0;
            any |= v > 0 && v < 255 && hist[v] > 0;
        }
        e->empty_seg += !any;
        e->empty_det += s.n_objects == 0;
        e->min_objects = s.n_objects < e->min_objects ? s.n_objects : e->min_objects;
        e->max_objects = s.n_objects > e->max_objects ? s.n_objects : e->max_objects;
        int per[8] = {0};
        for (int k = 0; k < s.n_objects; k++) per[s.objects[k].label]++;
        for (int k = 0; k < 8; k++) {
            e->objects[k] += per[k];
            e->with_object[k] += per[k] > 0;
        }
        mn_synth_sample_free(&s);
    }
}

Test(data_check, segmentation_counts_match_the_rendered_labels)
{
    char root[128];
    snprintf(root, sizeof root, "%s/shapes", dir);
    mn_synth_config sc;
    synth_set(&sc, root, 30);
    char *out;
    cr_assert_eq(check_set(&out, "seg_shapes_mbv2.json", root, true), MN_EXIT_OK, "%s", out);
    cJSON *j = parse(out);
    cr_expect_eq(num(j, "errors"), 0);
    cr_expect_eq(num(j, "warnings"), 0);
    const cJSON *map = get(j, "class_mapping");
    cr_assert_eq(cJSON_GetArraySize(map), 6);
    cr_expect_str_eq(get(cJSON_GetArrayItem(map, 4), "name")->valuestring, "star");
    cr_expect_eq(num(cJSON_GetArrayItem(map, 4), "value"), 4);
    const char *splits[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        expected e;
        count_rendered(&sc, s, &e);
        const cJSON *sp = get(get(j, "splits"), splits[s]);
        cr_expect_eq(num(sp, "images"), e.images);
        cr_expect_eq(num(sp, "read"), e.images);
        cr_expect_eq(num(sp, "empty_images"), e.empty_seg, "%s", splits[s]);
        cr_expect_eq(num(sp, "ignore_pixels"), e.pixels[255]);
        cr_expect_eq(num(sp, "pixels"), (double)e.images * 64 * 48);
        cr_expect_eq(num(get(sp, "width"), "median"), 64);
        cr_expect_eq(num(get(sp, "height"), "max"), 48);
        cr_expect_eq(num(sp, "distinct_sizes"), 1);
        const cJSON *cls = get(sp, "classes");
        cr_assert_eq(cJSON_GetArraySize(cls), 6);
        for (int k = 0; k < 6; k++) {
            const cJSON *ck = cJSON_GetArrayItem(cls, k);
            cr_expect_eq(num(ck, "pixels"), e.pixels[k], "%s class %d", splits[s], k);
            cr_expect_eq(num(ck, "images"), e.with_class[k], "%s class %d", splits[s], k);
        }
    }
    cJSON_Delete(j);
    free(out);
}

Test(data_check, detection_counts_match_the_rendered_objects)
{
    char root[128];
    snprintf(root, sizeof root, "%s/shapes", dir);
    mn_synth_config sc;
    synth_set(&sc, root, 30);
    char *out;
    cr_assert_eq(check_set(&out, "det_shapes_mbv2.json", root, true), MN_EXIT_OK, "%s", out);
    cJSON *j = parse(out);
    const cJSON *map = get(j, "class_mapping");
    int ids[6] = {-1, 1, 3, 7, 9, 13}; /* the shapes' fixed category ids */
    cr_expect(cJSON_IsNull(get(cJSON_GetArrayItem(map, 0), "value")), "background has no category id");
    for (int k = 1; k < 6; k++) cr_expect_eq(num(cJSON_GetArrayItem(map, k), "value"), ids[k]);
    const char *splits[2] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        expected e;
        count_rendered(&sc, s, &e);
        const cJSON *sp = get(get(j, "splits"), splits[s]);
        cr_expect_eq(num(sp, "images_without_objects"), e.empty_det);
        cr_expect_eq(e.empty_det, s == 0 ? 2 : 0, "the 10th and 20th train images are empty");
        int64_t total = 0;
        for (int k = 1; k < 6; k++) {
            const cJSON *ck = cJSON_GetArrayItem(get(sp, "classes"), k - 1);
            cr_expect_eq(num(ck, "index"), k);
            cr_expect_eq(num(ck, "objects"), e.objects[k], "%s class %d", splits[s], k);
            cr_expect_eq(num(ck, "images"), e.with_object[k], "%s class %d", splits[s], k);
            cr_expect_eq(num(ck, "crowd"), 0);
            total += e.objects[k];
        }
        cr_expect_eq(num(get(sp, "annotations"), "usable"), total);
        cr_expect_eq(num(get(sp, "objects_per_image"), "min"), e.min_objects);
        cr_expect_eq(num(get(sp, "objects_per_image"), "max"), e.max_objects);
    }
    cJSON_Delete(j);
    free(out);
}

/* The path of the n-th (0-based) image of a split of the synthetic set. */
static void nth_of_split(const mn_synth_config *c, int split, int n, const char *kind, const char *ext, char *out,
                         size_t size)
{
    for (int i = 0, seen = 0; i < c->n_images; i++) {
        if (mn_synth_split_of(c, i, NULL) != split || seen++ != n) continue;
        snprintf(out, size, "%s/%s/%s/%06d.%s", c->out_dir, kind, split ? "val" : "train", i + 1, ext);
        return;
    }
    cr_assert_fail("no image %d in split %d", n, split);
}

Test(data_check, a_truncated_image_and_a_wrong_size_label_are_errors)
{
    char root[128], image[256], label[256];
    snprintf(root, sizeof root, "%s/shapes", dir);
    mn_synth_config sc;
    synth_set(&sc, root, 30);
    nth_of_split(&sc, 0, 2, "images", "png", image, sizeof image);
    nth_of_split(&sc, 1, 1, "labels", "png", label, sizeof label);
    cr_assert_eq(truncate(image, 60), 0);
    mn_image small;
    cr_assert_eq(mn_image_alloc(&small, 32, 32, 1), 0);
    memset(small.data, 0, 32 * 32);
    cr_assert_eq(mn_image_save(label, &small, 90), 0);
    mn_image_free(&small);

    char *out;
    cr_assert_eq(check_set(&out, "seg_shapes_mbv2.json", root, false), MN_EXIT_FAIL, "%s", out);
    cr_expect(strstr(out, "problems: 2 errors, 0 warnings"), "%s", out);
    cr_expect(strstr(out, image), "the truncated image is named:\n%s", out);
    char *at = strstr(out, label);
    cr_expect(at && strstr(at, "label is 32x32 but its image is 64x48"), "the label is named with its size:\n%s", out);
    cr_expect(strstr(out, "split train: 24 images, 23 read"), "%s", out);
    free(out);

    cr_assert_eq(check_set(&out, "seg_shapes_mbv2.json", root, true), MN_EXIT_FAIL);
    cJSON *j = parse(out);
    cr_expect_eq(num(j, "errors"), 2);
    const cJSON *pr = get(j, "problems");
    cr_assert_eq(cJSON_GetArraySize(pr), 2);
    cr_expect_str_eq(get(cJSON_GetArrayItem(pr, 0), "split")->valuestring, "train");
    cr_expect_str_eq(get(cJSON_GetArrayItem(pr, 0), "severity")->valuestring, "error");
    cr_expect(strstr(get(cJSON_GetArrayItem(pr, 0), "message")->valuestring, image));
    cr_expect_str_eq(get(cJSON_GetArrayItem(pr, 1), "split")->valuestring, "val");
    cr_expect_eq(num(get(get(j, "splits"), "val"), "read"), 5);
    cJSON_Delete(j);
    free(out);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* A two-image COCO set whose both splits hold one good box, a zero-width box, an unknown category
 * id and a box outside its image. */
static void bad_coco(const char *root)
{
    char path[300];
    const char *folders[] = {"", "/annotations", "/images", "/images/train", "/images/val"};
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s%s", root, folders[i]);
        cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
    }
    mn_image im;
    cr_assert_eq(mn_image_alloc(&im, 40, 30, 3), 0);
    memset(im.data, 90, 40 * 30 * 3);
    const char *json = "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 40, \"height\": 30},"
                       " {\"id\": 2, \"file_name\": \"b.png\", \"width\": 40, \"height\": 30}],"
                       " \"categories\": [{\"id\": 4, \"name\": \"cat\"}, {\"id\": 2, \"name\": \"dog\"}],"
                       " \"annotations\": [{\"id\": 10, \"image_id\": 1, \"category_id\": 4, \"bbox\": [1, 2, 10, 8]},"
                       " {\"id\": 11, \"image_id\": 1, \"category_id\": 2, \"bbox\": [5, 5, 0, 7]},"
                       " {\"id\": 12, \"image_id\": 2, \"category_id\": 99, \"bbox\": [5, 5, 4, 4]},"
                       " {\"id\": 13, \"image_id\": 2, \"category_id\": 2, \"bbox\": [50, 40, 4, 4]}]}";
    const char *splits[] = {"train", "val"};
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/images/%s/%s", root, splits[s], k ? "b.png" : "a.png");
            cr_assert_eq(mn_image_save(path, &im, 90), 0);
        }
        snprintf(path, sizeof path, "%s/annotations/instances_%s.json", root, splits[s]);
        write_file(path, json);
    }
    mn_image_free(&im);
}

Test(data_check, coco_boxes_and_ids_that_training_drops_are_listed)
{
    char root[128];
    snprintf(root, sizeof root, "%s/coco", dir);
    bad_coco(root);
    char *out;
    /* dropped annotations are warnings: training runs without them */
    cr_assert_eq(check_set(&out, "det_shapes_mbv2.json", root, true), MN_EXIT_OK, "%s", out);
    cJSON *j = parse(out);
    cr_expect_eq(num(j, "errors"), 0);
    cr_expect_eq(num(j, "warnings"), 6);
    const cJSON *pr = get(j, "problems");
    cr_assert_eq(cJSON_GetArraySize(pr), 6);
    const char *want[3] = {"annotations[1] (id 11, image 1): bbox [5, 5, 0, 7] has zero or negative width or height",
                           "annotations[2] (id 12, image 2): category_id 99 is not in \"categories\"",
                           "annotations[3] (id 13, image 2): bbox [50, 40, 4, 4] has no area inside its image"};
    for (int i = 0; i < 3; i++) {
        const char *m = get(cJSON_GetArrayItem(pr, i), "message")->valuestring;
        cr_expect(strstr(m, "instances_train.json: ") && strstr(m, want[i]), "%s", m);
        cr_expect_str_eq(get(cJSON_GetArrayItem(pr, i), "severity")->valuestring, "warning");
    }
    const cJSON *train = get(get(j, "splits"), "train");
    cr_expect_eq(num(get(train, "annotations"), "degenerate"), 2);
    cr_expect_eq(num(get(train, "annotations"), "unknown_category"), 1);
    cr_expect_eq(num(train, "images_without_objects"), 1);
    const cJSON *map = get(j, "class_mapping"); /* categories in ascending id */
    cr_expect_eq(num(cJSON_GetArrayItem(map, 1), "value"), 2);
    cr_expect_str_eq(get(cJSON_GetArrayItem(map, 1), "name")->valuestring, "dog");
    cr_expect_eq(num(cJSON_GetArrayItem(map, 2), "value"), 4);
    cr_expect_eq(num(cJSON_GetArrayItem(get(train, "classes"), 1), "objects"), 1, "the one good box is a cat");
    cJSON_Delete(j);
    free(out);

    /* the library's list, directly */
    mn_dataset_options o = {.kind = "coco", .root = root, .split = "val", .record_issues = true};
    mn_dataset *d;
    cr_assert_eq(mn_dataset_open(&d, &o), 0, "%s", mn_last_error());
    const mn_dataset_issue *is;
    int n;
    cr_assert_eq(mn_dataset_annotation_issues(d, &is, &n), 0, "%s", mn_last_error());
    cr_assert_eq(n, 3);
    cr_expect_eq(is[1].index, 2);
    cr_expect_eq(is[1].id, 12);
    cr_expect_eq(is[1].category_id, 99);
    mn_dataset_close(d);
    o.record_issues = false; /* not asked for: none kept */
    cr_assert_eq(mn_dataset_open(&d, &o), 0, "%s", mn_last_error());
    cr_expect_eq(mn_dataset_annotation_issues(d, &is, &n), 0);
    cr_expect_eq(n, 0);
    mn_dataset_close(d);
}

Test(data_check, problems_past_the_cap_are_counted)
{
    problems p = {.listed = calloc(MAX_LISTED, sizeof(problem))};
    for (int i = 2 * MAX_LISTED; i > 0; i--) add_problem(&p, i % 2, 0, 2, i, "x"); /* arrive in reverse */
    cr_expect_eq(p.n_listed, MAX_LISTED);
    cr_expect_eq(p.errors + p.warnings, 2 * MAX_LISTED);
    for (int i = 0; i < MAX_LISTED; i++) cr_expect_eq(p.listed[i].index, i + 1, "the first ones, in order");
    free(p.listed);
}

Test(data_check, the_mapping_training_prints)
{
    char root[128];
    snprintf(root, sizeof root, "%s/shapes", dir);
    mn_synth_config sc;
    synth_set(&sc, root, 30);
    mn_config c;
    char cfg[512], set[300];
    snprintf(cfg, sizeof cfg, "%s/configs/det_shapes_mbv2.json", MN_SOURCE_DIR);
    snprintf(set, sizeof set, "data.root=%s", root);
    const char *sets[] = {set};
    mn_config_default(&c);
    cr_assert_eq(mn_config_load_with(cfg, sets, 1, &c), 0, "%s", mn_last_error());
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(mn_data_print_classes(f, &c), 0, "%s", mn_last_error());
    fclose(f);
    cr_expect(strstr(text, "classes: 6 (category id -> index -> name)\n  (none) -> 0 background\n  1 -> 1 circle\n"
                           "  3 -> 2 square\n  7 -> 3 triangle\n  9 -> 4 star\n  13 -> 5 ring\n"), "%s", text);
    cr_expect(strstr(text, "split train: 24 images; split val: 6 images\n"), "%s", text);
    free(text);
}

Test(data_check, usage_errors)
{
    char *out;
    char *help[] = {"data", "--help"};
    cr_expect_eq(run_data(&out, 2, help), MN_EXIT_OK);
    cr_expect(strstr(out, "usage: mutualnet data check"));
    free(out);
    char *none[] = {"data"};
    cr_expect_eq(run_data(&out, 1, none), MN_EXIT_USAGE);
    free(out);
    char *other[] = {"data", "fix"};
    cr_expect_eq(run_data(&out, 2, other), MN_EXIT_USAGE);
    free(out);
    char *no_config[] = {"data", "check", "--json"};
    cr_expect_eq(run_data(&out, 3, no_config), MN_EXIT_USAGE);
    free(out);
    char *unknown[] = {"data", "check", "--config", "x.json", "--fast"};
    cr_expect_eq(run_data(&out, 5, unknown), MN_EXIT_USAGE);
    free(out);
    char *missing[] = {"data", "check", "--config", "/nonexistent/config.json"};
    cr_expect_eq(run_data(&out, 4, missing), MN_EXIT_FAIL);
    free(out);
}
