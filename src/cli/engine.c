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
    struct cli_globals g;
    int status;

    /* Tokens live in this process's memory. */
    harden_process();
    if (cli_parse_globals(argc, argv, &g) < 0) {
        /* The launcher left the saying to us: said once. */
        status = cli_usage_error("%s", g.error);
        cli_globals_clear(&g);
        return status;
    }
    log_level = g.quiet ? LOG_LEVEL_QUIET : MIN(g.verbosity, LOG_LEVEL_DEBUG);
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
