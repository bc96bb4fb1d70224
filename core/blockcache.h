/*
 * blockcache.h - a few freed blocks of 1 to 16 KiB kept per thread for its
 * next requests: the request context and the buffers that grow past 1 KiB
 * (bodies, log lines). glibc serves those sizes from its main allocator,
 * which first merges every small chunk freed since (malloc_consolidate:
 * the tree of the last request's body, ~2,000 instructions a request);
 * a block taken from here costs a few instructions. The blocks are plain
 * malloc'd memory (free() is always correct for them) and are freed when
 * the thread ends. Under AddressSanitizer nothing is kept: its
 * use-after-free checks need every block really freed.
 */
#ifndef SLUICE_BLOCKCACHE_H
#define SLUICE_BLOCKCACHE_H

#include <stddef.h>

#define BLOCKCACHE_MIN 1000         /* smaller: malloc's own cache is fast */
#define BLOCKCACHE_MAX (16u * 1024) /* larger: not kept */

/* A block of at least `min` bytes (BLOCKCACHE_MIN..MAX): a kept one (its
 * real size in *size, at most twice min) or a new malloc of exactly min.
 * NULL when out of memory. */
void *blockcache_get(size_t min, size_t *size);
/* Give back a block of `size` bytes (as blockcache_get said, or as
 * malloc'd): kept when it fits the cache, else freed. NULL is ignored. */
void blockcache_put(void *p, size_t size);
/* For tests: 1 when blocks are kept (0 under AddressSanitizer); how many
 * the calling thread holds. */
int blockcache_enabled(void);
size_t blockcache_held(void);

#endif
