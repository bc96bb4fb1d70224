/*
 * clients_file.c - see clients_file.h. A line-oriented parser over a buffer:
 * split into fields, validate each, hash the key, reject duplicates (of keys
 * and of names: names key the rate-limit buckets).
 */
#include "clients_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELDS_MAX 16

struct line {
    const char *f[FIELDS_MAX];
    size_t flen[FIELDS_MAX];
    size_t n;
};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Split p[0..len) into fields; -1 when there are too many. */
static int line_split(const char *p, size_t len, struct line *l)
{
    size_t i = 0;
    l->n = 0;
    while (i < len) {
        while (i < len && is_space(p[i]))
            i++;
        if (i == len)
            break;
        if (l->n == FIELDS_MAX)
            return -1;
        if (p[i] == '#')
            break; /* a comment to the end of the line */
        size_t s = i;
        while (i < len && !is_space(p[i]))
            i++;
        l->f[l->n] = p + s;
        l->flen[l->n] = i - s;
        l->n++;
    }
    return 0;
}

static int name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
           c == '@';
}

static int key_ok(const char *k, size_t n)
{
    if (n < CLIENT_KEY_MIN || n > CLIENT_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] <= 0x20 || (unsigned char)k[i] >= 0x7f)
            return 0;
    return 1;
}

/* A decimal 1..CLIENT_LIMIT_MAX; -1 otherwise. */
static int64_t limit_parse(const char *s, size_t n)
{
    int64_t v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= 1 && v <= CLIENT_LIMIT_MAX ? v : -1;
}

static int models_parse(struct client_def *c, const char *s, size_t n)
{
    size_t count = 1;
    for (size_t i = 0; i < n; i++)
        count += s[i] == ',';
    c->models = calloc(count, sizeof(char *));
    if (!c->models)
        return -1;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ',')
            continue;
        if (i == start)
            return -1; /* empty item */
        c->models[c->nmodels] = strndup(s + start, i - start);
        if (!c->models[c->nmodels])
            return -1;
        c->nmodels++;
        start = i + 1;
    }
    return 0;
}

static void client_free(struct client_def *c)
{
    for (size_t i = 0; i < c->nmodels; i++)
        free(c->models[i]);
    free(c->models);
    c->models = NULL;
    c->nmodels = 0;
}

const char *const client_budget_names[3] = {
    "budget_tokens_day", "budget_tokens_month", "budget_cost_month"};

/* A budget's value: whole tokens 0..9e15 (i < 2), or a cost: a decimal
 * number >= 0 with at most 9 places. Copied as text into out. */
static int budget_parse(int i, const char *s, size_t n, char *out,
                        size_t outlen)
{
    size_t digits = 0, point = 0, frac = 0;
    if (n == 0 || n >= outlen)
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (s[k] >= '0' && s[k] <= '9') {
            digits++;
            frac += point;
        } else if (s[k] == '.' && !point && i == 2 && k && k + 1 < n)
            point = 1;
        else
            return -1;
    }
    if (digits - frac > 16 || frac > 9)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* One option "rpm=N" / "tpm=N" / "models=a,b" / "budget_...=N". */
