/* The tokend command.  It answers the two calls that mail clients and timers
 * make all day -- `token ACCOUNT` with a cached token and `refresh` with
 * nothing to do -- from a few small files, without parsing the
 * configuration, linking only GLib and cJSON: the account's state (which
 * records the settings it was written under, valid while the configuration
 * file is unchanged), the token file, and the configuration's refresh
 * schedule.  Anything else, or anything unusual, is handed to the engine
 * (tokend-engine.so, loaded into this process), which does the whole job
 * and re-checks everything itself. */

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokend-config.h"
#include "tokend/cli.h"
#include "tokend/config.h"
#include "tokend/harden.h"
#include "tokend/paths.h"
#include "tokend/schedule.h"
#include "tokend/state.h"
#include "tokend/sysuser.h"
#include "tokend/sysview.h"
#include "tokend/tokenfile.h"
#include "tokend/tokenset.h"

/* The engine beside this binary (a build tree), else the installed one. */
static const char *engine_path(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    char *slash;

    if (n > 0) {
        buf[n] = '\0';
        slash = strrchr(buf, '/');
        if (slash && (size_t)(slash - buf) + sizeof("/tokend-engine.so") <= size) {
            strcpy(slash, "/tokend-engine.so");
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    return TOKEND_ENGINE_PATH;
}

/* The engine, in this process: it starts with what the launcher has
 * already mapped (the C library, GLib, cJSON) and keeps its own copy of
 * everything of tokend's, so that it begins as if it had been executed. */
static int run_engine(int argc, char **argv)
{
    char buf[PATH_MAX];
    const char *path = engine_path(buf, sizeof(buf));
    void *engine = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    int (*engine_main)(int, char **) = NULL;
    const char *why;

    if (engine)
        *(void **)&engine_main = dlsym(engine, CLI_ENGINE_MAIN);
    if (!engine_main) {
        /* dlerror names the file. */
        why = dlerror();
        if (why)
            fprintf(stderr, "tokend: cannot load its engine: %s; reinstall tokend\n", why);
        else
            fprintf(stderr, "tokend: cannot load its engine: %s: no %s; reinstall tokend\n", path,
                    CLI_ENGINE_MAIN);
        if (engine)
            dlclose(engine);
        return 70;
    }
    /* The engine is the rest of this process's life: never unloaded. */
    // cppcheck-suppress resourceLeak
    return engine_main(argc, argv);
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
    /* Anything else goes to the engine, which repairs or refuses it. */
    if (!paths_is_private_dir(dir))
        return NULL;
    st = state_load(dir, &e);
    error_clear(&e);
    if (st && ((!st->store && !st->app_only) || st->needs_signin || !st->token_file ||
               g_strcmp0(st->config_id, config_id) != 0)) {
        state_free(st);
        st = NULL;
    }
    return st;
}

enum fast {
    FAST_NO,     /* hand over to the engine */
    FAST_DONE,   /* answered */
    FAST_FAILED, /* answered with an error (73: writing the answer failed) */
};

static enum fast print_token(SecStr *token)
{
    secstr_append(token, "\n", 1);
    if (fwrite(token->data, 1, token->len, stdout) != token->len || fflush(stdout) != 0) {
        fprintf(stderr, "tokend: cannot write the token to standard output\n");
        return FAST_FAILED;
    }
    return FAST_DONE;
}

/* Print a cached token file; FAST_NO when it cannot be read. */
static enum fast print_token_file(const char *path, int mode)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) token = tokenfile_read_shared(path, geteuid(), mode, NULL, &e);

    error_clear(&e);
    return token ? print_token(token) : FAST_NO;
}

/* A token set's entry in the state, when it answers this request: for
 * --set, written under the current configuration; for --scope, for
 * exactly these scopes.  *key: the set's cache key. */
static const StateTokenSet *cached_set(const AccountState *st, const char *set, GPtrArray *scopes,
                                       const char *config_id, char **key)
{
    const StateTokenSet *ts;
    g_autofree char *canonical = NULL;
    const char *why = NULL;

    if (set) {
        ts = tokenset_name_valid(set) ? state_token_set_find(st, set) : NULL;
        *key = g_strdup(set);
        return ts && g_strcmp0(ts->config_id, config_id) == 0 ? ts : NULL;
    }
    g_ptr_array_add(scopes, NULL);
    if (!(canonical = tokenset_normalize((const char *const *)scopes->pdata, &why)))
        return NULL;
    *key = tokenset_scopes_key(canonical);
    ts = state_token_set_find(st, *key);
    return ts && g_strcmp0(ts->scopes, canonical) == 0 ? ts : NULL;
}

/* `token ACCOUNT --set NAME` or `--scope SCOPE...` (raw format) from the
 * cached state and the set's token file. */
static enum fast fast_token_set(const struct cli_globals *g, int argc, char **argv)
{
    g_autofree char *path = paths_config_file(g->config_path);
    g_autoptr(GPtrArray) scopes = g_ptr_array_new();
    g_autofree char *id = NULL;
    g_autofree char *key = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *file = NULL;
    g_autoptr(AccountState) st = NULL;
    const StateTokenSet *ts;
    const char *account = NULL, *set = NULL;

