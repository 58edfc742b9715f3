/* tokend-engine.so: the whole of tokend.  The tokend launcher loads it
 * into its own process and calls tokend_engine_main for everything but the
 * calls it can answer from local files. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "tokend-config.h"
#include "tokend/add.h"
#include "tokend/cli.h"
#include "tokend/harden.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/sysuser.h"
#include "tokend/verbs.h"

/* System mode: root hands over to the service user before anything is
 * read (add: root's part is in add_system.c, the rest as the service
 * user); another user may only read the token files it is given. */
static int enter_system_mode(const char *verb, char **argv)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    enum sysuser_role role;

    paths_set_system(true);
    if (sysuser_role(&role, &e) == 0 && role == SYSUSER_ROLE_ROOT && strcmp(verb, "add") == 0) {
        add_system_enter_root(argv);
        return 0;
    }
    if (sysuser_role(&role, &e) < 0 ||
        (role == SYSUSER_ROLE_ROOT && sysuser_become_service(argv, &e) < 0)) {
        int status = e.status;
        error_print(&e, NULL);
        error_clear(&e);
        return status;
    }
    switch (role) {
    case SYSUSER_ROLE_ROOT:
        break;
    case SYSUSER_ROLE_SERVICE:
        return 0;
    case SYSUSER_ROLE_READER:
        /* status: --check only (verb_status). */
        if (strcmp(verb, "token") == 0 || strcmp(verb, "tunnel") == 0 ||
            strcmp(verb, "status") == 0)
            return 0;
        fprintf(stderr,
                "tokend: %s needs the %s user or root; other users may run only token, tunnel "
                "and status --check; run: sudo tokend --system %s ...\n",
                verb, paths_system_user(), verb);
        return TOKEND_EX_NOPERM;
    }
    return TOKEND_EX_SOFTWARE;
}

int tokend_engine_main(int argc, char **argv)
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
    /* Before any other call into OpenSSL: no atexit handler.  Its
     * cleanup only frees what the exit frees anyway (the keys tokend
     * loads are freed, and wiped, when it is done with them), and took
     * 0.15 - 0.35 ms of CPU at the end of every run. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
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
    if (g.system && (status = enter_system_mode(argv[g.command_index], argv)) != 0)
        return status;
    return verbs_run(&g, argc, argv);
}
