/* Shared by the data set kinds. */
#ifndef MN_DATASETS_INTERNAL_H
#define MN_DATASETS_INTERNAL_H

#include <stddef.h>

#include "mn/dataset.h"

extern const mn_dataset_kind mn_dataset_folder;
extern const mn_dataset_kind mn_dataset_voc;
extern const mn_dataset_kind mn_dataset_cityscapes;
extern const mn_dataset_kind mn_dataset_coco;
extern const mn_dataset_kind mn_dataset_imagefolder;

/* root + "/" + pattern with "{split}" replaced by split (absolute patterns kept). */
void mn_ds_path(char *out, size_t size, const char *root, const char *pattern, const char *split);

/* A sorted list of file stems and their full names. */
typedef struct mn_ds_files {
    char **names;     /* file names (with extension) */
    int n, cap;
} mn_ds_files;

/* Image files (.png, .jpg, .jpeg, .bmp) of a folder, sorted by name; error if unreadable. */
int mn_ds_list_images(const char *dir, mn_ds_files *out);
/* Subfolders of a folder (hidden ones skipped), sorted by name; error if unreadable. */
int mn_ds_list_folders(const char *dir, mn_ds_files *out);
void mn_ds_files_free(mn_ds_files *f);
/* "name.ext" -> "name" into out. */
void mn_ds_stem(const char *name, char *out, size_t size);

/* The coco kind's state from JSON text in memory (`json` names it in messages, `images` is the
 * folder file names are checked against), without looking for the image files: the fuzz
 * target's entry. Close it with mn_dataset_coco.close. */
int mn_ds_coco_parse(void **state, const char *text, size_t len, const char *json, const char *images,
                     int64_t max_pixels);

/* The kept boxes of sample i of a coco state, without loading its image: the first cap of them
 * copied to out; returns how many there are. */
int mn_ds_coco_boxes(const void *state, int i, mn_box *out, int cap);

/* ---- lists (datasets/lists.c) ---- */

/* Class and split lists are a few kilobytes; a larger file is the wrong one (mn_read_file's cap). */
#define MN_DS_LIST_MAX_BYTES ((size_t)64 << 20)

/* Class names travel into checkpoints in 64-byte fields. */
#define MN_DS_CLASS_NAME_MAX 63

enum mn_ds_class_format {
    MN_DS_CLASSES_INDEXED,   /* folder kind: "INDEX NAME" or "NAME" (the previous index + 1); gaps allowed */
    MN_DS_CLASSES_ORDERED,   /* imagefolder: "NAME", or "INDEX NAME" where INDEX is the line's position */
    MN_DS_CLASSES_NAMES,     /* labelme's class_names.txt: every line is a name, digits included */
};

typedef struct mn_ds_classes {
    char **names;            /* (n) NULL where an indexed list leaves an index out */
    int *line;               /* (n) the line that named each class */
    int n;
} mn_ds_classes;

/* A class list from text (len bytes; path names it in errors). Blank lines and lines starting with
 * '#' are skipped, blanks around a line trimmed. Errors with file:line for: an index given twice, a
 * name given twice, an index outside [0, max_classes - 1] (or out of order for ORDERED), a first
 * word that starts like a number but is not one, an index without a name, a name over
 * MN_DS_CLASS_NAME_MAX bytes, control characters or NUL bytes, an empty list. */
int mn_ds_classes_parse(mn_ds_classes *out, const char *text, size_t len, const char *path,
                        enum mn_ds_class_format format, int max_classes);
int mn_ds_classes_read(mn_ds_classes *out, const char *path, enum mn_ds_class_format format, int max_classes);
void mn_ds_classes_free(mn_ds_classes *c);

/* A split list (one image id per line, a second column ignored, blank lines skipped) into out
 * (file order) and *lines (malloc'd, the line of each id). Ids with a '/', "." and "..", repeated
 * ids, control characters and NUL bytes are errors naming file:line. An empty list is not an
 * error here. */
int mn_ds_split_parse(mn_ds_files *out, int **lines, const char *text, size_t len, const char *path);

#endif
