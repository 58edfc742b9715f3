#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tokend/verbs.h"
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
#include "tokend/tokenformat.h"
#include "tokend/tokenset.h"
#include "tokend/tunnel.h"

struct verb_ctx {
    const struct cli_globals *g;
    Config *cfg;
    int argc;
    char **argv;         /* argv[0] is the verb */
    const char *program; /* tokend's own argv[0] */
};

struct verb {
    const char *name;
    int (*run)(struct verb_ctx *ctx);
};

static int fail(struct tokend_error *e, const char *account)
{
    int status = e->status ? e->status : TOKEND_EX_SOFTWARE;

    error_print(e, account);
    error_clear(e);
    return status;
}

static int load_config(struct verb_ctx *ctx)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *path = paths_config_file(ctx->g->config_path);

    ctx->cfg = config_load(path, &e);
    if (ctx->cfg && ctx->g->config_path)
        config_set_arg(ctx->cfg, ctx->g->config_path);
    return ctx->cfg ? 0 : fail(&e, NULL);
}

static const Account *find_account(struct verb_ctx *ctx, const char *name, int *status)
{
    const Account *a = config_find(ctx->cfg, name);

    if (!a) {
        fprintf(stderr, "tokend: %s: no such account in %s; add an [account %s] group\n", name,
                ctx->cfg->path, name);
        *status = TOKEND_EX_CONFIG;
    }
    return a;
}

/* The preamble of a verb on one ACCOUNT (argv[optind]), after its options:
 * the configuration, then the account; NULL with *status set. */
static const Account *verb_account(struct verb_ctx *ctx, int *status)
{
    if (load_config(ctx) != 0) {
        *status = TOKEND_EX_CONFIG;
        return NULL;
    }
    return find_account(ctx, ctx->argv[optind], status);
}

/* getopt over the verb's own arguments; returns the first operand index. */
#define VERB_GETOPT(ctx, shortopts, longopts, c)                                                   \
    for (optind = 0, opterr = 0;                                                                   \
         ((c) = getopt_long((ctx)->argc, (ctx)->argv, shortopts, longopts, NULL)) != -1;)

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
        return fail(&e, a->name);
    schedule_forget();
    return 0;
}

/* The same for verbs on [ACCOUNT...]: the configuration, then the accounts
 * named (all when none is). */
static int collect_accounts(struct verb_ctx *ctx, GPtrArray *out)
{
    int status = 0;

    if (load_config(ctx) != 0)
        return TOKEND_EX_CONFIG;
    if (optind == ctx->argc) {
        for (guint i = 0; i < ctx->cfg->accounts->len; i++)
            g_ptr_array_add(out, g_ptr_array_index(ctx->cfg->accounts, i));
        return 0;
    }
    for (int i = optind; i < ctx->argc; i++) {
        const Account *a = find_account(ctx, ctx->argv[i], &status);
        if (!a)
            return status;
        g_ptr_array_add(out, (gpointer)a);
    }
    return 0;
}

/* Tell the launcher when the next tick over this configuration has work. */
static void remember_schedule(const Config *cfg, const struct refresh_request *reqs)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    gint64 due = G_MAXINT64;

    /* reqs holds every account of cfg, in order. */
    for (guint i = 0; i < cfg->accounts->len; i++)
        due = MIN(due, reqs[i].next_due_known ? reqs[i].next_due : flow_next_due(reqs[i].account));
    if (schedule_write(cfg->path, cfg->id, due, &e) < 0)
        log_verbose("cannot remember the refresh schedule: %s", e.message);
    error_clear(&e);
}

static int report_refresh(struct refresh_request *req)
{
    const Account *a = req->account;

    if (req->error.status) {
        /* Once per lost sign-in, not at every tick of the timer. */
        if (req->error.status == TOKEND_EX_NOPERM && !req->signin_known)
            notify_signin_needed(a, req->error.message);
        return fail(&req->error, a->name);
    }
    switch (req->outcome) {
    case REFRESH_NOT_NEEDED:
        log_verbose("%s: the access token is fresh; nothing to do", a->name);
        break;
    case REFRESH_DONE_ELSEWHERE:
        log_verbose("%s: refreshed by another tokend meanwhile", a->name);
        break;
    case REFRESH_DONE:
        log_info("%s: refreshed", a->name);
        break;
    }
    return 0;
}

/* A warning about the next sign-in, where the schedule says something is
 * due (flow_next_due_of counts the warning's moment in).  The schedule is
 * then read again from the state, which says whether it was sent. */
