/*
 * probe.c - see probe.h. Deliberately simple and bounded: one thread, a
 * FIFO of at most PROBE_QUEUE_MAX jobs, one blocking libcurl easy transfer
 * at a time with a short timeout and a progress callback that aborts it
 * when its stage is being destroyed. Probes are rare (a few per interval),
 * so nothing here is on a hot path; it must only never hold up a request.
 */
#include "probe.h"
#include "log.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_QUEUE_MAX 256
#define PROBE_BODY_MAX  (4u * 1024u * 1024u)

struct probe_job {
    struct probe_job *next;
    sluice_stage *stage;
    char *url;
    struct curl_slist *hdrs; /* owned; wiped on free (credentials) */
    char *ca_file;           /* owned, or NULL: the system's CA store */
    int no_verify;           /* the upstream's verify: false */
    long timeout_ms;
    sluice_probe_fn done;
    sluice_fetch_fn fetch_done; /* a fetch: the body is kept */
    void *arg;
    atomic_int cancel;
    char *body;
    size_t len, cap;
    int too_big;
};

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cond = PTHREAD_COND_INITIALIZER;
static struct probe_job *queue_head, *queue_tail;
static size_t queue_len;
static struct probe_job *running;
static pthread_t probe_thread;
static int thread_started, stopping;

static void job_free(struct probe_job *j)
{
    if (!j)
        return;
    probe_headers_free(j->hdrs);
    free(j->ca_file);
    free(j->url);
    free(j->body);
    free(j);
}

/* done() or fetch_done() with what came (nothing when cancelled). */
static void job_finish(struct probe_job *j, int status)
{
    if (!j->fetch_done) {
        j->done(j->arg, status);
        return;
    }
    if (!status || j->too_big)
        j->fetch_done(j->arg, 0, NULL, 0);
    else
        j->fetch_done(j->arg, status, j->body, j->len);
}

static size_t keep(char *p, size_t s, size_t n, void *u)
{
    struct probe_job *j = u;
    size_t len = s * n;
    if (j->too_big || j->len + len > PROBE_BODY_MAX) {
        j->too_big = 1;
        return 0;
    }
    if (j->len + len + 1 > j->cap) {
        size_t cap = (j->len + len + 1) * 2;
        char *b = realloc(j->body, cap);
        if (!b) {
            j->too_big = 1;
            return 0;
        }
        j->body = b;
        j->cap = cap;
    }
    memcpy(j->body + j->len, p, len);
    j->len += len;
    j->body[j->len] = '\0';
    return len;
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

static int progress(void *u, curl_off_t a, curl_off_t b, curl_off_t c,
                    curl_off_t d)
{
    struct probe_job *j = u;
    (void)a;
    (void)b;
    (void)c;
    (void)d;
    return atomic_load(&j->cancel) ? 1 : 0;
}

static int job_run(struct probe_job *j)
{
    long status = 0;
    CURL *e = curl_easy_init();
    if (!e)
        return 0;
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
    if (j->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, j->ca_file);
    if (j->no_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, j->timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, j->fetch_done ? keep : discard);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, j);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    return atomic_load(&j->cancel) ? 0 : (int)status;
}

static void *probe_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&probe_lock);
    for (;;) {
        while (!queue_head && !stopping)
            pthread_cond_wait(&probe_cond, &probe_lock);
        if (!queue_head)
            break; /* stopping, nothing left */
        struct probe_job *j = queue_head;
        queue_head = j->next;
        if (!queue_head)
            queue_tail = NULL;
        queue_len--;
        running = j;
        if (stopping)
            atomic_store(&j->cancel, 1);
        pthread_mutex_unlock(&probe_lock);
        int status = atomic_load(&j->cancel) ? 0 : job_run(j);
        job_finish(j, status);
        pthread_mutex_lock(&probe_lock);
        running = NULL;
        pthread_cond_broadcast(&probe_cond);
        job_free(j);
    }
    pthread_mutex_unlock(&probe_lock);
    return NULL;
}

void probe_headers_free(struct curl_slist *l)
{
    for (struct curl_slist *h = l; h; h = h->next)
        memset(h->data, 0, strlen(h->data));
    curl_slist_free_all(l);
}

struct probe_tls {
    const char *ca_file;
    int no_verify;
};

