#pragma once
/* The command line shared by the launcher and the engine:
 *   tokend [--system] [-c FILE] [-v] COMMAND ...
 * and the help texts, one per command. */

#include <stdbool.h>
#include <glib.h>

struct cli_globals {
    const char *config_path; /* -c FILE, or NULL */
    int verbosity;           /* number of -v */
    bool quiet;              /* -q */
    bool help;
    bool version;
    bool system;       /* --system: the mail host's configuration and folders */
    int command_index; /* argv index of COMMAND, or argc if none */
    char *error;       /* why the options were refused (cli_parse_globals -1) */
};

/* Returns 0, or -1 with g->error set; prints nothing, so that the launcher
 * can leave the saying to the engine it hands over to. */
int cli_parse_globals(int argc, char **argv, struct cli_globals *g);
void cli_globals_clear(struct cli_globals *g);
void cli_print_usage(void);
/* `tokend VERB --help`: the verb's usage and options; false when there is
 * no such verb. */
bool cli_print_verb_usage(const char *verb);
/* The engine's entry point, the one symbol tokend-engine.so exports: the
 * launcher loads the engine into its own process and calls it with its
 * own arguments when it cannot answer alone. */
#define CLI_ENGINE_MAIN "tokend_engine_main"
int tokend_engine_main(int argc, char **argv) __attribute__((visibility("default")));
/* Print "tokend: MESSAGE; see tokend --help"; returns TOKEND_EX_USAGE. */
int cli_usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
