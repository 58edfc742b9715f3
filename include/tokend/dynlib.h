#pragma once
/* A library opened at run time (dlopen) and its functions looked up into
 * the fields of a table struct: libsecret for the Secret Service store,
 * GMime for the relay's Graph backend.  Neither is linked, so tokend starts
 * without them and runs where they are not installed. */

#include <stddef.h>

/* One function: where its pointer goes in the table, and its symbol. */
struct dynlib_symbol {
    size_t offset;
    const char *name;
};

#define DYNLIB_SYMBOL(type, field, symbol)                                                         \
    {                                                                                              \
        offsetof(type, field), #symbol                                                             \
    }

/* Opens soname and fills table with every symbol: 0, or -1 and *why (what
 * dlerror said, or the symbol that is missing; static text). */
int dynlib_load(const char *soname, const struct dynlib_symbol *symbols, size_t n, void *table,
                const char **why);
