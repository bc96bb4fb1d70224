/*
 * json_fast.h - a one-pass JSON parser over a memory buffer that builds
 * jansson values. It accepts exactly what json_loadb(buf, len, flags, err)
 * accepts (RFC 8259 text whose top level is an object or an array, UTF-8
 * checked, no \u0000, depth at most JSON_PARSER_MAX_DEPTH, integers that fit
 * json_int_t) and builds an equal tree, several times faster: jansson reads
 * through a character stream with a call per byte, this scans runs of
 * plain bytes and hands unescaped strings to jansson without a copy in
 * between. tests/unit/test_json_fast.c checks it against jansson.
 */
#ifndef SLUICE_JSON_FAST_H
#define SLUICE_JSON_FAST_H

#include <jansson.h>
#include <stddef.h>

/* flags: 0 or JSON_REJECT_DUPLICATES (other jansson flags are not
 * supported). Returns a new reference, or NULL with err filled (text,
 * line, column, position). err may be NULL. */
json_t *json_fast_loadb(const char *buf, size_t len, size_t flags,
                        json_error_t *err);

/* The same, building at most about `budget` bytes of tree (estimated as
 * it is built): past that the parse fails ("the body is too complex").
 * *used (may be NULL): the estimate reached, > budget when that was why. */
json_t *json_fast_loadb_budget(const char *buf, size_t len, size_t flags,
                               size_t budget, size_t *used, json_error_t *err);

#endif
