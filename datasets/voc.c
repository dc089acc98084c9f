/* The "voc" kind: PASCAL VOC segmentation layout.
 *
 *   root/JPEGImages/<id>.jpg
 *   root/SegmentationClass/<id>.png      (or SegmentationClassPNG/, as labelme writes it)
 *   root/ImageSets/Segmentation/<split>.txt   one id per line
 *   root/class_names.txt                 optional, one name per line from class 0 (labelme's)
 *
 * VOC label PNGs are palette images whose colours follow the VOC colour map. They are read as
 * RGB and every colour is mapped back to its class index; the boundary colour (index 255 of
 * the map) becomes ignore and any other colour is an error. Going through colours rather than
 * raw palette indices keeps labels right when a tool has rewritten (reordered or trimmed) the
 * palette. Grey PNGs already hold indices and are used as they are.
 *
 * The folder-kind options (images, labels, classes, void_index) do not apply and are ignored:
 * the trainer passes its folder defaults to every kind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "mn/fileio.h"

enum { MAX_CLASSES = 255 }; /* indices 0..254; 255 is ignore */

typedef struct voc {
    char images[1024], labels[1024];
    mn_ds_files files;         /* image file names (stem + extension), in split-list order */
    int num_classes;
    char names[MAX_CLASSES][64];
    uint32_t colour[MAX_CLASSES + 1];  /* 0xRRGGBB of each class, then of the boundary (ignore) */
    int64_t max_pixels;                /* 0: the image layer's default */
} voc;

static const char *const voc_names[21] = {
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
};

/* The VOC colour map as 0xRRGGBB: bit 3j + c of the index (c = 0 red, 1 green, 2 blue)
 * becomes bit 7 - j of channel c, so the first classes get the most distinct colours. */
static uint32_t voc_colour(int index)
{
    uint32_t rgb[3] = {0, 0, 0};
    for (int j = 0; j < 8; j++)
        for (int c = 0; c < 3; c++) rgb[c] |= (uint32_t)((index >> (3 * j + c)) & 1) << (7 - j);
    return rgb[0] << 16 | rgb[1] << 8 | rgb[2];
}

/* The class of colour rgb, MN_IGNORE_LABEL for the boundary colour, -1 for any other. */
static int colour_class(const voc *v, uint32_t rgb)
{
    for (int k = 0; k < v->num_classes; k++)
        if (v->colour[k] == rgb) return k;
    return rgb == v->colour[v->num_classes] ? MN_IGNORE_LABEL : -1;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

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

static int read_class_names(voc *v, const char *path)
{
    mn_ds_classes list;
    int rc = mn_ds_classes_read(&list, path, MN_DS_CLASSES_NAMES, MAX_CLASSES);
    if (rc) return rc;
    v->num_classes = list.n;
    for (int k = 0; k < list.n; k++) snprintf(v->names[k], sizeof v->names[k], "%s", list.names[k]);
    mn_ds_classes_free(&list);
    return 0;
}

/* The image file of an id: VOC uses .jpg; .jpeg and .png are accepted too. */
static bool find_image(const voc *v, const char *id, char *name, size_t size)
{
    static const char *const ext[] = {".jpg", ".jpeg", ".png"};
    char path[1400];
    for (int e = 0; e < 3; e++) {
        snprintf(path, sizeof path, "%s/%s%s", v->images, id, ext[e]);
        if (is_file(path)) {
            snprintf(name, size, "%s%s", id, ext[e]);
            return true;
        }
    }
    return false;
}

static int read_split(voc *v, const char *list)
{
    char *text, name[300], path[1400];
    size_t len;
    int rc = mn_read_file(list, MN_DS_LIST_MAX_BYTES, "split list", &text, &len), *lines = NULL;
    mn_ds_files ids = {0};
    if (!rc) rc = mn_ds_split_parse(&ids, &lines, text, len, list);
    free(text);
    for (int i = 0; !rc && i < ids.n; i++) {
        const char *id = ids.names[i];
        if (!find_image(v, id, name, sizeof name))
            rc = mn_error(MN_EIO, "%s/%s.jpg: image listed in the split is missing (%s:%d)", v->images, id, list,
                          lines[i]);
        snprintf(path, sizeof path, "%s/%s.png", v->labels, id);
        if (!rc && !is_file(path))
            rc = mn_error(MN_EIO, "%s: label PNG missing for image %s (listed in %s:%d)", path, id, list, lines[i]);
        if (!rc) rc = push_name(&v->files, name, list);
    }
    mn_ds_files_free(&ids);
    free(lines);
    return rc;
}

/* Every image of JPEGImages that has a label PNG (VOC's JPEGImages also holds detection-only
 * photos, so images without labels are skipped, not errors). */
static int scan_labelled(voc *v)
{
    mn_ds_files all;
    int rc = mn_ds_list_images(v->images, &all);
    char stem[300], path[1400];
    for (int i = 0; !rc && i < all.n; i++) {
        mn_ds_stem(all.names[i], stem, sizeof stem);
        snprintf(path, sizeof path, "%s/%s.png", v->labels, stem);
        if (is_file(path)) rc = push_name(&v->files, all.names[i], v->images);
    }
    mn_ds_files_free(&all);
    return rc;
}

static void voc_close(void *state)
{
    voc *v = state;
    if (!v) return;
    mn_ds_files_free(&v->files);
    free(v);
}

static int voc_open(void **state, const mn_dataset_options *o)
{
    voc *v = calloc(1, sizeof *v);
    if (!v) return mn_error(MN_ENOMEM, "%s: out of memory", o->root);
    *state = v;
    v->max_pixels = o->max_pixels;
    char path[1400];
    int rc = 0;
    mn_ds_path(v->images, sizeof v->images, o->root, "JPEGImages", o->split);
    mn_ds_path(v->labels, sizeof v->labels, o->root, "SegmentationClass", o->split);
    if (!is_dir(v->labels)) mn_ds_path(v->labels, sizeof v->labels, o->root, "SegmentationClassPNG", o->split);
    if (!is_dir(v->images)) rc = mn_error(MN_EIO, "%s: no JPEGImages folder: not a VOC data set", v->images);
    else if (!is_dir(v->labels))
        rc = mn_error(MN_EIO, "%s: neither SegmentationClass nor SegmentationClassPNG is a folder here", o->root);

    mn_ds_path(path, sizeof path, o->root, "class_names.txt", o->split);
    if (!rc && is_file(path)) {
        rc = read_class_names(v, path);
    } else if (!rc) {
        v->num_classes = 21;
        for (int k = 0; k < 21; k++) snprintf(v->names[k], sizeof v->names[k], "%s", voc_names[k]);
    }

    for (int k = 0; k < v->num_classes; k++) v->colour[k] = voc_colour(k);
    v->colour[v->num_classes] = voc_colour(MN_IGNORE_LABEL); /* (224, 224, 192) */

    mn_ds_path(path, sizeof path, o->root, "ImageSets/Segmentation/{split}.txt", o->split);
    if (!rc && is_file(path)) {
        rc = read_split(v, path);
    } else if (!rc) {
        rc = scan_labelled(v);
        if (!rc)
            mn_report(o->reporter, MN_LOG_WARN,
                      "%s: no split list %s: using all %d images that have a label PNG, whatever the split", o->root,
                      path, v->files.n);
    }
    if (rc) {
        voc_close(v);
        *state = NULL;
    }
    return rc;
}

/* The PNG colour type from the IHDR chunk (bytes 8..28 of the file), or -1 if this is not a
 * readable PNG (mn_image_load_labels then says what is wrong). */
static int png_colour_type(const char *path)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t b[26];
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    size_t n = fread(b, 1, sizeof b, fp);
    fclose(fp);
    if (n != sizeof b || memcmp(b, sig, 8) || memcmp(b + 12, "IHDR", 4)) return -1;
    return b[25];
}

