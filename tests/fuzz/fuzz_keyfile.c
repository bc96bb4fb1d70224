/*
 * fuzz_keyfile.c - libFuzzer target for the keyring's keys file parser
 * (plugins/keyring/keyfile.c, keyfile_parse). Besides "no crash, no
 * leak": an error message never holds a key (a first field of 12+
 * characters of any line).
 */
#include "keyring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keyfile kf;
    char err[512] = "";
    memset(&kf, 0, sizeof kf);
    if (keyfile_parse((const char *)data, size, &kf, err, sizeof err) == 0) {
        for (size_t i = 0; i < kf.n; i++)
            if (!kf.v[i].secret || !kf.v[i].secret[0])
                abort();
        keyfile_free(&kf);
        return 0;
    }
    /* no line's first field may show up in the message */
    const char *t = (const char *)data;
    size_t pos = 0;
    while (pos < size) {
        const char *nl = memchr(t + pos, '\n', size - pos);
        size_t ll = nl ? (size_t)(nl - t) - pos : size - pos;
        size_t s = 0, e;
        while (s < ll && (t[pos + s] == ' ' || t[pos + s] == '\t'))
            s++;
        e = s;
        while (e < ll && t[pos + e] > ' ')
            e++;
        if (e - s >= 12 && e - s < 300 && t[pos + s] != '#') {
            char key[300];
            memcpy(key, t + pos + s, e - s);
            key[e - s] = '\0';
            if (strstr(err, key))
                abort();
        }
        pos += ll + 1;
    }
    keyfile_free(&kf);
    return 0;
}
