/*
 * metrics.c - the metrics registry (families and their series) and the
 * Prometheus text rendering. See metrics.h for the contract.
 *
 * Concurrency: families and series are only ever appended and never freed
 * while the process runs, so the renderer follows their `next` pointers
 * (published with release stores) without holding any lock. A lookup walks
 * a family's hash table without a lock too: a series is published into its
 * chain with a release store once complete, and a table outgrown is kept
 * (linked from its successor), so a reader on the old one still walks
 * valid series; one that misses takes the family's mutex and looks again
 * before it inserts. Nothing shared is written by a lookup.
 *
 * Values are sharded: each series holds METRICS_SHARDS blocks of 64-bit
 * atomics, each on its own cache lines, and a thread updates the block of
 * its shard (threads take shards in turn on their first update: the
 * workers get their own). So two workers never write the same cache line
 * for a metric; the renderer sums the blocks. Doubles are added with a
 * compare-and-swap on their bits (a shard may still be shared by two
 * threads when there are more threads than shards).
 */
#include "metrics.h"
#include "log.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_SHARDS 4 /* value blocks per series (power of two) */
#define LINE_WORDS     8 /* 64-bit words in a cache line */

struct metric_series {
    struct metric_series *_Atomic hnext; /* hash chain */
    struct metric_series *_Atomic next;  /* render order (append-only) */
    const struct sluice_metric *fam;     /* the family it belongs to */
    uint64_t hash;
    char **values; /* one per label name, owned */
    char *labels;  /* rendered `a="x",b="y"`, owned */
    /* METRICS_SHARDS blocks of fam->stride words (whole cache lines),
     * owned: word 0 the value (counter, gauge) or the histogram's sum as
     * double bits; histograms then one count per bucket, not cumulative,
     * +Inf last */
    _Atomic uint64_t *shard;
};

/* A family's hash table. An outgrown one stays allocated, linked from its
 * successor: a lookup may still be walking it. */
struct series_table {
    size_t size; /* a power of two */
    struct series_table *prev;
    struct metric_series *_Atomic slot[];
};

struct sluice_metric {
    struct sluice_metric *_Atomic next; /* registry order (append-only) */
    char *name;
    char *help;
    sluice_metric_type type;
    char **labels;
    size_t nlabels;
    double *buckets; /* upper bounds, +Inf not included */
    char **le;       /* their text for le="..." (+Inf last), owned */
    size_t nbuckets;
    size_t stride;        /* words per value block (see metric_series) */
    pthread_mutex_t lock; /* inserting a series */
    struct series_table *_Atomic table;
    size_t nseries;
    struct metric_series *_Atomic head;
    struct metric_series *tail;
    struct metric_series *single; /* the series of a label-less family */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sluice_metric *_Atomic reg_head;
static struct sluice_metric *reg_tail;
static _Atomic uint64_t series_dropped;

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10};

/* ---- doubles as atomic bits ------------------------------------------- */

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(
        p, &old, dbits(bitsd(old) + v), memory_order_relaxed,
        memory_order_relaxed))
        ;
}

/* ---- shards ---------------------------------------------------------- */

static atomic_uint shard_next;
static _Thread_local int shard_mine = -1;

/* The calling thread's value block of s. */
static _Atomic uint64_t *shard_block(const struct metric_series *s)
{
    if (shard_mine < 0)
        shard_mine = (int)(atomic_fetch_add(&shard_next, 1) % METRICS_SHARDS);
    return s->shard + (size_t)shard_mine * s->fam->stride;
}

/* The value (word 0) of every block, summed. */
static double shard_sum_value(const struct metric_series *s)
{
    double v = 0;
    for (size_t i = 0; i < METRICS_SHARDS; i++)
        v += bitsd(atomic_load_explicit(&s->shard[i * s->fam->stride],
                                        memory_order_relaxed));
    return v;
}

