/*
 * test_context.c - the context stage: the token estimator against the exact
 * counts of tests/data (targets asserted against o200k_base, a table of the
 * error per content group and tokenizer printed), the request walker on
 * every message shape including malformed ones, the refusal and its
 * message, the default model, unknown models, config validation and the
 * /v1/models routes. Driven through the real host table (stage_harness).
 */
#include "estimate.h"
#include "models.h"
#include "stage_harness.h"
#include "walk.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in '%s'",    \
                  (needle), (hay))

/* ---- helpers ---------------------------------------------------------- */

static sluice_test_stage *gen(const char *cfg)
{
    char err[512] = "";
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    ck_assert_msg(g != NULL, "init failed: %s", err);
    return g;
}

static void gen_fails(const char *cfg, const char *needle)
{
    char err[512] = "";
    sluice_test_stage *g = sh_gen_new(cfg, err, sizeof err);
    ck_assert_msg(g == NULL, "init accepted %s", cfg);
    ck_assert_has(err, needle);
}

/* The error object of the client response (borrowed from *doc). */
static json_t *out_error(sluice_test_req *ctx, json_t **doc)
{
    *doc = json_loads(sluice_test_body(ctx), 0, NULL);
    ck_assert_msg(*doc != NULL, "not JSON: %s", sluice_test_body(ctx));
    json_t *e = json_object_get(*doc, "error");
    ck_assert_msg(json_is_object(e), "no error object: %s",
                  sluice_test_body(ctx));
    ck_assert(json_is_string(json_object_get(e, "message")));
    ck_assert(json_is_string(json_object_get(e, "type")));
    return e;
}

static const char *err_str(json_t *e, const char *key)
{
    const char *s = json_string_value(json_object_get(e, key));
    return s ? s : "(null)";
}

/* Run on_request with body; expect a 400 naming `field`. */
static void expect_400(sluice_test_stage *g, const char *body,
                       const char *field)
{
    sluice_test_req *ctx = sh_ctx_new(g, body, NULL);
    ck_assert_msg(sluice_test_on_request(ctx) == SLUICE_RESPOND, "passed: %s",
                  body);
    ck_assert_int_eq(sluice_test_status(ctx), 400);
    json_t *doc;
    json_t *e = out_error(ctx, &doc);
    ck_assert_str_eq(err_str(e, "type"), "invalid_request_error");
    ck_assert_msg(!strcmp(err_str(e, "param"), field),
                  "param %s, expected %s (%s)", err_str(e, "param"), field,
                  sluice_test_body(ctx));
    ck_assert_has(err_str(e, "message"), field);
    json_decref(doc);
    sluice_test_req_free(ctx);
}

static sluice_verdict run(sluice_test_stage *g, const char *body,
                          sluice_test_req **out)
{
    *out = sh_ctx_new(g, body, NULL);
    return sluice_test_on_request(*out);
}

/* A chat body: one user message of `reps` times "hello world ". */
static char *words_body(const char *model, size_t reps, const char *extra)
{
    size_t n = reps * 12 + 256 + strlen(model) + strlen(extra);
    char *b = malloc(n), *p;
    ck_assert_ptr_nonnull(b);
    p = b + sprintf(b,
                    "{\"model\":\"%s\",%s\"messages\":[{\"role\":"
                    "\"user\",\"content\":\"",
                    model, extra);
    for (size_t i = 0; i < reps; i++)
        p += sprintf(p, "hello world ");
    strcpy(p, "\"}]}");
    return b;
}

static uint64_t estimate_of(const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    struct walk w;
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(walk_request(&HOST, (const sluice_json *)doc, &w), 0);
    json_decref(doc);
    return walk_tokens(&w, 765);
}

/* ---- the estimator on the shared data ---------------------------------- */

enum { TOK_O200K, TOK_QWEN3, TOK_DEEPSEEK, TOK_LLAMA3, NTOK };
static const char *const tok_names[NTOK] = {"o200k", "qwen3", "deepseek_v3",
                                            "llama3"};

static const struct {
    const char *name;
    const char *langs;
} groups[] = {
    {"english", " en "},
    {"european", " de fr es pl tr vi "},
    {"cyrillic", " ru uk "},
    {"cjk", " zh ja ko "},
    {"rtl", " ar fa he "},
    {"indic/thai", " hi th "},
    {"greek", " el "},
    {"code/markup", " code markup config json csv log "},
    {"numeric/encoded", " numeric encoded "},
    {"emoji", " emoji "},
    {"mixed/edge", " mixed edge "},
    {"chat", " chat "},
    {"ALL", NULL},
};
#define NGROUPS (sizeof groups / sizeof groups[0])

