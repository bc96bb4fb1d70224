/*
 * test_log.c - the logger: JSON lines (escaping, RFC 3339 timestamps with
 * milliseconds), the secret scrubber (no key-looking string ever whole), the
 * level filter, and the writer thread: lines reach the file, and after a
 * rename + log_reopen() (SIGUSR1) new lines go to a new file.
 */
#include "log.h"

#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in '%s'",    \
                  (needle), (hay))
#define ck_assert_hasnt(hay, needle)                                           \
    ck_assert_msg(strstr((hay), (needle)) == NULL,                             \
                  "did not expect '%s' in '%s'", (needle), (hay))

static char *scrub(const char *in)
{
    size_t n = strlen(in);
    char *s = malloc(n + 1);
    memcpy(s, in, n + 1);
    n = log_scrub_secrets(s, n);
    s[n] = '\0';
    return s;
}

START_TEST(test_scrub_secrets)
{
    char *s = scrub("key sk-abcdefghijklmnopWXYZ failed");
    ck_assert_str_eq(s, "key sk-\xe2\x80\xa6WXYZ failed");
    free(s);
    s = scrub("{\"auth\":\"Bearer sk-proj-0123456789abcdef\"}");
    ck_assert_hasnt(s, "0123456789");
    ck_assert_has(s, "cdef");
    free(s);
    s = scrub("authorization: bearer tok_1234567890ABCD end");
    ck_assert_str_eq(s, "authorization: bearer \xe2\x80\xa6"
                        "ABCD end");
    free(s);
    /* short or embedded: left alone */
    s = scrub("task-sk-1 sk-short risk-abcdefghijkl");
    ck_assert_str_eq(s, "task-sk-1 sk-short risk-abcdefghijkl");
    free(s);
    /* already masked by mask_secret: unchanged */
    s = scrub("key sk-\xe2\x80\xa6WXYZ");
    ck_assert_str_eq(s, "key sk-\xe2\x80\xa6WXYZ");
    free(s);
    /* two keys, and one at the very end */
    s = scrub("Bearer abcdefghijkl9876");
    ck_assert_str_eq(s, "Bearer \xe2\x80\xa6"
                        "9876");
    free(s);
    s = scrub("bbb sss BBB sk-CCCCCCCCCCCC3333 Bearer sk-DDDDDDDDDDDD4444");
    ck_assert_str_eq(s, "bbb sss BBB sk-\xe2\x80\xa6"
                        "3333 Bearer \xe2\x80\xa6"
                        "4444");
    free(s);
    s = scrub("sk-AAAAAAAAAAAA1111 and sk-BBBBBBBBBBBBBBBBBBBB2222");
    ck_assert_str_eq(s, "sk-\xe2\x80\xa6"
                        "1111 and sk-\xe2\x80\xa6"
                        "2222");
    free(s);
}
END_TEST

/* The scrubber as it was before it looked for the '-' of "sk-" and the
 * space of "bearer " (it tried every 's' and 'b'): the reference the
 * faster one must match byte for byte. */
static int ref_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

static size_t ref_scrub(char *line, size_t len)
{
    size_t i = 0;
    while (i + 3 < len) {
        char c = line[i];
        size_t keep = 0;
        if (!(i > 0 && ref_token_char(line[i - 1]))) {
            if (c == 's' && len - i > 3 && line[i + 1] == 'k' &&
                line[i + 2] == '-')
                keep = 3;
            else if ((c | 0x20) == 'b' && len - i > 7 &&
                     !strncasecmp(line + i, "bearer ", 7))
                keep = 7;
        }
        if (!keep) {
            i++;
            continue;
        }
        size_t n = keep;
        while (i + n < len && ref_token_char(line[i + n]))
            n++;
        if (n - keep >= 8) {
            char last4[4];
            memcpy(last4, line + i + n - 4, 4);
            size_t out = i + keep;
            memcpy(line + out, "\xe2\x80\xa6", 3);
            memcpy(line + out + 3, last4, 4);
            out += 7;
            memmove(line + out, line + i + n, len - (i + n));
            len -= i + n - out;
            i += keep + 7;
        } else {
            i += n;
        }
    }
    return len;
}

/* Random lines over the bytes that matter (pieces of "sk-" and "bearer ",
 * token and non-token bytes, the ellipsis' bytes): the scrubber and the
 * reference agree on every one. */
