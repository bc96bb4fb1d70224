/*
 * arena.h - a request's memory pool (nginx's r->pool, h2o's req->pool):
 * bump allocation from a few blocks, all freed at once when the request
 * ends. What lives exactly as long as the request comes from here: its
 * URL, the stages' slots, attributes and header lists, and what a stage
 * asks for with the host's req_alloc. So a pointer the SDK says is "valid
 * until the request ends" is valid that long by construction: nothing in
 * the arena is freed before arena_free.
 *
 * Not for what grows (bodies, the stream buffer): an arena cannot give back
 * the old copy of a grown buffer. Not thread-safe: all hooks of a request
 * run on one thread (sluice.h).
 */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include <stddef.h>

/* Every allocation is aligned for any object type. */
#define ARENA_ALIGN 16

struct arena_block;

struct arena {
    char *ptr, *end;            /* free room in the current block */
    struct arena_block *blocks; /* malloc'd, freed by arena_free */
    size_t used;                /* bytes handed out (tests, bench) */
    size_t next_block;          /* room of the next block (0: the least) */
};

/* An empty arena whose first room is `first` (len bytes, owned by the
 * caller, e.g. the tail of the request's own allocation; NULL, 0: none). */
void arena_init(struct arena *a, void *first, size_t len);
/* n bytes (n > 0), not zeroed; NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t n);
/* n zeroed bytes; NULL when out of memory. */
void *arena_calloc(struct arena *a, size_t n);
/* A terminated copy of s[0..n) (s need not be terminated); NULL on OOM. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
/* Free every block; everything the arena handed out is gone. The arena is
 * empty afterwards, without its first room. */
void arena_free(struct arena *a);

#endif
