/*
 * backoff.h - the retry stage's back-off schedule (backoff.c): exponential
 * with full jitter, pure functions with the random draw as an argument so
 * tests can pin it.
 */
#ifndef RETRY_BACKOFF_H
#define RETRY_BACKOFF_H

#include <stdint.h>

/* Upper bound of the n-th retry's delay (n >= 1):
 * min(max_ms, base_ms * 2^(n-1)). */
uint64_t backoff_cap_ms(uint64_t base_ms, uint64_t max_ms, unsigned n);
/* Full jitter: uniform in [0, cap] from a 64-bit random draw `rnd`.
 * jitter == 0: exactly the cap. */
uint64_t backoff_delay_ms(uint64_t base_ms, uint64_t max_ms, unsigned n,
                          int jitter, uint64_t rnd);
/* A 64-bit pseudo-random number (splitmix64 over an atomic counter:
 * lock-free, no thread-local state). Not for secrets. */
uint64_t backoff_random(void);

#endif
