/*
 * keycache.c - per-thread cache of client key digests (see keycache.h).
 */
#include "keycache.h"

#include <string.h>

struct kc_entry {
    size_t klen; /* 0: empty */
    uint8_t digest[AUTH_SHA256_LEN];
    char key[KEYCACHE_KEY_MAX];
};

static _Thread_local struct kc_entry kc[KEYCACHE_SLOTS];
static _Thread_local unsigned long kc_hits, kc_misses;

/* The slot of a key: its length and last eight bytes, mixed. Anyone may
 * choose keys that share a slot; that only costs them a hash. */
static size_t kc_slot(const char *key, size_t klen)
{
    size_t n = klen < 8 ? klen : 8;
    uint64_t w = 0;
    memcpy(&w, key + klen - n, n);
    w = (w ^ klen) * 0x9E3779B97F4A7C15ull;
    return (size_t)(w >> 60) % KEYCACHE_SLOTS;
}

void keycache_digest(const char *key, size_t klen, uint8_t out[AUTH_SHA256_LEN])
{
    if (!klen || klen > KEYCACHE_KEY_MAX) {
        auth_sha256(key, klen, out);
        return;
    }
    struct kc_entry *e = &kc[kc_slot(key, klen)];
    if (e->klen == klen && auth_ct_equal(e->key, key, klen)) {
        memcpy(out, e->digest, AUTH_SHA256_LEN);
        kc_hits++;
        return;
    }
    kc_misses++;
    auth_sha256(key, klen, out);
    explicit_bzero(e, sizeof *e); /* nothing of the key it held stays */
    memcpy(e->key, key, klen);
    memcpy(e->digest, out, AUTH_SHA256_LEN);
    e->klen = klen;
}

void keycache_counts(unsigned long *hits, unsigned long *misses)
{
    *hits = kc_hits;
    *misses = kc_misses;
}
