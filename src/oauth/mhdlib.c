#include "tokend/dynlib.h"
#include "tokend/mhdlib.h"

#define SYM(field, name) DYNLIB_SYMBOL(struct mhdlib, field, name)

static const struct dynlib_symbol symbols[] = {
    SYM(start_daemon, MHD_start_daemon),
    SYM(stop_daemon, MHD_stop_daemon),
    SYM(create_response_from_buffer, MHD_create_response_from_buffer),
    SYM(add_response_header, MHD_add_response_header),
    SYM(queue_response, MHD_queue_response),
    SYM(destroy_response, MHD_destroy_response),
    SYM(get_connection_values, MHD_get_connection_values),
};

static struct mhdlib table;
static struct dynlib lib = DYNLIB_INIT(
    "libmicrohttpd.so.12", symbols, &table,
    "install libmicrohttpd (Debian: libmicrohttpd12), or sign in with obtain --manual or --device",
    NULL);

const struct mhdlib *mhdlib_load(struct tokend_error *e)
{
    return dynlib_get(&lib, e);
}
