/*
 * test_config.c - the pipeline file: good files and defaults, every kind of
 * bad one (each message must name the file, the line and the field),
 * ${VAR} expansion, and the seed's environment overrides.
 */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in '%s'",    \
                  (needle), (hay))
#define ck_assert_hasnt(hay, needle)                                           \
    ck_assert_msg(strstr((hay), (needle)) == NULL,                             \
                  "did not expect '%s' in '%s'", (needle), (hay))

static const char *const env_vars[] = {"HOST",
                                       "PORT",
                                       "MEGALLM_BASE_URL",
                                       "MEGALLM_TIMEOUT",
                                       "LOG_LEVEL",
                                       "MEGALLM_MAX_RETRIES",
                                       "MAX_KEY_RETRIES",
                                       "SLUICE_T_A",
                                       "SLUICE_T_B",
                                       NULL};

/* Every test starts with none of the override variables set. */
static void clear_env(void)
{
    for (size_t i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
}

static struct config *load_ok(const char *yaml)
{
    char err[512] = "";
    struct config *cfg = NULL;
    int rc =
        config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof err);

    ck_assert_msg(rc == 0, "unexpected error: %s", err);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* Expect a load error starting with `prefix` ("t.yaml:3: server.port: ")
 * and containing `detail`. */
static void load_bad(const char *yaml, const char *prefix, const char *detail)
{
    char err[512] = "";
    struct config *cfg = (struct config *)1;
    int rc =
        config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof err);

    ck_assert_int_eq(rc, -1);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(!strncmp(err, prefix, strlen(prefix)),
                  "expected '%s' to start with '%s'", err, prefix);
    ck_assert_has(err, detail);
}

/* ---- good files -------------------------------------------------------- */

static const char full_yaml[] =
    "# the production shape\n"                  /* 1 */
    "server:\n"                                 /* 2 */
    "  host: 127.0.0.1\n"                       /* 3 */
    "  port: 8081\n"                            /* 4 */
    "  threads: 4\n"                            /* 5 */
    "  max_body_bytes: 65536\n"                 /* 6 */
    "upstream:\n"                               /* 7 */
    "  base_url: https://api.example.com/v1/\n" /* 8 */
    "  timeout_s: 0.5\n"                        /* 9 */
    "  connect_timeout_s: 3\n"                  /* 10 */
    "  max_connections: 64\n"                   /* 11 */
    "admin:\n"                                  /* 12 */
    "  token_file: data/admin.token\n"          /* 13 */
    "  listen: \"127.0.0.1:9001\"\n"            /* 14 */
    "log:\n"                                    /* 15 */
    "  level: debug\n"                          /* 16 */
    "  file: logs/app.log\n"                    /* 17 */
    "  format: JSON\n"                          /* 18 */
    "plugins_dir: out/plugins/\n"               /* 19 */
    "models:\n"                                 /* 20 */
    "  - id: openai-gpt-oss-20b\n"              /* 21 */
    "    context_length: \"128000\"\n"          /* 22 */
    "    owned_by: openai\n"                    /* 23 */
    "pipeline:\n"                               /* 24 */
    "  - plugin: keyring\n"                     /* 25 */
    "    config:\n"                             /* 26 */
    "      keys_file: data/keys.txt\n"          /* 27 */
    "      cooldown_s: 30\n"                    /* 28 */
    "  - plugin: retry\n"                       /* 29 */
    "    name: retry-outer\n"                   /* 30 */
    "    path: /opt/sluice/retry.so\n";         /* 31 */

