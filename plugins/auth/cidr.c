/*
 * cidr.c - see cidr.h. inet_pton does the address syntax; this file does
 * the prefix and the comparison.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int cidr_addr_parse(const char *text, struct cidr *out)
{
    char buf[64];
    size_t n = text ? strlen(text) : 0;
    memset(out, 0, sizeof *out);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n + 1);
    /* "[::1]" as some proxies write it */
    if (buf[0] == '[' && buf[n - 1] == ']') {
        memmove(buf, buf + 1, n - 2);
        buf[n - 2] = '\0';
    }
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->bits = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, out->addr) != 1)
        return -1;
    if (!memcmp(out->addr, v4mapped, 12)) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->bits = 32;
        return 0;
    }
    out->v6 = 1;
    out->bits = 128;
    return 0;
}

int cidr_parse(const char *text, struct cidr *out)
{
    char buf[64];
    const char *slash = text ? strchr(text, '/') : NULL;
    size_t n = slash ? (size_t)(slash - text) : (text ? strlen(text) : 0);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (cidr_addr_parse(buf, out) != 0)
        return -1;
    if (!slash)
        return 0;
    const char *b = slash + 1;
    int max = out->v6 ? 128 : 32, bits = 0;
    if (!*b || strlen(b) > 3)
        return -1;
    for (; *b; b++) {
        if (*b < '0' || *b > '9')
            return -1;
        bits = bits * 10 + (*b - '0');
    }
    /* ::ffff:a.b.c.d/N: the prefix counted over 128 bits */
    if (!out->v6 && strchr(buf, ':')) {
        if (bits < 96)
            return -1;
        bits -= 96;
    }
    if (bits > max)
        return -1;
    out->bits = bits;
    return 0;
}

int cidr_contains(const struct cidr *range, const struct cidr *addr)
{
    if (range->v6 != addr->v6)
        return 0;
    int full = range->bits / 8, rest = range->bits % 8;
    if (memcmp(range->addr, addr->addr, (size_t)full))
        return 0;
    if (!rest)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (range->addr[full] & mask) == (addr->addr[full] & mask);
}

int cidr_list_contains(const struct cidr *list, size_t n,
                       const struct cidr *addr)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&list[i], addr))
            return 1;
    return 0;
}
