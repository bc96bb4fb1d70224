/*
 * upstream_models.c - fetch the upstream's GET /models once per stage
 * instance and keep the entries the table does not have, rendered, behind
 * one atomic pointer (see upstream_models.h).
 */
#include "upstream_models.h"

#include "routed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first key of a keys file: the first token of the first line that is
 * not blank or a comment. Caller frees (and wipes). */
static char *first_key(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    if (!f) {
        snprintf(err, errlen, "models_from_upstream.keys_file %s: cannot open",
                 path);
        return NULL;
    }
    char *key = NULL;
    while (!key && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        size_t n = strcspn(p, " \t\r\n");
        if (n && *p != '#')
            key = strndup(p, n);
    }
    memset(line, 0, sizeof line);
    fclose(f);
    if (!key)
        snprintf(err, errlen, "models_from_upstream.keys_file %s: no key",
                 path);
    return key;
}

static void fetched(void *arg, int status, const char *body, size_t len)
{
    struct upstream_models *u = arg;
    const sluice_host *H = u->H;
    sluice_json *doc = status == 200 ? H->json_parse(body, len, NULL, 0) : NULL;
    const sluice_json *data = H->json_get(doc, "data");
    if (H->json_type(data) != SLUICE_JSON_ARRAY) {
        H->log(u->self, SLUICE_LOG_WARN,
               "models_from_upstream: GET /models %s; /v1/models lists the "
               "table only",
               status ? "did not answer a model list" : "got no answer");
        if (doc)
            H->json_free(doc);
        return;
    }
    /* sluice_buf is the host's: build the fragment in plain memory */
    size_t cap = 256, n = 0, added = 0;
    char *out = malloc(cap);
    for (size_t i = 0; out && i < H->json_size(data); i++) {
        const sluice_json *m = H->json_at(data, i);
        const char *id = H->json_str(H->json_get(m, "id"));
        const char *owner = H->json_str(H->json_get(m, "owned_by"));
        if (!id || !*id || strpbrk(id, "\"\\") ||
            (owner && strpbrk(owner, "\"\\")) || models_find(u->table, id) ||
            routed_find(H, u->routes, id))
            continue; /* the table's entry wins; odd ids are skipped */
        size_t need = strlen(id) + (owner ? strlen(owner) : 8) + 96;
        if (n + need >= cap) {
            char *g = realloc(out, cap = (n + need) * 2);
            if (!g) {
                free(out);
                out = NULL;
                break;
            }
            out = g;
        }
        n += (size_t)snprintf(out + n, cap - n,
                              ",{\"id\":\"%s\",\"object\":\"model\","
                              "\"created\":%lld,\"owned_by\":\"%s\"}",
                              id, (long long)u->created,
                              owner ? owner : "upstream");
        added++;
    }
    H->json_free(doc);
    if (!out) {
        H->log(u->self, SLUICE_LOG_WARN, "models_from_upstream: out of memory");
        return;
    }
    out[n] = '\0';
    char *old = atomic_exchange(&u->extra, out);
    free(old);
    H->log(u->self, SLUICE_LOG_INFO,
           "models_from_upstream: %zu models from the upstream beside the "
           "table's %zu",
           added, u->table->n);
}

int upstream_models_start(struct upstream_models *u, const char *key_file,
                          char *err, size_t errlen)
{
    const sluice_host *H = u->H;
    char *key = NULL, auth[4200];
    if (!SLUICE_HOST_HAS(H, http_fetch) || !H->http_fetch) {
        snprintf(err, errlen,
                 "models_from_upstream needs sluice with ABI >= 1.1 "
                 "(http_fetch)");
        return -1;
    }
    if (key_file && !(key = first_key(key_file, err, errlen)))
        return -1;
    if (key)
        snprintf(auth, sizeof auth, "Bearer %s", key);
    int rc = H->http_fetch(u->self, "/models", key ? auth : NULL, fetched, u);
    if (key) {
        memset(key, 0, strlen(key));
        memset(auth, 0, sizeof auth);
        free(key);
    }
    if (rc != 0)
        H->log(u->self, SLUICE_LOG_WARN,
               "models_from_upstream: could not queue GET /models");
    return 0;
}

const char *upstream_models_extra(struct upstream_models *u)
{
    const char *e = atomic_load(&u->extra);
    return e ? e : "";
}

void upstream_models_free(struct upstream_models *u)
{
    free(atomic_exchange(&u->extra, NULL));
}