static void warn_ahead(struct refresh_request *req, gint64 now)
{
    if (req->error.status == TOKEND_EX_NOPERM || (req->next_due_known && req->next_due > now))
        return;
    flow_reauth_warn(req->account);
    req->next_due_known = false;
}

static int verb_refresh(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    g_autoptr(GPtrArray) accounts = g_ptr_array_new();
    g_autofree struct refresh_request *reqs = NULL;
    bool force = false;
    int c, status;

    VERB_GETOPT(ctx, "f", opts, c)
    {
        if (c != 'f')
            return cli_usage_error("refresh: unknown option %s", ctx->argv[optind - 1]);
        force = true;
    }
    if ((status = collect_accounts(ctx, accounts)) != 0)
        return status;
    if (accounts->len == 0) {
        fprintf(stderr, "tokend: no accounts in %s\n", ctx->cfg->path);
        return TOKEND_EX_CONFIG;
    }
    reqs = g_new0(struct refresh_request, accounts->len);
    for (guint i = 0; i < accounts->len; i++)
        reqs[i].account = g_ptr_array_index(accounts, i);
    flow_refresh_many(reqs, accounts->len, ctx->cfg->max_parallel, force);
    for (guint i = 0; i < accounts->len; i++)
        warn_ahead(&reqs[i], state_now());
    for (guint i = 0; i < accounts->len; i++) {
        int r = report_refresh(&reqs[i]);
        if (r != 0 && status == 0)
            status = r;
    }
    if (optind == ctx->argc)
        remember_schedule(ctx->cfg, reqs);
    return status;
}

static int print_token(const Account *a, enum token_format f, const char *service,
                       struct tokend_error *e)
{
    g_autoptr(SecStr) token = flow_read_token(a, e);
    g_autoptr(SecStr) line = NULL;
    bool smtp = g_strcmp0(service, "smtp") == 0;

    if (!token)
        return -1;
    line = tokenformat_render(f, token, a->username, smtp ? a->smtp_host : a->imap_host,
                              smtp ? a->smtp_port : a->imap_port, e);
    if (!line)
        return -1;
    secstr_append(line, "\n", 1);
    if (fwrite(line->data, 1, line->len, stdout) != line->len || fflush(stdout) != 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot write the token to standard output");
    return 0;
}

/* `token ACCOUNT --set NAME` or `--scope SCOPE...`: the target, or an exit
 * status. */
static int set_target(const Account *a, const char *set, GPtrArray *scopes,
                      struct token_set_target *t, char **canonical, char **key)
{
    const char *why = NULL;

    if (set && scopes->len)
        return cli_usage_error("%s", "token: give --set NAME or --scope SCOPE..., not both");
    if (set && !(t->scopes = tokenset_find(a->token_sets, set))) {
        fprintf(stderr,
                "tokend: %s: no token set \"%s\"; name it in token_sets of "
                "[account %s] (see tokend.conf(5))\n",
                a->name, set, a->name);
        return TOKEND_EX_CONFIG;
    }
    if (set) {
        *t = (struct token_set_target){.key = set, .scopes = t->scopes, .named = true};
        return 0;
    }
    g_ptr_array_add(scopes, NULL);
    if (!(*canonical = tokenset_normalize((const char *const *)scopes->pdata, &why)))
        return cli_usage_error("token --scope: %s", why);
    *key = tokenset_scopes_key(*canonical);
    *t = (struct token_set_target){.key = *key, .scopes = *canonical};
    return 0;
}

static int token_for_set(const Account *a, const char *set, GPtrArray *scopes, int f,
                         const char *service)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct token_set_target t = {0};
    g_autofree char *canonical = NULL;
    g_autofree char *key = NULL;
    g_autoptr(SecStr) token = NULL;
    g_autoptr(SecStr) line = NULL;
    enum refresh_outcome outcome;
    bool smtp = g_strcmp0(service, "smtp") == 0;
    int status = set_target(a, set, scopes, &t, &canonical, &key);

    if (status != 0)
        return status;
    if (flow_refresh_set(a, &t, &outcome, &e) < 0) {
        /* As for the mail token: a still valid token beats none. */
        if (e.status != TOKEND_EX_TEMPFAIL || flow_set_seconds_left(a, &t) <= 0)
            return fail(&e, a->name);
        log_warn("%s: %s; handed out the current token, which is still valid", a->name, e.message);
        error_clear(&e);
    }
    if (!(token = flow_read_set_token(a, &t, &e)))
        return fail(&e, a->name);
    line = tokenformat_render(f, token, a->username, smtp ? a->smtp_host : a->imap_host,
                              smtp ? a->smtp_port : a->imap_port, &e);
    if (!line)
        return fail(&e, a->name);
    secstr_append(line, "\n", 1);
    if (fwrite(line->data, 1, line->len, stdout) != line->len || fflush(stdout) != 0) {
        error_set(&e, TOKEND_EX_CANTCREAT, "cannot write the token to standard output");
        return fail(&e, a->name);
    }
    flow_remember_config(a);
    flow_remember_set_config(a, &t);
    return 0;
}

