#pragma once
/* `tokend status`: what tokend knows of each account, from local files only
 * (never the keyring or the network). */

#include <stdbool.h>
#include <glib.h>
#include "tokend/config.h"

/* Print the accounts (all of them when names is empty). */
void status_print(const Config *cfg, GPtrArray *accounts, bool json);