START_TEST(test_scrub_matches_reference)
{
    static const char *const parts[] = {
        "sk-",  "s",    "k",    "-",  "bearer ", "Bearer ", "BEARER ", "b", "e",
        " ",    "\"",   "a",    "Z",  "9",       "_",       ".",       "x", ":",
        "\xe2", "\x80", "\xa6", "sk", "bearer",  "abcdefgh"};
    const size_t np = sizeof parts / sizeof *parts;
    unsigned long long seed = 1;
    char a[600], b[600], in[600];
    for (int round = 0; round < 200000; round++) {
        size_t n = 0;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t pieces = (size_t)(seed >> 33) % 40;
        for (size_t k = 0; k < pieces; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            const char *p = parts[(seed >> 33) % np];
            size_t l = strlen(p);
            memcpy(a + n, p, l);
            n += l;
        }
        memcpy(b, a, n);
        memcpy(in, a, n);
        size_t na = log_scrub_secrets(a, n);
        size_t nb = ref_scrub(b, n);
        ck_assert_msg(na == nb && !memcmp(a, b, na),
                      "round %d: scrubbers differ on '%.*s'", round, (int)n,
                      in);
    }
}
END_TEST

START_TEST(test_json_line)
{
    buf_t b;
    buf_init(&b);
    log_format_json(&b, "2026-01-02T03:04:05.678Z", LOG_WARN, "st\"age",
                    "quote \" backslash \\ newline \n tab \t ctl \x01 é",
                    ",\"k\":1");
    ck_assert_int_eq(b.data[b.len - 1], '\n');
    json_error_t je;
    json_t *j = json_loadb(b.data, b.len - 1, 0, &je);
    ck_assert_msg(j != NULL, "not JSON: %s (%s)", b.data, je.text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "ts")),
                     "2026-01-02T03:04:05.678Z");
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "WARNING");
    ck_assert_str_eq(json_string_value(json_object_get(j, "component")),
                     "st\"age");
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")),
                     "quote \" backslash \\ newline \n tab \t ctl \x01 é");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "k")), 1);
    ck_assert_ptr_null(strchr(b.data, '\n') == b.data + b.len - 1 ? NULL : "x");
    json_decref(j);
    buf_release(&b);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Every line of the file is a JSON object with ts/level/msg. */
static int count_json_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        ck_assert_msg(nl != NULL, "unterminated line: %s", p);
        json_error_t je;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &je);
        ck_assert_msg(j != NULL, "not JSON: %.*s", (int)(nl - p), p);
        const char *ts = json_string_value(json_object_get(j, "ts"));
        ck_assert_msg(ts && strlen(ts) == 24 && ts[10] == 'T' &&
                          ts[19] == '.' && ts[23] == 'Z',
                      "timestamp %s", ts ? ts : "(none)");
        json_decref(j);
        n++;
        p = nl + 1;
    }
    return n;
}

