/* tok_cache.c - a cache of recent pieces: piece bytes -> token count, a
 * direct-mapped table (a newer piece evicts the older one in its slot)
 * shared by all threads, one mutex per 1/64th of the slots.  Pieces longer
 * than TOK_CACHE_KEY bytes (a CJK clause is one piece for some patterns)
 * are keyed by a 128-bit fingerprint. */
#include <stdlib.h>
#include <string.h>

#include "tok_priv.h"

int cache_init(struct tok_cache *c, uint32_t entries)
{
    uint32_t n = TOK_CACHE_SHARDS;
    while (n < entries)
        n *= 2;
    c->e = calloc(n, sizeof(*c->e));
    if (!c->e)
        return -1;
    c->mask = n - 1;
    c->enabled = 1;
    for (int i = 0; i < TOK_CACHE_SHARDS; i++)
        pthread_mutex_init(&c->lock[i], NULL);
    return 0;
}

/* The bytes an entry holds for a piece: itself, or its fingerprint. */
static const char *cache_key(uint64_t h, const char *s, size_t n,
                             uint64_t fp[2], size_t *kn)
{
    if (n <= TOK_CACHE_KEY) {
        *kn = n;
        return s;
    }
    fp[0] = h;
    fp[1] = tok_hash_seed(s, n, 0xD6E8FEB86659FD93ULL);
    *kn = sizeof(uint64_t) * 2;
    return (const char *)fp;
}

long cache_get(struct tok_cache *c, uint64_t h, const char *s, size_t n)
{
    if (!c->enabled || n > UINT32_MAX)
        return -1;
    uint64_t fp[2];
    size_t kn;
    const char *key = cache_key(h, s, n, fp, &kn);
    uint32_t i = (uint32_t)h & c->mask;
    pthread_mutex_t *m = &c->lock[i % TOK_CACHE_SHARDS];
    const struct tok_cache_entry *e = &c->e[i];
    long r = -1;
    pthread_mutex_lock(m);
    if (e->len == n && e->hash32 == (uint32_t)(h >> 32) &&
        memcmp(e->key, key, kn) == 0)
        r = e->count;
    pthread_mutex_unlock(m);
    return r;
}

void cache_put(struct tok_cache *c, uint64_t h, const char *s, size_t n,
               long count)
{
    if (!c->enabled || n > UINT32_MAX || n == 0 || count > UINT32_MAX)
        return;
    uint64_t fp[2];
    size_t kn;
    const char *key = cache_key(h, s, n, fp, &kn);
    uint32_t i = (uint32_t)h & c->mask;
    pthread_mutex_t *m = &c->lock[i % TOK_CACHE_SHARDS];
    struct tok_cache_entry *e = &c->e[i];
    pthread_mutex_lock(m);
    e->hash32 = (uint32_t)(h >> 32);
    e->len = (uint32_t)n;
    e->count = (uint32_t)count;
    memcpy(e->key, key, kn);
    pthread_mutex_unlock(m);
}

void cache_free(struct tok_cache *c)
{
    if (!c->e)
        return;
    for (int i = 0; i < TOK_CACHE_SHARDS; i++)
        pthread_mutex_destroy(&c->lock[i]);
    free(c->e);
    c->e = NULL;
}

size_t cache_memory(const struct tok_cache *c)
{
    return ((size_t)c->mask + 1) * sizeof(*c->e) + sizeof(*c);
}
