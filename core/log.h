/*
 * log.h - the core's logger: one JSON object a line on stderr (or a readable
 * line on a terminal), filtered by level. Thread-safe; a line is written with
 * one write(2) so lines from several threads never interleave.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "buf.h"

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Parse "DEBUG", "INFO", "WARNING"/"WARN", "ERROR" (any case); -1 if unknown.
 */
int log_level_parse(const char *s);
void log_set_level(int level);
int log_get_level(void);
/* Force plain-JSON (0) or readable (1) output; default: readable on a tty. */
void log_set_pretty(int pretty);

/* Log a message. `component` names the source ("core", a stage name...).
 * Extra fields may follow the message as a pre-rendered JSON fragment via
 * log_msgf_fields; keep secrets out of both. */
void log_msg(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(int level, const char *component, const char *fmt, va_list ap);
/* fields_json: ',"k":"v",...' style fragment appended inside the object
 * (may be NULL). Printed as-is. */
void log_fields(int level, const char *component, const char *fields_json,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same with the message already formatted (no printf: per request). */
void log_fields_msg(int level, const char *component, const char *fields_json,
                    const char *msg);

/* Start the writer thread: from then on lines are queued (never blocking
 * the caller; dropped and counted when the queue is full) and written by
 * it to stderr and, when `file` is not NULL, to that file (JSON, appended,
 * its directory created if missing). -1 with err when the file cannot be
 * opened. */
int log_start(const char *file, char *err, size_t errlen);
/* Ask the writer to reopen the file (SIGUSR1, after logrotate's rename). */
void log_reopen(void);
/* Write out what is queued, stop the writer, close the file. */
void log_stop(void);
/* Lines dropped because the queue was full, since start. */
unsigned long long log_dropped_lines(void);

/* Shorten what looks like a secret ("sk-" + 8 or more token characters,
 * "Bearer " + 8 or more) to its last four characters, in place; returns
 * the new length (never longer). Run on every line as a last defence. */
size_t log_scrub_secrets(char *line, size_t len);
/* One JSON log line (with its newline) into `line` (tests use it). */
void log_format_json(buf_t *line, const char *ts, int level,
                     const char *component, const char *msg,
                     const char *fields_json);

#define log_debug(...) log_msg(LOG_DEBUG, "core", __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, "core", __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, "core", __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, "core", __VA_ARGS__)

#endif
