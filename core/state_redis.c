/*
 * state_redis.c - the redis backend: the state shared by every instance of
 * a fleet through one Redis server (hiredis).
 *
 * No worker talks to Redis: requests read and write the in-memory view
 * (state.c), and the state thread carries the changes to Redis every
 * REDIS_FLUSH_MS, pipelined in one round trip:
 *   - a record:  SET <prefix>r:<key> <wire> [PX ttl], then PUBLISH it on
 *                <prefix>changes; a deletion: DEL, then PUBLISH it;
 *   - a counter: the increments since the last flush, added atomically by a
 *                script (INCRBY, and PEXPIREAT when it has no TTL yet) whose
 *                answer, the fleet's value, becomes the view's value; the
 *                script also publishes it, numbered, so every other
 *                instance's view takes it too (state_apply_counter).
 * A subscriber thread applies what other instances publish (well within
 * 100 ms: one flush period plus a loopback round trip). Redis down, slow
 * (state.timeout_ms) or restarted is "degraded", not down: the view keeps
 * serving, changes queue, and on reconnect this instance pushes its own
 * records again (Redis may have lost them) and pulls everyone's.
 */
#include "fault.h"
#include "log.h"
#include "state.h"
#include "state_wire.h"
#include "timer.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REDIS_FLUSH_MS     10
#define REDIS_RETRY_MS     1000
#define REDIS_PING_MS      1000
#define REDIS_SUB_POLL_MS  100
#define REDIS_PASSWORD_MAX 512
/* After Redis restarted (its run_id changed) the instances push their
 * records back within a few retry periods: until then a record missing
 * from Redis is not a deletion, and pulls do not sweep. */
#define REDIS_SWEEP_GRACE_MS 10000

/* Restore a counter a restarted Redis lost (ARGV[6], the value the
 * instance last saw, when not empty: only if the key is absent, so the
 * first instance back restores it and the others' restores do nothing),
 * INCRBY, give a fresh counter its expiry, number the change in the
 * fleet's order (KEYS[2], one sequence per prefix) and publish the new
 * value on the changes channel, so every instance's view follows it at
 * once, not only at its own next write. Answers {value, seq}. */
static const char incr_script[] =
    "if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[1]) == 0 then "
    "redis.call('SET', KEYS[1], ARGV[6]) end "
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then "
    "redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end "
    "local s = redis.call('INCR', KEYS[2]) "
    "redis.call('PUBLISH', ARGV[3], string.format('C1 %d %d %s %d %d\\n', "
    "s, v, ARGV[2], #ARGV[4], #ARGV[5]) .. ARGV[4] .. ARGV[5]) "
    "return {v, s}";

struct redis_backend {
    struct state_backend base;
    char host[256];
    int port, db;
    char *password;
    char prefix[64];
    char channel[96];
    char instance[64];
    long timeout_ms;
    redisContext *c;     /* commands: the state thread's */
    redisContext *sub_c; /* subscribed at open, handed to the subscriber */
    uint64_t next_try_ms, last_ok_ms;
    char run_id[48];         /* the server's, as last seen */
    uint64_t sweep_after_ms; /* monotonic: pulls may sweep from then on */
    atomic_int resync;       /* pull the shared records at the next tick */
    atomic_int stop;
    pthread_t sub;
    int sub_started;
};

/* ---- connecting ---------------------------------------------------------- */

static int parse_url(struct redis_backend *b, const char *url, char *err,
                     size_t errlen)
{
    const char *p = url + 8; /* "redis://" (config.c checked it) */
    const char *end = p + strcspn(p, "/");
    if (memchr(p, '@', (size_t)(end - p))) {
        snprintf(err, errlen,
                 "state.url: put the password in state.password_file, not "
                 "in the URL");
        return -1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    size_t hl = (size_t)((colon ? colon : end) - p);
    if (!hl || hl >= sizeof b->host) {
        snprintf(err, errlen, "state.url: %s: no host", url);
        return -1;
    }
    memcpy(b->host, p, hl);
    b->host[hl] = '\0';
    b->port = colon ? atoi(colon + 1) : 6379;
    b->db = *end == '/' ? atoi(end + 1) : 0;
    if (b->port <= 0 || b->port > 65535 || b->db < 0) {
        snprintf(err, errlen, "state.url: %s: bad port or database", url);
        return -1;
    }
    return 0;
}

static int read_password(struct redis_backend *b, const char *path, char *err,
                         size_t errlen)
{
    char line[REDIS_PASSWORD_MAX];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "state.password_file: %s: cannot open", path);
        return -1;
    }
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0]) {
        snprintf(err, errlen, "state.password_file: %s: empty", path);
        return -1;
    }
    b->password = strdup(line);
    memset(line, 0, sizeof line);
    return b->password ? 0 : -1;
}

