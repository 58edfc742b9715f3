#pragma once
/* `tokend status`: what tokend knows of each account, from local files only
 * (never the keyring or the network). */

#include <stdbool.h>
#include <glib.h>
#include "tokend/config.h"
#include "tokend/error.h"

/* Print each account of `accounts` (the verb has chosen them).  Returns
 * the exit status: TOKEND_EX_NOPERM when an account has lost its sign-in
 * (the server refused the refresh token, or the configuration now names
 * another server or client than it came from), else 0; -1 with e set when
 * the JSON could not be printed (out of memory). */
int status_print(const Config *cfg, GPtrArray *accounts, bool json, struct tokend_error *e);