START_TEST(test_full_shape)
{
    struct config *cfg = load_ok(full_yaml);
    const json_t *m;

    ck_assert_str_eq(cfg->file, "t.yaml");
    ck_assert_str_eq(cfg->host, "127.0.0.1");
    ck_assert_int_eq(cfg->port, 8081);
    ck_assert_int_eq(cfg->threads, 4);
    ck_assert_uint_eq(cfg->max_body_bytes, 65536);
    ck_assert_str_eq(cfg->base_url, "https://api.example.com/v1");
    ck_assert_int_eq(cfg->timeout_ms, 500);
    ck_assert_int_eq(cfg->connect_timeout_ms, 3000);
    ck_assert_int_eq(cfg->max_connections, 64);
    ck_assert_str_eq(cfg->admin_token_file, "data/admin.token");
    ck_assert_str_eq(cfg->admin_listen, "127.0.0.1:9001");
    ck_assert_str_eq(cfg->log_level, "DEBUG");
    ck_assert_str_eq(cfg->log_file, "logs/app.log");
    ck_assert_str_eq(cfg->log_format, "json");
    ck_assert_str_eq(cfg->plugins_dir, "out/plugins");

    ck_assert_uint_eq(json_array_size(cfg->models), 1);
    m = json_array_get(cfg->models, 0);
    ck_assert_str_eq(json_string_value(json_object_get(m, "id")),
                     "openai-gpt-oss-20b");
    ck_assert(json_is_integer(json_object_get(m, "context_length")));
    ck_assert_int_eq(json_integer_value(json_object_get(m, "context_length")),
                     128000);
    ck_assert_str_eq(json_string_value(json_object_get(m, "owned_by")),
                     "openai");

    ck_assert_uint_eq(cfg->nstages, 2);
    ck_assert_str_eq(cfg->stages[0].name, "keyring");
    ck_assert_str_eq(cfg->stages[0].plugin, "keyring");
    ck_assert_str_eq(cfg->stages[0].path, "out/plugins/keyring.so");
    ck_assert_int_eq(cfg->stages[0].line, 25);
    ck_assert_str_eq(
        json_string_value(json_object_get(cfg->stages[0].config, "keys_file")),
        "data/keys.txt");
    ck_assert_int_eq(json_integer_value(
                         json_object_get(cfg->stages[0].config, "cooldown_s")),
                     30);
    ck_assert_str_eq(cfg->stages[1].name, "retry-outer");
    ck_assert_str_eq(cfg->stages[1].plugin, "retry");
    ck_assert_str_eq(cfg->stages[1].path, "/opt/sluice/retry.so");
    ck_assert_int_eq(cfg->stages[1].line, 29);
    ck_assert(json_is_object(cfg->stages[1].config));
    ck_assert_uint_eq(json_object_size(cfg->stages[1].config), 0);

    ck_assert(json_is_object(cfg->root));
    ck_assert_ptr_nonnull(json_object_get(cfg->root, "pipeline"));
    config_free(cfg);
}
END_TEST

static void assert_defaults(const struct config *cfg)
{
    ck_assert_str_eq(cfg->host, "0.0.0.0");
    ck_assert_int_eq(cfg->port, 8000);
    ck_assert_int_eq(cfg->threads, 0);
    ck_assert_uint_eq(cfg->max_body_bytes, 4u << 20);
    ck_assert_str_eq(cfg->base_url, "https://ai.megallm.io/v1");
    ck_assert_int_eq(cfg->timeout_ms, 120000);
    ck_assert_int_eq(cfg->connect_timeout_ms, 10000);
    ck_assert_int_eq(cfg->max_connections, 256);
    ck_assert_ptr_null(cfg->admin_token_file);
    ck_assert_ptr_null(cfg->admin_listen);
    ck_assert_str_eq(cfg->log_level, "INFO");
    ck_assert_ptr_null(cfg->log_file);
    ck_assert_str_eq(cfg->log_format, "auto");
    ck_assert_str_eq(cfg->plugins_dir, "build/plugins");
    ck_assert_uint_eq(cfg->nstages, 0);
    ck_assert_ptr_null(cfg->models);
}

START_TEST(test_minimal_defaults)
{
    struct config *cfg = load_ok("{}\n");

    assert_defaults(cfg);
    config_free(cfg);
    cfg = load_ok("# nothing but empty sections\nserver:\nupstream: {}\n"
                  "pipeline: []\nmodels:\n");
    assert_defaults(cfg);
    config_free(cfg);
}
END_TEST

START_TEST(test_default_plugin_path)
{
    struct config *cfg = load_ok("pipeline:\n  - plugin: sse\n");

    ck_assert_uint_eq(cfg->nstages, 1);
    ck_assert_str_eq(cfg->stages[0].name, "sse");
    ck_assert_str_eq(cfg->stages[0].path, "build/plugins/sse.so");
    ck_assert_uint_eq(json_object_size(cfg->stages[0].config), 0);
    config_free(cfg);
}
END_TEST

START_TEST(test_scalar_typing)
{
    struct config *cfg = load_ok("pipeline:\n"
                                 "  - plugin: x\n"
                                 "    config:\n"
                                 "      i: 42\n"
                                 "      neg: -7\n"
                                 "      r: 2.5\n"
                                 "      e: 1e3\n"
                                 "      t: true\n"
                                 "      f: False\n"
                                 "      n: ~\n"
                                 "      n2: null\n"
                                 "      s: hello world\n"
                                 "      q: \"42\"\n"
                                 "      sq: 'true'\n"
                                 "      ver: 1.2.3\n"
                                 "      list: [1, two]\n");
    const json_t *c = cfg->stages[0].config;

    ck_assert_int_eq(json_integer_value(json_object_get(c, "i")), 42);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "neg")), -7);
    ck_assert(json_is_real(json_object_get(c, "r")));
    ck_assert(json_real_value(json_object_get(c, "r")) == 2.5);
    ck_assert(json_real_value(json_object_get(c, "e")) == 1000.0);
    ck_assert(json_is_true(json_object_get(c, "t")));
    ck_assert(json_is_false(json_object_get(c, "f")));
    ck_assert(json_is_null(json_object_get(c, "n")));
    ck_assert(json_is_null(json_object_get(c, "n2")));
    ck_assert_str_eq(json_string_value(json_object_get(c, "s")), "hello world");
    ck_assert_str_eq(json_string_value(json_object_get(c, "q")), "42");
    ck_assert_str_eq(json_string_value(json_object_get(c, "sq")), "true");
    ck_assert_str_eq(json_string_value(json_object_get(c, "ver")), "1.2.3");
    ck_assert_uint_eq(json_array_size(json_object_get(c, "list")), 2);
    config_free(cfg);
}
END_TEST