struct sample {
    char lang[16];
    uint64_t est;
    long count[NTOK]; /* -1: none */
};

static struct sample *samples;
static size_t nsamples;

static FILE *data_open(const char *name)
{
    char path[512];
    const char *src = getenv("SLUICE_SRC");
    snprintf(path, sizeof path, "%s/tests/data/%s", src ? src : ".", name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    return f;
}

static void samples_add(const char *lang, uint64_t est, json_t *rec)
{
    static const char *const keys[NTOK] = {"o200k", "qwen3", "deepseek_v3",
                                           "llama3"};
    samples = realloc(samples, (nsamples + 1) * sizeof(*samples));
    ck_assert_ptr_nonnull(samples);
    struct sample *s = &samples[nsamples++];
    snprintf(s->lang, sizeof s->lang, "%s", lang);
    s->est = est;
    for (int t = 0; t < NTOK; t++) {
        json_t *v = json_object_get(rec, keys[t]);
        s->count[t] = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    }
}

static void samples_load(void)
{
    json_error_t je;
    nsamples = 0;
    /* one line can be long: read whole files with jansson's stream API */
    FILE *f = data_open("token-corpus.jsonl");
    json_t *rec;
    while ((rec = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je))) {
        json_t *text = json_object_get(rec, "text");
        uint64_t est =
            est_tokens(json_string_value(text), json_string_length(text));
        samples_add(json_string_value(json_object_get(rec, "lang")), est, rec);
        json_decref(rec);
    }
    fclose(f);
    f = data_open("chat-token-cases.jsonl");
    while ((rec = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je))) {
        struct walk w;
        ck_assert_int_eq(
            walk_request(&HOST,
                         (const sluice_json *)json_object_get(rec, "request"),
                         &w),
            0);
        samples_add("chat", walk_tokens(&w, 0), rec);
        json_decref(rec);
    }
    fclose(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int in_group(const struct sample *s, size_t g)
{
    char pat[24];
    if (!groups[g].langs)
        return 1;
    snprintf(pat, sizeof pat, " %s ", s->lang);
    return strstr(groups[g].langs, pat) != NULL;
}

/* Median and p95 of |est - count| / count over the samples of group g with
 * a count for tokenizer t (texts of >= 20 tokens; all chats). */
static size_t group_errors(size_t g, int t, double *med, double *p95,
                           double *bias)
{
    double *e = malloc((nsamples + 1) * sizeof(*e));
    double sum = 0;
    size_t n = 0;
    ck_assert_ptr_nonnull(e);
    for (size_t i = 0; i < nsamples; i++) {
        const struct sample *s = &samples[i];
        long c = s->count[t];
        if (c <= 0 || !in_group(s, g) || (strcmp(s->lang, "chat") && c < 20))
            continue;
        double r = ((double)s->est - (double)c) / (double)c;
        sum += r;
        e[n++] = fabs(r);
    }
    if (n) {
        qsort(e, n, sizeof(*e), cmp_double);
        *med = n % 2 ? e[n / 2] : (e[n / 2 - 1] + e[n / 2]) / 2;
        size_t k = (size_t)ceil(0.95 * (double)n);
        *p95 = e[k ? k - 1 : 0];
        *bias = sum / (double)n;
    }
    free(e);
    return n;
}

START_TEST(estimator_meets_targets)
{
    samples_load();
    ck_assert_uint_ge(nsamples, 300);
    printf("\nestimator error vs exact counts (texts >= 20 tokens, all "
           "chats): n, median |err| %%, p95 |err| %%, mean err %%\n");
    printf("%-16s", "group");
    for (int t = 0; t < NTOK; t++)
        printf(" | %-22s", tok_names[t]);
    printf("\n");
    double med = 0, p95 = 0, bias = 0;
    for (size_t g = 0; g < NGROUPS; g++) {
        printf("%-16s", groups[g].name);
        for (int t = 0; t < NTOK; t++) {
            size_t n = group_errors(g, t, &med, &p95, &bias);
            if (n)
                printf(" | %3zu %5.1f %5.1f %+6.1f", n, med * 100, p95 * 100,
                       bias * 100);
            else
                printf(" | %-22s", "-");
        }
        printf("\n");
    }
    size_t n = group_errors(NGROUPS - 1, TOK_O200K, &med, &p95, &bias);
    ck_assert_uint_ge(n, 250);
    ck_assert_msg(med <= 0.05, "median error %.1f %% > 5 %%", med * 100);
    ck_assert_msg(p95 <= 0.20, "p95 error %.1f %% > 20 %%", p95 * 100);
    /* the chats alone, where the overhead formula matters */
    group_errors(NGROUPS - 2, TOK_O200K, &med, &p95, &bias);
    ck_assert_msg(med <= 0.05, "chat median error %.1f %%", med * 100);
    free(samples);
    samples = NULL;
}
END_TEST

/* The scanner's fast paths (runs of letters, " word" sequences, digits,
 * spaces, script runs) count what char_step() counts a character at a
 * time: the corpus, and random texts over an alphabet of every class but
 * combining marks and joiners (see est_scan_slow). */
static void same_counts(const char *t, size_t n)
{
    est_counts a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    est_scan(t, n, &a);
    est_scan_slow(t, n, &b);
    for (int i = 0; i < EST_NFEATURES; i++)
        ck_assert_msg(a.f[i] == b.f[i], "%s: %llu fast, %llu slow, in %.*s",
                      est_feature_name(i), (unsigned long long)a.f[i],
                      (unsigned long long)b.f[i], (int)(n > 120 ? 120 : n), t);
}

START_TEST(estimator_fast_paths_match)
{
    static const char *const atoms[] = {
        "a",    "b",    "f",     "g",      "q",         "z",
        "A",    "F",    "G",     "Z",      "0",         "5",
        "9",    " ",    "  ",    "\t",     "\n",        ".",
        ",",    "!",    "-",     "_",      "{",         "`",
        "@",    "[",    "\x7f",  "é",      "ł",         "ệ",
        "中",   "あ",   "한",    "д",      "ب",         "क",
        "ก",    "α",    "😀",     "、",     "！",        "\xff",
        "\xc3", "\x80", "hello", " world", "camelCase", "abcdefghijklmnop"};
    json_error_t je;
    FILE *f = data_open("token-corpus.jsonl");
    json_t *rec;
    while ((rec = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je))) {
        json_t *text = json_object_get(rec, "text");
        same_counts(json_string_value(text), json_string_length(text));
        json_decref(rec);
    }
    fclose(f);
    char buf[512];
    uint32_t r = 12345;
    for (int it = 0; it < 200000; it++) {
        size_t n = 0;
        r = r * 1103515245u + 12345u;
        int k = (int)(r >> 16) % 40;
        for (int j = 0; j < k; j++) {
            r = r * 1103515245u + 12345u;
            const char *a = atoms[(r >> 16) % (sizeof atoms / sizeof *atoms)];
            size_t l = strlen(a);
            if (n + l > sizeof buf)
                break;
            memcpy(buf + n, a, l);
            n += l;
        }
        same_counts(buf, n);
    }
}
END_TEST

