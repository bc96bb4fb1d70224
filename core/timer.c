/*
 * timer.c - min-heap timers and the clocks. Used for retry back-off, request
 * deadlines and keep-alive ticks: the event loop sleeps until the earliest.
 */
#include "timer.h"

#include <stdlib.h>
#include <time.h>

uint64_t time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void timer_init(struct timer *t, timer_fn fn, void *arg)
{
    t->at = 0;
    t->slot = TIMER_IDLE;
    t->fn = fn;
    t->arg = arg;
}

int timer_pending(const struct timer *t)
{
    return t->slot != TIMER_IDLE;
}

static void heap_set(struct timer_heap *h, size_t i, struct timer *t)
{
    h->v[i] = t;
    t->slot = i;
}

static void heap_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p]->at <= t->at)
            break;
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, t);
}

static void heap_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1]->at < h->v[c]->at)
            c++;
        if (t->at <= h->v[c]->at)
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, t);
}

void timer_heap_del(struct timer_heap *h, struct timer *t)
{
    if (t->slot == TIMER_IDLE)
        return;
    size_t i = t->slot;
    t->slot = TIMER_IDLE;
    h->n--;
    if (i == h->n)
        return;
    h->v[i] = h->v[h->n];
    h->v[i]->slot = i;
    heap_up(h, i);
    heap_down(h, h->v[i]->slot);
}

int timer_heap_reserve(struct timer_heap *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap * 2 : 64;
    if (cap < n)
        cap = n;
    struct timer **v = realloc(h->v, cap * sizeof(*v));
    if (!v)
        return -1;
    h->v = v;
    h->cap = cap;
    return 0;
}

int timer_heap_add(struct timer_heap *h, struct timer *t, uint64_t at)
{
    timer_heap_del(h, t);
    if (h->n == h->cap && timer_heap_reserve(h, h->n + 1) != 0)
        return -1;
    t->at = at;
    heap_set(h, h->n++, t);
    heap_up(h, h->n - 1);
    return 0;
}

uint64_t timer_heap_next(const struct timer_heap *h)
{
    return h->n ? h->v[0]->at : UINT64_MAX;
}

void timer_heap_run(struct timer_heap *h, uint64_t now)
{
    while (h->n && h->v[0]->at <= now) {
        struct timer *t = h->v[0];
        timer_heap_del(h, t);
        t->fn(t);
    }
}

void timer_heap_free(struct timer_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
