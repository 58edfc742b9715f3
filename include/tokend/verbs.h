#pragma once
/* The commands of tokend.  Only this layer prints errors (once each). */

#include "tokend/cli.h"

/* Run the command at argv[g->command_index]; returns the exit status. */
int verbs_run(const struct cli_globals *g, int argc, char **argv);
