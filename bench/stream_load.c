/*
 * stream_load.c - load tool for streamed chat completions: opens N
 * concurrent streams (ramped over a given time) against one host:port on
 * one epoll loop, and reports per stream: time to first event, events,
 * whether it ended with [DONE] and a clean chunked terminator, or how it
 * failed. Used by bench/streams.sh, against sluice and directly against the
 * mock upstream to measure what sluice adds. A benchmark, not a test.
 *
 *   stream_load -p PORT [-n STREAMS] [-r RAMP_MS] [-t TIMEOUT_S]
 *               [-e EXPECTED_EVENTS] [-u PATH] [-b BODY]
 *
 * Prints a human summary and, last, one JSON line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum st {
    ST_IDLE,
    ST_CONNECTING,
    ST_HEADERS,
    ST_SIZE,
    ST_DATA,
    ST_DATA_END,
    ST_DONE,
    ST_FAILED
};

enum fail {
    F_NONE,
    F_CONNECT,
    F_STATUS,
    F_NOT_CHUNKED,
    F_EOF,
    F_TIMEOUT,
    F_ERROR_EVENT,
    F_NO_DONE,
    F_FEW_EVENTS,
    F_PROTO,
    F_N
};

static const char *const fail_names[F_N] = {
    "none",    "connect",     "status",  "not_chunked", "eof_before_end",
    "timeout", "error_event", "no_done", "few_events",  "protocol"};

struct conn {
    int fd;
    enum st st;
    enum fail fail;
    double t0, t_first;   /* ms; t_first < 0: no event yet */
    double t_conn, t_hdr; /* connected, response headers in (ms from t0) */
    size_t sent;
    char hdr[2048];
    size_t hlen;
    size_t chunk_left;
    char sizebuf[24];
    size_t sizelen;
    char evhead[16]; /* first bytes of the current event */
    size_t evlen;
    char last; /* last decoded byte */
    int events;
    int done_seen;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *request;
static size_t request_len;
static int ep;
static int port = 0;
static int expected = 0;

static void conn_fail(struct conn *c, enum fail f)
{
    if (c->st == ST_DONE || c->st == ST_FAILED)
        return;
    c->fail = f;
    c->st = ST_FAILED;
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static void conn_finish(struct conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (!c->done_seen) {
        c->fail = F_NO_DONE;
        c->st = ST_FAILED;
    } else if (expected && c->events < expected) {
        c->fail = F_FEW_EVENTS;
        c->st = ST_FAILED;
    } else {
        c->st = ST_DONE;
    }
}

static void conn_start(struct conn *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->t0 = now_ms();
    c->t_first = -1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_fail(c, F_CONNECT);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 &&
        errno != EINPROGRESS) {
        conn_fail(c, F_CONNECT);
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->st = ST_CONNECTING;
}

/* One byte of decoded body: events end at "\n\n". */
static void body_byte(struct conn *c, char b)
{
    if (c->evlen < sizeof c->evhead)
        c->evhead[c->evlen++] = b;
    if (b == '\n' && c->last == '\n') {
        if (c->evlen >= 6 && !memcmp(c->evhead, "data: ", 6)) {
            if (c->evlen >= 12 && !memcmp(c->evhead + 6, "[DONE]", 6))
                c->done_seen = 1;
            else if (c->evlen >= 15 && !memcmp(c->evhead + 6, "{\"error\"", 8))
                c->fail = F_ERROR_EVENT;
            else {
                c->events++;
                if (c->t_first < 0)
                    c->t_first = now_ms() - c->t0;
            }
        }
        c->evlen = 0;
        c->last = 0;
        return;
    }
    c->last = b;
}

/* Chunked decoding of what follows the headers. */
static void body_bytes(struct conn *c, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && c->st != ST_FAILED && c->st != ST_DONE) {
        switch (c->st) {
        case ST_SIZE: {
            char ch = p[i++];
            if (ch == '\n') {
                c->sizebuf[c->sizelen] = '\0';
                c->chunk_left = strtoul(c->sizebuf, NULL, 16);
                c->sizelen = 0;
                if (c->chunk_left == 0) {
                    if (c->fail == F_ERROR_EVENT)
                        conn_fail(c, F_ERROR_EVENT);
                    else
                        conn_finish(c);
                    return;
                }
                c->st = ST_DATA;
            } else if (ch != '\r' && c->sizelen < sizeof c->sizebuf - 1) {
                c->sizebuf[c->sizelen++] = ch;
            }
            break;
        }
        case ST_DATA: {
            size_t k = n - i < c->chunk_left ? n - i : c->chunk_left;
            for (size_t j = 0; j < k; j++)
                body_byte(c, p[i + j]);
            i += k;
            c->chunk_left -= k;
            if (!c->chunk_left)
                c->st = ST_DATA_END;
            break;
        }
        case ST_DATA_END:
            if (p[i++] == '\n')
                c->st = ST_SIZE;
            break;
        default:
            return;
        }
    }
}

