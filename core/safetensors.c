#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mn/json.h"
#include "mn/fileio.h"
#include "mn/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {{"F32", 4}, {"I32", 4}, {"I64", 8}, {"U8", 1}, {"F16", 2}};

#define MAX_HEADER (100u << 20)

void mn_st_free(mn_safetensors *st)
{
    for (int i = 0; i < st->n; i++) {
        free(st->entries[i].name);
        free(st->entries[i].widened);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->entries);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->blob);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int cmp_offset(const void *a, const void *b)
{
    /* by start, then end: an empty tensor [k, k] sorts before one starting at k */
    const mn_st_entry *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* A JSON number that is a whole number in [0, max], exactly (doubles are exact below 2^53). */
static bool whole_in_range(const cJSON *v, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double x = v->valuedouble;
    if (!(x >= 0 && x <= max) || x != (double)(uint64_t)x) return false;
    *out = (uint64_t)x;
    return true;
}

#define EXACT_MAX 9007199254740992.0 /* 2^53 */

static int parse_entry(const char *path, cJSON *item, mn_st_entry *e, size_t blob_bytes)
{
    const char *name = item->string;
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsObject(item) || !cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return mn_error(MN_EFORMAT, "%s: tensor %s: header entry needs dtype, shape and two data_offsets", path, name);
    for (cJSON *k = item->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets"))
            return mn_error(MN_EFORMAT, "%s: tensor %s: unknown header key \"%s\"", path, name, k->string);
    size_t esize = 0;
    for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
        if (!strcmp(dt->valuestring, dtypes[i].name)) {
            e->dtype = (enum mn_st_dtype)i;
            esize = dtypes[i].size;
        }
    if (!esize) return mn_error(MN_EFORMAT, "%s: tensor %s: unsupported dtype %s", path, name, dt->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > MN_ST_MAX_DIMS)
        return mn_error(MN_EFORMAT, "%s: tensor %s: rank %d is above the limit of %d", path, name, ndim, MN_ST_MAX_DIMS);
    e->ndim = ndim;
    /* Element and byte counts in checked int64 arithmetic. Zero-sized dims are skipped in the
     * product, so [0, 2^40, 2^40] is refused too: tensor views multiply the other dims into
     * strides, which would overflow later. */
    int64_t nonzero = 1;
    bool empty = false;
    int d = 0;
    for (cJSON *s = shape->child; s; s = s->next, d++) {
        uint64_t dim;
        if (!whole_in_range(s, EXACT_MAX, &dim)) {
            if (cJSON_IsNumber(s))
                return mn_error(MN_EFORMAT, "%s: tensor %s: shape[%d] = %g is not a size (a whole number >= 0)", path,
                                name, d, s->valuedouble);
            return mn_error(MN_EFORMAT, "%s: tensor %s: shape[%d] is not a number", path, name, d);
        }
        e->shape[d] = (int64_t)dim;
        if (dim == 0) {
            empty = true;
            continue;
        }
        if (__builtin_mul_overflow(nonzero, (int64_t)dim, &nonzero) ||
            (uint64_t)nonzero > SIZE_MAX / esize || nonzero > INT64_MAX / (int64_t)esize)
            return mn_error(MN_EFORMAT, "%s: tensor %s: shape overflows (its dims multiply past 2^63 bytes)", path,
                            name);
    }
    size_t need = empty ? 0 : (size_t)nonzero * esize;
    uint64_t b0, b1;
    const cJSON *o0 = cJSON_GetArrayItem(offs, 0), *o1 = cJSON_GetArrayItem(offs, 1);
    if (!whole_in_range(o0, EXACT_MAX, &b0) || !whole_in_range(o1, EXACT_MAX, &b1))
        return mn_error(MN_EFORMAT, "%s: tensor %s: data_offsets must be two whole numbers >= 0", path, name);
    if (b1 < b0 || b1 > (uint64_t)blob_bytes)
        return mn_error(MN_EFORMAT, "%s: tensor %s: data_offsets [%llu, %llu] outside the %zu data bytes", path, name,
                        (unsigned long long)b0, (unsigned long long)b1, blob_bytes);
    e->offset = (size_t)b0;
    e->nbytes = (size_t)(b1 - b0);
    if (e->nbytes != need)
        return mn_error(MN_EFORMAT, "%s: tensor %s: shape needs %zu bytes but data_offsets give %zu", path, name, need,
                        e->nbytes);
    e->name = strdup(name);
    return e->name ? 0 : mn_error(MN_ENOMEM, "%s: out of memory", path);
}

static int parse_metadata(const char *path, const cJSON *item, mn_safetensors *st)
{
    if (!cJSON_IsObject(item))
        return mn_error(MN_EFORMAT, "%s: __metadata__ is not an object of strings", path);
    int m = cJSON_GetArraySize(item);
    st->meta_keys = calloc((size_t)m + 1, sizeof(char *));
    st->meta_values = calloc((size_t)m + 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    for (const cJSON *kv = item->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return mn_error(MN_EFORMAT, "%s: __metadata__ value of \"%s\" is not a string", path, kv->string);
        /* counted as soon as the key is held, so mn_st_free releases a half-filled pair */
        st->meta_keys[st->n_meta] = strdup(kv->string);
        st->meta_values[st->n_meta] = strdup(kv->valuestring);
        st->n_meta++;
        if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
            return mn_error(MN_ENOMEM, "%s: out of memory", path);
    }
    return 0;
}

static int parse_header(const char *path, const char *json, size_t len, mn_safetensors *st)
{
    /* JSON errors read "<path>: header: ..."; duplicate tensor names are refused there */
    size_t olen = strlen(path) + 16;
    char *origin = malloc(olen);
    if (!origin) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    snprintf(origin, olen, "%s: header", path);
    cJSON *root = NULL;
    int rc = mn_json_parse(json, len, origin, &root);
    free(origin);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mn_error(MN_EFORMAT, "%s: header is not a JSON object", path);
    }
    int n = cJSON_GetArraySize(root);
    st->entries = calloc((size_t)n + 1, sizeof *st->entries);
    if (!st->entries) rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
    for (cJSON *item = root->child; item && !rc; item = item->next) {
        if (!strcmp(item->string, "__metadata__")) {
            rc = parse_metadata(path, item, st);
            continue;
        }
        rc = parse_entry(path, item, &st->entries[st->n], st->blob_bytes);
        if (!rc) st->n++;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    /* the tensors must tile the data section exactly: no holes, no overlaps */
    mn_st_entry *sorted = malloc(sizeof *sorted * (size_t)(st->n + 1));
    if (!sorted) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    memcpy(sorted, st->entries, sizeof *sorted * (size_t)st->n);
    qsort(sorted, (size_t)st->n, sizeof *sorted, cmp_offset);
    size_t at = 0;
    for (int i = 0; i < st->n && !rc; i++) {
        if (sorted[i].offset != at)
            rc = mn_error(MN_EFORMAT, "%s: tensor %s starts at byte %zu of the data, expected %zu (%s)", path,
                          sorted[i].name, sorted[i].offset, at, sorted[i].offset < at ? "overlap" : "hole");
        at = sorted[i].offset + sorted[i].nbytes;
    }
    if (!rc && at != st->blob_bytes)
        rc = mn_error(MN_EFORMAT, "%s: tensors cover %zu of the %zu data bytes", path, at, st->blob_bytes);
    free(sorted);
    return rc;
}

uint16_t mn_f32_to_f16(float v)
{
    uint32_t x;
    memcpy(&x, &v, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7fffffu;
    int exp = (int)((x >> 23) & 0xff);
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0)); /* inf, NaN */
    int e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);                           /* too large: inf */
    if (e <= 0) {                                                              /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = mant >> shift, rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        half += rest > mid || (rest == mid && (half & 1));
        return (uint16_t)(sign | half);
    }
    uint32_t half = (uint32_t)e << 10 | mant >> 13, rest = mant & 0x1fffu;
    half += rest > 0x1000u || (rest == 0x1000u && (half & 1)); /* a carry into the exponent is right */
    return (uint16_t)(sign | half);
}

float mn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (exp == 0x1f) x = sign | 0x7f800000u | mant << 13;
    else if (exp) x = sign | (exp - 15 + 127) << 23 | mant << 13;
    else if (!mant) x = sign;
    else { /* subnormal: normalise */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400u));
        x = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
    float v;
    memcpy(&v, &x, 4);
    return v;
}

