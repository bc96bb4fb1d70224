/*
 * log.c - structured logging: one JSON object a line, or a short coloured
 * line when stderr is a terminal (log.format auto) or when asked (text).
 * The log file, when configured, always gets JSON.
 *
 * Until log_start() the lines go straight to stderr with one write(2) each.
 * After it, a writer thread owns the output: callers copy their line into a
 * bounded in-memory ring (one per destination) under a mutex held for a
 * memcpy, and never wait for a disk or a pipe. When a ring is full the line
 * is dropped and counted (log_dropped_lines). The writer gathers INFO and
 * DEBUG lines for up to LOG_BATCH_MS (or LOG_BATCH_BYTES) before it writes:
 * under load one write(2) per destination carries hundreds of access log
 * lines instead of one each, and the worker threads do not wake the writer
 * for every line. WARNING and ERROR lines are written at once; an idle
 * process has no timer (the writer sleeps until a line comes). SIGUSR1 ->
 * log_reopen() asks the writer to reopen the file (logrotate's
 * rename-then-signal).
 *
 * As a last line of defence, every line is scrubbed of things that look
 * like secrets ("sk-..." keys, "Bearer ..." tokens): they are shortened to
 * their last four characters. Callers still mask what they log.
 */
#include "log.h"
#include "buf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_RING_BYTES  (1u << 20)    /* per destination */
#define LOG_CHUNK       (64u * 1024u) /* the writer's unit of write(2) */
#define LOG_STOP_WAIT_S 5  /* log_stop: longest wait for the writer */
#define LOG_BATCH_MS    20 /* longest an INFO line waits to be written */
#define LOG_BATCH_BYTES (32u * 1024u) /* ... or until this much is held */

static atomic_int log_level = LOG_INFO;
static atomic_int log_pretty = -1; /* -1: decide by isatty */

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

/* ---- the writer ---------------------------------------------------------- */

struct ring {
    char *data;
    size_t head, len; /* read position, bytes held */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    atomic_int running; /* lines go through the rings */
    int stop, reopen;
    int urgent;  /* a WARNING or ERROR line is held: write now */
    int waiting; /* the writer waits: 0 no, 1 for any line, 2 for a batch */
    struct ring err, file;
    int fd;     /* the log file, -1 none */
    char *path; /* owned */
} lw = {
    .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .fd = -1};

static atomic_ullong dropped;

unsigned long long log_dropped_lines(void)
{
    return atomic_load(&dropped);
}

/* Copy a whole line in, or nothing. Called with lw.mu held. */
static int ring_put(struct ring *r, const char *p, size_t n)
{
    if (!r->data || n > LOG_RING_BYTES - r->len)
        return -1;
    size_t tail = (r->head + r->len) % LOG_RING_BYTES;
    size_t first = LOG_RING_BYTES - tail < n ? LOG_RING_BYTES - tail : n;
    memcpy(r->data + tail, p, first);
    memcpy(r->data, p + first, n - first);
    r->len += n;
    return 0;
}

/* Take up to `max` bytes out into out. Called with lw.mu held. */
static size_t ring_take(struct ring *r, char *out, size_t max)
{
    if (!r->data || !r->len)
        return 0;
    size_t n = r->len < max ? r->len : max;
    size_t first = LOG_RING_BYTES - r->head < n ? LOG_RING_BYTES - r->head : n;
    memcpy(out, r->data + r->head, first);
    memcpy(out + first, r->data, n - first);
    r->head = (r->head + n) % LOG_RING_BYTES;
    r->len -= n;
    return n;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nothing better to do with a log that fails */
        p += w;
        n -= (size_t)w;
    }
}

/* Create the file's directory when missing (one level: "logs/"). */
static void dir_make(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return;
    char *dir = strndup(path, (size_t)(slash - path));
    if (dir) {
        mkdir(dir, 0750);
        free(dir);
    }
}

static int file_open(const char *path)
{
    dir_make(path);
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void writer_reopen(void)
{
    int fd = file_open(lw.path);
    if (fd < 0) {
        char msg[600];
        int n = snprintf(msg, sizeof msg,
                         "{\"level\":\"ERROR\",\"component\":\"log\","
                         "\"msg\":\"cannot reopen the log file: %s\"}\n",
                         strerror(errno));
        write_all(STDERR_FILENO, msg, (size_t)n);
        return; /* keep writing to the old one */
    }
    if (lw.fd >= 0)
        close(lw.fd);
    lw.fd = fd;
}

/* Lines are held: let more gather, at most LOG_BATCH_MS, unless one is
 * urgent or enough are held. Called with lw.mu held. */
static void writer_batch(void)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += LOG_BATCH_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    lw.waiting = 2;
    while (!lw.stop && !lw.reopen && !lw.urgent &&
           lw.err.len < LOG_BATCH_BYTES && lw.file.len < LOG_BATCH_BYTES)
        if (pthread_cond_timedwait(&lw.cv, &lw.mu, &until) == ETIMEDOUT)
            break;
    lw.waiting = 0;
    lw.urgent = 0;
}