static void on_headers(struct conn *c, size_t end)
{
    int status = 0;
    if (sscanf(c->hdr, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        conn_fail(c, F_STATUS);
        return;
    }
    c->hdr[end] = '\0';
    if (!strcasestr(c->hdr, "transfer-encoding: chunked")) {
        conn_fail(c, F_NOT_CHUNKED);
        return;
    }
    c->st = ST_SIZE;
}

static void conn_read(struct conn *c)
{
    static char buf[65536];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            conn_fail(c, F_EOF);
            return;
        }
        size_t off = 0;
        if (c->st == ST_HEADERS) {
            size_t k = (size_t)n < sizeof c->hdr - 1 - c->hlen
                           ? (size_t)n
                           : sizeof c->hdr - 1 - c->hlen;
            memcpy(c->hdr + c->hlen, buf, k);
            size_t before = c->hlen;
            c->hlen += k;
            c->hdr[c->hlen] = '\0';
            char *e = strstr(c->hdr, "\r\n\r\n");
            if (!e) {
                if (c->hlen >= sizeof c->hdr - 1)
                    conn_fail(c, F_PROTO);
                continue;
            }
            size_t hend = (size_t)(e - c->hdr) + 4;
            c->t_hdr = now_ms() - c->t0;
            off = hend - before;
            on_headers(c, hend);
            if (c->st != ST_SIZE)
                return;
        }
        body_bytes(c, buf + off, (size_t)n - off);
        if (c->st == ST_DONE || c->st == ST_FAILED)
            return;
    }
}

