/*
 * log.c - structured logging: one JSON object a line on stderr, or a short
 * coloured line when stderr is a terminal. Each line goes out in a single
 * write(2) so concurrent lines never interleave. Callers keep secrets out.
 */
#include "log.h"
#include "buf.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LOG_INFO;
static atomic_int log_pretty = -1; /* -1: decide by isatty */

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING",
                                          "ERROR"};

int log_level_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcasecmp(s, "DEBUG"))
        return LOG_DEBUG;
    if (!strcasecmp(s, "INFO"))
        return LOG_INFO;
    if (!strcasecmp(s, "WARNING") || !strcasecmp(s, "WARN"))
        return LOG_WARN;
    if (!strcasecmp(s, "ERROR"))
        return LOG_ERROR;
    return -1;
}

void log_set_level(int level)
{
    atomic_store(&log_level, level);
}

int log_get_level(void)
{
    return atomic_load(&log_level);
}

void log_set_pretty(int pretty)
{
    atomic_store(&log_pretty, pretty);
}

static int log_is_pretty(void)
{
    int p = atomic_load(&log_pretty);
    if (p < 0) {
        p = isatty(STDERR_FILENO) ? 1 : 0;
        atomic_store(&log_pretty, p);
    }
    return p;
}

static void log_timestamp(char *out, size_t outlen)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

static void log_write(int level, const char *component,
                      const char *fields_json, const char *fmt, va_list ap)
{
    char ts[40], msgbuf[1024];
    buf_t line;

    if (level < atomic_load(&log_level))
        return;
    log_timestamp(ts, sizeof ts);
    vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
    buf_init(&line);
    if (log_is_pretty()) {
        static const char *const colour[] = {"\033[2m", "\033[32m",
                                             "\033[33m", "\033[31m"};
        buf_printf(&line, "%s %s%-7s\033[0m [%s] %s", ts, colour[level],
                   level_names[level], component ? component : "core",
                   msgbuf);
        if (fields_json && *fields_json)
            buf_printf(&line, " {%s}", fields_json[0] == ','
                                           ? fields_json + 1
                                           : fields_json);
    } else {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":",
                   ts, level_names[level]);
        buf_json_str(&line, component ? component : "core");
        buf_puts(&line, ",\"msg\":");
        buf_json_str(&line, msgbuf);
        if (fields_json && *fields_json) {
            if (fields_json[0] != ',')
                buf_puts(&line, ",");
            buf_puts(&line, fields_json);
        }
        buf_puts(&line, "}");
    }
    buf_puts(&line, "\n");
    if (!line.oom) {
        ssize_t w = write(STDERR_FILENO, line.data, line.len);
        (void)w;
    }
    buf_release(&line);
}

void log_vmsg(int level, const char *component, const char *fmt, va_list ap)
{
    log_write(level, component, NULL, fmt, ap);
}

void log_msg(int level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_write(level, component, NULL, fmt, ap);
    va_end(ap);
}

void log_fields(int level, const char *component, const char *fields_json,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_write(level, component, fields_json, fmt, ap);
    va_end(ap);
}
