/*
 * fuzz_state_wire.c - libFuzzer target for the redis backend's record
 * decoder (core/state_wire.c): the bytes of a Redis value or a published
 * change, written by another process. A decoded record is encoded again
 * and must decode to the same fields. The same bytes also go through the
 * decoder of published counter changes ("C1 ...").
 */
#include "state_wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state_wire w, w2;
    if (state_wire_decode_counter((const char *)data, size, &w) == 0 &&
        (!w.key[0] || strlen(w.key) + strlen(w.origin) >= size))
        abort();
    if (state_wire_decode((const char *)data, size, &w) != 0)
        return 0;
    if (w.data < (const char *)data ||
        w.data + w.len > (const char *)data + size)
        abort();
    buf_t b;
    buf_init(&b);
    if (state_wire_encode(&b, w.key, w.found, w.expires_ms, w.origin, w.data,
                          w.len) == 0) {
        if (state_wire_decode(b.data, b.len, &w2) != 0 ||
            strcmp(w.key, w2.key) || strcmp(w.origin, w2.origin) ||
            w.found != w2.found || w.expires_ms != w2.expires_ms ||
            w.len != w2.len || memcmp(w.data, w2.data, w.len))
            abort();
    }
    buf_release(&b);
    return 0;
}
