/*
 * json_api.c - jansson behind the SDK's opaque sluice_json. A sluice_json *
 * is a json_t *; stages never see the type, so the core may change library
 * without breaking the ABI. Every accessor tolerates NULL and wrong types.
 */
#include "json_api.h"
#include "buf.h"
#include "json_fast.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define J(v)  ((json_t *)(v))
#define CJ(v) ((const json_t *)(v))

sluice_json_type japi_type(const sluice_json *v)
{
    switch (v ? json_typeof(CJ(v)) : (json_type)-1) {
    case JSON_NULL:
        return SLUICE_JSON_NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return SLUICE_JSON_BOOL;
    case JSON_INTEGER:
        return SLUICE_JSON_INT;
    case JSON_REAL:
        return SLUICE_JSON_REAL;
    case JSON_STRING:
        return SLUICE_JSON_STRING;
    case JSON_ARRAY:
        return SLUICE_JSON_ARRAY;
    case JSON_OBJECT:
        return SLUICE_JSON_OBJECT;
    default:
        return SLUICE_JSON_INVALID;
    }
}

const sluice_json *japi_get(const sluice_json *obj, const char *key)
{
    if (!obj || !key || !json_is_object(CJ(obj)))
        return NULL;
    return (const sluice_json *)json_object_get(CJ(obj), key);
}

size_t japi_size(const sluice_json *v)
{
    if (!v)
        return 0;
    if (json_is_array(CJ(v)))
        return json_array_size(CJ(v));
    if (json_is_object(CJ(v)))
        return json_object_size(CJ(v));
    return 0;
}

const sluice_json *japi_at(const sluice_json *arr, size_t i)
{
    if (!arr || !json_is_array(CJ(arr)))
        return NULL;
    return (const sluice_json *)json_array_get(CJ(arr), i);
}

const char *japi_str(const sluice_json *v)
{
    return v && json_is_string(CJ(v)) ? json_string_value(CJ(v)) : NULL;
}

size_t japi_strlen(const sluice_json *v)
{
    return v && json_is_string(CJ(v)) ? json_string_length(CJ(v)) : 0;
}

int64_t japi_int(const sluice_json *v)
{
    if (!v)
        return 0;
    if (json_is_integer(CJ(v)))
        return (int64_t)json_integer_value(CJ(v));
    if (json_is_real(CJ(v)))
        return (int64_t)json_real_value(CJ(v));
    return 0;
}

double japi_real(const sluice_json *v)
{
    return v && json_is_number(CJ(v)) ? json_number_value(CJ(v)) : 0.0;
}

int japi_bool(const sluice_json *v)
{
    return v && json_is_true(CJ(v));
}

void *japi_iter(const sluice_json *obj)
{
    return obj && json_is_object(CJ(obj)) ? json_object_iter(J(obj)) : NULL;
}

void *japi_iter_next(const sluice_json *obj, void *it)
{
    return obj && it ? json_object_iter_next(J(obj), it) : NULL;
}

const char *japi_iter_key(void *it)
{
    return it ? json_object_iter_key(it) : NULL;
}

const sluice_json *japi_iter_value(void *it)
{
    return it ? (const sluice_json *)json_object_iter_value(it) : NULL;
}

static int japi_set(sluice_json *obj, const char *key, json_t *val)
{
    if (!obj || !key || !val || !json_is_object(J(obj))) {
        json_decref(val);
        return -1;
    }
    return json_object_set_new(J(obj), key, val);
}

int japi_set_str(sluice_json *obj, const char *key, const char *val)
{
    return japi_set(obj, key, val ? json_string(val) : NULL);
}

int japi_set_int(sluice_json *obj, const char *key, int64_t val)
{
    return japi_set(obj, key, json_integer((json_int_t)val));
}

int japi_set_bool(sluice_json *obj, const char *key, int val)
{
    return japi_set(obj, key, json_boolean(val));
}

sluice_json *japi_set_object(sluice_json *obj, const char *key)
{
    if (!obj || !key || !json_is_object(J(obj)))
        return NULL;
    json_t *cur = json_object_get(J(obj), key);
    if (json_is_object(cur))
        return (sluice_json *)cur;
    json_t *o = json_object();
    if (japi_set(obj, key, o) != 0)
        return NULL;
    return (sluice_json *)o;
}

int japi_del(sluice_json *obj, const char *key)
{
    if (!obj || !key || !json_is_object(J(obj)))
        return -1;
    return json_object_del(J(obj), key);
}

sluice_json *japi_parse(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *v = text ? json_fast_loadb(text, len, 0, &je) : NULL;
    if (!v && err && errlen)
        snprintf(err, errlen, "%s (line %d, column %d)",
                 text ? je.text : "no text", text ? je.line : 0,
                 text ? je.column : 0);
    return (sluice_json *)v;
}

void japi_free(sluice_json *v)
{
    json_decref(J(v));
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return buf_append(data, buffer, size);
}

int japi_dump(const sluice_json *v, sluice_buf *out)
{
    if (!v || !out)
        return -1;
    return json_dump_callback(CJ(v), dump_cb, out,
                              JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---- config helpers: numbers may arrive as strings from YAML ------- */

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

int japi_cfg_int(const sluice_json *cfg, const char *key, int64_t def,
                 int64_t *out)
{
    const json_t *v = CJ(japi_get(cfg, key));
    long long ll;
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
        *out = (int64_t)json_real_value(v);
        return 0;
    }
    if (json_is_string(v) && parse_ll(json_string_value(v), &ll) == 0) {
        *out = ll;
        return 0;
    }
    return -1;
}

int japi_cfg_real(const sluice_json *cfg, const char *key, double def,
                  double *out)
{
    const json_t *v = CJ(japi_get(cfg, key));
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        double d = strtod(s, &end);
        if (end != s && !*end && isfinite(d)) {
            *out = d;
            return 0;
        }
    }
    return -1;
}

int japi_cfg_bool(const sluice_json *cfg, const char *key, int def, int *out)
{
    const json_t *v = CJ(japi_get(cfg, key));
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcasecmp(s, "true") || !strcmp(s, "1")) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(s, "false") || !strcmp(s, "0")) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int japi_cfg_str(const sluice_json *cfg, const char *key, const char *def,
                 const char **out)
{
    const json_t *v = CJ(japi_get(cfg, key));
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        *out = json_string_value(v);
        return 0;
    }
    return -1;
}
