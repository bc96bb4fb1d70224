/*
 * raw_upstream.h - a scripted HTTP/1.x upstream inside the test process, for
 * tests that need bytes the mock upstream (libmicrohttpd) will not write:
 * chunk extensions and trailers, bare-LF heads, HTTP/1.0, close-delimited
 * and truncated bodies, garbage status lines, answers in 1-byte writes.
 *
 * One thread polls a loopback listening socket on an ephemeral port and
 * every connection it accepted. For each request (head, then a
 * Content-Length body) it records the raw bytes, asks the test's pick
 * function for the answer, writes it in the pieces and with the pauses the
 * answer says, then keeps the connection for the next request (keep-alive)
 * or closes it. Connections accepted are counted. Every wait is bounded
 * (poll with timeouts); ru_stop() ends the thread within ~100 ms.
 *
 * Header-only (the test CMake links each test_*.c with harness.c only);
 * one instance per test process, like the harness. Not thread-safe beyond
 * what it says: the recorded requests are read by the test thread while the
 * upstream thread appends (a record never changes once counted).
 */
#ifndef SLUICE_RAW_UPSTREAM_H
#define SLUICE_RAW_UPSTREAM_H

#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define RU_MAX_CONNS   64
#define RU_MAX_REQS    1024
#define RU_MAX_REQUEST (8u << 20) /* a request larger than this: dropped */

/* One request as it arrived (immutable once counted). */
typedef struct ru_req {
    int conn;        /* 1-based number of the connection it came on */
    char *head;      /* request line and headers, NUL-ended, raw */
    size_t head_len; /* up to and including the blank line */
    char *body;      /* the Content-Length bytes, NUL-ended */
    size_t body_len;
    long content_length; /* -1: no Content-Length header */
} ru_req;

/* The answer to one request. data stays the test's (borrowed until the
 * write ends). Writes are cut at each offset of cuts[] and every `piece`
 * bytes (0: no such cut), with delay_ms between two writes. */
typedef struct ru_reply {
    const char *data;
    size_t len;
    const size_t *cuts; /* ascending; may be NULL */
    size_t ncuts;
    size_t piece;
    int delay_ms;
    int close;     /* close the connection once written */
    int drop_next; /* keep it, but close it on its next request, which is
                      recorded and never answered (an upstream closing an
                      idle connection just as it is reused) */
} ru_reply;

/* Called on the upstream thread for each request; fills *out. */
typedef void (*ru_pick_fn)(void *arg, const ru_req *req, ru_reply *out);

struct ru_conn {
    int fd; /* -1: free slot */
    int id;
    int drop_next; /* the next request closes it unanswered */
    char *buf;     /* bytes read and not yet a whole request */
    size_t len, cap;
};

static struct {
    int lfd, port;
    pthread_t thread;
    int running;
    atomic_int stop;
    ru_pick_fn pick;
    void *arg;
    pthread_mutex_t mu;
    struct ru_conn conns[RU_MAX_CONNS];
    int accepted; /* under mu */
    ru_req reqs[RU_MAX_REQS];
    size_t nreqs; /* under mu */
} RU = {.lfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static inline void ru_conn_close(struct ru_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* Write all of data (the socket is non-blocking): -1 when the peer is gone
 * or takes nothing for 10 s. */
static inline int ru_send_all(int fd, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 10000) <= 0)
            return -1;
    }
    return 0;
}

static inline int ru_write_reply(int fd, const ru_reply *r)
{
    size_t off = 0, ci = 0;
    while (off < r->len) {
        size_t end = r->len;
        if (r->piece && off + r->piece < end)
            end = off + r->piece;
        while (ci < r->ncuts && r->cuts[ci] <= off)
            ci++;
        if (ci < r->ncuts && r->cuts[ci] < end)
            end = r->cuts[ci];
        if (ru_send_all(fd, r->data + off, end - off) != 0)
            return -1;
        off = end;
        if (off < r->len && r->delay_ms > 0)
            h_sleep_ms(r->delay_ms);
    }
    return 0;
}

/* The value of header `name` in a raw head, copied into out (cap bytes,
 * surrounding spaces and tabs removed); NULL when absent. */
static inline const char *ru_header(const char *head, const char *name,
                                    char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *line = strchr(head, '\n');
    while (line && line[1]) {
        line++;
        const char *eol = strchr(line, '\n');
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && line[nl] == ':' && !strncasecmp(line, name, nl)) {
            const char *v = line + nl + 1, *e = line + ll;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
        line = eol;
    }
    return NULL;
}

/* How many times header `name` occurs in a raw head. */
static inline int ru_header_count(const char *head, const char *name)
{
    size_t nl = strlen(name);
    int n = 0;
    for (const char *l = strchr(head, '\n'); l && l[1]; l = strchr(l, '\n')) {
        l++;
        if (!strncasecmp(l, name, nl) && l[nl] == ':')
            n++;
    }
    return n;
}

/* A whole request at the start of c->buf: record it, answer it, drop its
 * bytes. 0: done (or not whole yet: *more set); -1: close the connection. */
