/*
 * keyfile.c - the keys file: one key a line, blank lines and '#' comments
 * ignored, surrounding whitespace trimmed, an optional label after
 * whitespace ("sk-abc  team-a"), duplicates dropped. Parsing is pure (text
 * in, entries out); reading is only done at init and on reload-keys, never
 * on the request path.
 */
#include "keyring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEYFILE_MAX_BYTES (4u * 1024u * 1024u)

void keyfile_free(struct keyfile *kf)
{
    for (size_t i = 0; kf && i < kf->n; i++) {
        memset(kf->v[i].secret, 0, strlen(kf->v[i].secret));
        free(kf->v[i].secret);
        free(kf->v[i].label);
    }
    if (kf) {
        free(kf->v);
        memset(kf, 0, sizeof(*kf));
    }
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int keyfile_has(const struct keyfile *kf, const char *s, size_t n)
{
    for (size_t i = 0; i < kf->n; i++)
        if (strlen(kf->v[i].secret) == n && !memcmp(kf->v[i].secret, s, n))
            return 1;
    return 0;
}

static int keyfile_add(struct keyfile *kf, const char *s, size_t n,
                       const char *label, size_t ln)
{
    struct keyfile_entry *v = realloc(kf->v, (kf->n + 1) * sizeof(*v));
    if (!v)
        return -1;
    kf->v = v;
    v[kf->n].secret = strndup(s, n);
    v[kf->n].label = ln ? strndup(label, ln < 63 ? ln : 63) : NULL;
    if (!v[kf->n].secret || (ln && !v[kf->n].label)) {
        free(v[kf->n].secret);
        free(v[kf->n].label);
        return -1;
    }
    kf->n++;
    return 0;
}

int keyfile_parse(const char *text, size_t len, struct keyfile *out, char *err,
                  size_t errlen)
{
    const char *p = text, *end = text + len;
    int lineno = 0;
    memset(out, 0, sizeof(*out));
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        lineno++;
        /* a NUL would cut the key short (strndup): an empty or truncated
         * key must not be sent upstream (found by tests/fuzz/fuzz_keyfile) */
        if (memchr(p, '\0', (size_t)(eol - p))) {
            keyfile_free(out);
            snprintf(err, errlen, "line %d: a NUL byte (not a text file?)",
                     lineno);
            return -1;
        }
        const char *s = p, *e = eol;
        p = eol < end ? eol + 1 : end;
        while (s < e && is_space(*s))
            s++;
        while (e > s && is_space(e[-1]))
            e--;
        if (s == e || *s == '#')
            continue;
        const char *k = s;
        while (s < e && !is_space(*s))
            s++;
        size_t kn = (size_t)(s - k);
        while (s < e && is_space(*s))
            s++;
        /* the label runs to the end of the line or a '#' comment */
        const char *l = s, *le = s;
        while (le < e && *le != '#')
            le++;
        while (le > l && is_space(le[-1]))
            le--;
        if (keyfile_has(out, k, kn)) {
            out->duplicates++;
            continue;
        }
        if (keyfile_add(out, k, kn, l, (size_t)(le - l)) != 0) {
            keyfile_free(out);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

int keyfile_read(const char *path, struct keyfile *out, char *err,
                 size_t errlen)
{
    struct stat st;
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "keys_file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > (off_t)KEYFILE_MAX_BYTES) {
        fclose(f);
        snprintf(err, errlen,
                 "keys_file %s: not a regular file of at most "
                 "4 MiB",
                 path);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    int rd_err = ferror(f);
    fclose(f);
    if (!buf || rd_err) {
        free(buf);
        snprintf(err, errlen, "keys_file %s: %s", path,
                 buf ? "read error" : "out of memory");
        return -1;
    }
    char perr[128];
    int rc = keyfile_parse(buf, n, out, perr, sizeof perr);
    memset(buf, 0, n);
    free(buf);
    if (rc != 0) {
        snprintf(err, errlen, "keys_file %s: %s", path, perr);
        return -1;
    }
    out->loose_mode = (st.st_mode & 077) != 0;
    if (out->n == 0) {
        snprintf(err, errlen,
                 "keys_file %s holds no keys (one key a line; "
                 "blank lines and # comments are ignored)",
                 path);
        keyfile_free(out);
        return -1;
    }
    return 0;
}
