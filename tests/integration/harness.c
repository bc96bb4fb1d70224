/*
 * harness.c - see harness.h. Child processes, the temporary YAML, libcurl
 * helpers (plain and streaming) and the mock upstream's control API.
 *
 * What it is not: a test. It asserts only on its own preconditions (a child
 * that will not start, a temp file that cannot be written).
 */
#include "harness.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define PATHLEN 512

static struct {
    pid_t owner; /* the process that set things up (atexit runs only there) */
    int atexit_set;
    char tmpdir[256];
    pid_t mock_pid, sluice_pid;
    int mock_port, sluice_port;
    pid_t xpid[H_MAX_MOCKS]; /* extra mocks: index 1.. (0 is mock_pid) */
    int xport[H_MAX_MOCKS];
    pid_t fleet_pid[H_FLEET_MAX]; /* h_fleet_start's instances */
    int fleet_port[H_FLEET_MAX], nfleet;
    int started; /* a child was spawned and teardown has not run */
    int wd_fd;   /* write end of the watchdog's pipe, -1 when none */
    pid_t wd_pid;
    char mock_log[PATHLEN], sluice_log[PATHLEN];
    char config[PATHLEN], keys[PATHLEN], portfile[PATHLEN];
} H;

/* ---- small utilities --------------------------------------------------- */

double h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    fchmod(fd, mode);
    return close(fd);
}

/* Print the last `lines` lines of a file, framed. */
static void tail_file(const char *label, const char *path, int lines)
{
    size_t len = 0;
    char *text = slurp(path, &len);
    if (!text) {
        fprintf(stderr, "---- %s: (no log at %s)\n", label, path);
        return;
    }
    size_t start = len;
    int seen = 0;
    while (start > 0) {
        if (text[start - 1] == '\n' && start != len && ++seen > lines)
            break;
        start--;
    }
    fprintf(stderr,
            "---- last %d lines of %s (%s) ----\n%s%s---- end of %s ----\n",
            lines, label, path, text + start,
            (len && text[len - 1] != '\n') ? "\n" : "", label);
    free(text);
}

void h_dump_logs(int lines)
{
    if (H.sluice_log[0])
        tail_file("sluice log", H.sluice_log, lines);
    if (H.mock_log[0])
        tail_file("mock log", H.mock_log, lines);
}

/* The first line of the file at `path` holding a and (unless NULL) b,
 * malloc'd, or NULL. */
static char *file_find_line(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL, *hit = NULL;
    size_t cap = 0;
    while (!hit && getline(&line, &cap, f) > 0)
        if (strstr(line, a) && (!b || strstr(line, b)))
            hit = strdup(line);
    free(line);
    fclose(f);
    return hit;
}

char *h_log_wait(const char *a, const char *b, long limit_ms)
{
    double until = h_now_ms() + (double)limit_ms;
    for (;;) {
        char *hit = H.sluice_log[0] ? file_find_line(H.sluice_log, a, b) : NULL;
        if (hit || h_now_ms() >= until)
            return hit;
        h_sleep_ms(20);
    }
}

int h_redis_fixture(char *dir, size_t dirlen)
{
    const char *d = getenv("REDIS_FIXTURE_DIR");
    char path[PATHLEN + 16];
    int port = 0;
    if (d && *d) {
        snprintf(dir, dirlen, "%s", d);
        snprintf(path, sizeof path, "%s/port", d);
        char *txt = slurp(path, NULL);
        port = txt ? atoi(txt) : 0;
        free(txt);
    }
    if (port <= 0) {
        printf("SKIP: no Redis fixture (REDIS_FIXTURE_DIR): redis-server "
               "missing? scripts/deps.sh --test\n");
        fflush(stdout);
        exit(77);
    }
    return port;
}

char *h_get_body(int port, const char *path, const char *const *headers)
{
    h_resp r;
    h_request(port, "GET", path, headers, NULL, 0, 10000, &r);
    char *body = strdup(r.body ? r.body : "");
    h_resp_free(&r);
    return body;
}

int h_wait_body(int port, const char *path, const char *const *headers,
                const char *needle, int want, long limit_ms)
{
    double until = h_now_ms() + (double)limit_ms;
    for (;;) {
        char *b = h_get_body(port, path, headers);
        int has = b && strstr(b, needle) != NULL;
        free(b);
        if (has == want)
            return 1;
        if (h_now_ms() >= until)
            return 0;
        h_sleep_ms(10);
    }
}

/* ---- the watchdog -------------------------------------------------------
 *
 * Check runs each test in a forked child and ends it with _exit() when an
 * assertion fails (or SIGKILLs it on a timeout): no teardown, no atexit. The
 * children then die through PR_SET_PDEATHSIG, but nobody would show their
 * logs or remove the temp dir. So the first h_tmpdir() of a test forks a
 * watchdog in its own process group that holds the read end of a pipe; the
 * test tells it about each child, and "done" after a clean teardown. On EOF
 * without "done" it prints the tail of each child's log, kills what is left
 * and removes the temp dir. */

static void wd_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void wd_send(const char *fmt, ...)
{
    if (H.wd_fd < 0 || H.owner != getpid())
        return;
    char line[PATHLEN * 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof line)
        return;
    ssize_t w;
    do {
        w = write(H.wd_fd, line, (size_t)n); /* < PIPE_BUF: atomic */
    } while (w < 0 && errno == EINTR);
}

static void tail_file(const char *label, const char *path, int lines);
static void rm_rf(const char *dir);

struct wd_child {
    pid_t pid;
    char label[32];
    char log[PATHLEN];
    int gone;
};

