#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mn/arena.h"

#define MN_ALIGN 64

struct mn_arena_block {
    mn_arena_block *next;    /* older block */
    size_t size, off;
    char *mem;
};

static mn_arena_block *block_new(size_t size)
{
    mn_arena_block *b = malloc(sizeof *b);
    if (!b) return NULL;
    b->mem = size ? aligned_alloc(MN_ALIGN, (size + MN_ALIGN - 1) / MN_ALIGN * MN_ALIGN) : NULL;
    if (size && !b->mem) {
        free(b);
        return NULL;
    }
    b->size = size;
    b->off = 0;
    b->next = NULL;
    return b;
}

void mn_arena_init(mn_arena *a, const char *name, size_t initial_bytes)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    if (initial_bytes) {
        a->head = block_new(initial_bytes);
        if (a->head) a->capacity = a->head->size;
    }
}

void *mn_arena_alloc(mn_arena *a, size_t bytes)
{
    size_t need = (bytes + MN_ALIGN - 1) / MN_ALIGN * MN_ALIGN;
    if (need == 0) need = MN_ALIGN;
    mn_arena_block *b = a->head;
    if (!b || b->size - b->off < need) {
        /* chain a block at least as large as all we own, so growth is geometric */
        size_t size = need > a->capacity ? need : a->capacity;
        if (size < (1u << 20)) size = 1u << 20;
        mn_arena_block *nb = block_new(size);
        if (!nb) {
            mn_error(MN_ENOMEM, "%s arena: cannot allocate %zu bytes", a->name ? a->name : "", size);
            return NULL;
        }
        nb->next = a->head;
        a->head = nb;
        a->capacity += size;
        a->n_grow++;
        b = nb;
    }
    void *p = b->mem + b->off;
    b->off += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *mn_arena_zalloc(mn_arena *a, size_t bytes)
{
    void *p = mn_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static void free_chain(mn_arena_block *b)
{
    while (b) {
        mn_arena_block *next = b->next;
        free(b->mem);
        free(b);
        b = next;
    }
}

void mn_arena_reset(mn_arena *a)
{
    if (a->head && a->head->next) {
        /* several blocks: replace them with one block of the high-water size and a quarter more, so
         * that passes whose sizes vary (a detector's proposals and RoIs) do not outgrow it again by a
         * little, each time costing a fresh block whose every page the kernel zeroes on first touch */
        free_chain(a->head);
        a->head = block_new(a->peak + a->peak / 4);
        a->capacity = a->head ? a->head->size : 0;
    }
    if (a->head) a->head->off = 0;
    a->used = 0;
}

void mn_arena_free(mn_arena *a)
{
    free_chain(a->head);
    memset(a, 0, sizeof *a);
}
