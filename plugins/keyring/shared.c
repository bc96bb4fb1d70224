/*
 * shared.c - key health in the core's shared state (SDK ABI 1.1), so that a
 * failed or cooling key stays so across a restart (local backend: the
 * state file) and on every instance of a fleet (redis backend).
 *
 * A key that is failed or cooling has one record, keyed by its pool and a
 * hash of the key (never the key):
 *
 *   health:<pool>:<16 hex>  {"v":1,"state":"cooling","until_ms":<wall>,
 *                            "reason":"rate limited (429)"}
 *
 * a healthy key has none. This instance writes the record on each
 * transition; a watch applies every record (this instance's own too:
 * notifications come in order, so the last one wins) to the matching key
 * of the current set. A fleet-wide reload-keys is a record "cmd:reload"
 * every instance watches. Without the state API (an older core) nothing
 * here runs and the keyring keeps its health in memory as before.
 */
#include "keyring.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The pool a key belongs to: one per upstream ("default" in the legacy
 * single-upstream form, as before pools existed). */
static const char *kr_pool(const struct keyring *kr)
{
    return kr->upstream ? kr->upstream : "default";
}

/* The fleet-wide reload command of this pool: "cmd:reload" for the
 * default pool (as before), "cmd:reload:<upstream>" for the others. */
static void cmd_key(const struct keyring *kr, char *out, size_t n)
{
    if (!strcmp(kr_pool(kr), "default"))
        snprintf(out, n, "cmd:reload");
    else
        snprintf(out, n, "cmd:reload:%s", kr_pool(kr));
}

static int shared_on(const struct keyring *kr)
{
    const sluice_host *H = kr->host;
    return kr->shared && SLUICE_HOST_HAS(H, state_list);
}

static void health_key(const struct keyring *kr, const struct key *k, char *out,
                       size_t n)
{
    snprintf(out, n, "health:%s:%016" PRIx64, kr_pool(kr), k->id_hash);
}

void kr_shared_publish(struct keyring *kr, struct key *k)
{
    const sluice_host *H = kr->host;
    char key[128], err[96];
    if (!shared_on(kr))
        return;
    health_key(kr, k, key, sizeof key);
    uint64_t now = kr->now(), wall = kr->wall();
    enum key_state st = key_state_at(k, now);
    if (st == KEY_HEALTHY) {
        H->state_del(kr->self, key);
        return;
    }
    uint64_t left = st == KEY_COOLING ? atomic_load(&k->cool_until) - now : 0;
    char doc[320];
    key_last_error(k, err, sizeof err);
    for (char *p = err; *p; p++) /* a reason is short text: keep JSON simple */
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = ' ';
    int n = snprintf(doc, sizeof doc,
                     "{\"v\":1,\"state\":\"%s\",\"until_ms\":%llu,"
                     "\"reason\":\"%s\"}",
                     key_state_name(st),
                     (unsigned long long)(left ? wall + left : 0), err);
    /* a cooling record outlives its deadline a little, then goes */
    H->state_put(kr->self, key, doc, (size_t)n, left ? left + 1000 : 0);
}

static struct key *find_by_hash(struct keyset *s, uint64_t h)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->keys[i].id_hash == h)
            return &s->keys[i];
    return NULL;
}

/* A health record (or its deletion) from any instance. */
static void apply_health(struct keyring *kr, const sluice_state_value *v)
{
    const sluice_host *H = kr->host;
    const char *id = strrchr(v->key, ':');
    char *end;
    uint64_t h = id ? strtoull(id + 1, &end, 16) : 0;
    if (!id || *end)
        return;
    struct keyset *s = keyring_acquire(kr);
    struct key *k = find_by_hash(s, h);
    uint64_t now = kr->now(), wall = kr->wall();
    sluice_json *doc = NULL;
    if (!k)
        goto out;
    enum key_state before = key_state_at(k, now);
    if (!v->found) {
        if (before != KEY_HEALTHY)
            key_reset(k);
        goto out;
    }
    char err[64];
    doc = H->json_parse(v->data, v->len, err, sizeof err);
    const char *st = H->json_str(H->json_get(doc, "state"));
    uint64_t until = (uint64_t)H->json_int(H->json_get(doc, "until_ms"));
    const char *why = H->json_str(H->json_get(doc, "reason"));
    if (why && *why) {
        pthread_mutex_lock(&k->lock);
        snprintf(k->last_error, sizeof k->last_error, "%s", why);
        pthread_mutex_unlock(&k->lock);
    }
    if (st && !strcmp(st, "failed")) {
        key_set_state(k, KEY_FAILED, 0);
    } else if (st && !strcmp(st, "cooling") && until > wall) {
        uint64_t at = now + (until - wall);
        if (before != KEY_COOLING || atomic_load(&k->cool_until) < at)
            key_set_state(k, KEY_COOLING, at);
    } else
        goto out;
    enum key_state after = key_state_at(k, now);
    if (after != before)
        H->log(kr->self, SLUICE_LOG_WARN, "key %s is %s (shared state, by %s)",
               k->name, key_state_name(after), v->origin);
out:
    if (doc)
        H->json_free(doc);
    keyset_unref(s);
}

