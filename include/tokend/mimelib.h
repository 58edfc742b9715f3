#pragma once
/* GMime, loaded only by the relay's Graph backend (relay_graph.c): every
 * other run of the engine (a refresh, an app-only mint) would otherwise
 * pay for mapping and relocating GMime and what it brings (GIO, GObject,
 * GPGME, libmount, libselinux...), a few milliseconds per process.  A
 * typed table of the few functions tokend calls, as secretlib.h does. */

#include <gmime/gmime.h>
#include "tokend/error.h"

struct mimelib {
    __typeof__(g_mime_init) *init;
    __typeof__(g_mime_stream_mem_new_with_buffer) *stream_mem_new_with_buffer;
    __typeof__(g_mime_parser_new_with_stream) *parser_new_with_stream;
    __typeof__(g_mime_parser_construct_message) *parser_construct_message;
    __typeof__(g_mime_message_get_addresses) *message_get_addresses;
    __typeof__(internet_address_list_length) *address_list_length;
    __typeof__(internet_address_list_get_address) *address_list_get_address;
    __typeof__(internet_address_group_get_type) *address_group_get_type;
    __typeof__(internet_address_group_get_members) *address_group_get_members;
    __typeof__(internet_address_mailbox_get_type) *address_mailbox_get_type;
    __typeof__(internet_address_mailbox_get_addr) *address_mailbox_get_addr;
    /* GObject comes with GMime: found through its handle. */
    __typeof__(g_type_check_instance_is_a) *type_check_instance_is_a;
    __typeof__(g_object_unref) *object_unref;
};

/* Load GMime and initialise it, once; NULL (TOKEND_EX_UNAVAILABLE) if it
 * is not installed.  The first call must come before the sandbox, which
 * refuses open(). */
const struct mimelib *mimelib_load(struct tokend_error *e);
