/* Bump allocators, one per role: parameters, gradients, optimiser state, per-pass activations.
 *
 * Allocation is a pointer bump inside the current block (64-byte aligned). When a block is
 * full a further block is chained, and mn_arena_reset() folds every block into one block of
 * the high-water size. So after the first pass at the largest configuration the arena owns
 * one block that every later pass fits in: memory never grows across iterations. */
#ifndef MN_ARENA_H
#define MN_ARENA_H

#include <stddef.h>
#include "error.h"

typedef struct mn_arena_block mn_arena_block;

typedef struct mn_arena {
    const char *name;        /* role, for error messages ("activations", ...) */
    mn_arena_block *head;    /* most recent block; older blocks chained behind it */
    size_t used;             /* bytes handed out since the last reset, all blocks together */
    size_t peak;             /* largest `used` ever seen */
    size_t capacity;         /* bytes owned, all blocks together */
    size_t n_grow;           /* how many times a block was added: a test watches this */
} mn_arena;

MN_API void mn_arena_init(mn_arena *a, const char *name, size_t initial_bytes);
/* 64-byte aligned memory (contents undefined), or NULL (error set) when out of memory. */
MN_API void *mn_arena_alloc(mn_arena *a, size_t bytes);
/* The same, zero-filled. */
MN_API void *mn_arena_zalloc(mn_arena *a, size_t bytes);
/* Makes all allocations invalid; keeps (and consolidates) the memory for reuse. */
MN_API void mn_arena_reset(mn_arena *a);
MN_API void mn_arena_free(mn_arena *a);

#endif