/* Another instance (or this one, after its own reload) asked every
 * instance to reload its keys file. */
static void apply_cmd(struct keyring *kr, const sluice_state_value *v)
{
    const sluice_host *H = kr->host;
    char stamp[32];
    size_t added, removed, kept;
    char err[256];
    if (!v->found || !v->data)
        return;
    snprintf(stamp, sizeof stamp, "%.*s", (int)(v->len < 31 ? v->len : 31),
             v->data);
    if (!strcmp(stamp, kr->reload_stamp))
        return; /* ours, or already done */
    snprintf(kr->reload_stamp, sizeof kr->reload_stamp, "%s", stamp);
    if (kr->shared_replaying)
        return; /* an old request: nothing to do at start */
    if (keyring_reload(kr, &added, &removed, &kept, err, sizeof err) != 0)
        H->log(kr->self, SLUICE_LOG_WARN,
               "reload-keys (asked by %s) refused: %s", v->origin, err);
    else
        H->log(kr->self, SLUICE_LOG_INFO,
               "keys reloaded from %s (asked by %s): %zu kept, %zu added, "
               "%zu removed",
               kr->keys_file, v->origin, kept, added, removed);
}

static void on_change(void *arg, const sluice_state_value *v)
{
    struct keyring *kr = arg;
    char cmd[96];
    cmd_key(kr, cmd, sizeof cmd);
    if (!strncmp(v->key, "health:", 7))
        apply_health(kr, v);
    else if (!strcmp(v->key, cmd))
        apply_cmd(kr, v);
}

int kr_shared_start(struct keyring *kr, char *err, size_t errlen)
{
    const sluice_host *H = kr->host;
    char prefix[96];
    if (!kr->shared || !SLUICE_HOST_HAS(H, state_list)) {
        kr->shared = 0;
        return 0;
    }
    snprintf(kr->reload_stamp, sizeof kr->reload_stamp, "%016" PRIx64 "-0",
             (uint64_t)(uintptr_t)kr ^ kr->wall());
    kr->shared_replaying = 1;
    snprintf(prefix, sizeof prefix, "health:%s:", kr_pool(kr));
    int rc = H->state_watch(kr->self, prefix, on_change, kr);
    if (rc == 0)
        rc = H->state_watch(kr->self, "cmd:", on_change, kr);
    kr->shared_replaying = 0;
    if (rc != 0) {
        snprintf(err, errlen, "cannot watch the shared state");
        return -1;
    }
    return 0;
}

void kr_shared_reload_all(struct keyring *kr)
{
    const sluice_host *H = kr->host;
    char cmd[96];
    if (!shared_on(kr))
        return;
    cmd_key(kr, cmd, sizeof cmd);
    snprintf(kr->reload_stamp, sizeof kr->reload_stamp, "%016" PRIx64 "-%llu",
             (uint64_t)(uintptr_t)kr ^ kr->wall(),
             (unsigned long long)kr->wall());
    H->state_put(kr->self, cmd, kr->reload_stamp, strlen(kr->reload_stamp), 0);
}

struct origin_find {
    char key[128];
    const char *origin;
    char buf[64];
};

static void origin_fn(void *arg, const sluice_state_value *v)
{
    struct origin_find *f = arg;
    snprintf(f->buf, sizeof f->buf, "%s", v->origin);
    f->origin = f->buf;
}

const char *kr_shared_changed_by(struct keyring *kr, const struct key *k,
                                 char *out, size_t n)
{
    const sluice_host *H = kr->host;
    struct origin_find f = {.origin = NULL};
    if (!shared_on(kr))
        return NULL;
    health_key(kr, k, f.key, sizeof f.key);
    H->state_list(kr->self, f.key, origin_fn, &f);
    if (!f.origin)
        return NULL;
    snprintf(out, n, "%s", f.origin);
    return out;
}
