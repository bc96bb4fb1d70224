/*
 * sha256.h - SHA-256 (FIPS 180-4) in one small file, and a constant-time
 * comparison. The auth stage keeps client keys only as their digests (and
 * each worker the few it saw last, to skip their hash: keycache.h) and
 * compares digests with auth_ct_equal, so neither the key text nor the
 * position of the first differing byte is ever observable.
 */
#ifndef SLUICE_AUTH_SHA256_H
#define SLUICE_AUTH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_SHA256_LEN 32

/* Digest of data[0..len) into out[32]. */
void auth_sha256(const void *data, size_t len, uint8_t out[AUTH_SHA256_LEN]);

/* 1 when a[0..n) equals b[0..n); time depends only on n. */
int auth_ct_equal(const void *a, const void *b, size_t n);

#endif
