#pragma once
/* libmicrohttpd, loaded only when a sign-in opens the loopback catcher
 * (catcher.c): a refresh, an app-only mint or a tunnel never maps it.  A
 * typed table of the few functions tokend calls, as secretlib.h does. */

#include <microhttpd.h>
#include "tokend/error.h"

struct mhdlib {
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
    __typeof__(MHD_get_connection_values) *get_connection_values;
};

/* Load libmicrohttpd once; NULL (TOKEND_EX_UNAVAILABLE) if it is not
 * installed. */
const struct mhdlib *mhdlib_load(struct tokend_error *e);
