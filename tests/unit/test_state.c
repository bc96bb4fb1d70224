/*
 * test_state.c - the state layer (core/state.c) and its local backend
 * (core/state_sqlite.c): counters with TTL, records, namespaces per stage,
 * watches and completions on the state thread, what survives a close and
 * reopen of the file, and the errors for a corrupt or unusable file.
 */
#include "pipeline.h"
#include "state.h"
#include "state_wire.h"
#include "timer.h"

#include <check.h>
#include <sqlite3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in '%s'",    \
                  (needle), (hay))

static char tmpdir[256];
static char dbpath[300];
static struct sluice_stage st_a = {.name = "keyring"};
static struct sluice_stage st_b = {.name = "auth"};
/* the same stage in another generation (after a reload) */
static struct sluice_stage st_a2 = {.name = "keyring"};

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-state-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(dbpath, sizeof dbpath, "%s/state.db", tmpdir);
}

static void teardown(void)
{
    char cmd[400];
    state_close();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void open_local(const char *path, int reset)
{
    struct state_conf sc = {
        .backend = "local", .path = (char *)path, .reset_on_corrupt = reset};
    char err[512] = "";
    ck_assert_msg(state_open(&sc, "test-a", err, sizeof err) == 0, "%s", err);
}

static int open_err(const char *path, int reset, char *err, size_t errlen)
{
    struct state_conf sc = {
        .backend = "local", .path = (char *)path, .reset_on_corrupt = reset};
    return state_open(&sc, "test-a", err, errlen);
}

static char *get_str(sluice_stage *s, const char *key)
{
    static char out[256];
    buf_t b;
    buf_init(&b);
    int found = state_get(s, key, &b, NULL, NULL);
    snprintf(out, sizeof out, "%s", found ? (b.data ? b.data : "") : "<none>");
    buf_release(&b);
    return out;
}

/* ---- the view ------------------------------------------------------------ */

START_TEST(test_counters)
{
    open_local(dbpath, 0);
    ck_assert_int_eq(state_incr(&st_a, NULL, "c", 1, 0, NULL, NULL), 1);
    ck_assert_int_eq(state_incr(&st_a, NULL, "c", 5, 0, NULL, NULL), 6);
    ck_assert_int_eq(state_incr(&st_a, NULL, "c", -2, 0, NULL, NULL), 4);
    ck_assert_int_eq(state_incr(&st_a, NULL, "c", 0, 0, NULL, NULL), 4);
    /* another stage's namespace */
    ck_assert_int_eq(state_incr(&st_b, NULL, "c", 0, 0, NULL, NULL), 0);
    ck_assert_int_eq(state_incr(&st_b, NULL, "c", 3, 0, NULL, NULL), 3);
    int64_t n = 0;
    ck_assert_int_eq(state_get(&st_a, "c", NULL, &n, NULL), 1);
    ck_assert_int_eq(n, 4);
    /* a window: the TTL counts from creation and later increments keep it */
    uint64_t exp = 0;
    ck_assert_int_eq(state_incr(&st_a, NULL, "w", 1, 150, NULL, NULL), 1);
    ck_assert_int_eq(state_get(&st_a, "w", NULL, &n, &exp), 1);
    ck_assert(exp > time_wall_ms() && exp <= time_wall_ms() + 150);
    ck_assert_int_eq(state_incr(&st_a, NULL, "w", 1, 150, NULL, NULL), 2);
    uint64_t exp2 = 0;
    state_get(&st_a, "w", NULL, NULL, &exp2);
    ck_assert(exp2 == exp);
    usleep(200 * 1000);
    ck_assert_int_eq(state_get(&st_a, "w", NULL, &n, NULL), 0);
    ck_assert_int_eq(state_incr(&st_a, NULL, "w", 1, 150, NULL, NULL), 1);
    /* bad keys are refused softly */
    char big[STATE_KEY_MAX + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(state_incr(&st_a, NULL, big, 1, 0, NULL, NULL), 0);
    ck_assert_int_eq(state_incr(&st_a, NULL, "", 1, 0, NULL, NULL), 0);
    ck_assert_int_eq(state_incr(NULL, NULL, "x", 1, 0, NULL, NULL), 0);
}
END_TEST

START_TEST(test_records)
{
    open_local(dbpath, 0);
    ck_assert_int_eq(state_put(&st_a, "k1", "{\"s\":1}", 7, 0), 0);
    ck_assert_str_eq(get_str(&st_a, "k1"), "{\"s\":1}");
    ck_assert_str_eq(get_str(&st_b, "k1"), "<none>");
    ck_assert_int_eq(state_put(&st_a, "k1", "two", 3, 0), 0);
    ck_assert_str_eq(get_str(&st_a, "k1"), "two");
    ck_assert_int_eq(state_put(&st_a, "empty", "", 0, 0), 0);
    ck_assert_str_eq(get_str(&st_a, "empty"), "");
    ck_assert_int_eq(state_del(&st_a, "k1"), 1);
    ck_assert_int_eq(state_del(&st_a, "k1"), 0);
    ck_assert_str_eq(get_str(&st_a, "k1"), "<none>");
    ck_assert_int_eq(state_put(&st_a, "t", "x", 1, 100), 0);
    ck_assert_str_eq(get_str(&st_a, "t"), "x");
    usleep(150 * 1000);
    ck_assert_str_eq(get_str(&st_a, "t"), "<none>");
    /* limits */
    char *huge = calloc(1, STATE_RECORD_MAX + 1);
    ck_assert_int_eq(state_put(&st_a, "h", huge, STATE_RECORD_MAX + 1, 0), -1);
    ck_assert_int_eq(state_put(&st_a, "h", huge, STATE_RECORD_MAX, 0), 0);
    free(huge);
    ck_assert_int_eq(state_put(&st_a, "n", NULL, 3, 0), -1);
}
END_TEST

/* ---- watches and completions --------------------------------------------- */

struct seen {
    pthread_mutex_t lock;
    pthread_t thread[16];
    char keys[16][64];
    char data[16][64];
    int found[16];
    int64_t count[16];
    int shared[16];
    int n;
};

static void seen_fn(void *arg, const sluice_state_value *v)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->lock);
    if (s->n < 16) {
        s->thread[s->n] = pthread_self();
        snprintf(s->keys[s->n], 64, "%s", v->key);
        snprintf(s->data[s->n], 64, "%s", v->data ? v->data : "");
        s->found[s->n] = v->found;
        s->count[s->n] = v->count;
        s->shared[s->n] = v->shared;
        s->n++;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Bounded generously (10 s): the state thread runs late on a busy machine. */
static int seen_wait(struct seen *s, int n)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&s->lock);
        int have = s->n;
        pthread_mutex_unlock(&s->lock);
        if (have >= n)
            return have;
        usleep(10 * 1000);
    }
    return s->n;
}