START_TEST(estimator_edges)
{
    ck_assert_uint_eq(est_tokens("", 0), 0);
    ck_assert_uint_ge(est_tokens("hello", 5), 1);
    ck_assert_uint_le(est_tokens("hello", 5), 2);
    /* invalid UTF-8, truncated sequences, NULs: counted, never a crash */
    const char bad[] = "\xff\xfe\xc3\x28\xe2\x82\xf0\x9f\x98 a\0b\xed\xa0\x80";
    ck_assert_uint_ge(est_tokens(bad, sizeof bad - 1), 1);
    ck_assert_uint_ge(est_tokens("\xf0\x9f", 2), 1); /* cut emoji */
    /* additive: two texts scanned into one count ~ the sum */
    est_counts c;
    memset(&c, 0, sizeof c);
    est_scan("The quick brown fox", 19, &c);
    est_scan("jumps over the lazy dog", 23, &c);
    double both = est_weigh(&c);
    ck_assert(both > 5 && both < 14);
    /* a long run of one script does not overflow anything */
    size_t n = 1 << 20;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i + 3 <= n; i += 3)
        memcpy(big + i, "\xe4\xb8\xad", 3); /* 中 */
    uint64_t t = est_tokens(big, n - n % 3);
    ck_assert_uint_gt(t, n / 3 / 4);
    ck_assert_uint_lt(t, n / 3 * 2);
    free(big);
    for (int i = 0; i < EST_NFEATURES; i++)
        ck_assert(est_weights[i] >= 0 && strcmp(est_feature_name(i), "?"));
}
END_TEST

