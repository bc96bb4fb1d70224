/*
 * fuzz_h1parse.c - libFuzzer target for core/h1parse.c, the HTTP/1.x
 * response parser of the own http:// client.
 *
 * The first byte of an input says whether the request was HEAD, which
 * on_body calls pause and which header (if any) aborts; the second seeds
 * how the rest is cut. The rest is fed twice: whole, and in pieces as the
 * client feeds it (keeping the unconsumed bytes, appending the next piece,
 * each feed from an exact-size copy so ASan sees a read past it), pausing
 * as said and resuming. Both runs must end alike (result, status,
 * keep_alive, bytes consumed, error, headers and body hashed). Throughout:
 * *used <= len; H1P_MORE leaves unconsumed only a partial line (no LF,
 * under the bounds), and feeding it again changes nothing; no body before
 * the head, none for HEAD/204/304, never more than the Content-Length.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined (tests/fuzz/
 * fuzz.cmake) and run briefly by CTest when clang is present.
 */
#include "h1parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct run {
    uint64_t hash;     /* headers and heads, in order */
    uint64_t body;     /* body bytes (hash) */
    uint64_t body_len; /* body bytes delivered */
    unsigned pause;    /* bit i: pause on_body call i (mod 8), once */
    unsigned calls;
    int paused;    /* the last on_body call paused */
    int abort_hdr; /* abort on this header (1-based), 0 never */
    int headers, heads, no_body;
    int has_len, has_te;
    uint64_t length; /* the last Content-Length's leading digits */
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* field separator */
}

static int on_header(void *u, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    struct run *r = u;
    if (r->heads || !nlen)
        abort();
    r->hash = mix(r->hash, name, nlen);
    r->hash = mix(r->hash, value, vlen);
    if (nlen == 14 && !strncasecmp(name, "content-length", 14)) {
        uint64_t v = 0;
        for (size_t i = 0; i < vlen && value[i] >= '0' && value[i] <= '9'; i++)
            v = v * 10 + (uint64_t)(value[i] - '0');
        r->has_len = 1;
        r->length = v;
    }
    if (nlen == 17 && !strncasecmp(name, "transfer-encoding", 17))
        r->has_te = 1;
    return ++r->headers == r->abort_hdr ? -1 : 0;
}

static int on_head(void *u, int status)
{
    struct run *r = u;
    if (r->heads++ || status < 200 || status > 999)
        abort();
    r->hash = mix(r->hash, &status, sizeof status);
    return 0;
}

static int on_body(void *u, const char *data, size_t len)
{
    struct run *r = u;
    if (!len || r->heads != 1 || r->no_body)
        abort();
    if (!r->paused && ((r->pause >> (r->calls++ % 8)) & 1)) {
        r->paused = 1;
        return 1;
    }
    r->paused = 0;
    r->body_len += len;
    if (r->has_len && !r->has_te && r->body_len > r->length)
        abort();
    for (size_t i = 0; i < len; i++)
        r->body = (r->body ^ (unsigned char)data[i]) * 1099511628211ull;
    return 0;
}

static const struct h1p_cb CB = {on_header, on_head, on_body};

struct result {
    int rc, status, keep_alive;
    size_t used;
    const char *err;
};

/* After H1P_MORE: the unconsumed rest is a partial line under the bounds,
 * and feeding it again changes nothing. */
static void check_waiting(struct h1p *p, struct run *r, const char *rest,
                          size_t n)
{
    if (memchr(rest, '\n', n) || n >= H1P_MAX_HEAD)
        abort();
    uint64_t hash = r->hash, body = r->body;
    size_t used = 1;
    if (h1p_feed(p, rest, n, &used) != H1P_MORE || used != 0 ||
        r->hash != hash || r->body != body)
        abort();
}

/* Feed in[0..len) in pieces cut by seed (seed 0: whole), then EOF. */
static struct result feed(const char *in, size_t len, uint32_t seed,
                          struct run *r)
{
    struct h1p p;
    struct result res;
    size_t start = 0, avail = 0;
    h1p_init(&p, &CB, r, r->no_body);
    for (;;) {
        if (!seed) {
            avail = len;
        } else if (avail < len) {
            seed = seed * 1103515245u + 12345u;
            /* mostly small pieces, now and then a large one */
            size_t n = 1 + (seed >> 16) % ((seed >> 8) & 1 ? 257 : 13);
            avail = n < len - avail ? avail + n : len;
        }
        size_t n = avail - start, used = SIZE_MAX;
        char *win = malloc(n ? n : 1);
        if (!win)
            abort();
        memcpy(win, in + start, n);
        int rc = h1p_feed(&p, win, n, &used);
        if (used > n)
            abort();
        if (rc == H1P_MORE)
            check_waiting(&p, r, win + used, n - used);
        free(win);
        start += used;
        if (rc == H1P_PAUSE)
            continue; /* the pause pattern never pauses twice in a row */
        if (rc == H1P_MORE && avail < len)
            continue;
        res.rc = rc == H1P_MORE ? h1p_eof(&p) : rc;
        break;
    }
    res.status = p.status;
    res.keep_alive = p.keep_alive;
    res.used = start;
    res.err = p.err;
    if (res.rc == H1P_DONE && !r->no_body && r->has_len && !r->has_te &&
        p.status != 204 && p.status != 304 && r->body_len != r->length)
        abort();
    if (res.rc == H1P_DONE &&
        (r->no_body || p.status == 204 || p.status == 304) && r->body_len)
        abort();
    if (res.rc == H1P_ERROR && !res.err)
        abort();
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    struct run whole = {.hash = 1469598103934665603ull,
                        .body = 1469598103934665603ull,
                        .no_body = data[0] & 1,
                        .abort_hdr = (data[0] >> 1) & 3};
    struct run cut = whole;
    cut.pause = data[0] >> 3 | (data[0] & 0x80 ? 0xe0 : 0);
    uint32_t seed = data[1] * 2654435761u + 1;

    struct result a = feed(in, len, 0, &whole);
    struct result b = feed(in, len, seed | 1, &cut);
    if (a.rc != b.rc || a.status != b.status || a.used != b.used ||
        a.err != b.err || whole.hash != cut.hash || whole.body != cut.body ||
        whole.body_len != cut.body_len)
        abort();
    if (a.rc == H1P_DONE && a.keep_alive != b.keep_alive)
        abort();
    if (a.rc == H1P_DONE && a.used > len)
        abort();
    return 0;
}
