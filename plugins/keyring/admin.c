/*
 * admin.c - what the keyring tells its operator: the admin actions
 * (POST /admin/reload-keys, POST /admin/reset-failed-keys, GET /admin/keys)
 * and the status object in /health. Keys appear only by label or masked
 * ("sk-…abcd"), never whole. With several upstreams each action takes an
 * optional {"upstream":"name"} (GET: ?upstream=name) and defaults to all;
 * /health reports keys usable / total and a state per upstream.
 */
#include "keyring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int admin_error(const sluice_host *H, sluice_buf *out, int status,
                       const char *code, const char *message)
{
    H->buf_printf(out, "{\"error\":{\"message\":");
    H->buf_json_str(out, message);
    H->buf_printf(out,
                  ",\"type\":\"invalid_request_error\",\"param\":null,"
                  "\"code\":\"%s\"}}",
                  code);
    return status;
}

static int admin_method(const sluice_host *H, const char *method,
                        const char *want, sluice_buf *out)
{
    char msg[64];
    if (!strcmp(method, want) ||
        (!strcmp(want, "GET") && !strcmp(method, "HEAD")))
        return 0;
    snprintf(msg, sizeof msg, "use %s", want);
    return admin_error(H, out, 405, "method_not_allowed", msg);
}

/* The optional {"upstream": name} of an action: 0 with *name (NULL: all),
 * or the HTTP status of an error written to out. */
static int admin_target(struct keyring *kr, const char *body, size_t len,
                        char *name, size_t namelen, sluice_buf *out)
{
    const sluice_host *H = kr->host;
    char err[128];
    name[0] = '\0';
    if (!body || !len)
        return 0;
    sluice_json *doc = H->json_parse(body, len, err, sizeof err);
    const char *up = H->json_str(H->json_get(doc, "upstream"));
    if (up)
        snprintf(name, namelen, "%s", up);
    H->json_free(doc);
    if (name[0] && !keyring_pool_find(kr, name)) {
        snprintf(err, sizeof err, "no key pool for upstream '%.64s'", name);
        return admin_error(H, out, 404, "unknown_upstream", err);
    }
    return 0;
}

static int admin_reload(void *instance, const char *method, const char *body,
                        size_t body_len, sluice_buf *out)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *first = instance, *kr;
    size_t np = first->npeers + 1, n = 0;
    char err[512], want[80];
    int st = admin_method(H, method, "POST", out);
    if (st ||
        (st = admin_target(first, body, body_len, want, sizeof want, out)))
        return st;
    struct done {
        struct keyring *kr;
        size_t added, removed, kept;
    } *d = calloc(np, sizeof *d);
    if (!d)
        return admin_error(H, out, 500, "out_of_memory", "out of memory");
    /* each pool reloads alone: a bad file leaves that pool and the ones
     * after it unchanged, and the answer says which */
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++) {
        if (want[0] && strcmp(want, kr->upstream))
            continue;
        if (keyring_reload(kr, &d[n].added, &d[n].removed, &d[n].kept, err,
                           sizeof err) != 0) {
            char msg[640];
            H->log(kr->self, SLUICE_LOG_WARN,
                   "reload-keys refused (upstream %s): %s", kr->upstream, err);
            snprintf(
                msg, sizeof msg, "%s%s%s", first->npeers ? "upstream " : "",
                first->npeers ? kr->upstream : "", first->npeers ? ": " : "");
            strncat(msg, err, sizeof msg - strlen(msg) - 1);
            free(d);
            return admin_error(H, out, 422, "keys_file_invalid", msg);
        }
        d[n++].kr = kr;
        kr_shared_reload_all(kr); /* and every other instance of the fleet */
        H->log(kr->self, SLUICE_LOG_INFO,
               "keys of upstream %s reloaded from %s: %zu kept, %zu added, "
               "%zu removed",
               kr->upstream, kr->keys_file, d[n - 1].kept, d[n - 1].added,
               d[n - 1].removed);
    }
    H->buf_printf(out, "{\"reloaded\":true,\"upstreams\":[");
    for (size_t i = 0; i < n; i++) {
        H->buf_printf(out, "%s{\"upstream\":", i ? "," : "");
        H->buf_json_str(out, d[i].kr->upstream);
        H->buf_printf(out,
                      ",\"keys\":%zu,\"kept\":%zu,\"added\":%zu,"
                      "\"removed\":%zu}",
                      d[i].kept + d[i].added, d[i].kept, d[i].added,
                      d[i].removed);
    }
    H->buf_printf(out, "]");
    if (n == 1) /* one pool: its counts at the top, as they always were */
        H->buf_printf(out,
                      ",\"keys\":%zu,\"kept\":%zu,\"added\":%zu,"
                      "\"removed\":%zu",
                      d[0].kept + d[0].added, d[0].kept, d[0].added,
                      d[0].removed);
    H->buf_printf(out, "}");
    free(d);
    return 200;
}

