#pragma once
/* libsecret, loaded only when the Secret Service is used: a refresh with
 * the file store, or any call the launcher answers, never pays for it (or
 * for GIO and GObject, which it brings).  A typed table of the few
 * functions tokend calls, as systemd does for its optional libraries. */

#include <libsecret/secret.h>
#include "tokend/error.h"

struct secretlib {
    __typeof__(secret_service_get_sync) *service_get_sync;
    __typeof__(secret_service_search_sync) *service_search_sync;
    __typeof__(secret_service_store_sync) *service_store_sync;
    __typeof__(secret_service_clear_sync) *service_clear_sync;
    __typeof__(secret_collection_for_alias_sync) *collection_for_alias_sync;
    __typeof__(secret_collection_get_locked) *collection_get_locked;
    __typeof__(secret_item_get_locked) *item_get_locked;
    __typeof__(secret_item_get_secret) *item_get_secret;
    __typeof__(secret_value_new) *value_new;
    __typeof__(secret_value_get) *value_get;
    __typeof__(secret_value_unref) *value_unref;
    __typeof__(g_cancellable_new) *cancellable_new;
    __typeof__(g_cancellable_cancel) *cancellable_cancel;
    __typeof__(g_io_error_quark) *io_error_quark;
    __typeof__(g_object_unref) *object_unref;
};

/* Load libsecret once; NULL (TOKEND_EX_UNAVAILABLE) if it is not installed. */
const struct secretlib *secretlib_load(struct tokend_error *e);
