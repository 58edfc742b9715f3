/* The tokend command.  It answers the two calls that mail clients and timers
 * make all day -- `token ACCOUNT` with a cached token and `refresh` with
 * nothing to do -- from local files, linking only GLib and cJSON.  Anything
 * else (or anything unusual) is handed to tokend-engine, which does the
 * whole job and re-checks everything itself. */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tokend-config.h"
#include "tokend/cli.h"
#include "tokend/config.h"
#include "tokend/paths.h"
#include "tokend/state.h"
#include "tokend/tokenfile.h"

/* The engine beside this binary (a build tree), else the installed one. */
static const char *engine_path(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    char *slash;

    if (n > 0) {
        buf[n] = '\0';
        slash = strrchr(buf, '/');
        if (slash && (size_t)(slash - buf) + sizeof("/tokend-engine") <= size) {
            strcpy(slash, "/tokend-engine");
            if (access(buf, X_OK) == 0)
                return buf;
        }
    }
    return TOKEND_ENGINE_PATH;
}

static int exec_engine(char **argv)
{
    char buf[PATH_MAX];
    const char *path = engine_path(buf, sizeof(buf));

    execv(path, argv);
    fprintf(stderr, "tokend: cannot run %s: %s; reinstall tokend\n", path, g_strerror(errno));
    return 70;
}

/* The account's state says its token is good for `margin` more seconds and
 * the token file is where the current configuration expects it. */
static bool account_fresh(const Account *a, int margin, gint64 now)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = state_load(dir, &e);
    bool fresh = st && !st->needs_signin && state_token_fresh(st, margin, now) &&
                 g_strcmp0(st->token_file, a->token_file) == 0;

    error_clear(&e);
    return fresh;
}

static Config *load_config(const struct cli_globals *g)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *path = paths_config_file(g->config_path);
    Config *cfg = config_load(path, &e);

    error_clear(&e);
    return cfg;
}

/* `token ACCOUNT` (raw format only).  Returns true if the token was printed. */
static bool fast_token(const struct cli_globals *g, int argc, char **argv)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(Config) cfg = NULL;
    g_autoptr(SecStr) token = NULL;
    const Account *a;
    int i = g->command_index + 1;

    if (argc - i != 1 && !(argc - i == 3 && strcmp(argv[i + 1], "--format") == 0 &&
                           strcmp(argv[i + 2], "raw") == 0))
        return false;
    if (argv[i][0] == '-' || !(cfg = load_config(g)) || !(a = config_find(cfg, argv[i])))
        return false;
    if (!account_fresh(a, a->min_validity, g_get_real_time() / G_USEC_PER_SEC))
        return false;
    token = tokenfile_read(a->token_file, NULL, &e);
    error_clear(&e);
    if (!token)
        return false;
    secstr_append(token, "\n", 1);
    return fwrite(token->data, 1, token->len, stdout) == token->len && fflush(stdout) == 0;
}

/* `refresh [ACCOUNT...]` when every account is fresh: nothing to do. */
static bool fast_refresh(const struct cli_globals *g, int argc, char **argv)
{
    g_autoptr(Config) cfg = NULL;
    gint64 now = g_get_real_time() / G_USEC_PER_SEC;
    int first = g->command_index + 1;

    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-')
            return false;
    if (!(cfg = load_config(g)) || cfg->accounts->len == 0)
        return false;
    if (first == argc) {
        for (guint i = 0; i < cfg->accounts->len; i++) {
            const Account *a = g_ptr_array_index(cfg->accounts, i);
            if (!account_fresh(a, a->refresh_margin, now) || access(a->token_file, F_OK) < 0)
                return false;
        }
        return true;
    }
    for (int i = first; i < argc; i++) {
        const Account *a = config_find(cfg, argv[i]);
        if (!a || !account_fresh(a, a->refresh_margin, now) || access(a->token_file, F_OK) < 0)
            return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    struct cli_globals g;
    const char *cmd;

    /* No core dumps of a process that may hold a token. */
    prctl(PR_SET_DUMPABLE, 0);
    if (cli_parse_globals(argc, argv, &g) < 0 || g.help || g.version ||
        g.command_index >= argc)
        return exec_engine(argv);
    cmd = argv[g.command_index];
    if (strcmp(cmd, "token") == 0 && fast_token(&g, argc, argv))
        return 0;
    if (strcmp(cmd, "refresh") == 0 && fast_refresh(&g, argc, argv))
        return 0;
    return exec_engine(argv);
}