static void conn_event(struct conn *c, uint32_t events)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (events & EPOLLERR)) {
            conn_fail(c, F_CONNECT);
            return;
        }
        ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
        if (n > 0)
            c->sent += (size_t)n;
        if (c->sent < request_len)
            return;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->st = ST_HEADERS;
        c->t_conn = now_ms() - c->t0;
        return;
    }
    conn_read(c);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    int n = 100, ramp_ms = 1000, timeout_s = 60;
    const char *path = "/v1/chat/completions";
    const char *body =
        "{\"model\":\"qwen/qwen3-next-80b-a3b-instruct\",\"stream\":true,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"bench\"}]}";
    int opt;
    while ((opt = getopt(argc, argv, "p:n:r:t:e:u:b:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'n':
            n = atoi(optarg);
            break;
        case 'r':
            ramp_ms = atoi(optarg);
            break;
        case 't':
            timeout_s = atoi(optarg);
            break;
        case 'e':
            expected = atoi(optarg);
            break;
        case 'u':
            path = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: %s -p PORT [-n STREAMS] [-r RAMP_MS] "
                    "[-t TIMEOUT_S] [-e EVENTS] [-u PATH] [-b BODY]\n",
                    argv[0]);
            return 2;
        }
    }
    if (port <= 0 || n <= 0) {
        fprintf(stderr, "stream_load: -p PORT and -n > 0 are required\n");
        return 2;
    }
    size_t cap = strlen(body) + strlen(path) + 256;
    request = malloc(cap);
    request_len = (size_t)snprintf(
        request, cap,
        "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        "Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n"
        "Content-Length: %zu\r\n\r\n%s",
        path, port, strlen(body), body);
    struct conn *cs = calloc((size_t)n, sizeof *cs);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || !request || ep < 0) {
        perror("stream_load");
        return 1;
    }
    for (int i = 0; i < n; i++)
        cs[i].fd = -1;

    double t_begin = now_ms(), deadline = t_begin + timeout_s * 1000.0;
    int started = 0, finished = 0;
    struct epoll_event evs[512];
    while (finished < n && now_ms() < deadline) {
        double t = now_ms() - t_begin;
        int due = ramp_ms > 0 ? (int)((double)n * t / ramp_ms) + 1 : n;
        if (due > n)
            due = n;
        while (started < due)
            conn_start(&cs[started++]);
        int k = epoll_wait(ep, evs, 512, started < n ? 1 : 50);
        for (int i = 0; i < k; i++)
            conn_event(evs[i].data.ptr, evs[i].events);
        finished = 0;
        for (int i = 0; i < started; i++)
            finished += cs[i].st == ST_DONE || cs[i].st == ST_FAILED;
    }
    double elapsed = now_ms() - t_begin;

    int fails[F_N] = {0}, ok = 0;
    double *ttfe = calloc((size_t)n, sizeof(double));
    double *tconn = calloc((size_t)n, sizeof(double));
    double *thdr = calloc((size_t)n, sizeof(double));
    size_t nt = 0, nc = 0, nh = 0;
    long events = 0;
    for (int i = 0; i < n; i++) {
        struct conn *c = &cs[i];
        if (c->st != ST_DONE && c->st != ST_FAILED)
            conn_fail(c, F_TIMEOUT);
        if (c->st == ST_DONE)
            ok++;
        else
            fails[c->fail]++;
        if (c->t_first >= 0)
            ttfe[nt++] = c->t_first;
        if (c->t_conn > 0)
            tconn[nc++] = c->t_conn;
        if (c->t_hdr > 0)
            thdr[nh++] = c->t_hdr;
        events += c->events;
    }
    qsort(ttfe, nt, sizeof *ttfe, cmp_double);
    qsort(tconn, nc, sizeof *tconn, cmp_double);
    qsort(thdr, nh, sizeof *thdr, cmp_double);
    int errors = n - ok;
    printf("streams %d ok %d errors %d events %ld elapsed %.1f s\n", n, ok,
           errors, events, elapsed / 1000);
    printf("time to first event (ms): p50 %.2f p90 %.2f p99 %.2f max %.2f\n",
           pct(ttfe, nt, 0.5), pct(ttfe, nt, 0.9), pct(ttfe, nt, 0.99),
           pct(ttfe, nt, 1.0));
    printf("connected (ms): p50 %.2f p99 %.2f; response headers (ms): p50 "
           "%.2f p99 %.2f\n",
           pct(tconn, nc, 0.5), pct(tconn, nc, 0.99), pct(thdr, nh, 0.5),
           pct(thdr, nh, 0.99));
    for (int f = 1; f < F_N; f++)
        if (fails[f])
            printf("  failed: %s %d\n", fail_names[f], fails[f]);
    printf("{\"streams\":%d,\"ok\":%d,\"errors\":%d,\"events\":%ld,"
           "\"elapsed_ms\":%.0f,\"ttfe_p50_ms\":%.3f,\"ttfe_p90_ms\":%.3f,"
           "\"ttfe_p99_ms\":%.3f}\n",
           n, ok, errors, events, elapsed, pct(ttfe, nt, 0.5),
           pct(ttfe, nt, 0.9), pct(ttfe, nt, 0.99));
    free(ttfe);
    free(tconn);
    free(thdr);
    free(cs);
    free(request);
    close(ep);
    return errors ? 1 : 0;
}
