/*
 * plugin.c - load one stage's .so and gate on its descriptor.
 *
 * dlopen() of a path already open returns the old handle, so a reload would
 * never see a rebuilt file. Each load therefore copies the file to a private,
 * unique path (named by pid and content hash), dlopens the copy and unlinks
 * it at once: the mapping stays valid, nothing is left behind in $TMPDIR.
 * Then the descriptor is checked before anything in it is trusted: the
 * version fields first (they protect the rest), then the size, the name and
 * init. Every failure releases what was acquired and says "<path>: <why>".
 * Not here: calling init or any hook (the pipeline does).
 */
#include "plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PLUGIN_MAX_FILE (256u << 20)
#define PLUGIN_MAX_NAME 64

/* The smallest descriptor of ABI 1.0: everything up to on_complete. */
#define PLUGIN_MIN_SIZE                                                        \
    (offsetof(sluice_plugin, on_complete) +                                    \
     sizeof(((sluice_plugin *)0)->on_complete))

/* FNV-1a, 64 bit: cheap, and only has to tell builds apart. */
static uint64_t plugin_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int read_all(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The whole file into a malloc'd buffer (caller frees). */
static unsigned char *plugin_read(const char *path, size_t *len, char *err,
                                  size_t errlen)
{
    unsigned char *data = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            snprintf(err, errlen, "%s: no such file", path);
        else
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if ((unsigned long long)st.st_size > PLUGIN_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %u MiB", path,
                 PLUGIN_MAX_FILE >> 20);
        goto fail;
    }
    *len = (size_t)st.st_size;
    data = malloc(*len ? *len : 1);
    if (!data) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (read_all(fd, data, *len)) {
        snprintf(err, errlen, "%s: cannot read: %s", path,
                 errno ? strerror(errno) : "file shrank");
        goto fail;
    }
    close(fd);
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

/* Write data to a new private file "<tmp>/sluice-<pid>-<hash>-XXXXXX-<base>"
 * and return its malloc'd path. mkstemps gives O_EXCL uniqueness, so two
 * loads of one file in one process get two copies (and two handles). */
static char *plugin_copy(const char *path, const char *hash,
                         const unsigned char *data, size_t len, char *err,
                         size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    const char *base = strrchr(path, '/');
    char suffix[128];
    char *copy;
    size_t n;
    int fd, rc, saved;

    if (!tmp || !*tmp)
        tmp = "/tmp";
    base = base ? base + 1 : path;
    snprintf(suffix, sizeof suffix, "-%s", base);
    n = strlen(tmp) + strlen(suffix) + 64;
    copy = malloc(n);
    if (!copy) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    snprintf(copy, n, "%s/sluice-%ld-%s-XXXXXX%s", tmp, (long)getpid(), hash,
             suffix);
    fd = mkstemps(copy, (int)strlen(suffix));
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a private copy in %s: %s",
                 path, tmp, strerror(errno));
        free(copy);
        return NULL;
    }
    rc = fchmod(fd, 0700) || write_all(fd, data, len) ? -1 : 0;
    saved = errno;

    if (close(fd) && !rc) {
        rc = -1;
        saved = errno;
    }
    if (rc) {
        snprintf(err, errlen, "%s: cannot write a private copy in %s: %s", path,
                 tmp, strerror(saved));
        unlink(copy);
        free(copy);
        return NULL;
    }
    return copy;
}

/* dlerror() names the copy; the operator knows the configured path. */
static void plugin_dlerror(const struct plugin_lib *lib, const char *what,
                           char *err, size_t errlen)
{
    const char *msg = dlerror();
    size_t n = strlen(lib->copy_path);

    if (!msg)
        msg = "unknown error";
    if (!strncmp(msg, lib->copy_path, n) && !strncmp(msg + n, ": ", 2))
        msg += n + 2;
    snprintf(err, errlen, "%s: %s%s", lib->path, what, msg);
}

