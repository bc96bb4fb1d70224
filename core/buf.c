/*
 * buf.c - growable byte buffer. Allocation failure is sticky (b->oom): the
 * caller checks once at the end instead of after every append.
 */
#include "buf.h"
#include "blockcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void buf_release(buf_t *b)
{
    blockcache_put(b->data, b->cap); /* freed, or kept for the thread */
    buf_init(b);
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int buf_reserve(buf_t *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p;
    if (cap >= BLOCKCACHE_MIN && cap <= BLOCKCACHE_MAX) {
        /* a kept block if the thread has one (blockcache.h) */
        p = blockcache_get(cap, &cap);
        if (p) {
            if (b->len)
                memcpy(p, b->data, b->len);
            p[b->len] = '\0';
            blockcache_put(b->data, b->cap);
        }
    } else {
        p = realloc(b->data, cap);
    }
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(buf_t *b, const char *data, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

const char *buf_int_text(char out[BUF_INT_TEXT], long long v)
{
    char *p = out + BUF_INT_TEXT - 1;
    unsigned long long u =
        v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    *p = '\0';
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

int buf_append_ull(buf_t *b, unsigned long long v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf_append(b, tmp + i, sizeof tmp - i);
}

int buf_vprintf(buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0 || buf_reserve(b, (size_t)n) != 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Bytes buf_json_str must escape: '"', '\\' and the control bytes. */
static const unsigned char json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1};

int buf_json_str(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (!s)
        return buf_append(b, "null", 4);
    size_t n = strlen(s);
    if (buf_reserve(b, n + 2) != 0)
        return -1;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    b->data[b->len++] = '"';
    for (;;) {
        /* a run of plain bytes, copied at once (room was reserved for the
         * whole string: only escapes make it longer) */
        const unsigned char *run = p;
        while (p < end && !json_esc[*p])
            p++;
        if (b->len + (size_t)(p - run) + 1 < b->cap) {
            memcpy(b->data + b->len, run, (size_t)(p - run));
            b->len += (size_t)(p - run);
        } else {
            buf_append(b, (const char *)run, (size_t)(p - run));
        }
        if (p == end)
            break;
        char u[6] = {'\\', 0};
        size_t ul = 2;
        switch (*p) {
        case '"':
        case '\\':
            u[1] = (char)*p;
            break;
        case '\n':
            u[1] = 'n';
            break;
        case '\r':
            u[1] = 'r';
            break;
        case '\t':
            u[1] = 't';
            break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[*p >> 4];
            u[5] = hex[*p & 15];
            ul = 6;
        }
        buf_append(b, u, ul);
        p++;
    }
    return buf_append(b, "\"", 1);
}

char *buf_steal(buf_t *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    buf_init(b);
    return d;
}
