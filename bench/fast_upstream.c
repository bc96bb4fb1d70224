/*
 * fast_upstream.c - the benchmark's upstream: one thread, one epoll loop,
 * HTTP/1.1 keep-alive, a canned OpenAI answer. Built so that the upstream is
 * never what a proxy benchmark measures (bench/run.sh checks that it answers
 * at least twice as fast directly as nginx does through it, and marks the
 * run invalid otherwise). tests/mock/mock_upstream is the scriptable mock
 * for the tests; it runs a thread per connection and caps at ~40k req/s.
 *
 *   fast_upstream [--port 0] [--port-file PATH] [--chunks 20]
 *
 * Answers, to any method and path:
 *   POST .../chat/completions   a chat.completion (model echoed), or, when
 *                               the body says "stream":true, `--chunks`
 *                               chunk events and [DONE], chunked encoding
 *   GET /_fast/stats            {"connections_opened":N,"requests":N}
 *   POST /_fast/reset           zeroes both counters
 *   anything else               404
 * Request bodies must come with Content-Length (what wrk, nginx and libcurl
 * send for these requests); a chunked request body gets a 411 and a close.
 * Stops on SIGTERM/SIGINT. Loopback only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (16 * 1024 * 1024)

struct conn {
    int fd;
    char *in; /* received, not yet answered */
    size_t in_len, in_cap;
    char *out; /* answered, not yet written */
    size_t out_len, out_off, out_cap;
    int close_after; /* close once out is written */
    int want_out;    /* EPOLLOUT registered */
};

static volatile sig_atomic_t stop;
static unsigned long long conns_opened, requests, seq;
static int chunks = 20;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *q = realloc(*p, n);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

static int out_add(struct conn *c, const char *s, size_t n)
{
    if (grow(&c->out, &c->out_cap, c->out_len + n))
        return -1;
    memcpy(c->out + c->out_len, s, n);
    c->out_len += n;
    return 0;
}

