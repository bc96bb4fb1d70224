/*
 * worker.c - the per-core event loop. One epoll set carries:
 *   - the MHD daemon's own epoll fd (MHD_USE_EPOLL, no internal thread),
 *   - libcurl's sockets (CURLMOPT_SOCKETFUNCTION) and timeout,
 *   - the worker's timers (retry back-off, stream deadlines),
 *   - the sockets of suspended clients, watched for hang-up only,
 *   - an eventfd to be told to stop.
 * Nothing here blocks except epoll_wait.
 */
#include "worker.h"
#include "fault.h"
#include "flow.h"
#include "guard.h"
#include "h1client.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "upstream.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define WORKER_EASY_POOL_MAX 1024
#define WORKER_FLUSH_MS      1000 /* after the grace: last answers out */
#define WORKER_TRIM_PEAK     64   /* requests alive at once: a spike */

/* ---- libcurl socket API -------------------------------------------- */

/* Parking: when libcurl stops watching a socket (its transfer ended and
 * the connection went back to the pool), the socket stays in the epoll set
 * and its source is kept by fd, so the next transfer on that connection
 * costs one epoll_ctl MOD instead of a DEL now and an ADD then.
 * libcurl closes its sockets through curl_close_cb, which forgets the
 * parked source (close(2) drops the registration); should one be closed
 * another way, reusing its fd number finds the registration gone (ENOENT)
 * and adds it again. If a parked socket
 * reports anything (the upstream closed the idle connection), it is
 * removed from the set then: libcurl finds out on its own when it reuses
 * or prunes the connection, as before. */
static void src_retire(struct worker *w, struct ev_src *src)
{
    src->kind = EV_DEAD; /* an event of this batch may still point at it */
    src->next_dead = w->dead;
    w->dead = src;
}

static int park(struct worker *w, struct ev_src *src)
{
    size_t fd = (size_t)src->fd;
    if (fd >= w->nparked) {
        size_t n = w->nparked ? w->nparked : 64;
        while (n <= fd)
            n *= 2;
        struct ev_src **v = realloc(w->parked, n * sizeof(*v));
        if (!v)
            return -1;
        memset(v + w->nparked, 0, (n - w->nparked) * sizeof(*v));
        w->parked = v;
        w->nparked = n;
    }
    if (w->parked[fd]) /* cannot happen: one socket, one source */
        src_retire(w, w->parked[fd]);
    src->kind = EV_PARKED;
    w->parked[fd] = src;
    return 0;
}

static struct ev_src *unpark(struct worker *w, int fd)
{
    if (fd < 0 || (size_t)fd >= w->nparked || !w->parked[fd])
        return NULL;
    struct ev_src *src = w->parked[fd];
    w->parked[fd] = NULL;
    return src;
}

/* A parked socket woke up: take it out of the set (see above). */
static void parked_event(struct worker *w, struct ev_src *src)
{
    if (unpark(w, src->fd) == src)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, src->fd, NULL);
    src_retire(w, src);
}

/* libcurl closes its sockets here (CURLOPT_CLOSESOCKETFUNCTION). */
static int curl_close_cb(void *clientp, curl_socket_t s)
{
    struct worker *w = clientp;
    struct ev_src *src = unpark(w, s);
    if (src)
        src_retire(w, src);
    return close(s);
}

/* The socket of transfer e cannot be watched (errno says why): it would
 * wait for events that never come. Returning -1 to libcurl instead would
 * mark the whole multi handle dead (libcurl >= 7.84), failing every
 * transfer of the worker. The attempt is listed here and failed once the
 * libcurl call returns (worker_fail_lost). */
static void sock_lost(struct worker *w, CURL *e)
{
    struct sluice_ctx *ctx = NULL;
    int err = errno;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&ctx);
    if (!ctx || ctx->easy != e || ctx->lost_easy)
        return; /* no request behind it, or already listed */
    ctx->lost_easy = e;
    ctx->lost_errno = err;
    ctx->lost_next = w->lost;
    w->lost = ctx;
}

/* Fail the attempts sock_lost listed: a 502 the stages see (on_response)
 * like any broken attempt, logged once with the reason. */
