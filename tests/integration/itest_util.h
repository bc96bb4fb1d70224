/*
 * itest_util.h - small helpers shared by the auth and hardening integration
 * tests (header-only: the test CMake builds one executable per test_*.c
 * linked with harness.c only): secret files in the temp dir, "the mock saw
 * nothing", "a normal request still works", and raw-socket exchanges for
 * what libcurl will not send (lying Content-Length, slow clients, paths
 * with dot segments).
 */
#ifndef SLUICE_ITEST_UTIL_H
#define SLUICE_ITEST_UTIL_H

#include "harness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#define CHAT "/v1/chat/completions"
#define OK_BODY                                                                \
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","             \
    "\"content\":\"hi\"}]}"

/* Write `text` to <tmpdir>/<name> with mode 0600; returns the path
 * (static storage, one per name slot). */
static inline const char *it_secret_file(const char *name, const char *text)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%s/%s", h_tmpdir(), name);
    FILE *f = fopen(p, "w");
    ck_assert_msg(f != NULL, "write %s", p);
    fputs(text, f);
    fclose(f);
    chmod(p, 0600);
    return p;
}

static inline const char *it_show(const h_resp *r)
{
    static char buf[600];
    size_t n = r->body_len < 500 ? r->body_len : 500;
    memcpy(buf, r->body ? r->body : "", n);
    buf[n] = '\0';
    return buf;
}

/* The response is an OpenAI error with this status and code. */
static inline void it_assert_error(const h_resp *r, long status,
                                   const char *code, const char *what)
{
    ck_assert_msg(r->curl_code == 0, "%s: transfer failed: %s", what, r->error);
    ck_assert_msg(r->status == status, "%s: status %ld, expected %ld: %s", what,
                  r->status, status, it_show(r));
    json_t *doc = h_resp_json(r);
    json_t *err = h_assert_openai_error(doc, what);
    if (code) {
        const char *c = json_string_value(json_object_get(err, "code"));
        ck_assert_msg(c && !strcmp(c, code), "%s: code %s, expected %s", what,
                      c ? c : "(null)", code);
    }
    json_decref(doc);
}

static inline void it_assert_mock_saw(int n, const char *what)
{
    int seen = h_mock_request_count();
    ck_assert_msg(seen == n, "%s: the mock saw %d requests, expected %d", what,
                  seen, n);
}

/* A normal chat request (with optional headers) gets a 200. */
static inline void it_assert_normal(const char *const *headers,
                                    const char *what)
{
    h_resp r;
    h_request(h_sluice_port(), "POST", CHAT, headers, OK_BODY, strlen(OK_BODY),
              10000, &r);
    ck_assert_msg(r.curl_code == 0 && r.status == 200,
                  "%s: the normal request after it failed: %ld %s (%s)", what,
                  r.status, it_show(&r), r.error);
    h_resp_free(&r);
}

/* How many times needle occurs in hay (overlaps counted). */
static inline size_t it_count_str(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- raw sockets ------------------------------------------------------- */

static inline int it_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0,
                  "connect: %s", strerror(errno));
    return fd;
}

/* Read until EOF or timeout_ms; returns bytes read into out (NUL-ended),
 * *eof set when the peer closed. */
static inline size_t it_read_all(int fd, char *out, size_t cap, long timeout_ms,
                                 int *eof)
{
    size_t n = 0;
    double until = h_now_ms() + (double)timeout_ms;
    *eof = 0;
    while (n + 1 < cap) {
        long left = (long)(until - h_now_ms());
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0) {
            *eof = 1;
            break;
        }
        n += (size_t)r;
    }
    out[n] = '\0';
    return n;
}

/* Send data whole, shut our write side when shut_wr (a half-closed client),
 * then read until EOF or timeout; *eof (may be NULL) says whether sluice
 * closed. Returns the HTTP status of the first response line, 0 when there
 * was none. */
static inline int it_raw_ex(int port, const char *data, size_t len, int shut_wr,
                            long timeout_ms, char *out, size_t cap, int *eof)
{
    int fd = it_connect(port), closed;
    size_t off = 0;
    out[0] = '\0';
    while (off < len) {
        ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (shut_wr)
        shutdown(fd, SHUT_WR);
    it_read_all(fd, out, cap, timeout_ms, &closed);
    close(fd);
    if (eof)
        *eof = closed;
    int status = 0;
    if (!strncmp(out, "HTTP/1.", 7))
        status = atoi(out + 9);
    return status;
}

/* Send data whole (without closing our side: send "Connection: close" to
 * get an EOF after the answer), then read until EOF or timeout. Returns the
 * HTTP status of the first response line, 0 when there was none. */
static inline int it_raw(int port, const char *data, size_t len,
                         long timeout_ms, char *out, size_t cap)
{
    return it_raw_ex(port, data, len, 0, timeout_ms, out, cap, NULL);
}

#endif
