/*
 * reload.h - hot reload of the pipeline: re-read the pipeline file, load
 * every stage afresh into a new generation, carry state over, publish with
 * one swap. Serialized: one reload at a time.
 */
#ifndef SLUICE_RELOAD_H
#define SLUICE_RELOAD_H

#include "buf.h"

enum reload_status {
    RELOAD_OK = 0,
    RELOAD_FAILED = -1, /* nothing changed; message says why */
    RELOAD_BUSY = -2    /* another reload is running */
};

/* Reload from `path` (NULL: the file sluice was started with). With
 * `wait` 0 a reload already in progress makes this return RELOAD_BUSY at
 * once. The outcome is appended to out as JSON: on success
 * {"generation":N,"stages":[...],"state_carried":K,...}; on failure an
 * OpenAI-shaped error object. Logs the outcome either way. */
enum reload_status reload_run(const char *path, int wait, buf_t *out);

/* Append the current pipeline as JSON (GET /admin/pipeline). */
void reload_report(buf_t *out);

#endif
