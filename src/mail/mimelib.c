#include "tokend/dynlib.h"
#include "tokend/mimelib.h"

#define SYM(field, name) DYNLIB_SYMBOL(struct mimelib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(init, g_mime_init),
    SYM(stream_mem_new_with_buffer, g_mime_stream_mem_new_with_buffer),
    SYM(parser_new_with_stream, g_mime_parser_new_with_stream),
    SYM(parser_construct_message, g_mime_parser_construct_message),
    SYM(message_get_addresses, g_mime_message_get_addresses),
    SYM(address_list_length, internet_address_list_length),
    SYM(address_list_get_address, internet_address_list_get_address),
    SYM(address_group_get_type, internet_address_group_get_type),
    SYM(address_group_get_members, internet_address_group_get_members),
    SYM(address_mailbox_get_type, internet_address_mailbox_get_type),
    SYM(address_mailbox_get_addr, internet_address_mailbox_get_addr),
    SYM(type_check_instance_is_a, g_type_check_instance_is_a),
    SYM(object_unref, g_object_unref),
};

/* GMime wants g_mime_init before anything else. */
static void init_gmime(void *table)
{
    ((struct mimelib *)table)->init();
}

static struct mimelib table;
static struct dynlib lib = DYNLIB_INIT("libgmime-3.0.so.0", symbols, &table,
                                       "install GMime 3 (Debian: libgmime-3.0-0)", init_gmime);

const struct mimelib *mimelib_load(struct tokend_error *e)
{
    return dynlib_get(&lib, e);
}