static void *writer_main(void *arg)
{
    char *a = malloc(LOG_CHUNK), *b = malloc(LOG_CHUNK);
    unsigned long long reported = 0;
    (void)arg;
    if (!a || !b) {
        free(a);
        free(b);
        return NULL;
    }
    pthread_mutex_lock(&lw.mu);
    for (;;) {
        lw.waiting = 1;
        while (!lw.err.len && !lw.file.len && !lw.stop && !lw.reopen)
            pthread_cond_wait(&lw.cv, &lw.mu);
        writer_batch();
        int reopen = lw.reopen, stop = lw.stop;
        lw.reopen = 0;
        size_t na = ring_take(&lw.err, a, LOG_CHUNK);
        size_t nb = ring_take(&lw.file, b, LOG_CHUNK);
        pthread_mutex_unlock(&lw.mu);

        if (reopen && lw.path)
            writer_reopen();
        write_all(STDERR_FILENO, a, na);
        if (lw.fd >= 0)
            write_all(lw.fd, b, nb);
        unsigned long long d = atomic_load(&dropped);
        if (d != reported) {
            char msg[200];
            int n = snprintf(msg, sizeof msg,
                             "{\"level\":\"WARNING\",\"component\":\"log\","
                             "\"msg\":\"log lines dropped (writer behind)\","
                             "\"dropped_total\":%llu}\n",
                             d);
            write_all(lw.fd >= 0 ? lw.fd : STDERR_FILENO, msg, (size_t)n);
            reported = d;
        }
        pthread_mutex_lock(&lw.mu);
        if (stop && !lw.err.len && !lw.file.len)
            break;
    }
    pthread_mutex_unlock(&lw.mu);
    free(a);
    free(b);
    return NULL;
}

int log_start(const char *file, char *err, size_t errlen)
{
    if (atomic_load(&lw.running))
        return 0;
    lw.err.data = malloc(LOG_RING_BYTES);
    if (!lw.err.data)
        goto oom;
    if (file && *file) {
        lw.path = strdup(file);
        lw.file.data = malloc(LOG_RING_BYTES);
        if (!lw.path || !lw.file.data)
            goto oom;
        lw.fd = file_open(file);
        if (lw.fd < 0) {
            snprintf(err, errlen, "log.file %s: %s", file, strerror(errno));
            goto fail;
        }
    }
    lw.stop = lw.reopen = 0;
    lw.err.head = lw.err.len = lw.file.head = lw.file.len = 0;
    if (pthread_create(&lw.thread, NULL, writer_main, NULL) != 0) {
        snprintf(err, errlen, "cannot start the log writer thread");
        goto fail;
    }
    atomic_store(&lw.running, 1);
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    if (lw.fd >= 0)
        close(lw.fd);
    lw.fd = -1;
    free(lw.err.data);
    free(lw.file.data);
    free(lw.path);
    lw.err.data = lw.file.data = lw.path = NULL;
    return -1;
}

void log_reopen(void)
{
    pthread_mutex_lock(&lw.mu);
    lw.reopen = 1;
    pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
}

void log_stop(void)
{
    if (!atomic_load(&lw.running))
        return;
    pthread_mutex_lock(&lw.mu);
    lw.stop = 1;
    atomic_store(&lw.running, 0); /* later lines go straight to stderr */
    pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
    /* A destination that never drains (a pipe nobody reads) must not hang
     * the shutdown: give the writer a few seconds, then leave it. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LOG_STOP_WAIT_S;
    if (pthread_timedjoin_np(lw.thread, NULL, &until) != 0)
        return; /* the writer still uses its buffers: keep them */
    if (lw.fd >= 0)
        close(lw.fd);
    lw.fd = -1;
    free(lw.err.data);
    free(lw.file.data);
    free(lw.path);
    lw.err.data = lw.file.data = lw.path = NULL;
}

/* ---- secrets --------------------------------------------------------------
 */