START_TEST(test_watch)
{
    static struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    open_local(dbpath, 0);
    state_put(&st_a, "key:1", "failed", 6, 0);
    state_put(&st_a, "other", "x", 1, 0);
    state_put(&st_b, "key:9", "y", 1, 0);
    state_incr(&st_a, NULL, "key:c", 1, 0, NULL, NULL);
    /* the existing record under the prefix, inside the call */
    ck_assert_int_eq(state_watch(&st_a, "key:", seen_fn, &s), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.keys[0], "key:1");
    ck_assert_str_eq(s.data[0], "failed");
    ck_assert(pthread_equal(s.thread[0], pthread_self()));
    /* changes by others, later, on the state thread; counters, its own
     * changes and other namespaces not */
    state_put(&st_a, "key:own", "x", 1, 0);
    state_put(&st_a2, "key:2", "cooling", 7, 0);
    state_incr(&st_a2, NULL, "key:c", 1, 0, NULL, NULL);
    state_put(&st_a2, "other", "z", 1, 0);
    state_put(&st_b, "key:3", "z", 1, 0);
    state_del(&st_a, "key:own");
    state_del(&st_a2, "key:1");
    ck_assert_int_eq(seen_wait(&s, 3), 3);
    usleep(50 * 1000);
    pthread_mutex_lock(&s.lock);
    ck_assert_int_eq(s.n, 3);
    ck_assert_str_eq(s.keys[1], "key:2");
    ck_assert_str_eq(s.data[1], "cooling");
    ck_assert_int_eq(s.found[1], 1);
    ck_assert(!pthread_equal(s.thread[1], pthread_self()));
    ck_assert_str_eq(s.keys[2], "key:1");
    ck_assert_int_eq(s.found[2], 0);
    pthread_mutex_unlock(&s.lock);
    /* a forgotten stage hears nothing more */
    state_forget_stage(&st_a);
    state_put(&st_a2, "key:4", "x", 1, 0);
    state_flush();
    usleep(50 * 1000);
    ck_assert_int_eq(s.n, 3);
}
END_TEST

