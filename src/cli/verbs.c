#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokend/verbs.h"
#include "verbs_internal.h"
#include "tokend/add.h"
#include "tokend/config.h"
#include "tokend/flow.h"
#include "tokend/flow_import.h"
#include "tokend/import.h"
#include "tokend/log.h"
#include "tokend/mailcheck.h"
#include "tokend/notify.h"
#include "tokend/paths.h"
#include "tokend/schedule.h"
#include "tokend/snippet.h"
#include "tokend/state.h"
#include "tokend/status.h"
#include "tokend/sysuser.h"
#include "tokend/tokenformat.h"
#include "tokend/tokenset.h"
#include "tokend/tunnel.h"

struct verb {
    const char *name;
    int (*run)(struct verb_ctx *ctx);
};

int verb_fail(struct tokend_error *e, const char *account)
{
    int status = e->status ? e->status : TOKEND_EX_SOFTWARE;

    error_print(e, account);
    error_clear(e);
    return status;
}

int verb_load_config(struct verb_ctx *ctx)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *path = paths_config_file(ctx->g->config_path);

    ctx->cfg = config_load(path, &e);
    if (ctx->cfg && ctx->g->config_path)
        config_set_arg(ctx->cfg, ctx->g->config_path);
    return ctx->cfg ? 0 : verb_fail(&e, NULL);
}

const Account *verb_find_account(struct verb_ctx *ctx, const char *name, int *status)
{
    const Account *a = config_find(ctx->cfg, name);

    if (!a) {
        fprintf(stderr, "tokend: %s: no such account in %s; add an [account %s] group\n", name,
                ctx->cfg->path, name);
        *status = TOKEND_EX_CONFIG;
    }
    return a;
}

const Account *verb_account(struct verb_ctx *ctx, int *status)
{
    if (verb_load_config(ctx) != 0) {
        *status = TOKEND_EX_CONFIG;
        return NULL;
    }
    return verb_find_account(ctx, ctx->argv[optind], status);
}

int verb_refuse_reader(const char *verb)
{
    fprintf(stderr,
            "tokend: %s needs the %s user or root; other users may run only token, tunnel and "
            "status --check; run: sudo tokend --system %s ...\n",
            verb, paths_system_user(), verb);
    return TOKEND_EX_NOPERM;
}

bool verb_as_reader(void)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    enum sysuser_role role = SYSUSER_ROLE_SERVICE;

    if (paths_system() && sysuser_role(&role, &e) < 0)
        error_clear(&e);
    return paths_system() && role == SYSUSER_ROLE_READER;
}

/* The accounts named (argv[optind...]), or all of them. */
int verb_collect_accounts(struct verb_ctx *ctx, GPtrArray *out)
{
    int status = 0;

    if (verb_load_config(ctx) != 0)
        return TOKEND_EX_CONFIG;
    if (optind == ctx->argc) {
        for (guint i = 0; i < ctx->cfg->accounts->len; i++)
            g_ptr_array_add(out, g_ptr_array_index(ctx->cfg->accounts, i));
        return 0;
    }
    for (int i = optind; i < ctx->argc; i++) {
        const Account *a = verb_find_account(ctx, ctx->argv[i], &status);
        if (!a)
            return status;
        g_ptr_array_add(out, (gpointer)a);
    }
    return 0;
}

static int verb_obtain(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"no-browser", no_argument, NULL, 'n'},
        {"manual", no_argument, NULL, 'm'},
        {"device", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    struct obtain_options o = {0};
    struct tokend_error e = TOKEND_ERROR_INIT;
    const Account *a;
    int c, status = 0;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c == 'n')
            o.no_browser = true;
        else if (c == 'm')
            o.manual = true;
        else if (c == 'd')
            o.device = true;
        else
            return cli_usage_error("obtain: unknown option %s", ctx->argv[optind - 1]);
    }
    if (ctx->argc - optind != 1)
        return cli_usage_error("%s", "obtain takes one ACCOUNT");
    if (o.manual && o.device)
        return cli_usage_error("%s", "obtain: --manual and --device exclude each other");
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (flow_obtain(a, &o, &e) < 0)
        return verb_fail(&e, a->name);
    schedule_forget();
    return 0;
}

/* The same for verbs on [ACCOUNT...]: the configuration, then the accounts
 * named (all when none is). */
static int verb_status(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"check", no_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GPtrArray) accounts = g_ptr_array_new();
    bool json = false, check = false;
    int c, status;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c != 'j' && c != 'c')
            return cli_usage_error("status: unknown option %s", ctx->argv[optind - 1]);
        json = json || c == 'j';
        check = check || c == 'c';
    }
    if (json && check)
        return cli_usage_error("%s", "status: --json and --check exclude each other");
    /* A reader may not read the configuration or the state; a monitor run
     * as one gets the verdict on the token files it may read. */
    if (verb_as_reader() && check)
        return status_check_views(ctx->argv + optind);
    if (verb_as_reader())
        return verb_refuse_reader("status");
    if ((status = verb_collect_accounts(ctx, accounts)) != 0 && check) {
        status_check_fail("the configuration or an account named cannot be used (see the error)");
        return STATUS_CHECK_UNKNOWN;
    }
    if (status != 0)
        return status;
    if (check)
        return status_check(accounts);
    if ((status = status_print(ctx->cfg, accounts, json, &e)) < 0)
        return verb_fail(&e, NULL);
    return status;
}

