/*
 * scrub.h - keeps an attempt's upstream credentials out of what the client
 * gets: an upstream error body that quotes the key ("Incorrect API key
 * provided: sk-...") is passed through with the key shortened, as the
 * logger does for its lines.
 */
#ifndef SLUICE_SCRUB_H
#define SLUICE_SCRUB_H

#include "hdrs.h"

#include <stddef.h>

/* Replace every occurrence of `secret` in s[0..len) by "…" and its last four
 * characters, in place; returns the new length (never longer). s must be
 * NUL-terminated at len, and stays so. Secrets
 * shorter than 8 bytes are left alone (too likely to be ordinary text). */
size_t scrub_value(char *s, size_t len, const char *secret);

/* Scrub the credentials among an attempt's upstream headers (the token of
 * Authorization, the value of any header naming a key or token) from
 * s[0..len); returns the new length. */
size_t scrub_credentials(char *s, size_t len, const struct hdrs *up);

#endif