START_TEST(test_numeric_strings_accepted)
{
    struct config *cfg = load_ok("server:\n  port: \"8080\"\n"
                                 "upstream:\n  timeout_s: '2.5'\n");

    ck_assert_int_eq(cfg->port, 8080);
    ck_assert_int_eq(cfg->timeout_ms, 2500);
    config_free(cfg);
}
END_TEST

START_TEST(test_port_zero_ok)
{
    struct config *cfg = load_ok("server:\n  port: 0\n");

    ck_assert_int_eq(cfg->port, 0);
    config_free(cfg);
}
END_TEST

/* ---- bad files --------------------------------------------------------- */

START_TEST(test_yaml_syntax_error)
{
    load_bad("server:\n  port: 1\n bad: 2\n",
             "t.yaml:3: YAML error: ", "did not find expected key");
    load_bad("server:\n  port: [1, 2\nupstream: {}\n",
             "t.yaml:3: YAML error: ", "flow sequence started at line 2");
    load_bad("a: b: c\n", "t.yaml:1: YAML error: ", "mapping values");
}
END_TEST

START_TEST(test_empty_and_not_mapping)
{
    load_bad("", "t.yaml:1: ", "empty");
    load_bad("# just a comment\n", "t.yaml:1: ", "empty");
    load_bad("- a\n- b\n", "t.yaml:1: ", "expected a mapping at the top level");
    load_bad("just a string\n", "t.yaml:1: ", "got 'just a string'");
    load_bad("a: 1\n---\nb: 2\n", "t.yaml:2: ", "more than one YAML document");
}
END_TEST

START_TEST(test_unknown_top_level_key)
{
    load_bad("server: {}\nserverr:\n  port: 1\n",
             "t.yaml:2: serverr: unknown top-level key",
             "(valid keys: server, upstream, upstreams, routes, admin, log, "
             "docs, plugins_dir, models, pipeline, state, passthrough)");
}
END_TEST

START_TEST(test_unknown_section_keys)
{
    load_bad("server:\n  host: a\n  prot: 80\n",
             "t.yaml:3: server.prot: unknown key", "port");
    load_bad("upstream:\n  base_ulr: http://x\n",
             "t.yaml:2: upstream.base_ulr: unknown key", "base_url");
    load_bad("admin:\n  tokenfile: x\n",
             "t.yaml:2: admin.tokenfile: ", "unknown key");
    load_bad("log:\n  lvl: INFO\n", "t.yaml:2: log.lvl: ", "unknown key");
    load_bad("pipeline:\n  - plugin: a\n    confg: {}\n",
             "t.yaml:3: pipeline[0].confg: ", "unknown key");
}
END_TEST

START_TEST(test_bad_port)
{
    load_bad("server:\n  port: abc\n", "t.yaml:2: server.port: ",
             "expected an integer 0..65535, got 'abc'");
    load_bad("# c\nserver:\n  host: x\n  port: 70000\n",
             "t.yaml:4: server.port: ", "got 70000");
    load_bad("server:\n  port: -1\n", "t.yaml:2: server.port: ", "got -1");
    load_bad("server:\n  port: 80.5\n", "t.yaml:2: server.port: ", "got 80.5");
    load_bad("server:\n  port: [80]\n",
             "t.yaml:2: server.port: ", "got a list");
}
END_TEST

START_TEST(test_bad_ranges)
{
    load_bad("server:\n  threads: 300\n",
             "t.yaml:2: server.threads: ", "0..256");
    load_bad("server:\n  max_body_bytes: 100\n",
             "t.yaml:2: server.max_body_bytes: ", "1024..1073741824");
    load_bad("upstream:\n  max_connections: 0\n",
             "t.yaml:2: upstream.max_connections: ", "got 0");
    load_bad("server:\n  host: \"\"\n",
             "t.yaml:2: server.host: ", "non-empty string");
    load_bad("admin:\n  listen: localhost\n",
             "t.yaml:2: admin.listen: ", "host:port");
}
END_TEST

START_TEST(test_bad_base_url)
{
    load_bad("upstream:\n  base_url: ftp://example.com\n",
             "t.yaml:2: upstream.base_url: ",
             "expected an http:// or https:// URL, got 'ftp://example.com'");
    load_bad("upstream:\n  base_url: https://\n", "t.yaml:2: ", "URL");
    load_bad("upstream:\n  base_url: \"http://a b\"\n", "t.yaml:2: ", "URL");
    load_bad("upstream:\n  base_url: 42\n", "t.yaml:2: ", "got 42");
}
END_TEST

