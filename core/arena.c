/*
 * arena.c - the request's memory pool (see arena.h). Room is taken from
 * the current block; a request that outgrows it gets a new block twice
 * the last (4 KiB up to 64 KiB), and an allocation larger than a quarter
 * of a block gets a block of its own, so the room left in the current one
 * is not wasted.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_MIN (4u << 10)
#define ARENA_BLOCK_MAX (64u << 10)

struct arena_block {
    struct arena_block *next;
    size_t size; /* bytes after the header */
    /* the room follows, at ARENA_ALIGN */
};

/* The header rounded up so the room after it stays aligned. */
#define BLOCK_HDR                                                              \
    ((sizeof(struct arena_block) + ARENA_ALIGN - 1) &                          \
     ~(size_t)(ARENA_ALIGN - 1))

void arena_init(struct arena *a, void *first, size_t len)
{
    uintptr_t p = (uintptr_t)first;
    uintptr_t q = (p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
    a->blocks = NULL;
    a->used = 0;
    a->next_block = 0;
    if (!first || len < q - p) {
        a->ptr = a->end = NULL;
        return;
    }
    a->ptr = (char *)q;
    a->end = (char *)first + len;
}

static struct arena_block *block_new(struct arena *a, size_t room)
{
    struct arena_block *b = malloc(BLOCK_HDR + room);
    if (!b)
        return NULL;
    b->size = room;
    b->next = a->blocks;
    a->blocks = b;
    return b;
}

/* Slow path: the current room is too small for n (rounded) bytes. */
static void *arena_grow(struct arena *a, size_t n)
{
    size_t size = a->next_block ? a->next_block : ARENA_BLOCK_MIN;
    if (n > size / 4) { /* its own block; the current room stays usable */
        struct arena_block *b = block_new(a, n);
        if (!b)
            return NULL;
        a->used += n;
        return (char *)b + BLOCK_HDR;
    }
    struct arena_block *b = block_new(a, size);
    if (!b)
        return NULL;
    a->next_block = size * 2 <= ARENA_BLOCK_MAX ? size * 2 : ARENA_BLOCK_MAX;
    a->ptr = (char *)b + BLOCK_HDR + n;
    a->end = (char *)b + BLOCK_HDR + size;
    a->used += n;
    return (char *)b + BLOCK_HDR;
}

void *arena_alloc(struct arena *a, size_t n)
{
    if (n == 0 || n > SIZE_MAX / 2)
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if ((size_t)(a->end - a->ptr) >= n) {
        void *p = a->ptr;
        a->ptr += n;
        a->used += n;
        return p;
    }
    return arena_grow(a, n);
}

void *arena_calloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void arena_free(struct arena *a)
{
    struct arena_block *b = a->blocks;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->blocks = NULL;
    a->ptr = a->end = NULL;
    a->used = 0;
    a->next_block = 0;
}
