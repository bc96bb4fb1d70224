/*
 * multipart.h - just enough of multipart/form-data (RFC 7578) to read the
 * small text fields of an upload (`model`, `stream`) from a body the core
 * already holds within server.max_body_bytes. The body is forwarded
 * upstream untouched; nothing here copies or rewrites it.
 */
#ifndef SLUICE_MULTIPART_H
#define SLUICE_MULTIPART_H

#include <stddef.h>

/* The boundary parameter of a multipart/form-data Content-Type, copied to
 * out (NUL-terminated). 0 ok; -1 when ctype is not multipart/form-data or
 * has no usable boundary (RFC 2046: 1..70 characters). */
int multipart_boundary(const char *ctype, char *out, size_t outlen);

/* Find the form field `name` in body[0..len) and copy its value to out
 * (NUL-terminated; truncated values are refused). Returns 1 found, 0 not
 * present, -1 malformed body or value longer than outlen - 1. Reads only
 * inside the body; never allocates. */
int multipart_field(const char *body, size_t len, const char *boundary,
                    const char *name, char *out, size_t outlen);

#endif
