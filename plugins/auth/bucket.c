/*
 * bucket.c - see bucket.h. With cap <= 1e9 and period_ms <= a minute or so,
 * cap * period_ms stays far below INT64_MAX.
 */
#include "bucket.h"

void bucket_init(struct bucket *b, int64_t cap, int64_t period_ms, uint64_t now)
{
    b->cap = cap > 0 ? cap : 0;
    b->period_ms = period_ms > 0 ? period_ms : 1;
    b->level = b->cap * b->period_ms;
    b->t = now;
}

static void refill(struct bucket *b, uint64_t now)
{
    if (now <= b->t) /* a clock that went back changes nothing */
        return;
    uint64_t dt = now - b->t;
    int64_t full = b->cap * b->period_ms;
    if (dt >= (uint64_t)b->period_ms || b->level + b->cap * (int64_t)dt > full)
        b->level = full;
    else
        b->level += b->cap * (int64_t)dt;
    b->t = now;
}

int bucket_take(struct bucket *b, int64_t n, uint64_t now, uint64_t *wait_ms)
{
    if (b->cap == 0 || n <= 0)
        return 0;
    refill(b, now);
    if (n > b->cap) {
        *wait_ms = UINT64_MAX;
        return -1;
    }
    int64_t need = n * b->period_ms;
    if (b->level >= need) {
        b->level -= need;
        return 0;
    }
    /* cap units arrive each millisecond: round the wait up */
    *wait_ms = (uint64_t)((need - b->level + b->cap - 1) / b->cap);
    return -1;
}

int64_t bucket_remaining(struct bucket *b, uint64_t now)
{
    if (b->cap == 0)
        return 0;
    refill(b, now);
    return b->level / b->period_ms;
}

uint64_t bucket_reset_ms(struct bucket *b, uint64_t now)
{
    if (b->cap == 0)
        return 0;
    refill(b, now);
    return (uint64_t)((b->cap * b->period_ms - b->level + b->cap - 1) / b->cap);
}

int64_t bucket_level_milli(struct bucket *b, uint64_t now)
{
    refill(b, now);
    return (int64_t)((__int128)b->level * 1000 / b->period_ms);
}

void bucket_set(struct bucket *b, int64_t tokens_milli, uint64_t now)
{
    __int128 units = (__int128)tokens_milli * b->period_ms / 1000;
    if (units < 0)
        units = 0;
    if (units > b->cap * b->period_ms)
        units = b->cap * b->period_ms;
    b->level = (int64_t)units;
    b->t = now;
}