static void worker_fail_lost(struct worker *w)
{
    while (w->lost) {
        struct sluice_ctx *ctx = w->lost;
        CURL *e = ctx->lost_easy;
        w->lost = ctx->lost_next;
        ctx->lost_next = NULL;
        ctx->lost_easy = NULL;
        if (ctx->easy == e) {
            char why[160];
            snprintf(why, sizeof why, "cannot watch the upstream socket: %s",
                     strerror(ctx->lost_errno));
            upstream_fail(ctx, why);
        }
    }
}

void worker_forget_lost(struct worker *w, struct sluice_ctx *ctx)
{
    for (struct sluice_ctx **p = &w->lost; *p; p = &(*p)->lost_next)
        if (*p == ctx) {
            *p = ctx->lost_next;
            ctx->lost_next = NULL;
            ctx->lost_easy = NULL;
            return;
        }
}

static int curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp,
                        void *sockp)
{
    struct worker *w = userp;
    struct ev_src *src = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (src) {
            curl_multi_assign(w->multi, s, NULL);
            if (park(w, src) != 0) {
                epoll_ctl(w->ep, EPOLL_CTL_DEL, s, NULL);
                src_retire(w, src);
            }
        }
        return 0;
    }
    struct epoll_event ev = {0};
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    if (!src && (src = unpark(w, s))) {
        /* always a MOD here: should a socket ever be closed behind
         * curl_close_cb's back, ENOENT tells, and it is added anew */
        src->kind = EV_CURL;
        src->events = ev.events;
        ev.data.ptr = src;
        if (fault_hit(FAULT_EPOLL_ADD) ||
            (epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev) != 0 &&
             (errno != ENOENT ||
              epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev) != 0))) {
            int err = errno;
            (void)epoll_ctl(w->ep, EPOLL_CTL_DEL, s, NULL);
            src_retire(w, src);
            errno = err;
            sock_lost(w, e);
            return 0;
        }
        curl_multi_assign(w->multi, s, src);
        return 0;
    }
    if (!src) {
        src = calloc(1, sizeof(*src));
        if (!src)
            return -1;
        src->kind = EV_CURL;
        src->fd = s;
        src->owner = w;
        src->events = ev.events;
        ev.data.ptr = src;
        if (fault_hit(FAULT_EPOLL_ADD) ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, s, &ev) != 0) {
            sock_lost(w, e);
            free(src);
            return 0;
        }
        curl_multi_assign(w->multi, s, src);
        return 0;
    }
    if (src->events == ev.events)
        return 0;
    src->events = ev.events;
    ev.data.ptr = src;
    if (fault_hit(FAULT_EPOLL_MOD) ||
        epoll_ctl(w->ep, EPOLL_CTL_MOD, s, &ev) != 0)
        sock_lost(w, e);
    return 0;
}

static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    struct worker *w = userp;
    (void)m;
    w->curl_at = timeout_ms < 0 ? 0 : time_now_ms() + (uint64_t)timeout_ms;
    return 0;
}

static void curl_drain_done(struct worker *w)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(w->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            upstream_done(msg->easy_handle, msg->data.result);
}

static void curl_socket_event(struct worker *w, int fd, uint32_t events)
{
    int flags = 0, running;
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(w->multi, fd, flags, &running);
    worker_fail_lost(w);
    curl_drain_done(w);
}

/* libcurl's timeout, when due: new transfers start here, stalled ones
 * time out. */
static void curl_run_timeout(struct worker *w, uint64_t now)
{
    int running;
    if (!w->curl_at || w->curl_at > now)
        return;
    w->curl_at = 0;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    worker_fail_lost(w);
    curl_drain_done(w);
}

/* ---- easy handle pool ---------------------------------------------- */

