/*
 * fault.h - test hooks that make one named core call fail, so the tests can
 * drive the paths that handle that failure through the real binary.
 *
 * Compiled in only when the build defines SLUICE_FAULT_HOOKS (test builds,
 * cmake -DSLUICE_FAULT_HOOKS=ON, the default with SLUICE_TESTS); otherwise
 * fault_hit() is the constant 0. With hooks compiled in, the environment
 * variable SLUICE_FAULTS lists the points to fail, comma-separated, each as
 * `name` (every call fails) or `name:N` (the first N calls fail), e.g.
 * SLUICE_FAULTS=timer_reserve:1,epoll_mod.
 */
#ifndef SLUICE_FAULT_H
#define SLUICE_FAULT_H

enum fault_point {
    FAULT_TIMER_RESERVE, /* worker_timer_reserve: the heap cannot grow */
    FAULT_EPOLL_ADD, /* curl_sock_cb: epoll_ctl(ADD) of an upstream socket */
    FAULT_EPOLL_MOD, /* curl_sock_cb: epoll_ctl(MOD) of an upstream socket */
    FAULT_STATE_SUB_LATE, /* state_redis.c: the subscriber thread starts,
                             and reconnects, 3 s late (a loaded machine) */
    FAULT_NPOINTS
};

#ifdef SLUICE_FAULT_HOOKS
/* 1 when this call at point p must fail (and errno is set to ENOMEM). */
int fault_hit(enum fault_point p);
#else
static inline int fault_hit(enum fault_point p)
{
    (void)p;
    return 0;
}
#endif

#endif
