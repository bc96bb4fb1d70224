/*
 * fuzz_clients.c - libFuzzer target for the auth stage's clients file
 * parser (plugins/auth/clients_file.c). Besides "no crash, no leak", it
 * checks that an error message never holds a key: the input's first field
 * of any line never appears in it (when that field is 12+ characters and
 * not made only of lowercase letters, '_' and '=': such a "key" cannot be
 * told apart from the option names the messages list, e.g. a key
 * "budget_tokens_month" and "expected ... budget_tokens_month=").
 */
#include "clients_file.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 if p[0..n) is only lowercase letters, '_' and '=' (option words). */
static int option_word(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '_' || p[i] == '='))
            return 0;
    return 1;
}

static void no_key_in(const char *err, const char *text, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - text) - pos : len - pos;
        const char *p = text + pos;
        size_t s = 0;
        while (s < ll && (p[s] == ' ' || p[s] == '\t' || p[s] == '\r'))
            s++;
        size_t e = s;
        while (e < ll && p[e] != ' ' && p[e] != '\t' && p[e] != '\r' &&
               p[e] != '\0')
            e++;
        if (e - s >= 12 && p[s] != '#' && !option_word(p + s, e - s)) {
            char key[300];
            size_t kl = e - s < sizeof key - 1 ? e - s : sizeof key - 1;
            memcpy(key, p + s, kl);
            key[kl] = '\0';
            if (strstr(err, key))
                abort();
        }
        pos += ll + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client_defs d;
    char err[512] = "";
    if (clients_parse((const char *)data, size, "fuzz.txt", &d, err,
                      sizeof err) == 0) {
        if (d.n == 0)
            abort();
        for (size_t i = 0; i < d.n; i++)
            client_model_allowed(&d.v[i], "m");
        clients_find(&d, d.v[0].key_hash);
        clients_defs_free(&d);
    } else {
        if (d.n || !err[0])
            abort();
        no_key_in(err, (const char *)data, size);
    }
    return 0;
}