START_TEST(test_bad_timeout)
{
    load_bad("upstream:\n  timeout_s: 0\n", "t.yaml:2: upstream.timeout_s: ",
             "expected a number of seconds > 0");
    load_bad("upstream:\n  timeout_s: -3\n",
             "t.yaml:2: upstream.timeout_s: ", "got -3");
    load_bad("upstream:\n  timeout_s: soon\n",
             "t.yaml:2: upstream.timeout_s: ", "got 'soon'");
    load_bad("upstream:\n  connect_timeout_s: 0.0001\n",
             "t.yaml:2: upstream.connect_timeout_s: ", "seconds");
}
END_TEST

START_TEST(test_upstream_client)
{
    load_bad("upstream:\n  client: libcurl\n",
             "t.yaml:2: upstream.client: ", "one of auto, curl, got 'libcurl'");
    struct config *cfg = load_ok("{}\n");
    ck_assert_str_eq(cfg->upstream_client, "auto");
    config_free(cfg);
    cfg = load_ok("upstream:\n  client: CURL\n");
    ck_assert_str_eq(cfg->upstream_client, "curl");
    config_free(cfg);
}
END_TEST

START_TEST(test_bad_log)
{
    load_bad("log:\n  level: LOUD\n", "t.yaml:2: log.level: ",
             "one of DEBUG, INFO, WARNING, WARN, ERROR, got 'LOUD'");
    load_bad("log:\n  format: xml\n",
             "t.yaml:2: log.format: ", "one of auto, json, text");
}
END_TEST

START_TEST(test_pipeline_without_plugin)
{
    load_bad("pipeline:\n  - plugin: a\n  - name: x\n    config: {}\n",
             "t.yaml:3: pipeline[1]: ", "missing 'plugin:'");
    load_bad("pipeline:\n  - just-a-string\n",
             "t.yaml:2: pipeline[0]: ", "expected a mapping");
    load_bad("pipeline:\n  plugin: a\n", "t.yaml:1: pipeline: ",
             "expected a list of stages, got a mapping");
}
END_TEST

START_TEST(test_duplicate_stage_names)
{
    load_bad("pipeline:\n  - plugin: keyring\n  - plugin: keyring\n",
             "t.yaml:3: pipeline[1]: ",
             "duplicate stage name 'keyring' (pipeline[0], line 2");
    load_bad("pipeline:\n  - plugin: a\n    name: x\n  - plugin: b\n"
             "    name: x\n",
             "t.yaml:5: pipeline[1].name: ", "duplicate stage name 'x'");
}
END_TEST

START_TEST(test_stage_routes_and_cors)
{
    struct config *cfg = load_ok(
        "server:\n  cors:\n    allow_origins: [\"http://a.example\"]\n"
        "    allow_headers: [Authorization, Content-Type]\n"
        "    max_age: 60\n"
        "pipeline:\n  - plugin: context\n    routes: [chat, embeddings]\n");
    ck_assert_uint_eq(json_array_size(cfg->stages[0].routes), 2);
    ck_assert_str_eq(cfg->cors_headers, "Authorization, Content-Type");
    ck_assert_int_eq(cfg->cors_max_age, 60);
    config_free(cfg);
    cfg = load_ok("pipeline:\n  - plugin: sse\n");
    ck_assert_ptr_null(cfg->cors_origins); /* off by default */
    ck_assert_ptr_null(cfg->stages[0].routes);
    config_free(cfg);
    load_bad("pipeline:\n  - plugin: a\n    routes: [chat, audio]\n",
             "t.yaml:2: pipeline[0]: ", "unknown route 'audio'");
    load_bad("pipeline:\n  - plugin: a\n    routes: chat\n",
             "t.yaml:3: pipeline[0].routes: ", "a list of route names");
    load_bad("upstream:\n  forward_headers: [OpenAI-Beta, Authorization]\n"
             "pipeline:\n  - plugin: a\n",
             "t.yaml:2: upstream.forward_headers: ", "never passed upstream");
    load_bad("upstream:\n  add_headers: { Host: x }\npipeline:\n"
             "  - plugin: a\n",
             "t.yaml:2: upstream.add_headers: ", "never passed upstream");
    cfg = load_ok("upstream:\n  forward_headers: []\n  add_headers: "
                  "{ X-A: b }\npipeline:\n  - plugin: sse\n");
    ck_assert_uint_eq(json_array_size(cfg->headers.forward), 0);
    ck_assert_str_eq(
        json_string_value(json_object_get(cfg->headers.add, "X-A")), "b");
    config_free(cfg);
    load_bad("passthrough: maybe\npipeline:\n  - plugin: a\n",
             "t.yaml:1: passthrough: ", "true or false");
    cfg = load_ok("passthrough: true\npipeline:\n  - plugin: sse\n");
    ck_assert_int_eq(cfg->passthrough, 1);
    config_free(cfg);
    load_bad("server:\n  cors: {max_age: 5}\npipeline:\n  - plugin: a\n",
             "t.yaml:2: server.cors: ", "missing 'allow_origins:'");
    load_bad("server:\n  cors: {allow_origins: [\"*\"], origins: 1}\n"
             "pipeline:\n  - plugin: a\n",
             "t.yaml:2: server.cors.origins: ", "unknown key");
}
END_TEST