static int token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Replace p[0..n) (a token of len >= 8 after `keep` prefix bytes) by the
 * prefix, "…" and its last four characters; returns the new length. */
static size_t shorten(char *line, size_t len, size_t at, size_t keep, size_t n)
{
    static const char ell[] = "\xe2\x80\xa6"; /* … */
    char last4[4];
    memcpy(last4, line + at + n - 4, 4);
    size_t out = at + keep;
    memcpy(line + out, ell, 3);
    memcpy(line + out + 3, last4, 4);
    out += 7;
    memmove(line + out, line + at + n, len - (at + n));
    return len - (at + n - out);
}

/* Where a secret-shaped token starts: "sk-" or "bearer " (any case), not
 * in the middle of a word, with a byte after it. */
static int sk_at(const char *line, size_t len, size_t i)
{
    return i + 3 < len && line[i] == 's' && line[i + 1] == 'k' &&
           line[i + 2] == '-' && (i == 0 || !token_char(line[i - 1]));
}

static int bearer_at(const char *line, size_t len, size_t i)
{
    return i + 7 < len && (line[i] | 0x20) == 'b' &&
           !strncasecmp(line + i, "bearer ", 7) &&
           (i == 0 || !token_char(line[i - 1]));
}

/* Offset of the next byte c at or after i, or len (memchr is vectorised). */
static size_t next_of(const char *line, size_t len, size_t i, char c)
{
    const char *p = i < len ? memchr(line + i, c, len - i) : NULL;
    return p ? (size_t)(p - line) : len;
}

/* The next start at or after i of "sk-" (found by its '-', far rarer in a
 * line than 's') or of "bearer " (by its space), or len. ndash and nsp
 * cache the next '-' and ' ' (reset to len + 1 when the line moved). */
static size_t next_secret(const char *line, size_t len, size_t i, size_t *ndash,
                          size_t *nsp, size_t *keep)
{
    for (;;) {
        if (*ndash == len + 1 || *ndash < i + 2)
            *ndash = next_of(line, len, i + 2, '-');
        if (*nsp == len + 1 || *nsp < i + 6)
            *nsp = next_of(line, len, i + 6, ' ');
        size_t a = *ndash < len ? *ndash - 2 : len;
        size_t b = *nsp < len ? *nsp - 6 : len;
        if (a >= len && b >= len)
            return len;
        if (a <= b) {
            if (sk_at(line, len, a)) {
                *keep = 3;
                return a;
            }
            i = a + 1; /* '-' passed: look for the next one */
        } else {
            if (bearer_at(line, len, b)) {
                *keep = 7;
                return b;
            }
            i = b + 1;
        }
    }
}

size_t log_scrub_secrets(char *line, size_t len)
{
    size_t i = 0, ndash = len + 1, nsp = len + 1, keep = 0;
    while ((i = next_secret(line, len, i, &ndash, &nsp, &keep)) < len) {
        size_t n = keep;
        while (i + n < len && token_char(line[i + n]))
            n++;
        if (n - keep >= 8) {
            len = shorten(line, len, i, keep, n);
            i += keep + 7;
            ndash = nsp = len + 1; /* the tail moved */
        } else {
            i += n;
        }
    }
    return len;
}

/* ---- lines ----------------------------------------------------------------
 */

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

/* RFC 3339 UTC with milliseconds. The seconds part is formatted once a
 * second per thread (gmtime_r + strftime cost more than the rest of a
 * line). */
