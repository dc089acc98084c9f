#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "internal.h"

struct mn_dataset {
    const mn_dataset_kind *kind;
    void *state;
};

static const mn_dataset_kind *const kinds[] = {&mn_dataset_folder, &mn_dataset_voc, &mn_dataset_cityscapes,
                                               &mn_dataset_coco, &mn_dataset_imagefolder};
enum { N_KINDS = sizeof kinds / sizeof *kinds };

void mn_sample_free(mn_sample *s)
{
    mn_image_free(&s->image);
    mn_image_free(&s->label);
    free(s->boxes);
    memset(s, 0, sizeof *s);
    s->class_id = -1;
}

int mn_dataset_open(mn_dataset **out, const mn_dataset_options *o)
{
    *out = NULL;
    if (!o->kind || !o->root || !o->split) return mn_error(MN_EINVAL, "data set options need kind, root and split");
    if (o->max_pixels < 0)
        return mn_error(MN_EINVAL, "%s: max_pixels is %lld; it must be positive (or 0 for the default)", o->root,
                        (long long)o->max_pixels);
    /* said first: every kind would otherwise report the first file it misses inside it */
    struct stat sb;
    if (stat(o->root, &sb) != 0)
        return mn_error(MN_EIO, "%s: the data set folder (data.root) does not exist", o->root);
    if (!S_ISDIR(sb.st_mode)) return mn_error(MN_EINVAL, "%s: the data set root (data.root) is not a folder", o->root);
    for (int i = 0; i < N_KINDS; i++) {
        if (strcmp(o->kind, kinds[i]->name)) continue;
        mn_dataset *d = calloc(1, sizeof *d);
        if (!d) return mn_error(MN_ENOMEM, "out of memory opening %s", o->root);
        d->kind = kinds[i];
        int rc = d->kind->open(&d->state, o);
        if (rc) {
            free(d);
            return rc;
        }
        if (d->kind->size(d->state) == 0) {
            d->kind->close(d->state);
            free(d);
            return mn_error(MN_EINVAL, "%s: the %s data set has no images in split \"%s\"", o->root, o->kind, o->split);
        }
        *out = d;
        return 0;
    }
    return mn_error(MN_EINVAL, "unknown data set kind \"%s\" (expected folder, voc, cityscapes, coco or imagefolder)", o->kind);
}

void mn_dataset_close(mn_dataset *d)
{
    if (!d) return;
    d->kind->close(d->state);
    free(d);
}

int mn_dataset_size(const mn_dataset *d) { return d->kind->size(d->state); }

int mn_dataset_get(mn_dataset *d, int i, mn_sample *out)
{
    memset(out, 0, sizeof *out);
    out->class_id = -1; /* only image-level kinds set it */
    if (i < 0 || i >= mn_dataset_size(d))
        return mn_error(MN_EINVAL, "sample %d is outside the data set's %d", i, mn_dataset_size(d));
    int rc = d->kind->get(d->state, i, out);
    if (rc) mn_sample_free(out);
    return rc;
}

int mn_dataset_num_classes(const mn_dataset *d) { return d->kind->num_classes(d->state); }
const char *mn_dataset_class_name(const mn_dataset *d, int k) { return d->kind->class_name(d->state, k); }
const char *mn_dataset_kind_name(const mn_dataset *d) { return d->kind->name; }

int mn_dataset_category_id(const mn_dataset *d, int k)
{
    return d->kind->category_id ? d->kind->category_id(d->state, k) : k;
}

int mn_dataset_class_value(const mn_dataset *d, int k)
{
    if (k < 0 || k >= mn_dataset_num_classes(d)) return -1;
    if (d->kind == &mn_dataset_imagefolder) return -1; /* classes are folder names, not values */
    if (d->kind == &mn_dataset_coco && k == 0) return -1; /* background: no category of its own */
    return mn_dataset_category_id(d, k);
}

int mn_dataset_box_stats(const mn_dataset *d, mn_box_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!d->kind->box_stats) return mn_error(MN_EINVAL, "the %s kind has no boxes", d->kind->name);
    return d->kind->box_stats(d->state, out);
}

int mn_dataset_annotation_issues(const mn_dataset *d, const mn_dataset_issue **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (d->kind->issues) d->kind->issues(d->state, out, n);
    return 0;
}

int mn_dataset_mask(mn_dataset *d, int i, int j, mn_image *out)
{
    memset(out, 0, sizeof *out);
    if (!d->kind->mask) return mn_error(MN_EINVAL, "the %s kind has no instance masks", d->kind->name);
    if (i < 0 || i >= mn_dataset_size(d))
        return mn_error(MN_EINVAL, "sample %d is outside the data set's %d", i, mn_dataset_size(d));
    return d->kind->mask(d->state, i, j, out);
}

void mn_ds_path(char *out, size_t size, const char *root, const char *pattern, const char *split)
{
    char pat[1024];
    const char *at = strstr(pattern, "{split}");
    if (at) snprintf(pat, sizeof pat, "%.*s%s%s", (int)(at - pattern), pattern, split, at + 7);
    else snprintf(pat, sizeof pat, "%s", pattern);
    if (pat[0] == '/' || !root || !*root) snprintf(out, size, "%s", pat);
    else snprintf(out, size, "%s/%s", root, pat);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool is_image(const char *dir, const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
                   !strcasecmp(dot, ".bmp"));
}

static bool is_folder(const char *dir, const char *name)
{
    char path[2400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The entries of dir that keep() accepts (hidden ones never), sorted by strcmp. */
static int list_dir(const char *dir, bool (*keep)(const char *dir, const char *name), mn_ds_files *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return mn_error(MN_EIO, "%s: cannot open the folder", dir);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        if (e->d_name[0] == '.' || !keep(dir, e->d_name)) continue;
        if (out->n == out->cap) {
            int cap = out->cap ? 2 * out->cap : 256;
            char **names = realloc(out->names, sizeof *names * (size_t)cap);
            if (!names) {
                rc = mn_error(MN_ENOMEM, "%s: out of memory", dir);
                break;
            }
            out->names = names;
            out->cap = cap;
        }
        if (!(out->names[out->n] = strdup(e->d_name))) rc = mn_error(MN_ENOMEM, "%s: out of memory", dir);
        else out->n++;
    }
    closedir(d);
    if (rc) mn_ds_files_free(out);
    else if (out->n) qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_str);
    return rc;
}

int mn_ds_list_images(const char *dir, mn_ds_files *out) { return list_dir(dir, is_image, out); }

int mn_ds_list_folders(const char *dir, mn_ds_files *out) { return list_dir(dir, is_folder, out); }

void mn_ds_files_free(mn_ds_files *f)
{
    for (int i = 0; i < f->n; i++) free(f->names[i]);
    free(f->names);
    memset(f, 0, sizeof *f);
}

void mn_ds_stem(const char *name, char *out, size_t size)
{
    const char *dot = strrchr(name, '.');
    snprintf(out, size, "%.*s", (int)(dot ? dot - name : (long)strlen(name)), name);
}
