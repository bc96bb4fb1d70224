/*
 * fuzz_walk.c - libFuzzer target for the request body on its way in: the
 * core's check at the door (core/reqbody.c) and, for bodies that pass it,
 * the context stage's walker (plugins/context/walk.c) that validates the
 * deeper shapes and estimates prompt tokens (for chat, and the same body
 * read as the Responses, completions and embeddings prompt). The walker reaches
 * JSON only through the host table, so this file carries a minimal one over
 * jansson (the json_* members the walker uses; the rest stay NULL).
 */
#include "reqbody.h"
#include "walk.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define J(v) ((json_t *)(v))

static sluice_json_type f_type(const sluice_json *v)
{
    switch (json_typeof(J(v))) {
    case JSON_OBJECT:
        return SLUICE_JSON_OBJECT;
    case JSON_ARRAY:
        return SLUICE_JSON_ARRAY;
    case JSON_STRING:
        return SLUICE_JSON_STRING;
    case JSON_INTEGER:
        return SLUICE_JSON_INT;
    case JSON_REAL:
        return SLUICE_JSON_REAL;
    case JSON_TRUE:
    case JSON_FALSE:
        return SLUICE_JSON_BOOL;
    default:
        return SLUICE_JSON_NULL;
    }
}

static sluice_json_type f_type_safe(const sluice_json *v)
{
    return v ? f_type(v) : SLUICE_JSON_INVALID;
}

static const sluice_json *f_get(const sluice_json *o, const char *k)
{
    return (const sluice_json *)json_object_get(J(o), k);
}

static size_t f_size(const sluice_json *v)
{
    return json_is_array(J(v))    ? json_array_size(J(v))
           : json_is_object(J(v)) ? json_object_size(J(v))
                                  : 0;
}

static const sluice_json *f_at(const sluice_json *a, size_t i)
{
    return (const sluice_json *)json_array_get(J(a), i);
}

static const char *f_str(const sluice_json *v)
{
    return json_string_value(J(v));
}

static size_t f_strlen(const sluice_json *v)
{
    return json_is_string(J(v)) ? json_string_length(J(v)) : 0;
}

static int64_t f_int(const sluice_json *v)
{
    return json_is_integer(J(v)) ? json_integer_value(J(v)) : 0;
}

static double f_real(const sluice_json *v)
{
    return json_is_number(J(v)) ? json_number_value(J(v)) : 0;
}

static int f_bool(const sluice_json *v)
{
    return json_is_true(J(v));
}

static void *f_iter(const sluice_json *o)
{
    return json_is_object(J(o)) ? json_object_iter(J(o)) : NULL;
}

static void *f_iter_next(const sluice_json *o, void *it)
{
    return json_object_iter_next(J(o), it);
}

static const char *f_iter_key(void *it)
{
    return json_object_iter_key(it);
}

static const sluice_json *f_iter_value(void *it)
{
    return (const sluice_json *)json_object_iter_value(it);
}

static const sluice_host host = {
    .size = sizeof(sluice_host),
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .json_type = f_type_safe,
    .json_get = f_get,
    .json_size = f_size,
    .json_at = f_at,
    .json_str = f_str,
    .json_strlen = f_strlen,
    .json_int = f_int,
    .json_real = f_real,
    .json_bool = f_bool,
    .json_iter = f_iter,
    .json_iter_next = f_iter_next,
    .json_iter_key = f_iter_key,
    .json_iter_value = f_iter_value,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = NULL;
    struct reqbody_error e;
    if (reqbody_parse((const char *)data, size, &body, &e) != 0)
        return 0;
    struct walk w;
    if (walk_request(&host, (const sluice_json *)body, &w) == 0)
        (void)walk_tokens(&w, 85);
    else if (!w.field[0] && !w.message[0])
        abort(); /* an error must say what and where */
    /* the same body as each other route's prompt (walk_api.c) */
    static const char *const routes[] = {"responses", "completions",
                                         "embeddings"};
    for (size_t i = 0; i < 3; i++) {
        if (walk_api_request(&host, routes[i], (const sluice_json *)body, NULL,
                             &w) == 0)
            (void)walk_tokens(&w, 85);
        else if (!w.field[0] && !w.message[0])
            abort();
    }
    json_decref(body);
    return 0;
}