/* ---- the walker --------------------------------------------------------- */

START_TEST(walker_message_shapes)
{
    sluice_test_stage *g = gen(NULL);
    sluice_test_req *ctx;
    /* every shape the walker reads, well-formed: passes */
    const char *ok =
        "{\"model\":\"openai-gpt-oss-120b\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":null},"
        "{\"role\":\"user\",\"name\":\"alice\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What is in this image?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}},"
        "{\"type\":\"input_audio\",\"input_audio\":{\"data\":\"AAAA\"}},"
        "{\"type\":\"file\",\"file\":{\"file_id\":\"f1\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
        "\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"18C\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\","
        "\"refusal\":\"no\"}],\"function_call\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}},"
        "{\"role\":\"critic\",\"content\":\"odd role\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"description\":\"Weather of a city\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
        "\"required\":[\"city\"]}}}],"
        "\"functions\":[{\"name\":\"f\",\"parameters\":{}}],"
        "\"max_tokens\":null}";
    ck_assert_int_eq(run(g, ok, &ctx), SLUICE_CONTINUE);
    const char *est =
        sluice_test_header(ctx, "x-sluice-prompt-tokens-estimate");
    ck_assert_ptr_nonnull(est);
    ck_assert_str_eq(sluice_test_attr(ctx, "prompt_tokens_estimate"), est);
    ck_assert_str_eq(sluice_test_header(ctx, "x-sluice-prompt-tokens-method"),
                     "estimate");
    /* 2 media parts at 765 each, plus the text: above 1530, not silly */
    long n = atol(est);
    ck_assert_int_gt(n, 1530 + 40);
    ck_assert_int_lt(n, 1530 + 400);
    sluice_test_req_free(ctx);

    /* the walk is what the chat formula says for plain messages */
    uint64_t e = estimate_of("{\"messages\":[{\"role\":\"user\","
                             "\"content\":\"\"}]}");
    ck_assert_uint_eq(e, 3 + 3 + 1);
    e = estimate_of("{\"messages\":[{\"role\":\"user\",\"content\":\"\","
                    "\"name\":\"bob\"}]}");
    ck_assert_uint_ge(e, 3 + 3 + 1 + 1 + 1);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(walker_malformed)
{
    sluice_test_stage *g = gen(NULL);
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{\"model\":\"m\"}", "messages"},
        {"{\"messages\":{}}", "messages"},
        {"{\"messages\":\"hi\"}", "messages"},
        {"{\"messages\":[1]}", "messages[0]"},
        {"{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"messages\":[{\"role\":7,\"content\":\"x\"}]}", "messages[0].role"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":"
         "\"user\",\"content\":\"b\"},{\"role\":\"user\",\"content\":42}]}",
         "messages[2].content"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":{\"text\":\"x\"}}]}",
         "messages[0].content"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":true}]}",
         "messages[0].content"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[\"x\"]}]}",
         "messages[0].content[0]"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
         "messages[0].content[0].type"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
         "\"text\":5}]}]}",
         "messages[0].content[0].text"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}"
         "]}]}",
         "messages[0].content[0].text"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":1}]}",
         "messages[0].name"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":{}}]}",
         "messages[0].tool_calls"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[\"x\"]}]}",
         "messages[0].tool_calls[0]"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function"
         "\":\"f\"}]}]}",
         "messages[0].tool_calls[0].function"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function"
         "\":{\"name\":3}}]}]}",
         "messages[0].tool_calls[0].function.name"},
        {"{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function"
         "\":{\"name\":\"f\",\"arguments\":[1]}}]}]}",
         "messages[0].tool_calls[0].function.arguments"},
        {"{\"messages\":[{\"role\":\"assistant\",\"function_call\":1}]}",
         "messages[0].function_call"},
        {"{\"messages\":[],\"tools\":{}}", "tools"},
        {"{\"messages\":[],\"tools\":[1]}", "tools[0]"},
        {"{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":"
         "\"f\"}]}",
         "tools[0].function"},
        {"{\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{"
         "\"name\":[]}}]}",
         "tools[0].function.name"},
        {"{\"messages\":[],\"functions\":[{\"name\":\"f\",\"description\":"
         "2}]}",
         "functions[0].description"},
        {"{\"model\":5,\"messages\":[]}", "model"},
        {"{\"messages\":[],\"max_tokens\":\"100\"}", "max_tokens"},
        {"{\"messages\":[],\"max_completion_tokens\":-1}",
         "max_completion_tokens"},
        {"{\"messages\":[],\"max_tokens\":1.5}", "max_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_400(g, cases[i].body, cases[i].field);
    /* deep nesting in tool parameters: bounded, no crash */
    size_t depth = 1500; /* under jansson's parse limit (2048) */
    char *deep = malloc(depth * 2 + 256), *p = deep;
    p += sprintf(p, "{\"messages\":[],\"tools\":[{\"type\":\"function\","
                    "\"function\":{\"name\":\"f\",\"parameters\":");
    for (size_t i = 0; i < depth; i++)
        *p++ = '[';
    for (size_t i = 0; i < depth; i++)
        *p++ = ']';
    strcpy(p, "}}]}");
    sluice_test_req *ctx = sh_ctx_new(g, deep, NULL);
    ck_assert_ptr_nonnull(HOST.req_body(CTX(ctx)));
    ck_assert_int_eq(sluice_test_on_request(ctx), SLUICE_CONTINUE);
    sluice_test_req_free(ctx);
    free(deep);
    sluice_test_stage_free(g);
}
END_TEST

/* ---- the check ------------------------------------------------------- */

/* Smallest repetition count whose estimate exceeds `tokens`. */
static size_t reps_over(const char *model, uint64_t tokens)
{
    size_t lo = 0, hi = 1;
    for (int i = 0; i < 40; i++) {
        char *b = words_body(model, hi, "");
        uint64_t e = estimate_of(b);
        free(b);
        if (e > tokens)
            break;
        lo = hi;
        hi *= 2;
    }
    while (hi - lo > 1) { /* bounded: log2 of the range */
        size_t mid = lo + (hi - lo) / 2;
        char *b = words_body(model, mid, "");
        uint64_t e = estimate_of(b);
        free(b);
        if (e > tokens)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

START_TEST(refusal_over_limit)
{
    sluice_test_stage *g = gen(NULL);
    sluice_test_req *ctx;
    size_t reps = reps_over("llama3-8b-instruct", 8800) + 50;
    char *b = words_body("llama3-8b-instruct", reps, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(ctx), 400);
    json_t *doc;
    json_t *e = out_error(ctx, &doc);
    ck_assert_str_eq(err_str(e, "code"), "context_length_exceeded");
    ck_assert_str_eq(err_str(e, "param"), "messages");
    ck_assert_str_eq(err_str(e, "type"), "invalid_request_error");
    const char *msg = err_str(e, "message");
    printf("refusal message: %s\n", msg);
    const char *est =
        sluice_test_header(ctx, "x-sluice-prompt-tokens-estimate");
    ck_assert_ptr_nonnull(est);
    ck_assert_has(msg, "llama3-8b-instruct");
    ck_assert_has(msg, "8000");
    ck_assert_has(msg, est);
    ck_assert_has(msg, "too many");
    ck_assert_has(msg, "qwen/qwen3-next-80b-a3b-instruct");
    ck_assert_has(msg, "openai-gpt-oss-120b");
    ck_assert_msg(!strstr(msg, "(8000)"), "suggests itself: %s", msg);
    json_decref(doc);
    sluice_test_req_free(ctx);
    free(b);

    /* a prompt that fits but max_tokens does not: lower max_tokens */
    b = words_body("llama3-8b-instruct", 100, "\"max_tokens\":9000,");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    e = out_error(ctx, &doc);
    ck_assert_str_eq(err_str(e, "code"), "context_length_exceeded");
    ck_assert_has(err_str(e, "message"), "Lower max_tokens to at most");
    json_decref(doc);
    sluice_test_req_free(ctx);
    free(b);

    /* too big for every model in the table */
    b = words_body("llama3-8b-instruct", 20,
                   "\"max_completion_tokens\":900000,");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    e = out_error(ctx, &doc);
    ck_assert_has(err_str(e, "message"), "no model in the table");
    json_decref(doc);
    sluice_test_req_free(ctx);
    free(b);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(within_margin_passes)
{
    sluice_test_stage *g = gen(NULL);
    sluice_test_req *ctx;
    /* 8000 * 1.10 = 8800: the largest request estimated at <= 8800 goes */
    size_t reps = reps_over("llama3-8b-instruct", 8800) - 1;
    char *b = words_body("llama3-8b-instruct", reps, "");
    ck_assert_uint_gt(estimate_of(b), 8000);
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_CONTINUE);
    ck_assert_int_eq(sluice_test_status(ctx), 0);
    ck_assert_int_eq(sluice_test_body_changed(ctx), 0); /* untouched */
    sluice_test_req_free(ctx);
    free(b);
    /* one more repetition is over */
    b = words_body("llama3-8b-instruct", reps + 1, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    sluice_test_req_free(ctx);
    free(b);
    sluice_test_stage_free(g);

    /* margin 0: refused as soon as it is over the context */
    g = gen("{\"estimate_margin\":0}");
    reps = reps_over("llama3-8b-instruct", 8000);
    b = words_body("llama3-8b-instruct", reps - 1, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_CONTINUE);
    sluice_test_req_free(ctx);
    free(b);
    b = words_body("llama3-8b-instruct", reps, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    sluice_test_req_free(ctx);
    free(b);
    sluice_test_stage_free(g);

    /* reserve_output_tokens counts when the request gives no max */
    g = gen("{\"estimate_margin\":0,\"reserve_output_tokens\":1000}");
    b = words_body("llama3-8b-instruct", reps - 1, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    /* the client set no max_tokens: do not tell them to lower it */
    ck_assert_has(sluice_test_body(ctx), "Shorten the messages");
    ck_assert_msg(!strstr(sluice_test_body(ctx), "max_tokens"), "%s",
                  sluice_test_body(ctx));
    sluice_test_req_free(ctx);
    free(b);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(default_model)
{
    sluice_test_stage *g = gen(NULL);
    sluice_test_req *ctx;
    ck_assert_int_eq(run(g,
                         "{\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"hi\"}]}",
                         &ctx),
                     SLUICE_CONTINUE);
    ck_assert_str_eq(
        HOST.json_str(HOST.json_get(HOST.req_body(CTX(ctx)), "model")),
        "openai-gpt-oss-120b");
    ck_assert_int_eq(sluice_test_body_changed(ctx), 1);
    ck_assert_str_eq(HOST.req_model(CTX(ctx)), "openai-gpt-oss-120b");
    sluice_test_req_free(ctx);
    /* null and "" count as absent */
    ck_assert_int_eq(run(g, "{\"model\":null,\"messages\":[]}", &ctx),
                     SLUICE_CONTINUE);
    ck_assert_str_eq(HOST.req_model(CTX(ctx)), "openai-gpt-oss-120b");
    sluice_test_req_free(ctx);
    ck_assert_int_eq(run(g, "{\"model\":\"\",\"messages\":[]}", &ctx),
                     SLUICE_CONTINUE);
    ck_assert_str_eq(HOST.req_model(CTX(ctx)), "openai-gpt-oss-120b");
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);

    /* a configured default, and the default's limit applies */
    g = gen("{\"default_model\":\"llama3-8b-instruct\"}");
    char *b = words_body("", 1, "");
    /* words_body wrote "model":"": replaced by the default */
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_CONTINUE);
    ck_assert_str_eq(HOST.req_model(CTX(ctx)), "llama3-8b-instruct");
    sluice_test_req_free(ctx);
    free(b);
    b = words_body("", reps_over("llama3-8b-instruct", 9000), "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    ck_assert_has(sluice_test_body(ctx), "llama3-8b-instruct");
    sluice_test_req_free(ctx);
    free(b);
    sluice_test_stage_free(g);
}
END_TEST

START_TEST(unknown_model)
{
    sluice_test_stage *g = gen(NULL);
    sluice_test_req *ctx;
    char *b = words_body("some/new-model", 20000, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_CONTINUE); /* unchecked */
    ck_assert_ptr_nonnull(
        sluice_test_header(ctx, "x-sluice-prompt-tokens-estimate"));
    sluice_test_req_free(ctx);
    sluice_test_stage_free(g);

    g = gen("{\"on_unknown_model\":\"reject\"}");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_RESPOND);
    ck_assert_int_eq(sluice_test_status(ctx), 404);
    json_t *doc;
    json_t *e = out_error(ctx, &doc);
    ck_assert_str_eq(err_str(e, "code"), "model_not_found");
    ck_assert_str_eq(err_str(e, "param"), "model");
    ck_assert_has(err_str(e, "message"), "some/new-model");
    json_decref(doc);
    sluice_test_req_free(ctx);
    free(b);
    sluice_test_stage_free(g);
}
END_TEST

/* ---- config --------------------------------------------------------- */

START_TEST(config_validation)
{
    gen_fails("{\"modles\":[]}", "unknown key 'modles'");
    gen_fails("{\"models\":{}}", "models: expected a list");
    gen_fails("{\"models\":[{\"id\":\"x\"}]}", "context_length is required");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":0}]}",
              "models[0].context_length");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":\"big\"}]}",
              "models[0].context_length");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":10,"
              "\"tokenizr\":\"o200k\"}]}",
              "models[0]: unknown key 'tokenizr'");
    /* exact tokenizers (issue 9): the file, its pattern, chat overhead */
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":10,"
              "\"tokenizer\":\"/nonexistent/o200k.tiktoken\","
              "\"pattern\":\"o200k\"}]}",
              "model 'x': tokenizer /nonexistent/o200k.tiktoken: No such "
              "file");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":10,"
              "\"tokenizer\":\"\"}]}",
              "models[0].tokenizer");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":10,"
              "\"pattern\":\"o200k\"}]}",
              "models[0].pattern: only with");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":10,"
              "\"chat_overhead\":{\"per_mesage\":3}}]}",
              "models[0].chat_overhead");
    gen_fails("{\"models\":[{\"id\":\"x\",\"context_length\":10,"
              "\"chat_overhead\":{\"per_message\":-1}}]}",
              "models[0].chat_overhead");
    gen_fails("{\"models\":[{\"context_length\":10}]}", "models[0].id");
    gen_fails("{\"models\":[1]}", "models[0]");
    gen_fails("{\"on_unknown_model\":\"drop\"}", "on_unknown_model");
    gen_fails("{\"estimate_margin\":-0.1}", "estimate_margin");
    gen_fails("{\"reserve_output_tokens\":-5}", "reserve_output_tokens");
    gen_fails("{\"image_tokens\":\"many\"}", "image_tokens");
    gen_fails("{\"default_model\":\"\"}", "default_model");

    /* numeric strings (YAML ${VAR}) are accepted */
    sluice_test_stage *g = gen("{\"estimate_margin\":\"0.2\","
                               "\"reserve_output_tokens\":\"100\"}");
    sluice_test_stage_free(g);
}
END_TEST

