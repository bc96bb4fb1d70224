/*
 * bodycap.c - see bodycap.h.
 */
#include "bodycap.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>

static atomic_size_t in_use; /* reserved or kept, all requests */
static atomic_int trim_wanted, trimming;

size_t bodycap_reserve(size_t body_len)
{
    size_t want = body_len > (SIZE_MAX - BODYCAP_SLACK) / BODYCAP_RATIO
                      ? SIZE_MAX
                      : body_len * BODYCAP_RATIO + BODYCAP_SLACK;
    if (want > BODYCAP_TOTAL)
        want = BODYCAP_TOTAL;
    size_t was = atomic_fetch_add(&in_use, want);
    if (was + want > BODYCAP_TOTAL && was > 0) {
        atomic_fetch_sub(&in_use, want);
        return 0;
    }
    return want;
}

void bodycap_settle(size_t reserved, size_t used)
{
    if (used < reserved)
        atomic_fetch_sub(&in_use, reserved - used);
}

void bodycap_release(size_t charge, size_t body_len)
{
    if (charge)
        atomic_fetch_sub(&in_use, charge);
    if (charge + body_len < BODYCAP_TRIM_AT)
        return;
    /* glibc keeps freed memory in its arenas: after a spike of large
     * bodies, hundreds of MB held for nothing. One thread trims at a time;
     * a release meanwhile asks it for another pass, so the last large
     * body freed is always followed by a trim. */
    atomic_store(&trim_wanted, 1);
    while (!atomic_exchange(&trimming, 1)) {
        while (atomic_exchange(&trim_wanted, 0))
            malloc_trim(0);
        atomic_store(&trimming, 0);
        if (!atomic_load(&trim_wanted))
            break;
    }
}
