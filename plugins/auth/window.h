/*
 * window.h - a client's limit shared through the core's state (SDK ABI
 * 1.1): a sliding one-minute window counted in six 10-second slots (one
 * counter each, window.c). The counters live in the state layer, so the
 * window keeps its count across a restart (local backend) and is
 * fleet-wide (redis backend), where the token bucket (bucket.h) is this
 * process's alone.
 */
#ifndef SLUICE_AUTH_WINDOW_H
#define SLUICE_AUTH_WINDOW_H

#include "sluice.h"

#include <stdint.h>

/* Take n of client's `limit` per minute for `kind` ("requests" or
 * "tokens") at wall-clock ms `wall`. 0 when taken; -1 when the window is
 * full, with *wait_ms the time until n would fit (>= 1). A no-op (0) when
 * the host has no state API. */
int window_take(const sluice_host *host, sluice_stage *self, sluice_ctx *ctx,
                const char *client, const char *kind, int64_t limit, int64_t n,
                uint64_t wall, uint64_t *wait_ms);

#endif