/* Count word w of every block, summed. */
static uint64_t shard_sum_count(const struct metric_series *s, size_t w)
{
    uint64_t n = 0;
    for (size_t i = 0; i < METRICS_SHARDS; i++)
        n += atomic_load_explicit(&s->shard[i * s->fam->stride + w],
                                  memory_order_relaxed);
    return n;
}

/* ---- names -------------------------------------------------------------- */

static int name_char_ok(char c, int first, int metric)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (metric && c == ':')
        return 1;
    return !first && c >= '0' && c <= '9';
}

static int name_ok(const char *s, size_t n, int metric)
{
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(s[i], i == 0, metric))
            return 0;
    return 1;
}

/* Split "a,b" into owned names. -1 with err on a bad or reserved name. */
static int labels_parse(const char *spec, sluice_metric_type type, char ***out,
                        size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!spec || !*spec)
        return 0;
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    const char *p = spec;
    for (size_t i = 0; i < cap; i++) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        const char *q = p + len;
        while (*q == ' ')
            q++;
        if (!name_ok(p, len, 0) || (len >= 2 && !strncmp(p, "__", 2)) ||
            (type == SLUICE_METRIC_HISTOGRAM && len == 2 &&
             !strncmp(p, "le", 2)) ||
            (*q && *q != ',')) {
            snprintf(err, errlen, "bad label name in '%s'", spec);
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            if (strlen(v[j]) == len && !strncmp(v[j], p, len)) {
                snprintf(err, errlen, "duplicate label name in '%s'", spec);
                goto fail;
            }
        v[i] = strndup(p, len);
        if (!v[i])
            goto fail;
        p = *q ? q + 1 : q;
    }
    *out = v;
    *n = cap;
    return 0;
fail:
    for (size_t i = 0; i < cap; i++)
        free(v[i]);
    free(v);
    return -1;
}

/* ---- rendering helpers ------------------------------------------------ */

void metrics_escape_label(buf_t *out, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\'   ? "\\\\"
                          : *s == '"'  ? "\\\""
                          : *s == '\n' ? "\\n"
                                       : NULL;
        if (!rep)
            continue;
        buf_append(out, run, (size_t)(s - run));
        buf_puts(out, rep);
        run = s + 1;
    }
    buf_append(out, run, (size_t)(s - run));
}

static void escape_help(buf_t *out, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : NULL;
        if (!rep)
            continue;
        buf_append(out, run, (size_t)(s - run));
        buf_puts(out, rep);
        run = s + 1;
    }
    buf_append(out, run, (size_t)(s - run));
}

/* Shortest text that reads back as the same double. */
static void num_format(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    } else if (v == trunc(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v == 0 ? 0.0 : v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, n, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

static void buf_num(buf_t *out, double v)
{
    char tmp[40];
    if (v >= 0 && v < 1e15 && v == (double)(unsigned long long)v) {
        buf_append_ull(out,
                       (unsigned long long)v); /* counts: the common case */
        return;
    }
    num_format(tmp, sizeof tmp, v);
    buf_puts(out, tmp);
}

/* ---- families ------------------------------------------------------------ */

static const char *type_name(sluice_metric_type t)
{
    return t == SLUICE_METRIC_COUNTER ? "counter"
           : t == SLUICE_METRIC_GAUGE ? "gauge"
                                      : "histogram";
}

static int buckets_ok(const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(b[i]) || (isinf(b[i]) && i + 1 < n) ||
            (i && !(b[i] > b[i - 1])))
            return 0;
    return 1;
}

static int same_shape(const struct sluice_metric *f, sluice_metric_type type,
                      char **labels, size_t nlabels, const double *buckets,
                      size_t nbuckets)
{
    if (f->type != type || f->nlabels != nlabels)
        return 0;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]))
            return 0;
    if (type != SLUICE_METRIC_HISTOGRAM)
        return 1;
    if (f->nbuckets != nbuckets)
        return 0;
    return !nbuckets ||
           !memcmp(f->buckets, buckets, nbuckets * sizeof *buckets);
}