/* Two threads put the same watched key at once: each put's notification
 * must copy its own bytes, never the entry's (which the other put frees).
 * ASan turned this into a heap-use-after-free under load once. */
static void *put_loop(void *arg)
{
    const char *val = arg;
    for (int i = 0; i < 20000; i++)
        state_put(&st_a2, "key:race", val, strlen(val), 0);
    return NULL;
}

/* Counts notifications whose bytes are neither value. */
static void check_fn(void *arg, const sluice_state_value *v)
{
    if (!v->data ||
        (strcmp(v->data, "cooling-left") && strcmp(v->data, "failed-right")))
        __atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
}

START_TEST(test_concurrent_puts_while_watched)
{
    static int bad;
    open_local(dbpath, 0);
    ck_assert_int_eq(state_watch(&st_a, "key:", check_fn, &bad), 0);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, put_loop, "cooling-left");
    pthread_create(&t2, NULL, put_loop, "failed-right");
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    state_flush();
    usleep(50 * 1000);
    ck_assert_int_eq(__atomic_load_n(&bad, __ATOMIC_RELAXED), 0);
    const char *v = get_str(&st_a2, "key:race");
    ck_assert_msg(!strcmp(v, "cooling-left") || !strcmp(v, "failed-right"),
                  "%s", v);
}
END_TEST

START_TEST(test_incr_done)
{
    static struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    static struct seen dropped = {.lock = PTHREAD_MUTEX_INITIALIZER};
    open_local(dbpath, 0);
    ck_assert_int_eq(state_incr(&st_a, NULL, "u", 7, 0, seen_fn, &s), 7);
    ck_assert_int_eq(seen_wait(&s, 1), 1);
    ck_assert_int_eq(s.count[0], 7);
    ck_assert_str_eq(s.keys[0], "u");
    ck_assert(!pthread_equal(s.thread[0], pthread_self()));
    /* a completion of a stage forgotten before it ran is dropped: stop the
     * state thread from running it by forgetting at once, many times */
    for (int i = 0; i < 50; i++) {
        state_incr(&st_b, NULL, "u", 1, 0, seen_fn, &dropped);
        state_forget_stage(&st_b);
    }
    state_flush();
    ck_assert_int_le(dropped.n, 50);
    ck_assert_int_eq(state_incr(&st_b, NULL, "u", 0, 0, NULL, NULL), 50);
}
END_TEST

static void count_fn(void *arg, const sluice_state_value *v)
{
    (void)v;
    (*(int *)arg)++;
}

START_TEST(test_list)
{
    int n = 0;
    open_local(dbpath, 0);
    state_incr(&st_a, NULL, "use:a", 3, 0, NULL, NULL);
    state_incr(&st_a, NULL, "use:b", 3, 0, NULL, NULL);
    state_put(&st_a, "use:r", "x", 1, 0);
    state_put(&st_a, "x", "x", 1, 0);
    state_incr(&st_b, NULL, "use:z", 3, 0, NULL, NULL);
    ck_assert_int_eq(state_list(&st_a, "use:", count_fn, &n), 3);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(state_list(&st_a, "", count_fn, &n), 4);
}
END_TEST

/* ---- the file ------------------------------------------------------------ */

