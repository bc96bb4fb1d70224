/*
 * server.h - process-wide state: the loaded config, the workers, the admin
 * token. One instance, set up by main() and read by everything else.
 */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include "config.h"
#include "worker.h"

#include <stdint.h>

struct server {
    struct config *cfg;
    struct worker *workers;
    int nworkers;
    int port;               /* the port actually bound */
    int nworkers_planned;   /* workers server_start is starting */
    int admin_port;         /* admin.listen's bound port, 0 when none */
    uint64_t start_ms;      /* monotonic */
    uint64_t start_wall_ms; /* wall clock, for "created" */
    char *admin_token;      /* NULL: admin API off */
};

extern struct server *server_main;

/* Bind one SO_REUSEPORT listening socket per worker and start them. */
int server_start(struct server *srv, char *err, size_t errlen);
/* Stop every worker (how: 1 drain, 2 now) and wait for them. */
void server_stop(struct server *srv, int how);

#endif
