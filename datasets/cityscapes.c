/* The "cityscapes" kind:
 *
 *   root/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png
 *   root/gtFine/<split>/<city>/<name>_gtFine_labelIds.png
 *
 * Label ids (0..33) are mapped to the 19 train ids of the benchmark; every other id is ignore.
 * Samples are ordered by city, then by name. The folder-kind options do not apply and are
 * ignored (the trainer passes its folder defaults to every kind). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

enum { N_TRAIN = 19 };

static const char *const suffix_image = "_leftImg8bit.png";
static const char *const suffix_label = "_gtFine_labelIds.png";

/* label id of each train id (Cityscapes' labels.py: the classes evaluated by the benchmark) */
static const uint8_t label_of_train[N_TRAIN] = {7,  8,  11, 12, 13, 17, 19, 20, 21, 22,
                                                23, 24, 25, 26, 27, 28, 31, 32, 33};
static const char *const train_names[N_TRAIN] = {
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
};

typedef struct cityscapes {
    char images[1024], labels[1024];   /* leftImg8bit/<split>, gtFine/<split> */
    mn_ds_files files;                 /* "<city>/<name>" without the suffix */
    uint8_t train_id[256];             /* label id -> train id or 255 */
    int64_t max_pixels;                /* 0: the image layer's default */
} cityscapes;

static int push_name(mn_ds_files *f, const char *name, const char *where)
{
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 256;
        char **names = realloc(f->names, sizeof *names * (size_t)cap);
        if (!names) return mn_error(MN_ENOMEM, "%s: out of memory", where);
        f->names = names;
        f->cap = cap;
    }
    if (!(f->names[f->n] = strdup(name))) return mn_error(MN_ENOMEM, "%s: out of memory", where);
    f->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sub-folders of dir (the cities), sorted. */
static int list_cities(const char *dir, mn_ds_files *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return mn_error(MN_EIO, "%s: cannot open the folder (expected leftImg8bit/<split>/<city>/)", dir);
    struct dirent *e;
    int rc = 0;
    char path[1400];
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) rc = push_name(out, e->d_name, dir);
    }
    closedir(d);
    if (rc) mn_ds_files_free(out);
    else if (out->n) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_str);
    return rc;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

static void cityscapes_close(void *state)
{
    cityscapes *c = state;
    if (!c) return;
    mn_ds_files_free(&c->files);
    free(c);
}

static int cityscapes_open(void **state, const mn_dataset_options *o)
{
    cityscapes *c = calloc(1, sizeof *c);
    if (!c) return mn_error(MN_ENOMEM, "%s: out of memory", o->root);
    *state = c;
    memset(c->train_id, MN_IGNORE_LABEL, sizeof c->train_id);
    c->max_pixels = o->max_pixels;
    for (int t = 0; t < N_TRAIN; t++) c->train_id[label_of_train[t]] = (uint8_t)t;
    mn_ds_path(c->images, sizeof c->images, o->root, "leftImg8bit/{split}", o->split);
    mn_ds_path(c->labels, sizeof c->labels, o->root, "gtFine/{split}", o->split);

    mn_ds_files cities;
    int rc = list_cities(c->images, &cities);
    char dir[1400], entry[600], path[2100];
    for (int ci = 0; !rc && ci < cities.n; ci++) {
        snprintf(dir, sizeof dir, "%s/%s", c->images, cities.names[ci]);
        mn_ds_files files;
        rc = mn_ds_list_images(dir, &files);
        for (int i = 0; !rc && i < files.n; i++) {
            const char *f = files.names[i];
            if (!has_suffix(f, suffix_image)) continue;
            snprintf(entry, sizeof entry, "%s/%.*s", cities.names[ci], (int)(strlen(f) - strlen(suffix_image)), f);
            snprintf(path, sizeof path, "%s/%s%s", c->labels, entry, suffix_label);
            FILE *fp = fopen(path, "rb");
            if (!fp) rc = mn_error(MN_EIO, "%s: label file missing for image %s/%s", path, dir, f);
            else fclose(fp);
            if (!rc) rc = push_name(&c->files, entry, dir);
        }
        mn_ds_files_free(&files);
    }
    mn_ds_files_free(&cities);
    if (rc) {
        cityscapes_close(c);
        *state = NULL;
    }
    return rc;
}

static int cityscapes_get(void *state, int i, mn_sample *out)
{
    const cityscapes *c = state;
    const char *entry = c->files.names[i];
    const char *slash = strrchr(entry, '/');
    snprintf(out->name, sizeof out->name, "%s", slash ? slash + 1 : entry);
    out->image_id = i;
    char path[2100];
    snprintf(path, sizeof path, "%s/%s%s", c->images, entry, suffix_image);
    int rc = mn_image_load_max(path, 3, c->max_pixels, &out->image);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s%s", c->labels, entry, suffix_label);
    rc = mn_image_load_labels_max(path, c->max_pixels, &out->label);
    if (rc) return rc;
    if (out->label.w != out->image.w || out->label.h != out->image.h)
        return mn_error(MN_ESHAPE, "%s: label is %dx%d but its image is %dx%d", path, out->label.w, out->label.h,
                        out->image.w, out->image.h);
    int64_t n = (int64_t)out->label.w * out->label.h;
    for (int64_t k = 0; k < n; k++) out->label.data[k] = c->train_id[out->label.data[k]];
    return 0;
}

static int cityscapes_size(const void *state) { return ((const cityscapes *)state)->files.n; }
static int cityscapes_num_classes(const void *state) { return N_TRAIN; }

static const char *cityscapes_class_name(const void *state, int k)
{
    return k >= 0 && k < N_TRAIN ? train_names[k] : "?";
}

/* The label id that becomes train id k: the file's own id of the class. */
static int cityscapes_label_id(const void *state, int k) { return k >= 0 && k < N_TRAIN ? label_of_train[k] : -1; }

const mn_dataset_kind mn_dataset_cityscapes = {
    .name = "cityscapes",
    .open = cityscapes_open,
    .size = cityscapes_size,
    .get = cityscapes_get,
    .num_classes = cityscapes_num_classes,
    .class_name = cityscapes_class_name,
    .close = cityscapes_close,
    .category_id = cityscapes_label_id,
};
