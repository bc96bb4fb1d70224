/*
 * h1client.c - the built-in HTTP/1.1 client for http:// upstreams.
 *
 * One struct h1conn per TCP connection, owned by its worker: either idle
 * in the worker's pool (newest first, still in the epoll set so a close by
 * the upstream is seen at once) or carrying one request (ctx->h1). A
 * request is written with one sendmsg (head + body); the response is read
 * into the connection's buffer and fed to h1parse.c, whose callbacks go to
 * upstream.c's upstream_take_* (the same ones libcurl's callbacks use).
 *
 * Nothing here reports an attempt's end from inside h1_start, h1_resume or
 * an MHD callback: work that must happen "now" goes on the worker's ready
 * queue, which the loop runs where no callback is on the stack.
 *
 * Like libcurl: a reused connection that closes before any byte of the
 * answer gets the request again on a new connection, as an attempt the
 * flow knows (upstream_may_resend); a connection is reused only after a
 * complete response that allows it, and not after being idle longer than
 * upstream.keepalive_s; at most upstream.max_connections idle per worker.
 */
#include "h1client.h"
#include "fault.h"
#include "h1parse.h"
#include "log.h"
#include "server.h"
#include "upstream.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#define H1_RBUF_MIN 16384
#define H1_RBUF_MAX (H1P_MAX_HEAD + H1P_MAX_LINE + 1024)

enum h1_state {
    H1_CONNECTING, /* connect(2) in progress */
    H1_SENDING,    /* the request is being written */
    H1_READING,    /* written; the response is being read */
    H1_IDLE        /* in the pool */
};

struct h1conn {
    struct ev_src src; /* first: retired and freed through the worker's
                          dead list like the other sources */
    struct worker *w;
    struct sluice_ctx *ctx;     /* the transfer carried, NULL when idle */
    struct h1conn *prev, *next; /* pool (newest first) */
    struct h1conn *ready_next;
    int ready;  /* on the worker's ready queue */
    int closed; /* fd closed, memory retired */
    enum h1_state state;
    int reused; /* carried a complete exchange before this one */
    int paused; /* a slow client: out of the epoll set (see conn_pause) */
    int registered;
    struct sockaddr_storage addr;
    socklen_t alen;
    uint64_t idle_since;
    struct timer timer;    /* connect / whole-attempt budget */
    uint64_t t_deadline;   /* whole attempt (0: none) */
    long connect_ms;       /* for the error message */
    uint64_t t_connect;    /* when connecting started */
    CURLcode pending;      /* a failure found in h1_start: reported */
    char pending_why[320]; /* from the ready queue */
    buf_t head;            /* the request line and headers */
    size_t sent;           /* bytes of head + body written */
    const char *body;      /* borrowed from the request */
    size_t body_len;
    struct h1p p;
    char *rbuf; /* bytes read, not yet consumed by the parser */
    size_t rlen, rcap;
    size_t got; /* response bytes read in this exchange */
};

static void conn_step(struct h1conn *c);
static void conn_read(struct h1conn *c);

/* ---- destination -------------------------------------------------------- */

static int port_parse(const char *p, const char *end, int *port)
{
    long v = 0;
    if (p == end || end - p > 5)
        return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int h1_dest_parse(const char *url, struct h1dest *d, const char **target)
{
    const char *a, *end, *h, *hend, *pp = NULL;
    char name[64];
    size_t alen;

    if (strncasecmp(url, "http://", 7))
        return 0;
    a = url + 7;
    end = a + strcspn(a, "/?#");
    alen = (size_t)(end - a);
    if (!alen || alen >= sizeof d->host || memchr(a, '@', alen))
        return 0;
    if (*a == '[') { /* [IPv6]:port */
        h = a + 1;
        hend = memchr(a, ']', alen);
        if (!hend)
            return 0;
        if (hend + 1 < end && hend[1] != ':')
            return 0;
        if (hend + 1 < end)
            pp = hend + 2;
    } else {
        h = a;
        hend = memchr(a, ':', alen);
        if (hend)
            pp = hend + 1;
        else
            hend = end;
    }
    d->port = 80;
    if (pp && port_parse(pp, end, &d->port) != 0)
        return 0;
    if (hend - h <= 0 || (size_t)(hend - h) >= sizeof name)
        return 0;
    memcpy(name, h, (size_t)(hend - h));
    name[hend - h] = '\0';
    memset(&d->addr, 0, sizeof d->addr);
    if (*a == '[') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&d->addr;
        if (inet_pton(AF_INET6, name, &s6->sin6_addr) != 1)
            return 0;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)d->port);
        d->alen = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&d->addr;
        if (!strcasecmp(name, "localhost"))
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, name, &s4->sin_addr) != 1)
            return 0;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)d->port);
        d->alen = sizeof *s4;
    }
    memcpy(d->host, a, alen);
    d->host[alen] = '\0';
    *target = end;
    return 1;
}