static int option_parse(struct client_def *c, const char *f, size_t n,
                        const char **what)
{
    const char *eq = memchr(f, '=', n);
    if (!eq) {
        *what = "expected rpm=N, tpm=N or models=a,b after the name";
        return -1;
    }
    size_t kl = (size_t)(eq - f), vl = n - kl - 1;
    const char *v = eq + 1;
    if (kl == 3 && (!memcmp(f, "rpm", 3) || !memcmp(f, "tpm", 3))) {
        int64_t *dst = f[0] == 'r' ? &c->rpm : &c->tpm;
        if (*dst) {
            *what = "limit given twice";
            return -1;
        }
        *dst = limit_parse(v, vl);
        if (*dst < 0) {
            *what = "rpm/tpm must be an integer 1..1000000000 (omit it for "
                    "no limit)";
            return -1;
        }
        return 0;
    }
    if (kl == 6 && !memcmp(f, "models", 6)) {
        if (c->models) {
            *what = "models given twice";
            return -1;
        }
        if (models_parse(c, v, vl) != 0) {
            *what = "models must be a comma-separated list of model ids";
            return -1;
        }
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        if (kl != strlen(client_budget_names[i]) ||
            memcmp(f, client_budget_names[i], kl))
            continue;
        if (c->budget[i][0]) {
            *what = "budget given twice";
            return -1;
        }
        if (budget_parse(i, v, vl, c->budget[i], sizeof c->budget[i]) != 0) {
            static const char *const msg[3] = {
                "budget_tokens_day must be a whole number of tokens "
                "(0..9999999999999999)",
                "budget_tokens_month must be a whole number of tokens "
                "(0..9999999999999999)",
                "budget_cost_month must be a non-negative number in the usage "
                "stage's currency, at most 9 decimals (e.g. 25 or 12.50)"};
            *what = msg[i];
            return -1;
        }
        return 0;
    }
    *what =
        "unknown option (expected rpm=, tpm=, models= or budget_tokens_day=, "
        "budget_tokens_month=, budget_cost_month=)";
    return -1;
}

static int client_parse(struct client_def *c, const struct line *l,
                        const char **what)
{
    memset(c, 0, sizeof *c);
    if (l->n < 2) {
        *what = "expected '<key> <name> [rpm=N] [tpm=N] [models=a,b]'";
        return -1;
    }
    if (!key_ok(l->f[0], l->flen[0])) {
        *what = "the key must be 8..256 printable characters";
        return -1;
    }
    if (l->flen[1] > CLIENT_NAME_MAX) {
        *what = "the name is longer than 64 characters";
        return -1;
    }
    for (size_t i = 0; i < l->flen[1]; i++)
        if (!name_char_ok(l->f[1][i])) {
            *what = "the name may only hold letters, digits and _ - . @";
            return -1;
        }
    memcpy(c->name, l->f[1], l->flen[1]);
    c->name[l->flen[1]] = '\0';
    for (size_t i = 2; i < l->n; i++)
        if (option_parse(c, l->f[i], l->flen[i], what) != 0)
            return -1;
    auth_sha256(l->f[0], l->flen[0], c->key_hash);
    return 0;
}

/* qsort has no context argument: sort pointers into d->v, then turn them
 * back into indices, so no file-scope pointer is needed (two instances may
 * parse at once). */
static int by_hash_cmp(const void *a, const void *b)
{
    return memcmp((*(const struct client_def *const *)a)->key_hash,
                  (*(const struct client_def *const *)b)->key_hash,
                  AUTH_SHA256_LEN);
}

static int by_name_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct client_def *const *)a)->name,
                  (*(const struct client_def *const *)b)->name);
}

/* Fill idx with the indices of d->v in the order cmp gives. 0, or -1. */
static int defs_sort(const struct client_defs *d, size_t *idx,
                     int (*cmp)(const void *, const void *))
{
    const struct client_def **p = malloc((d->n ? d->n : 1) * sizeof(*p));
    if (!p)
        return -1;
    for (size_t i = 0; i < d->n; i++)
        p[i] = &d->v[i];
    qsort(p, d->n, sizeof(*p), cmp);
    for (size_t i = 0; i < d->n; i++)
        idx[i] = (size_t)(p[i] - d->v);
    free(p);
    return 0;
}

/* Sort the lookup index; report a duplicate key or name (naming both
 * lines) in err. 0, or -1. */