START_TEST(test_same_plugin_twice_named)
{
    struct config *cfg = load_ok("pipeline:\n  - plugin: retry\n"
                                 "  - plugin: retry\n    name: retry2\n");

    ck_assert_uint_eq(cfg->nstages, 2);
    ck_assert_str_eq(cfg->stages[1].name, "retry2");
    ck_assert_str_eq(cfg->stages[1].path, "build/plugins/retry.so");
    config_free(cfg);
}
END_TEST

START_TEST(test_config_not_mapping)
{
    load_bad(
        "pipeline:\n  - plugin: keyring\n    config: [a, b]\n",
        "t.yaml:3: pipeline[0].config: ", "expected a mapping, got a list");
    load_bad("pipeline:\n  - plugin: keyring\n    config: keys.txt\n",
             "t.yaml:3: pipeline[0].config: ", "got 'keys.txt'");
}
END_TEST

START_TEST(test_bad_plugin_name)
{
    load_bad("pipeline:\n  - plugin: Key Ring\n",
             "t.yaml:2: pipeline[0].plugin: ", "[a-z0-9_-], got 'Key Ring'");
    load_bad("pipeline:\n  - plugin: ../evil\n",
             "t.yaml:2: pipeline[0].plugin: ", "got '../evil'");
    load_bad("pipeline:\n  - plugin: a\n    name: \"A/B\"\n",
             "t.yaml:3: pipeline[0].name: ", "got 'A/B'");
    load_bad("pipeline:\n  - plugin: 5\n",
             "t.yaml:2: pipeline[0].plugin: ", "got 5");
}
END_TEST

START_TEST(test_duplicate_keys)
{
    load_bad("server:\n  port: 1\n  host: h\n  port: 2\n",
             "t.yaml:4: server.port: ", "duplicate key 'port'");
    load_bad("server: {}\nlog: {}\nserver: {}\n",
             "t.yaml:3: server: ", "duplicate key 'server'");
}
END_TEST

START_TEST(test_anchors_rejected)
{
    load_bad("a: &x 1\nb: *x\n", "t.yaml:1: a: ", "anchors");
    load_bad("server: !!map {}\npipeline: !custom []\n",
             "t.yaml:2: pipeline: ", "YAML tag !custom is not supported");
}
END_TEST

START_TEST(test_bad_models)
{
    load_bad("models:\n  - id: a\n    context_length: 0\n",
             "t.yaml:3: models[0].context_length: ", "an integer >= 1");
    load_bad("models:\n  - context_length: 5\n",
             "t.yaml:2: models[0]: ", "missing 'id:'");
    load_bad("models:\n  - id: a\n",
             "t.yaml:2: models[0]: ", "missing 'context_length:'");
    load_bad("models:\n  - id: a\n    context_length: 1\n  - id: a\n"
             "    context_length: 2\n",
             "t.yaml:4: models[1].id: ", "duplicate model id 'a'");
    load_bad("models: gpt\n", "t.yaml:1: models: ", "expected a list");
}
END_TEST

START_TEST(test_secrets_not_echoed)
{
    char err[512];
    struct config *cfg;
    const char *yaml = "admin:\n  token_file: [sk-secret-value]\n";

    load_bad("admin:\n  token_file: 12345678\n",
             "t.yaml:2: admin.token_file: ", "(value hidden)");
    ck_assert_int_eq(
        config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof err),
        -1);
    ck_assert_hasnt(err, "sk-secret");
    yaml = "pipeline:\n  - plugin: keyring\n    config: {api_key: 1}\n"
           "    path: \"\"\n";
    ck_assert_int_eq(
        config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof err),
        -1);
    ck_assert_has(err, "t.yaml:4: pipeline[0].path: ");
}
END_TEST

/* ---- files ------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_load_file)
{
    char path[] = "/tmp/sluice-test-config-XXXXXX";
    char err[512] = "", prefix[128];
    struct config *cfg = NULL;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    write_file(path, "server:\n  port: 9000\npipeline:\n  - plugin: sse\n");
    ck_assert_msg(config_load(path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(cfg->file, path);
    ck_assert_int_eq(cfg->port, 9000);
    ck_assert_uint_eq(cfg->nstages, 1);
    config_free(cfg);

    write_file(path, "server:\n  host: h\n  port: 99999\n");
    ck_assert_int_eq(config_load(path, &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    snprintf(prefix, sizeof prefix, "%s:3: server.port: ", path);
    ck_assert_msg(!strncmp(err, prefix, strlen(prefix)), "got '%s'", err);
    unlink(path);
}
END_TEST

START_TEST(test_missing_file)
{
    char err[512] = "";
    struct config *cfg = (struct config *)1;

    ck_assert_int_eq(config_load("no/such/dir/x.yaml", &cfg, err, sizeof err),
                     -1);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, "no/such/dir/x.yaml: no such file");
}
END_TEST

/* ---- ${VAR} expansion -------------------------------------------------- */

