#pragma once
/* `tokend status`: what tokend knows of each account, from local files only
 * (never the keyring or the network). */

#include <stdbool.h>
#include <glib.h>
#include "tokend/config.h"

/* Print each account of `accounts` (the verb has chosen them). */
void status_print(const Config *cfg, GPtrArray *accounts, bool json);