static struct sluice_metric *family_find(const char *name)
{
    for (struct sluice_metric *f = atomic_load(&reg_head); f;
         f = atomic_load(&f->next))
        if (!strcmp(f->name, name))
            return f;
    return NULL;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void family_free(struct sluice_metric *f)
{
    if (!f)
        return;
    free(f->name);
    free(f->help);
    strv_free(f->labels, f->nlabels);
    strv_free(f->le, f->le ? f->nbuckets + 1 : 0);
    free(f->buckets);
    struct series_table *t = atomic_load(&f->table), *prev;
    for (; t; t = prev) {
        prev = t->prev;
        free(t);
    }
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static struct series_table *table_new(size_t size, struct series_table *prev)
{
    struct series_table *t =
        calloc(1, sizeof *t + size * sizeof(struct metric_series *));
    if (!t)
        return NULL;
    t->size = size;
    t->prev = prev;
    for (size_t i = 0; i < size; i++)
        atomic_init(&t->slot[i], NULL);
    return t;
}

static struct sluice_metric *family_new(sluice_metric_type type,
                                        const char *name, const char *help,
                                        char **labels, size_t nlabels,
                                        const double *buckets, size_t nbuckets)
{
    struct sluice_metric *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->labels = labels;
    f->nlabels = nlabels;
    struct series_table *t = table_new(64, NULL);
    atomic_init(&f->table, t);
    if (nbuckets) {
        f->buckets = malloc(nbuckets * sizeof *buckets);
        if (f->buckets)
            memcpy(f->buckets, buckets, nbuckets * sizeof *buckets);
    }
    f->nbuckets = nbuckets;
    if (type == SLUICE_METRIC_HISTOGRAM) {
        f->le = calloc(nbuckets + 1, sizeof *f->le);
        for (size_t i = 0; f->le && i <= nbuckets; i++) {
            char tmp[40];
            if (i < nbuckets)
                num_format(tmp, sizeof tmp, buckets[i]);
            else
                snprintf(tmp, sizeof tmp, "+Inf");
            f->le[i] = strdup(tmp);
            if (!f->le[i]) {
                strv_free(f->le, nbuckets + 1);
                f->le = NULL;
            }
        }
    }
    /* a block: the value, then a count per bucket and +Inf, in whole
     * cache lines */
    size_t words = 1 + (type == SLUICE_METRIC_HISTOGRAM ? nbuckets + 1 : 0);
    f->stride = (words + LINE_WORDS - 1) / LINE_WORDS * LINE_WORDS;
    if (!f->name || !f->help || !t || (nbuckets && !f->buckets) ||
        (type == SLUICE_METRIC_HISTOGRAM && !f->le)) {
        f->labels = NULL; /* the caller still owns them */
        family_free(f);
        return NULL;
    }
    return f;
}

sluice_metric *metrics_register(sluice_metric_type type, const char *name,
                                const char *help, const char *label_names,
                                const double *buckets, size_t nbuckets,
                                char *err, size_t errlen)
{
    char **labels = NULL;
    size_t nlabels = 0;
    struct sluice_metric *f = NULL;

    if (type != SLUICE_METRIC_COUNTER && type != SLUICE_METRIC_GAUGE &&
        type != SLUICE_METRIC_HISTOGRAM) {
        snprintf(err, errlen, "unknown metric type %d", (int)type);
        return NULL;
    }
    if (!name || !name_ok(name, strlen(name), 1)) {
        snprintf(err, errlen, "bad metric name '%s'", name ? name : "(null)");
        return NULL;
    }
    if (type != SLUICE_METRIC_HISTOGRAM) {
        buckets = NULL;
        nbuckets = 0;
    } else {
        if (!buckets || !nbuckets) {
            buckets = default_buckets;
            nbuckets = sizeof default_buckets / sizeof *default_buckets;
        }
        if (!buckets_ok(buckets, nbuckets)) {
            snprintf(err, errlen, "%s: buckets must be ascending numbers",
                     name);
            return NULL;
        }
        if (isinf(buckets[nbuckets - 1]))
            nbuckets--; /* +Inf is always there */
    }
    if (labels_parse(label_names, type, &labels, &nlabels, err, errlen))
        return NULL;

    pthread_mutex_lock(&reg_lock);
    f = family_find(name);
    if (f) {
        if (!same_shape(f, type, labels, nlabels, buckets, nbuckets)) {
            snprintf(err, errlen,
                     "metric %s exists with another type, labels or "
                     "buckets",
                     name);
            f = NULL;
        }
        pthread_mutex_unlock(&reg_lock);
        strv_free(labels, nlabels);
        return f;
    }
    f = family_new(type, name, help, labels, nlabels, buckets, nbuckets);
    if (!f) {
        pthread_mutex_unlock(&reg_lock);
        strv_free(labels, nlabels);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (reg_tail)
        atomic_store_explicit(&reg_tail->next, f, memory_order_release);
    else
        atomic_store_explicit(&reg_head, f, memory_order_release);
    reg_tail = f;
    pthread_mutex_unlock(&reg_lock);
    if (!nlabels)
        f->single = metrics_series(f, NULL); /* renders 0 from the start */
    return f;
}

/* ---- series -------------------------------------------------------------- */

static const char *value_at(const char *const *values, size_t i)
{
    return values && values[i] ? values[i] : "";
}

static uint64_t tuple_hash(const struct sluice_metric *f,
                           const char *const *values)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < f->nlabels; i++) {
        for (const unsigned char *p =
                 (const unsigned char *)value_at(values, i);
             *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xffu) * 1099511628211ull;
    }
    return h;
}

/* The series of values in table t, or NULL. Without a lock: see the top. */
static struct metric_series *chain_find(const struct sluice_metric *f,
                                        const struct series_table *t,
                                        uint64_t h, const char *const *values)
{
    for (struct metric_series *s = atomic_load_explicit(
             &((struct series_table *)t)->slot[h & (t->size - 1)],
             memory_order_acquire);
         s; s = atomic_load_explicit(&s->hnext, memory_order_acquire)) {
        if (s->hash != h)
            continue;
        size_t i;
        for (i = 0; i < f->nlabels; i++)
            if (strcmp(s->values[i], value_at(values, i)))
                break;
        if (i == f->nlabels)
            return s;
    }
    return NULL;
}

static void series_free(struct metric_series *s, size_t nlabels)
{
    if (!s)
        return;
    strv_free(s->values, nlabels);
    free(s->labels);
    free((void *)s->shard);
    free(s);
}

static struct metric_series *series_new(const struct sluice_metric *f,
                                        uint64_t h, const char *const *values)
{
    struct metric_series *s = calloc(1, sizeof *s);
    buf_t b;
    if (!s)
        return NULL;
    s->fam = f;
    s->hash = h;
    s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *s->values);
    if (!s->values)
        goto fail;
    buf_init(&b);
    buf_append(&b, "", 0);
    for (size_t i = 0; i < f->nlabels; i++) {
        s->values[i] = strdup(value_at(values, i));
        if (!s->values[i])
            goto fail_buf;
        buf_printf(&b, "%s%s=\"", i ? "," : "", f->labels[i]);
        metrics_escape_label(&b, s->values[i]);
        buf_puts(&b, "\"");
    }
    if (b.oom)
        goto fail_buf;
    s->labels = buf_steal(&b, NULL);
    size_t words = METRICS_SHARDS * f->stride;
    s->shard =
        aligned_alloc(LINE_WORDS * sizeof(uint64_t), words * sizeof(uint64_t));
    if (!s->shard)
        goto fail;
    for (size_t i = 0; i < words; i++)
        atomic_init(&s->shard[i], 0); /* 0: 0.0's bits and a zero count */
    atomic_init(&s->hnext, NULL);
    atomic_init(&s->next, NULL);
    return s;
fail_buf:
    buf_release(&b);
fail:
    series_free(s, f->nlabels);
    return NULL;
}

