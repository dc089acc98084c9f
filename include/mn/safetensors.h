/* safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor
 * names to {dtype, shape, data_offsets}, then the raw little-endian tensor bytes.
 *
 * Reading is strict: the whole file is validated (header JSON, dtypes, shapes against byte
 * counts, offsets inside the data and covering it without holes or overlaps) before anything
 * is returned, so a bad file never yields a half-loaded model. Writing is atomic: a temp file
 * in the same directory, fsync, rename, so a crash leaves the previous file intact. */
#ifndef MN_SAFETENSORS_H
#define MN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

#define MN_ST_MAX_DIMS 8

/* F16 tensors are widened to float32 when a file is read, so every reader of F32 reads them too
 * (weights shipped at half the size); writing F16 takes the halves as given (mn_f32_to_f16). */
enum mn_st_dtype { MN_ST_F32 = 0, MN_ST_I32 = 1, MN_ST_I64 = 2, MN_ST_U8 = 3, MN_ST_F16 = 4 };

typedef struct mn_st_entry {
    char *name;
    enum mn_st_dtype dtype;
    int ndim;
    int64_t shape[MN_ST_MAX_DIMS];
    size_t offset, nbytes;        /* within the data section */
    void *data;                   /* points into the file's data section (F16: to the widened floats) */
    float *widened;               /* F16 only: the values as float32 (owned) */
} mn_st_entry;

typedef struct mn_safetensors {
    char *path;
    mn_st_entry *entries;
    int n;
    char **meta_keys, **meta_values; /* "__metadata__" string pairs */
    int n_meta;
    unsigned char *blob;          /* the data section */
    size_t blob_bytes;
} mn_safetensors;

MN_API int mn_st_read(const char *path, mn_safetensors *st);
MN_API void mn_st_free(mn_safetensors *st);
MN_API const mn_st_entry *mn_st_find(const mn_safetensors *st, const char *name);
MN_API const char *mn_st_meta(const mn_safetensors *st, const char *key);
/* The float32 tensor called name with exactly the given shape, as a tensor view into st
 * (ndim <= 4). Error naming the tensor when absent, of another dtype or shape. */
MN_API int mn_st_get_f32(const mn_safetensors *st, const char *name, int ndim, const int64_t *shape, mn_tensor *out);
/* The float32 tensor called name whatever its shape (ndim <= 4). */
MN_API int mn_st_get_any_f32(const mn_safetensors *st, const char *name, mn_tensor *out);

typedef struct mn_st_item {
    const char *name;
    enum mn_st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;             /* contiguous */
} mn_st_item;

/* IEEE 754 half precision <-> float: round to nearest even, overflow to infinity, subnormals kept. */
MN_API uint16_t mn_f32_to_f16(float v);
MN_API float mn_f16_to_f32(uint16_t h);

/* Writes items (and metadata string pairs, may be 0) to path atomically. */
MN_API int mn_st_write(const char *path, const mn_st_item *items, int n, const char *const *meta_keys,
                       const char *const *meta_values, int n_meta);

#endif
