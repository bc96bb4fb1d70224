/*
 * window.c - see window.h. Increment first, then judge, then give back
 * when over: the increment is atomic in the state layer, so two workers
 * racing for the last slot cannot both get it (on one instance; across a
 * fleet the backend's view lags by its flush interval).
 */
#include "window.h"

#include <stdio.h>

#define MINUTE_MS 60000ull

int window_take(const sluice_host *H, sluice_stage *self, sluice_ctx *ctx,
                const char *client, const char *kind, int64_t limit, int64_t n,
                uint64_t wall, uint64_t *wait_ms)
{
    char cur[160], prev[160];
    if (!SLUICE_HOST_HAS(H, state_list) || limit <= 0 || n <= 0)
        return 0;
    uint64_t win = wall / MINUTE_MS, into = wall % MINUTE_MS;
    snprintf(cur, sizeof cur, "win:%c:%.100s:%llu", kind[0], client,
             (unsigned long long)win);
    snprintf(prev, sizeof prev, "win:%c:%.100s:%llu", kind[0], client,
             (unsigned long long)(win - 1));
    int64_t p = 0;
    H->state_get(self, prev, NULL, &p, NULL);
    /* both counters outlive their minute by one: the next one reads it */
    int64_t c = H->state_incr(self, ctx, cur, n, 2 * MINUTE_MS, NULL, NULL);
    /* p's share of the sliding minute: the part not yet slid past,
     * rounded up (the strict side) */
    int64_t p_share =
        (int64_t)(((uint64_t)p * (MINUTE_MS - into) + MINUTE_MS - 1) /
                  MINUTE_MS);
    if (p_share + c <= limit)
        return 0;
    H->state_incr(self, ctx, cur, -n, 2 * MINUTE_MS, NULL, NULL);
    /* p's share shrinks by p per minute; past the window's end only the
     * current count (the next minute's "p") is left */
    int64_t over = p_share + c - limit;
    uint64_t wait = MINUTE_MS - into;
    if (p > 0 && over <= p_share) {
        uint64_t w = (uint64_t)over * MINUTE_MS / (uint64_t)p + 1;
        if (w < wait)
            wait = w;
    }
    *wait_ms = wait ? wait : 1;
    return -1;
}