/* The mail token, refreshed when due. */
static int token_for_mail(const Account *a, int f, const char *service)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    enum refresh_outcome outcome;

    if (flow_refresh(a, a->min_validity, false, &outcome, &e) < 0) {
        /* A token that is still valid beats no token when the server is
         * unreachable: mail keeps flowing, and the timer retries. */
        struct tokend_error e2 = TOKEND_ERROR_INIT;
        if (e.status != TOKEND_EX_TEMPFAIL || flow_token_seconds_left(a) <= 0 ||
            print_token(a, f, service, &e2) < 0) {
            error_clear(&e2);
            return fail(&e, a->name);
        }
        log_warn("%s: %s; handed out the current token, which is still valid", a->name, e.message);
        error_clear(&e);
        return 0;
    }
    if (print_token(a, f, service, &e) < 0)
        return fail(&e, a->name);
    flow_remember_config(a);
    return 0;
}

static int verb_token(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"service", required_argument, NULL, 's'},
        {"scope", required_argument, NULL, 'S'},
        {"set", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    g_autoptr(GPtrArray) scopes = g_ptr_array_new();
    const char *set = NULL;
    const char *service = "imap";
    const Account *a;
    int c, f = TOKEN_FORMAT_RAW, status = 0;

    VERB_GETOPT(ctx, "f:s:", opts, c)
    {
        if (c == 'f' && (f = tokenformat_from_name(optarg)) >= 0)
            continue;
        if (c == 's' && optarg && (strcmp(optarg, "imap") == 0 || strcmp(optarg, "smtp") == 0)) {
            service = optarg;
            continue;
        }
        if (c == 'S' || (c == 'T' && !set)) {
            if (c == 'S')
                g_ptr_array_add(scopes, optarg);
            else
                set = optarg;
            continue;
        }
        return cli_usage_error("token: bad option %s (--format raw|xoauth2|oauthbearer, "
                               "--service imap|smtp, --scope SCOPE... or --set NAME)",
                               ctx->argv[optind - 1]);
    }
    if (ctx->argc - optind != 1)
        return cli_usage_error("%s", "token takes one ACCOUNT");
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (set || scopes->len)
        return token_for_set(a, set, scopes, f, service);
    return token_for_mail(a, f, service);
}

static int verb_status(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GPtrArray) accounts = g_ptr_array_new();
    bool json = false;
    int c, status;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c != 'j')
            return cli_usage_error("status: unknown option %s", ctx->argv[optind - 1]);
        json = true;
    }
    if ((status = collect_accounts(ctx, accounts)) != 0)
        return status;
    if (status_print(ctx->cfg, accounts, json, &e) < 0)
        return fail(&e, NULL);
    return 0;
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
        return fail(&e, a->name);
    }
    if (removed->len)
        fprintf(stderr, "tokend: %s: %s\n", a->name, removed->str);
    else
        fprintf(stderr, "tokend: %s: nothing was stored\n", a->name);
    return 0;
}

/* The configuration names the store that refreshes write to: the token
 * must move where it says, or the next refresh would move it back. */
static bool store_matches_config(const Account *a, const char *target)
{
    if (a->store == STORE_KIND_AUTO)
        return strcmp(target, "command") != 0;
    return strcmp(store_kind_name(a->store), target) == 0;
}

static int verb_migrate(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    static const char *const targets[] = {"file", "secret-service", "command", NULL};
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GString) done = g_string_new(NULL);
    g_autofree char *again = NULL;
    const char *target = NULL;
    const Account *a;
    int c, status = 0;

    VERB_GETOPT(ctx, "s:", opts, c)
    {
        if (c != 's' || !g_strv_contains(targets, optarg))
            return cli_usage_error("migrate: bad option %s (--store file|secret-service|command)",
                                   ctx->argv[optind - 1]);
        target = optarg;
    }
    if (ctx->argc - optind != 1 || !target)
        return cli_usage_error("%s", "migrate takes one ACCOUNT and --store KIND");
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (!store_matches_config(a, target)) {
        again = config_command(a, "migrate");
        fprintf(stderr,
                "tokend: %s: the configuration says store = %s; set store = %s in "
                "[account %s] of %s, then run: %s --store %s\n",
                a->name, store_kind_name(a->store), target, a->name, ctx->cfg->path, again, target);
        return TOKEND_EX_CONFIG;
    }
    if (flow_migrate(a, target, done, &e) < 0)
        return fail(&e, a->name);
    fprintf(stderr, "tokend: %s: %s\n", a->name, done->str);
    return 0;
}

