/*
 * test_plugin.c - the plugin loader against the fixture plugins built into
 * $FIXTURES_DIR (default build/test-plugins): a good plugin loads (twice,
 * as two handles), every malformed one is refused with a message naming
 * the file and the reason, and no private copy is left in $TMPDIR.
 */
#include "plugin.h"

#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[PATH_MAX - 64];

#define ck_assert_has(hay, needle)                                             \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected '%s' in '%s'",    \
                  (needle), (hay))

static const char *fixture(const char *name)
{
    static char path[PATH_MAX];
    const char *dir = getenv("FIXTURES_DIR");

    if (!dir || !*dir)
        dir = "build/test-plugins";
    snprintf(path, sizeof path, "%s/%s.so", dir, name);
    return path;
}

/* Entries in our private $TMPDIR: the loader must leave none behind. */
static int tmpdir_entries(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Check a refusal: the message starts with the path, gives the reason,
 * never names the private copy, and no copy is left behind. */
static void check_refusal(const char *path, const char *err, const char *reason)
{
    char prefix[PATH_MAX + 4];

    snprintf(prefix, sizeof prefix, "%s: ", path);
    ck_assert_msg(!strncmp(err, prefix, strlen(prefix)),
                  "message '%s' does not start with '%s'", err, prefix);
    ck_assert_has(err, reason);
    snprintf(prefix, sizeof prefix, "%s/", tmpdir);
    ck_assert_msg(!strstr(err, prefix), "copy path leaked: %s", err);
    ck_assert_int_eq(tmpdir_entries(), 0);
}

static void expect_refused(const char *path, const char *reason)
{
    char err[512] = "";
    struct plugin_lib *lib = plugin_load(path, err, sizeof err);

    ck_assert_ptr_null(lib);
    check_refusal(path, err, reason);
}

START_TEST(test_good_loads)
{
    char err[512] = "";
    struct plugin_lib *lib = plugin_load(fixture("good"), err, sizeof err);

    ck_assert_msg(lib != NULL, "load failed: %s", err);
    ck_assert_str_eq(lib->path, fixture("good"));
    ck_assert_ptr_nonnull(lib->handle);
    ck_assert_ptr_nonnull(lib->desc);
    ck_assert_str_eq(lib->desc->name, "good");
    ck_assert_str_eq(lib->desc->version, "1.0.0");
    ck_assert_int_eq(lib->no_unload, 0);
    ck_assert_uint_eq(strlen(lib->hash), 16);
    ck_assert_uint_eq(strspn(lib->hash, "0123456789abcdef"), 16);
    /* The copy lived in $TMPDIR, carries the hash, and is gone. */
    ck_assert_ptr_nonnull(lib->copy_path);
    ck_assert_msg(!strncmp(lib->copy_path, tmpdir, strlen(tmpdir)),
                  "copy %s not in %s", lib->copy_path, tmpdir);
    ck_assert_has(lib->copy_path, lib->hash);
    ck_assert_has(lib->copy_path, "good.so");
    ck_assert_int_ne(access(lib->copy_path, F_OK), 0);
    ck_assert_int_eq(tmpdir_entries(), 0);
    plugin_unload(lib);
}
END_TEST

START_TEST(test_good_twice_distinct)
{
    char err[512] = "";
    struct plugin_lib *a = plugin_load(fixture("good"), err, sizeof err);
    struct plugin_lib *b = plugin_load(fixture("good"), err, sizeof err);

    ck_assert_msg(a && b, "load failed: %s", err);
    ck_assert_ptr_ne(a->handle, b->handle);
    ck_assert_ptr_ne(a->desc, b->desc);
    ck_assert_str_ne(a->copy_path, b->copy_path);
    ck_assert_str_eq(a->hash, b->hash);
    plugin_unload(a);
    /* b is its own mapping: still callable after a is gone. */
    ck_assert_str_eq(b->desc->name, "good");
    plugin_unload(b);
}
END_TEST

/* A host table with only what good.c's init reads. */
static int t_cfg_bool(const sluice_json *cfg, const char *key, int def,
                      int *out)
{
    const json_t *v = json_object_get((const json_t *)cfg, key);

    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

static int run_init(const struct plugin_lib *lib, const char *config_json,
                    char *err, size_t errlen)
{
    sluice_host host;
    json_t *cfg = json_loads(config_json, 0, NULL);
    void *instance = NULL;
    int rc;

    memset(&host, 0, sizeof host);
    host.size = sizeof host;
    host.abi_major = SLUICE_ABI_MAJOR;
    host.abi_minor = SLUICE_ABI_MINOR;
    host.cfg_bool = t_cfg_bool;
    ck_assert_ptr_nonnull(cfg);
    rc = lib->desc->init(&host, NULL, (const sluice_json *)cfg, &instance, err,
                         errlen);
    if (rc == 0) {
        ck_assert_ptr_nonnull(instance);
        lib->desc->destroy(instance);
    }
    json_decref(cfg);
    return rc;
}

START_TEST(test_good_init_validates_config)
{
    char err[512] = "";
    struct plugin_lib *lib = plugin_load(fixture("good"), err, sizeof err);

    ck_assert_msg(lib != NULL, "load failed: %s", err);
    ck_assert_int_eq(run_init(lib, "{}", err, sizeof err), 0);
    ck_assert_int_eq(run_init(lib, "{\"fail\": false}", err, sizeof err), 0);
    ck_assert_int_ne(run_init(lib, "{\"fail\": true}", err, sizeof err), 0);
    ck_assert_has(err, "config.fail is true");
    ck_assert_int_ne(run_init(lib, "{\"fail\": 3}", err, sizeof err), 0);
    ck_assert_has(err, "config.fail: expected true or false");
    plugin_unload(lib);
}
END_TEST

START_TEST(test_no_symbol)
{
    expect_refused(fixture("nosymbol"), "no symbol sluice_plugin_entry");
}
END_TEST

START_TEST(test_wrong_abi_major)
{
    char reason[256];

    snprintf(reason, sizeof reason,
             ": plugin ABI %d.0, core ABI %d.%d: rebuild the plugin against "
             "this sdk/sluice.h",
             SLUICE_ABI_MAJOR + 1, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    expect_refused(fixture("wrong_abi"), reason);
}
END_TEST

START_TEST(test_newer_minor)
{
    char reason[256];

    snprintf(reason, sizeof reason,
             ": plugin ABI %d.%d is newer than core ABI %d.%d",
             SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR + 1, SLUICE_ABI_MAJOR,
             SLUICE_ABI_MINOR);
    expect_refused(fixture("newer_minor"), reason);
}
END_TEST

START_TEST(test_no_name)
{
    expect_refused(fixture("noname"), "plugin name '' is invalid");
}
END_TEST

START_TEST(test_bad_name)
{
    expect_refused(fixture("badname"), "plugin name 'Bad Name' is invalid");
}
END_TEST

START_TEST(test_null_entry)
{
    expect_refused(fixture("nullentry"), "sluice_plugin_entry() returned NULL");
}
END_TEST

START_TEST(test_too_small)
{
    expect_refused(fixture("tiny"), "descriptor is 16 bytes");
}
END_TEST

START_TEST(test_no_init)
{
    expect_refused(fixture("noinit"), "plugin 'noinit' has no init hook");
}
END_TEST

START_TEST(test_no_unload_flag)
{
    char err[512] = "";
    struct plugin_lib *lib = plugin_load(fixture("nounload"), err, sizeof err);

    ck_assert_msg(lib != NULL, "load failed: %s", err);
    ck_assert_int_eq(lib->no_unload, 1);
    plugin_unload(lib); /* frees the record, keeps the mapping */
}
END_TEST

START_TEST(test_missing_file)
{
    expect_refused("build/definitely-not-here/missing.so", "no such file");
}
END_TEST

START_TEST(test_not_elf)
{
    char path[PATH_MAX], err[512] = "";
    struct plugin_lib *lib;
    FILE *f;

    /* Outside $TMPDIR so the "nothing left behind" check stays exact. */
    snprintf(path, sizeof path, "%s.notelf.so", tmpdir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 20; i++)
        fputs("this is not a shared object, just text\n", f);
    fclose(f);
    lib = plugin_load(path, err, sizeof err);
    unlink(path);
    ck_assert_ptr_null(lib);
    check_refusal(path, err, "ELF");
}
END_TEST

START_TEST(test_directory)
{
    expect_refused(tmpdir, "not a regular file");
}
END_TEST

START_TEST(test_unload_null)
{
    plugin_unload(NULL);
}
END_TEST

static Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, test_good_loads);
    tcase_add_test(tc, test_good_twice_distinct);
    tcase_add_test(tc, test_good_init_validates_config);
    tcase_add_test(tc, test_no_symbol);
    tcase_add_test(tc, test_wrong_abi_major);
    tcase_add_test(tc, test_newer_minor);
    tcase_add_test(tc, test_no_name);
    tcase_add_test(tc, test_bad_name);
    tcase_add_test(tc, test_null_entry);
    tcase_add_test(tc, test_too_small);
    tcase_add_test(tc, test_no_init);
    tcase_add_test(tc, test_no_unload_flag);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_not_elf);
    tcase_add_test(tc, test_directory);
    tcase_add_test(tc, test_unload_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    SRunner *sr;
    int failures;

    /* A private $TMPDIR, so a leaked copy is visible and nobody's else. */
    snprintf(tmpdir, sizeof tmpdir, "%s/sluice-test-plugin-XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("TMPDIR", tmpdir, 1);
    sr = srunner_create(plugin_suite());
    srunner_run_all(sr, CK_NORMAL);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    rmdir(tmpdir);
    return failures ? 1 : 0;
}