static void log_timestamp(char *out, size_t outlen)
{
    static _Thread_local time_t last_sec = -1;
    static _Thread_local char last[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(last, sizeof last, "%Y-%m-%dT%H:%M:%S", &tm);
        last_sec = ts.tv_sec;
    }
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    if (outlen < 25)
        return;
    memcpy(out, last, 19);
    out[19] = '.';
    out[20] = (char)('0' + ms / 100);
    out[21] = (char)('0' + ms / 10 % 10);
    out[22] = (char)('0' + ms % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

/* The JSON line; fields_json (flen bytes) may be NULL. */
static void format_json_n(buf_t *line, const char *ts, int level,
                          const char *component, const char *msg,
                          const char *fields_json, size_t flen)
{
    buf_reserve(line, 256);
    buf_lit(line, "{\"ts\":\"");
    buf_puts(line, ts);
    buf_lit(line, "\",\"level\":\"");
    buf_puts(line, level_names[level]);
    buf_lit(line, "\",\"component\":");
    buf_json_str(line, component ? component : "core");
    buf_lit(line, ",\"msg\":");
    buf_json_str(line, msg);
    if (fields_json && flen) {
        if (fields_json[0] != ',')
            buf_lit(line, ",");
        buf_append(line, fields_json, flen);
    }
    buf_lit(line, "}\n");
}

void log_format_json(buf_t *line, const char *ts, int level,
                     const char *component, const char *msg,
                     const char *fields_json)
{
    format_json_n(line, ts, level, component, msg, fields_json,
                  fields_json ? strlen(fields_json) : 0);
}

static void format_pretty(buf_t *line, const char *ts, int level,
                          const char *component, const char *msg,
                          const char *fields_json)
{
    static const char *const colour[] = {"\033[2m", "\033[32m", "\033[33m",
                                         "\033[31m"};
    buf_printf(line, "%s %s%-7s\033[0m [%s] %s", ts, colour[level],
               level_names[level], component ? component : "core", msg);
    if (fields_json && *fields_json)
        buf_printf(line, " {%s}",
                   fields_json[0] == ',' ? fields_json + 1 : fields_json);
    buf_puts(line, "\n");
}

/* Hand a finished line to its destination. */
/* urgent: WARNING and above, written without waiting for a batch. */
static void emit(struct ring *r, int fd, buf_t *line, int urgent)
{
    if (line->oom || !line->len)
        return;
    pthread_mutex_lock(&lw.mu);
    if (!atomic_load(&lw.running)) {
        pthread_mutex_unlock(&lw.mu);
        if (fd >= 0)
            write_all(fd, line->data, line->len);
        return;
    }
    int rc = ring_put(r, line->data, line->len);
    lw.urgent |= urgent && rc == 0;
    /* wake the writer only when it waits for this: the first line after a
     * quiet spell, an urgent one, or a full batch */
    if (rc == 0 && (lw.waiting == 1 ||
                    (lw.waiting == 2 && (urgent || r->len >= LOG_BATCH_BYTES))))
        pthread_cond_signal(&lw.cv);
    pthread_mutex_unlock(&lw.mu);
    if (rc != 0)
        atomic_fetch_add(&dropped, 1);
}

/* One line: msg (already formatted, mlen bytes) and the fields. */
static void log_line(int level, const char *component, const char *fields_json,
                     const char *msg, size_t mlen)
{
    char ts[40];
    buf_t line;

    if (level < LOG_DEBUG || level > LOG_ERROR)
        level = LOG_INFO;
    log_timestamp(ts, sizeof ts);
    buf_init(&line);
    /* sized once: the line is the message and the fields, escaped, plus
     * ~100 bytes of keys; escaping grows it only for odd text */
    size_t flen = fields_json ? strlen(fields_json) : 0;
    buf_reserve(&line, 160 + mlen + flen);
    int pretty = log_is_pretty();
    if (pretty)
        format_pretty(&line, ts, level, component, msg, fields_json);
    else
        format_json_n(&line, ts, level, component, msg, fields_json, flen);
    line.len = log_scrub_secrets(line.data, line.len);
    int urgent = level >= LOG_WARN;
    emit(&lw.err, STDERR_FILENO, &line, urgent);
    if (atomic_load(&lw.running) && lw.path) {
        if (pretty) {
            buf_reset(&line);
            format_json_n(&line, ts, level, component, msg, fields_json, flen);
            line.len = log_scrub_secrets(line.data, line.len);
        }
        emit(&lw.file, -1, &line, urgent);
    }
    buf_release(&line);
}

static void log_write(int level, const char *component, const char *fields_json,
                      const char *fmt, va_list ap)
{
    char msgbuf[1024];

    if (level < atomic_load(&log_level))
        return;
    int n = vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
    size_t mlen = n < 0                        ? 0
                  : (size_t)n >= sizeof msgbuf ? sizeof msgbuf - 1
                                               : (size_t)n;
    msgbuf[mlen] = '\0';
    log_line(level, component, fields_json, msgbuf, mlen);
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

void log_fields_msg(int level, const char *component, const char *fields_json,
                    const char *msg)
{
    if (level < atomic_load(&log_level))
        return;
    size_t mlen = strnlen(msg, 1023); /* as log_fields' message buffer */
    char cut[1024];
    if (msg[mlen]) { /* longer: cut as vsnprintf would */
        memcpy(cut, msg, mlen);
        cut[mlen] = '\0';
        msg = cut;
    }
    log_line(level, component, fields_json, msg, mlen);
}
