/*
 * json_api.h - the JSON and config members of the host table: jansson
 * behind the opaque sluice_json handle, with wrong-type-safe accessors.
 */
#ifndef SLUICE_JSON_API_H
#define SLUICE_JSON_API_H

#include "sluice.h"

sluice_json_type japi_type(const sluice_json *v);
const sluice_json *japi_get(const sluice_json *obj, const char *key);
size_t japi_size(const sluice_json *v);
const sluice_json *japi_at(const sluice_json *arr, size_t i);
const char *japi_str(const sluice_json *v);
size_t japi_strlen(const sluice_json *v);
int64_t japi_int(const sluice_json *v);
double japi_real(const sluice_json *v);
int japi_bool(const sluice_json *v);
void *japi_iter(const sluice_json *obj);
void *japi_iter_next(const sluice_json *obj, void *it);
const char *japi_iter_key(void *it);
const sluice_json *japi_iter_value(void *it);
int japi_set_str(sluice_json *obj, const char *key, const char *val);
int japi_set_int(sluice_json *obj, const char *key, int64_t val);
int japi_set_bool(sluice_json *obj, const char *key, int val);
sluice_json *japi_set_object(sluice_json *obj, const char *key);
int japi_del(sluice_json *obj, const char *key);
sluice_json *japi_parse(const char *text, size_t len, char *err, size_t errlen);
void japi_free(sluice_json *v);
int japi_dump(const sluice_json *v, sluice_buf *out);
int japi_cfg_int(const sluice_json *cfg, const char *key, int64_t def,
                 int64_t *out);
int japi_cfg_real(const sluice_json *cfg, const char *key, double def,
                  double *out);
int japi_cfg_bool(const sluice_json *cfg, const char *key, int def, int *out);
int japi_cfg_str(const sluice_json *cfg, const char *key, const char *def,
                 const char **out);

#define JSON_API_MEMBERS                                                       \
    .json_type = japi_type, .json_get = japi_get, .json_size = japi_size,      \
    .json_at = japi_at, .json_str = japi_str, .json_strlen = japi_strlen,      \
    .json_int = japi_int, .json_real = japi_real, .json_bool = japi_bool,      \
    .json_iter = japi_iter, .json_iter_next = japi_iter_next,                  \
    .json_iter_key = japi_iter_key, .json_iter_value = japi_iter_value,        \
    .json_set_str = japi_set_str, .json_set_int = japi_set_int,                \
    .json_set_bool = japi_set_bool, .json_set_object = japi_set_object,        \
    .json_del = japi_del, .json_parse = japi_parse, .json_free = japi_free,    \
    .json_dump = japi_dump, .cfg_int = japi_cfg_int,                           \
    .cfg_real = japi_cfg_real, .cfg_bool = japi_cfg_bool,                      \
    .cfg_str = japi_cfg_str,

#endif