/* An F16 tensor's values as float32, kept beside the file's bytes. */
static int widen(const char *path, mn_st_entry *e)
{
    size_t n = e->nbytes / 2;
    e->widened = malloc(sizeof(float) * (n ? n : 1));
    if (!e->widened) return mn_error(MN_ENOMEM, "%s: out of memory widening tensor %s", path, e->name);
    const unsigned char *p = e->data;
    for (size_t i = 0; i < n; i++) e->widened[i] = mn_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    return 0;
}

int mn_st_read(const char *path, mn_safetensors *st)
{
    memset(st, 0, sizeof *st);
    FILE *f = fopen(path, "rb");
    if (!f) return mn_error(MN_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    char *header = NULL;
    unsigned char len8[8];
    struct stat sb;
    if (fstat(fileno(f), &sb) || fread(len8, 1, 8, f) != 8) {
        rc = mn_error(MN_EFORMAT, "%s: truncated: no 8-byte header length", path);
        goto done;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen == 0 || hlen > MAX_HEADER || hlen > (uint64_t)sb.st_size - 8) {
        rc = mn_error(MN_EFORMAT, "%s: header length %llu does not fit the %lld-byte file", path,
                      (unsigned long long)hlen, (long long)sb.st_size);
        goto done;
    }
    header = malloc(hlen);
    st->blob_bytes = (size_t)((uint64_t)sb.st_size - 8 - hlen);
    st->blob = malloc(st->blob_bytes ? st->blob_bytes : 1);
    st->path = strdup(path);
    if (!header || !st->blob || !st->path) {
        rc = mn_error(MN_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(header, 1, hlen, f) != hlen || fread(st->blob, 1, st->blob_bytes, f) != st->blob_bytes) {
        rc = mn_error(MN_EIO, "%s: read failed", path);
        goto done;
    }
    rc = parse_header(path, header, hlen, st);
    for (int i = 0; i < st->n && !rc; i++) {
        mn_st_entry *e = &st->entries[i];
        e->data = st->blob + e->offset;
        if (e->dtype == MN_ST_F16 && !(rc = widen(path, e))) e->data = e->widened;
    }
done:
    free(header);
    fclose(f);
    if (rc) mn_st_free(st);
    return rc;
}

const mn_st_entry *mn_st_find(const mn_safetensors *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->entries[i].name, name)) return &st->entries[i];
    return NULL;
}