static void expand_is(const char *in, const char *want)
{
    char err[256] = "";
    char *out = config_expand_env(in, err, sizeof err);

    ck_assert_msg(out != NULL, "expand '%s' failed: %s", in, err);
    ck_assert_str_eq(out, want);
    free(out);
}

static void expand_fails(const char *in, const char *detail)
{
    char err[256] = "";
    char *out = config_expand_env(in, err, sizeof err);

    ck_assert_msg(out == NULL, "expand '%s' gave '%s'", in, out);
    ck_assert_has(err, detail);
}

START_TEST(test_expand_env)
{
    setenv("SLUICE_T_A", "alpha", 1);
    setenv("SLUICE_T_B", "", 1);
    expand_is("", "");
    expand_is("plain", "plain");
    expand_is("${SLUICE_T_A}", "alpha");
    expand_is("x-${SLUICE_T_A}-y", "x-alpha-y");
    expand_is("${SLUICE_T_UNSET}", "");
    expand_is("${SLUICE_T_B}", "");
    expand_is("${SLUICE_T_A:-d}", "alpha");
    expand_is("${SLUICE_T_UNSET:-8000}", "8000");
    expand_is("${SLUICE_T_B:-empty}", "empty");
    expand_is("${SLUICE_T_UNSET:-}", "");
    expand_is("${SLUICE_T_UNSET:-https://a/v1}", "https://a/v1");
    expand_is("$$", "$");
    expand_is("cost: $$5 and $$${SLUICE_T_A}", "cost: $5 and $alpha");
    expand_is("a$b $", "a$b $");
    expand_is("${SLUICE_T_A}${SLUICE_T_A}", "alphaalpha");
}
END_TEST

START_TEST(test_expand_errors)
{
    expand_fails("${", "unterminated '${' at offset 0");
    expand_fails("abc${SLUICE_T_A", "unterminated '${' at offset 3");
    expand_fails("${SLUICE_T_A:-x", "unterminated '${' at offset 0");
    expand_fails("x${1A}", "bad variable name in '${' at offset 1");
    expand_fails("${}", "bad variable name");
    expand_fails("${A-x}", "bad character '-'");
}
END_TEST

START_TEST(test_expand_in_yaml)
{
    struct config *cfg;

    setenv("SLUICE_T_A", "9100", 1);
    cfg = load_ok("server:\n"
                  "  port: ${SLUICE_T_A}\n"
                  "  host: ${SLUICE_T_UNSET:-10.0.0.1}\n"
                  "upstream:\n"
                  "  timeout_s: \"${SLUICE_T_UNSET:-30}\"\n"
                  "pipeline:\n"
                  "  - plugin: x\n"
                  "    config:\n"
                  "      n: ${SLUICE_T_A}\n"
                  "      s: \"${SLUICE_T_A}\"\n"
                  "      price: $$5\n");
    ck_assert_int_eq(cfg->port, 9100);
    ck_assert_str_eq(cfg->host, "10.0.0.1");
    ck_assert_int_eq(cfg->timeout_ms, 30000);
    /* Unquoted: typed after expansion; quoted: stays a string. */
    ck_assert(json_is_integer(json_object_get(cfg->stages[0].config, "n")));
    ck_assert_str_eq(
        json_string_value(json_object_get(cfg->stages[0].config, "s")), "9100");
    ck_assert_str_eq(
        json_string_value(json_object_get(cfg->stages[0].config, "price")),
        "$5");
    ck_assert(json_is_integer(
        json_object_get(json_object_get(cfg->root, "server"), "port")));
    config_free(cfg);

    load_bad("server:\n  host: h\n  port: ${SLUICE_T_A\n",
             "t.yaml:3: server.port: ", "unterminated '${' at offset 0");
    load_bad("server:\n  port: \"${SLUICE_T_UNSET:-abc}\"\n",
             "t.yaml:2: server.port: ", "got 'abc'");
}
END_TEST

/* ---- environment overrides --------------------------------------------- */

static const char retry_yaml[] = "server:\n  port: 8000\n"
                                 "pipeline:\n"
                                 "  - plugin: keyring\n"
                                 "  - plugin: retry\n"
                                 "    config: {max_retries: 9}\n"
                                 "  - plugin: retry\n"
                                 "    name: retry2\n";