CURL *worker_easy_get(struct worker *w)
{
    CURL *e;
    if (w->npool) {
        e = w->easy_pool[--w->npool];
        curl_easy_reset(e);
    } else {
        e = curl_easy_init();
        if (!e)
            return NULL;
        /* kept across curl_easy_reset: a new TLS connection resumes the
         * session of an earlier one instead of a full handshake */
        if (w->share)
            curl_easy_setopt(e, CURLOPT_SHARE, w->share);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, curl_close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
    return e;
}

void worker_easy_put(struct worker *w, CURL *e)
{
    if (w->npool == w->cappool && w->cappool < WORKER_EASY_POOL_MAX) {
        size_t cap = w->cappool ? w->cappool * 2 : 32;
        CURL **v = realloc(w->easy_pool, cap * sizeof(*v));
        if (v) {
            w->easy_pool = v;
            w->cappool = cap;
        }
    }
    if (w->npool < w->cappool)
        w->easy_pool[w->npool++] = e;
    else
        curl_easy_cleanup(e);
}

/* The upstream URL of chat completions, as text and parsed: libcurl then
 * skips parsing it again for every transfer (CURLOPT_CURLU). The base URL
 * cannot change while running (a reload warns and keeps it). */
static int worker_url_init(struct worker *w, const char *base_url)
{
    size_t n = strlen(base_url) + sizeof "/chat/completions";
    w->chat_url = malloc(n);
    if (!w->chat_url)
        return -1;
    snprintf(w->chat_url, n, "%s/chat/completions", base_url);
    w->chat_curlu = curl_url();
    if (w->chat_curlu && curl_url_set(w->chat_curlu, CURLUPART_URL, w->chat_url,
                                      0) != CURLUE_OK) {
        curl_url_cleanup(w->chat_curlu); /* let CURLOPT_URL report it */
        w->chat_curlu = NULL;
    }
    return 0;
}

/* ---- client hang-up watch ------------------------------------------ */

void worker_watch_client(struct worker *w, struct sluice_ctx *ctx)
{
    if (ctx->watching || ctx->client_gone)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ctx->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    ctx->watch.kind = EV_CLIENT;
    ctx->watch.fd = ci->connect_fd;
    /* the connection's watch (guard.c), when it is tracked */
    if (guard_watch(w, ctx->conn, ctx->watch.fd)) {
        ctx->watching = 2;
        return;
    }
    /* otherwise one for this request, until it completes: a stream is
     * suspended and resumed for every event, and re-registering each time
     * cost two epoll_ctl calls per event. Edge-triggered, so a peer that
     * half-closed with bytes still unread does not wake the loop again and
     * again. */
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET,
                             .data.ptr = &ctx->watch};
    /* Without the watch (ADD failed: out of memory or watches), a client
     * that leaves while its request waits is noticed when its answer is
     * written instead of at once: the request still ends, only later. */
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, ctx->watch.fd, &ev) == 0)
        ctx->watching = 1;
}

void worker_unwatch_client(struct worker *w, struct sluice_ctx *ctx)
{
    /* fails only when the socket is already closed (EBADF): then the kernel
     * dropped it from the set itself */
    if (ctx->watching == 1)
        (void)epoll_ctl(w->ep, EPOLL_CTL_DEL, ctx->watch.fd, NULL);
    ctx->watching = 0;
}

void worker_client_event(struct worker *w, struct sluice_ctx *ctx,
                         uint32_t events)
{
    (void)w;
    /* EPOLLRDHUP alone is the peer's FIN: a client that shut its write
     * side after sending (shutdown(SHUT_WR), `curl -T -`, some proxies)
     * still reads, and is served. A FIN cannot tell that from a full
     * close; a closed client is found when the answer is written (a
     * stream's next event or heartbeat draws the reset: EPOLLHUP or
     * EPOLLERR), so a non-streamed request of a vanished client runs
     * its upstream call to the end. */
    if (!(events & (EPOLLHUP | EPOLLERR)))
        return;
    log_msg(LOG_DEBUG, "core", "client of %s went away", ctx->id);
    flow_client_gone(ctx);
}

/* ---- timers ----------------------------------------------------------- */

int worker_timer_reserve(struct worker *w)
{
    if (fault_hit(FAULT_TIMER_RESERVE))
        return -1;
    return timer_heap_reserve(&w->timers, 1 + 3 * (size_t)w->active);
}

void worker_timer_add(struct worker *w, struct timer *t, uint64_t at)
{
    /* cannot fail: see worker_timer_reserve in worker.h */
    if (timer_heap_add(&w->timers, t, at) != 0)
        log_error("worker %d: a timer was armed without reserved room (a "
                  "bug): it will not fire",
                  w->id);
}

