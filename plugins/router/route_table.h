/*
 * route_table.h - internal header of the router stage: the route table
 * built from the generation's validated `routes:` (read through the SDK),
 * smooth weighted round-robin among a route's deployments, and the
 * failure classes of `fallback_on`. Read-only after init except for each
 * route's weighted round-robin state (under the route's lock) and each
 * deployment's "down until" mark (atomic).
 */
#ifndef ROUTER_ROUTE_TABLE_H
#define ROUTER_ROUTE_TABLE_H

#include "sluice.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Failure classes (fallback_on), as bits. */
enum rt_class {
    RC_NONE = 0,
    RC_5XX = 1u << 0,
    RC_TIMEOUT = 1u << 1,
    RC_CONNECT = 1u << 2,
    RC_ALL_KEYS = 1u << 3,
    RC_429 = 1u << 4,
    RC_CONTEXT = 1u << 5,
    RC_4XX = 1u << 6
};
#define RC_DEFAULT (RC_5XX | RC_TIMEOUT | RC_CONNECT | RC_ALL_KEYS | RC_429)

const char *rt_class_name(unsigned c);
unsigned rt_class_parse(const char *s); /* 0 if unknown */
/* The class of an attempt's outcome; RC_NONE for a success. 401, 402 and
 * 403 (a key refused, out of quota) are RC_ALL_KEYS, not RC_4XX: the retry
 * stage switches keys first, and once its switches are spent with keys
 * still refused the deployment is as good as keyless. */
unsigned rt_classify(sluice_attempt_result r, int status, const char *body,
                     size_t len);

struct rt_deploy {
    char *upstream;
    char *model; /* sent upstream; NULL: the client's name passes through */
    double weight;
    double current;                  /* smooth WRR state (route lock) */
    atomic_uint_fast64_t down_until; /* monotonic ms; skipped until then */
};

struct rt_route {
    char *name; /* model (exact or glob) */
    int glob;
    char **aliases;
    size_t naliases;
    struct rt_deploy *d;
    size_t nd;
    size_t *fallbacks; /* route indexes */
    size_t nfallbacks;
    unsigned fallback_on; /* RC_* bits */
    int max_retries;      /* retries: of the route; -1: the retry stage's */
    int max_switches;     /* likewise max_key_switches */
    pthread_mutex_t lock;
};

struct rt_table {
    struct rt_route *v;
    size_t n;
};

/* Build from the `routes:` JSON (validated by the core). 0, or -1 with
 * err set. */
int rt_table_build(const sluice_host *H, const sluice_json *routes,
                   struct rt_table *t, char *err, size_t errlen);
void rt_table_free(struct rt_table *t);
/* The route a client's model name belongs to (exact names and aliases
 * first, then globs in order), or -1. */
long rt_table_find(const struct rt_table *t, const char *model);
/* Smooth weighted round-robin among r's deployments not down at `now`
 * (all of them when every one is down). Returns the index. */
size_t rt_route_pick(struct rt_route *r, uint64_t now);

/* Hot reload (route_state.c): every deployment's round-robin position and
 * cooldown left, as JSON into out; read back into a new table, matched by
 * route name and (upstream, model). Import: 0, or -1 for a document that
 * does not parse. */
int rt_state_export(const sluice_host *H, struct rt_table *t, uint64_t now,
                    sluice_buf *out);
int rt_state_import(const sluice_host *H, struct rt_table *t, uint64_t now,
                    const char *state, size_t len);

#endif
