/*
 * keycache.h - the digests of the client keys a thread saw last, so a
 * client's key is hashed once per worker instead of on every request (its
 * SHA-256 was most of the auth stage's cost per request).
 *
 * Per thread (nothing shared between workers, no lock), KEYCACHE_SLOTS
 * entries, direct-mapped; keys longer than KEYCACHE_KEY_MAX bytes are
 * hashed every time. An entry holds a key's bytes, to tell a hit (compared
 * in constant time, as the digests are), and its digest. It is never
 * logged, exported or shown; an entry is wiped before it is reused, so a
 * thread holds at most KEYCACHE_SLOTS keys, the last it saw. A digest is a
 * function of the key alone: reloading the clients file needs no flush (a
 * removed client's key still hashes to a digest the new set does not have).
 */
#ifndef SLUICE_AUTH_KEYCACHE_H
#define SLUICE_AUTH_KEYCACHE_H

#include "sha256.h"

#include <stddef.h>
#include <stdint.h>

#define KEYCACHE_SLOTS   16
#define KEYCACHE_KEY_MAX 128

/* SHA-256 of key[0..klen) into out: from the calling thread's cache, or
 * computed and kept there. */
void keycache_digest(const char *key, size_t klen,
                     uint8_t out[AUTH_SHA256_LEN]);

/* For tests: the calling thread's hits and misses so far. */
void keycache_counts(unsigned long *hits, unsigned long *misses);

#endif