static void watchdog_main(int rfd, const char *dir)
{
    struct wd_child kids[16];
    size_t nkids = 0;
    int done = 0;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(rfd, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            char *f[4] = {line, NULL, NULL, NULL};
            for (int i = 1; i < 4; i++) {
                char *t = f[i - 1] ? strchr(f[i - 1], '\t') : NULL;
                if (t) {
                    *t = '\0';
                    f[i] = t + 1;
                }
            }
            if (strcmp(f[0], "child") == 0 && f[3] && nkids < 16) {
                kids[nkids].pid = (pid_t)atoi(f[1]);
                snprintf(kids[nkids].label, sizeof kids[nkids].label, "%s",
                         f[2]);
                snprintf(kids[nkids].log, sizeof kids[nkids].log, "%s", f[3]);
                kids[nkids].gone = 0;
                nkids++;
            } else if (strcmp(f[0], "gone") == 0 && f[1]) {
                for (size_t i = 0; i < nkids; i++)
                    if (kids[i].pid == (pid_t)atoi(f[1]))
                        kids[i].gone = 1;
            } else if (strcmp(f[0], "done") == 0) {
                done = 1;
            }
            line = nl + 1;
        }
        have = strlen(line);
        memmove(buf, line, have + 1);
    }
    if (done)
        _exit(0);
    int any = 0;
    for (size_t i = 0; i < nkids; i++)
        if (!kids[i].gone)
            any = 1;
    if (any) {
        fprintf(stderr, "harness: the test ended without its teardown (failed "
                        "assertion or timeout); what its processes said:\n");
        for (size_t i = 0; i < nkids; i++) {
            if (kids[i].gone)
                continue;
            killpg(kids[i].pid, SIGKILL);
            tail_file(kids[i].label, kids[i].log, 40);
        }
        fflush(stderr);
    }
    rm_rf(dir);
    _exit(0);
}

static void watchdog_start(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0); /* outlive Check's killpg of the test's group */
        close(p[1]);
        watchdog_main(p[0], H.tmpdir);
    }
    close(p[0]);
    H.wd_fd = p[1];
    H.wd_pid = pid;
    wd_send("dir\t%s\n", H.tmpdir);
}

/* A clean end: tell the watchdog, close, reap it. */
static void watchdog_finish(void)
{
    if (H.wd_fd < 0 || H.owner != getpid())
        return;
    wd_send("done\n");
    close(H.wd_fd);
    H.wd_fd = -1;
    if (H.wd_pid > 0)
        while (waitpid(H.wd_pid, NULL, 0) < 0 && errno == EINTR) {
        }
    H.wd_pid = 0;
}

/* ---- children ----------------------------------------------------------- */

static void child_common(pid_t parent)
{
    setpgid(0, 0);
    /* Die with the test process, even when Check kills it on a timeout. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
    /* The seed's overrides would silently change the config under test. */
    static const char *overrides[] = {"HOST",
                                      "PORT",
                                      "MEGALLM_BASE_URL",
                                      "MEGALLM_TIMEOUT",
                                      "MEGALLM_MAX_RETRIES",
                                      "MAX_KEY_RETRIES",
                                      "LOG_LEVEL",
                                      NULL};
    for (int i = 0; overrides[i]; i++)
        unsetenv(overrides[i]);
    const char *lvl = getenv("SLUICE_TEST_LOG_LEVEL");
    if (lvl && *lvl)
        setenv("LOG_LEVEL", lvl, 1);
}

static pid_t spawn_logged(char *const argv[], const char *logpath,
                          const char *label)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        child_common(parent);
        int in = open("/dev/null", O_RDONLY);
        int out = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        if (in > 2)
            close(in);
        if (out > 2)
            close(out);
        execv(argv[0], argv);
        dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so it holds whichever runs first */
    H.started = 1;
    wd_send("child\t%d\t%s\t%s\n", (int)pid, label, logpath);
    return pid;
}

/* Kill a child's group: TERM, up to 5 s, then KILL; reap. Returns the wait
 * status, or -1 if it was already gone. *forced set when KILL was needed. */
