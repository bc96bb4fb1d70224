/*
 * retry_after.c - how long the upstream asked us to leave a key alone, from
 * the Retry-After family of response headers. Pure functions: the wall clock
 * is an argument, headers come through a lookup callback.
 *
 * Precedence: retry-after-ms, then Retry-After (delta-seconds or an
 * HTTP-date), then x-ratelimit-reset-requests / -tokens (Go-style durations
 * such as "1s", "6m0s", "250ms", or epoch seconds) - of those, the one whose
 * x-ratelimit-remaining-* is 0, or the larger when that is not said.
 *
 * "0" and a date in the past mean "usable now" (0), which is not the same as
 * saying nothing (RA_NONE: the keyring then backs off on its own); a value
 * too large to hold is clamped (RA_MAX_MS), and the keyring caps it at
 * max_cooldown_s.
 */
#include "keyring.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RA_EPOCH_SECONDS_MIN 1000000000.0 /* 2001: a timestamp, not a delay */
#define RA_MAX_MS            9.0e15       /* ~285,000 years: beyond any cap */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Unit of a duration at s; sets *len to its length; 0 if unknown. */
static double unit_ms(const char *s, size_t *len)
{
    if (!strncmp(s, "ms", 2)) {
        *len = 2;
        return 1.0;
    }
    if (!strncmp(s, "us", 2)) {
        *len = 2;
        return 0.001;
    }
    if (!strncmp(s, "ns", 2)) {
        *len = 2;
        return 0.000001;
    }
    *len = 1;
    switch (*s) {
    case 'h':
        return 3600000.0;
    case 'm':
        return 60000.0;
    case 's':
        return 1000.0;
    default:
        return 0.0;
    }
}

int64_t ra_parse_duration(const char *s)
{
    if (!s)
        return -1;
    s = skip_ws(s);
    if (!*s)
        return -1;
    double total = 0.0;
    int parts = 0;
    while (*s && *s != ' ' && *s != '\t') {
        char *end;
        if (!((*s >= '0' && *s <= '9') || *s == '.'))
            return -1;
        double v = strtod(s, &end);
        if (end == s || !isfinite(v) || v < 0)
            return -1;
        s = end;
        if (!*s || *s == ' ' || *s == '\t') {
            if (parts)
                return -1;      /* "1m30": a unit is missing */
            total = v * 1000.0; /* bare number: seconds */
            parts++;
            break;
        }
        size_t ul;
        double u = unit_ms(s, &ul);
        if (u == 0.0)
            return -1;
        total += v * u;
        s += ul;
        parts++;
    }
    if (*skip_ws(s))
        return -1;
    if (total > RA_MAX_MS)
        total = RA_MAX_MS; /* "99999999999999999999": long, not unsaid */
    return (int64_t)ceil(total);
}

int64_t ra_parse_http_date(const char *s)
{
    static const char *const fmts[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
        "%a %b %e %H:%M:%S %Y",      /* asctime */
    };
    if (!s)
        return -1;
    s = skip_ws(s);
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, fmts[i], &tm);
        if (!end || *skip_ws(end))
            continue;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
            continue;
        return (int64_t)t * 1000;
    }
    return -1;
}

/* ms from now to the time `v` names: a duration, epoch seconds or a date. */
static int64_t ra_value_ms(const char *v, uint64_t wall_now_ms, int dates)
{
    int64_t d = ra_parse_duration(v);
    if (d >= 0) {
        if ((double)d >= RA_EPOCH_SECONDS_MIN * 1000.0) {
            /* epoch seconds (some upstreams send the reset time) */
            int64_t at = d;
            return at > (int64_t)wall_now_ms ? at - (int64_t)wall_now_ms : 0;
        }
        return d;
    }
    if (!dates)
        return -1;
    int64_t at = ra_parse_http_date(v);
    if (at < 0)
        return -1;
    return at > (int64_t)wall_now_ms ? at - (int64_t)wall_now_ms : 0;
}

static int is_zero(const char *v)
{
    return v && ra_parse_duration(v) == 0;
}

uint64_t ra_cooldown_ms(ra_header_fn get, void *arg, uint64_t wall_now_ms)
{
    const char *v = get(arg, "retry-after-ms");
    if (v) {
        char *end;
        double ms = strtod(skip_ws(v), &end);
        if (end != v && !isnan(ms) && ms >= 0)
            return ms < RA_MAX_MS ? (uint64_t)ceil(ms) : (uint64_t)RA_MAX_MS;
    }
    v = get(arg, "retry-after");
    if (v) {
        int64_t ms = ra_value_ms(v, wall_now_ms, 1);
        if (ms >= 0)
            return (uint64_t)ms;
    }
    int64_t rq =
        ra_value_ms(get(arg, "x-ratelimit-reset-requests"), wall_now_ms, 0);
    int64_t tk =
        ra_value_ms(get(arg, "x-ratelimit-reset-tokens"), wall_now_ms, 0);
    int rq_out = is_zero(get(arg, "x-ratelimit-remaining-requests"));
    int tk_out = is_zero(get(arg, "x-ratelimit-remaining-tokens"));
    if (rq_out != tk_out) {
        int64_t pick = rq_out ? rq : tk;
        if (pick >= 0)
            return (uint64_t)pick;
    }
    int64_t best = rq > tk ? rq : tk;
    return best >= 0 ? (uint64_t)best : RA_NONE;
}
