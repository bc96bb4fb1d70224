/*
 * state_wire.h - a state record as bytes (the redis backend's values and
 * change messages). See state_wire.c for the format.
 */
#ifndef SLUICE_STATE_WIRE_H
#define SLUICE_STATE_WIRE_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

#define STATE_WIRE_KEY_MAX    512
#define STATE_WIRE_ORIGIN_MAX 64

struct state_wire {
    int found; /* 0: the key was deleted */
    uint64_t expires_ms;
    char origin[STATE_WIRE_ORIGIN_MAX];
    char key[STATE_WIRE_KEY_MAX]; /* full (namespaced) key */
    const char *data;             /* into the decoded buffer */
    size_t len;
    /* a counter's new value ("C1" messages, state_wire_decode_counter) */
    int64_t count;
    uint64_t seq; /* the fleet's order of counter changes */
};

/* Append the encoding to out. 0, or -1 out of memory. */
int state_wire_encode(buf_t *out, const char *key, int found,
                      uint64_t expires_ms, const char *origin, const char *data,
                      size_t len);
/* Decode buf[0..len) into w (w->data points into buf). 0, or -1 when it
 * is not a well-formed record. */
int state_wire_decode(const char *buf, size_t len, struct state_wire *w);
/* Decode a counter change the redis backend's script published:
 *   "C1 <seq> <value> <expires_ms> <origin len> <key len>\n" origin key
 * (value may be negative). 0, or -1 when it is not well formed. */
int state_wire_decode_counter(const char *buf, size_t len,
                              struct state_wire *w);

#endif