/* import: read the other tool's refresh token, then prove and store it. */
static int import_run(const Account *a, int format, const char *file, const char *pizauth,
                      bool force)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct import_outcome out = {0};
    g_autoptr(ImportFound) found = NULL;
    /* pizauth names its accounts in its own config: by default as here. */
    const char *who = format != IMPORT_FORMAT_PIZAUTH ? a->username : pizauth ? pizauth : a->name;

    if (import_read(format, file, who, import_ask_password, &found, &e) < 0 ||
        flow_import(a, found->refresh_token, found->client_id, force, &out, &e) < 0)
        return fail(&e, a->name);
    fprintf(stderr,
            "tokend: %s: imported from %s; refresh token in the %s store, access "
            "token in %s (valid for %" G_GINT64_FORMAT " min); %s\n",
            a->name, import_format_name(format), out.store, a->token_file, out.expires_in / 60,
            out.rotated ? "the server rotated the refresh token, so the other tool's copy "
                          "no longer works"
                        : "the server did not rotate it: stop the other tool from using it");
    import_outcome_clear(&out);
    schedule_forget();
    return 0;
}

static int verb_import(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"force", no_argument, NULL, 'F'},
        {"pizauth-account", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    const Account *a;
    const char *pizauth = NULL;
    bool force = false;
    int c, format = -1, status = 0;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c == 'F')
            force = true;
        else if (c == 'P' && *optarg)
            pizauth = optarg;
        else if (c == 'f' && (format = import_format_from_name(optarg)) >= 0)
            continue;
        else
            return cli_usage_error("import: bad option %s (--from %s)", ctx->argv[optind - 1],
                                   import_format_list());
    }
    if (ctx->argc - optind != 2 || format < 0)
        return cli_usage_error("import takes ACCOUNT --from FORMAT FILE (FORMAT: %s)",
                               import_format_list());
    if (pizauth && format != IMPORT_FORMAT_PIZAUTH)
        return cli_usage_error("import: --pizauth-account goes with --from pizauth");
    if (!(a = verb_account(ctx, &status)))
        return status;
    return import_run(a, format, ctx->argv[optind + 1], pizauth, force);
}

static int check_one(const Account *a, enum mail_service s, const SecStr *token)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    bool imap = s == MAIL_SERVICE_IMAP;
    const char *host = imap ? a->imap_host : a->smtp_host;
    int port = imap ? a->imap_port : a->smtp_port;

    if (mailcheck_login(s, host, port, a->username, token, a->ca_file, &e) < 0)
        return fail(&e, a->name);
    printf("%s: %s login to %s:%d as %s: ok\n", a->name, mail_service_name(s), host, port,
           a->username);
    return 0;
}

/* Before any refresh: nothing to log in to is a configuration matter. */
static int no_mail_host(const struct verb_ctx *ctx, const Account *a, const char *keys)
{
    fprintf(stderr,
            "tokend: %s: no mail server to check (provider = %s has none built in); "
            "set %s in [account %s] of %s\n",
            a->name, provider_name(a->provider), keys, a->name, ctx->cfg->path);
    return TOKEND_EX_CONFIG;
}

static int verb_check(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"imap", no_argument, NULL, 'i'},
        {"smtp", no_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) token = NULL;
    enum refresh_outcome outcome;
    bool imap = false, smtp = false;
    const Account *a;
    int c, status = 0;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c == 'i')
            imap = true;
        else if (c == 's')
            smtp = true;
        else
            return cli_usage_error("check: unknown option %s", ctx->argv[optind - 1]);
    }
    if (ctx->argc - optind != 1)
        return cli_usage_error("%s", "check takes one ACCOUNT");
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (!imap && !smtp) {
        imap = a->imap_host != NULL;
        smtp = a->smtp_host != NULL;
        if (!imap && !smtp)
            return no_mail_host(ctx, a, "imap_host or smtp_host");
    }
    if ((imap && !a->imap_host) || (smtp && !a->smtp_host))
        return no_mail_host(ctx, a, imap && !a->imap_host ? "imap_host" : "smtp_host");
    if (flow_refresh(a, a->min_validity, false, &outcome, &e) < 0 ||
        !(token = flow_read_token(a, &e)))
        return fail(&e, a->name);
    if (imap)
        status = check_one(a, MAIL_SERVICE_IMAP, token);
    if (smtp && status == 0)
        status = check_one(a, MAIL_SERVICE_SMTP, token);
    return status;
}

