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

#endif
