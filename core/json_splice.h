/*
 * json_splice.h - one string member of a JSON object text replaced in
 * place: find where the top-level member's value sits in the bytes and
 * write the text again with a new JSON string there. The upstream client
 * uses it to send the client's own body with only `model` changed
 * (a route's rewrite) instead of re-serialising the parsed tree.
 */
#ifndef SLUICE_JSON_SPLICE_H
#define SLUICE_JSON_SPLICE_H

#include "buf.h"

#include <stddef.h>

/* Where the value of the top-level member `key` (plain ASCII) of the JSON
 * object text buf[0..len) sits: *off and *vlen span its bytes (a string's
 * quotes included). Keys are compared decoded (\u0065 is "e"). 1 found,
 * 0 absent, -1 not an object text this scanner reads. Meant for text a
 * JSON parser accepted with duplicate keys refused (the request body);
 * anything else it may misread but never reads past len. */
int json_member_span(const char *buf, size_t len, const char *key, size_t *off,
                     size_t *vlen);

/* buf[0..len) with buf[off..off+vlen) replaced by s as a JSON string,
 * appended to out. 0, or -1 out of memory. */
int json_splice_str(const char *buf, size_t len, size_t off, size_t vlen,
                    const char *s, buf_t *out);

#endif
