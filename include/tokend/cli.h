#pragma once
/* The command line shared by the launcher and the engine:
 *   tokend [-c FILE] [-v] COMMAND ... */

#include <stdbool.h>
#include <glib.h>

struct cli_globals {
    const char *config_path; /* -c FILE, or NULL */
    int verbosity;           /* number of -v */
    bool quiet;              /* -q */
    bool help;
    bool version;
    int command_index; /* argv index of COMMAND, or argc if none */
};

/* Returns 0, or -1 after printing a usage error. */
int cli_parse_globals(int argc, char **argv, struct cli_globals *g);
void cli_print_usage(void);
/* Print "tokend: MESSAGE; see tokend --help"; returns TOKEND_EX_USAGE. */
int cli_usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
