/* dlopen and dlsym into a table of function pointers, once. */

#include <dlfcn.h>

#include "tokend/dynlib.h"

/* 0, or -1 and *why (kept for the process's life: dlerror's text is
 * overwritten by the next failure). */
static int load(const struct dynlib *lib, char **why)
{
    void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);

    if (!handle) {
        *why = g_strdup(dlerror());
        return -1;
    }
    for (size_t i = 0; i < lib->n_symbols; i++) {
        void *f = dlsym(handle, lib->symbols[i].name);
        if (!f) {
            *why = g_strdup_printf("no %s in it", lib->symbols[i].name);
            return -1;
        }
        *(void **)((char *)lib->table + lib->symbols[i].offset) = f;
    }
    return 0;
}

static gpointer load_once(gpointer data)
{
    struct dynlib *lib = data;

    if (load(lib, &lib->why) < 0)
        return NULL;
    if (lib->init)
        lib->init(lib->table);
    return lib->table;
}

const void *dynlib_get(struct dynlib *lib, struct tokend_error *e)
{
    const void *table = g_once(&lib->once, load_once, lib);

    if (!table) {
        error_set(e, TOKEND_EX_UNAVAILABLE, "cannot load %s (%s)", lib->soname,
                  lib->why ? lib->why : "unknown error");
        error_set_hint(e, "%s", lib->hint);
    }
    return table;
}
