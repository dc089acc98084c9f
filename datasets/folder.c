/* The "folder" kind: a folder of images and a folder of single-channel index PNGs with the
 * same stems, plus a class list. Used for the synthetic shapes set and CamVid-style data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct folder {
    char images[1024], labels[1024];
    mn_ds_files files;
    int num_classes, void_index;
    int64_t max_pixels;      /* 0: the image layer's default */
    char names[256][64];
} folder;

/* Indices 0..254 (255 is ignore); indices the list leaves out get the name "class<k>". */
static int read_classes(folder *f, const char *path)
{
    mn_ds_classes list;
    int rc = mn_ds_classes_read(&list, path, MN_DS_CLASSES_INDEXED, 255);
    if (rc) return rc;
    f->num_classes = list.n;
    for (int k = 0; k < list.n; k++) {
        if (list.names[k]) snprintf(f->names[k], sizeof f->names[k], "%s", list.names[k]);
        else snprintf(f->names[k], sizeof f->names[k], "class%d", k);
    }
    mn_ds_classes_free(&list);
    return 0;
}

static void folder_close(void *state)
{
    folder *f = state;
    if (!f) return;
    mn_ds_files_free(&f->files);
    free(f);
}

static int folder_open(void **state, const mn_dataset_options *o)
{
    folder *f = calloc(1, sizeof *f);
    if (!f) return mn_error(MN_ENOMEM, "out of memory");
    *state = f;
    char classes[1024];
    mn_ds_path(f->images, sizeof f->images, o->root, o->images ? o->images : "images/{split}", o->split);
    mn_ds_path(f->labels, sizeof f->labels, o->root, o->labels ? o->labels : "labels/{split}", o->split);
    mn_ds_path(classes, sizeof classes, o->root, o->classes ? o->classes : "classes.txt", o->split);
    /* a class list kept outside the data (e.g. configs/camvid_classes.txt) is found from the
     * working directory when the root has none */
    FILE *probe = fopen(classes, "r");
    if (probe) fclose(probe);
    else if (o->classes) snprintf(classes, sizeof classes, "%s", o->classes);
    f->void_index = o->void_index;
    f->max_pixels = o->max_pixels;
    int rc = read_classes(f, classes);
    if (!rc) rc = mn_ds_list_images(f->images, &f->files);
    for (int i = 0; !rc && i < f->files.n; i++) {
        char stem[256], path[1400];
        mn_ds_stem(f->files.names[i], stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%s.png", f->labels, stem);
        FILE *fp = fopen(path, "rb");
        if (!fp) rc = mn_error(MN_EIO, "%s: label file missing for image %s/%s", path, f->images, f->files.names[i]);
        else fclose(fp);
    }
    if (rc) {
        folder_close(f);
        *state = NULL;
    }
    return rc;
}

static int folder_size(const void *state) { return ((const folder *)state)->files.n; }
static int folder_num_classes(const void *state) { return ((const folder *)state)->num_classes; }

static const char *folder_class_name(const void *state, int k)
{
    const folder *f = state;
    return k >= 0 && k < f->num_classes ? f->names[k] : "?";
}

static int folder_get(void *state, int i, mn_sample *out)
{
    folder *f = state;
    char stem[256], path[1400];
    mn_ds_stem(f->files.names[i], stem, sizeof stem);
    snprintf(out->name, sizeof out->name, "%s", stem);
    out->image_id = i;
    snprintf(path, sizeof path, "%s/%s", f->images, f->files.names[i]);
    int rc = mn_image_load_max(path, 3, f->max_pixels, &out->image);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s.png", f->labels, stem);
    rc = mn_image_load_labels_max(path, f->max_pixels, &out->label);
    if (rc) return rc;
    if (out->label.w != out->image.w || out->label.h != out->image.h)
        return mn_error(MN_ESHAPE, "%s: label is %dx%d but its image is %dx%d", path, out->label.w, out->label.h,
                        out->image.w, out->image.h);
    int64_t n = (int64_t)out->label.w * out->label.h;
    for (int64_t k = 0; k < n; k++) {
        uint8_t *v = &out->label.data[k];
        if (f->void_index >= 0 && *v == f->void_index) *v = MN_IGNORE_LABEL;
        else if (*v >= f->num_classes && *v != MN_IGNORE_LABEL)
            return mn_error(MN_EFORMAT, "%s: pixel (%lld, %lld) has label %d but the class list has %d classes", path,
                            (long long)(k % out->label.w), (long long)(k / out->label.w), *v, f->num_classes);
    }
    return 0;
}

const mn_dataset_kind mn_dataset_folder = {
    .name = "folder",
    .open = folder_open,
    .size = folder_size,
    .get = folder_get,
    .num_classes = folder_num_classes,
    .class_name = folder_class_name,
    .close = folder_close,
};
