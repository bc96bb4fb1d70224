/*
 * guard.h - the request deadline (server.request_timeout_s). libmicrohttpd's
 * own connection timeout is an idle timeout: a client sending one byte a
 * second never trips it. So each worker tracks its client connections
 * (MHD_OPTION_NOTIFY_CONNECTION) and a periodic sweep closes those still
 * receiving a request (headers or body) longer than the deadline, counted
 * from the connection's start or the end of its previous request.
 *
 * Not subject to it: requests whose body is in (waiting on the upstream,
 * suspended, or streaming): their time budget is upstream.timeout_s.
 * An idle keep-alive connection is closed after the same deadline.
 */
#ifndef SLUICE_GUARD_H
#define SLUICE_GUARD_H

#include <microhttpd.h>
#include <stdint.h>

struct worker;
struct sluice_ctx;

/* MHD_OPTION_NOTIFY_CONNECTION callback; cls is the worker. */
void guard_conn_notify(void *cls, struct MHD_Connection *conn,
                       void **socket_context,
                       enum MHD_ConnectionNotificationCode code);
/* 1 when the guard closed (or refused) conn: serve nothing more on it,
 * even a request that was already in the socket buffer. */
int guard_is_cut(struct MHD_Connection *conn);
/* The request on conn has its context / has ended. */
void guard_request_begin(struct MHD_Connection *conn, struct sluice_ctx *ctx);
void guard_request_end(struct MHD_Connection *conn);
/* The client hang-up watch of conn's socket fd, registered once for the
 * connection (not once per request: two epoll_ctl calls per request
 * fewer); the request being served gets its events. 0 when conn is not
 * tracked (the caller registers a watch of its own). */
int guard_watch(struct worker *w, struct MHD_Connection *conn, int fd);
/* An event of that watch (the worker's loop, EV_CONN). */
void guard_conn_event(struct worker *w, void *track, uint32_t events);
/* Arm the sweep on w (before its thread starts); -1 when it cannot be
 * scheduled. guard_free releases what is left. */
int guard_start(struct worker *w);
void guard_free(struct worker *w);

#endif
