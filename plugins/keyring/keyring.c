/*
 * keyring.c - the keyring stage: holds the upstream API keys and sets
 * "Authorization: Bearer <key>" on every upstream attempt, round-robin over
 * the keys. (Thin for now: health tracking, cooldowns and admin actions come
 * with the high-availability work.)
 *
 * Config: keys_file (default data/keys.txt): one key a line, blank lines and
 * '#' comments ignored, an optional label after whitespace.
 */
#include "sluice.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const sluice_host *H;

struct keyring {
    sluice_stage *self;
    char **keys;
    char **auth; /* "Bearer <key>", built once */
    size_t nkeys;
    atomic_size_t next;
};

static void keyring_free(struct keyring *kr)
{
    for (size_t i = 0; kr && i < kr->nkeys; i++) {
        free(kr->keys[i]);
        free(kr->auth[i]);
    }
    if (kr) {
        free(kr->keys);
        free(kr->auth);
    }
    free(kr);
}

static int keyring_add(struct keyring *kr, const char *key, size_t len)
{
    size_t n = kr->nkeys + 1;
    char **k = realloc(kr->keys, n * sizeof(*k));
    if (!k)
        return -1;
    kr->keys = k;
    char **a = realloc(kr->auth, n * sizeof(*a));
    if (!a)
        return -1;
    kr->auth = a;
    kr->keys[kr->nkeys] = strndup(key, len);
    kr->auth[kr->nkeys] = malloc(len + 8);
    if (!kr->keys[kr->nkeys] || !kr->auth[kr->nkeys]) {
        free(kr->keys[kr->nkeys]);
        free(kr->auth[kr->nkeys]);
        return -1;
    }
    snprintf(kr->auth[kr->nkeys], len + 8, "Bearer %.*s", (int)len, key);
    kr->nkeys++;
    return 0;
}

static int keyring_load(struct keyring *kr, const char *path, char *err,
                        size_t errlen)
{
    char line[4096];
    struct stat st;
    int lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "keys_file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        H->log(kr->self, SLUICE_LOG_WARN,
               "keys_file %s is readable by group or others: chmod 600 it",
               path);
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line + strspn(line, " \t\r\n");
        if (!*s || *s == '#')
            continue;
        size_t len = strcspn(s, " \t\r\n");
        if (keyring_add(kr, s, len) != 0) {
            fclose(f);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    fclose(f);
    if (kr->nkeys == 0) {
        snprintf(err, errlen, "keys_file %s holds no keys", path);
        return -1;
    }
    return 0;
}

static int keyring_init(const sluice_host *host, sluice_stage *self,
                        const sluice_json *config, void **instance, char *err,
                        size_t errlen)
{
    const char *path;
    H = host;
    if (host->cfg_str(config, "keys_file", "data/keys.txt", &path) != 0) {
        snprintf(err, errlen, "keys_file: expected a file path (string)");
        return -1;
    }
    struct keyring *kr = calloc(1, sizeof(*kr));
    if (!kr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    kr->self = self;
    if (keyring_load(kr, path, err, errlen) != 0) {
        keyring_free(kr);
        return -1;
    }
    H->log(self, SLUICE_LOG_INFO, "%zu upstream keys loaded from %s",
           kr->nkeys, path);
    *instance = kr;
    return 0;
}

static void keyring_destroy(void *instance)
{
    keyring_free(instance);
}

static sluice_verdict keyring_on_attempt(void *instance, sluice_ctx *ctx)
{
    struct keyring *kr = instance;
    size_t i = atomic_fetch_add(&kr->next, 1) % kr->nkeys;
    char masked[32];
    H->up_header_set(ctx, "Authorization", kr->auth[i]);
    H->attr_set(ctx, "key_id",
                H->mask_secret(kr->keys[i], masked, sizeof masked));
    return SLUICE_CONTINUE;
}

static int keyring_status(void *instance, sluice_buf *out)
{
    struct keyring *kr = instance;
    return H->buf_printf(out, "{\"keys\":%zu,\"healthy\":true}", kr->nkeys);
}

static const sluice_plugin keyring_plugin = {
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .size = sizeof(sluice_plugin),
    .name = "keyring",
    .version = "0.1.0",
    .description = "upstream API keys, round-robin",
    .init = keyring_init,
    .destroy = keyring_destroy,
    .on_attempt = keyring_on_attempt,
    .status = keyring_status,
};

SLUICE_PLUGIN_DEFINE(keyring_plugin)
