/* dlopen and dlsym into a table of function pointers. */

#include <dlfcn.h>

#include "tokend/dynlib.h"

int dynlib_load(const char *soname, const struct dynlib_symbol *symbols, size_t n, void *table,
                const char **why)
{
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);

    if (!handle) {
        *why = dlerror();
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        void *f = dlsym(handle, symbols[i].name);
        if (!f) {
            *why = symbols[i].name;
            return -1;
        }
        *(void **)((char *)table + symbols[i].offset) = f;
    }
    return 0;
}