/* A reply that is an error (or none): its text into err. */
static int reply_failed(redisContext *c, redisReply *r, const char *what,
                        char *err, size_t errlen)
{
    if (r && r->type != REDIS_REPLY_ERROR)
        return 0;
    snprintf(err, errlen, "%s: %s", what,
             r ? r->str : (c->errstr[0] ? c->errstr : "no reply"));
    return -1;
}

static redisContext *rb_connect(struct redis_backend *b, long timeout_ms,
                                char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisReply *r = NULL;
    redisContext *c = redisConnectWithTimeout(b->host, b->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "redis %s:%d: %s", b->host, b->port,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (b->password) {
        r = redisCommand(c, "AUTH %s", b->password);
        if (reply_failed(c, r, "AUTH refused", err, errlen))
            goto fail;
        freeReplyObject(r);
    }
    if (b->db) {
        r = redisCommand(c, "SELECT %d", b->db);
        if (reply_failed(c, r, "SELECT", err, errlen))
            goto fail;
        freeReplyObject(r);
    }
    r = redisCommand(c, "PING");
    if (reply_failed(c, r, "PING", err, errlen))
        goto fail;
    freeReplyObject(r);
    return c;
fail:
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return NULL;
}

/* Note the server's run_id; a new one (a restart) holds off sweeps. */
static void rb_run_id(struct redis_backend *b)
{
    redisReply *r = redisCommand(b->c, "INFO server");
    const char *p;
    if (r && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, "run_id:"))) {
        char id[48];
        size_t n = strcspn(p + 7, "\r\n");
        snprintf(id, sizeof id, "%.*s", (int)(n < 47 ? n : 47), p + 7);
        if (b->run_id[0] && strcmp(id, b->run_id))
            b->sweep_after_ms = time_now_ms() + REDIS_SWEEP_GRACE_MS;
        memcpy(b->run_id, id, sizeof id);
    }
    if (r)
        freeReplyObject(r);
}

static void rb_drop(struct redis_backend *b)
{
    redisFree(b->c);
    b->c = NULL;
    b->next_try_ms = time_now_ms() + REDIS_RETRY_MS;
}

/* ---- pulling the shared state ---------------------------------------------
 */

/* One SCAN page's keys, each with the replies to the commands a pull
 * pipelined for it (records: GET; counters: GET, PTTL). */
typedef void (*pull_fn)(struct redis_backend *b, const redisReply *key,
                        redisReply **replies, void *arg);

/* SCAN <prefix><kind>* (bounded pages, never KEYS), pipeline `cmds` for
 * each key (ncmds of "GET", "PTTL"), hand the replies to fn. */
