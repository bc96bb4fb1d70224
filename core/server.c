/*
 * server.c - binds the listening sockets (one SO_REUSEPORT socket per
 * worker, so the kernel spreads connections over the cores) and starts and
 * stops the workers.
 */
#include "server.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct server *server_main;

/* Bind (and, with `backlog` > 0, listen on) ai at port. With reuseport the
 * socket shares the port with our other workers' sockets. */
static int bind_one(const struct addrinfo *ai, int port, int reuseport,
                    int backlog, char *err, size_t errlen)
{
    int one = 1;
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 ||
        (backlog > 0 && listen(fd, backlog) != 0))
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "cannot listen on port %d: %s%s", port,
             strerror(errno),
             errno == EADDRINUSE ? " (another process holds it)" : "");
    if (fd >= 0)
        close(fd);
    return -1;
}

static int listen_one(const struct addrinfo *ai, int port, char *err,
                      size_t errlen)
{
    return bind_one(ai, port, 1, 1024, err, errlen);
}

static int bound_port(int fd);

/* Claim the port before the workers share it: a bind without SO_REUSEPORT
 * fails when anyone listens there, even another sluice with SO_REUSEPORT
 * (which would otherwise silently split our connections with it). Port 0
 * resolves to a free port here. Returns the port, or -1 with err set. */
static int port_claim(const struct addrinfo *ai, int port, char *err,
                      size_t errlen)
{
    int fd = bind_one(ai, port, 0, 0, err, errlen);
    if (fd < 0)
        return -1;
    int got = bound_port(fd);
    close(fd);
    return got;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* admin.listen ("host:port", "[::1]:port"): its own listening socket,
 * served by worker 0. -1 with err set on failure. */
static int admin_listen_open(struct server *srv, char *err, size_t errlen)
{
    char host[256];
    const char *spec = srv->cfg->admin_listen;
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) {
        snprintf(err, errlen, "admin.listen '%s': host too long", spec);
        return -1;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    int rc = getaddrinfo(host, "0", &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "admin.listen '%s': %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = bind_one(ai, atoi(colon + 1), 0, 128, err, errlen);
    freeaddrinfo(ai);
    if (fd >= 0)
        srv->admin_port = bound_port(fd);
    return fd;
}

int server_start(struct server *srv, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int n = srv->cfg->threads > 0 ? srv->cfg->threads
                                  : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    int rc = getaddrinfo(srv->cfg->host, "0", &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "server.host '%s': %s", srv->cfg->host,
                 gai_strerror(rc));
        return -1;
    }
    srv->workers = calloc((size_t)n, sizeof(*srv->workers));
    if (!srv->workers) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    srv->port = port_claim(ai, srv->cfg->port, err, errlen);
    if (srv->port < 0) {
        freeaddrinfo(ai);
        free(srv->workers);
        srv->workers = NULL;
        return -1;
    }
    srv->nworkers_planned = n;
    int admin_fd = -1;
    if (srv->cfg->admin_listen &&
        (admin_fd = admin_listen_open(srv, err, errlen)) < 0)
        goto fail;
    for (int i = 0; i < n; i++) {
        int fd = listen_one(ai, srv->port, err, errlen);
        if (fd < 0)
            goto fail;
        if (worker_start(&srv->workers[i], srv, i, fd, i ? -1 : admin_fd, err,
                         errlen) != 0) {
            close(fd);
            if (i == 0 && admin_fd >= 0)
                close(admin_fd);
            goto fail;
        }
        srv->nworkers = i + 1;
    }
    freeaddrinfo(ai);
    return 0;
fail:
    freeaddrinfo(ai);
    server_stop(srv, 2);
    return -1;
}

void server_stop(struct server *srv, int how)
{
    for (int i = 0; i < srv->nworkers; i++)
        worker_signal_stop(&srv->workers[i], how);
    for (int i = 0; i < srv->nworkers; i++) {
        int fd = srv->workers[i].listen_fd;
        int afd = srv->workers[i].admin_fd;
        worker_join(&srv->workers[i]);
        if (fd >= 0)
            close(fd); /* quiesced daemons leave it to us */
        if (afd >= 0)
            close(afd);
    }
    free(srv->workers);
    srv->workers = NULL;
    srv->nworkers = 0;
}
