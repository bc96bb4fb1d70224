/*
 * blockcache.c - per-thread spare blocks (see blockcache.h). Each thread
 * holds up to BC_KEEP blocks in a small array behind a pthread key, whose
 * destructor frees them when the thread ends.
 */
#include "blockcache.h"

#include <pthread.h>
#include <stdlib.h>

#define BC_KEEP 8

struct bc_slot {
    void *p;
    size_t size;
};

struct bc_thread {
    size_t n;
    struct bc_slot v[BC_KEEP];
};

/* gcc says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer) */
#if defined(__SANITIZE_ADDRESS__)
#define BC_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BC_ON 0
#endif
#endif
#ifndef BC_ON
#define BC_ON 1
#endif

static pthread_key_t bc_key;
static pthread_once_t bc_once = PTHREAD_ONCE_INIT;
static int bc_ok;

static void bc_thread_free(void *arg)
{
    struct bc_thread *t = arg;
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].p);
    free(t);
}

static void bc_init(void)
{
    bc_ok = pthread_key_create(&bc_key, bc_thread_free) == 0;
}

/* The calling thread's blocks; NULL when none can be kept. */
static struct bc_thread *bc_thread(int create)
{
    if (!BC_ON)
        return NULL;
    pthread_once(&bc_once, bc_init);
    if (!bc_ok)
        return NULL;
    struct bc_thread *t = pthread_getspecific(bc_key);
    if (!t && create && (t = calloc(1, sizeof *t)) != NULL &&
        pthread_setspecific(bc_key, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

void *blockcache_get(size_t min, size_t *size)
{
    struct bc_thread *t =
        min >= BLOCKCACHE_MIN && min <= BLOCKCACHE_MAX ? bc_thread(0) : NULL;
    size_t best = BC_KEEP;
    for (size_t i = 0; t && i < t->n; i++)
        if (t->v[i].size >= min && t->v[i].size / 2 <= min &&
            (best == BC_KEEP || t->v[i].size < t->v[best].size))
            best = i;
    if (best < BC_KEEP) {
        void *p = t->v[best].p;
        *size = t->v[best].size;
        t->v[best] = t->v[--t->n];
        return p;
    }
    *size = min;
    return malloc(min);
}

void blockcache_put(void *p, size_t size)
{
    if (!p)
        return;
    struct bc_thread *t =
        size >= BLOCKCACHE_MIN && size <= BLOCKCACHE_MAX ? bc_thread(1) : NULL;
    if (t && t->n < BC_KEEP) {
        t->v[t->n].p = p;
        t->v[t->n].size = size;
        t->n++;
        return;
    }
    free(p);
}

int blockcache_enabled(void)
{
    return BC_ON;
}

size_t blockcache_held(void)
{
    struct bc_thread *t = bc_thread(0);
    return t ? t->n : 0;
}
