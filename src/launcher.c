/* The tokend command.  It answers the two calls that mail clients and timers
 * make all day -- `token ACCOUNT` with a cached token and `refresh` with
 * nothing to do -- from a few small files, without parsing the
 * configuration, linking only GLib and cJSON: the account's state (which
 * records the settings it was written under, valid while the configuration
 * file is unchanged), the token file, and the configuration's refresh
 * schedule.  Anything else, or anything unusual, is handed to tokend-engine,
 * which does the whole job and re-checks everything itself. */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend-config.h"
#include "tokend/cli.h"
#include "tokend/config.h"
#include "tokend/paths.h"
#include "tokend/schedule.h"
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

/* The engine's check of an account folder, without repairs: ours, private,
 * under folders only we or root can change.  Anything else goes to the
 * engine, which repairs or refuses it; whoever owns the folder (or can
 * swap it) could plant a state.json whose token_file is any file of ours
 * (a refresh token). */
static bool private_dir(const char *dir)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct stat st;
    bool ok = lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
              (st.st_mode & 077) == 0 && paths_check_parents(dir, &e) == 0;

    error_clear(&e);
    return ok;
}

/* The account's state, if it was written under this identity of the
 * configuration file (so its cached settings are the configuration's). */
static AccountState *cached_state(const char *name, const char *config_id)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = NULL;
    AccountState *st;

    if (!config_id || !config_account_name_valid(name))
        return NULL;
    dir = paths_account_dir(name);
    if (!private_dir(dir))
        return NULL;
    st = state_load(dir, &e);
    error_clear(&e);
    if (st && (!st->store || st->needs_signin || !st->token_file ||
               g_strcmp0(st->config_id, config_id) != 0)) {
        state_free(st);
        st = NULL;
    }
    return st;
}

static gint64 now_s(void)
{
    return g_get_real_time() / G_USEC_PER_SEC;
}

enum fast {
    FAST_NO,     /* hand over to the engine */
    FAST_DONE,   /* answered */
    FAST_FAILED, /* answered, but writing the answer failed */
};

/* `token ACCOUNT` (raw format) from the cached state and token file. */
static enum fast fast_token(const struct cli_globals *g, int argc, char **argv)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *path = paths_config_file(g->config_path);
    g_autofree char *id = NULL;
    g_autoptr(AccountState) st = NULL;
    g_autoptr(SecStr) token = NULL;
    int i = g->command_index + 1;

    if (argc - i != 1 && !(argc - i == 3 && strcmp(argv[i + 1], "--format") == 0 &&
                           strcmp(argv[i + 2], "raw") == 0))
        return FAST_NO;
    id = config_identity(path);
    st = cached_state(argv[i], id);
    if (!st || !state_token_fresh(st, st->min_validity, now_s()))
        return FAST_NO;
    token = tokenfile_read(st->token_file, NULL, &e);
    error_clear(&e);
    if (!token)
        return FAST_NO;
    secstr_append(token, "\n", 1);
    if (fwrite(token->data, 1, token->len, stdout) != token->len || fflush(stdout) != 0) {
        fprintf(stderr, "tokend: cannot write the token to standard output\n");
        return FAST_FAILED;
    }
    return FAST_DONE;
}

/* `refresh [ACCOUNT...]` when nothing is due. */
static enum fast fast_refresh(const struct cli_globals *g, int argc, char **argv)
{
    g_autofree char *path = paths_config_file(g->config_path);
    g_autofree char *id = NULL;
    gint64 now = now_s();
    int first = g->command_index + 1;

    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-')
            return FAST_NO;
    id = config_identity(path);
    if (first == argc)
        return schedule_read(path, id) > now ? FAST_DONE : FAST_NO;
    for (int i = first; i < argc; i++) {
        g_autoptr(AccountState) st = cached_state(argv[i], id);
        if (!st || !state_token_fresh(st, st->refresh_margin, now) ||
            access(st->token_file, F_OK) < 0)
            return FAST_NO;
    }
    return FAST_DONE;
}

int main(int argc, char **argv)
{
    struct rlimit no_core = {0, 0};
    struct cli_globals g;
    enum fast answered = FAST_NO;
    const char *cmd;

    /* No core dumps of a process that may hold a token. */
    prctl(PR_SET_DUMPABLE, 0);
    setrlimit(RLIMIT_CORE, &no_core);
    if (cli_parse_globals(argc, argv, &g) < 0 || g.help || g.version || g.verbosity > 0 ||
        g.command_index >= argc)
        return exec_engine(argv);
    cmd = argv[g.command_index];
    if (strcmp(cmd, "token") == 0)
        answered = fast_token(&g, argc, argv);
    else if (strcmp(cmd, "refresh") == 0)
        answered = fast_refresh(&g, argc, argv);
    if (answered == FAST_NO)
        return exec_engine(argv);
    return answered == FAST_DONE ? 0 : 73;
}