START_TEST(test_survives_reopen)
{
    open_local(dbpath, 0);
    state_put(&st_a, "key:1", "failed", 6, 0);
    state_put(&st_a, "key:2", "cooling", 7, 60000);
    state_put(&st_a, "gone", "soon", 4, 50);
    state_put(&st_a, "deleted", "x", 1, 0);
    state_incr(&st_b, NULL, "win", 41, 60000, NULL, NULL);
    state_incr(&st_b, NULL, "total", 1000, 0, NULL, NULL);
    state_flush(); /* written... */
    state_del(&st_a, "deleted");
    state_incr(&st_b, NULL, "total", 1, 0, NULL, NULL); /* ...and pending */
    usleep(80 * 1000);
    state_close(); /* writes what is pending */

    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    open_local(dbpath, 0);
    ck_assert_str_eq(get_str(&st_a, "key:1"), "failed");
    ck_assert_str_eq(get_str(&st_a, "key:2"), "cooling");
    ck_assert_str_eq(get_str(&st_a, "gone"), "<none>");
    ck_assert_str_eq(get_str(&st_a, "deleted"), "<none>");
    int64_t n = 0;
    uint64_t exp = 0;
    ck_assert_int_eq(state_get(&st_b, "win", NULL, &n, &exp), 1);
    ck_assert_int_eq(n, 41);
    ck_assert(exp > time_wall_ms() + 50000);
    ck_assert_int_eq(state_incr(&st_b, NULL, "win", 1, 60000, NULL, NULL), 42);
    ck_assert_int_eq(state_incr(&st_b, NULL, "total", 0, 0, NULL, NULL), 1001);
    buf_t b;
    buf_init(&b);
    state_status_json(&b);
    ck_assert_has(b.data, "\"backend\":\"local\"");
    ck_assert_has(b.data, "\"instance\":\"test-a\"");
    ck_assert_has(b.data, "\"up\":true");
    buf_release(&b);
}
END_TEST

