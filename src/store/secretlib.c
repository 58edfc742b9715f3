#include "tokend/dynlib.h"
#include "tokend/secretlib.h"

#define LIBSECRET_SONAME "libsecret-1.so.0"

#define SYM(field, name) DYNLIB_SYMBOL(struct secretlib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(service_get_sync, secret_service_get_sync),
    SYM(service_search_sync, secret_service_search_sync),
    SYM(service_store_sync, secret_service_store_sync),
    SYM(service_clear_sync, secret_service_clear_sync),
    SYM(collection_for_alias_sync, secret_collection_for_alias_sync),
    SYM(collection_get_locked, secret_collection_get_locked),
    SYM(item_get_locked, secret_item_get_locked),
    SYM(item_get_secret, secret_item_get_secret),
    SYM(value_new, secret_value_new),
    SYM(value_get, secret_value_get),
    SYM(value_unref, secret_value_unref),
    /* GIO and GObject come with libsecret: found through its handle. */
    SYM(cancellable_new, g_cancellable_new),
    SYM(cancellable_cancel, g_cancellable_cancel),
    SYM(io_error_quark, g_io_error_quark),
    SYM(object_unref, g_object_unref),
};

static struct secretlib lib;
static const char *load_error;

static gpointer load(gpointer unused)
{
    (void)unused;
    if (dynlib_load(LIBSECRET_SONAME, symbols, G_N_ELEMENTS(symbols), &lib, &load_error) < 0)
        return NULL;
    return &lib;
}

const struct secretlib *secretlib_load(struct tokend_error *e)
{
    static GOnce once = G_ONCE_INIT;
    const struct secretlib *l = g_once(&once, load, NULL);

    if (!l) {
        error_set(e, TOKEND_EX_UNAVAILABLE, "cannot load %s (%s)", LIBSECRET_SONAME,
                  load_error ? load_error : "unknown error");
        error_set_hint(e, "install libsecret, or set store = file");
    }
    return l;
}
