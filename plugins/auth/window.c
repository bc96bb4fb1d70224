/*
 * window.c - see window.h. The minute is cut in WINDOW_SLOTS slots of
 * SLOT_MS, one counter each; the window is the current slot, the slots
 * before it that lie wholly inside the last minute, and the share of the
 * oldest one not yet slid out. Two counters (this minute and the last)
 * were tried first: their estimate let a run starting cold admit about
 * +16 % over two minutes (bench/NOTES.md); slots bound that error by one
 * slot's share.
 *
 * Increment first, then judge, then give back when over: the increment is
 * atomic in the state layer, so two workers racing for the last place
 * cannot both get it (on one instance; across a fleet the backend's view
 * lags by its flush interval).
 */
#include "window.h"

#include <stdio.h>

#define MINUTE_MS    60000ull
#define WINDOW_SLOTS 6
#define SLOT_MS      (MINUTE_MS / WINDOW_SLOTS)

static void slot_key(char *out, size_t n, const char *kind, const char *client,
                     uint64_t slot)
{
    snprintf(out, n, "win:%c:%.100s:%llu", kind[0], client,
             (unsigned long long)slot);
}

int window_take(const sluice_host *H, sluice_stage *self, sluice_ctx *ctx,
                const char *client, const char *kind, int64_t limit, int64_t n,
                uint64_t wall, uint64_t *wait_ms)
{
    char key[160];
    int64_t c[WINDOW_SLOTS + 1] = {0}; /* c[0]: the current slot */
    if (!SLUICE_HOST_HAS(H, state_list) || limit <= 0 || n <= 0)
        return 0;
    uint64_t slot = wall / SLOT_MS, into = wall % SLOT_MS;
    for (int k = 1; k <= WINDOW_SLOTS && (uint64_t)k <= slot; k++) {
        slot_key(key, sizeof key, kind, client, slot - (uint64_t)k);
        H->state_get(self, key, NULL, &c[k], NULL);
    }
    /* a counter outlives the minute it counts in by one slot */
    slot_key(key, sizeof key, kind, client, slot);
    c[0] =
        H->state_incr(self, ctx, key, n, MINUTE_MS + 2 * SLOT_MS, NULL, NULL);
    /* the oldest slot's share still inside the minute, rounded up */
    int64_t oldest =
        (int64_t)(((uint64_t)c[WINDOW_SLOTS] * (SLOT_MS - into) + SLOT_MS - 1) /
                  SLOT_MS);
    int64_t sum = oldest;
    for (int k = 0; k < WINDOW_SLOTS; k++)
        sum += c[k];
    if (sum <= limit)
        return 0;
    H->state_incr(self, ctx, key, -n, MINUTE_MS + 2 * SLOT_MS, NULL, NULL);
    /* room comes back as the oldest slots slide out: wait until enough of
     * them have (at most the whole minute) */
    int64_t over = sum - limit;
    uint64_t wait = 0;
    int64_t freed = 0;
    for (int k = WINDOW_SLOTS; k >= 0 && freed < over; k--) {
        freed += k == WINDOW_SLOTS ? oldest : c[k];
        wait = (uint64_t)(WINDOW_SLOTS - k) * SLOT_MS + (SLOT_MS - into);
    }
    *wait_ms = wait ? wait : 1;
    return -1;
}
