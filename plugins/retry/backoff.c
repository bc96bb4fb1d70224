/*
 * backoff.c - exponential back-off with full jitter ("AWS full jitter"):
 * the n-th retry waits a uniform random time in [0, min(max, base*2^(n-1))].
 * Spreading retries over the whole window keeps clients that failed
 * together from retrying together. The delay becomes a RETRY verdict's
 * retry_after_ms: the core arms a timer, nothing sleeps.
 */
#include "backoff.h"

#include <stdatomic.h>
#include <time.h>

uint64_t backoff_cap_ms(uint64_t base_ms, uint64_t max_ms, unsigned n)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < n && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

uint64_t backoff_delay_ms(uint64_t base_ms, uint64_t max_ms, unsigned n,
                          int jitter, uint64_t rnd)
{
    uint64_t cap = backoff_cap_ms(base_ms, max_ms, n);
    if (!jitter)
        return cap;
    return rnd % (cap + 1);
}

static atomic_uint_fast64_t backoff_state;

uint64_t backoff_random(void)
{
    uint64_t z = atomic_fetch_add_explicit(
        &backoff_state, 0x9e3779b97f4a7c15ull, memory_order_relaxed);
    if (z == 0) {
        /* first draw: seed from the clock (once; a race only reseeds) */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        z = (uint64_t)ts.tv_nsec * 0x2545f4914f6cdd1dull ^ (uint64_t)ts.tv_sec;
        atomic_fetch_add_explicit(&backoff_state, z, memory_order_relaxed);
    }
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