void worker_timer_del(struct worker *w, struct timer *t)
{
    timer_heap_del(&w->timers, t);
}

static int loop_timeout(struct worker *w)
{
    uint64_t now = time_now_ms(), next = timer_heap_next(&w->timers);
    MHD_UNSIGNED_LONG_LONG mt;
    if (w->mhd_resumed)
        return 0; /* resumed inside the last MHD_run: run it again */
    if (w->curl_at && w->curl_at < next)
        next = w->curl_at;
    w->mhd_at = UINT64_MAX;
    if (MHD_get_timeout(w->mhd, &mt) == MHD_YES) {
        w->mhd_at = now + mt;
        if (w->mhd_at < next)
            next = w->mhd_at;
    }
    if (w->admin_mhd && MHD_get_timeout(w->admin_mhd, &mt) == MHD_YES &&
        now + mt < next)
        next = now + mt;
    if (atomic_load(&w->stop) && now + 100 < next)
        next = now + 100;
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

static void worker_free_dead(struct worker *w)
{
    while (w->dead) {
        struct ev_src *d = w->dead;
        w->dead = d->next_dead;
        free(d);
    }
}

/* ---- memory after a spike -------------------------------------------- */

void worker_trim_after_spike(struct worker *w)
{
    uint64_t now;
    if (w->peak_active < WORKER_TRIM_PEAK)
        return;
    now = time_now_ms();
    if (now < w->trimmed_at + 1000)
        return; /* kept: the next time the worker empties trims */
    w->trimmed_at = now;
    w->peak_active = 0;
    h1_pool_shrink(w);
    malloc_trim(0);
}

/* ---- calls from other threads -------------------------------------- */

int worker_post(struct worker *w, void (*fn)(void *arg), void *arg)
{
    struct worker_msg *m = malloc(sizeof(*m));
    uint64_t one = 1;
    if (!m)
        return -1;
    m->fn = fn;
    m->arg = arg;
    pthread_mutex_lock(&w->post_lock);
    m->next = w->posted;
    w->posted = m;
    pthread_mutex_unlock(&w->post_lock);
    ssize_t r = write(w->wake_fd, &one, sizeof one);
    (void)r;
    return 0;
}

static void worker_run_posted(struct worker *w)
{
    pthread_mutex_lock(&w->post_lock);
    struct worker_msg *m = w->posted, *rev = NULL;
    w->posted = NULL;
    pthread_mutex_unlock(&w->post_lock);
    while (m) { /* oldest first */
        struct worker_msg *next = m->next;
        m->next = rev;
        rev = m;
        m = next;
    }
    while (rev) {
        struct worker_msg *next = rev->next;
        rev->fn(rev->arg);
        free(rev);
        rev = next;
    }
}

/* ---- the loop ------------------------------------------------------- */

/* Stopping (SIGTERM): accept nothing new, let requests in flight finish
 * within server.shutdown_grace_s; then end what still runs honestly (an
 * error event for a stream, a 503 for a waiting request) and give those
 * answers WORKER_FLUSH_MS to reach the clients. Returns 1 when the loop
 * may end. */
static int worker_handle_stop(struct worker *w, uint64_t *drain_until,
                              int *ended)
{
    int how = atomic_load(&w->stop);
    if (!how)
        return 0;
    uint64_t now = time_now_ms();
    if (!*drain_until) {
        MHD_quiesce_daemon(w->mhd);
        if (w->admin_mhd)
            MHD_quiesce_daemon(w->admin_mhd);
        *drain_until =
            now + (how == 2 ? 0 : (uint64_t)w->srv->cfg->shutdown_grace_ms);
    }
    if (w->active == 0 || how == 2)
        return 1;
    if (now < *drain_until)
        return 0;
    if (*ended)
        return 1; /* the flush window is over too */
    *ended = 1;
    for (struct sluice_ctx *c = w->live; c; c = c->next)
        flow_shutdown(c);
    *drain_until = now + WORKER_FLUSH_MS;
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[128];
    uint64_t drain_until = 0;
    int ended = 0;

    for (;;) {
        if (worker_handle_stop(w, &drain_until, &ended))
            break;
        int n = epoll_wait(w->ep, evs, 128, loop_timeout(w));
        if (n < 0 && errno != EINTR) {
            log_error("worker %d: epoll_wait: %s", w->id, strerror(errno));
            break;
        }
        int mhd_ready = 0, woken = 0;
        for (int i = 0; i < n; i++) {
            struct ev_src *src = evs[i].data.ptr;
            switch (src->kind) {
            case EV_DEAD: /* removed by an earlier event of this batch */
                break;
            case EV_MHD:
                mhd_ready = 1;
                break;
            case EV_WAKE: {
                uint64_t v;
                ssize_t r = read(w->wake_fd, &v, sizeof v);
                (void)r;
                woken = 1;
                break;
            }
            case EV_CURL:
                curl_socket_event(w, src->fd, evs[i].events);
                break;
            case EV_PARKED:
                parked_event(w, src);
                break;
            case EV_H1:
                h1_event(w, src, evs[i].events);
                break;
            case EV_CLIENT:
                worker_client_event(w, src->owner, evs[i].events);
                mhd_ready = 1;
                break;
            case EV_CONN:
                guard_conn_event(w, src->owner, evs[i].events);
                mhd_ready = 1;
                break;
            }
        }
        worker_free_dead(w);
        /* posted calls may free requests: never while events of this
         * batch may still point into them */
        if (woken)
            worker_run_posted(w);
        uint64_t now = time_now_ms();
        curl_run_timeout(w, now);
        timer_heap_run(&w->timers, now);
        h1_run_ready(w); /* attempts started by those */
        /* MHD_run costs a syscall (its own epoll_wait): only when MHD has
         * something to do: socket events, a resumed connection, a due
         * timeout (also 0 when it holds unprocessed data), or stopping */
        if (mhd_ready || w->mhd_resumed || now >= w->mhd_at ||
            atomic_load(&w->stop)) {
            w->mhd_resumed = 0;
            MHD_run(w->mhd);
        }
        /* a handler in MHD_run just added a transfer and libcurl asked to
         * be called at once: start it now, not after another epoll_wait;
         * if that (or a handler) resumed a connection, let MHD see it now
         * (a resume does not wake epoll_wait by itself) */
        curl_run_timeout(w, time_now_ms());
        h1_run_ready(w);
        if (w->mhd_resumed) {
            w->mhd_resumed = 0;
            MHD_run(w->mhd);
        }
        if (w->admin_mhd)
            MHD_run(w->admin_mhd); /* rare traffic: every iteration */
        /* a transfer removed in a handler can make libcurl change another
         * socket's watch: fail what it reported lost here */
        worker_fail_lost(w);
        h1_run_ready(w);
    }
    return NULL;
}

static void worker_free(struct worker *w)
{
    if (w->mhd) {
        /* resume anything parked so MHD can close it cleanly */
        for (struct sluice_ctx *c = w->live; c; c = c->next)
            flow_client_gone(c);
        MHD_quiesce_daemon(w->mhd); /* the listening socket stays ours */
        MHD_stop_daemon(w->mhd);
        w->mhd = NULL;
    }
    if (w->admin_mhd) {
        MHD_quiesce_daemon(w->admin_mhd);
        MHD_stop_daemon(w->admin_mhd);
        w->admin_mhd = NULL;
    }
    guard_free(w);   /* after the daemons: they report closes to it */
    h1_pool_free(w); /* the live requests' were closed above */
    w->h1_ready = NULL;
    if (w->multi) {
        curl_multi_cleanup(w->multi); /* closes through curl_close_cb */
        w->multi = NULL;
    }
    for (size_t i = 0; i < w->nparked; i++)
        if (w->parked[i])
            src_retire(w, w->parked[i]);
    free(w->parked);
    w->parked = NULL;
    w->nparked = 0;
    while (w->npool)
        curl_easy_cleanup(w->easy_pool[--w->npool]);
    free(w->easy_pool);
    w->easy_pool = NULL;
    if (w->share) /* after every handle that used it */
        curl_share_cleanup(w->share);
    w->share = NULL;
    curl_url_cleanup(w->chat_curlu); /* after every handle that used it */
    w->chat_curlu = NULL;
    free(w->chat_url);
    w->chat_url = NULL;
    timer_heap_free(&w->timers);
    worker_run_posted(w); /* nothing may be left owning memory */
    worker_free_dead(w);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->ep >= 0)
        close(w->ep);
    w->wake_fd = w->ep = -1;
    buf_release(&w->access_line); /* last: closing requests log */
}

