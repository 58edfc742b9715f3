#pragma once
/* A library opened at run time (dlopen) and its functions looked up into
 * the fields of a table struct: libsecret for the Secret Service store,
 * GMime for the relay's Graph backend, libmicrohttpd for the sign-in's
 * catcher, libseccomp for the sandbox, libcrypt for the relay's
 * passwords.  None is linked, so tokend starts without them and runs where
 * they are not installed. */

#include <stddef.h>
#include <glib.h>

#include "tokend/error.h"

/* One function: where its pointer goes in the table, and its symbol. */
struct dynlib_symbol {
    size_t offset;
    const char *name;
};

#define DYNLIB_SYMBOL(type, field, symbol)                                                         \
    {                                                                                              \
        offsetof(type, field), #symbol                                                             \
    }

/* One library, described by its module (a static of that module), loaded
 * by the first dynlib_get. */
struct dynlib {
    const char *soname;
    const struct dynlib_symbol *symbols;
    size_t n_symbols;
    void *table;
    /* What to do when it cannot be loaded (error_set_hint). */
    const char *hint;
    /* Called once after loading, or NULL. */
    void (*init)(void *table);
    GOnce once; /* G_ONCE_INIT */
    char *why;
};

#define DYNLIB_INIT(soname_, symbols_, table_, hint_, init_)                                       \
    {                                                                                              \
        .soname = (soname_), .symbols = (symbols_), .n_symbols = G_N_ELEMENTS(symbols_),           \
        .table = (table_), .hint = (hint_), .init = (init_), .once = G_ONCE_INIT                   \
    }

/* The library's filled table, loaded once for the whole process (any
 * thread); NULL and e (TOKEND_EX_UNAVAILABLE, "cannot load SONAME (what
 * dlerror said, or which symbol is missing)", the hint) when it cannot be.  e
 * may be NULL. */
const void *dynlib_get(struct dynlib *lib, struct tokend_error *e);