static int stop_child(pid_t pid, int *forced)
{
    int st = 0;
    *forced = 0;
    if (pid <= 0)
        return -1;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
        killpg(pid, SIGKILL); /* grandchildren, if any */
        return st;
    }
    killpg(pid, SIGTERM);
    kill(pid, SIGTERM);
    double until = h_now_ms() + 5000;
    while (h_now_ms() < until) {
        r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            killpg(pid, SIGKILL);
            return r == pid ? st : -1;
        }
        h_sleep_ms(20);
    }
    *forced = 1;
    killpg(pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

static void describe_status(int st, char *out, size_t n)
{
    if (WIFEXITED(st))
        snprintf(out, n, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, n, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(out, n, "wait status 0x%x", st);
}

static void stop_one(pid_t *pid, const char *label)
{
    if (*pid <= 0)
        return;
    int forced = 0;
    int st = stop_child(*pid, &forced);
    wd_send("gone\t%d\n", (int)*pid);
    *pid = 0;
    if (forced) {
        fprintf(stderr,
                "harness: WARNING: %s did not exit within 5 s of "
                "SIGTERM; killed\n",
                label);
        return;
    }
    if (st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
        !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)) {
        char d[96];
        describe_status(st, d, sizeof d);
        fprintf(stderr, "harness: WARNING: %s ended on SIGTERM with %s\n",
                label, d);
    }
}

/* Copy dir into $SLUICE_TEST_LOG_DIR (when set) before it goes away. */
static void collect_dir(const char *dir)
{
    const char *dest = getenv("SLUICE_TEST_LOG_DIR");
    if (!dir[0] || !dest || !*dest)
        return;
    mkdir(dest, 0755);
    char *argv[] = {"/bin/cp", "-r", (char *)dir, (char *)dest, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
}

static void rm_rf(const char *dir)
{
    collect_dir(dir);
    if (!dir[0] || getenv("SLUICE_TEST_KEEP"))
        return;
    char *argv[] = {"/bin/rm", "-rf", (char *)dir, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
}

static void cleanup_all(int failed)
{
    if (H.owner != getpid())
        return;
    if (failed && H.started)
        h_dump_logs(40);
    H.started = 0;
    for (int i = 0; i < H.nfleet; i++)
        stop_one(&H.fleet_pid[i], "sluice (fleet)");
    H.nfleet = 0;
    stop_one(&H.sluice_pid, "sluice");
    stop_one(&H.mock_pid, "mock_upstream");
    for (int i = 1; i < H_MAX_MOCKS; i++)
        stop_one(&H.xpid[i], "mock_upstream");
    rm_rf(H.tmpdir);
    watchdog_finish();
    H.tmpdir[0] = '\0';
    H.mock_log[0] = H.sluice_log[0] = '\0';
    H.mock_port = H.sluice_port = 0;
}

/* Reached when a failed assertion exit()s the test before its teardown
 * could run: the children are still up, so show what they said. */
static void atexit_cleanup(void)
{
    cleanup_all(1);
}

/* A sanitizer report in sluice's log (leaks at exit, UB, memory errors)
 * fails the test that produced it. */
static int log_has_sanitizer_report(const char *path)
{
    char line[1024];
    int found = 0;
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "ERROR: AddressSanitizer") ||
                strstr(line, "ERROR: LeakSanitizer") ||
                strstr(line, "runtime error:");
    fclose(f);
    return found;
}

void h_kill9_sluice(void)
{
    int st;
    pid_t pid = H.sluice_pid;
    if (pid <= 0)
        return;
    killpg(pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    wd_send("gone\t%d\n", (int)pid);
    H.sluice_pid = 0;
    H.sluice_port = 0;
}

void h_teardown(void)
{
    /* sluice dying during a test is a failure of that test. */
    if (H.owner == getpid() && H.sluice_pid > 0) {
        int st;
        if (waitpid(H.sluice_pid, &st, WNOHANG) == H.sluice_pid) {
            char d[96];
            describe_status(st, d, sizeof d);
            H.sluice_pid = 0;
            h_dump_logs(60);
            cleanup_all(0);
            ck_abort_msg("sluice died during the test (%s)", d);
        }
        stop_one(&H.sluice_pid, "sluice");
        if (log_has_sanitizer_report(H.sluice_log)) {
            char *argv[] = {"/bin/cat", H.sluice_log, NULL};
            char *out = NULL;
            h_run_capture(argv, 5000, &out);
            fprintf(stderr, "%s\n", out ? out : "");
            free(out);
            cleanup_all(0);
            ck_abort_msg("sluice's log holds a sanitizer report");
        }
    }
    cleanup_all(0);
}

const char *h_tmpdir(void)
{
    if (H.tmpdir[0] && H.owner == getpid())
        return H.tmpdir;
    memset(&H, 0, sizeof H);
    H.wd_fd = -1;
    H.owner = getpid();
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(H.tmpdir, sizeof H.tmpdir, "%.200s/sluice-it-XXXXXX", base);
    ck_assert_msg(mkdtemp(H.tmpdir) != NULL, "mkdtemp %s: %s", H.tmpdir,
                  strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    watchdog_start();
    /* One registration per process; a forked test child inherits the
     * parent's registration, and `owner` keeps it from acting twice. */
    static pid_t registered_in = 0;
    if (registered_in != getpid()) {
        atexit(atexit_cleanup);
        registered_in = getpid();
    }
    return H.tmpdir;
}

int h_mock_port(void)
{
    return H.mock_port;
}
int h_sluice_port(void)
{
    return H.sluice_port;
}
const char *h_config_path(void)
{
    return H.config;
}
const char *h_keys_path(void)
{
    return H.keys;
}
pid_t h_sluice_pid(void)
{
    return H.sluice_pid;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        close(fd);
        return -1;
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int h_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v && *v,
                  "environment variable %s is not set (run through "
                  "ctest)",
                  name);
    return v;
}

static int child_alive(pid_t pid, int *status)
{
    if (pid <= 0)
        return 0;
    pid_t r = waitpid(pid, status, WNOHANG);
    return r == 0;
}

/* The mock, with its TLS port when cert and key are given. */
/* Start a mock logging to logpath on `want` (0: a free port), with its
 * TLS port when cert and key are given; waits until it answers. */
static int mock_spawn(const char *logpath, const char *portfile, int want,
                      const char *cert, const char *key, char *tls_portfile,
                      pid_t *pid)
{
    const char *bin = env_or_fail("MOCK_BIN");
    char wport[16];
    snprintf(wport, sizeof wport, "%d", want);
    unlink(portfile);
    char *argv[] = {(char *)bin,       "--host",     "127.0.0.1",
                    "--port",          wport,        "--port-file",
                    (char *)portfile,  "--quiet",    "--tls-cert",
                    (char *)cert,      "--tls-key",  (char *)key,
                    "--tls-port-file", tls_portfile, NULL};
    if (!cert)
        argv[8] = NULL;
    *pid = spawn_logged(argv, logpath, "mock_upstream log");
    ck_assert_msg(*pid > 0, "fork: %s", strerror(errno));

    double until = h_now_ms() + 10000;
    while (h_now_ms() < until) {
        int st;
        if (!child_alive(*pid, &st)) {
            char d[96];
            describe_status(st, d, sizeof d);
            *pid = 0;
            ck_abort_msg("mock_upstream exited during start-up (%s)", d);
        }
        char *txt = slurp(portfile, NULL);
        int port = txt ? atoi(txt) : 0;
        free(txt);
        if (port > 0) {
            h_resp r;
            h_request(port, "GET", "/_mock/health", NULL, NULL, 0, 1000, &r);
            long status = r.status;
            h_resp_free(&r);
            if (status == 200)
                return port;
        }
        h_sleep_ms(20);
    }
    ck_abort_msg("mock_upstream not ready within 10 s (port file %s)",
                 portfile);
    return -1;
}

/* The mock, with its TLS port when cert and key are given. */
static int start_mock(const char *cert, const char *key, char *tls_portfile)
{
    h_tmpdir();
    snprintf(H.mock_log, sizeof H.mock_log, "%s/mock.log", H.tmpdir);
    snprintf(H.portfile, sizeof H.portfile, "%s/mock.port", H.tmpdir);
    H.mock_port = mock_spawn(H.mock_log, H.portfile, 0, cert, key, tls_portfile,
                             &H.mock_pid);
    return H.mock_port;
}

int h_start_mock(void)
{
    return start_mock(NULL, NULL, NULL);
}

int h_start_mock_at(int idx, int port)
{
    char log[PATHLEN], pf[PATHLEN];
    ck_assert_msg(idx >= 1 && idx < H_MAX_MOCKS, "mock index %d", idx);
    h_tmpdir();
    snprintf(log, sizeof log, "%s/mock%d.log", H.tmpdir, idx);
    snprintf(pf, sizeof pf, "%s/mock%d.port", H.tmpdir, idx);
    H.xport[idx] = mock_spawn(log, pf, port, NULL, NULL, NULL, &H.xpid[idx]);
    H.started = 1;
    return H.xport[idx];
}

void h_stop_mock_at(int idx)
{
    if (idx >= 1 && idx < H_MAX_MOCKS)
        stop_one(&H.xpid[idx], "mock_upstream");
}

int h_mock_port_at(int idx)
{
    return idx == 0 ? H.mock_port : idx < H_MAX_MOCKS ? H.xport[idx] : -1;
}

int h_start_mock_tls(const char *cert, const char *key)
{
    char pf[PATHLEN];
    snprintf(pf, sizeof pf, "%s/mock-tls.port", h_tmpdir());
    unlink(pf);
    start_mock(cert, key, pf);
    /* written just after the plain port's file */
    int port = 0;
    for (double until = h_now_ms() + 10000; port <= 0 && h_now_ms() < until;
         h_sleep_ms(20)) {
        char *txt = slurp(pf, NULL);
        port = txt ? atoi(txt) : 0;
        free(txt);
    }
    ck_assert_msg(port > 0, "mock_upstream wrote no TLS port (%s)", pf);
    return port;
}

/* Replace every @KEY@ in text; caller frees. */
static char *subst(const char *text)
{
    const char *keys[] = {"@KEYS_FILE@", "@TMPDIR@"};
    const char *vals[] = {H.keys, H.tmpdir};
    size_t cap = strlen(text) * 2 + 1024, n = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = text; *p;) {
        int hit = 0;
        for (int i = 0; i < 2; i++) {
            size_t kl = strlen(keys[i]);
            if (strncmp(p, keys[i], kl) == 0) {
                size_t vl = strlen(vals[i]);
                if (n + vl + 1 >= cap) {
                    cap = (n + vl + 1) * 2;
                    char *nb = realloc(out, cap);
                    if (!nb) {
                        free(out);
                        return NULL;
                    }
                    out = nb;
                }
                memcpy(out + n, vals[i], vl);
                n += vl;
                p += kl;
                hit = 1;
                break;
            }
        }
        if (!hit) {
            if (n + 2 >= cap) {
                cap *= 2;
                char *nb = realloc(out, cap);
                if (!nb) {
                    free(out);
                    return NULL;
                }
                out = nb;
            }
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

int h_write_config(const char *path, const h_opts *opts, int port)
{
    h_opts def;
    memset(&def, 0, sizeof def);
    if (!opts)
        opts = &def;
    h_tmpdir();
    if (!H.keys[0])
        snprintf(H.keys, sizeof H.keys, "%s/keys.txt", H.tmpdir);
    if (write_file(H.keys, opts->keys ? opts->keys : H_DEFAULT_KEYS, 0600) < 0)
        return -1;
    chmod(H.keys, 0600);

    char base[320];
    if (opts->base_url && !*opts->base_url) /* "": upstreams: in extra */
        base[0] = '\0';
    else if (opts->base_url)
        snprintf(base, sizeof base, "  base_url: \"%s\"\n", opts->base_url);
    else
        snprintf(base, sizeof base, "  base_url: \"http://127.0.0.1:%d/v1\"\n",
                 H.mock_port);
    const char *plugins = getenv("PLUGINS_DIR");
    const char *pipeline = opts->pipeline
                               ? opts->pipeline
                               : "  - plugin: keyring\n"
                                 "    config: { keys_file: \"@KEYS_FILE@\" }\n"
                                 "  - plugin: sse\n";
    char *pipe_s = subst(pipeline);
    char *extra_s = opts->extra ? subst(opts->extra) : NULL;
    if (!pipe_s || (opts->extra && !extra_s)) {
        free(pipe_s);
        free(extra_s);
        return -1;
    }

    char maxbody[64 + 1024] = "";
    if (opts->max_body_bytes > 0)
        snprintf(maxbody, sizeof maxbody, "  max_body_bytes: %ld\n",
                 opts->max_body_bytes);
    if (opts->server_extra)
        snprintf(maxbody + strlen(maxbody), sizeof maxbody - strlen(maxbody),
                 "%s", opts->server_extra);
    int own_state = extra_s && (!strncmp(extra_s, "state:", 6) ||
                                strstr(extra_s, "\nstate:"));
    size_t cap = strlen(pipe_s) + (extra_s ? strlen(extra_s) : 0) +
                 (opts->models ? strlen(opts->models) : 1024) + 4096;
    char *yaml = malloc(cap);
    if (!yaml) {
        free(pipe_s);
        free(extra_s);
        return -1;
    }
    snprintf(yaml, cap,
             "# written by tests/integration/harness.c\n"
             "server:\n"
             "  host: \"127.0.0.1\"\n"
             "  port: %d\n"
             "  threads: %d\n"
             "%s"
             "upstream:\n"
             "%s"
             "  timeout_s: %d\n"
             "%s"
             "plugins_dir: \"%s\"\n"
             "models:\n%s"
             "pipeline:\n%s"
             "%s%s%s%s",
             port, opts->threads > 0 ? opts->threads : 2, maxbody, base,
             opts->timeout_s > 0 ? opts->timeout_s : 30,
             opts->upstream_extra ? opts->upstream_extra : "",
             plugins ? plugins : "build/plugins",
             opts->models ? opts->models : H_DEFAULT_MODELS, pipe_s,
             extra_s ? extra_s : "",
             /* each test its own state file, unless it says where */
             own_state ? "" : "state:\n  path: \"", own_state ? "" : h_tmpdir(),
             own_state ? "" : "/state.db\"\n");
    int rc = write_file(path, yaml, 0644);
    free(yaml);
    free(pipe_s);
    free(extra_s);
    return rc;
}

/* The port of sluice's "listening" log line, 0 while there is none. */
static int listening_port(const char *log)
{
    const char *l = log ? strstr(log, "\"msg\":\"listening\"") : NULL;
    const char *p = l ? strstr(l, "\"port\":") : NULL;
    return p ? atoi(p + 7) : 0;
}

/* Write `config` for opts, start sluice on it (log appended to logpath)
 * and wait for its /health; *pidp holds the child. Returns the port. */
static int sluice_launch(const h_opts *opts, const char *config,
                         const char *logpath, pid_t *pidp)
{
    const char *bin = env_or_fail("SLUICE_BIN");
    /* port: 0, and the port sluice bound is read from its "listening" line.
     * A port picked here and bound later could be taken meanwhile, and
     * since sluice binds with SO_REUSEPORT, two test processes could then
     * share one port without an error, each getting the other's requests. */
    ck_assert_msg(h_write_config(config, opts, 0) == 0, "cannot write %s",
                  config);
    char *argv[] = {(char *)bin, "-c", (char *)config, NULL};
    /* after a kill -9 the log holds the last run: read past it */
    struct stat lsb;
    size_t log_from = stat(logpath, &lsb) == 0 ? (size_t)lsb.st_size : 0;
    *pidp = spawn_logged(argv, logpath, "sluice log");
    ck_assert_msg(*pidp > 0, "fork: %s", strerror(errno));

    /* generous: on a busy machine (CI runs two suites' tests in parallel)
     * a first SQLite fsync alone has taken seconds */
    double until = h_now_ms() + 30000;
    int port = 0;
    while (h_now_ms() < until) {
        int st;
        if (!child_alive(*pidp, &st)) {
            char how[96] = "";
            describe_status(st, how, sizeof how);
            *pidp = 0;
            ck_abort_msg("sluice exited during start-up with %s (config %s)",
                         how, config);
        }
        if (!port) {
            size_t loglen = 0;
            char *log = slurp(logpath, &loglen);
            port = listening_port(log && loglen > log_from ? log + log_from
                                                           : NULL);
            free(log);
        }
        if (port) {
            h_resp r;
            h_request(port, "GET", "/health", NULL, NULL, 0, 1000, &r);
            long status = r.status;
            h_resp_free(&r);
            if (status == 200)
                return port;
        }
        h_sleep_ms(20);
    }
    /* where it waits, for the report */
    char wpath[64], wchan[64] = "?";
    snprintf(wpath, sizeof wpath, "/proc/%d/wchan", (int)*pidp);
    FILE *wf = fopen(wpath, "r");
    if (wf) {
        if (!fgets(wchan, sizeof wchan, wf))
            snprintf(wchan, sizeof wchan, "?");
        fclose(wf);
    }
    ck_abort_msg("sluice did not log its port and answer GET /health with "
                 "200 within 30 s (config %s; its main thread waits in %s)",
                 config, wchan);
    return -1;
}

int h_start_sluice(const h_opts *opts)
{
    h_tmpdir();
    snprintf(H.sluice_log, sizeof H.sluice_log, "%s/sluice.log", H.tmpdir);
    snprintf(H.config, sizeof H.config, "%s/sluice.yaml", H.tmpdir);
    H.sluice_port = sluice_launch(opts, H.config, H.sluice_log, &H.sluice_pid);
    return H.sluice_port;
}

int h_fleet_start(const h_opts *opts)
{
    char config[600], logpath[600];
    h_tmpdir();
    ck_assert_msg(H.nfleet < H_FLEET_MAX, "at most %d fleet instances",
                  H_FLEET_MAX);
    int i = H.nfleet++;
    snprintf(config, sizeof config, "%s/fleet%d.yaml", H.tmpdir, i);
    snprintf(logpath, sizeof logpath, "%s/fleet%d.log", H.tmpdir, i);
    H.fleet_port[i] = sluice_launch(opts, config, logpath, &H.fleet_pid[i]);
    return i;
}

int h_fleet_port(int i)
{
    return i >= 0 && i < H.nfleet ? H.fleet_port[i] : -1;
}

pid_t h_fleet_pid(int i)
{
    return i >= 0 && i < H.nfleet ? H.fleet_pid[i] : -1;
}

void h_start_all(const h_opts *opts)
{
    h_start_mock();
    h_start_sluice(opts);
}

int h_run_capture(char *const argv[], long timeout_ms, char **output)
{
    int fds[2];
    *output = NULL;
    if (pipe(fds) < 0)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        child_common(parent);
        int in = open("/dev/null", O_RDONLY);
        if (in >= 0)
            dup2(in, 0);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execv(argv[0], argv);
        dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    close(fds[1]);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    double until = h_now_ms() + (double)timeout_ms;
    int timed_out = 0;
    for (;;) {
        double left = until - h_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int pr = poll(&p, 1, (int)(left < 100 ? left + 1 : 100));
        if (pr < 0 && errno != EINTR)
            break;
        if (pr <= 0)
            continue;
        if (cap - n < 1024) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fds[0], buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fds[0]);
    buf[n] = '\0';
    *output = buf;
    int st = 0;
    if (timed_out) {
        killpg(pid, SIGKILL);
        kill(pid, SIGKILL);
    } else {
        /* Output closed: give it the rest of the budget to exit. */
        while (h_now_ms() < until) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) {
                killpg(pid, SIGKILL);
                return WIFEXITED(st)
                           ? WEXITSTATUS(st)
                           : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
            }
            h_sleep_ms(10);
        }
        killpg(pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return 128 + SIGKILL;
}

/* ---- HTTP -----------------------------------------------------------------
 */

struct xfer {
    h_resp *resp;
    h_stream *stream; /* NULL for plain requests */
    double t0;
    size_t abort_bytes, abort_events;
    size_t body_cap;
    size_t headers_cap;
};

static void headers_clear(h_resp *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;
    h_resp *r = x->resp;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        headers_clear(r); /* a new response (after 100 Continue, ...) */
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if (r->nheaders == x->headers_cap) {
        size_t nc = x->headers_cap ? x->headers_cap * 2 : 16;
        h_header *nh = realloc(r->headers, nc * sizeof *nh);
        if (!nh)
            return 0;
        r->headers = nh;
        x->headers_cap = nc;
    }
    r->headers[r->nheaders].name = strndup(data, nl);
    r->headers[r->nheaders].value = strndup(v, (size_t)(end - v));
    r->nheaders++;
    return len;
}

static int body_append(struct xfer *x, const char *data, size_t len)
{
    h_resp *r = x->resp;
    if (r->body_len + len + 1 > x->body_cap) {
        size_t nc = x->body_cap ? x->body_cap : 4096;
        while (nc < r->body_len + len + 1)
            nc *= 2;
        char *nb = realloc(r->body, nc);
        if (!nb)
            return -1;
        r->body = nb;
        x->body_cap = nc;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* Parse complete SSE events out of the body from parse_off on. */
static void sse_parse(h_stream *s, double t)
{
    const char *buf = s->resp.body;
    size_t len = s->resp.body_len;
    for (;;) {
        size_t p = s->parse_off;
        char *data = NULL, *name = NULL;
        size_t dlen = 0;
        int complete = 0;
        while (p < len) {
            const char *nl = memchr(buf + p, '\n', len - p);
            if (!nl)
                break;
            size_t ll = (size_t)(nl - (buf + p));
            const char *line = buf + p;
            if (ll && line[ll - 1] == '\r')
                ll--;
            p = (size_t)(nl - buf) + 1;
            if (ll == 0) {
                complete = 1;
                break;
            }
            if (ll >= 5 && strncmp(line, "data:", 5) == 0) {
                const char *v = line + 5;
                size_t vl = ll - 5;
                if (vl && *v == ' ') {
                    v++;
                    vl--;
                }
                char *nd = realloc(data, dlen + vl + 2);
                if (!nd)
                    break;
                data = nd;
                if (dlen)
                    data[dlen++] = '\n';
                memcpy(data + dlen, v, vl);
                dlen += vl;
                data[dlen] = '\0';
            } else if (ll >= 6 && strncmp(line, "event:", 6) == 0) {
                const char *v = line + 6;
                size_t vl = ll - 6;
                if (vl && *v == ' ') {
                    v++;
                    vl--;
                }
                free(name);
                name = strndup(v, vl);
            }
        }
        if (!complete) {
            free(data);
            free(name);
            return;
        }
        s->parse_off = p;
        if (!data && !name)
            continue; /* comment-only or empty event */
        h_event *ne = realloc(s->events, (s->nevents + 1) * sizeof *ne);
        if (!ne) {
            free(data);
            free(name);
            return;
        }
        s->events = ne;
        s->events[s->nevents].data = data;
        s->events[s->nevents].name = name;
        s->events[s->nevents].t_ms = t;
        s->nevents++;
    }
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * nmemb;
    double t = h_now_ms() - x->t0;
    if (x->resp->ttfb_ms < 0 && len > 0)
        x->resp->ttfb_ms = t;
    if (body_append(x, data, len) < 0)
        return 0;
    h_stream *s = x->stream;
    if (!s)
        return len;
    h_chunk *nc = realloc(s->chunks, (s->nchunks + 1) * sizeof *nc);
    if (!nc)
        return 0;
    s->chunks = nc;
    s->chunks[s->nchunks].data = malloc(len + 1);
    if (!s->chunks[s->nchunks].data)
        return 0;
    memcpy(s->chunks[s->nchunks].data, data, len);
    s->chunks[s->nchunks].data[len] = '\0';
    s->chunks[s->nchunks].len = len;
    s->chunks[s->nchunks].t_ms = t;
    s->nchunks++;
    sse_parse(s, t);
    if ((x->abort_bytes && x->resp->body_len >= x->abort_bytes) ||
        (x->abort_events && s->nevents >= x->abort_events)) {
        s->aborted = 1;
        return 0; /* CURLE_WRITE_ERROR: curl closes the connection */
    }
    return len;
}

static int do_request(int port, const char *method, const char *path,
                      const char *const *headers, const char *body,
                      size_t body_len, long timeout_ms, struct xfer *x)
{
    h_resp *out = x->resp;
    out->ttfb_ms = -1;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(out->error, sizeof out->error, "curl_easy_init failed");
        out->curl_code = CURLE_FAILED_INIT;
        return out->curl_code;
    }
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hl = NULL;
    int has_ct = 0;
    for (size_t i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
        if (strncasecmp(headers[i], "content-type:", 13) == 0)
            has_ct = 1;
    }
    if (body && !has_ct)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:");

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     timeout_ms > 0 ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)body_len);
        } else if (strcmp(method, "POST") == 0) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
    }
    x->t0 = h_now_ms();
    CURLcode rc = curl_easy_perform(c);
    out->total_ms = h_now_ms() - x->t0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    out->curl_code = (int)rc;
    if (rc != CURLE_OK)
        snprintf(out->error, sizeof out->error, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (!out->body) {
        out->body = calloc(1, 1);
        out->body_len = 0;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return (int)rc;
}

int h_request(int port, const char *method, const char *path,
              const char *const *headers, const char *body, size_t body_len,
              long timeout_ms, h_resp *out)
{
    memset(out, 0, sizeof *out);
    struct xfer x;
    memset(&x, 0, sizeof x);
    x.resp = out;
    return do_request(port, method, path, headers, body, body_len, timeout_ms,
                      &x);
}

int h_get(const char *path, h_resp *out)
{
    return h_request(H.sluice_port, "GET", path, NULL, NULL, 0, 10000, out);
}

int h_post_json(const char *path, const char *body, h_resp *out)
{
    return h_request(H.sluice_port, "POST", path, NULL, body, strlen(body),
                     10000, out);
}

const char *h_resp_header(const h_resp *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

json_t *h_resp_json(const h_resp *r)
{
    if (!r->body)
        return NULL;
    json_error_t e;
    return json_loadb(r->body, r->body_len, 0, &e);
}

void h_resp_free(h_resp *r)
{
    headers_clear(r);
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

int h_stream_request(int port, const char *method, const char *path,
                     const char *const *headers, const char *body,
                     size_t body_len, long timeout_ms, size_t abort_after_bytes,
                     size_t abort_after_events, h_stream *out)
{
    memset(out, 0, sizeof *out);
    struct xfer x;
    memset(&x, 0, sizeof x);
    x.resp = &out->resp;
    x.stream = out;
    x.abort_bytes = abort_after_bytes;
    x.abort_events = abort_after_events;
    return do_request(port, method, path, headers, body, body_len, timeout_ms,
                      &x);
}

void h_stream_free(h_stream *s)
{
    for (size_t i = 0; i < s->nchunks; i++)
        free(s->chunks[i].data);
    free(s->chunks);
    for (size_t i = 0; i < s->nevents; i++) {
        free(s->events[i].data);
        free(s->events[i].name);
    }
    free(s->events);
    h_resp_free(&s->resp);
    memset(s, 0, sizeof *s);
}

size_t h_stream_data_events(const h_stream *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nevents; i++)
        if (s->events[i].data && strcmp(s->events[i].data, "[DONE]") != 0)
            n++;
    return n;
}

int h_stream_has_done(const h_stream *s)
{
    return s->nevents > 0 && s->events[s->nevents - 1].data &&
           strcmp(s->events[s->nevents - 1].data, "[DONE]") == 0;
}

/* ---- mock control ----------------------------------------------------------
 */

int h_mock_reset(void)
{
    return h_mock_reset_at(0);
}

int h_mock_reset_at(int idx)
{
    h_resp r;
    h_request(h_mock_port_at(idx), "POST", "/_mock/reset", NULL, "{}", 2, 5000,
              &r);
    int ok = r.status >= 200 && r.status < 300;
    if (!ok)
        fprintf(stderr, "harness: POST /_mock/reset -> %ld %s\n", r.status,
                r.body ? r.body : "");
    h_resp_free(&r);
    return ok ? 0 : -1;
}

int h_mock_script(const char *rules_json)
{
    return h_mock_script_at(0, rules_json);
}

int h_mock_script_at(int idx, const char *rules_json)
{
    h_resp r;
    h_request(h_mock_port_at(idx), "POST", "/_mock/script", NULL, rules_json,
              strlen(rules_json), 5000, &r);
    int ok = r.status >= 200 && r.status < 300;
    if (!ok)
        fprintf(stderr, "harness: POST /_mock/script %s -> %ld %s\n",
                rules_json, r.status, r.body ? r.body : "");
    h_resp_free(&r);
    return ok ? 0 : -1;
}

static json_t *mock_get_json_at(int idx, const char *path)
{
    h_resp r;
    h_request(h_mock_port_at(idx), "GET", path, NULL, NULL, 0, 5000, &r);
    json_t *doc = r.status == 200 ? h_resp_json(&r) : NULL;
    h_resp_free(&r);
    return doc;
}

static json_t *mock_get_json(const char *path)
{
    return mock_get_json_at(0, path);
}

json_t *h_mock_requests(void)
{
    return h_mock_requests_at(0);
}

json_t *h_mock_requests_at(int idx)
{
    json_t *doc = mock_get_json_at(idx, "/_mock/requests");
    if (!doc)
        return NULL;
    if (json_is_array(doc))
        return doc;
    json_t *arr = json_object_get(doc, "requests");
    if (json_is_array(arr)) {
        json_incref(arr);
        json_decref(doc);
        return arr;
    }
    json_decref(doc);
    return NULL;
}

int h_mock_request_count(void)
{
    json_t *arr = h_mock_requests();
    if (!arr)
        return -1;
    int n = (int)json_array_size(arr);
    json_decref(arr);
    return n;
}

static long stat_in(json_t *doc, const char *name)
{
    if (!json_is_object(doc))
        return -1;
    json_t *v = json_object_get(doc, name);
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    const char *sub[] = {"stats", "counters", NULL};
    for (int i = 0; sub[i]; i++) {
        json_t *o = json_object_get(doc, sub[i]);
        v = json_object_get(o, name);
        if (json_is_integer(v))
            return (long)json_integer_value(v);
    }
    return -1;
}

long h_mock_stat(const char *name)
{
    /* /_mock/requests first: tests count connections, and each GET here
     * opens one of its own. */
    const char *paths[] = {"/_mock/requests", "/_mock/stats", "/_mock/health",
                           NULL};
    for (int i = 0; paths[i]; i++) {
        json_t *doc = mock_get_json(paths[i]);
        long v = stat_in(doc, name);
        json_decref(doc);
        if (v >= 0)
            return v;
    }
    return -1;
}

int h_mock_script_raw(json_t *raw, int delay_ms)
{
    json_t *rules = json_pack("{s:[{s:{s:o,s:i}}]}", "rules", "stream", "raw",
                              raw, "delay_ms", delay_ms);
    char *txt = rules ? json_dumps(rules, JSON_COMPACT) : NULL;
    int rc = txt ? h_mock_script(txt) : -1;
    free(txt);
    json_decref(rules);
    return rc;
}

const char *h_mock_wait_outcome(const char *want, long limit_ms)
{
    static char last[32];
    double t0 = h_now_ms();
    snprintf(last, sizeof last, "(no record)");
    while (h_now_ms() - t0 < limit_ms) {
        json_t *reqs = h_mock_requests();
        const char *o = h_rec_str(json_array_get(reqs, 0), "outcome");
        if (o)
            snprintf(last, sizeof last, "%s", o);
        json_decref(reqs);
        if (!strcmp(last, want))
            break;
        h_sleep_ms(50);
    }
    return last;
}

const char *h_rec_str(json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

const char *h_rec_header(json_t *rec, const char *name)
{
    json_t *hs = json_object_get(rec, "headers");
    if (json_is_object(hs)) {
        const char *k;
        json_t *v;
        json_object_foreach(hs, k, v)
        {
            if (strcasecmp(k, name) == 0) {
                if (json_is_array(v))
                    v = json_array_get(v, 0);
                return json_string_value(v);
            }
        }
    } else if (json_is_array(hs)) {
        size_t i;
        json_t *h;
        json_array_foreach(hs, i, h)
        {
            const char *k = NULL, *v = NULL;
            if (json_is_array(h)) {
                k = json_string_value(json_array_get(h, 0));
                v = json_string_value(json_array_get(h, 1));
            } else if (json_is_object(h)) {
                k = json_string_value(json_object_get(h, "name"));
                v = json_string_value(json_object_get(h, "value"));
            }
            if (k && strcasecmp(k, name) == 0)
                return v;
        }
    }
    return NULL;
}

const char *h_rec_body(json_t *rec, size_t *len)
{
    json_t *b = json_object_get(rec, "body");
    if (json_is_string(b)) {
        *len = json_string_length(b);
        return json_string_value(b);
    }
    if (b && !json_is_null(b)) {
        /* A mock that stores the body parsed: keep a compact dump alive in
         * the record (byte comparison then needs a compact client body). */
        char *d = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!d)
            return NULL;
        json_object_set_new(rec, "_body_dump", json_string(d));
        free(d);
        b = json_object_get(rec, "_body_dump");
        *len = json_string_length(b);
        return json_string_value(b);
    }
    *len = 0;
    return NULL;
}

json_t *h_assert_openai_error(json_t *doc, const char *what)
{
    ck_assert_msg(json_is_object(doc), "%s: body is not a JSON object", what);
    json_t *err = json_object_get(doc, "error");
    ck_assert_msg(json_is_object(err), "%s: no \"error\" object", what);
    ck_assert_msg(json_is_string(json_object_get(err, "message")) &&
                      json_string_length(json_object_get(err, "message")) > 0,
                  "%s: error.message missing or empty", what);
    ck_assert_msg(json_is_string(json_object_get(err, "type")),
                  "%s: error.type missing", what);
    ck_assert_msg(json_object_get(err, "param") != NULL,
                  "%s: error.param key missing", what);
    ck_assert_msg(json_object_get(err, "code") != NULL,
                  "%s: error.code key missing", what);
    return err;
}

char *h_metrics_scrape(void)
{
    h_resp r;
    h_get("/metrics", &r);
    ck_assert_msg(r.status == 200, "/metrics: %ld", r.status);
    const char *ct = h_resp_header(&r, "content-type");
    ck_assert_msg(ct && !strncmp(ct, "text/plain; version=0.0.4", 25),
                  "/metrics content-type %s", ct ? ct : "(none)");
    char *body = strdup(r.body ? r.body : "");
    h_resp_free(&r);
    return body;
}

double h_metrics_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, series, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return -1;
}
