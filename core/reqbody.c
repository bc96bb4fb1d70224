/*
 * reqbody.c - see reqbody.h.
 */
#include "reqbody.h"
#include "json_fast.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fail(struct reqbody_error *e, const char *code, const char *param,
                const char *msg)
{
    e->code = code;
    e->param = param;
    snprintf(e->message, sizeof e->message, "%s", msg);
    return -1;
}

static int type_wrong(struct reqbody_error *e, const char *field,
                      const char *want)
{
    e->code = "invalid_type";
    e->param = field;
    snprintf(e->message, sizeof e->message,
             "Invalid type for '%s': expected %s.", field, want);
    return -1;
}

static int check_fields(const json_t *b, struct reqbody_error *e)
{
    static const char *const counts[] = {"max_tokens", "max_completion_tokens",
                                         NULL};
    /* null is "no model", as the README says: the context stage's
     * default_model, else the upstream's choice */
    const json_t *v = json_object_get(b, "model");
    if (v && !json_is_string(v) && !json_is_null(v))
        return type_wrong(e, "model", "a string");
    v = json_object_get(b, "messages");
    if (v && !json_is_array(v))
        return type_wrong(e, "messages", "an array");
    v = json_object_get(b, "stream");
    if (v && !json_is_boolean(v) && !json_is_null(v))
        return type_wrong(e, "stream", "a boolean");
    for (int i = 0; counts[i]; i++) {
        v = json_object_get(b, counts[i]);
        if (v && !json_is_null(v) &&
            (!json_is_integer(v) || json_integer_value(v) < 0))
            return type_wrong(e, counts[i], "a non-negative integer");
    }
    return 0;
}

int reqbody_parse(const char *data, size_t len, json_t **out,
                  struct reqbody_error *e)
{
    return reqbody_parse_budget(data, len, SIZE_MAX, NULL, out, e);
}

int reqbody_parse_budget(const char *data, size_t len, size_t budget,
                         size_t *used, json_t **out, struct reqbody_error *e)
{
    json_error_t jerr;
    size_t u = 0;
    *out = NULL;
    if (used)
        *used = 0;
    if (!data || len == 0)
        return fail(e, "invalid_json", NULL,
                    "the request body is empty: expected a JSON object with "
                    "\"model\" and \"messages\"");
    json_t *b = json_fast_loadb_budget(data, len, JSON_REJECT_DUPLICATES,
                                       budget, &u, &jerr);
    if (used)
        *used = u;
    if (!b && u > budget)
        return fail(e, "request_too_complex", NULL, jerr.text);
    if (!b) {
        e->code = "invalid_json";
        e->param = NULL;
        snprintf(e->message, sizeof e->message,
                 "could not parse the JSON body: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(b)) {
        json_decref(b);
        return fail(e, "invalid_json", NULL,
                    "the request body must be a JSON object");
    }
    if (check_fields(b, e) != 0) {
        json_decref(b);
        return -1;
    }
    *out = b;
    return 0;
}