/* Without a close (a crash), what the writer flushed is there. */
START_TEST(test_flushed_within_a_second)
{
    open_local(dbpath, 0);
    state_put(&st_a, "key:1", "failed", 6, 0);
    /* read the file from another connection, as a restarted process would;
     * the writer flushes every STATE_FLUSH_MS, but a busy machine runs it
     * late: poll (bounded, 10 s) rather than assert a deadline */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_DONE;
    for (int i = 0; i < 100 && rc != SQLITE_ROW; i++) {
        usleep(100 * 1000);
        sqlite3_finalize(st);
        sqlite3_close(db);
        st = NULL;
        ck_assert_int_eq(
            sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL),
            SQLITE_OK);
        if (sqlite3_prepare_v2(db,
                               "SELECT data, origin FROM state "
                               "WHERE key='keyring:key:1'",
                               -1, &st, NULL) != SQLITE_OK)
            continue; /* the table is not created yet */
        rc = sqlite3_step(st);
    }
    ck_assert_int_eq(rc, SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_blob(st, 0), "failed");
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), "test-a");
    sqlite3_finalize(st);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_corrupt_file)
{
    char err[512] = "", aside[400];
    FILE *f = fopen(dbpath, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database at all ", f);
    fclose(f);
    ck_assert_int_eq(open_err(dbpath, 0, err, sizeof err), -1);
    ck_assert_has(err, "state.path: ");
    ck_assert_has(err, dbpath);
    ck_assert_has(err, "not a usable state file");
    ck_assert_has(err, "reset_on_corrupt");
    /* the file is left as it was */
    struct stat sb;
    ck_assert_int_eq(stat(dbpath, &sb), 0);
    ck_assert_int_eq(sb.st_size, 200 * 30);
    /* with reset_on_corrupt: moved aside, a fresh file */
    open_local(dbpath, 1);
    snprintf(aside, sizeof aside, "%s.corrupt", dbpath);
    ck_assert_int_eq(stat(aside, &sb), 0);
    ck_assert_int_eq(state_put(&st_a, "k", "v", 1, 0), 0);
    state_close();
    open_local(dbpath, 0);
    ck_assert_str_eq(get_str(&st_a, "k"), "v");
}
END_TEST

START_TEST(test_unusable_path)
{
    char err[512] = "", path[400];
    /* a folder where the file should be */
    ck_assert_int_eq(mkdir(dbpath, 0700), 0);
    ck_assert_int_eq(open_err(dbpath, 1, err, sizeof err), -1);
    ck_assert_has(err, "state.path: ");
    ck_assert_has(err, dbpath);
    ck_assert_has(err, "cannot open for writing");
    /* under a regular file */
    snprintf(path, sizeof path, "%s/file", tmpdir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/file/state.db", tmpdir);
    ck_assert_int_eq(open_err(path, 0, err, sizeof err), -1);
    ck_assert_has(err, path);
    /* a missing folder (one level) is made */
    snprintf(path, sizeof path, "%s/data/state.db", tmpdir);
    open_local(path, 0);
}
END_TEST

START_TEST(test_memory_backend)
{
    char err[256] = "";
    ck_assert_int_eq(state_open(NULL, "check", err, sizeof err), 0);
    ck_assert_int_eq(state_put(&st_a, "k", "v", 1, 0), 0);
    ck_assert_str_eq(get_str(&st_a, "k"), "v");
    state_close();
    ck_assert_int_eq(state_open(NULL, "check", err, sizeof err), 0);
    ck_assert_str_eq(get_str(&st_a, "k"), "<none>");
}
END_TEST

/* ---- a shared backend (as redis is), faked ------------------------------- */

struct fake_backend {
    struct state_backend base;
    int64_t fleet_extra; /* what "other instances" added to every counter */
    int down;
    int writes;
    int restores;         /* counter rows asking to be restored */
    int64_t restore_base; /* the last one's value */
};

static int fake_write(struct state_backend *b, struct state_row *rows, size_t n,
                      char *err, size_t errlen)
{
    struct fake_backend *f = (struct fake_backend *)b;
    if (f->down) {
        snprintf(err, errlen, "fake: down");
        return -1;
    }
    f->writes++;
    for (size_t i = 0; i < n; i++)
        if (rows[i].is_counter && rows[i].restore) {
            f->restores++;
            f->restore_base = rows[i].base;
        }
    for (size_t i = 0; i < n; i++)
        if (rows[i].is_counter && !rows[i].deleted) {
            rows[i].fleet = rows[i].count + f->fleet_extra;
            rows[i].has_fleet = 1;
        }
    return 0;
}

static int fake_tick(struct state_backend *b, char *err, size_t errlen)
{
    struct fake_backend *f = (struct fake_backend *)b;
    if (f->down)
        snprintf(err, errlen, "fake: down");
    return f->down ? -1 : 0;
}

static void fake_close(struct state_backend *b)
{
    (void)b;
}

static struct fake_backend fake = {.base = {.name = "test",
                                            .flush_ms = 10,
                                            .write = fake_write,
                                            .tick = fake_tick,
                                            .close = fake_close}};

/* Completions wait for the backend's answer and carry the fleet's value;
 * the view takes it too; while the backend is down they carry the view's,
 * marked not shared, and the increments are kept for later. */
START_TEST(test_shared_backend_completions)
{
    static struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct state_conf sc = {.backend = "test"};
    char err[256];
    fake.fleet_extra = 100;
    state_test_backend = &fake.base;
    ck_assert_int_eq(state_open(&sc, "test-a", err, sizeof err), 0);
    ck_assert_int_eq(state_incr(&st_a, NULL, "n", 2, 0, seen_fn, &s), 2);
    ck_assert_int_eq(seen_wait(&s, 1), 1);
    ck_assert_int_eq(s.count[0], 102);
    ck_assert_int_eq(state_incr(&st_a, NULL, "n", 0, 0, NULL, NULL), 102);
    fake.down = 1;
    /* idle, the state thread ticks the backend once a second (IDLE_MS) */
    for (int i = 0; i < 1000 && state_healthy(); i++)
        usleep(10 * 1000);
    ck_assert_int_eq(state_healthy(), 0);
    ck_assert_int_eq(state_incr(&st_a, NULL, "n", 1, 0, seen_fn, &s), 103);
    ck_assert_int_eq(seen_wait(&s, 2), 2);
    ck_assert_int_eq(s.count[1], 103);
    ck_assert_int_eq(s.shared[0], 1);
    ck_assert_int_eq(s.shared[1], 0); /* the view's alone */
    fake.down = 0;
    for (int i = 0; i < 1000 && !state_healthy(); i++)
        usleep(10 * 1000);
    ck_assert_int_eq(state_healthy(), 1);
    state_flush();
    /* the increment made while down reached the backend: 103 + 100 */
    ck_assert_int_eq(state_incr(&st_a, NULL, "n", 0, 0, NULL, NULL), 203);
    state_close();
    state_test_backend = NULL;
}
END_TEST

/* A degraded view as stages see it: state_status (with on_unavailable:
 * closed), watch notifications of changes made meanwhile marked not
 * shared; and after a reconnect every counter goes to the backend with
 * the value to restore where it has none (an emptied Redis). */
START_TEST(test_degraded_view)
{
    static struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct state_conf sc = {.backend = "test", .fail_closed = 1};
    char err[256];
    fake.fleet_extra = 0;
    fake.down = 0;
    fake.restores = 0;
    state_test_backend = &fake.base;
    ck_assert_int_eq(state_open(&sc, "test-a", err, sizeof err), 0);
    ck_assert_int_eq(state_status(&st_a), SLUICE_STATE_CLOSED);
    ck_assert_int_eq(state_incr(&st_b, NULL, "win", 5, 0, NULL, NULL), 5);
    state_flush();
    ck_assert_int_eq(state_watch(&st_a, "w:", seen_fn, &s), 0);
    fake.down = 1;
    for (int i = 0; i < 1000 && state_healthy(); i++)
        usleep(10 * 1000);
    ck_assert_int_eq(state_status(&st_a),
                     SLUICE_STATE_DEGRADED | SLUICE_STATE_CLOSED);
    state_put(&st_a2, "w:1", "x", 1, 0);
    ck_assert_int_eq(seen_wait(&s, 1), 1);
    ck_assert_int_eq(s.shared[0], 0);
    fake.down = 0;
    for (int i = 0; i < 1000 && !state_healthy(); i++)
        usleep(10 * 1000);
    ck_assert_int_eq(state_status(&st_a), SLUICE_STATE_CLOSED);
    state_put(&st_a2, "w:2", "y", 1, 0);
    ck_assert_int_eq(seen_wait(&s, 2), 2);
    ck_assert_int_eq(s.shared[1], 1);
    /* a reconnect: the counter asks to be restored to the view's 5 */
    ck_assert_int_eq(fake.restores, 0);
    state_requeue_own();
    state_flush();
    ck_assert_int_eq(fake.restores, 1);
    ck_assert_int_eq(fake.restore_base, 5);
    state_close();
    state_test_backend = NULL;
}
END_TEST

/* A pull sweeps the records it did not find (deleted while this instance
 * was not listening), but keeps counters, records changed since it began
 * and changes not yet written. */
START_TEST(test_pull_sweep)
{
    struct state_conf sc = {.backend = "test"};
    char err[256];
    fake.down = 0;
    state_test_backend = &fake.base;
    ck_assert_int_eq(state_open(&sc, "test-a", err, sizeof err), 0);
    state_put(&st_a, "found", "1", 1, 0);
    state_put(&st_a, "gone", "2", 1, 0);
    state_incr(&st_a, NULL, "count", 3, 0, NULL, NULL);
    state_flush(); /* written: nothing dirty */
    uint64_t since;
    usleep(2000); /* the records' last change lies before the pull */
    uint32_t gen = state_pull_begin(&since);
    buf_t w;
    buf_init(&w);
    state_wire_encode(&w, "keyring:found", 1, 0, "test-a", "1", 1);
    struct state_wire dec;
    ck_assert_int_eq(state_wire_decode(w.data, w.len, &dec), 0);
    state_pull_record(&dec, 0, gen); /* ours: only marked */
    buf_release(&w);
    state_put(&st_a, "new", "3", 1, 0); /* during the pull, not written */
    state_pull_sweep(gen, since);
    ck_assert_str_eq(get_str(&st_a, "found"), "1");
    ck_assert_str_eq(get_str(&st_a, "gone"), "<none>");
    ck_assert_str_eq(get_str(&st_a, "new"), "3");
    ck_assert_int_eq(state_incr(&st_a, NULL, "count", 0, 0, NULL, NULL), 3);
    state_close();
    state_test_backend = NULL;
}
END_TEST

static Suite *state_suite(void)
{
    Suite *s = suite_create("state");
    TCase *view = tcase_create("view");
    TCase *file = tcase_create("file");

    tcase_add_checked_fixture(view, setup, teardown);
    tcase_add_test(view, test_counters);
    tcase_add_test(view, test_records);
    tcase_add_test(view, test_watch);
    tcase_add_test(view, test_incr_done);
    tcase_add_test(view, test_concurrent_puts_while_watched);
    tcase_add_test(view, test_list);
    tcase_add_test(view, test_memory_backend);
    tcase_add_test(view, test_shared_backend_completions);
    tcase_add_test(view, test_degraded_view);
    tcase_add_test(view, test_pull_sweep);
    suite_add_tcase(s, view);

    tcase_add_checked_fixture(file, setup, teardown);
    tcase_add_test(file, test_survives_reopen);
    tcase_add_test(file, test_flushed_within_a_second);
    tcase_add_test(file, test_corrupt_file);
    tcase_add_test(file, test_unusable_path);
    suite_add_tcase(s, file);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(state_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
