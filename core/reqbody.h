/*
 * reqbody.h - the chat request body, parsed once and checked at the door:
 * a JSON object whose well-known fields have the right types. Pure (no
 * request context), so the fuzzer and the unit tests call it directly.
 *
 * What it checks: valid JSON (jansson rejects invalid UTF-8 and \u0000 in
 * strings by default: both stay rejected), an object, and when present:
 * model a string, messages an array, stream a boolean (or null),
 * max_tokens / max_completion_tokens a non-negative integer (or null).
 * Deeper walks (message roles, content parts) belong to the context stage.
 */
#ifndef SLUICE_REQBODY_H
#define SLUICE_REQBODY_H

#include <jansson.h>
#include <stddef.h>

struct reqbody_error {
    const char *code;  /* "invalid_json", "invalid_type" or
                          "request_too_complex" */
    const char *param; /* the field at fault, or NULL */
    char message[400];
};

/* Parse data[0..len). 0: *out is the object (caller decrefs). -1: *out is
 * NULL and *e says why (for a 400). */
int reqbody_parse(const char *data, size_t len, json_t **out,
                  struct reqbody_error *e);
/* The same within a parse budget (json_fast_loadb_budget): over it, -1 with
 * the code "request_too_complex". *used (may be NULL): the estimate. */
int reqbody_parse_budget(const char *data, size_t len, size_t budget,
                         size_t *used, json_t **out, struct reqbody_error *e);

#endif