START_TEST(test_env_overrides)
{
    struct config *cfg;
    const json_t *c;

    setenv("HOST", "::1", 1);
    setenv("PORT", "9200", 1);
    setenv("MEGALLM_BASE_URL", "http://127.0.0.1:18080/v1/", 1);
    setenv("MEGALLM_TIMEOUT", "2.5", 1);
    setenv("LOG_LEVEL", "warning", 1);
    setenv("MEGALLM_MAX_RETRIES", "3", 1);
    setenv("MAX_KEY_RETRIES", "0", 1);
    cfg = load_ok(retry_yaml);
    ck_assert_str_eq(cfg->host, "::1");
    ck_assert_int_eq(cfg->port, 9200);
    ck_assert_str_eq(cfg->base_url, "http://127.0.0.1:18080/v1");
    ck_assert_int_eq(cfg->timeout_ms, 2500);
    ck_assert_str_eq(cfg->log_level, "WARNING");
    ck_assert_ptr_null(json_object_get(cfg->stages[0].config, "max_retries"));
    for (size_t i = 1; i < 3; i++) {
        c = cfg->stages[i].config;
        ck_assert(json_is_integer(json_object_get(c, "max_retries")));
        ck_assert_int_eq(json_integer_value(json_object_get(c, "max_retries")),
                         3);
        ck_assert_int_eq(
            json_integer_value(json_object_get(c, "max_key_switches")), 0);
    }
    config_free(cfg);
}
END_TEST

START_TEST(test_env_empty_ignored)
{
    struct config *cfg;

    setenv("PORT", "", 1);
    setenv("HOST", "", 1);
    setenv("MEGALLM_MAX_RETRIES", "", 1);
    cfg = load_ok(retry_yaml);
    ck_assert_int_eq(cfg->port, 8000);
    ck_assert_str_eq(cfg->host, "0.0.0.0");
    ck_assert_int_eq(json_integer_value(
                         json_object_get(cfg->stages[1].config, "max_retries")),
                     9);
    config_free(cfg);
}
END_TEST

static void env_bad(const char *var, const char *value, const char *detail)
{
    char err[512] = "", prefix[128];
    struct config *cfg = NULL;

    clear_env();
    setenv(var, value, 1);
    ck_assert_int_eq(config_load_string(retry_yaml, strlen(retry_yaml),
                                        "t.yaml", &cfg, err, sizeof err),
                     -1);
    ck_assert_ptr_null(cfg);
    snprintf(prefix, sizeof prefix, "environment variable %s: expected ", var);
    ck_assert_msg(!strncmp(err, prefix, strlen(prefix)),
                  "expected '%s' to start with '%s'", err, prefix);
    ck_assert_has(err, detail);
}

START_TEST(test_env_bad_values)
{
    env_bad("PORT", "abc", "an integer 0..65535, got 'abc'");
    env_bad("PORT", "65536", "got '65536'");
    env_bad("MEGALLM_BASE_URL", "ai.megallm.io", "http:// or https://");
    env_bad("MEGALLM_TIMEOUT", "0", "seconds > 0");
    env_bad("MEGALLM_TIMEOUT", "fast", "got 'fast'");
    env_bad("LOG_LEVEL", "LOUD", "one of DEBUG");
    env_bad("MEGALLM_MAX_RETRIES", "-1", "a non-negative integer, got '-1'");
    env_bad("MAX_KEY_RETRIES", "two", "a non-negative integer, got 'two'");
}
END_TEST

/* ---- docs: ------------------------------------------------------------- */

START_TEST(test_docs_section)
{
    struct config *cfg = load_ok("server: { port: 1 }\n");
    ck_assert_int_eq(cfg->docs_enabled, 1);
    ck_assert_ptr_null(cfg->docs_assets_url);
    config_free(cfg);

    cfg = load_ok("docs:\n  enabled: false\n"
                  "  assets_url: http://127.0.0.1:9000/assets/\n");
    ck_assert_int_eq(cfg->docs_enabled, 0);
    ck_assert_str_eq(cfg->docs_assets_url, "http://127.0.0.1:9000/assets");
    config_free(cfg);

    cfg = load_ok("docs: { enabled: \"true\", assets_url: /static/docs }\n");
    ck_assert_int_eq(cfg->docs_enabled, 1);
    ck_assert_str_eq(cfg->docs_assets_url, "/static/docs");
    config_free(cfg);
}
END_TEST

START_TEST(test_bad_docs)
{
    load_bad("docs:\n  enabled: maybe\n",
             "t.yaml:2: docs.enabled: ", "expected true or false, got 'maybe'");
    load_bad("docs:\n  assets_url: ftp://x/y\n", "t.yaml:2: docs.assets_url: ",
             "an http(s):// URL or an absolute path");
    load_bad("docs:\n  assets_url: 'http://x/\"><script>'\n",
             "t.yaml:2: docs.assets_url: ", "an http(s):// URL");
    load_bad("docs:\n  assets: /x\n", "t.yaml:2: docs.assets: ",
             "unknown key (valid keys: enabled, assets_url)");
    load_bad("docs: [1]\n", "t.yaml:1: docs: ", "expected a mapping");
}
END_TEST

