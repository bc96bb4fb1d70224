/*
 * history.h - the dashboard's traffic history, kept by the server: client
 * API requests per 10-second slot for the last 15 minutes (count, errors,
 * a latency histogram), so a freshly opened /admin/ui draws the last 15
 * minutes at once instead of starting empty. In memory only: a restart
 * starts it afresh (/metrics and Prometheus are the long-term record).
 */
#ifndef SLUICE_HISTORY_H
#define SLUICE_HISTORY_H

#include "buf.h"

#include <stdint.h>

#define HISTORY_SLOT_MS 10000u
#define HISTORY_SLOTS   90u /* 15 minutes */

/* A completed request of a client API route (chat, embeddings, models...)
 * at wall-clock ms, taking total_s, error: its outcome is an error, upstream
 * error or broken stream. Any thread; one short lock. */
void history_record(uint64_t wall_ms, double total_s, int error);

/* GET /admin/ui/history: {"slot_s":10,"points":[{"t","requests","rate",
 * "p50","p99","err"}, ...]}, oldest first, one point per slot of the last
 * 15 minutes since the first request (t: the slot's end, or now for the
 * current one, in wall-clock ms; p50/p99 in ms, null without requests;
 * err in percent). */
void history_json(buf_t *out, uint64_t wall_ms);

#endif