/* ---- routes ---------------------------------------------------------- */

static int route(sluice_test_stage *g, const char *path, json_t **doc)
{
    char *out = NULL;
    int status = sluice_test_route(g, "GET", path, &out);
    ck_assert_msg(status >= 0, "no GET route for %s", path);
    *doc = json_loads(out, 0, NULL);
    ck_assert_msg(*doc != NULL, "%s: not JSON", path);
    free(out);
    return status;
}

static json_t *list_find(json_t *list, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(list, "data"), i, m)
    {
        if (!strcmp(json_string_value(json_object_get(m, "id")), id))
            return m;
    }
    return NULL;
}

START_TEST(models_routes)
{
    sluice_test_stage *g = gen(
        "{\"models\":[{\"id\":\"llama3-8b-instruct\",\"context_length\":8192,"
        "\"description\":\"small\"},{\"id\":\"acme/big-1\",\"context_length\":"
        "1000000,\"max_output_tokens\":32000}]}");
    json_t *doc;
    ck_assert_int_eq(route(g, "/v1/models", &doc), 200);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "object")), "list");
    json_t *data = json_object_get(doc, "data");
    ck_assert_uint_eq(json_array_size(data), 16);
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m)
    {
        ck_assert(json_is_string(json_object_get(m, "id")));
        ck_assert_str_eq(json_string_value(json_object_get(m, "object")),
                         "model");
        ck_assert(json_is_integer(json_object_get(m, "created")));
        ck_assert(json_is_string(json_object_get(m, "owned_by")));
        ck_assert(json_integer_value(json_object_get(m, "context_length")) > 0);
    }
    m = list_find(doc, "qwen/qwen3-next-80b-a3b-instruct");
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(json_integer_value(json_object_get(m, "context_length")),
                     262000);
    ck_assert_str_eq(json_string_value(json_object_get(m, "owned_by")), "qwen");
    m = list_find(doc, "llama3-8b-instruct"); /* overridden */
    ck_assert_int_eq(json_integer_value(json_object_get(m, "context_length")),
                     8192);
    ck_assert_str_eq(json_string_value(json_object_get(m, "description")),
                     "small");
    json_decref(doc);

    ck_assert_int_eq(
        route(g, "/v1/models/qwen/qwen3-next-80b-a3b-instruct/info", &doc),
        200);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "id")),
                     "qwen/qwen3-next-80b-a3b-instruct");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "context_length")),
                     262000);
    json_decref(doc);
    ck_assert_int_eq(route(g, "/v1/models/acme/big-1", &doc), 200);
    ck_assert_int_eq(
        json_integer_value(json_object_get(doc, "max_output_tokens")), 32000);
    json_decref(doc);
    ck_assert_int_eq(route(g, "/v1/models/openai-gpt-oss-120b", &doc), 200);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "owned_by")),
                     "megallm");
    json_decref(doc);

    ck_assert_int_eq(route(g, "/v1/models/nope/none/info", &doc), 404);
    json_t *e = json_object_get(doc, "error");
    ck_assert_str_eq(err_str(e, "code"), "model_not_found");
    ck_assert_str_eq(err_str(e, "type"), "invalid_request_error");
    ck_assert_str_eq(err_str(e, "param"), "model");
    ck_assert_has(err_str(e, "message"), "nope/none");
    json_decref(doc);
    ck_assert_int_eq(route(g, "/models", &doc), 200);
    json_decref(doc);
    sluice_test_stage_free(g);
}
END_TEST

