/* Helpers shared by the libFuzzer targets (fuzz/run.sh builds and runs them).
 *
 * Targets must be deterministic and must free everything: libFuzzer runs them with ASan's
 * leak detection on. Parsers that read a path get the input through a file under /dev/shm
 * (or $TMPDIR) named after the target and the process, rewritten for every input. */
#ifndef MN_FUZZ_COMMON_H
#define MN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of data (malloc'd), or NULL when out of memory. */
char *mn_fuzz_text(const uint8_t *data, size_t size);

/* Writes data to this process's temp file for `target` and puts its path in path (size bytes);
 * 0 on success. The file stays until mn_fuzz_unlink. */
int mn_fuzz_write(const char *target, const uint8_t *data, size_t size, char *path, size_t path_size);
void mn_fuzz_unlink(const char *path);

/* Recomputes the CRC of every chunk of a PNG in place (no-op for other data), so that mutations
 * reach the decoder instead of stopping at the CRC check. */
void mn_fuzz_fix_png_crcs(uint8_t *data, size_t size);

/* Reads every byte of p (so ASan sees any out-of-bounds view) and returns a checksum the caller
 * can feed to mn_fuzz_sink. */
uint32_t mn_fuzz_touch(const void *p, size_t n);
/* Keeps a value alive so the reads behind it are not optimised away. */
void mn_fuzz_sink(uint32_t v);

#endif
