/*
 * timer.h - a binary min-heap of one-shot timers, one heap per worker.
 * Timers are embedded in their owner (no allocation per schedule); all use
 * happens on the worker's own thread, so there is no locking.
 */
#ifndef SLUICE_TIMER_H
#define SLUICE_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct timer;
typedef void (*timer_fn)(struct timer *t);

struct timer {
    uint64_t at; /* monotonic ms when it fires */
    size_t slot; /* index in the heap, TIMER_IDLE when not scheduled */
    timer_fn fn;
    void *arg;
};

#define TIMER_IDLE ((size_t)-1)

struct timer_heap {
    struct timer **v;
    size_t n, cap;
};

void timer_init(struct timer *t, timer_fn fn, void *arg);
int timer_pending(const struct timer *t);
/* (Re)schedule t at `at`. Returns -1 only on allocation failure. */
int timer_heap_add(struct timer_heap *h, struct timer *t, uint64_t at);
void timer_heap_del(struct timer_heap *h, struct timer *t);
/* Make room for n timers, so that adding up to n never allocates. Returns
 * -1 on allocation failure (the heap is unchanged). */
int timer_heap_reserve(struct timer_heap *h, size_t n);
/* Earliest deadline, or UINT64_MAX when empty. */
uint64_t timer_heap_next(const struct timer_heap *h);
/* Fire every timer due at `now` (a fired timer is unscheduled before its
 * callback runs, so the callback may reschedule it). */
void timer_heap_run(struct timer_heap *h, uint64_t now);
void timer_heap_free(struct timer_heap *h);

uint64_t time_now_ms(void);  /* CLOCK_MONOTONIC */
uint64_t time_wall_ms(void); /* CLOCK_REALTIME */
uint64_t time_now_us(void);  /* CLOCK_MONOTONIC, microseconds */

#endif