/* The tunnel's server: HOST [PORT] from the command line, else the
 * account's; the TLS mode and mechanism from the account. */
static int tunnel_target_of(const Account *a, bool pop3, char **args, int n,
                            struct tunnel_target *t, struct tokend_error *e)
{
    guint64 port = 0;
    int mech = tunnel_mech_from_name(a->tunnel_mech), tls = tunnel_tls_from_name(a->tunnel_tls);

    t->proto = pop3 ? TUNNEL_PROTO_POP3 : TUNNEL_PROTO_IMAP;
    t->host = n > 0 ? args[0] : pop3 ? a->pop_host : a->imap_host;
    t->port = pop3 ? a->pop_port : a->imap_port;
    t->ca_file = a->ca_file;
    t->user = a->username;
    if (n > 1 && !g_ascii_string_to_unsigned(args[1], 10, 1, 65535, &port, NULL))
        return error_set(e, TOKEND_EX_USAGE, "tunnel: bad port \"%s\"", args[1]);
    if (port)
        t->port = (int)port;
    if (mech < 0 || tls < 0)
        return error_set(e, TOKEND_EX_CONFIG, "%s must be auto, %s",
                         mech < 0 ? "tunnel_mech" : "tunnel_tls",
                         mech < 0 ? "xoauth2 or oauthbearer" : "implicit or starttls");
    t->mech = mech;
    t->tls = tls;
    if (!t->host)
        return error_set(e, TOKEND_EX_CONFIG,
                         "no %s server: set %s or name it: tokend tunnel "
                         "%s%s HOST [PORT]",
                         pop3 ? "POP3" : "IMAP", pop3 ? "pop_host" : "imap_host", a->name,
                         pop3 ? " --pop3" : "");
    if (!t->user)
        return error_set(e, TOKEND_EX_CONFIG, "the tunnel needs username in the account");
    return 0;
}

/* The client learns why in its own protocol, and stderr says it too. */
static int tunnel_fail(enum tunnel_proto p, struct tokend_error *e, const char *account)
{
    g_autoptr(GString) line = g_string_new("tokend: ");

    if (account)
        g_string_append_printf(line, "%s: ", account);
    g_string_append(line, e->message ? e->message : "unknown error");
    if (e->hint)
        g_string_append_printf(line, "; %s", e->hint);
    tunnel_refuse(p, STDOUT_FILENO, e->status, line->str);
    return fail(e, account);
}

static int verb_tunnel(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"pop3", no_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *path = NULL;
    struct tunnel_target t = {0};
    const Account *a;
    bool pop3 = false, greeted = false;
    int c, n;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c != 'p')
            return cli_usage_error("tunnel: unknown option %s", ctx->argv[optind - 1]);
        pop3 = true;
    }
    n = ctx->argc - optind;
    if (n < 1 || n > 3)
        return cli_usage_error("%s", "tunnel takes ACCOUNT [HOST [PORT]]");
    t.proto = pop3 ? TUNNEL_PROTO_POP3 : TUNNEL_PROTO_IMAP;
    path = paths_config_file(ctx->g->config_path);
    if (!(ctx->cfg = config_load(path, &e)))
        return tunnel_fail(t.proto, &e, NULL);
    if (!(a = config_find(ctx->cfg, ctx->argv[optind]))) {
        error_set(&e, TOKEND_EX_CONFIG, "no such account in %s", ctx->cfg->path);
        return tunnel_fail(t.proto, &e, ctx->argv[optind]);
    }
    if (tunnel_target_of(a, pop3, ctx->argv + optind + 1, n - 1, &t, &e) < 0 ||
        tunnel_session(a, &t, &greeted, &e) < 0)
        return greeted ? fail(&e, a->name) : tunnel_fail(t.proto, &e, a->name);
    return 0;
}

/* The tokend a mail client should run: what was run, as an absolute path. */
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
    config = g_canonicalize_filename(ctx->cfg->path, NULL);
    if (snippet_render(a, ctx->argv[optind + 1], program ? program : "tokend", config, out, &e) < 0)
        return fail(&e, a->name);
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
    {"obtain", verb_obtain}, {"refresh", verb_refresh}, {"token", verb_token},
    {"status", verb_status}, {"logout", verb_logout},   {"check", verb_check},
    {"tunnel", verb_tunnel}, {"snippet", verb_snippet}, {"migrate", verb_migrate},
    {"add", verb_add},       {"import", verb_import},
};

/* "tokend VERB ... --help" (or -h) prints the usage, whatever the verb's own
 * options; not after "--". */
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