const char *mn_st_meta(const mn_safetensors *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

int mn_st_get_any_f32(const mn_safetensors *st, const char *name, mn_tensor *out)
{
    const mn_st_entry *e = mn_st_find(st, name);
    if (!e) return mn_error(MN_EFORMAT, "%s: tensor %s is missing", st->path, name);
    if (e->dtype != MN_ST_F32 && !(e->dtype == MN_ST_F16 && e->widened))
        return mn_error(MN_EFORMAT, "%s: tensor %s has dtype %s, expected F32 (or F16)", st->path, name,
                        dtypes[e->dtype].name);
    if (e->ndim > MN_MAX_DIMS) return mn_error(MN_ESHAPE, "%s: tensor %s has %d dims", st->path, name, e->ndim);
    int64_t one = 1;
    *out = e->ndim ? mn_tensor_view(e->data, e->ndim, e->shape) : mn_tensor_view(e->data, 1, &one);
    return 0;
}

int mn_st_get_f32(const mn_safetensors *st, const char *name, int ndim, const int64_t *shape, mn_tensor *out)
{
    int rc = mn_st_get_any_f32(st, name, out);
    if (rc) return rc;
    const mn_st_entry *e = mn_st_find(st, name);
    bool ok = e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = e->shape[i] == shape[i];
    if (!ok) {
        char want[96], got[96];
        shape_str(shape, ndim, want, sizeof want);
        shape_str(e->shape, e->ndim, got, sizeof got);
        return mn_error(MN_ESHAPE, "%s: tensor %s has shape %s, expected %s", st->path, name, got, want);
    }
    return 0;
}

int mn_st_write(const char *path, const mn_st_item *items, int n, const char *const *meta_keys,
                const char *const *meta_values, int n_meta)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    if (n_meta) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; meta && i < n_meta; i++) cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i]);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, items[i].name);
        cJSON *shape = cJSON_CreateArray();
        size_t count = 1;
        for (int d = 0; d < items[i].ndim; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)items[i].shape[d]));
            count *= (size_t)items[i].shape[d];
        }
        size_t nbytes = count * dtypes[items[i].dtype].size;
        cJSON *offs = cJSON_CreateArray();
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nbytes)));
        off += nbytes;
        if (!e) break;
        cJSON_AddStringToObject(e, "dtype", dtypes[items[i].dtype].name);
        cJSON_AddItemToObject(e, "shape", shape);
        cJSON_AddItemToObject(e, "data_offsets", offs);
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return mn_error(MN_ENOMEM, "%s: out of memory", path);
    size_t hlen = strlen(json);
    size_t padded = (hlen + 7) / 8 * 8; /* pad with spaces so the data is 8-byte aligned */

    mn_atomic_file a;
    int rc = mn_atomic_open(&a, path);
    if (rc) {
        free(json);
        return rc;
    }
    FILE *f = a.f;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n; i++) {
        size_t count = 1;
        for (int d = 0; d < items[i].ndim; d++) count *= (size_t)items[i].shape[d];
        size_t nbytes = count * dtypes[items[i].dtype].size;
        ok = fwrite(items[i].data, 1, nbytes, f) == nbytes;
    }
    rc = mn_atomic_commit(&a, ok);
    free(json);
    return rc;
}
