/*
 * bucket.h - a token bucket with an injected clock: `cap` tokens, refilled
 * continuously at cap per `period_ms`. Every call takes the current time
 * (monotonic milliseconds) from the caller, so tests drive time by hand and
 * nothing here reads a clock. Not thread-safe by itself: the auth stage
 * guards each client's buckets with that client's mutex.
 *
 * Levels are kept exactly as integers in token-milliseconds (one token =
 * period_ms units; refill adds cap units a millisecond), so no refill is
 * lost to rounding however often the bucket is looked at.
 */
#ifndef SLUICE_AUTH_BUCKET_H
#define SLUICE_AUTH_BUCKET_H

#include <stdint.h>

struct bucket {
    int64_t cap;       /* tokens; 0 = unlimited */
    int64_t period_ms; /* time to refill from empty to full */
    int64_t level;     /* available, in tokens * period_ms */
    uint64_t t;        /* time of the last update */
};

/* A full bucket of cap tokens per period_ms (cap 0: never limits). */
void bucket_init(struct bucket *b, int64_t cap, int64_t period_ms,
                 uint64_t now);
/* Take n tokens. 0 when taken; -1 when not enough, with *wait_ms set to the
 * time until n would be available (never 0), or UINT64_MAX when n > cap. */
int bucket_take(struct bucket *b, int64_t n, uint64_t now, uint64_t *wait_ms);
/* Whole tokens available at `now`. */
int64_t bucket_remaining(struct bucket *b, uint64_t now);
/* Milliseconds until the bucket is full again. */
uint64_t bucket_reset_ms(struct bucket *b, uint64_t now);
/* Level in thousandths of a token at `now` (for saved state). */
int64_t bucket_level_milli(struct bucket *b, uint64_t now);
/* Set the level in thousandths of a token (clamped to 0..cap). */
void bucket_set(struct bucket *b, int64_t tokens_milli, uint64_t now);

#endif