/* ---- the connection's watch in the worker's epoll set ------------------- */

/* Register (or change) the events c is watched for. -1 with errno. */
static int conn_watch(struct h1conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = &c->src};
    if (c->registered && c->src.events == events)
        return 0;
    if (!c->registered) {
        if (fault_hit(FAULT_EPOLL_ADD) ||
            epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->src.fd, &ev) != 0)
            return -1;
        c->registered = 1;
    } else if (fault_hit(FAULT_EPOLL_MOD) ||
               epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->src.fd, &ev) != 0) {
        return -1;
    }
    c->src.events = events;
    return 0;
}

/* ---- lists ------------------------------------------------------------- */

static void ready_add(struct h1conn *c)
{
    if (c->ready)
        return;
    c->ready = 1;
    c->ready_next = c->w->h1_ready;
    c->w->h1_ready = c;
}

static void ready_del(struct h1conn *c)
{
    if (!c->ready)
        return;
    for (struct h1conn **p = &c->w->h1_ready; *p; p = &(*p)->ready_next)
        if (*p == c) {
            *p = c->ready_next;
            break;
        }
    c->ready = 0;
}

static void pool_del(struct h1conn *c)
{
    struct worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else if (w->h1_idle == c)
        w->h1_idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else if (w->h1_idle_tail == c)
        w->h1_idle_tail = c->prev;
    c->prev = c->next = NULL;
    w->h1_nidle--;
}

/* Close c's socket and retire its memory (freed after the current batch
 * of events, which may still point at it). */
static void conn_close(struct h1conn *c)
{
    if (c->closed)
        return;
    if (c->state == H1_IDLE)
        pool_del(c);
    ready_del(c);
    worker_timer_del(c->w, &c->timer);
    c->closed = 1;
    if (c->src.fd >= 0)
        close(c->src.fd); /* drops the epoll registration */
    buf_release(&c->head);
    free(c->rbuf);
    c->rbuf = NULL;
    c->rlen = c->rcap = 0;
    c->src.kind = EV_DEAD;
    c->src.next_dead = c->w->dead;
    c->w->dead = &c->src;
}

static uint64_t keepalive_ms(const struct worker *w)
{
    /* libcurl's CURLOPT_MAXAGE_CONN took whole seconds, rounded up */
    return (uint64_t)((w->srv->cfg->keepalive_ms + 999) / 1000) * 1000;
}

/* Put c, done with its exchange, into the pool; the oldest goes when the
 * pool is full, and any too old to reuse at its tail. */
static void pool_put(struct h1conn *c)
{
    struct worker *w = c->w;
    uint64_t now = time_now_ms();
    if (conn_watch(c, EPOLLIN) != 0) {
        conn_close(c);
        return;
    }
    c->state = H1_IDLE;
    c->reused = 1;
    c->idle_since = now;
    c->prev = NULL;
    c->next = w->h1_idle;
    if (w->h1_idle)
        w->h1_idle->prev = c;
    else
        w->h1_idle_tail = c;
    w->h1_idle = c;
    w->h1_nidle++;
    while (w->h1_idle_tail &&
           (w->h1_nidle > w->srv->cfg->max_connections ||
            w->h1_idle_tail->idle_since + keepalive_ms(w) <= now))
        conn_close(w->h1_idle_tail);
}

/* The newest pooled connection to addr that is young enough, or NULL. */
static struct h1conn *pool_take(struct worker *w, const struct h1dest *d)
{
    uint64_t now = time_now_ms();
    struct h1conn *c = w->h1_idle, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->alen != d->alen || memcmp(&c->addr, &d->addr, d->alen))
            continue;
        if (c->idle_since + keepalive_ms(w) <= now) {
            conn_close(c);
            continue;
        }
        pool_del(c);
        return c;
    }
    return NULL;
}

/* ---- ending an exchange ------------------------------------------------- */