static int admin_reset(void *instance, const char *method, const char *body,
                       size_t body_len, sluice_buf *out)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *first = instance, *kr;
    char want[80];
    size_t n = 0;
    int st = admin_method(H, method, "POST", out);
    if (st ||
        (st = admin_target(first, body, body_len, want, sizeof want, out)))
        return st;
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++)
        if (!want[0] || !strcmp(want, kr->upstream))
            n += keyring_reset_failed(kr);
    H->log(first->self, SLUICE_LOG_INFO,
           "reset-failed-keys%s%s: %zu key(s) reset",
           want[0] ? " upstream " : "", want, n);
    H->buf_printf(out, "{\"reset\":%zu}", n);
    return 200;
}

static void rfc3339(uint64_t wall_ms, char *out, size_t outlen)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000));
}

static void render_key(struct keyring *kr, struct key *k, uint64_t now,
                       uint64_t wall, sluice_buf *out)
{
    const sluice_host *H = kr->host;
    char err[96], when[64], by[64];
    enum key_state st = key_state_at(k, now);
    H->buf_printf(out, "{\"name\":");
    H->buf_json_str(out, k->name);
    H->buf_printf(out, ",\"state\":\"%s\"", key_state_name(st));
    if (st == KEY_COOLING) {
        uint64_t left = atomic_load(&k->cool_until) - now;
        rfc3339(wall + left, when, sizeof when);
        H->buf_printf(out, ",\"cooldown_until\":\"%s\",\"cooldown_s\":%.1f",
                      when, (double)left / 1000.0);
    } else {
        H->buf_printf(out, ",\"cooldown_until\":null,\"cooldown_s\":0");
    }
    H->buf_printf(out,
                  ",\"inflight\":%d,\"requests\":%llu,\"successes\":%llu,"
                  "\"failures\":{",
                  atomic_load(&k->inflight),
                  (unsigned long long)atomic_load(&k->requests),
                  (unsigned long long)atomic_load(&k->successes));
    unsigned long long total = 0;
    for (int o = OUT_AUTH; o < OUT__N; o++) {
        unsigned long long n = atomic_load(&k->failures[o]);
        total += n;
        H->buf_printf(out, "%s\"%s\":%llu", o == OUT_AUTH ? "" : ",",
                      key_outcome_name((enum key_outcome)o), n);
    }
    key_last_error(k, err, sizeof err);
    H->buf_printf(out, ",\"total\":%llu},\"last_error\":", total);
    if (err[0])
        H->buf_json_str(out, err);
    else
        H->buf_printf(out, "null");
    /* the instance whose record says why the key is not healthy */
    const char *who = kr_shared_changed_by(kr, k, by, sizeof by);
    H->buf_printf(out, ",\"changed_by\":");
    if (who)
        H->buf_json_str(out, who);
    else
        H->buf_printf(out, "null");
    H->buf_printf(out, "%s", "}");
}