/* Takes hdrs (freed, wiped, whatever happens); tls may be NULL. */
static int job_submit(sluice_stage *stage, const char *url,
                      struct curl_slist *hdrs, const struct probe_tls *tls,
                      long timeout_ms, sluice_probe_fn done,
                      sluice_fetch_fn fetch_done, void *arg)
{
    struct probe_job *j = NULL;
    if (!url || (!done && !fetch_done) || !(j = calloc(1, sizeof(*j)))) {
        probe_headers_free(hdrs);
        return -1;
    }
    j->stage = stage;
    j->url = strdup(url);
    j->hdrs = hdrs;
    if (tls && tls->ca_file && !(j->ca_file = strdup(tls->ca_file))) {
        job_free(j);
        return -1;
    }
    j->no_verify = tls && tls->no_verify;
    j->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    j->done = done;
    j->fetch_done = fetch_done;
    j->arg = arg;
    if (!j->url || !j->hdrs) {
        job_free(j);
        return -1;
    }
    pthread_mutex_lock(&probe_lock);
    if (stopping || queue_len >= PROBE_QUEUE_MAX)
        goto refuse;
    if (!thread_started) {
        if (pthread_create(&probe_thread, NULL, probe_main, NULL) != 0)
            goto refuse;
        thread_started = 1;
    }
    if (queue_tail)
        queue_tail->next = j;
    else
        queue_head = j;
    queue_tail = j;
    queue_len++;
    pthread_cond_broadcast(&probe_cond);
    pthread_mutex_unlock(&probe_lock);
    return 0;
refuse:
    pthread_mutex_unlock(&probe_lock);
    job_free(j);
    return -1;
}

/* The one header line of a plain probe: "Authorization: <value>". */
static struct curl_slist *auth_headers(const char *authorization)
{
    size_t an = authorization ? strlen(authorization) : 0;
    char *line = malloc(an + 16);
    struct curl_slist *l = NULL;
    if (!line)
        return NULL;
    if (authorization)
        snprintf(line, an + 16, "Authorization: %s", authorization);
    else
        snprintf(line, an + 16, "X-Probe: 1");
    l = curl_slist_append(NULL, line);
    memset(line, 0, an + 16);
    free(line);
    return l;
}

int probe_submit(sluice_stage *stage, const char *url,
                 const char *authorization, long timeout_ms,
                 sluice_probe_fn done, void *arg)
{
    return job_submit(stage, url, auth_headers(authorization), NULL, timeout_ms,
                      done, NULL, arg);
}

int probe_submit_fetch(sluice_stage *stage, const char *url,
                       const char *authorization, long timeout_ms,
                       sluice_fetch_fn done, void *arg)
{
    return job_submit(stage, url, auth_headers(authorization), NULL, timeout_ms,
                      NULL, done, arg);
}

int probe_submit_headers(sluice_stage *stage, const char *url,
                         struct curl_slist *headers, const char *ca_file,
                         int verify, long timeout_ms, sluice_probe_fn done,
                         void *arg)
{
    struct probe_tls tls = {ca_file, !verify};
    return job_submit(stage, url, headers, &tls, timeout_ms, done, NULL, arg);
}

void probe_cancel_stage(sluice_stage *stage)
{
    struct probe_job *mine = NULL, **pp;
    pthread_mutex_lock(&probe_lock);
    pp = &queue_head;
    queue_tail = NULL;
    while (*pp) {
        struct probe_job *j = *pp;
        if (j->stage == stage) {
            *pp = j->next;
            j->next = mine;
            mine = j;
            queue_len--;
            continue;
        }
        queue_tail = j;
        pp = &j->next;
    }
    while (running && running->stage == stage) {
        atomic_store(&running->cancel, 1);
        pthread_cond_wait(&probe_cond, &probe_lock);
    }
    pthread_mutex_unlock(&probe_lock);
    while (mine) {
        struct probe_job *j = mine;
        mine = j->next;
        job_finish(j, 0);
        job_free(j);
    }
}

void probe_shutdown(void)
{
    pthread_mutex_lock(&probe_lock);
    stopping = 1;
    for (struct probe_job *j = queue_head; j; j = j->next)
        atomic_store(&j->cancel, 1);
    if (running)
        atomic_store(&running->cancel, 1);
    pthread_cond_broadcast(&probe_cond);
    int started = thread_started;
    thread_started = 0;
    pthread_mutex_unlock(&probe_lock);
    if (started)
        pthread_join(probe_thread, NULL);
    pthread_mutex_lock(&probe_lock);
    stopping = 0;
    pthread_mutex_unlock(&probe_lock);
}