/* The stage's counters and its usage-ratio histogram, on its own table. */
START_TEST(metrics_refused_margin_and_ratio)
{
    sluice_test_stage *g = gen("{\"models\":[{\"id\":\"mtest-1k\","
                               "\"context_length\":1000}]}");
    sluice_test_req *ctx;
    size_t over_limit = reps_over("mtest-1k", 1000);
    size_t over_margin = reps_over("mtest-1k", 1100);
    ck_assert_uint_lt(over_limit, over_margin);
    const size_t reps[3] = {5, over_limit, over_margin};
    const sluice_verdict want[3] = {SLUICE_CONTINUE, SLUICE_CONTINUE,
                                    SLUICE_RESPOND};
    for (int i = 0; i < 3; i++) {
        char *b = words_body("mtest-1k", reps[i], "");
        ck_assert_int_eq(run(g, b, &ctx), want[i]);
        sluice_test_req_free(ctx);
        free(b);
    }
    /* a model outside the table: no ratio, no label */
    char *b = words_body("not-in-table", 5, "");
    ck_assert_int_eq(run(g, b, &ctx), SLUICE_CONTINUE);
    sluice_test_req_free(ctx);
    free(b);

    ck_assert_double_eq(
        sluice_test_metric(g,
                           "sluice_context_refused_total{model=\"mtest-1k\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_context_within_margin_total{model=\"mtest-1k\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_context_usage_ratio_count{model=\"mtest-1k\"}"),
        3);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_context_usage_ratio_bucket{model=\"mtest-1k\","
               "le=\"0.1\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_context_usage_ratio_bucket{model=\"mtest-1k\","
               "le=\"1\"}"),
        1);
    ck_assert_double_eq(
        sluice_test_metric(
            g, "sluice_context_usage_ratio_bucket{model=\"mtest-1k\","
               "le=\"1.5\"}"),
        3);
    ck_assert_double_eq(sluice_test_metric(g,
                                           "sluice_context_usage_ratio_count{"
                                           "model=\"not-in-table\"}"),
                        -1);
    sluice_test_stage_free(g);
}
END_TEST

static Suite *context_suite(void)
{
    Suite *s = suite_create("context");
    TCase *tc = tcase_create("estimator");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, estimator_meets_targets);
    tcase_add_test(tc, estimator_edges);
    tcase_add_test(tc, estimator_fast_paths_match);
    suite_add_tcase(s, tc);
    tc = tcase_create("stage");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, walker_message_shapes);
    tcase_add_test(tc, walker_malformed);
    tcase_add_test(tc, refusal_over_limit);
    tcase_add_test(tc, within_margin_passes);
    tcase_add_test(tc, default_model);
    tcase_add_test(tc, unknown_model);
    tcase_add_test(tc, config_validation);
    tcase_add_test(tc, models_routes);
    tcase_add_test(tc, metrics_refused_margin_and_ratio);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(context_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