START_TEST(test_state_section)
{
    struct config *cfg = load_ok("server: {}\n");
    ck_assert_str_eq(cfg->state.backend, "local");
    ck_assert_str_eq(cfg->state.path, "data/state.db");
    ck_assert_str_eq(cfg->state.prefix, "sluice:");
    ck_assert_int_eq(cfg->state.fail_closed, 0);
    config_free(cfg);
    cfg = load_ok("state:\n"
                  "  backend: Redis\n"
                  "  url: \"redis://127.0.0.1:6390/1\"\n"
                  "  password_file: data/redis.pass\n"
                  "  prefix: \"fleet:\"\n"
                  "  timeout_ms: 40\n"
                  "  on_unavailable: open\n"
                  "  required: true\n"
                  "  instance: a\n");
    ck_assert_str_eq(cfg->state.backend, "redis");
    ck_assert_str_eq(cfg->state.url, "redis://127.0.0.1:6390/1");
    ck_assert_str_eq(cfg->state.password_file, "data/redis.pass");
    ck_assert_str_eq(cfg->state.prefix, "fleet:");
    ck_assert_int_eq(cfg->state.timeout_ms, 40);
    ck_assert_int_eq(cfg->state.fail_closed, 0);
    ck_assert_int_eq(cfg->state.required, 1);
    ck_assert_str_eq(cfg->state.instance, "a");
    config_free(cfg);
    cfg = load_ok("state:\n  backend: redis\n  url: \"redis://h:1/0\"\n"
                  "  on_unavailable: closed\n");
    ck_assert_int_eq(cfg->state.fail_closed, 1);
    config_free(cfg);
    cfg = load_ok("state: {path: /tmp/x.db, reset_on_corrupt: true}\n");
    ck_assert_str_eq(cfg->state.path, "/tmp/x.db");
    ck_assert_int_eq(cfg->state.reset_on_corrupt, 1);
    config_free(cfg);
}
END_TEST

START_TEST(test_bad_state)
{
    load_bad("server: {}\nstate:\n  backend: etcd\n",
             "t.yaml:3: state.backend: ", "one of local, redis, memory");
    load_bad("state:\n  path: x\n  bakend: local\n",
             "t.yaml:3: state.bakend: unknown key", "backend");
    load_bad("state:\n  backend: redis\n",
             "t.yaml:1: state.url: ", "required with backend: redis");
    load_bad("state:\n  backend: redis\n  url: http://x\n",
             "t.yaml:3: state.url: ", "redis://");
    load_bad("state:\n  on_unavailable: maybe\n",
             "t.yaml:2: state.on_unavailable: ", "open, closed");
    load_bad("state:\n  timeout_ms: 0\n",
             "t.yaml:2: state.timeout_ms: ", "got 0");
    load_bad("state: [a]\n", "t.yaml:1: state: ", "a mapping");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *good = tcase_create("good");
    TCase *bad = tcase_create("bad");
    TCase *env = tcase_create("env");

    tcase_add_checked_fixture(good, clear_env, NULL);
    tcase_add_test(good, test_full_shape);
    tcase_add_test(good, test_minimal_defaults);
    tcase_add_test(good, test_default_plugin_path);
    tcase_add_test(good, test_scalar_typing);
    tcase_add_test(good, test_numeric_strings_accepted);
    tcase_add_test(good, test_port_zero_ok);
    tcase_add_test(good, test_same_plugin_twice_named);
    tcase_add_test(good, test_stage_routes_and_cors);
    tcase_add_test(good, test_load_file);
    tcase_add_test(good, test_docs_section);
    tcase_add_test(good, test_state_section);
    suite_add_tcase(s, good);

    tcase_add_checked_fixture(bad, clear_env, NULL);
    tcase_add_test(bad, test_yaml_syntax_error);
    tcase_add_test(bad, test_empty_and_not_mapping);
    tcase_add_test(bad, test_unknown_top_level_key);
    tcase_add_test(bad, test_unknown_section_keys);
    tcase_add_test(bad, test_bad_port);
    tcase_add_test(bad, test_bad_ranges);
    tcase_add_test(bad, test_bad_base_url);
    tcase_add_test(bad, test_bad_timeout);
    tcase_add_test(bad, test_upstream_client);
    tcase_add_test(bad, test_bad_log);
    tcase_add_test(bad, test_pipeline_without_plugin);
    tcase_add_test(bad, test_duplicate_stage_names);
    tcase_add_test(bad, test_config_not_mapping);
    tcase_add_test(bad, test_bad_plugin_name);
    tcase_add_test(bad, test_bad_docs);
    tcase_add_test(bad, test_duplicate_keys);
    tcase_add_test(bad, test_anchors_rejected);
    tcase_add_test(bad, test_bad_models);
    tcase_add_test(bad, test_secrets_not_echoed);
    tcase_add_test(bad, test_missing_file);
    tcase_add_test(bad, test_bad_state);
    suite_add_tcase(s, bad);

    tcase_add_checked_fixture(env, clear_env, clear_env);
    tcase_add_test(env, test_expand_env);
    tcase_add_test(env, test_expand_errors);
    tcase_add_test(env, test_expand_in_yaml);
    tcase_add_test(env, test_env_overrides);
    tcase_add_test(env, test_env_empty_ignored);
    tcase_add_test(env, test_env_bad_values);
    suite_add_tcase(s, env);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failures;

    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