static int out_printf(struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int out_printf(struct conn *c, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    return out_add(c, tmp, (size_t)n);
}

/* The value of header `name` in head[0..len) (borrowed), or NULL. */
static const char *header(const char *head, size_t len, const char *name,
                          size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', len), *end = head + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' &&
            !strncasecmp(line, name, nl)) {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* The model named in the body ("model":"..."), at most 100 bytes. */
static void body_model(const char *b, size_t n, char *out, size_t cap)
{
    const char *m = memmem(b, n, "\"model\"", 7);
    snprintf(out, cap, "fast-model");
    if (!m)
        return;
    const char *q = memchr(m + 7, '"', (size_t)(b + n - (m + 7)));
    if (!q)
        return;
    const char *e = memchr(q + 1, '"', (size_t)(b + n - (q + 1)));
    if (!e || e - q - 1 >= (long)cap || e - q - 1 > 100)
        return;
    memcpy(out, q + 1, (size_t)(e - q - 1));
    out[e - q - 1] = '\0';
}

static int answer_json(struct conn *c, int status, const char *body)
{
    return out_printf(c,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%s",
                      status, status == 200 ? "OK" : "Error", strlen(body),
                      body);
}

static int answer_chat(struct conn *c, const char *b, size_t n)
{
    char model[128], body[1024];
    unsigned long long id = ++seq;
    body_model(b, n, model, sizeof model);
    int stream = memmem(b, n, "\"stream\":true", 13) ||
                 memmem(b, n, "\"stream\": true", 14);
    if (!stream) {
        snprintf(
            body, sizeof body,
            "{\"id\":\"chatcmpl-fast-%llu\",\"object\":\"chat.completion\","
            "\"created\":1700000000,\"model\":\"%s\",\"choices\":[{"
            "\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
            "\"Hello from the fast upstream.\"},\"finish_reason\":"
            "\"stop\"}],\"usage\":{\"prompt_tokens\":16,"
            "\"completion_tokens\":9,\"total_tokens\":25}}",
            id, model);
        return answer_json(c, 200, body);
    }
    if (out_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"))
        return -1;
    for (int i = 0; i < chunks; i++) {
        int n2 = snprintf(
            body, sizeof body,
            "data: {\"id\":\"chatcmpl-fast-%llu\",\"object\":"
            "\"chat.completion.chunk\",\"created\":1700000000,\"model\":"
            "\"%s\",\"choices\":[{\"index\":0,\"delta\":{%s\"content\":"
            "\"tok%d \"},\"finish_reason\":%s}]}\n\n",
            id, model, i == 0 ? "\"role\":\"assistant\"," : "", i,
            i == chunks - 1 ? "\"stop\"" : "null");
        if (out_printf(c, "%x\r\n%s\r\n", n2, body))
            return -1;
    }
    return out_printf(c, "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
}

/* One complete request: head[0..hlen) then body[0..blen). */
static int handle(struct conn *c, const char *head, size_t hlen,
                  const char *body, size_t blen)
{
    const char *sp = memchr(head, ' ', hlen);
    const char *path = sp ? sp + 1 : "";
    const char *pe = sp ? memchr(path, ' ', (size_t)(head + hlen - path)) : 0;
    size_t plen = pe ? (size_t)(pe - path) : 0;
    size_t vlen;
    const char *conn = header(head, hlen, "connection", &vlen);
    if (conn && vlen == 5 && !strncasecmp(conn, "close", 5))
        c->close_after = 1;
    if (plen >= 17 && !memcmp(path + plen - 17, "/chat/completions", 17)) {
        requests++;
        return answer_chat(c, body, blen);
    }
    if (plen == 12 && !memcmp(path, "/_fast/stats", 12)) {
        char b[160];
        snprintf(b, sizeof b, "{\"connections_opened\":%llu,\"requests\":%llu}",
                 conns_opened, requests);
        return answer_json(c, 200, b);
    }
    if (plen == 12 && !memcmp(path, "/_fast/reset", 12)) {
        conns_opened = requests = 0;
        return answer_json(c, 200, "{\"ok\":true}");
    }
    return answer_json(c, 404,
                       "{\"error\":{\"message\":\"not found\","
                       "\"type\":\"invalid_request_error\"}}");
}

/* Answer every complete request in c->in. -1: close the connection. */
static int parse(struct conn *c)
{
    size_t off = 0;
    while (off < c->in_len) {
        char *h = c->in + off;
        size_t avail = c->in_len - off;
        char *eoh = memmem(h, avail, "\r\n\r\n", 4);
        if (!eoh) {
            if (avail > MAX_HEAD)
                return -1;
            break;
        }
        size_t hlen = (size_t)(eoh - h) + 4, vlen;
        const char *te = header(h, hlen, "transfer-encoding", &vlen);
        if (te) {
            answer_json(c, 411, "{\"error\":\"send Content-Length\"}");
            c->close_after = 1;
            c->in_len = 0;
            return 0;
        }
        const char *cl = header(h, hlen, "content-length", &vlen);
        size_t blen = cl ? strtoul(cl, NULL, 10) : 0;
        if (blen > MAX_BODY)
            return -1;
        if (avail < hlen + blen)
            break;
        if (handle(c, h, hlen, h + hlen, blen))
            return -1;
        off += hlen + blen;
        if (c->close_after)
            break;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static void conn_close(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Write what is pending; 0 ok (maybe waiting for EPOLLOUT), -1 close. */
static int flush(int ep, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0)
            return -1;
        c->out_off += (size_t)n;
    }
    int pending = c->out_off < c->out_len;
    if (!pending) {
        c->out_off = c->out_len = 0;
        if (c->close_after)
            return -1;
    }
    if (pending != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (pending ? EPOLLOUT : 0),
                                 .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = pending;
    }
    return 0;
}

static int on_readable(int ep, struct conn *c)
{
    for (;;) {
        if (grow(&c->in, &c->in_cap, c->in_len + 16384))
            return -1;
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0)
            return -1;
        c->in_len += (size_t)n;
        if ((size_t)n < c->in_cap - c->in_len + (size_t)n)
            break; /* short read: the socket is drained */
    }
    if (c->close_after)
        return 0; /* answered and closing: ignore the rest */
    if (parse(c))
        return -1;
    return flush(ep, c);
}

static void on_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
            close(fd);
            free(c);
            continue;
        }
        conns_opened++;
    }
}

static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    socklen_t sl = sizeof sa;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4096) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl)) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sa.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    int port = 0, bound = 0;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--port-file") && i + 1 < argc)
            port_file = argv[++i];
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc)
            chunks = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: fast_upstream [--port 0] [--port-file "
                            "PATH] [--chunks 20]\n");
            return 2;
        }
    }
    if (chunks < 1 || chunks > 10000)
        chunks = 20;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = listen_on(port, &bound);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (lfd < 0 || ep < 0) {
        perror("fast_upstream: listen");
        return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", bound) < 0 || fclose(f) ||
            rename(tmp, port_file)) {
            perror("fast_upstream: port file");
            return 1;
        }
    }
    printf("fast_upstream listening on 127.0.0.1:%d\n", bound);
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept(ep, lfd);
                continue;
            }
            int rc = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                rc = on_readable(ep, c);
            if (!rc && (evs[i].events & EPOLLOUT))
                rc = flush(ep, c);
            if (rc)
                conn_close(ep, c);
        }
    }
    close(lfd);
    close(ep);
    return 0;
}
