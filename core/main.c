/*
 * main.c - the sluice executable: parse the command line, load and check
 * the pipeline, start the workers, and turn signals into shutdown.
 *
 *   sluice -c FILE            run the gateway
 *   sluice --check -c FILE    load every stage, run every init, report, exit
 */
#include "admin.h"
#include "config.h"
#include "core_metrics.h"
#include "healthcheck.h"
#include "http.h"
#include "log.h"
#include "pipeline.h"
#include "probe.h"
#include "reload.h"
#include "server.h"
#include "state.h"
#include "timer.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The state layer: in memory only for --check (nothing is written). */
static int state_start(const struct config *cfg, int check, char *err,
                       size_t errlen)
{
    char inst[128], host[64] = "sluice";
    if (cfg->state.instance)
        snprintf(inst, sizeof inst, "%s", cfg->state.instance);
    else { /* the pid too: instances on one host may share a port (port 0,
              SO_REUSEPORT), and a fleet drops changes signed with its own
              name as echoes */
        gethostname(host, sizeof host - 1);
        snprintf(inst, sizeof inst, "%s:%d/%ld", host, cfg->port,
                 (long)getpid());
    }
    return state_open(check ? NULL : &cfg->state, inst, err, errlen);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice [-c FILE] [--check | --health] [--version]\n"
            "  -c, --config FILE  pipeline file (default "
            "pipelines/default.yaml)\n"
            "      --check        load and validate the pipeline, then exit\n"
            "      --health       ask the sluice listening where FILE says "
            "for\n"
            "                     GET /health; exit 0 when it answers 200\n"
            "  -v, --version      print the version\n");
}

/* Read the admin token (first line, trimmed). NULL when not configured;
 * -1 when configured but unusable. */
static int admin_token_read(const char *path, char **out, char *err,
                            size_t errlen)
{
    char line[512];
    struct stat st;
    *out = NULL;
    if (!path || !*path)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0; /* not configured: admin API off */
        snprintf(err, errlen, "admin.token_file %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        log_warn("admin.token_file %s is readable by group or others: "
                 "chmod 600 it",
                 path);
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    size_t n = strcspn(line, "\r\n");
    line[n] = '\0';
    char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    if (n < 16) {
        snprintf(err, errlen,
                 "admin.token_file %s: the token must be at least 16 "
                 "characters",
                 path);
        return -1;
    }
    *out = strdup(s);
    return *out ? 0 : -1;
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            /* logrotate renamed the file: the writer thread reopens it
             * (the line below is the new file's first) */
            log_reopen();
            if (server_main && server_main->cfg->log_file)
                log_info("SIGUSR1: log file reopened");
            else
                log_info("SIGUSR1: no log.file configured; ignored");
            continue;
        }
        if (sig == SIGHUP) {
            buf_t out;
            buf_init(&out);
            log_info("SIGHUP: reloading the pipeline");
            reload_run(NULL, 1, &out);
            buf_release(&out);
            continue;
        }
        return sig;
    }
}

static void block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    const char *file = "pipelines/default.yaml";
    int check = 0, health = 0, rc = 1;
    char err[1024];
    struct config *cfg = NULL;
    struct generation *gen = NULL;
    struct server srv = {0};

    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) &&
            i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "--check")) {
            check = 1;
        } else if (!strcmp(argv[i], "--health")) {
            health = 1;
        } else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--version")) {
            printf("sluice %s (plugin ABI %d.%d)\n", SLUICE_VERSION,
                   SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
            return 0;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sluice: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    block_signals();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (config_load(file, &cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        goto out;
    }
    if (health) { /* a container HEALTHCHECK: nothing else is started */
        rc = healthcheck_run(cfg, err, sizeof err) == 0 ? 0 : 1;
        fprintf(rc ? stderr : stdout, "%s\n", err);
        goto out;
    }
    log_set_level(log_level_parse(cfg->log_level) >= 0
                      ? log_level_parse(cfg->log_level)
                      : LOG_INFO);
    if (cfg->log_format && !strcmp(cfg->log_format, "json"))
        log_set_pretty(0);
    else if (cfg->log_format && !strcmp(cfg->log_format, "text"))
        log_set_pretty(1);
    core_metrics_init();
    srv.cfg = cfg;
    srv.start_ms = time_now_ms();
    srv.start_wall_ms = time_wall_ms();
    server_main = &srv;

    if (state_start(cfg, check, err, sizeof err) != 0) {
        log_error("%s", err);
        goto out;
    }
    gen = generation_build(cfg, err, sizeof err);
    if (!gen) {
        log_error("%s", err);
        goto out;
    }
    if (check) {
        printf("%s: OK (%zu stages)\n", file, gen->nstages);
        generation_unpin(gen);
        rc = 0;
        goto out;
    }
    if (admin_token_read(cfg->admin_token_file, &srv.admin_token, err,
                         sizeof err) != 0) {
        log_error("%s", err);
        generation_unpin(gen);
        goto out;
    }
    if (log_start(cfg->log_file, err, sizeof err) != 0) {
        log_error("%s", err);
        generation_unpin(gen);
        goto out;
    }
    if (!srv.admin_token)
        log_info("no admin token configured (admin.token_file): the admin "
                 "API is off");
    for (size_t i = 0; i < json_array_size(cfg->upstreams); i++) {
        const json_t *u = json_array_get(cfg->upstreams, i);
        if (json_is_false(json_object_get(u, "verify")) ||
            (!json_object_get(u, "verify") && !cfg->tls.verify))
            log_warn("upstream.verify is false for upstream '%s': its TLS "
                     "certificate and host name are not checked (%s); anyone "
                     "on the path can read the requests and the upstream keys",
                     json_string_value(json_object_get(u, "name")),
                     json_string_value(json_object_get(u, "base_url")));
    }
    if (gen->nstages == 0 || !generation_find(gen, "auth"))
        log_warn("no auth stage in the pipeline: any client that reaches "
                 "this port can use the upstream keys");
    if (cfg->passthrough)
        log_msg(LOG_INFO, "core",
                "passthrough: other /v1/ paths (files, batches, ...) go to "
                "%s unchanged, with a key from the pool (route "
                "\"passthrough\" in the metrics and the access log)",
                cfg->base_url);
    generation_publish(gen);
    generation_reaper_start();
    if (server_start(&srv, err, sizeof err) != 0) {
        log_error("%s", err);
        generation_retire_current();
        generation_reaper_stop();
        goto out;
    }
    log_fields(LOG_INFO, "core", NULL, "sluice %s ready", SLUICE_VERSION);
    {
        char fields[256];
        snprintf(fields, sizeof fields,
                 "\"host\":\"%s\",\"port\":%d,\"workers\":%d,"
                 "\"generation\":%llu",
                 cfg->host, srv.port, srv.nworkers,
                 (unsigned long long)gen->id);
        log_fields(LOG_INFO, "core", fields, "listening");
    }
    if (cfg->admin_listen) {
        char fields[96];
        snprintf(fields, sizeof fields, "\"admin_port\":%d", srv.admin_port);
        log_fields(LOG_INFO, "core", fields,
                   "admin API on %s only (not on the main port)",
                   cfg->admin_listen);
    }
    int sig = wait_for_signal();
    log_info("signal %d: draining and stopping", sig);
    admin_wait_jobs();
    server_stop(&srv, 1);
    generation_retire_current();
    generation_reaper_stop();
    probe_shutdown();
    rc = 0;
out:
    state_close(); /* writes what is pending */
    log_stop();
    free(srv.admin_token);
    config_free(cfg);
    curl_global_cleanup();
    server_main = NULL;
    return rc;
}
