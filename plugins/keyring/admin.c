/*
 * admin.c - what the keyring tells its operator: the admin actions
 * (POST /admin/reload-keys, POST /admin/reset-failed-keys, GET /admin/keys)
 * and the status object in /health. Keys appear only by label or masked
 * ("sk-…abcd"), never whole.
 */
#include "keyring.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define H kr_host

static int admin_error(sluice_buf *out, int status, const char *code,
                       const char *message)
{
    H->buf_printf(out, "{\"error\":{\"message\":");
    H->buf_json_str(out, message);
    H->buf_printf(out,
                  ",\"type\":\"invalid_request_error\",\"param\":null,"
                  "\"code\":\"%s\"}}",
                  code);
    return status;
}

static int admin_method(const char *method, const char *want, sluice_buf *out)
{
    char msg[64];
    if (!strcmp(method, want) ||
        (!strcmp(want, "GET") && !strcmp(method, "HEAD")))
        return 0;
    snprintf(msg, sizeof msg, "use %s", want);
    return admin_error(out, 405, "method_not_allowed", msg);
}

static int admin_reload(void *instance, const char *method, const char *body,
                        size_t body_len, sluice_buf *out)
{
    struct keyring *kr = instance;
    size_t added, removed, kept;
    char err[512];
    int st = admin_method(method, "POST", out);
    (void)body;
    (void)body_len;
    if (st)
        return st;
    if (keyring_reload(kr, &added, &removed, &kept, err, sizeof err) != 0) {
        H->log(kr->self, SLUICE_LOG_WARN, "reload-keys refused: %s", err);
        return admin_error(out, 422, "keys_file_invalid", err);
    }
    H->log(kr->self, SLUICE_LOG_INFO,
           "keys reloaded from %s: %zu kept, %zu added, %zu removed",
           kr->keys_file, kept, added, removed);
    kr_shared_reload_all(kr); /* and every other instance of the fleet */
    H->buf_printf(out,
                  "{\"reloaded\":true,\"keys\":%zu,\"kept\":%zu,"
                  "\"added\":%zu,\"removed\":%zu}",
                  kept + added, kept, added, removed);
    return 200;
}

static int admin_reset(void *instance, const char *method, const char *body,
                       size_t body_len, sluice_buf *out)
{
    struct keyring *kr = instance;
    int st = admin_method(method, "POST", out);
    (void)body;
    (void)body_len;
    if (st)
        return st;
    size_t n = keyring_reset_failed(kr);
    H->log(kr->self, SLUICE_LOG_INFO, "reset-failed-keys: %zu key(s) reset", n);
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
    struct keyset *s = keyring_acquire(kr);
    uint64_t now = kr->now(), wall = kr->wall();
    H->buf_printf(out, "{\"strategy\":\"%s\",\"keys\":[",
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
    struct keyring *kr = instance;
    int st = admin_method(method, "GET", out);
    (void)body;
    (void)body_len;
    if (st)
        return st;
    keyring_probe_maybe(kr);
    keyring_render_keys(kr, out);
    return 200;
}

int keyring_status(void *instance, sluice_buf *out)
{
    struct keyring *kr = instance;
    keyring_probe_maybe(kr);
    struct keyset *s = keyring_acquire(kr);
    uint64_t now = kr->now();
    size_t n[3] = {0, 0, 0};
    for (size_t i = 0; i < s->n; i++)
        n[key_state_at(&s->keys[i], now)]++;
    H->buf_printf(out,
                  "{\"healthy\":%s,\"keys\":{\"total\":%zu,\"healthy\":%zu,"
                  "\"cooling\":%zu,\"failed\":%zu}}",
                  n[KEY_HEALTHY] ? "true" : "false", s->n, n[KEY_HEALTHY],
                  n[KEY_COOLING], n[KEY_FAILED]);
    keyset_unref(s);
    return 0;
}

int keyring_admin_register(struct keyring *kr)
{
    if (H->admin_register(kr->self, "reload-keys", "reload-keys",
                          admin_reload) ||
        H->admin_register(kr->self, "reset-failed-keys", "reset-failed-keys",
                          admin_reset) ||
        H->admin_register(kr->self, "keys", "keys", admin_keys))
        return -1;
    return 0;
}
