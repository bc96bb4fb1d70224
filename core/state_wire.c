/*
 * state_wire.c - one state record as bytes, for the redis backend: the
 * value of a record key in Redis and the message published on a change.
 *
 *   "S1 <found> <expires_ms> <origin len> <key len>\n" origin key data
 *
 * Lengths first, so keys and data may hold any byte. A counter's change is
 * published as "C1 <seq> <value> <expires_ms> <origin len> <key len>\n"
 * origin key (no data). The decoder is the one
 * place that reads bytes another process wrote: it checks every length
 * against what is there (tests/fuzz/fuzz_state_wire.c).
 */
#include "state_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int state_wire_encode(buf_t *out, const char *key, int found,
                      uint64_t expires_ms, const char *origin, const char *data,
                      size_t len)
{
    size_t ol = origin ? strlen(origin) : 0, kl = strlen(key);
    if (buf_printf(out, "S1 %d %llu %zu %zu\n", found ? 1 : 0,
                   (unsigned long long)expires_ms, ol, kl) < 0 ||
        buf_append(out, origin ? origin : "", ol) < 0 ||
        buf_append(out, key, kl) < 0 ||
        buf_append(out, data ? data : "", len) < 0)
        return -1;
    return out->oom ? -1 : 0;
}

/* A decimal number at *p (no sign), then one `end` byte. */
static int read_num(const char **p, const char *lim, char end,
                    unsigned long long *v)
{
    const char *s = *p;
    unsigned long long n = 0;
    if (s >= lim || *s < '0' || *s > '9')
        return -1;
    while (s < lim && *s >= '0' && *s <= '9') {
        if (n > (~0ull - 9) / 10)
            return -1;
        n = n * 10 + (unsigned long long)(*s - '0');
        s++;
    }
    if (s >= lim || *s != end)
        return -1;
    *p = s + 1;
    *v = n;
    return 0;
}

int state_wire_decode(const char *buf, size_t len, struct state_wire *w)
{
    const char *p = buf, *lim = buf + len;
    unsigned long long found, exp, ol, kl;
    memset(w, 0, sizeof(*w));
    if (len < 3 || memcmp(buf, "S1 ", 3))
        return -1;
    p += 3;
    if (read_num(&p, lim, ' ', &found) || found > 1 ||
        read_num(&p, lim, ' ', &exp) || read_num(&p, lim, ' ', &ol) ||
        read_num(&p, lim, '\n', &kl))
        return -1;
    size_t rest = (size_t)(lim - p);
    if (ol >= STATE_WIRE_ORIGIN_MAX || kl == 0 || kl >= STATE_WIRE_KEY_MAX ||
        ol > rest || kl > rest - ol)
        return -1;
    memcpy(w->origin, p, ol);
    w->origin[ol] = '\0';
    p += ol;
    if (memchr(p, '\0', kl))
        return -1;
    memcpy(w->key, p, kl);
    w->key[kl] = '\0';
    p += kl;
    w->found = (int)found;
    w->expires_ms = exp;
    w->data = p;
    w->len = (size_t)(lim - p);
    return 0;
}

/* origin and key of ol + kl bytes at p (lim: the end) into w. */
static int read_names(const char *p, const char *lim, unsigned long long ol,
                      unsigned long long kl, struct state_wire *w)
{
    size_t rest = (size_t)(lim - p);
    if (ol >= STATE_WIRE_ORIGIN_MAX || kl == 0 || kl >= STATE_WIRE_KEY_MAX ||
        ol > rest || kl > rest - ol || memchr(p + ol, '\0', kl))
        return -1;
    memcpy(w->origin, p, ol);
    w->origin[ol] = '\0';
    memcpy(w->key, p + ol, kl);
    w->key[kl] = '\0';
    return 0;
}

int state_wire_decode_counter(const char *buf, size_t len, struct state_wire *w)
{
    const char *p = buf, *lim = buf + len;
    unsigned long long seq, mag, exp, ol, kl;
    int neg = 0;
    memset(w, 0, sizeof(*w));
    if (len < 3 || memcmp(buf, "C1 ", 3))
        return -1;
    p += 3;
    if (read_num(&p, lim, ' ', &seq))
        return -1;
    if (p < lim && *p == '-') {
        neg = 1;
        p++;
    }
    if (read_num(&p, lim, ' ', &mag) || mag > (unsigned long long)INT64_MAX ||
        read_num(&p, lim, ' ', &exp) || read_num(&p, lim, ' ', &ol) ||
        read_num(&p, lim, '\n', &kl) || read_names(p, lim, ol, kl, w) ||
        (size_t)(lim - p) != ol + kl)
        return -1;
    w->found = 1;
    w->seq = seq;
    w->count = neg ? -(int64_t)mag : (int64_t)mag;
    w->expires_ms = exp;
    return 0;
}
