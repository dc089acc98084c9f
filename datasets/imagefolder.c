/* The "imagefolder" kind: image-level classification in the ImageNet / torchvision layout,
 * root/{split}/<class name>/<image>. Classes come from a class list when the root has one (so
 * their order is fixed by the file, whatever folders a split happens to hold), else from the
 * split's subfolder names in strcmp order. Samples are ordered by (class, file name). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

typedef struct imagefolder {
    char dir[1024];            /* the split folder */
    char **names;              /* (num_classes) class names */
    int num_classes, cap_classes;
    int *cls;                  /* (n) class of each sample */
    char **files;              /* (n) file name of each sample inside its class folder */
    int n, cap;
    int64_t max_pixels;        /* 0: the image layer's default */
} imagefolder;

static int add_class(imagefolder *f, const char *name, const char *where)
{
    if (f->num_classes == f->cap_classes) {
        int cap = f->cap_classes ? 2 * f->cap_classes : 64;
        char **p = realloc(f->names, sizeof *p * (size_t)cap);
        if (!p) return mn_error(MN_ENOMEM, "%s: out of memory", where);
        f->names = p;
        f->cap_classes = cap;
    }
    if (!(f->names[f->num_classes] = strdup(name))) return mn_error(MN_ENOMEM, "%s: out of memory", where);
    f->num_classes++;
    return 0;
}

static int find_class(const imagefolder *f, const char *name)
{
    for (int k = 0; k < f->num_classes; k++)
        if (!strcmp(f->names[k], name)) return k;
    return -1;
}

/* One class name per line, or "index name" when the index is the line's class position (so a list
 * written with indices cannot silently reorder). Names are folder names: no '/', "." or "..". */
static int read_classes(imagefolder *f, const char *path)
{
    mn_ds_classes list;
    int rc = mn_ds_classes_read(&list, path, MN_DS_CLASSES_ORDERED, 1 << 20);
    for (int k = 0; !rc && k < list.n; k++) {
        const char *name = list.names[k];
        if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
            rc = mn_error(MN_EFORMAT, "%s:%d: class \"%s\" cannot be a folder name", path, list.line[k], name);
        else rc = add_class(f, name, path);
    }
    mn_ds_classes_free(&list);
    return rc;
}

/* Appends the images of class k (sorted by name) to the sample list; a listed class may have
 * no folder in this split. */
static int add_images(imagefolder *f, int k)
{
    char path[2400];
    snprintf(path, sizeof path, "%s/%s", f->dir, f->names[k]);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return 0;
    mn_ds_files files;
    int rc = mn_ds_list_images(path, &files);
    if (rc) return rc;
    if (f->n + files.n > f->cap) {
        int cap = f->cap ? f->cap : 1024;
        while (cap < f->n + files.n) cap *= 2;
        int *c = realloc(f->cls, sizeof *c * (size_t)cap);
        if (c) f->cls = c;
        char **p = c ? realloc(f->files, sizeof *p * (size_t)cap) : NULL;
        if (p) f->files = p;
        if (!p) {
            mn_ds_files_free(&files);
            return mn_error(MN_ENOMEM, "%s: out of memory", path);
        }
        f->cap = cap;
    }
    for (int j = 0; j < files.n; j++) { /* the names move over to f */
        f->cls[f->n] = k;
        f->files[f->n++] = files.names[j];
    }
    free(files.names);
    return 0;
}

static void imagefolder_close(void *state)
{
    imagefolder *f = state;
    if (!f) return;
    for (int k = 0; k < f->num_classes; k++) free(f->names[k]);
    for (int i = 0; i < f->n; i++) free(f->files[i]);
    free(f->names);
    free(f->cls);
    free(f->files);
    free(f);
}

static int imagefolder_open(void **state, const mn_dataset_options *o)
{
    imagefolder *f = calloc(1, sizeof *f);
    if (!f) return mn_error(MN_ENOMEM, "out of memory");
    *state = f;
    f->max_pixels = o->max_pixels;
    char classes[1024];
    mn_ds_path(f->dir, sizeof f->dir, o->root, o->images ? o->images : "{split}", o->split);
    mn_ds_path(classes, sizeof classes, o->root, o->classes ? o->classes : "classes.txt", o->split);
    /* as in the folder kind, a list kept outside the data is found from the working directory */
    FILE *fp = fopen(classes, "r");
    if (!fp && o->classes) {
        snprintf(classes, sizeof classes, "%s", o->classes);
        fp = fopen(classes, "r");
    }
    bool listed = fp != NULL;
    if (fp) fclose(fp);
    /* the conventional name (every configuration's default) may be absent; any other must exist */
    bool required = o->classes && strcmp(o->classes, "classes.txt");
    mn_ds_files subs = {0};
    int rc = required && !listed ? mn_error(MN_EIO, "%s: cannot open the class list", classes)
                                   : mn_ds_list_folders(f->dir, &subs);
    if (!rc && listed) {
        rc = read_classes(f, classes);
        if (!rc && f->num_classes == 0) rc = mn_error(MN_EFORMAT, "%s: the class list is empty (for %s)", classes, f->dir);
        for (int i = 0; !rc && i < subs.n; i++)
            if (find_class(f, subs.names[i]) < 0)
                rc = mn_error(MN_EFORMAT, "%s/%s: folder \"%s\" is not a class of %s", f->dir, subs.names[i],
                              subs.names[i], classes);
    } else if (!rc) {
        for (int i = 0; !rc && i < subs.n; i++) rc = add_class(f, subs.names[i], f->dir);
        if (!rc && f->num_classes == 0) rc = mn_error(MN_EFORMAT, "%s: no class folders", f->dir);
    }
    mn_ds_files_free(&subs);
    for (int k = 0; !rc && k < f->num_classes; k++) rc = add_images(f, k);
    if (!rc && f->n == 0) rc = mn_error(MN_EFORMAT, "%s: no images in any class folder", f->dir);
    if (rc) {
        imagefolder_close(f);
        *state = NULL;
    }
    return rc;
}

static int imagefolder_size(const void *state) { return ((const imagefolder *)state)->n; }
static int imagefolder_num_classes(const void *state) { return ((const imagefolder *)state)->num_classes; }

static const char *imagefolder_class_name(const void *state, int k)
{
    const imagefolder *f = state;
    return k >= 0 && k < f->num_classes ? f->names[k] : "?";
}

static int imagefolder_get(void *state, int i, mn_sample *out)
{
    const imagefolder *f = state;
    const char *cls = f->names[f->cls[i]];
    char stem[256], path[2400];
    mn_ds_stem(f->files[i], stem, sizeof stem);
    snprintf(out->name, sizeof out->name, "%.127s_%.127s", cls, stem);
    out->image_id = i;
    out->class_id = f->cls[i];
    snprintf(path, sizeof path, "%s/%s/%s", f->dir, cls, f->files[i]);
    return mn_image_load_max(path, 3, f->max_pixels, &out->image);
}

const mn_dataset_kind mn_dataset_imagefolder = {
    .name = "imagefolder",
    .open = imagefolder_open,
    .size = imagefolder_size,
    .get = imagefolder_get,
    .num_classes = imagefolder_num_classes,
    .class_name = imagefolder_class_name,
    .close = imagefolder_close,
};
