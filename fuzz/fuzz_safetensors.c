/* safetensors files (mn_st_read reads a path: the input goes through a temp file), then every
 * tensor's bytes, float views and metadata lookups. */
#include <string.h>

#include "fuzz_common.h"
#include "mn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    if (mn_fuzz_write("safetensors", data, size, path, sizeof path)) return 0;
    mn_safetensors st;
    if (mn_st_read(path, &st) == 0) {
        uint32_t h = 0;
        for (int i = 0; i < st.n; i++) {
            const mn_st_entry *e = &st.entries[i];
            h ^= mn_fuzz_touch(e->data, e->nbytes) ^ mn_fuzz_touch(e->name, strlen(e->name));
            if (mn_st_find(&st, e->name) != e) __builtin_trap(); /* names are unique */
            mn_tensor t;
            if (mn_st_get_any_f32(&st, e->name, &t) == 0) h ^= (uint32_t)t.ndim;
        }
        for (int i = 0; i < st.n_meta; i++) {
            const char *v = mn_st_meta(&st, st.meta_keys[i]);
            h ^= mn_fuzz_touch(v, strlen(v));
        }
        mn_fuzz_sink(h);
        mn_st_free(&st);
    }
    mn_fuzz_unlink(path);
    return 0;
}