static int verb_logout(struct verb_ctx *ctx)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GString) removed = g_string_new(NULL);
    const Account *a;
    int c, status = 0;

    VERB_GETOPT(ctx, "", none, c)
    return cli_usage_error("logout: unknown option %s", ctx->argv[optind - 1]);
    if (ctx->argc - optind != 1)
        return cli_usage_error("%s", "logout takes one ACCOUNT");
    if (!(a = verb_account(ctx, &status)))
        return status;
    schedule_forget();
    if (flow_logout(a, removed, &e) < 0) {
        /* What was done, then what was not. */
        if (removed->len)
            fprintf(stderr, "tokend: %s: %s\n", a->name, removed->str);
        return verb_fail(&e, a->name);
    }
    if (removed->len)
        fprintf(stderr, "tokend: %s: %s\n", a->name, removed->str);
    else
        fprintf(stderr, "tokend: %s: nothing was stored\n", a->name);
    return 0;
}

/* The configuration names the store that refreshes write to: the token
 * must move where it says, or the next refresh would move it back. */
static char *program_path(const char *argv0)
{
    g_autofree char *cwd = g_get_current_dir();

    if (argv0 && strchr(argv0, '/'))
        return g_canonicalize_filename(argv0, cwd);
    return g_find_program_in_path(argv0 && *argv0 ? argv0 : "tokend");
}

static int verb_snippet(struct verb_ctx *ctx)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GString) out = g_string_new(NULL);
    g_autofree char *program = program_path(ctx->program);
    g_autofree char *config = NULL;
    const Account *a;
    int c, status = 0;

    VERB_GETOPT(ctx, "", none, c)
    return cli_usage_error("snippet: unknown option %s", ctx->argv[optind - 1]);
    if (ctx->argc - optind != 2)
        return cli_usage_error("snippet takes ACCOUNT and a mail client: %s",
                               snippet_client_names());
    if (!snippet_client_known(ctx->argv[optind + 1]))
        return cli_usage_error("snippet: unknown mail client \"%s\"; known: %s",
                               ctx->argv[optind + 1], snippet_client_names());
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (!paths_system())
        config = g_canonicalize_filename(ctx->cfg->path, NULL);
    if (snippet_render(a, ctx->argv[optind + 1], program ? program : "tokend", config, out, &e) < 0)
        return verb_fail(&e, a->name);
    fputs(out->str, stdout);
    return fflush(stdout) == 0 ? 0 : TOKEND_EX_CANTCREAT;
}

/* add: the configuration and the sign-in in add.c, then the same check. */
static int verb_add(struct verb_ctx *ctx)
{
    g_autofree char *account = NULL;
    char *check_argv[] = {(char *)"check", NULL, NULL};
    int status = add_run(ctx->g, ctx->argc, ctx->argv, &account);
    const Account *a;
    g_autofree char *cmd = NULL;
    g_autofree char *names = g_strdup(snippet_client_names());

    if (status != 0 || !account)
        return status;
    check_argv[1] = account;
    ctx->argc = 2;
    ctx->argv = check_argv;
    status = verb_check(ctx);
    if (ctx->cfg && (a = config_find(ctx->cfg, account)) && (cmd = config_command(a, "snippet")))
        printf("mail client configuration: %s %s\n", cmd, g_strdelimit(names, " ", '|'));
    return status;
}

static const struct verb verbs[] = {
    {"obtain", verb_obtain},
    {"refresh", verb_refresh},
    {"token", verb_token},
    {"status", verb_status},
    {"logout", verb_logout},
    {"check", verb_check},
    {"tunnel", verb_tunnel},
    {"snippet", verb_snippet},
    {"migrate", verb_migrate},
    {"add", verb_add},
    {"import", verb_import},
    {"relay", verb_relay},
    {"relay-password", verb_relay_password},
    {"broker", verb_broker},
};

/* "tokend VERB ... --help" (or -h) prints the verb's usage and options,
 * whatever its other arguments; not after "--". */
static bool wants_help(const struct verb_ctx *ctx)
{
    for (int i = 1; i < ctx->argc; i++) {
        if (strcmp(ctx->argv[i], "--") == 0)
            return false;
        if (strcmp(ctx->argv[i], "--help") == 0 || strcmp(ctx->argv[i], "-h") == 0)
            return true;
    }
    return false;
}

int verbs_run(const struct cli_globals *g, int argc, char **argv)
{
    struct verb_ctx ctx = {.g = g,
                           .argc = argc - g->command_index,
                           .argv = argv + g->command_index,
                           .program = argv[0]};
    const char *name = argv[g->command_index];
    int status = -1;

    for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
        if (strcmp(verbs[i].name, name) == 0 && wants_help(&ctx)) {
            if (!cli_print_verb_usage(name))
                cli_print_usage();
            return 0;
        }
        if (strcmp(verbs[i].name, name) == 0) {
            status = verbs[i].run(&ctx);
            break;
        }
    }
    config_free(ctx.cfg);
    if (status < 0)
        return cli_usage_error("unknown command \"%s\"", name);
    return status;
}