/* The attempt on c ends with `code` (why: the error text, or NULL): c goes
 * back to the pool when `reuse`, else it is closed; then the flow hears of
 * it (which may start the next attempt at once). */
static void conn_finish(struct h1conn *c, CURLcode code, const char *why,
                        int reuse)
{
    struct sluice_ctx *ctx = c->ctx;
    c->ctx = NULL;
    worker_timer_del(c->w, &c->timer);
    ready_del(c);
    if (reuse && !c->closed)
        pool_put(c);
    else
        conn_close(c);
    if (!ctx)
        return;
    ctx->h1 = NULL;
    if (why)
        snprintf(ctx->curl_err, sizeof ctx->curl_err, "%s", why);
    upstream_h1_done(ctx, code);
}

static void conn_fail_errno(struct h1conn *c, CURLcode code, const char *what,
                            int err)
{
    char why[200];
    snprintf(why, sizeof why, "%s: %s", what, strerror(err));
    conn_finish(c, code, why, 0);
}

/* ---- opening ---------------------------------------------------------- */

/* "Failed to connect to <address> port <port>: <why>", libcurl's words. */
static void connect_why(const struct h1conn *c, int err, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&c->addr;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&c->addr;
    if (c->addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
    else
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
    /* sin_port and sin6_port sit at the same offset */
    snprintf(out, len, "Failed to connect to %s port %d: %s", ip,
             ntohs(s4->sin_port), strerror(err));
}

/* A new connection to addr, connecting; failures (no socket, refused at
 * once, not watchable) are kept in c->pending and reported from the ready
 * queue. NULL only when out of memory. */
static struct h1conn *
conn_open(struct worker *w, const struct sockaddr_storage *addr, socklen_t alen)
{
    struct h1conn *c = calloc(1, sizeof *c);
    int one = 1;
    if (!c)
        return NULL;
    c->w = w;
    c->src.kind = EV_H1;
    c->src.owner = c;
    c->state = H1_CONNECTING;
    c->addr = *addr;
    c->alen = alen;
    timer_init(&c->timer, NULL, c);
    buf_init(&c->head);
    c->t_connect = time_now_ms();
    c->src.fd =
        socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->src.fd < 0) { /* out of descriptors: a failed connect */
        c->pending = CURLE_COULDNT_CONNECT;
        snprintf(c->pending_why, sizeof c->pending_why,
                 "cannot open a socket: %s", strerror(errno));
        return c;
    }
    setsockopt(c->src.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->src.fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (connect(c->src.fd, (const struct sockaddr *)addr, alen) != 0 &&
        errno != EINPROGRESS) {
        c->pending = CURLE_COULDNT_CONNECT;
        connect_why(c, errno, c->pending_why, sizeof c->pending_why);
        return c;
    }
    /* writable once connected (or refused) */
    if (conn_watch(c, EPOLLOUT) != 0) {
        c->pending = CURLE_RECV_ERROR;
        snprintf(c->pending_why, sizeof c->pending_why,
                 "cannot watch the upstream socket: %s", strerror(errno));
    }
    return c;
}

/* ---- the request ------------------------------------------------------- */

static int is_name(const char *line, size_t nlen, const char *name)
{
    return strlen(name) == nlen && !strncasecmp(line, name, nlen);
}

/* One line of the stage-built list, unless it is empty-valued ("Expect:"
 * is libcurl's "do not send") or one this client writes itself. */
static void head_add_line(buf_t *b, const char *line)
{
    const char *colon = strchr(line, ':'), *v;
    size_t nlen;
    if (!colon)
        return;
    nlen = (size_t)(colon - line);
    for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
        ;
    if (!*v || is_name(line, nlen, "Host") ||
        is_name(line, nlen, "Content-Length") ||
        is_name(line, nlen, "Transfer-Encoding") ||
        is_name(line, nlen, "Connection"))
        return;
    buf_puts(b, line);
    buf_append(b, "\r\n", 2);
}

/* The request target as sent: "/" first when the URL had no path, bytes
 * that may not appear in a request line percent-encoded, no fragment. */
static void head_add_target(buf_t *b, const char *t)
{
    static const char hex[] = "0123456789ABCDEF";
    if (*t != '/')
        buf_append(b, "/", 1);
    for (const char *run = t;; t++) {
        unsigned char ch = (unsigned char)*t;
        if (ch > 0x20 && ch < 0x7f && ch != '#')
            continue;
        buf_append(b, run, (size_t)(t - run));
        if (!ch || ch == '#')
            return;
        char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        buf_append(b, esc, 3);
        run = t + 1;
    }
}

static void head_build(buf_t *b, const struct sluice_ctx *ctx,
                       const struct h1dest *d, const char *target, int body)
{
    char num[24];
    buf_reset(b);
    buf_puts(b, ctx->method);
    buf_append(b, " ", 1);
    head_add_target(b, target);
    buf_puts(b, " HTTP/1.1\r\nHost: ");
    buf_puts(b, d->host);
    buf_puts(b, "\r\nUser-Agent: sluice/" SLUICE_VERSION "\r\n");
    for (const struct curl_slist *l = ctx->slist; l; l = l->next)
        head_add_line(b, l->data);
    if (body) {
        int n = snprintf(num, sizeof num, "%zu", ctx->up_body_len);
        buf_puts(b, "Content-Length: ");
        buf_append(b, num, (size_t)n);
        buf_append(b, "\r\n", 2);
    }
    buf_append(b, "\r\n", 2);
}

/* Write what is left of the request. 0: all written or waiting for room
 * (EPOLLOUT), -1: the connection broke (errno). */
static int conn_send(struct h1conn *c)
{
    size_t hl = c->head.len, total = hl + c->body_len;
    while (c->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (c->sent < hl)
            iov[n++] = (struct iovec){c->head.data + c->sent, hl - c->sent};
        if (c->body_len) {
            size_t off = c->sent > hl ? c->sent - hl : 0;
            iov[n++] =
                (struct iovec){(void *)(c->body + off), c->body_len - off};
        }
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t k = sendmsg(c->src.fd, &m, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return conn_watch(c, EPOLLIN | EPOLLOUT);
            return -1;
        }
        c->sent += (size_t)k;
    }
    c->state = H1_READING;
    return conn_watch(c, EPOLLIN);
}

/* ---- timers ----------------------------------------------------------- */

static void conn_timer_fired(struct timer *t)
{
    struct h1conn *c = t->arg;
    char why[160];
    uint64_t now = time_now_ms();
    if (!c->ctx)
        return;
    if (c->state == H1_CONNECTING)
        snprintf(why, sizeof why, "Connection timed out after %llu ms",
                 (unsigned long long)(now - c->t_connect));
    else
        snprintf(why, sizeof why,
                 "Operation timed out after %llu ms with %zu bytes received",
                 (unsigned long long)(now - c->ctx->attempt_t0), c->got);
    conn_finish(c, CURLE_OPERATION_TIMEDOUT, why, 0);
}

/* The connect budget while connecting, then the attempt's own (none for a
 * stream: the flow watches a stream's time itself). */
static void conn_arm(struct h1conn *c)
{
    uint64_t at = c->t_deadline;
    if (c->state == H1_CONNECTING) {
        uint64_t cat = c->t_connect + (uint64_t)c->connect_ms;
        if (!at || cat < at)
            at = cat;
    }
    c->timer.fn = conn_timer_fired;
    if (at)
        worker_timer_add(c->w, &c->timer, at);
    else
        worker_timer_del(c->w, &c->timer);
}

/* ---- the response ------------------------------------------------------ */

static int cb_header(void *u, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    struct h1conn *c = u;
    upstream_take_header(c->ctx, name, nlen, value, vlen);
    return 0;
}

static int cb_head(void *u, int status)
{
    struct h1conn *c = u;
    upstream_take_head(c->ctx, status);
    return 0;
}

static int cb_body(void *u, const char *data, size_t len)
{
    struct h1conn *c = u;
    return upstream_take_body(c->ctx, data, len);
}

static const struct h1p_cb parse_cb = {cb_header, cb_head, cb_body};

/* Out of the epoll set while a slow client catches up: a connection the
 * upstream closes meanwhile (EPOLLHUP, reported whatever the mask) must
 * not wake the loop again and again. */
static void conn_pause(struct h1conn *c)
{
    c->paused = 1;
    c->ctx->up_paused = 1;
    if (c->registered) {
        epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->src.fd, NULL);
        c->registered = 0;
    }
}

