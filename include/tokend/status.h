#pragma once
/* `tokend status`: what tokend knows of each account, from local files only
 * (never the keyring or the network), and where the relay listens
 * (tokend/relayrun.h: its runtime files, and `systemctl show` of its
 * socket units when a service manager is reachable). */

#include <stdbool.h>
#include <glib.h>
#include "tokend/config.h"
#include "tokend/error.h"

/* Print each account of `accounts` (the verb has chosen them), then the
 * relay's listeners (in JSON: each account's "relay" list).  Returns
 * the exit status: TOKEND_EX_NOPERM when an account has lost its sign-in
 * (the server refused the refresh token, or the configuration now names
 * another server or client than it came from), else 0; -1 with e set when
 * the JSON could not be printed (out of memory). */
int status_print(const Config *cfg, GPtrArray *accounts, bool json, struct tokend_error *e);

/* `status --check`: the monitoring plugins' levels, which are also the
 * exit statuses. */
enum status_check_level {
    STATUS_CHECK_OK = 0,
    STATUS_CHECK_WARNING = 1,
    STATUS_CHECK_CRITICAL = 2,
    STATUS_CHECK_UNKNOWN = 3,
};

/* Judge each account from its state: CRITICAL when a sign-in is needed
 * (lost, refused to another server, or never made) or the last refresh
 * failed; WARNING when the sign-in or an app-only account's certificate
 * ends within notify_before; UNKNOWN when the state cannot be read.
 * Prints `TOKEND LEVEL - accounts in trouble | perfdata`, then a line per
 * account; returns the worst level. */
int status_check(GPtrArray *accounts);
/* System mode, run by a reader (which may not read the configuration or
 * the state): the same verdict from the public views it may read
 * (sysview.h), for the accounts named (NULL-terminated) or, with none,
 * every view this user may read.  CRITICAL when an access token has
 * expired, WARNING when it is about to (within min_validity), UNKNOWN
 * when a view named cannot be read or there is none. */
int status_check_views(char *const *names);
/* The first line when no account could be judged at all. */
void status_check_fail(const char *why);