START_TEST(test_file_writer_and_reopen)
{
    char dir[] = "/tmp/sluice-log-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], rotated[256], err[256];
    snprintf(path, sizeof path, "%s/logs/app.log", dir); /* logs/ created */
    snprintf(rotated, sizeof rotated, "%s/logs/app.log.1", dir);
    log_set_pretty(0);
    log_set_level(LOG_INFO);
    ck_assert_msg(log_start(path, err, sizeof err) == 0, "%s", err);
    log_msg(LOG_INFO, "t", "first line with key sk-live-0123456789abcdefXYZW");
    log_msg(LOG_DEBUG, "t", "filtered out by level");
    log_fields(LOG_WARN, "t", "\"n\":2", "second");
    /* the writer runs on its own: wait (bounded) for the lines to land */
    for (int i = 0; i < 200; i++) {
        char *t = slurp(path);
        int done = t && strstr(t, "second");
        free(t);
        if (done)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(rename(path, rotated), 0);
    log_reopen();
    for (int i = 0; i < 200 && access(path, F_OK) != 0; i++)
        usleep(10000);
    log_msg(LOG_INFO, "t", "after reopen");
    log_stop(); /* flushes */

    char *old = slurp(rotated), *cur = slurp(path);
    ck_assert_ptr_nonnull(old);
    ck_assert_ptr_nonnull(cur);
    ck_assert_has(old, "first line");
    ck_assert_has(old, "\"n\":2");
    ck_assert_hasnt(old, "filtered out");
    ck_assert_hasnt(old, "0123456789abcdef");
    ck_assert_has(old, "XYZW");
    ck_assert_hasnt(old, "after reopen");
    ck_assert_has(cur, "after reopen");
    ck_assert_int_eq(count_json_lines(old), 2);
    ck_assert_int_eq(count_json_lines(cur), 1);
    ck_assert_int_eq(log_dropped_lines(), 0);
    free(old);
    free(cur);
    unlink(rotated);
    unlink(path);
    snprintf(path, sizeof path, "%s/logs", dir);
    rmdir(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_file_unwritable)
{
    char err[256] = "";
    ck_assert_int_eq(
        log_start("/proc/nonexistent/dir/app.log", err, sizeof err), -1);
    ck_assert_has(err, "log.file /proc/nonexistent/dir/app.log");
    /* logging still works (straight to stderr) */
    log_msg(LOG_INFO, "t", "still alive");
    log_stop();
}
END_TEST

/* ---- a stuck destination never blocks the caller ---------------------- */

static int drain_fd = -1;
static size_t drained;
static int saw_drop_notice;

/* Read the pipe to its end, looking for the writer's drop notice (the
 * last 256 bytes of a read are kept so a notice split by reads is seen). */
static void *drainer(void *arg)
{
    static const char notice[] = "log lines dropped";
    char buf[256 + 65536];
    size_t carry = 0;
    ssize_t n;
    (void)arg;
    while ((n = read(drain_fd, buf + carry, sizeof buf - carry)) > 0) {
        drained += (size_t)n;
        size_t have = carry + (size_t)n;
        if (memmem(buf, have, notice, sizeof notice - 1))
            saw_drop_notice = 1;
        carry = have < 256 ? have : 256;
        memmove(buf, buf + have - carry, carry);
    }
    return NULL;
}

START_TEST(test_full_buffer_drops_never_blocks)
{
    /* stderr becomes a pipe nobody reads yet: the writer thread blocks on
     * it, its buffer fills, and further lines must be dropped and counted
     * while the callers go on */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    char err[128], line[1001];
    memset(line, 'x', 1000);
    line[1000] = '\0';
    log_set_pretty(0);
    log_set_level(LOG_INFO);
    ck_assert_int_eq(log_start(NULL, err, sizeof err), 0);
    for (int i = 0; i < 4000; i++) /* ~4 MB against a 1 MiB buffer */
        log_msg(LOG_INFO, "t", "%d %s", i, line);
    unsigned long long dropped = log_dropped_lines();
    ck_assert_msg(dropped > 0, "nothing dropped");
    ck_assert_msg(dropped < 4000, "everything dropped");
    /* now read the pipe: the writer catches up and reports the drops */
    pthread_t th;
    drain_fd = p[0];
    pthread_create(&th, NULL, drainer, NULL);
    log_stop();
    dup2(saved, STDERR_FILENO); /* closes the pipe's last write end */
    close(saved);
    pthread_join(th, NULL);
    close(p[0]);
    /* what the ring held reached the pipe (how much exactly depends on
     * where the writer was blocked when the ring filled) */
    ck_assert_uint_gt(drained, 512u << 10);
    ck_assert_msg(saw_drop_notice, "no 'log lines dropped' notice");
}
END_TEST

START_TEST(test_level_parse)
{
    ck_assert_int_eq(log_level_parse("debug"), LOG_DEBUG);
    ck_assert_int_eq(log_level_parse("INFO"), LOG_INFO);
    ck_assert_int_eq(log_level_parse("Warning"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("WARN"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("ERROR"), LOG_ERROR);
    ck_assert_int_eq(log_level_parse("loud"), -1);
    ck_assert_int_eq(log_level_parse(NULL), -1);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_scrub_secrets);
    tcase_add_test(tc, test_scrub_matches_reference);
    tcase_add_test(tc, test_json_line);
    tcase_add_test(tc, test_file_writer_and_reopen);
    tcase_add_test(tc, test_file_unwritable);
    tcase_add_test(tc, test_full_buffer_drops_never_blocks);
    tcase_add_test(tc, test_level_parse);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