/* Class indices from a label PNG: grey PNGs as they are, palette and RGB(A) ones through the
 * colour map. Values must be classes or 255. */
static int load_label(const voc *v, const char *path, mn_image *out)
{
    int type = png_colour_type(path);
    if (type != 2 && type != 3 && type != 6) {
        int rc = mn_image_load_labels_max(path, v->max_pixels, out);
        if (rc) return rc;
        int64_t n = (int64_t)out->w * out->h;
        for (int64_t k = 0; k < n; k++) {
            int x = out->data[k];
            if (x >= v->num_classes && x != MN_IGNORE_LABEL)
                return mn_error(MN_EFORMAT, "%s: pixel (%lld, %lld) has label %d but there are %d classes", path,
                                (long long)(k % out->w), (long long)(k / out->w), x, v->num_classes);
        }
        return 0;
    }
    mn_image rgb;
    int rc = mn_image_load_max(path, 3, v->max_pixels, &rgb);
    if (rc) return rc;
    rc = mn_image_alloc(out, rgb.w, rgb.h, 1);
    int64_t n = (int64_t)rgb.w * rgb.h;
    uint32_t last_rgb = 0;   /* neighbouring pixels mostly share a colour: remember the last */
    int last = colour_class(v, 0);
    for (int64_t k = 0; !rc && k < n; k++) {
        const uint8_t *p = rgb.data + 3 * k;
        uint32_t c = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        if (c != last_rgb) {
            last = colour_class(v, c);
            last_rgb = c;
        }
        if (last < 0) {
            rc = mn_error(MN_EFORMAT,
                          "%s: pixel (%lld, %lld) has colour (%d, %d, %d), which is neither the VOC colour of one of "
                          "the %d classes nor the boundary colour (224, 224, 192)",
                          path, (long long)(k % rgb.w), (long long)(k / rgb.w), p[0], p[1], p[2], v->num_classes);
            break;
        }
        out->data[k] = (uint8_t)last;
    }
    mn_image_free(&rgb);
    if (rc) mn_image_free(out);
    return rc;
}

static int voc_get(void *state, int i, mn_sample *out)
{
    const voc *v = state;
    char path[1400];
    mn_ds_stem(v->files.names[i], out->name, sizeof out->name);
    const char *stem = out->name;
    out->image_id = i;
    snprintf(path, sizeof path, "%s/%s", v->images, v->files.names[i]);
    int rc = mn_image_load_max(path, 3, v->max_pixels, &out->image);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s.png", v->labels, stem);
    rc = load_label(v, path, &out->label);
    if (rc) return rc;
    if (out->label.w != out->image.w || out->label.h != out->image.h)
        return mn_error(MN_ESHAPE, "%s: label is %dx%d but its image is %dx%d", path, out->label.w, out->label.h,
                        out->image.w, out->image.h);
    return 0;
}

static int voc_size(const void *state) { return ((const voc *)state)->files.n; }
static int voc_num_classes(const void *state) { return ((const voc *)state)->num_classes; }

static const char *voc_class_name(const void *state, int k)
{
    const voc *v = state;
    return k >= 0 && k < v->num_classes ? v->names[k] : "?";
}

const mn_dataset_kind mn_dataset_voc = {
    .name = "voc",
    .open = voc_open,
    .size = voc_size,
    .get = voc_get,
    .num_classes = voc_num_classes,
    .class_name = voc_class_name,
    .close = voc_close,
};
