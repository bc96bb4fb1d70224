/*
 * history.c - see history.h. One ring of HISTORY_SLOTS slots under one
 * mutex: a request adds to the slot of its completion time (reusing a slot
 * a full ring later clears it first). The quantiles are estimated the way
 * Prometheus' histogram_quantile does (linear within a bucket), over the
 * same bucket bounds as sluice_request_duration_seconds.
 */
#include "history.h"

#include <pthread.h>
#include <string.h>

static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                2.5,   5,    10,    30,   60,  120,  300};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

struct slot {
    uint64_t index; /* wall_ms / HISTORY_SLOT_MS; 0: never used */
    uint64_t n, err;
    uint64_t b[NBOUNDS + 1]; /* per bucket (not cumulative); last: +Inf */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot ring[HISTORY_SLOTS];
static uint64_t first_index; /* of the first request seen; 0: none */

void history_record(uint64_t wall_ms, double total_s, int error)
{
    uint64_t idx = wall_ms / HISTORY_SLOT_MS;
    size_t k = 0;
    while (k < NBOUNDS && total_s > bounds[k])
        k++;
    pthread_mutex_lock(&lock);
    struct slot *s = &ring[idx % HISTORY_SLOTS];
    if (s->index != idx) {
        memset(s, 0, sizeof *s);
        s->index = idx;
    }
    s->n++;
    s->err += error != 0;
    s->b[k]++;
    if (!first_index || idx < first_index)
        first_index = idx;
    pthread_mutex_unlock(&lock);
}

/* The q-quantile of a slot's requests, in ms (-1: none). */
static double quantile(const struct slot *s, double q)
{
    if (!s->n)
        return -1;
    double rank = q * (double)s->n, below = 0;
    for (size_t i = 0; i <= NBOUNDS; i++) {
        double here = (double)s->b[i];
        if (below + here >= rank && here > 0) {
            double lo = i ? bounds[i - 1] : 0;
            if (i == NBOUNDS)
                return lo * 1000; /* +Inf: the last bound, as Prometheus */
            return (lo + (bounds[i] - lo) * (rank - below) / here) * 1000;
        }
        below += here;
    }
    return -1;
}

static void number_or_null(buf_t *out, const char *name, double v)
{
    if (v < 0)
        buf_printf(out, ",\"%s\":null", name);
    else
        buf_printf(out, ",\"%s\":%.3f", name, v);
}

void history_json(buf_t *out, uint64_t wall_ms)
{
    uint64_t now_idx = wall_ms / HISTORY_SLOT_MS;
    buf_printf(out, "{\"slot_s\":%u,\"points\":[", HISTORY_SLOT_MS / 1000);
    pthread_mutex_lock(&lock);
    uint64_t from = now_idx + 1 - HISTORY_SLOTS;
    if (first_index > from)
        from = first_index;
    int n = 0;
    for (uint64_t idx = from; first_index && idx <= now_idx; idx++) {
        struct slot s = ring[idx % HISTORY_SLOTS];
        if (s.index != idx)
            memset(&s, 0, sizeof s); /* nothing in that slot */
        uint64_t start = idx * HISTORY_SLOT_MS;
        uint64_t end = idx == now_idx ? wall_ms : start + HISTORY_SLOT_MS;
        double secs = (double)(end - start) / 1000.0;
        buf_printf(out, "%s{\"t\":%llu,\"requests\":%llu,\"rate\":%.3f",
                   n++ ? "," : "", (unsigned long long)end,
                   (unsigned long long)s.n,
                   secs > 0 ? (double)s.n / secs : 0.0);
        number_or_null(out, "p50", quantile(&s, 0.5));
        number_or_null(out, "p99", quantile(&s, 0.99));
        buf_printf(out, ",\"err\":%.3f}",
                   s.n ? 100.0 * (double)s.err / (double)s.n : 0.0);
    }
    pthread_mutex_unlock(&lock);
    buf_puts(out, "]}");
}