/* A table twice the size, the series moved to it (their chain links
 * rewritten: a reader still on the old table may be led into the new
 * chains, which hold the same never-freed series, and at worst misses and
 * looks again under the lock). Called with f->lock held. */
static void table_grow(struct sluice_metric *f)
{
    struct series_table *old = atomic_load(&f->table);
    struct series_table *t = table_new(old->size * 2, old);
    if (!t)
        return; /* longer chains, still correct */
    size_t mask = t->size - 1;
    for (size_t i = 0; i < old->size; i++) {
        struct metric_series *s = atomic_load(&old->slot[i]), *next;
        for (; s; s = next) {
            next = atomic_load(&s->hnext);
            atomic_store_explicit(&s->hnext,
                                  atomic_load(&t->slot[s->hash & mask]),
                                  memory_order_release);
            atomic_store_explicit(&t->slot[s->hash & mask], s,
                                  memory_order_release);
        }
    }
    atomic_store_explicit(&f->table, t, memory_order_release);
}

/* Called with f->lock held. */
static struct metric_series *series_insert(struct sluice_metric *f, uint64_t h,
                                           const char *const *values)
{
    struct series_table *t = atomic_load(&f->table);
    struct metric_series *s = chain_find(f, t, h, values);
    if (s)
        return s;
    if (f->nseries >= METRICS_MAX_SERIES) {
        if (atomic_fetch_add(&series_dropped, 1) == 0)
            log_msg(LOG_WARN, "metrics",
                    "metric %s has %d series: new label values are dropped",
                    f->name, METRICS_MAX_SERIES);
        return NULL;
    }
    s = series_new(f, h, values);
    if (!s)
        return NULL;
    size_t slot = h & (t->size - 1);
    atomic_store_explicit(&s->hnext, atomic_load(&t->slot[slot]),
                          memory_order_relaxed);
    atomic_store_explicit(&t->slot[slot], s, memory_order_release);
    if (f->tail)
        atomic_store_explicit(&f->tail->next, s, memory_order_release);
    else
        atomic_store_explicit(&f->head, s, memory_order_release);
    f->tail = s;
    if (++f->nseries > t->size * 2)
        table_grow(f);
    return s;
}

