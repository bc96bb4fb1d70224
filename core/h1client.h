/*
 * h1client.h - sluice's own HTTP/1.1 client for http:// upstreams, on the
 * worker's event loop: keep-alive connections pooled per worker, the
 * request written with one sendmsg, the response read by h1parse.c and
 * handed to upstream.c exactly as libcurl's callbacks hand it (same status,
 * headers, body bytes, pause for a slow client, same result codes).
 *
 * Used for upstreams whose URL is http:// with an IP address or localhost
 * as host (no name to resolve on the loop) unless `upstream.client: curl`;
 * https:// and named hosts stay on libcurl.
 */
#ifndef SLUICE_H1CLIENT_H
#define SLUICE_H1CLIENT_H

#include <curl/curl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct sluice_ctx;
struct worker;
struct ev_src;

/* Where a request goes: the address to connect to and the Host header. */
struct h1dest {
    struct sockaddr_storage addr;
    socklen_t alen;
    char host[256]; /* the URL's authority, as written */
    int port;
};

/* 1 when url is http:// with an IP literal or localhost as host (and no
 * user info): d filled, *target = the path and query to send (may need a
 * leading "/": h1_start adds it). 0 when libcurl must take it. */
int h1_dest_parse(const char *url, struct h1dest *d, const char **target);

/* Start ctx's attempt to d: method ctx->method, target, the header lines
 * of ctx->slist, body ctx->up_body (not for GET and HEAD). timeout_ms:
 * the attempt's whole budget (0: none, a stream); connect_ms: to connect.
 * Never finishes the attempt before returning: a failure to connect or to
 * send is reported from the worker's loop (upstream_h1_done). 0, or -1 when
 * out of memory (nothing started). */
int h1_start(struct sluice_ctx *ctx, const struct h1dest *d, const char *target,
             long timeout_ms, long connect_ms);
/* Stop ctx's transfer (its connection is closed); no report follows. */
void h1_abort(struct sluice_ctx *ctx);
/* The client took enough of a paused stream: go on reading. */
void h1_resume(struct sluice_ctx *ctx);

/* The worker's side: an epoll event on a connection, the queue of
 * connections with work to do now (run where no MHD callback is on the
 * stack), and closing every pooled connection when the worker ends. */
void h1_event(struct worker *w, struct ev_src *src, uint32_t events);
void h1_run_ready(struct worker *w);
void h1_pool_free(struct worker *w);
/* Free the read buffers of w's idle connections (after a spike). */
void h1_pool_shrink(struct worker *w);

#endif
