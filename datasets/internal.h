/* Shared by the data set kinds. */
#ifndef MN_DATASETS_INTERNAL_H
#define MN_DATASETS_INTERNAL_H

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

#endif