struct metric_series *metrics_series(sluice_metric *m,
                                     const char *const *label_values)
{
    if (!m)
        return NULL;
    if (!m->nlabels && m->single)
        return m->single;
    uint64_t h = tuple_hash(m, label_values);
    struct metric_series *s =
        chain_find(m, atomic_load_explicit(&m->table, memory_order_acquire), h,
                   label_values);
    if (s)
        return s;
    pthread_mutex_lock(&m->lock);
    s = series_insert(m, h, label_values);
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* ---- updates ------------------------------------------------------------- */

void metrics_series_add(struct metric_series *s, double v)
{
    if (!s || s->fam->type == SLUICE_METRIC_HISTOGRAM || isnan(v) ||
        (s->fam->type == SLUICE_METRIC_COUNTER && !(v >= 0)))
        return; /* a counter never goes down */
    atomic_add_double(shard_block(s), v);
}

/* The value becomes v: in the first block, the others cleared. */
static void series_overwrite(struct metric_series *s, double v)
{
    atomic_store_explicit(&s->shard[0], dbits(v), memory_order_relaxed);
    for (size_t i = 1; i < METRICS_SHARDS; i++)
        atomic_store_explicit(&s->shard[i * s->fam->stride], 0,
                              memory_order_relaxed);
}

void metrics_series_set(struct metric_series *s, double v)
{
    if (s && s->fam->type == SLUICE_METRIC_GAUGE)
        series_overwrite(s, v);
}

void metrics_series_store(struct metric_series *s, double v)
{
    if (s && s->fam->type != SLUICE_METRIC_HISTOGRAM)
        series_overwrite(s, v);
}

/* The bucket of v: the first bound >= v (nbuckets: +Inf), by bisection. */
static size_t bucket_of(const struct sluice_metric *f, double v)
{
    size_t lo = 0, hi = f->nbuckets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v > f->buckets[mid])
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void metrics_series_observe(struct metric_series *s, double v)
{
    if (!s || s->fam->type != SLUICE_METRIC_HISTOGRAM || isnan(v))
        return;
    _Atomic uint64_t *b = shard_block(s);
    atomic_fetch_add_explicit(&b[1 + bucket_of(s->fam, v)], 1,
                              memory_order_relaxed);
    atomic_add_double(&b[0], v);
}

void metrics_add(sluice_metric *m, const char *const *label_values, double v)
{
    if (!m || m->type == SLUICE_METRIC_HISTOGRAM ||
        (m->type == SLUICE_METRIC_COUNTER && !(v >= 0)))
        return;
    metrics_series_add(metrics_series(m, label_values), v);
}

void metrics_set(sluice_metric *m, const char *const *label_values, double v)
{
    if (!m || m->type != SLUICE_METRIC_GAUGE)
        return;
    metrics_series_set(metrics_series(m, label_values), v);
}

void metrics_observe(sluice_metric *m, const char *const *label_values,
                     double v)
{
    if (!m || m->type != SLUICE_METRIC_HISTOGRAM)
        return;
    metrics_series_observe(metrics_series(m, label_values), v);
}

double metrics_series_value(const struct metric_series *s)
{
    return s ? shard_sum_value(s) : 0.0;
}

/* ---- rendering ----------------------------------------------------------- */

static void sample_open(buf_t *out, const char *name, const char *suffix,
                        const char *labels)
{
    buf_puts(out, name);
    buf_puts(out, suffix);
    if (*labels) {
        buf_puts(out, "{");
        buf_puts(out, labels);
        buf_puts(out, "}");
    }
    buf_puts(out, " ");
}

static void render_histogram(buf_t *out, const struct sluice_metric *f,
                             struct metric_series *s)
{
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->nbuckets; i++) {
        cum += shard_sum_count(s, 1 + i);
        buf_puts(out, f->name);
        buf_puts(out, "_bucket{");
        buf_puts(out, s->labels);
        buf_puts(out, *s->labels ? ",le=\"" : "le=\"");
        buf_puts(out, f->le[i]);
        buf_puts(out, "\"} ");
        buf_append_ull(out, cum);
        buf_puts(out, "\n");
    }
    sample_open(out, f->name, "_sum", s->labels);
    buf_num(out, metrics_series_value(s));
    buf_puts(out, "\n");
    sample_open(out, f->name, "_count", s->labels);
    buf_append_ull(out, cum);
    buf_puts(out, "\n");
}

