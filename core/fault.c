/*
 * fault.c - the SLUICE_FAULTS test hooks (see fault.h). Parsed once, on the
 * first call; the counters are atomic because every worker thread asks.
 */
#include "fault.h"

#ifdef SLUICE_FAULT_HOOKS
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const fault_names[FAULT_NPOINTS] = {
    [FAULT_TIMER_RESERVE] = "timer_reserve",
    [FAULT_EPOLL_ADD] = "epoll_add",
    [FAULT_EPOLL_MOD] = "epoll_mod",
    [FAULT_STATE_SUB_LATE] = "state_sub_late",
};

/* calls still to fail per point: -1 every one, 0 none */
static atomic_long fault_left[FAULT_NPOINTS];
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static void fault_parse(void)
{
    const char *spec = getenv("SLUICE_FAULTS");
    while (spec && *spec) {
        size_t n = strcspn(spec, ",");
        for (int p = 0; p < FAULT_NPOINTS; p++) {
            size_t ln = strlen(fault_names[p]);
            if (n < ln || strncmp(spec, fault_names[p], ln) != 0 ||
                (n > ln && spec[ln] != ':'))
                continue;
            atomic_store(&fault_left[p],
                         n > ln ? strtol(spec + ln + 1, NULL, 10) : -1);
        }
        spec += n + (spec[n] == ',');
    }
}

int fault_hit(enum fault_point p)
{
    pthread_once(&fault_once, fault_parse);
    long left = atomic_load(&fault_left[p]);
    while (left != 0) {
        if (left < 0 ||
            atomic_compare_exchange_weak(&fault_left[p], &left, left - 1)) {
            errno = ENOMEM;
            return 1;
        }
    }
    return 0;
}
#else
/* ISO C wants a translation unit to declare something */
typedef int fault_hooks_compiled_out;
#endif