static int name_ok(const char *s)
{
    size_t n = strnlen(s, PLUGIN_MAX_NAME + 1);

    if (n == 0 || n > PLUGIN_MAX_NAME)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* The gate. Reads no field before the ones that vouch for it. */
static int plugin_check(const char *path, const sluice_plugin *d, char *err,
                        size_t errlen)
{
    if (!d) {
        snprintf(err, errlen, "%s: %s() returned NULL", path,
                 SLUICE_PLUGIN_ENTRY_SYMBOL);
        return -1;
    }
    if (d->abi_major != SLUICE_ABI_MAJOR) {
        snprintf(err, errlen,
                 "%s: plugin ABI %u.%u, core ABI %d.%d: rebuild the plugin "
                 "against this sdk/sluice.h",
                 path, d->abi_major, d->abi_minor, SLUICE_ABI_MAJOR,
                 SLUICE_ABI_MINOR);
        return -1;
    }
    if (d->abi_minor > SLUICE_ABI_MINOR) {
        snprintf(err, errlen,
                 "%s: plugin ABI %u.%u is newer than core ABI %d.%d: upgrade "
                 "sluice or rebuild the plugin against this sdk/sluice.h",
                 path, d->abi_major, d->abi_minor, SLUICE_ABI_MAJOR,
                 SLUICE_ABI_MINOR);
        return -1;
    }
    if (d->size < PLUGIN_MIN_SIZE) {
        snprintf(err, errlen,
                 "%s: descriptor is %u bytes, ABI %d.0 needs at least %zu "
                 "(corrupt or truncated)",
                 path, d->size, SLUICE_ABI_MAJOR, PLUGIN_MIN_SIZE);
        return -1;
    }
    if (!d->name || !name_ok(d->name)) {
        snprintf(err, errlen,
                 "%s: plugin name %s%.*s%s is invalid: use 1..%d characters "
                 "[a-z0-9_-]",
                 path, d->name ? "'" : "", PLUGIN_MAX_NAME,
                 d->name ? d->name : "(null)", d->name ? "'" : "",
                 PLUGIN_MAX_NAME);
        return -1;
    }
    if (!d->init) {
        snprintf(err, errlen, "%s: plugin '%s' has no init hook", path,
                 d->name);
        return -1;
    }
    return 0;
}

/* dlopen the private copy, then unlink it: the mapping outlives the name. */
static int plugin_open(struct plugin_lib *lib, char *err, size_t errlen)
{
    sluice_plugin_entry_fn entry;
    void *sym;

    dlerror();
    lib->handle = dlopen(lib->copy_path, RTLD_NOW | RTLD_LOCAL);
    if (!lib->handle)
        plugin_dlerror(lib, "", err, errlen);
    unlink(lib->copy_path);
    if (!lib->handle)
        return -1;
    dlerror();
    sym = dlsym(lib->handle, SLUICE_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen,
                 "%s: no symbol %s (not a sluice plugin? export it with "
                 "SLUICE_PLUGIN_DEFINE)",
                 lib->path, SLUICE_PLUGIN_ENTRY_SYMBOL);
        return -1;
    }
    /* ISO C has no object-to-function pointer cast; POSIX guarantees this. */
    memcpy(&entry, &sym, sizeof entry);
    lib->desc = entry();
    if (plugin_check(lib->path, lib->desc, err, errlen)) {
        lib->desc = NULL;
        return -1;
    }
    lib->no_unload = (lib->desc->flags & SLUICE_PLUGIN_NO_UNLOAD) != 0;
    return 0;
}

struct plugin_lib *plugin_load(const char *path, char *err, size_t errlen)
{
    struct plugin_lib *lib = calloc(1, sizeof *lib);
    unsigned char *data = NULL;
    size_t len = 0;

    if (!lib || !(lib->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    data = plugin_read(path, &len, err, errlen);
    if (!data)
        goto fail;
    snprintf(lib->hash, sizeof lib->hash, "%016llx",
             (unsigned long long)plugin_hash(data, len));
    lib->copy_path = plugin_copy(path, lib->hash, data, len, err, errlen);
    free(data);
    if (!lib->copy_path || plugin_open(lib, err, errlen))
        goto fail;
    return lib;
fail:
    /* Refused: nothing of the plugin ran but its entry function. */
    if (lib)
        lib->no_unload = 0;
    plugin_unload(lib);
    return NULL;
}

void plugin_unload(struct plugin_lib *lib)
{
    if (!lib)
        return;
    if (lib->handle && !lib->no_unload)
        dlclose(lib->handle);
    free(lib->path);
    free(lib->copy_path);
    free(lib);
}
