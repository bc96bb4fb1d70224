/*
 * fuzz_reqbody.c - libFuzzer target for the chat body check at the door
 * (core/reqbody.c): any bytes either parse into an object with well-typed
 * fields or give a 400 with a code; never a crash, a leak or a hang.
 */
#include "reqbody.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = NULL;
    struct reqbody_error e;
    int rc = reqbody_parse((const char *)data, size, &body, &e);
    if (rc == 0) {
        if (!json_is_object(body))
            abort();
        json_t *m = json_object_get(body, "model");
        if (m && !json_is_string(m))
            abort();
        json_decref(body);
    } else if (body || !e.code || !e.message[0]) {
        abort();
    }
    return 0;
}
