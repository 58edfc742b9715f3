#include "tokend/dynlib.h"
#include "tokend/secretlib.h"

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

static struct secretlib table;
static struct dynlib lib = DYNLIB_INIT("libsecret-1.so.0", symbols, &table,
                                       "install libsecret, or set store = file", NULL);

const struct secretlib *secretlib_load(struct tokend_error *e)
{
    return dynlib_get(&lib, e);
}
