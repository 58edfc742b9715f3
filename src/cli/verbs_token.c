/* tokend refresh (the timer's run over accounts) and tokend token (a
 * mail client's token, for the account, a service or a token set). */

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
#include "tokend/sysview.h"
#include "tokend/tokenformat.h"
#include "tokend/tokenset.h"
#include "tokend/tunnel.h"

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

/* all: the run over every account (a timer's), which passes by an account
 * never signed in (or logged out): nothing is wrong with it, and a line
 * at every tick would be noise.  Named, it says a sign-in is needed. */
static int report_refresh(struct refresh_request *req, bool all)
{
    const Account *a = req->account;

    if (req->error.status && all && req->never_signed_in) {
        g_autofree char *command = config_command(a, "obtain");
        log_verbose("%s: not signed in yet; passed by (run: %s)", a->name, command);
        error_clear(&req->error);
        return 0;
    }
    if (req->error.status) {
        /* Once per lost sign-in, not at every tick of the timer. */
        if (req->error.status == TOKEND_EX_NOPERM && !req->signin_known)
            notify_signin_needed(a, req->error.message);
        return verb_fail(&req->error, a->name);
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

/* The account's configured token sets, each refreshed when due as its
 * mail token is (after a mail refresh that went well: a failed one has
 * said what to do).  The first failure's status; each failure is printed. */
static int refresh_sets(struct refresh_request *req, bool force)
{
    const Account *a = req->account;
    int status = 0;

    if (!a->token_sets)
        return 0;
    for (char *const *s = a->token_sets; *s; s++) {
        g_autofree char *name = g_strndup(*s, strcspn(*s, " "));
        struct token_set_target t = {
            .key = name, .scopes = tokenset_find(a->token_sets, name), .named = true};
        struct tokend_error e = TOKEND_ERROR_INIT;
        enum refresh_outcome outcome;

        if (flow_refresh_set(a, &t, a->refresh_margin, force, &outcome, &e) < 0) {
            int r;
            error_prefix(&e, "token set %s", name);
            r = verb_fail(&e, a->name);
            status = status ? status : r;
            continue;
        }
        if (outcome == REFRESH_DONE)
            log_info("%s: token set %s refreshed", a->name, name);
        flow_remember_set_config(a, &t);
    }
    /* The schedule is read again from the state. */
    req->next_due_known = false;
    return status;
}

/* Each account's outcome, then its token sets; the first failure's
 * status. */
static int report_all(struct refresh_request *reqs, size_t n, bool all, bool force)
{
    int status = 0;

    for (size_t i = 0; i < n; i++) {
        bool mail_ok = reqs[i].error.status == 0;
        int r = report_refresh(&reqs[i], all);
        int r_sets = mail_ok ? refresh_sets(&reqs[i], force) : 0;
        if (status == 0)
            status = r ? r : r_sets;
    }
    return status;
}

int verb_refresh(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    g_autoptr(GPtrArray) accounts = g_ptr_array_new();
    g_autofree struct refresh_request *reqs = NULL;
    bool force = false, all;
    int c, status;

    VERB_GETOPT(ctx, "f", opts, c)
    {
        if (c != 'f')
            return cli_usage_error("refresh: unknown option %s", ctx->argv[optind - 1]);
        force = true;
    }
    all = optind == ctx->argc;
    if ((status = verb_collect_accounts(ctx, accounts)) != 0)
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
    status = report_all(reqs, accounts->len, all, force);
    if (all)
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
    if (flow_refresh_set(a, &t, a->min_validity, false, &outcome, &e) < 0) {
        /* As for the mail token: a still valid token beats none. */
        if (e.status != TOKEND_EX_TEMPFAIL || flow_set_seconds_left(a, &t) <= 0)
            return verb_fail(&e, a->name);
        log_warn("%s: %s; handed out the current token, which is still valid", a->name, e.message);
        error_clear(&e);
    }
    if (!(token = flow_read_set_token(a, &t, &e)))
        return verb_fail(&e, a->name);
    line = tokenformat_render(f, token, a->username, smtp ? a->smtp_host : a->imap_host,
                              smtp ? a->smtp_port : a->imap_port, &e);
    if (!line)
        return verb_fail(&e, a->name);
    secstr_append(line, "\n", 1);
    if (fwrite(line->data, 1, line->len, stdout) != line->len || fflush(stdout) != 0) {
        error_set(&e, TOKEND_EX_CANTCREAT, "cannot write the token to standard output");
        return verb_fail(&e, a->name);
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
            return verb_fail(&e, a->name);
        }
        log_warn("%s: %s; handed out the current token, which is still valid", a->name, e.message);
        error_clear(&e);
        return 0;
    }
    if (print_token(a, f, service, &e) < 0)
        return verb_fail(&e, a->name);
    flow_remember_config(a);
    return 0;
}

/* System mode, run by a reader: the token file as it is, when fresh. */
static int token_as_reader(const char *name)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    gint64 expires_at = 0;
    Account *view = sysview_read(name, &expires_at, &e);
    g_autoptr(SecStr) token = view ? sysview_token(view, &expires_at, &e) : NULL;

    sysview_account_free(view);
    if (!token)
        return verb_fail(&e, name);
    secstr_append(token, "\n", 1);
    if (fwrite(token->data, 1, token->len, stdout) != token->len || fflush(stdout) != 0)
        return TOKEND_EX_CANTCREAT;
    return 0;
}

int verb_token(struct verb_ctx *ctx)
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
    if (verb_as_reader() && (set || scopes->len || f != TOKEN_FORMAT_RAW))
        return cli_usage_error("%s", "token: other users than tokend get the bare token only");
    if (verb_as_reader())
        return token_as_reader(ctx->argv[optind]);
    if (!(a = verb_account(ctx, &status)))
        return status;
    if (set || scopes->len)
        return token_for_set(a, set, scopes, f, service);
    return token_for_mail(a, f, service);
}
