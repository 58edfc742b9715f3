/* tokend relay: one SMTP, IMAP or POP3 session on stdin/stdout for a
 * local program that only knows passwords, or --listen to start one
 * process per connection. */

#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "verbs_internal.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/relay.h"

#define DEFAULT_TIMEOUT_S 300
#define DEFAULT_MAX_SESSIONS 20

struct relay_opts {
    GPtrArray *listen;
    int max_sessions;
    int timeout_s;
    int proto;
};

/* The error said to the client, in its protocol, and on stderr. */
static int relay_fail(const struct relay_opts *o, struct tokend_error *e, bool permanent)
{
    g_autofree char *line =
        g_strdup_printf("tokend: %s%s%s", e->message ? e->message : "unknown error",
                        e->hint ? "; " : "", e->hint ? e->hint : "");

    relay_refuse(o->proto, STDOUT_FILENO, permanent, line);
    return verb_fail(e, NULL);
}

static int take_option(struct verb_ctx *ctx, int c, struct relay_opts *o)
{
    guint64 n;

    if (c == 'l') {
        g_ptr_array_add(o->listen, g_strdup(optarg));
        return 0;
    }
    if ((c == 'm' || c == 't') && g_ascii_string_to_unsigned(optarg, 10, 1, 86400, &n, NULL)) {
        *(c == 'm' ? &o->max_sessions : &o->timeout_s) = (int)n;
        return 0;
    }
    return cli_usage_error("relay: bad option %s; usage: %s", ctx->argv[optind - 1], RELAY_USAGE);
}

/* What each connection runs: this program again, one session. */
static char **self_argv(const struct verb_ctx *ctx, const struct relay_opts *o)
{
    GPtrArray *argv = g_ptr_array_new();
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);

    g_ptr_array_add(argv, g_strdup(exe ? exe : ctx->program));
    g_ptr_array_add(argv, g_strdup("-c"));
    g_ptr_array_add(argv, g_strdup(ctx->cfg->path));
    for (int i = 0; i < ctx->g->verbosity; i++)
        g_ptr_array_add(argv, g_strdup("-v"));
    g_ptr_array_add(argv, g_strdup("relay"));
    g_ptr_array_add(argv, g_strdup_printf("--timeout=%d", o->timeout_s));
    g_ptr_array_add(argv, g_strdup(relay_proto_name(o->proto)));
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

static int relay_one(struct verb_ctx *ctx, const struct relay_opts *o)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct relay_ctx rc = {.cfg = ctx->cfg,
                           .proto = o->proto,
                           .in = STDIN_FILENO,
                           .out = STDOUT_FILENO,
                           .timeout_s = o->timeout_s};
    int status;

    if (relay_check_peer(&rc, &e) < 0)
        return relay_fail(o, &e, e.status == TOKEND_EX_NOPERM);
    status =
        o->proto == RELAY_PROTO_SMTP ? relay_smtp_session(&rc, &e) : relay_mailbox_session(&rc, &e);
    return status < 0 ? verb_fail(&e, NULL) : 0;
}

int verb_relay(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"max-sessions", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GPtrArray) listen = g_ptr_array_new_with_free_func(g_free);
    struct relay_opts o = {.listen = listen,
                           .max_sessions = DEFAULT_MAX_SESSIONS,
                           .timeout_s = DEFAULT_TIMEOUT_S,
                           .proto = RELAY_PROTO_SMTP};
    g_autofree char *path = NULL;
    g_auto(GStrv) argv = NULL;
    int status, c;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if ((status = take_option(ctx, c, &o)) != 0)
            return status;
    }
    if (ctx->argc - optind != 1 || (o.proto = relay_proto_from_name(ctx->argv[optind])) < 0)
        return cli_usage_error("relay takes one of smtp, imap, pop3; usage: %s", RELAY_USAGE);
    /* A client that hangs up must not kill us mid-write: EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    path = paths_config_file(ctx->g->config_path);
    if (!(ctx->cfg = config_load(path, &e)))
        return listen->len ? verb_fail(&e, NULL) : relay_fail(&o, &e, false);
    if (listen->len == 0)
        return relay_one(ctx, &o);
    argv = self_argv(ctx, &o);
    g_ptr_array_add(listen, NULL);
    if (relay_listen(o.proto, (char **)listen->pdata, o.max_sessions, argv, ctx->cfg->path, &e) < 0)
        return verb_fail(&e, NULL);
    return 0;
}
