/* mock_main.c - entry point of mock_upstream: command line, the
 * libmicrohttpd daemon (thread per connection, small stacks, so thousands of
 * slow streams fit), the port file, and a clean stop on SIGTERM/SIGINT.
 * With --tls-cert/--tls-key a second daemon serves the same API over TLS on
 * its own port (--tls-port-file), for tests of https:// upstreams. */
#include "mock.h"

#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAIN_STACK_SIZE   (256 * 1024)
#define MAIN_CONN_LIMIT   10000
#define MAIN_CONN_TIMEOUT 120
#define MAIN_BACKLOG      4096

static void main_usage(FILE *out)
{
    fprintf(out, "usage: mock_upstream [--host 127.0.0.1] [--port 9100]"
                 " [--port-file PATH]\n"
                 "                     [--chunks 5] [--delay-ms 0]"
                 " [--max-records 10000] [--quiet]\n"
                 "                     [--tls-cert PEM --tls-key PEM"
                 " --tls-port-file PATH]\n"
                 "  --port 0 picks a free port (see --port-file and stdout)\n"
                 "  --max-records N keeps the newest N records (0: none)\n");
}

/* A non-negative int option value, or -1. */
static int main_parse_int(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000000)
        return -1;
    return (int)v;
}

/* 0 to run, 1 for --help, -1 on a bad command line. */
static int main_parse_args(int argc, char **argv, struct mock_opts *o)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"port-file", required_argument, NULL, 'f'},
        {"chunks", required_argument, NULL, 'c'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"max-records", required_argument, NULL, 'm'},
        {"quiet", no_argument, NULL, 'q'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-port-file", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    int c, v;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        v = optarg ? main_parse_int(optarg) : 0;
        switch (c) {
        case 'h':
            o->host = optarg;
            continue;
        case 'f':
            o->port_file = optarg;
            continue;
        case 'q':
            o->quiet = true;
            continue;
        case 'C':
            o->tls_cert = optarg;
            continue;
        case 'K':
            o->tls_key = optarg;
            continue;
        case 'T':
            o->tls_port_file = optarg;
            continue;
        case 'H':
            return 1;
        case 'p':
        case 'c':
        case 'd':
        case 'm':
            break;
        default:
            return -1;
        }
        if (v < 0 || (c == 'p' && v > 65535)) {
            fprintf(stderr, "mock_upstream: bad value \"%s\"\n", optarg);
            return -1;
        }
        if (c == 'p')
            o->port = v;
        else if (c == 'c')
            o->chunks = v;
        else if (c == 'd')
            o->delay_ms = v;
        else
            o->max_records = (size_t)v;
    }
    if (!o->tls_cert != !o->tls_key || (o->tls_cert && !o->tls_port_file)) {
        fprintf(stderr, "mock_upstream: --tls-cert, --tls-key and "
                        "--tls-port-file go together\n");
        return -1;
    }
    return optind == argc ? 0 : -1;
}

/* Lets thousands of connections open: soft fd limit up to the hard one. */
static void main_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Writes the port to a temp file, then renames it: readers never see a
 * partial file. */
static int main_write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f)
        goto fail;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        goto fail;
    return 0;
fail:
    perror("mock_upstream: port file");
    unlink(tmp);
    return -1;
}

/* A whole file, NUL-terminated (MHD wants PEM as a string); NULL on error. */
static char *main_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) || !(data = calloc(1, (size_t)n + 1)) ||
        fread(data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "mock_upstream: cannot read %s\n", path);
        free(data);
        data = NULL;
    }
    if (f)
        fclose(f);
    return data;
}

/* The plain daemon on o->port, or (cert and key given) the TLS one on a
 * free port. */
static struct MHD_Daemon *main_start(const struct mock_opts *o,
                                     const struct addrinfo *ai,
                                     const char *cert, const char *key)
{
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL; /* select() stops at fd 1024 */
    struct sockaddr_storage sa;

    if (!o->quiet)
        flags |= MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    if (cert) {
        flags |= MHD_USE_TLS;
        /* port 0: both address families keep the port at the same offset */
        ((struct sockaddr_in *)&sa)->sin_port = 0;
        return MHD_start_daemon(
            flags, 0, NULL, NULL, mock_handler_access, (void *)o,
            MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
            MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_STACK_SIZE,
            (size_t)MAIN_STACK_SIZE, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)MAIN_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)MAIN_CONN_TIMEOUT, MHD_OPTION_NOTIFY_COMPLETED,
            mock_handler_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
            mock_handler_connection, (void *)1, MHD_OPTION_END);
    }
    return MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, mock_handler_access, (void *)o,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)MAIN_STACK_SIZE, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)MAIN_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)MAIN_CONN_TIMEOUT, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)MAIN_BACKLOG, MHD_OPTION_NOTIFY_COMPLETED,
        mock_handler_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        mock_handler_connection, NULL, MHD_OPTION_END);
}

static int main_bound_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);

    return di ? di->port : -1;
}

/* Serves until SIGTERM or SIGINT. */
static int main_run(const struct mock_opts *o, const sigset_t *stop_sigs)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    struct MHD_Daemon *d = NULL, *td = NULL;
    char *cert = NULL, *key = NULL;
    char port_str[16];
    int port, sig, rc = 1;

    snprintf(port_str, sizeof(port_str), "%d", o->port);
    if (getaddrinfo(o->host, port_str, &hints, &ai) != 0 || !ai) {
        fprintf(stderr, "mock_upstream: cannot resolve host %s\n", o->host);
        goto out;
    }
    d = main_start(o, ai, NULL, NULL);
    if (!d) {
        fprintf(stderr, "mock_upstream: cannot listen on %s:%d\n", o->host,
                o->port);
        goto out;
    }
    port = main_bound_port(d);
    if (port <= 0 || (o->port_file && main_write_port_file(o->port_file, port)))
        goto out;
    printf("mock_upstream listening on %s:%d\n", o->host, port);
    if (o->tls_cert) {
        cert = main_slurp(o->tls_cert);
        key = main_slurp(o->tls_key);
        td = cert && key ? main_start(o, ai, cert, key) : NULL;
        if (!td) {
            fprintf(stderr, "mock_upstream: cannot start the TLS port\n");
            goto out;
        }
        port = main_bound_port(td);
        if (port <= 0 || main_write_port_file(o->tls_port_file, port))
            goto out;
        printf("mock_upstream listening with TLS on %s:%d\n", o->host, port);
    }
    fflush(stdout);
    sigwait(stop_sigs, &sig);
    rc = 0;
out:
    mock_wait_stop_all(); /* wakes every stall so the daemon can stop */
    if (td)
        MHD_stop_daemon(td);
    if (d)
        MHD_stop_daemon(d);
    free(cert);
    free(key);
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

int main(int argc, char **argv)
{
    struct mock_opts opts = {
        .host = "127.0.0.1",
        .port = 9100,
        .chunks = 5,
        .max_records = 10000,
    };
    sigset_t stop_sigs;
    int rc = 1;

    rc = main_parse_args(argc, argv, &opts);
    if (rc) {
        main_usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    rc = 1;
    main_raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    /* blocked before any thread starts, so only sigwait() sees them */
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGTERM);
    sigaddset(&stop_sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    if (mock_wait_init() || mock_record_init(opts.max_records) ||
        mock_script_init()) {
        fprintf(stderr, "mock_upstream: out of resources\n");
        goto out;
    }
    rc = main_run(&opts, &stop_sigs);
out:
    mock_script_fini();
    mock_record_fini();
    mock_wait_fini();
    return rc;
}
