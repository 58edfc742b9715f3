/* tokend check (a real login to the mail servers) and tokend tunnel (the
 * login done for a client, then the session handed over). */

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
#include "tokend/tokenformat.h"
#include "tokend/tokenset.h"
#include "tokend/sysview.h"
#include "tokend/tunnel.h"

static int check_one(const Account *a, enum mail_service s, const SecStr *token)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    bool imap = s == MAIL_SERVICE_IMAP;
    const char *host = imap ? a->imap_host : a->smtp_host;
    int port = imap ? a->imap_port : a->smtp_port;

    if (mailcheck_login(a, s, host, port, token, &e) < 0)
        return verb_fail(&e, a->name);
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
            a->name, a->provider->name, keys, a->name, ctx->cfg->path);
    return TOKEND_EX_CONFIG;
}

int verb_check(struct verb_ctx *ctx)
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
        return verb_fail(&e, a->name);
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
/* A usage error told twice: to the client, in its protocol (it would see a
 * bare end of the stream otherwise), and on stderr as any usage error. */
static int tunnel_usage_error(enum tunnel_proto p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static int tunnel_usage_error(enum tunnel_proto p, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL, *line = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strdup_printf("tokend: %s; usage: %s", text, TUNNEL_USAGE);
    tunnel_refuse(p, STDOUT_FILENO, TOKEND_EX_USAGE, line);
    return cli_usage_error("%s", text);
}

static int tunnel_fail(enum tunnel_proto p, struct tokend_error *e, const char *account)
{
    g_autoptr(GString) line = g_string_new("tokend: ");

    if (account)
        g_string_append_printf(line, "%s: ", account);
    g_string_append(line, e->message ? e->message : "unknown error");
    if (e->hint)
        g_string_append_printf(line, "; %s", e->hint);
    tunnel_refuse(p, STDOUT_FILENO, e->status, line->str);
    return verb_fail(e, account);
}

/* System mode, run by a reader (fetchmail's plugin as user fetchmail):
 * the account as its runtime view says, the token file as it is. */
static int tunnel_as_reader(const char *name, bool pop3, char **args, int n,
                            struct tunnel_target *t)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    gint64 expires_at = 0;
    Account *a = sysview_read(name, &expires_at, &e);
    g_autoptr(SecStr) token = a ? sysview_token(a, &expires_at, &e) : NULL;
    bool greeted = false;
    int status = 0;

    t->reader = true;
    t->reader_token = token;
    if (!token) {
        sysview_account_free(a);
        return tunnel_fail(t->proto, &e, name);
    }
    if (tunnel_target_of(a, pop3, args, n, t, &e) < 0 || tunnel_session(a, t, &greeted, &e) < 0)
        status = greeted ? verb_fail(&e, name) : tunnel_fail(t->proto, &e, name);
    sysview_account_free(a);
    return status;
}

int verb_tunnel(struct verb_ctx *ctx)
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

    /* The client hears a usage error too, in the protocol it speaks. */
    for (int i = 1; i < ctx->argc && strcmp(ctx->argv[i], "--") != 0; i++)
        pop3 = pop3 || strcmp(ctx->argv[i], "--pop3") == 0;
    t.proto = pop3 ? TUNNEL_PROTO_POP3 : TUNNEL_PROTO_IMAP;
    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c != 'p')
            return tunnel_usage_error(t.proto, "tunnel: unknown option %s", ctx->argv[optind - 1]);
        pop3 = true;
    }
    t.proto = pop3 ? TUNNEL_PROTO_POP3 : TUNNEL_PROTO_IMAP;
    n = ctx->argc - optind;
    if (n < 1 || n > 3)
        return tunnel_usage_error(t.proto, "%s", "tunnel takes ACCOUNT [HOST [PORT]]");
    if (verb_as_reader())
        return tunnel_as_reader(ctx->argv[optind], pop3, ctx->argv + optind + 1, n - 1, &t);
    path = paths_config_file(ctx->g->config_path);
    if (!(ctx->cfg = config_load(path, &e)))
        return tunnel_fail(t.proto, &e, NULL);
    if (!(a = config_find(ctx->cfg, ctx->argv[optind]))) {
        error_set(&e, TOKEND_EX_CONFIG, "no such account in %s", ctx->cfg->path);
        return tunnel_fail(t.proto, &e, ctx->argv[optind]);
    }
    if (tunnel_target_of(a, pop3, ctx->argv + optind + 1, n - 1, &t, &e) < 0 ||
        tunnel_session(a, &t, &greeted, &e) < 0)
        return greeted ? verb_fail(&e, a->name) : tunnel_fail(t.proto, &e, a->name);
    return 0;
}

/* The tokend a mail client should run: what was run, as an absolute path. */
