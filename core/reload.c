/*
 * reload.c - hot reload (POST /admin/reload, SIGHUP).
 *
 * The pipeline, `upstreams:` and `routes:` are reloaded (they live in the
 * generation: requests in flight keep theirs); server, upstream, admin and
 * log settings are bound to sockets, threads and files at start, so a
 * change to them is reported and needs a restart. A failure at any step changes
 * nothing: the running generation keeps serving.
 */
#include "reload.h"
#include "config.h"
#include "log.h"
#include "pipeline.h"
#include "request.h"
#include "server.h"
#include "timer.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static void rfc3339(uint64_t wall_ms, char *out, size_t outlen)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03uZ", (unsigned)(wall_ms % 1000));
}

static void stages_json(struct generation *g, buf_t *out)
{
    buf_puts(out, "[");
    for (size_t i = 0; g && i < g->nstages; i++) {
        struct sluice_stage *s = &g->stages[i];
        buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        buf_json_str(out, s->name);
        buf_puts(out, ",\"plugin\":");
        buf_json_str(out, s->desc->name);
        buf_puts(out, ",\"version\":");
        buf_json_str(out, s->desc->version);
        buf_printf(out, ",\"abi\":\"%u.%u\",\"file\":", s->desc->abi_major,
                   s->desc->abi_minor);
        buf_json_str(out, s->lib ? s->lib->path : NULL);
        buf_puts(out, ",\"hash\":");
        buf_json_str(out, s->lib ? s->lib->hash : NULL);
        buf_puts(out, "}");
    }
    buf_puts(out, "]");
}

void reload_report(buf_t *out)
{
    struct generation *g = generation_pin();
    char when[40] = "";
    if (g)
        rfc3339(g->loaded_ms, when, sizeof when);
    buf_printf(out, "{\"generation\":%llu,\"loaded_at\":\"%s\",\"file\":",
               (unsigned long long)(g ? g->id : 0), when);
    buf_json_str(out, g ? g->file : NULL);
    buf_puts(out, ",\"stages\":");
    stages_json(g, out);
    generation_unpin(g);
    buf_printf(
        out, ",\"reloads\":%llu,\"reload_failures\":%llu,\"live\":",
        (unsigned long long)atomic_load(&pipeline_stats.reloads),
        (unsigned long long)atomic_load(&pipeline_stats.reload_failures));
    generation_report_live(out);
    buf_puts(out, "}");
}

/* Sections that cannot change without a restart. */
static void warn_static_changes(const struct config *now,
                                const struct config *next, buf_t *notes)
{
    static const char *const fixed[] = {"server", "upstream", "admin",
                                        "log",    "docs",     "plugins_dir",
                                        "models", NULL};
    for (size_t i = 0; fixed[i]; i++) {
        json_t *a = json_object_get(now->root, fixed[i]);
        json_t *b = json_object_get(next->root, fixed[i]);
        if ((a || b) && !(a && b && json_equal(a, b))) {
            log_warn("reload: '%s' changed in %s: it takes effect at the "
                     "next restart, not now",
                     fixed[i], next->file);
            buf_puts(notes, notes->len ? "," : "");
            buf_json_str(notes, fixed[i]);
        }
    }
}

enum reload_status reload_run(const char *path, int wait, buf_t *out)
{
    char err[1024];
    struct config *cfg = NULL;
    buf_t notes;

    if (wait)
        pthread_mutex_lock(&reload_lock);
    else if (pthread_mutex_trylock(&reload_lock) != 0) {
        error_json(out, "invalid_request_error", "reload_in_progress", NULL,
                   "a reload is already in progress");
        return RELOAD_BUSY;
    }
    const char *file = path ? path : server_main->cfg->file;
    uint64_t t0 = time_now_ms();
    buf_init(&notes);
    if (config_load(file, &cfg, err, sizeof err) != 0)
        goto fail;
    struct generation *next = generation_build(cfg, err, sizeof err);
    if (!next)
        goto fail;
    warn_static_changes(server_main->cfg, cfg, &notes);
    struct generation *prev = generation_pin();
    int carried = generation_migrate(prev, next);
    generation_publish(next);
    atomic_fetch_add(&pipeline_stats.reloads, 1);
    log_info("reload: generation %llu from %s is live (%zu stages, state "
             "carried by %d, %llu ms); generation %llu retires when its "
             "last request ends",
             (unsigned long long)next->id, file, next->nstages, carried,
             (unsigned long long)(time_now_ms() - t0),
             (unsigned long long)(prev ? prev->id : 0));
    if (!generation_find(next, "auth"))
        log_warn("no auth stage in the reloaded pipeline: any client that "
                 "reaches this port can use the upstream keys");
    buf_printf(out, "{\"generation\":%llu,\"previous\":%llu,\"file\":",
               (unsigned long long)next->id,
               (unsigned long long)(prev ? prev->id : 0));
    buf_json_str(out, file);
    buf_printf(out,
               ",\"state_carried\":%d,\"restart_needed_for\":[%s],"
               "\"stages\":",
               carried, notes.data ? notes.data : "");
    stages_json(next, out);
    buf_puts(out, "}");
    generation_unpin(prev);
    config_free(cfg);
    buf_release(&notes);
    pthread_mutex_unlock(&reload_lock);
    return RELOAD_OK;
fail:
    atomic_fetch_add(&pipeline_stats.reload_failures, 1);
    log_error("reload failed, the running pipeline is unchanged: %s", err);
    error_json(out, "invalid_request_error", "reload_failed", NULL, err);
    config_free(cfg);
    buf_release(&notes);
    pthread_mutex_unlock(&reload_lock);
    return RELOAD_FAILED;
}
