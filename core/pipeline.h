/*
 * pipeline.h - a generation of stages built from the config, and the runner
 * that calls each phase's hooks in order and folds their verdicts.
 *
 * A generation is immutable once published. Requests pin it (refcount) for
 * their whole life; the last unpin destroys its stages and unloads their
 * libraries. The current generation is published with one atomic swap.
 */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "buf.h"
#include "config.h"
#include "plugin.h"
#include "sluice.h"

#include <stdatomic.h>
#include <stdint.h>

struct generation;
struct upstream_set;

struct admin_action {
    char *action;
    char *alias;                /* may be NULL */
    sluice_admin_fn fn;         /* one of fn and ctx_fn is set */
    sluice_admin_ctx_fn ctx_fn; /* ABI 1.1: answers through ctx itself */
};

struct stage_route {
    char method[8];
    char *path; /* without the trailing slash-star of a prefix route */
    int prefix;
    sluice_route_fn fn;
};

/* The host's record of a stage (what sluice_stage points to). */
struct sluice_stage {
    char *name;
    char *plugin;
    int index;              /* position in the pipeline: its per-request slot */
    int line;               /* line in the pipeline file */
    struct plugin_lib *lib; /* NULL for stages built in tests */
    const sluice_plugin *desc;
    void *instance;
    int initialised;
    struct admin_action *actions;
    size_t nactions;
    struct stage_route *routes;
    size_t nroutes;
    struct generation *gen;
    uint32_t api_mask; /* api.h routes whose requests its hooks see */
};

struct generation {
    uint64_t id;
    uint64_t loaded_ms; /* wall clock */
    atomic_long refs;
    struct sluice_stage *stages;
    size_t nstages;
    char *file;
    const sluice_host *host;     /* what init gets (NULL: host_table; the stage
                                    test host passes a copy with its clock) */
    struct upstream_set *ups;    /* this generation's upstreams and routes;
                                    NULL for generations built in tests */
    struct generation *all_next; /* registry of generations not yet freed */
    struct generation *reap_next;
};

/* Counters of the reload machinery (read by /admin/pipeline, metrics). */
struct pipeline_stats {
    atomic_ullong reloads;
    atomic_ullong reload_failures;
};
extern struct pipeline_stats pipeline_stats;

/* Load every stage's library and run every init. On failure nothing is
 * kept and err says "<file>:<line>: stage '<name>': <reason>". */
struct generation *generation_build(const struct config *cfg, char *err,
                                    size_t errlen);
/* Build a generation from descriptors already in memory (tests). host:
 * the table init gets (NULL: host_table). */
struct generation *generation_from_descs(const sluice_plugin *const *descs,
                                         const sluice_json *const *configs,
                                         size_t n, char *err, size_t errlen);
struct generation *generation_from_descs_host(const sluice_plugin *const *descs,
                                              const sluice_json *const *configs,
                                              size_t n, const sluice_host *host,
                                              char *err, size_t errlen);

/* The mask of api.h routes a stage handles: `names` (the pipeline's
 * `routes:`, a JSON array; NULL when absent), else the descriptor's routes,
 * else chat only. -1 and err naming the unknown route. */
int pipeline_route_mask(const sluice_plugin *desc, const json_t *names,
                        uint32_t *mask, char *err, size_t errlen);

/* The published generation. generation_pin returns it with a reference
 * held; generation_unpin drops one (destroying the generation at zero). */
void generation_publish(struct generation *g);
struct generation *generation_pin(void);
void generation_unpin(struct generation *g);
struct generation *generation_current(void); /* borrowed; for reporting */
/* Drop the published generation (shutdown). */
void generation_retire_current(void);

struct sluice_stage *generation_find(struct generation *g, const char *name);

/* Hand each stage of `to` the state of the stage of the same name and
 * plugin in `from` (export_state -> import_state). Returns how many stages
 * carried state over. */
int generation_migrate(struct generation *from, struct generation *to);

/* Old generations are destroyed (stages' destroy, dlclose) on a reaper
 * thread, never on a request thread. Stop drains what is left. */
int generation_reaper_start(void);
void generation_reaper_stop(void);

/* Append the live generations as a JSON array of {"id","requests",
 * "current"} to out. */
void generation_report_live(buf_t *out);
/* The stage route serving `path`, or NULL; *stage is set. `method_ok` is
 * set to 0 when the path matches but the method does not. */
struct stage_route *generation_route(struct generation *g, const char *method,
                                     const char *path,
                                     struct sluice_stage **stage,
                                     int *method_ok);

/* ---- the runner ------------------------------------------------------ */
struct sluice_ctx;

/* on_headers (ABI 1.1: the headers are in, the body not yet read) and
 * on_request: stop at the first RESPOND or ERROR. RETRY is not valid
 * here and counts as ERROR. */
sluice_verdict pipeline_on_headers(struct sluice_ctx *ctx);
sluice_verdict pipeline_on_request(struct sluice_ctx *ctx);
/* An on_request said SLUICE_PENDING (ctx->pending_stage): req_resume()
 * records the verdict to come (0, or -1 when the request is not waiting
 * or already has one) ... */
int pipeline_resume_set(struct sluice_ctx *ctx, sluice_verdict v);
/* ... and, once back on the request's thread, this folds it and runs the
 * rest of on_request (may say PENDING again). */
sluice_verdict pipeline_on_request_resume(struct sluice_ctx *ctx);
/* Requests without a worker (the stage test host) may wait too when this
 * is set: req_resume calls it to record the verdict (with
 * pipeline_resume_set, under the waiter's lock) and wake the waiter. */
extern int (*pipeline_pending_hook)(struct sluice_ctx *ctx, sluice_verdict v);
/* on_attempt: like on_request, but RETRY is allowed: run on_attempt again
 * after retry_after_ms (e.g. wait for a key); first RESPOND/ERROR stops. */
sluice_verdict pipeline_on_attempt(struct sluice_ctx *ctx);
/* on_response: every stage runs unless one says RESPOND or ERROR; RETRY
 * from any stage makes the result RETRY. */
sluice_verdict pipeline_on_response(struct sluice_ctx *ctx);
/* Feed streamed bytes into the on_chunk chain from the first stage. */
sluice_verdict pipeline_on_chunk(struct sluice_ctx *ctx, const char *data,
                                 size_t len);
/* Hand bytes to the stage after the one running on_chunk (the host's
 * chunk_forward); 0 on success. */
int pipeline_chunk_forward(struct sluice_ctx *ctx, const char *data,
                           size_t len);
/* on_complete: every stage, exactly once per request (guarded). */
void pipeline_on_complete(struct sluice_ctx *ctx);

/* The host function table handed to stages (host.c). */
extern const sluice_host host_table;

#endif
