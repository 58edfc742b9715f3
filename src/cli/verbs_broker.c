/* `tokend --system broker`: the system broker.  One request on stdin
 * (a unix socket connection: systemd's tokend-broker.socket with
 * Accept=yes, or --listen), answered on stdout: the caller, known by its
 * SO_PEERCRED, may have the account refreshed when it may read the
 * account's token file; the refresh is the timer's, under the account's
 * lock.  Protocol: broker.h. */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "verbs_internal.h"
#include "tokend/broker.h"
#include "tokend/flow.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/peercred.h"
#include "tokend/sysuser.h"
#include "tokend/tokenfile.h"
#include "tokend/unixlisten.h"

#define BROKER_USAGE "tokend --system broker [--listen PATH [--group GROUP] [--max-sessions N]]"
/* A caller has this long to send its one line. */
#define REQUEST_TIMEOUT_MS 5000
#define DEFAULT_MAX_SESSIONS 16

/* The caller is the service user, root, or in the account's
 * token_file_group: whoever may read the token file anyway. */
static bool peer_may_read(const Account *a, uid_t uid, const GArray *gids)
{
    uid_t service;
    gid_t service_gid;
    // cppcheck-suppress getgrnamCalled ; one thread reads groups
    const struct group *gr = a->token_file_group ? getgrnam(a->token_file_group) : NULL;

    if (uid == 0 || (sysuser_service_ids(&service, &service_gid) && uid == service))
        return true;
    for (guint i = 0; gr && i < gids->len; i++)
        if (g_array_index(gids, gid_t, i) == gr->gr_gid)
            return true;
    return false;
}

/* The answer line on stdout and one log line (what: "refused" before a
 * refresh, "failed" in one, else what was done); the exit status. */
static int answer(uid_t uid, const char *account, const struct tokend_error *e, const char *what)
{
    g_autofree char *line = broker_answer_line(e->status, e->status ? e->message : what);
    ssize_t n;

    if (e->status)
        log_warn("broker: uid %u: %s: %s: %s", (unsigned)uid, account ? account : "-", what,
                 e->message);
    else
        log_info("broker: uid %u: %s: %s", (unsigned)uid, account, what);
    do
        n = write(STDOUT_FILENO, line, strlen(line));
    while (n < 0 && errno == EINTR);
    return e->status;
}

/* The account, when it exists and the caller may have it refreshed. */
static const Account *allowed_account(struct verb_ctx *ctx, const char *name, uid_t uid,
                                      const GArray *gids, struct tokend_error *e)
{
    g_autofree char *path = paths_config_file(NULL);
    const Account *a;

    if (!(ctx->cfg = config_load(path, e)))
        return NULL;
    if (!(a = config_find(ctx->cfg, name))) {
        error_set(e, TOKEND_EX_CONFIG, "no such account");
        return NULL;
    }
    if (!peer_may_read(a, uid, gids)) {
        error_set(e, TOKEND_EX_NOPERM, "this user may not read the account's token file");
        return NULL;
    }
    return a;
}

static int serve_one(struct verb_ctx *ctx)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GArray) gids = NULL;
    g_autofree char *account = NULL;
    enum refresh_outcome outcome = REFRESH_NOT_NEEDED;
    const Account *a;
    const char *what = NULL;
    uid_t uid;
    int status;

    if (peercred_unix(STDIN_FILENO, &uid, &gids, &e) < 0) {
        error_set_hint(&e, "the broker answers one connection on its standard input (%s)",
                       BROKER_USAGE);
        return verb_fail(&e, NULL);
    }
    /* A caller that hangs up must not kill us mid-write: EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    if (!(account = broker_read_request(STDIN_FILENO, REQUEST_TIMEOUT_MS, &e)) ||
        !(a = allowed_account(ctx, account, uid, gids, &e)))
        what = "refused";
    else if (flow_refresh(a, a->min_validity, false, &outcome, &e) < 0)
        what = "failed";
    if (what) {
        status = answer(uid, account, &e, what);
        error_clear(&e);
        return status;
    }
    return answer(uid, account, &e, outcome == REFRESH_DONE ? "refreshed" : "fresh");
}

/* What each connection runs: this program again, one request. */
static char **self_argv(const struct verb_ctx *ctx)
{
    GPtrArray *argv = g_ptr_array_new();
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);

    g_ptr_array_add(argv, g_strdup(exe ? exe : ctx->program));
    g_ptr_array_add(argv, g_strdup("--system"));
    for (int i = 0; i < ctx->g->verbosity; i++)
        g_ptr_array_add(argv, g_strdup("-v"));
    if (ctx->g->quiet)
        g_ptr_array_add(argv, g_strdup("-q"));
    g_ptr_array_add(argv, g_strdup("broker"));
    g_ptr_array_add(argv, NULL);
    return (char **)g_ptr_array_free(argv, FALSE);
}

static int serve_listen(struct verb_ctx *ctx, const char *path, const char *group, int max)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_auto(GStrv) argv = self_argv(ctx);
    g_autofree char *busy = broker_answer_line(TOKEND_EX_TEMPFAIL, "busy; try again later");
    gid_t gid = (gid_t)-1;

    if (group && tokenfile_reader_gid(group, &gid, &e) < 0)
        return verb_fail(&e, NULL);
    if (unixlisten_run(path, gid, max, busy, argv, &e) < 0)
        return verb_fail(&e, NULL);
    return 0;
}

int verb_broker(struct verb_ctx *ctx)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"group", required_argument, NULL, 'g'},
        {"max-sessions", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    g_autofree char *sock_path = NULL;
    const char *listen = NULL, *group = NULL;
    guint64 max = DEFAULT_MAX_SESSIONS;
    int c;

    VERB_GETOPT(ctx, "", opts, c)
    {
        if (c == 'l' || c == 'g') {
            *(c == 'l' ? &listen : &group) = optarg;
            continue;
        }
        if (c == 'm' && g_ascii_string_to_unsigned(optarg, 10, 1, 1024, &max, NULL))
            continue;
        return cli_usage_error("broker: bad option %s; usage: %s", ctx->argv[optind - 1],
                               BROKER_USAGE);
    }
    if (optind != ctx->argc || (!listen && (group || max != DEFAULT_MAX_SESSIONS)))
        return cli_usage_error("broker takes no ACCOUNT; usage: %s", BROKER_USAGE);
    if (!paths_system())
        return cli_usage_error("%s", "broker serves the system mode only: tokend --system broker");
    if (!listen)
        return serve_one(ctx);
    sock_path = *listen ? g_strdup(listen) : broker_socket_path();
    return serve_listen(ctx, sock_path, group, (int)max);
}