    for (int i = g->command_index + 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--set") == 0 && has_value && !set)
            set = argv[++i];
        else if (strcmp(argv[i], "--scope") == 0 && has_value)
            g_ptr_array_add(scopes, argv[++i]);
        else if (strcmp(argv[i], "--format") == 0 && has_value && strcmp(argv[i + 1], "raw") == 0)
            i++;
        else if (argv[i][0] != '-' && !account)
            account = argv[i];
        else
            return FAST_NO;
    }
    if (!account || !set == !scopes->len)
        return FAST_NO;
    id = config_identity(path);
    if (!(st = cached_state(account, id)) || !(ts = cached_set(st, set, scopes, id, &key)) ||
        !state_expiry_fresh(ts->expires_at, st->min_validity, state_now()))
        return FAST_NO;
    dir = paths_account_dir(account);
    file = tokenset_token_file(dir, key);
    return print_token_file(file, 0600);
}

/* `token ACCOUNT` (raw format) from the cached state and token file. */
static enum fast fast_token(const struct cli_globals *g, int argc, char **argv)
{
    g_autofree char *path = paths_config_file(g->config_path);
    g_autofree char *id = NULL;
    g_autoptr(AccountState) st = NULL;
    int i = g->command_index + 1;

    if (argc - i != 1 &&
        !(argc - i == 3 && strcmp(argv[i + 1], "--format") == 0 && strcmp(argv[i + 2], "raw") == 0))
        return fast_token_set(g, argc, argv);
    id = config_identity(path);
    st = cached_state(argv[i], id);
    if (!st || !state_token_fresh(st, st->min_validity, state_now()))
        return FAST_NO;
    /* A reader group's bit only where the engine wrote the file so. */
    return print_token_file(st->token_file, st->token_file_mode);
}

/* `refresh [ACCOUNT...]` when nothing is due: for all accounts, by the
 * configuration's schedule; for the accounts named, by their states, which
 * say when each next has work (its token, its token sets, a warning ahead
 * of its next sign-in). */
static enum fast fast_refresh(const struct cli_globals *g, int argc, char **argv)
{
    g_autofree char *path = paths_config_file(g->config_path);
    g_autofree char *id = NULL;
    gint64 now = state_now();
    int first = g->command_index + 1;

    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-')
            return FAST_NO;
    id = config_identity(path);
    if (first == argc)
        return schedule_read(path, id) > now ? FAST_DONE : FAST_NO;
    for (int i = first; i < argc; i++) {
        g_autoptr(AccountState) st = cached_state(argv[i], id);
        if (!st || st->next_due <= now || !state_token_ready(st, NULL, st->refresh_margin, now))
            return FAST_NO;
    }
    return FAST_DONE;
}

/* System mode, a reader's `token ACCOUNT`: the token file when fresh, else
 * refreshed by the system broker (a few plain socket calls, sysview.h);
 * the broker's failure is said here, once (75). */
static enum fast reader_token(const char *name, int *status)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    gint64 expires_at = 0;
    Account *view = sysview_read(name, &expires_at, &e);
    g_autoptr(SecStr) token = NULL;
    enum fast answered = FAST_NO;

    if (view && view->token_file) {
        if ((token = sysview_token(view, &expires_at, &e))) {
            answered = print_token(token);
        } else if (e.status == TOKEND_EX_TEMPFAIL) {
            *status = e.status;
            error_print(&e, name);
            answered = FAST_FAILED;
        }
    }
    sysview_account_free(view);
    error_clear(&e);
    return answered;
}

/* System mode: `token ACCOUNT` by a reader, from the runtime view and the
 * token file; root and everything unusual go to the engine. */
static enum fast fast_system(const struct cli_globals *g, int argc, char **argv, int *status)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    enum sysuser_role role;
    int i = g->command_index + 1;

    paths_set_system(true);
    if (sysuser_role(&role, &e) < 0 || role == SYSUSER_ROLE_ROOT) {
        error_clear(&e);
        return FAST_NO;
    }
    if (role == SYSUSER_ROLE_SERVICE)
        return strcmp(argv[g->command_index], "token") == 0 ? fast_token(g, argc, argv)
                                                            : fast_refresh(g, argc, argv);
    if (argc - i != 1 || strcmp(argv[g->command_index], "token") != 0)
        return FAST_NO;
    return reader_token(argv[i], status);
}

int main(int argc, char **argv)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct cli_globals g;
    enum fast answered = FAST_NO;
    int failed = 73;
    const char *cmd;

    /* Before any file is opened. */
    if (harden_std_fds(&e) < 0) {
        error_print(&e, NULL);
        return e.status;
    }
    /* A process that may hold a token.  If it cannot be hardened, the
     * engine tries again and says so, once. */
    if (harden_process(&e) < 0) {
        error_clear(&e);
        return run_engine(argc, argv);
    }
    /* A usage error is the engine's to say (once).  The engine parses
     * the options again, in this process: nothing of the launcher's is
     * left to it. */
    if (cli_parse_globals(argc, argv, &g) < 0 || g.help || g.version || g.verbosity > 0 ||
        g.command_index >= argc) {
        cli_globals_clear(&g);
        return run_engine(argc, argv);
    }
    cmd = argv[g.command_index];
    if (g.system && (strcmp(cmd, "token") == 0 || strcmp(cmd, "refresh") == 0))
        answered = fast_system(&g, argc, argv, &failed);
    else if (g.system)
        answered = FAST_NO;
    else if (strcmp(cmd, "token") == 0)
        answered = fast_token(&g, argc, argv);
    else if (strcmp(cmd, "refresh") == 0)
        answered = fast_refresh(&g, argc, argv);
    cli_globals_clear(&g);
    if (answered == FAST_NO)
        return run_engine(argc, argv);
    return answered == FAST_DONE ? 0 : failed;
}
