#include "tokend/dynlib.h"
#include "tokend/mhdlib.h"

#define LIBMHD_SONAME "libmicrohttpd.so.12"

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

static struct mhdlib lib;
static const char *load_error;

static gpointer load(gpointer unused)
{
    (void)unused;
    if (dynlib_load(LIBMHD_SONAME, symbols, G_N_ELEMENTS(symbols), &lib, &load_error) < 0)
        return NULL;
    return &lib;
}

const struct mhdlib *mhdlib_load(struct tokend_error *e)
{
    static GOnce once = G_ONCE_INIT;
    const struct mhdlib *l = g_once(&once, load, NULL);

    if (!l) {
        error_set(e, TOKEND_EX_UNAVAILABLE, "cannot load %s (%s)", LIBMHD_SONAME,
                  load_error ? load_error : "unknown error");
        error_set_hint(e, "install libmicrohttpd (Debian: libmicrohttpd12), or sign in with "
                          "--device or --paste");
    }
    return l;
}
