#pragma once
/* `tokend add EMAIL [ACCOUNT]`: detect the provider of an address, append
 * an [account] group to the configuration (atomically, keeping every byte
 * that is there), and sign in. */

#include "tokend/cli.h"

/* argv[0] is "add".  Returns an exit status; after a sign-in, *check is the
 * account whose mail servers the caller should check (or NULL). */
int add_run(const struct cli_globals *g, int argc, char **argv, char **check);
/* System mode, run by root (engine.c, before anything else): keeps argv
 * for the hand-over to the service user; add_run then does root's part
 * (add_system.c) and execs as the service user for any network step. */
void add_system_enter_root(char **argv);
