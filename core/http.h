/*
 * http.h - the libmicrohttpd side: the daemon of one worker, the access
 * handler that routes requests, reads bodies and queues responses, and the
 * completion callback that ends a request.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "request.h"

struct worker;

/* A daemon on listen_fd accepting at most conn_limit connections. */
struct MHD_Daemon *http_daemon_start(struct worker *w, int listen_fd,
                                     unsigned int conn_limit, char *err,
                                     size_t errlen);

/* routes.c: answer a non-chat route (health, models, admin, errors) by
 * setting ctx's response. */
void routes_answer(struct sluice_ctx *ctx);
/* routes.c: classify the request path and method. */
void routes_match(struct sluice_ctx *ctx);

/* admin.c: wait (bounded) for admin reload jobs still running (shutdown). */
void admin_wait_jobs(void);

#endif