/* Feed the parser what the buffer holds. 1 when the exchange goes on
 * (read more), 0 when it ended or paused. */
static int conn_feed(struct h1conn *c)
{
    size_t used = 0;
    int r = h1p_feed(&c->p, c->rbuf, c->rlen, &used);
    if (c->closed || !c->ctx)
        return 0; /* a callback ended the attempt */
    if (used) {
        memmove(c->rbuf, c->rbuf + used, c->rlen - used);
        c->rlen -= used;
    }
    switch (r) {
    case H1P_MORE:
        return 1;
    case H1P_PAUSE:
        conn_pause(c);
        return 0;
    case H1P_DONE:
        conn_finish(c, CURLE_OK, NULL,
                    c->p.keep_alive && !c->rlen && c->state == H1_READING);
        return 0;
    case H1P_ABORT:
        conn_finish(c, CURLE_WRITE_ERROR, "Failure writing output", 0);
        return 0;
    default:
        conn_finish(c, CURLE_WEIRD_SERVER_REPLY,
                    c->p.err ? c->p.err : "malformed response", 0);
        return 0;
    }
}

/* The connection broke (EOF or an error) before the response ended. A
 * reused connection that gave no byte of an answer gets the request again
 * on a new connection, when the flow allows another send. */
static void conn_broken(struct h1conn *c, int eof, int err)
{
    struct sluice_ctx *ctx = c->ctx;
    if (!eof && c->state == H1_SENDING) {
        /* the upstream stopped reading (an early answer such as 413, then
         * a close): what it answered may be waiting to be read */
        c->state = H1_READING;
        if (conn_watch(c, EPOLLIN) != 0) {
            conn_fail_errno(c, CURLE_SEND_ERROR,
                            "the upstream connection broke", err);
            return;
        }
        conn_read(c);
        return;
    }
    if (eof && c->p.started) {
        int r = h1p_eof(&c->p);
        if (r == H1P_DONE) {
            conn_finish(c, CURLE_OK, NULL, 0);
            return;
        }
        conn_finish(c, CURLE_PARTIAL_FILE,
                    c->p.err ? c->p.err : "the upstream closed early", 0);
        return;
    }
    if (!c->p.started && c->reused) {
        if (upstream_may_resend(ctx) != 0) {
            conn_finish(c, CURLE_ABORTED_BY_CALLBACK,
                        "the upstream closed a reused connection; no attempt "
                        "left to send the request again",
                        0);
            return;
        }
        struct h1conn *n = conn_open(c->w, &c->addr, c->alen);
        if (!n) {
            conn_finish(c, CURLE_OUT_OF_MEMORY,
                        "no memory to send the request again", 0);
            return;
        }
        /* the request moves over: same head, body and budget */
        buf_t h = n->head;
        n->head = c->head;
        c->head = h;
        n->body = c->body;
        n->body_len = c->body_len;
        n->t_deadline = c->t_deadline;
        n->connect_ms = c->connect_ms;
        n->ctx = ctx;
        ctx->h1 = n;
        h1p_init(&n->p, &parse_cb, n, c->p.no_body);
        c->ctx = NULL;
        conn_close(c);
        conn_arm(n);
        if (n->pending)
            ready_add(n);
        return;
    }
    if (eof)
        conn_finish(c, CURLE_GOT_NOTHING, "Empty reply from server", 0);
    else
        conn_fail_errno(
            c, c->state == H1_SENDING ? CURLE_SEND_ERROR : CURLE_RECV_ERROR,
            "the upstream connection broke", err);
}

