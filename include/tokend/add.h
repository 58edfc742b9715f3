#pragma once
/* `tokend add EMAIL [ACCOUNT]`: detect the provider of an address, append
 * an [account] group to the configuration (atomically, keeping every byte
 * that is there), and sign in. */

#include "tokend/cli.h"

/* argv[0] is "add".  Returns an exit status; after a sign-in, *check is the
 * account whose mail servers the caller should check (or NULL). */
int add_run(const struct cli_globals *g, int argc, char **argv, char **check);
/* System mode, run by root (engine.c, before anything else): the service
 * user does the add, root writes accounts.d/NAME.conf (root:tokend 0640)
 * from its text, then hands over for the sign-in.  An exit status, when
 * it does not exec. */
int add_system_as_root(char **argv);