static int defs_index(struct client_defs *d, const char *fname, char *err,
                      size_t errlen)
{
    size_t *by_name = d->by_name = malloc(d->n * sizeof(size_t));
    d->by_hash = malloc(d->n * sizeof(size_t));
    if (!by_name || !d->by_hash || defs_sort(d, d->by_hash, by_hash_cmp) ||
        defs_sort(d, by_name, by_name_cmp)) {
        snprintf(err, errlen, "%s: out of memory", fname);
        return -1;
    }
    int rc = 0;
    for (size_t i = 1; i < d->n && !rc; i++) {
        const struct client_def *a = &d->v[d->by_hash[i - 1]],
                                *b = &d->v[d->by_hash[i]];
        const struct client_def *x = &d->v[by_name[i - 1]],
                                *y = &d->v[by_name[i]];
        if (!memcmp(a->key_hash, b->key_hash, AUTH_SHA256_LEN)) {
            snprintf(err, errlen, "%s:%d: the same key as line %d", fname,
                     a->line > b->line ? a->line : b->line,
                     a->line > b->line ? b->line : a->line);
            rc = -1;
        } else if (!strcmp(x->name, y->name)) {
            snprintf(err, errlen, "%s:%d: the same name as line %d", fname,
                     x->line > y->line ? x->line : y->line,
                     x->line > y->line ? y->line : x->line);
            rc = -1;
        }
    }
    return rc;
}

static int defs_push(struct client_defs *d, const struct client_def *c)
{
    struct client_def *v = realloc(d->v, (d->n + 1) * sizeof(*v));
    if (!v)
        return -1;
    d->v = v;
    d->v[d->n++] = *c;
    return 0;
}

int clients_parse(const char *text, size_t len, const char *fname,
                  struct client_defs *out, char *err, size_t errlen)
{
    struct client_defs d = {NULL, 0, NULL, NULL};
    struct client_def c;
    struct line l;
    const char *what = NULL;
    int lineno = 0;
    size_t pos = 0;
    memset(&c, 0, sizeof c);
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *p = text + pos;
        pos += ll + (nl ? 1 : 0);
        lineno++;
        if (memchr(p, '\0', ll)) {
            what = "a NUL byte in the line";
            goto fail;
        }
        if (line_split(p, ll, &l) != 0) {
            what = "too many fields";
            goto fail;
        }
        if (l.n == 0 || l.f[0][0] == '#')
            continue;
        if (client_parse(&c, &l, &what) != 0)
            goto fail;
        c.line = lineno;
        if (defs_push(&d, &c) != 0) {
            what = "out of memory";
            goto fail;
        }
        memset(&c, 0, sizeof c);
    }
    if (d.n == 0) {
        snprintf(err, errlen,
                 "%s: no clients (expected lines of '<key> "
                 "<name> [rpm=N] [tpm=N] [models=a,b]')",
                 fname);
        goto fail_msg;
    }
    if (defs_index(&d, fname, err, errlen) != 0)
        goto fail_msg;
    *out = d;
    return 0;
fail:
    snprintf(err, errlen, "%s:%d: %s", fname, lineno, what);
fail_msg:
    client_free(&c);
    clients_defs_free(&d);
    out->v = NULL;
    out->n = 0;
    out->by_hash = NULL;
    out->by_name = NULL;
    return -1;
}

void clients_defs_free(struct client_defs *d)
{
    for (size_t i = 0; d && i < d->n; i++)
        client_free(&d->v[i]);
    if (d) {
        free(d->v);
        free(d->by_hash);
        free(d->by_name);
        d->v = NULL;
        d->by_hash = NULL;
        d->by_name = NULL;
        d->n = 0;
    }
}

long clients_find(const struct client_defs *d,
                  const uint8_t hash[AUTH_SHA256_LEN])
{
    size_t lo = 0, hi = d->n;
    if (!d->by_hash)
        return -1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(d->v[d->by_hash[mid]].key_hash, hash, AUTH_SHA256_LEN) > 0)
            hi = mid;
        else
            lo = mid;
    }
    if (lo >= d->n)
        return -1;
    size_t i = d->by_hash[lo];
    return auth_ct_equal(d->v[i].key_hash, hash, AUTH_SHA256_LEN) ? (long)i
                                                                  : -1;
}

long clients_find_name(const struct client_defs *d, const char *name)
{
    size_t lo = 0, hi = d->n;
    if (!d->by_name || !name)
        return -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->v[d->by_name[mid]].name, name);
        if (c == 0)
            return (long)d->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int client_model_allowed(const struct client_def *c, const char *model)
{
    if (!c->models)
        return 1;
    for (size_t i = 0; i < c->nmodels; i++)
        if (model && !strcmp(c->models[i], model))
            return 1;
    return 0;
}