static inline int ru_serve_one(struct ru_conn *c, int *more)
{
    *more = 0;
    char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    size_t head_len = end ? (size_t)(end - c->buf) + 4 : 0;
    if (!end) {
        *more = 1;
        return c->len > 65536 ? -1 : 0;
    }
    char saved = c->buf[head_len - 1];
    c->buf[head_len - 1] = '\0';
    char v[32];
    long cl = ru_header(c->buf, "Content-Length", v, sizeof v) ? atol(v) : -1;
    c->buf[head_len - 1] = saved;
    if (cl > (long)RU_MAX_REQUEST)
        return -1;
    size_t blen = cl > 0 ? (size_t)cl : 0;
    if (c->len < head_len + blen) {
        *more = 1;
        return 0;
    }
    ru_req r = {.conn = c->id,
                .head_len = head_len,
                .body_len = blen,
                .content_length = cl};
    r.head = strndup(c->buf, head_len);
    r.body = malloc(blen + 1);
    if (!r.head || !r.body) {
        free(r.head);
        free(r.body);
        return -1;
    }
    memcpy(r.body, c->buf + head_len, blen);
    r.body[blen] = '\0';
    pthread_mutex_lock(&RU.mu);
    int kept = RU.nreqs < RU_MAX_REQS;
    if (kept)
        RU.reqs[RU.nreqs++] = r;
    pthread_mutex_unlock(&RU.mu);
    ru_reply rep;
    memset(&rep, 0, sizeof rep);
    if (!c->drop_next)
        RU.pick(RU.arg, &r, &rep);
    if (!kept) {
        free(r.head);
        free(r.body);
    }
    if (c->drop_next)
        return -1;
    memmove(c->buf, c->buf + head_len + blen, c->len - head_len - blen);
    c->len -= head_len + blen;
    if (ru_write_reply(c->fd, &rep) != 0 || rep.close)
        return -1;
    c->drop_next = rep.drop_next;
    return 0;
}

static inline void ru_accept(void)
{
    int fd = accept4(RU.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int one = 1; /* each piece its own segment */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < RU_MAX_CONNS; i++) {
        if (RU.conns[i].fd < 0) {
            RU.conns[i].fd = fd;
            RU.conns[i].drop_next = 0;
            pthread_mutex_lock(&RU.mu);
            RU.conns[i].id = ++RU.accepted;
            pthread_mutex_unlock(&RU.mu);
            return;
        }
    }
    close(fd); /* full: the test will see the failure */
}

/* Read what conn i has; serve every whole request in it. */
static inline void ru_read(struct ru_conn *c)
{
    if (c->cap - c->len < 4096) {
        size_t nc = c->cap ? c->cap * 2 : 16384;
        char *nb = nc <= RU_MAX_REQUEST + 65536 ? realloc(c->buf, nc) : NULL;
        if (!nb) {
            ru_conn_close(c);
            return;
        }
        c->buf = nb;
        c->cap = nc;
    }
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) {
        ru_conn_close(c);
        return;
    }
    c->len += (size_t)r;
    int more = 0;
    while (!more && c->fd >= 0)
        if (ru_serve_one(c, &more) != 0)
            ru_conn_close(c);
}

static inline void *ru_main(void *unused)
{
    (void)unused;
    while (!atomic_load(&RU.stop)) {
        struct pollfd p[RU_MAX_CONNS + 1];
        int idx[RU_MAX_CONNS + 1], n = 0;
        p[n] = (struct pollfd){.fd = RU.lfd, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < RU_MAX_CONNS; i++)
            if (RU.conns[i].fd >= 0) {
                p[n] = (struct pollfd){.fd = RU.conns[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!p[k].revents)
                continue;
            if (idx[k] < 0)
                ru_accept();
            else if (RU.conns[idx[k]].fd >= 0)
                ru_read(&RU.conns[idx[k]]);
        }
    }
    for (int i = 0; i < RU_MAX_CONNS; i++)
        ru_conn_close(&RU.conns[i]);
    return NULL;
}

/* Listen on 127.0.0.1 (an ephemeral port) and start the thread; pick
 * chooses each answer. Returns the port, or fails the test. */
static inline int ru_start(ru_pick_fn pick, void *arg)
{
    ck_assert_msg(!RU.running, "raw upstream started twice");
    RU.pick = pick;
    RU.arg = arg;
    atomic_store(&RU.stop, 0);
    for (int i = 0; i < RU_MAX_CONNS; i++)
        RU.conns[i].fd = -1;
    RU.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_msg(RU.lfd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    ck_assert_msg(bind(RU.lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
                      listen(RU.lfd, 64) == 0 &&
                      getsockname(RU.lfd, (struct sockaddr *)&a, &al) == 0,
                  "raw upstream: bind/listen: %s", strerror(errno));
    RU.port = ntohs(a.sin_port);
    ck_assert_msg(pthread_create(&RU.thread, NULL, ru_main, NULL) == 0,
                  "raw upstream: pthread_create");
    RU.running = 1;
    return RU.port;
}

/* Stop the thread, close every connection, forget the records. */
static inline void ru_stop(void)
{
    if (!RU.running)
        return;
    atomic_store(&RU.stop, 1);
    pthread_join(RU.thread, NULL);
    RU.running = 0;
    close(RU.lfd);
    RU.lfd = -1;
    pthread_mutex_lock(&RU.mu);
    for (size_t i = 0; i < RU.nreqs; i++) {
        free(RU.reqs[i].head);
        free(RU.reqs[i].body);
    }
    RU.nreqs = 0;
    RU.accepted = 0;
    pthread_mutex_unlock(&RU.mu);
}

/* Requests recorded so far; connections accepted so far. */
static inline size_t ru_nreqs(void)
{
    pthread_mutex_lock(&RU.mu);
    size_t n = RU.nreqs;
    pthread_mutex_unlock(&RU.mu);
    return n;
}

static inline int ru_accepted(void)
{
    pthread_mutex_lock(&RU.mu);
    int n = RU.accepted;
    pthread_mutex_unlock(&RU.mu);
    return n;
}

/* Record i (i < ru_nreqs()); borrowed until ru_stop. */
static inline const ru_req *ru_get(size_t i)
{
    pthread_mutex_lock(&RU.mu);
    const ru_req *r = i < RU.nreqs ? &RU.reqs[i] : NULL;
    pthread_mutex_unlock(&RU.mu);
    return r;
}

#endif
