/*
 * guard.c - see guard.h. Closing is done with shutdown(2) on the socket:
 * libmicrohttpd then sees the end of the stream on its next read and closes
 * the connection itself (completion callback included), so no MHD state is
 * touched behind its back.
 */
#include "guard.h"
#include "log.h"
#include "request.h"
#include "server.h"
#include "worker.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define GUARD_SWEEP_MAX_MS 1000

struct conn_track {
    struct conn_track *prev, *next;
    struct MHD_Connection *conn;
    struct sluice_ctx *ctx; /* the request being served, or NULL */
    uint64_t since;         /* start of the current request's wait */
    int cut;                /* shut down by the sweep */
    int counted;            /* counts against server.max_connections */
    unsigned requests;      /* requests completed on it */
    /* the hang-up watch of its socket (guard_watch): registered once for
     * the connection's life; close(2) drops it with the socket */
    struct ev_src watch;
    int watched; /* in the worker's epoll set */
    int hup;     /* a hang-up edge came while no request was watching */
};

/* Beyond the worker's share of server.max_connections: answer 503 and
 * close at once, so a flood is refused quickly instead of waiting in the
 * listen backlog (which is what libmicrohttpd's own limit does). */
static void refuse(struct worker *w, struct MHD_Connection *conn)
{
    static const char resp[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        "Connection: close\r\n"
        "Content-Length: 126\r\n\r\n"
        "{\"error\":{\"message\":\"too many connections: try again "
        "later\",\"type\":\"server_error\",\"param\":null,"
        "\"code\":\"too_many_connections\"}}";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    ssize_t n = send(ci->connect_fd, resp, sizeof resp - 1,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    shutdown(ci->connect_fd, SHUT_RDWR);
    if (w->refused++ % 1000 == 0)
        log_msg(LOG_WARN, "http",
                "worker %d: at its connection limit (%d): refusing new "
                "connections (%llu so far)",
                w->id, w->conn_share, (unsigned long long)w->refused);
}

static int on_admin_daemon(struct worker *w, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    return w->admin_mhd && ci && ci->daemon == w->admin_mhd;
}

void guard_conn_notify(void *cls, struct MHD_Connection *conn,
                       void **socket_context,
                       enum MHD_ConnectionNotificationCode code)
{
    struct worker *w = cls;
    struct conn_track *t = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        t = calloc(1, sizeof(*t));
        if (!t)
            return; /* untracked: only the idle timeout applies */
        t->conn = conn;
        t->since = time_now_ms();
        t->counted = !on_admin_daemon(w, conn);
        if (t->counted && ++w->nconns > w->conn_share) {
            refuse(w, conn);
            t->cut = 1;
        }
        t->next = w->tracks;
        if (w->tracks)
            w->tracks->prev = t;
        w->tracks = t;
        *socket_context = t;
        return;
    }
    if (!t)
        return;
    if (t->counted)
        w->nconns--;
    if (t->prev)
        t->prev->next = t->next;
    else
        w->tracks = t->next;
    if (t->next)
        t->next->prev = t->prev;
    *socket_context = NULL;
    free(t);
}

static struct conn_track *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

int guard_is_cut(struct MHD_Connection *conn)
{
    struct conn_track *t = track_of(conn);
    return t && t->cut;
}

void guard_request_begin(struct MHD_Connection *conn, struct sluice_ctx *ctx)
{
    struct conn_track *t = track_of(conn);
    if (t)
        t->ctx = ctx;
}

void guard_request_end(struct MHD_Connection *conn)
{
    struct conn_track *t = track_of(conn);
    if (t) {
        t->ctx = NULL;
        t->since = time_now_ms();
        t->requests++;
    }
}

int guard_watch(struct worker *w, struct MHD_Connection *conn, int fd)
{
    struct conn_track *t = track_of(conn);
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET};
    if (!t)
        return 0;
    ev.data.ptr = &t->watch;
    if (!t->watched) {
        t->watch.kind = EV_CONN;
        t->watch.fd = fd;
        t->watch.owner = t;
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            return 0;
        t->watched = 1;
        t->hup = 0;
    } else if (t->hup) {
        /* an edge went by unwatched: a MOD reports a hang-up still there
         * at the next epoll_wait */
        t->hup = 0;
        epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 1;
}

void guard_conn_event(struct worker *w, void *track, uint32_t events)
{
    struct conn_track *t = track;
    if (t->ctx && t->ctx->watching)
        worker_client_event(w, t->ctx, events);
    else
        t->hup = 1;
}

static int still_receiving(const struct conn_track *t)
{
    return !t->ctx || (t->ctx->phase == PHASE_RECEIVING && !t->ctx->suspended);
}

static void guard_cut(struct worker *w, struct conn_track *t, uint64_t now)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(t->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    /* an idle keep-alive connection is routine; a request that did not
     * arrive in time is worth a line */
    int idle = !t->ctx && t->requests > 0;
    log_msg(idle ? LOG_DEBUG : LOG_INFO, "http",
            "worker %d: closing a connection that did not send its request "
            "within %ld ms (%s)",
            w->id, w->srv->cfg->request_timeout_ms,
            t->ctx ? "body incomplete"
            : idle ? "idle keep-alive"
                   : "headers incomplete");
    shutdown(ci->connect_fd, SHUT_RDWR);
    t->cut = 1;
}

static void guard_sweep(struct timer *tm)
{
    struct worker *w = tm->arg;
    uint64_t now = time_now_ms();
    long limit = w->srv->cfg->request_timeout_ms;
    for (struct conn_track *t = w->tracks; t; t = t->next)
        if (!t->cut && still_receiving(t) && now - t->since >= (uint64_t)limit)
            guard_cut(w, t, now);
    long every =
        limit / 4 < GUARD_SWEEP_MAX_MS ? limit / 4 : GUARD_SWEEP_MAX_MS;
    /* the heap just unscheduled this timer to run it: its slot is free */
    worker_timer_add(w, &w->guard_timer, now + (uint64_t)(every ? every : 1));
}

int guard_start(struct worker *w)
{
    timer_init(&w->guard_timer, guard_sweep, w);
    if (timer_heap_reserve(&w->timers, 1) != 0)
        return -1;
    worker_timer_add(w, &w->guard_timer, time_now_ms() + 250);
    return 0;
}

void guard_free(struct worker *w)
{
    worker_timer_del(w, &w->guard_timer);
    while (w->tracks) {
        struct conn_track *t = w->tracks;
        w->tracks = t->next;
        free(t);
    }
}
