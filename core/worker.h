/*
 * worker.h - one event loop per core. Each worker owns an epoll set that
 * carries its libmicrohttpd daemon (external-epoll mode, its own SO_REUSEPORT
 * listening socket), its libcurl multi handle (socket API), its timers and
 * the sockets of suspended clients it watches for hang-ups. A request lives
 * and dies on the worker that accepted it: no hand-off, no locks.
 */
#ifndef SLUICE_WORKER_H
#define SLUICE_WORKER_H

#include "request.h"
#include "timer.h"

#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

enum ev_kind {
    EV_DEAD = 0,
    EV_MHD = 1,
    EV_WAKE,
    EV_CURL,
    EV_CLIENT,
    EV_PARKED, /* an idle pooled upstream socket, still in the epoll set */
    EV_CONN,   /* a client connection's hang-up watch (guard.c) */
    EV_H1      /* a connection of sluice's own HTTP client (h1client.c) */
};

struct server;

struct worker {
    int id;
    pthread_t thread;
    int started;
    int ep;      /* epoll fd */
    int wake_fd; /* eventfd: stop requests */
    struct ev_src mhd_src, wake_src;
    struct MHD_Daemon *mhd;
    int listen_fd;
    CURLM *multi;
    uint64_t curl_at; /* libcurl's timeout, monotonic ms; 0 = none */
    int mhd_resumed;  /* a connection was resumed: MHD_run must see it */
    uint64_t mhd_at;  /* when MHD wants MHD_run again (UINT64_MAX: never) */
    struct timer_heap timers;
    char *chat_url;    /* <base_url>/chat/completions, built once */
    CURLU *chat_curlu; /* the same parsed once (NULL: use chat_url) */
    CURLSH *share;     /* TLS session cache shared by the worker's handles
                          (one thread: no locks) */
    CURL **easy_pool;  /* idle easy handles, reused across transfers */
    size_t npool, cappool;
    struct server *srv;
    atomic_int stop;     /* 1: drain then exit, 2: exit now */
    long active;         /* requests alive on this worker */
    long peak_active;    /* most alive at once since the last trim */
    uint64_t trimmed_at; /* monotonic ms of that trim */
    uint64_t seq;
    struct sluice_ctx *live; /* requests alive on this worker */
    buf_t access_line; /* access_log.c's buffer, reused: no malloc a line */
    /* curl socket sources removed while a batch of epoll events was being
     * handled: a later event of the same batch may still point at them, so
     * they are freed after the batch */
    struct ev_src *dead;
    /* transfers whose socket could not be added to or changed in the epoll
     * set, failed after the libcurl call that reported them */
    struct sluice_ctx *lost;
    /* idle pooled upstream sockets left registered (worker.c, "parked"),
     * by fd: a reused connection costs no epoll_ctl ADD/DEL pair */
    struct ev_src **parked;
    size_t nparked;
    /* sluice's own HTTP/1.1 client (h1client.c): idle keep-alive
     * connections, newest first, and connections with work to do now */
    struct h1conn *h1_idle, *h1_idle_tail, *h1_ready;
    int h1_nidle;
    pthread_mutex_t post_lock;  /* guards posted */
    struct worker_msg *posted;  /* calls from other threads, newest first */
    struct conn_track *tracks;  /* client connections (guard.c) */
    struct timer guard_timer;   /* request deadline sweep (guard.c) */
    int nconns, conn_share;     /* client connections open / allowed */
    unsigned long long refused; /* connections refused over the limit */
    /* admin.listen: worker 0 also carries the admin port's daemon */
    struct MHD_Daemon *admin_mhd;
    struct ev_src admin_src;
    int admin_fd; /* listening socket, -1 when none */
};

struct worker_msg {
    void (*fn)(void *arg);
    void *arg;
    struct worker_msg *next;
};

/* Start worker `id` on listen_fd; admin_fd (-1: none) is the admin.listen
 * socket, given to worker 0 only. */
int worker_start(struct worker *w, struct server *srv, int id, int listen_fd,
                 int admin_fd, char *err, size_t errlen);
/* Ask the loop to stop (1 = drain, 2 = now) and wake it. */
void worker_signal_stop(struct worker *w, int how);
void worker_join(struct worker *w);

/* Watch a suspended client's socket for hang-up. */
void worker_watch_client(struct worker *w, struct sluice_ctx *ctx);
void worker_unwatch_client(struct worker *w, struct sluice_ctx *ctx);
/* A hang-up event for the watched request ctx. */
void worker_client_event(struct worker *w, struct sluice_ctx *ctx,
                         uint32_t events);
/* Timers never allocate when armed: a chat request reserves room for its
 * two (timer, dl_timer) before it can arm them (worker_timer_reserve, -1 when
 * that fails: the caller answers 503), worker_start for the guard's sweep.
 * Room reserved is never given back, and every live request that arms
 * timers reserved 1 + 2 * (requests alive then), which counts every other
 * such request still alive: worker_timer_add cannot fail. */
int worker_timer_reserve(struct worker *w);
void worker_timer_add(struct worker *w, struct timer *t, uint64_t at);
void worker_timer_del(struct worker *w, struct timer *t);
/* ctx is ending: drop it from the list of transfers whose socket could not
 * be watched (curl_sock_cb). */
void worker_forget_lost(struct worker *w, struct sluice_ctx *ctx);

/* The worker's last request ended: after a spike (WORKER_TRIM_PEAK
 * requests alive at once), give the memory glibc keeps in its arenas back
 * to the system, at most once a second; no timer, nothing when idle. */
void worker_trim_after_spike(struct worker *w);

/* Run fn(arg) on worker w's thread (from any thread). -1 on failure. */
int worker_post(struct worker *w, void (*fn)(void *arg), void *arg);

/* Easy handle pool. */
CURL *worker_easy_get(struct worker *w);
void worker_easy_put(struct worker *w, CURL *e);

#endif
