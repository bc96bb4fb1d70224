/*
 * plugin.h - the plugin loader: dlopen a stage's .so (a private copy named by
 * content hash, so a rebuilt file is picked up on reload), resolve the entry
 * symbol, gate on the descriptor's ABI version and size, and hand back a
 * struct plugin_lib the pipeline builds stages from.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include "sluice.h"

struct plugin_lib {
    char *path;      /* the path configured */
    char *copy_path; /* the private copy actually dlopen'ed (unlinked after
                        load) */
    char hash[17];   /* 64-bit content hash, hex */
    void *handle;    /* dlopen handle */
    const sluice_plugin *desc;
    int no_unload; /* keep mapped forever (SLUICE_PLUGIN_NO_UNLOAD) */
};

/* Load `path`. On failure returns NULL and writes a message naming the file
 * and the reason to err ("x.so: ABI major 2, core speaks 1"). */
struct plugin_lib *plugin_load(const char *path, char *err, size_t errlen);
/* dlclose (unless no_unload) and free. Safe with NULL. */
void plugin_unload(struct plugin_lib *lib);

#endif