static int rb_scan(struct redis_backend *b, const char *kind,
                   const char *const *cmds, size_t ncmds, pull_fn fn, void *arg,
                   char *err, size_t errlen)
{
    char match[160], cursor[32] = "0";
    size_t m = 0;
    for (const char *p = b->prefix; *p && m + 3 < sizeof match; p++) {
        if (strchr("*?[]\\", *p)) /* the prefix is literal */
            match[m++] = '\\';
        match[m++] = *p;
    }
    snprintf(match + m, sizeof match - m, "%s*", kind);
    do {
        redisReply *r =
            redisCommand(b->c, "SCAN %s MATCH %s COUNT 500", cursor, match);
        if (reply_failed(b->c, r, "SCAN", err, errlen) ||
            r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            for (size_t k = 0; k < ncmds; k++)
                redisAppendCommand(b->c, "%s %b", cmds[k],
                                   keys->element[i]->str,
                                   (size_t)keys->element[i]->len);
        for (size_t i = 0; i < keys->elements; i++) {
            redisReply *v[2] = {NULL, NULL};
            for (size_t k = 0; k < ncmds; k++)
                if (redisGetReply(b->c, (void **)&v[k]) != REDIS_OK) {
                    snprintf(err, errlen, "%s: %s", cmds[k], b->c->errstr);
                    for (size_t j = 0; j < k; j++)
                        freeReplyObject(v[j]);
                    freeReplyObject(r);
                    return -1;
                }
            fn(b, keys->element[i], v, arg);
            for (size_t k = 0; k < ncmds; k++)
                freeReplyObject(v[k]);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0"));
    return 0;
}

struct pull_run {
    int initial;
    uint32_t gen;
};

/* A record: applied when it decodes and is the key it is stored under. */
static void pull_record(struct redis_backend *b, const redisReply *key,
                        redisReply **v, void *arg)
{
    const struct pull_run *run = arg;
    size_t pl = strlen(b->prefix) + 2;
    struct state_wire w;
    if (v[0]->type == REDIS_REPLY_STRING &&
        state_wire_decode(v[0]->str, v[0]->len, &w) == 0 && key->len > pl &&
        !strcmp(w.key, key->str + pl))
        state_pull_record(&w, run->initial, run->gen);
}

/* A counter: its value and its expiry (PTTL: -1 none, -2 gone). */
static void pull_counter(struct redis_backend *b, const redisReply *key,
                         redisReply **v, void *arg)
{
    uint64_t seq = *(uint64_t *)arg;
    size_t pl = strlen(b->prefix) + 2;
    char *end = NULL;
    if (v[0]->type != REDIS_REPLY_STRING || v[1]->type != REDIS_REPLY_INTEGER ||
        v[1]->integer == -2 || key->len <= pl ||
        strlen(key->str) != (size_t)key->len)
        return;
    long long n = strtoll(v[0]->str, &end, 10);
    if (end == v[0]->str || *end)
        return;
    uint64_t exp =
        v[1]->integer > 0 ? time_wall_ms() + (uint64_t)v[1]->integer : 0;
    state_pull_counter(key->str + pl, (int64_t)n, exp, seq);
}

/* Everyone's records (initial: this instance's own too, before any stage
 * runs) and counters into the view. The fleet's counter order is read
 * first: every value read afterwards holds at least the changes numbered
 * up to it, so the view keeps only values numbered later (from the
 * subscriber meanwhile). */
static int rb_pull(struct redis_backend *b, int initial, char *err,
                   size_t errlen)
{
    static const char *const get[] = {"GET"}, *const get_pttl[] = {"GET",
                                                                   "PTTL"};
    uint64_t seq = 0;
    redisReply *r = redisCommand(b->c, "GET %sseq", b->prefix);
    if (reply_failed(b->c, r, "GET", err, errlen)) {
        if (r)
            freeReplyObject(r);
        return -1;
    }
    if (r->type == REDIS_REPLY_STRING)
        seq = strtoull(r->str, NULL, 10);
    freeReplyObject(r);
    uint64_t since;
    struct pull_run run = {initial, state_pull_begin(&since)};
    if (rb_scan(b, "r:", get, 1, pull_record, &run, err, errlen) ||
        rb_scan(b, "c:", get_pttl, 2, pull_counter, &seq, err, errlen))
        return -1;
    /* what the view holds and Redis no longer does was deleted while we
     * did not listen (a subscriber that reconnected) */
    if (!initial && time_now_ms() >= b->sweep_after_ms)
        state_pull_sweep(run.gen, since);
    return 0;
}

/* ---- the subscriber thread -------------------------------------------- */

static void sub_message(redisReply *m)
{
    struct state_wire w;
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(m->element[0]->str, "message") ||
        m->element[2]->type != REDIS_REPLY_STRING)
        return;
    const char *s = m->element[2]->str;
    size_t len = m->element[2]->len;
    if (state_wire_decode(s, len, &w) == 0)
        state_apply_remote(&w, 0);
    else if (state_wire_decode_counter(s, len, &w) == 0)
        state_apply_counter(&w);
}

static void sub_sleep(struct redis_backend *b, long ms)
{
    for (long t = 0; t < ms && !atomic_load(&b->stop); t += 50)
        usleep(50 * 1000);
}

/* A connection subscribed to the changes channel, or NULL. */
static redisContext *sub_connect(struct redis_backend *b)
{
    char err[256];
    redisContext *c = rb_connect(b, b->timeout_ms > 1000 ? b->timeout_ms : 1000,
                                 err, sizeof err);
    redisReply *r = c ? redisCommand(c, "SUBSCRIBE %s", b->channel) : NULL;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

static void *sub_main(void *arg)
{
    struct redis_backend *b = arg;
    redisContext *c = b->sub_c; /* subscribed before the pull at open */
    b->sub_c = NULL;
    if (fault_hit(FAULT_STATE_SUB_LATE))
        sub_sleep(b, 3000);
    while (!atomic_load(&b->stop)) {
        if (!c) {
            if (fault_hit(FAULT_STATE_SUB_LATE))
                sub_sleep(b, 3000);
            if (!(c = sub_connect(b))) {
                sub_sleep(b, REDIS_RETRY_MS);
                continue;
            }
            /* what changed while we did not listen */
            atomic_store(&b->resync, 1);
            state_kick();
        }
        void *reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
            goto lost;
        if (reply) {
            sub_message(reply);
            freeReplyObject(reply);
            continue;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int n = poll(&pfd, 1, REDIS_SUB_POLL_MS);
        if (n > 0 && redisBufferRead(c) != REDIS_OK)
            goto lost;
        continue;
    lost:
        redisFree(c);
        c = NULL;
        sub_sleep(b, 100);
    }
    redisFree(c);
    return NULL;
}

/* ---- the backend ----------------------------------------------------------
 */

static void append_row(struct redis_backend *b, const struct state_row *r,
                       buf_t *wire, uint64_t wall)
{
    if (r->is_counter && !r->deleted) {
        char base[24] = ""; /* "": no restore */
        if (r->restore)
            snprintf(base, sizeof base, "%lld", (long long)r->base);
        redisAppendCommand(b->c, "EVAL %s 2 %sc:%s %sseq %lld %llu %s %s %s %s",
                           incr_script, b->prefix, r->key, b->prefix,
                           (long long)r->delta,
                           (unsigned long long)r->expires_ms, b->channel,
                           b->instance, r->key, base);
        return;
    }
    int gone = r->deleted || (r->expires_ms && r->expires_ms <= wall);
    buf_reset(wire);
    state_wire_encode(wire, r->key, !gone, r->expires_ms, r->origin, r->data,
                      gone ? 0 : r->len);
    if (gone)
        redisAppendCommand(b->c, "DEL %sr:%s %sc:%s", b->prefix, r->key,
                           b->prefix, r->key);
    else if (r->expires_ms)
        redisAppendCommand(b->c, "SET %sr:%s %b PX %llu", b->prefix, r->key,
                           wire->data, wire->len,
                           (unsigned long long)(r->expires_ms - wall));
    else
        redisAppendCommand(b->c, "SET %sr:%s %b", b->prefix, r->key, wire->data,
                           wire->len);
    redisAppendCommand(b->c, "PUBLISH %s %b", b->channel, wire->data,
                       wire->len);
}

static int rb_write(struct state_backend *base, struct state_row *rows,
                    size_t n, char *err, size_t errlen)
{
    struct redis_backend *b = (struct redis_backend *)base;
    uint64_t wall = time_wall_ms();
    buf_t wire;
    int rc = 0;
    if (!b->c) {
        snprintf(err, errlen, "redis %s:%d: not connected", b->host, b->port);
        return -1;
    }
    buf_init(&wire);
    for (size_t i = 0; i < n; i++)
        append_row(b, &rows[i], &wire, wall);
    buf_release(&wire);
    for (size_t i = 0; i < n; i++) {
        struct state_row *r = &rows[i];
        int replies = r->is_counter && !r->deleted ? 1 : 2;
        for (int k = 0; k < replies; k++) {
            redisReply *rep = NULL;
            if (redisGetReply(b->c, (void **)&rep) != REDIS_OK) {
                snprintf(err, errlen, "redis %s:%d: %s", b->host, b->port,
                         b->c->errstr);
                rb_drop(b);
                return -1;
            }
            if (rep->type == REDIS_REPLY_ERROR) {
                snprintf(err, errlen, "redis: %s", rep->str);
                rc = -1;
            } else if (replies == 1 && rep->type == REDIS_REPLY_ARRAY &&
                       rep->elements == 2 &&
                       rep->element[0]->type == REDIS_REPLY_INTEGER &&
                       rep->element[1]->type == REDIS_REPLY_INTEGER) {
                r->fleet = rep->element[0]->integer;
                r->fleet_seq = (uint64_t)rep->element[1]->integer;
                r->has_fleet = 1;
            }
            freeReplyObject(rep);
        }
    }
    if (rc == 0)
        b->last_ok_ms = time_now_ms();
    return rc;
}

static int rb_tick(struct state_backend *base, char *err, size_t errlen)
{
    struct redis_backend *b = (struct redis_backend *)base;
    uint64_t now = time_now_ms();
    if (!b->c) {
        if (now < b->next_try_ms)
            return 1;
        b->c = rb_connect(b, b->timeout_ms, err, errlen);
        if (!b->c) {
            b->next_try_ms = now + REDIS_RETRY_MS;
            return -1;
        }
        rb_run_id(b);
        /* Redis may have lost what we wrote (a restart): ours again */
        state_requeue_own();
        atomic_store(&b->resync, 1);
        b->last_ok_ms = now;
    }
    if (atomic_exchange(&b->resync, 0) && rb_pull(b, 0, err, errlen) != 0) {
        atomic_store(&b->resync, 1);
        rb_drop(b);
        return -1;
    }
    if (now - b->last_ok_ms >= REDIS_PING_MS) {
        redisReply *r = redisCommand(b->c, "PING");
        if (reply_failed(b->c, r, "PING", err, errlen)) {
            if (r)
                freeReplyObject(r);
            rb_drop(b);
            return -1;
        }
        freeReplyObject(r);
        b->last_ok_ms = now;
    }
    return 0;
}

static void rb_close(struct state_backend *base)
{
    struct redis_backend *b = (struct redis_backend *)base;
    if (!b)
        return;
    atomic_store(&b->stop, 1);
    if (b->sub_started)
        pthread_join(b->sub, NULL);
    redisFree(b->sub_c); /* NULL once the subscriber took it */
    redisFree(b->c);
    if (b->password) {
        memset(b->password, 0, strlen(b->password));
        free(b->password);
    }
    free(b);
}

struct state_backend *state_redis_open(const struct state_conf *sc,
                                       const char *instance, int *degraded,
                                       char *err, size_t errlen)
{
    struct redis_backend *b = calloc(1, sizeof(*b));
    *degraded = 0;
    if (!b) {
        snprintf(err, errlen, "state: out of memory");
        return NULL;
    }
    b->base.name = "redis";
    b->base.flush_ms = REDIS_FLUSH_MS;
    b->base.write = rb_write;
    b->base.tick = rb_tick;
    b->base.close = rb_close;
    b->timeout_ms = sc->timeout_ms > 0 ? sc->timeout_ms : 100;
    snprintf(b->prefix, sizeof b->prefix, "%s",
             sc->prefix ? sc->prefix : "sluice:");
    snprintf(b->channel, sizeof b->channel, "%schanges", b->prefix);
    snprintf(b->instance, sizeof b->instance, "%s", instance);
    if (parse_url(b, sc->url, err, errlen) ||
        (sc->password_file &&
         read_password(b, sc->password_file, err, errlen))) {
        rb_close(&b->base);
        return NULL;
    }
    /* at start a slow Redis gets a second, not timeout_ms */
    b->c =
        rb_connect(b, b->timeout_ms > 1000 ? b->timeout_ms : 1000, err, errlen);
    /* subscribed first, pulled second: a change made meanwhile is in the
     * pull or in a message after it (applied in order, the last wins);
     * the other way round a deletion in between would be missed for good */
    if (b->c) {
        rb_run_id(b);
        b->sub_c = sub_connect(b);
    }
    if (b->c && rb_pull(b, 1, err, errlen) != 0)
        rb_drop(b);
    if (!b->c) {
        *degraded = 1;
        b->next_try_ms = time_now_ms() + REDIS_RETRY_MS;
    } else
        log_msg(LOG_INFO, "state", "redis %s:%d/%d: shared state loaded",
                b->host, b->port, b->db);
    b->last_ok_ms = time_now_ms();
    if (pthread_create(&b->sub, NULL, sub_main, b) == 0)
        b->sub_started = 1;
    return &b->base;
}
