/*
 * state.c - the keyring's state across a hot reload (export_state /
 * import_state): per key, matched by a hash of the key (never the key),
 * its state, the end of its cooldown as wall-clock ms (so the document
 * also means something to another process), its counters.
 *
 *   {"version":1,"keys":[{"id":"<16 hex>","state":"cooling",
 *     "cooldown_until_ms":<wall ms>,"consecutive":0,"requests":..,
 *     "successes":..,"failures":{"auth":..,...},"last_error":".."}]}
 *
 * With several upstreams (one pool each), version 2:
 *   {"version":2,"pools":[{"upstream":"a","keys":[...as above...]}]}
 * A version 1 document is applied to every pool (keys match by hash).
 */
#include "keyring.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void export_pool(struct keyring *kr, sluice_buf *out)
{
    const sluice_host *H = kr->host;
    struct keyset *s = keyring_acquire(kr);
    uint64_t now = kr->now(), wall = kr->wall();
    char err[96];
    H->buf_printf(out, "[");
    for (size_t i = 0; i < s->n; i++) {
        struct key *k = &s->keys[i];
        enum key_state st = key_state_at(k, now);
        uint64_t until = 0;
        if (st == KEY_COOLING)
            until = wall + (atomic_load(&k->cool_until) - now);
        H->buf_printf(out,
                      "%s{\"id\":\"%016" PRIx64 "\",\"state\":\"%s\","
                      "\"cooldown_until_ms\":%llu,\"consecutive\":%u,"
                      "\"cool_streak\":%u,\"requests\":%llu,"
                      "\"successes\":%llu,\"failures\":{",
                      i ? "," : "", k->id_hash, key_state_name(st),
                      (unsigned long long)until,
                      (unsigned)atomic_load(&k->consecutive),
                      (unsigned)atomic_load(&k->cool_streak),
                      (unsigned long long)atomic_load(&k->requests),
                      (unsigned long long)atomic_load(&k->successes));
        for (int o = OUT_AUTH; o < OUT__N; o++)
            H->buf_printf(out, "%s\"%s\":%llu", o == OUT_AUTH ? "" : ",",
                          key_outcome_name((enum key_outcome)o),
                          (unsigned long long)atomic_load(&k->failures[o]));
        key_last_error(k, err, sizeof err);
        H->buf_printf(out, "},\"last_error\":");
        H->buf_json_str(out, err);
        H->buf_printf(out, "}");
    }
    H->buf_printf(out, "]");
    keyset_unref(s);
}

int keyring_export_state(void *instance, sluice_buf *out)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *first = instance, *kr;
    if (!first->npeers) {
        H->buf_printf(out, "{\"version\":1,\"keys\":");
        export_pool(first, out);
        H->buf_printf(out, "}");
        return 0;
    }
    H->buf_printf(out, "{\"version\":2,\"pools\":[");
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++) {
        H->buf_printf(out, "%s{\"upstream\":", i ? "," : "");
        H->buf_json_str(out, kr->upstream);
        H->buf_printf(out, ",\"keys\":");
        export_pool(kr, out);
        H->buf_printf(out, "}");
    }
    H->buf_printf(out, "]}");
    return 0;
}

static struct key *find_by_id(struct keyset *s, const char *id)
{
    char *end;
    if (!id)
        return NULL;
    uint64_t h = strtoull(id, &end, 16);
    if (*end || end == id)
        return NULL;
    for (size_t i = 0; i < s->n; i++)
        if (s->keys[i].id_hash == h)
            return &s->keys[i];
    return NULL;
}

static void import_key(struct keyring *kr, struct key *k, const sluice_json *e,
                       uint64_t now, uint64_t wall)
{
    const sluice_host *H = kr->host;
    const char *st = H->json_str(H->json_get(e, "state"));
    uint64_t until_wall =
        (uint64_t)H->json_int(H->json_get(e, "cooldown_until_ms"));
    if (st && !strcmp(st, "failed"))
        key_set_state(k, KEY_FAILED, 0);
    else if (st && !strcmp(st, "cooling") && until_wall > wall)
        key_set_state(k, KEY_COOLING, now + (until_wall - wall));
    else
        key_set_state(k, KEY_HEALTHY, 0);
    atomic_store(&k->consecutive,
                 (unsigned)H->json_int(H->json_get(e, "consecutive")));
    atomic_store(&k->cool_streak,
                 (unsigned)H->json_int(H->json_get(e, "cool_streak")));
    atomic_store(&k->requests,
                 (uint64_t)H->json_int(H->json_get(e, "requests")));
    atomic_store(&k->successes,
                 (uint64_t)H->json_int(H->json_get(e, "successes")));
    const sluice_json *f = H->json_get(e, "failures");
    for (int o = OUT_AUTH; o < OUT__N; o++)
        atomic_store(&k->failures[o],
                     (uint64_t)H->json_int(H->json_get(
                         f, key_outcome_name((enum key_outcome)o))));
    const char *le = H->json_str(H->json_get(e, "last_error"));
    if (le) {
        pthread_mutex_lock(&k->lock);
        snprintf(k->last_error, sizeof k->last_error, "%s", le);
        pthread_mutex_unlock(&k->lock);
    }
    (void)kr;
}

static size_t import_pool(struct keyring *kr, const sluice_json *keys)
{
    const sluice_host *H = kr->host;
    struct keyset *s = keyring_acquire(kr);
    uint64_t now = kr->now(), wall = kr->wall();
    size_t matched = 0;
    for (size_t i = 0; i < H->json_size(keys); i++) {
        const sluice_json *e = H->json_at(keys, i);
        struct key *k = find_by_id(s, H->json_str(H->json_get(e, "id")));
        if (!k)
            continue;
        import_key(kr, k, e, now, wall);
        matched++;
    }
    keyset_unref(s);
    return matched;
}

int keyring_import_state(void *instance, const char *state, size_t len)
{
    const sluice_host *H = ((struct keyring *)instance)->host;
    struct keyring *first = instance, *kr;
    char err[128];
    size_t matched = 0;
    sluice_json *doc = H->json_parse(state, len, err, sizeof err);
    if (!doc) {
        H->log(first->self, SLUICE_LOG_WARN, "import_state: %s", err);
        return -1;
    }
    int64_t version = H->json_int(H->json_get(doc, "version"));
    if (version != 1 && version != 2) {
        H->log(first->self, SLUICE_LOG_WARN,
               "import_state: unknown version, state not carried");
        H->json_free(doc);
        return -1;
    }
    for (size_t i = 0; (kr = keyring_pool_at(first, i)); i++) {
        if (version == 1) {
            matched += import_pool(kr, H->json_get(doc, "keys"));
            continue;
        }
        const sluice_json *pools = H->json_get(doc, "pools");
        for (size_t j = 0; j < H->json_size(pools); j++) {
            const sluice_json *p = H->json_at(pools, j);
            const char *up = H->json_str(H->json_get(p, "upstream"));
            if (up && !strcmp(up, kr->upstream))
                matched += import_pool(kr, H->json_get(p, "keys"));
        }
    }
    H->json_free(doc);
    H->log(first->self, SLUICE_LOG_INFO, "state of %zu key(s) carried over",
           matched);
    return 0;
}