static void render_family(buf_t *out, const struct sluice_metric *f)
{
    buf_printf(out, "# HELP %s ", f->name);
    escape_help(out, f->help);
    buf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    for (struct metric_series *s = atomic_load_explicit(
             &((struct sluice_metric *)f)->head, memory_order_acquire);
         s; s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        if (f->type == SLUICE_METRIC_HISTOGRAM) {
            render_histogram(out, f, s);
            continue;
        }
        sample_open(out, f->name, "", s->labels);
        buf_num(out, metrics_series_value(s));
        buf_puts(out, "\n");
    }
}

static sluice_metric *dropped_family;

static void dropped_register(void)
{
    char err[128];
    dropped_family = metrics_register(
        SLUICE_METRIC_COUNTER, "sluice_metrics_series_dropped_total",
        "Metric updates dropped because a metric reached its series limit.",
        NULL, NULL, 0, err, sizeof err);
}

int metrics_render(buf_t *out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, dropped_register);
    metrics_series_store(metrics_series(dropped_family, NULL),
                         (double)atomic_load(&series_dropped));
    for (struct sluice_metric *f =
             atomic_load_explicit(&reg_head, memory_order_acquire);
         f; f = atomic_load_explicit(&f->next, memory_order_acquire))
        render_family(out, f);
    return out->oom ? -1 : 0;
}
