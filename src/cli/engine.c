/* tokend-engine: the whole of tokend.  The tokend launcher runs it for
 * everything but the calls it can answer from local files. */

#include <stdio.h>
#include <stdlib.h>

#include "tokend-config.h"
#include "tokend/cli.h"
#include "tokend/harden.h"
#include "tokend/log.h"
#include "tokend/verbs.h"

int main(int argc, char **argv)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct cli_globals g;
    bool hardened;
    int status;

    /* Before any file is opened. */
    if (harden_std_fds(&e) < 0) {
        error_print(&e, NULL);
        return e.status;
    }
    /* Tokens live in this process's memory. */
    hardened = harden_process(&e) == 0;
    if (cli_parse_globals(argc, argv, &g) < 0) {
        /* The launcher left the saying to us: said once. */
        status = cli_usage_error("%s", g.error);
        cli_globals_clear(&g);
        error_clear(&e);
        return status;
    }
    log_level = g.quiet ? LOG_LEVEL_QUIET : MIN(g.verbosity, LOG_LEVEL_DEBUG);
    if (!hardened)
        log_warn("%s", e.message);
    error_clear(&e);
    if (g.help) {
        /* "tokend --help COMMAND": that command's help. */
        if (g.command_index >= argc || !cli_print_verb_usage(argv[g.command_index]))
            cli_print_usage();
        return 0;
    }
    if (g.version) {
        printf("tokend %s\n", TOKEND_VERSION);
        return 0;
    }
    if (g.command_index >= argc) {
        fprintf(stderr, "tokend: no command given; see tokend --help\n");
        return 64;
    }
    return verbs_run(&g, argc, argv);
}
