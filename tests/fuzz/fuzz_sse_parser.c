/*
 * fuzz_sse_parser.c - libFuzzer target for plugins/sse/sse_parser.c.
 *
 * The first two bytes of an input choose the event size bound, strictness
 * and how the rest is cut into pieces. The rest is fed twice: whole, and in
 * those pieces. Both runs must report the same events (hashed) and the same
 * outcome, no event may exceed the bound, and ASan/UBSan watch the rest.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined (tests/CMakeLists.txt)
 * and run briefly by CTest when clang is present.
 */
#include "sse_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct run {
    uint64_t hash;
    size_t events;
    size_t max_event;
};

static void mix(struct run *r, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        r->hash = (r->hash ^ b[i]) * 1099511628211ull;
    r->hash = (r->hash ^ 0xff) * 1099511628211ull; /* field separator */
}

static int on_event(void *arg, const struct sse_event *ev)
{
    struct run *r = arg;
    if (ev->data_len + ev->event_len + ev->id_len > r->max_event)
        abort();
    mix(r, &ev->has_data, sizeof ev->has_data);
    mix(r, ev->data, ev->data_len);
    mix(r, &ev->has_event, sizeof ev->has_event);
    mix(r, ev->event, ev->event_len);
    mix(r, &ev->has_id, sizeof ev->has_id);
    mix(r, ev->id, ev->id_len);
    mix(r, &ev->has_retry, sizeof ev->has_retry);
    mix(r, &ev->retry, sizeof ev->retry);
    r->events++;
    return 0;
}

static int on_comment(void *arg, const char *text, size_t len)
{
    struct run *r = arg;
    mix(r, "#", 1);
    mix(r, text, len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_event = 64 + (size_t)(data[0] & 0x7f) * 8;
    int strict = data[0] >> 7;
    uint32_t seed = data[1] * 2654435761u + 1;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;

    struct sse_parser p;
    struct run whole = {1469598103934665603ull, 0, max_event};
    struct run cut = whole;

    sse_parser_init(&p, max_event, strict, on_event, on_comment, &whole);
    int rc1 = sse_parser_feed(&p, in, len);
    int partial1 = sse_parser_end(&p);
    sse_parser_free(&p);

    sse_parser_init(&p, max_event, strict, on_event, on_comment, &cut);
    int rc2 = 0;
    size_t at = 0;
    while (at < len && rc2 == 0) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 17; /* pieces of 1..17 bytes */
        if (n > len - at)
            n = len - at;
        rc2 = sse_parser_feed(&p, in + at, n);
        at += n;
    }
    int partial2 = sse_parser_end(&p);
    sse_parser_free(&p);

    if (rc1 != rc2 || whole.events != cut.events || whole.hash != cut.hash)
        abort();
    if (rc1 == 0 && partial1 != partial2)
        abort();
    return 0;
}
