/*
 * clients_file.h - the auth stage's clients file, parsed from text (no I/O
 * here: the stage reads the file, this file only understands it).
 *
 * One client a line:  <key> <name> [rpm=N] [tpm=N] [models=a,b,...]
 *                     [budget_tokens_day=N] [budget_tokens_month=N]
 *                     [budget_cost_month=X]
 * Blank lines and lines starting with '#' are ignored; fields are separated
 * by spaces or tabs; CRLF endings are accepted. Keys are kept only as their
 * SHA-256 digest: the text of a key never leaves the parser, and error
 * messages name the file and line, never the key.
 */
#ifndef SLUICE_AUTH_CLIENTS_FILE_H
#define SLUICE_AUTH_CLIENTS_FILE_H

#include "sha256.h"

#include <stddef.h>
#include <stdint.h>

#define CLIENT_NAME_MAX  64
#define CLIENT_KEY_MIN   8
#define CLIENT_KEY_MAX   256
#define CLIENT_LIMIT_MAX 1000000000LL

struct client_def {
    uint8_t key_hash[AUTH_SHA256_LEN];
    char name[CLIENT_NAME_MAX + 1];
    int64_t rpm;   /* requests a minute, 0 = unlimited */
    int64_t tpm;   /* estimated prompt tokens a minute, 0 = unlimited */
    char **models; /* allowed models, NULL = any; owned */
    size_t nmodels;
    int line;
    /* budgets for the usage stage, as validated decimal text ("" = none):
     * budget_tokens_day, budget_tokens_month, budget_cost_month */
    char budget[3][24];
};

/* The option names of budget[0..2]; also the request attributes auth sets
 * for the usage stage. */
extern const char *const client_budget_names[3];

struct client_defs {
    struct client_def *v;
    size_t n;
    size_t *by_hash; /* indices of v sorted by key_hash (lookup); owned */
    size_t *by_name; /* indices of v sorted by name; owned */
};

/* Parse text[0..len) (need not be NUL-terminated). `fname` names the file in
 * errors: "<fname>:<line>: <what>". On success fills *out (caller frees with
 * clients_defs_free) and returns 0; on error returns -1 and *out is empty.
 * An empty file (no clients) is an error. */
int clients_parse(const char *text, size_t len, const char *fname,
                  struct client_defs *out, char *err, size_t errlen);
void clients_defs_free(struct client_defs *d);

/* Index of the client whose key hashes to `hash`, or -1. A binary search
 * over the sorted digests, then a constant-time comparison of the one
 * candidate. The search's timing depends on where the presented key's
 * digest falls among the stored ones; that says nothing usable about any
 * key (finding a key from its SHA-256 digest is a preimage attack), and the
 * key text itself is never compared. O(log n): thousands of clients cost
 * what a few do. */
long clients_find(const struct client_defs *d,
                  const uint8_t hash[AUTH_SHA256_LEN]);

/* Index of the client named `name`, or -1 (binary search). */
long clients_find_name(const struct client_defs *d, const char *name);

/* 1 when the client may use `model`. */
int client_model_allowed(const struct client_def *c, const char *model);

#endif