/* Start an MHD daemon on fd and add its epoll fd to the worker's set. */
static struct MHD_Daemon *daemon_add(struct worker *w, int fd,
                                     unsigned int conn_limit,
                                     struct ev_src *src, char *err,
                                     size_t errlen)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = src};
    struct MHD_Daemon *d = http_daemon_start(w, fd, conn_limit, err, errlen);
    if (!d)
        return NULL;
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
    src->kind = EV_MHD;
    src->fd = di ? di->epoll_fd : -1;
    if (!di || epoll_ctl(w->ep, EPOLL_CTL_ADD, src->fd, &ev) != 0) {
        snprintf(err, errlen, "worker %d: cannot watch the HTTP daemon", w->id);
        MHD_stop_daemon(d);
        return NULL;
    }
    return d;
}

int worker_start(struct worker *w, struct server *srv, int id, int listen_fd,
                 int admin_fd, char *err, size_t errlen)
{
    struct epoll_event ev = {.events = EPOLLIN};
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->post_lock, NULL);
    w->id = id;
    w->srv = srv;
    w->listen_fd = listen_fd;
    w->admin_fd = admin_fd;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ep < 0 || w->wake_fd < 0) {
        snprintf(err, errlen, "worker %d: %s", id, strerror(errno));
        goto fail;
    }
    /* server.max_connections is shared among the workers: each accepts
     * its share (SO_REUSEPORT spreads connections evenly, not exactly) */
    int nw = srv->nworkers_planned > 0 ? srv->nworkers_planned : 1;
    int share = srv->cfg->max_client_connections / nw;
    w->conn_share = share > 0 ? share : 1;
    /* guard.c refuses beyond the share; MHD's own limit is a backstop */
    w->mhd = daemon_add(w, listen_fd, (unsigned int)w->conn_share + 64,
                        &w->mhd_src, err, errlen);
    if (!w->mhd)
        goto fail;
    if (admin_fd >= 0) {
        w->admin_mhd = daemon_add(w, admin_fd, 64, &w->admin_src, err, errlen);
        if (!w->admin_mhd)
            goto fail;
    }
    if (guard_start(w) != 0) {
        snprintf(err, errlen, "worker %d: out of memory", id);
        goto fail;
    }
    w->wake_src.kind = EV_WAKE;
    w->wake_src.fd = w->wake_fd;
    ev.data.ptr = &w->wake_src;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake_fd, &ev) != 0) {
        snprintf(err, errlen, "worker %d: cannot watch its wake-up fd: %s", id,
                 strerror(errno));
        goto fail;
    }

    w->multi = curl_multi_init();
    if (!w->multi) {
        snprintf(err, errlen, "worker %d: curl_multi_init failed", id);
        goto fail;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS,
                      (long)srv->cfg->max_connections);
    /* any upstream of the list may be https:// */
    w->share = curl_share_init();
    if (!w->share || curl_share_setopt(w->share, CURLSHOPT_SHARE,
                                       CURL_LOCK_DATA_SSL_SESSION)) {
        snprintf(err, errlen, "worker %d: curl_share_init failed", id);
        goto fail;
    }
    if (worker_url_init(w, srv->cfg->base_url) != 0) {
        snprintf(err, errlen, "worker %d: out of memory", id);
        goto fail;
    }

    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        snprintf(err, errlen, "worker %d: cannot start thread", id);
        goto fail;
    }
    w->started = 1;
    return 0;
fail:
    worker_free(w);
    return -1;
}

void worker_signal_stop(struct worker *w, int how)
{
    uint64_t one = 1;
    if (how > atomic_load(&w->stop))
        atomic_store(&w->stop, how);
    if (w->wake_fd >= 0) {
        ssize_t r = write(w->wake_fd, &one, sizeof one);
        (void)r;
    }
}

void worker_join(struct worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = 0;
    worker_free(w);
}