static int rbuf_room(struct h1conn *c)
{
    if (c->rlen < c->rcap)
        return 0;
    size_t cap = c->rcap ? c->rcap * 2 : H1_RBUF_MIN;
    if (cap > H1_RBUF_MAX)
        cap = H1_RBUF_MAX;
    if (cap <= c->rcap)
        return -1; /* the parser refuses what would need more */
    char *p = realloc(c->rbuf, cap);
    if (!p)
        return -1;
    c->rbuf = p;
    c->rcap = cap;
    return 0;
}

static void conn_read(struct h1conn *c)
{
    for (;;) {
        if (rbuf_room(c) != 0) {
            conn_finish(c, CURLE_OUT_OF_MEMORY,
                        "no memory for the upstream's response", 0);
            return;
        }
        size_t room = c->rcap - c->rlen;
        ssize_t n = recv(c->src.fd, c->rbuf + c->rlen, room, 0);
        if (n > 0) {
            c->rlen += (size_t)n;
            c->got += (size_t)n;
            if (!conn_feed(c) || (size_t)n < room)
                return;
            continue;
        }
        if (n == 0) {
            conn_broken(c, 1, 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_broken(c, 0, errno);
        return;
    }
}

/* ---- steps ------------------------------------------------------------ */

/* The connect finished (writable): its result, then the request. */
static void conn_connected(struct h1conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->src.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        char why[200];
        connect_why(c, err, why, sizeof why);
        conn_finish(c, CURLE_COULDNT_CONNECT, why, 0);
        return;
    }
    c->state = H1_SENDING;
    conn_arm(c);
    if (conn_send(c) != 0)
        conn_broken(c, 0, errno);
}

static void conn_step(struct h1conn *c)
{
    if (c->pending) {
        CURLcode code = c->pending;
        c->pending = CURLE_OK;
        conn_finish(c, code, c->pending_why, 0);
        return;
    }
    switch (c->state) {
    case H1_SENDING:
        if (conn_send(c) != 0)
            conn_broken(c, 0, errno);
        else if (c->state == H1_READING && c->rlen)
            conn_feed(c); /* an early answer was read while sending */
        return;
    case H1_READING:
        /* resumed after a pause: what the buffer holds first */
        if (c->rlen && !conn_feed(c))
            return;
        if (conn_watch(c, EPOLLIN) != 0) {
            conn_fail_errno(c, CURLE_RECV_ERROR,
                            "cannot watch the upstream socket", errno);
            return;
        }
        conn_read(c);
        return;
    default:
        return;
    }
}

void h1_run_ready(struct worker *w)
{
    while (w->h1_ready) {
        struct h1conn *c = w->h1_ready;
        w->h1_ready = c->ready_next;
        c->ready = 0;
        if (!c->closed && c->ctx)
            conn_step(c);
    }
}

void h1_event(struct worker *w, struct ev_src *src, uint32_t events)
{
    struct h1conn *c = src->owner;
    (void)w;
    if (c->closed)
        return;
    if (c->state == H1_IDLE || !c->ctx) {
        conn_close(c); /* the upstream closed it, or sent what no one asked */
        return;
    }
    if (c->paused)
        return; /* out of the set: an event from before the pause */
    if (c->state == H1_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(c);
        return;
    }
    if (c->state == H1_SENDING && (events & (EPOLLOUT | EPOLLERR))) {
        if (conn_send(c) != 0) {
            conn_broken(c, 0, errno);
            return;
        }
    }
    if (!c->closed && c->ctx && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        conn_read(c);
}

/* ---- the request's side -------------------------------------------------- */

int h1_start(struct sluice_ctx *ctx, const struct h1dest *d, const char *target,
             long timeout_ms, long connect_ms)
{
    struct worker *w = ctx->w;
    int body = strcmp(ctx->method, "GET") && strcmp(ctx->method, "HEAD");
    struct h1conn *c = pool_take(w, d);
    if (!c && !(c = conn_open(w, &d->addr, d->alen)))
        return -1;
    head_build(&c->head, ctx, d, target, body);
    if (c->head.oom) {
        conn_close(c);
        return -1;
    }
    c->ctx = ctx;
    ctx->h1 = c;
    c->body = body ? ctx->up_body : NULL;
    c->body_len = body ? ctx->up_body_len : 0;
    c->sent = 0;
    c->got = 0;
    c->rlen = 0;
    c->paused = 0;
    c->connect_ms = connect_ms;
    c->t_deadline = timeout_ms ? time_now_ms() + (uint64_t)timeout_ms : 0;
    h1p_init(&c->p, &parse_cb, c, !strcmp(ctx->method, "HEAD"));
    if (c->state == H1_IDLE) {
        c->state = H1_SENDING; /* written from the ready queue */
        ready_add(c);
    } else if (c->pending) {
        ready_add(c);
    }
    conn_arm(c);
    return 0;
}

void h1_abort(struct sluice_ctx *ctx)
{
    struct h1conn *c = ctx->h1;
    if (!c)
        return;
    ctx->h1 = NULL;
    c->ctx = NULL;
    conn_close(c); /* mid-exchange: never reusable */
}

void h1_resume(struct sluice_ctx *ctx)
{
    struct h1conn *c = ctx->h1;
    if (!c || !c->paused)
        return;
    c->paused = 0;
    ready_add(c);
}

void h1_pool_shrink(struct worker *w)
{
    for (struct h1conn *c = w->h1_idle; c; c = c->next) {
        free(c->rbuf); /* empty when pooled; read() allocates it again */
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

void h1_pool_free(struct worker *w)
{
    while (w->h1_idle)
        conn_close(w->h1_idle);
}