int keyring_render_keys(struct keyring *kr, sluice_buf *out)
{
    const sluice_host *H = kr->host;
    struct keyset *s = keyring_acquire(kr);
    uint64_t now = kr->now(), wall = kr->wall();
    H->buf_printf(out, "{\"upstream\":");
    H->buf_json_str(out, kr->upstream);
    H->buf_printf(out, ",\"strategy\":\"%s\",\"keys\":[",
                  kr->strategy == STRAT_ROUND_ROBIN ? "round_robin"
                                                    : "least_inflight");
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            H->buf_printf(out, ",");
        render_key(kr, &s->keys[i], now, wall, out);
    }
    H->buf_printf(out, "]}");
    keyset_unref(s);
    return 0;
}

static int admin_keys(void *instance, const char *method, const char *body,
                      size_t body_len, sluice_buf *out)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *first = instance, *kr;
    char want[80];
    size_t n = 0;
    int st = admin_method(H, method, "GET", out);
    if (st ||
        (st = admin_target(first, body, body_len, want, sizeof want, out)))
        return st;
    if (!first->npeers) { /* one pool: its document as it always was */
        keyring_probe_maybe(first);
        keyring_render_keys(first, out);
        return 200;
    }
    H->buf_printf(out, "{\"upstreams\":[");
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++) {
        if (want[0] && strcmp(want, kr->upstream))
            continue;
        keyring_probe_maybe(kr);
        if (n++)
            H->buf_printf(out, ",");
        keyring_render_keys(kr, out);
    }
    H->buf_printf(out, "]}");
    return 200;
}

/* Key counts by state of one pool: n[KEY_HEALTHY..KEY_FAILED]. */
static void pool_counts(struct keyring *kr, size_t n[3], size_t *total)
{
    keyring_probe_maybe(kr);
    struct keyset *s = keyring_acquire(kr);
    uint64_t now = kr->now();
    for (size_t i = 0; i < s->n; i++)
        n[key_state_at(&s->keys[i], now)]++;
    *total += s->n;
    keyset_unref(s);
}

int keyring_status(void *instance, sluice_buf *out)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *first = instance, *kr;
    size_t n[3] = {0, 0, 0}, total = 0;
    int all_usable = 1;
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++) {
        size_t m[3] = {0, 0, 0}, t = 0;
        pool_counts(kr, m, &t);
        for (int k = 0; k < 3; k++)
            n[k] += m[k];
        total += t;
        all_usable &= m[KEY_HEALTHY] > 0;
    }
    /* healthy while every upstream has a usable key */
    H->buf_printf(out,
                  "{\"healthy\":%s,\"keys\":{\"total\":%zu,\"healthy\":%zu,"
                  "\"cooling\":%zu,\"failed\":%zu},\"upstreams\":{",
                  all_usable ? "true" : "false", total, n[KEY_HEALTHY],
                  n[KEY_COOLING], n[KEY_FAILED]);
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++) {
        size_t m[3] = {0, 0, 0}, t = 0;
        pool_counts(kr, m, &t);
        H->buf_printf(out, "%s", i ? "," : "");
        H->buf_json_str(out, kr->upstream);
        H->buf_printf(out,
                      ":{\"state\":\"%s\",\"keys_usable\":%zu,"
                      "\"keys_total\":%zu,\"cooling\":%zu,\"failed\":%zu}",
                      m[KEY_HEALTHY] == t ? "ok"
                      : m[KEY_HEALTHY]    ? "degraded"
                                          : "down",
                      m[KEY_HEALTHY], t, m[KEY_COOLING], m[KEY_FAILED]);
    }
    H->buf_printf(out, "}}");
    return 0;
}

int keyring_admin_register(struct keyring *kr)
{
    const sluice_host *H = kr->host;
    if (H->admin_register(kr->self, "reload-keys", "reload-keys",
                          admin_reload) ||
        H->admin_register(kr->self, "reset-failed-keys", "reset-failed-keys",
                          admin_reset) ||
        H->admin_register(kr->self, "keys", "keys", admin_keys))
        return -1;
    return 0;
}
