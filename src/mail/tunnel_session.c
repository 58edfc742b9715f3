/* One tunnel session: the token as `tokend token` hands it out, the login
 * (with one forced refresh when the server refuses a token tokend believed
 * valid), the hand-over to the client, the relay. */

#include <signal.h>
#include <unistd.h>

#include "tokend/flow.h"
#include "tokend/log.h"
#include "tokend/mailcheck.h"
#include "tokend/notify.h"
#include "tokend/paths.h"
#include "tokend/state.h"
#include "tokend/tunnel.h"

/* Connect and login together are bounded; the session that follows is not. */
#define LOGIN_TIMEOUT_US (30 * G_USEC_PER_SEC)

bool tunnel_signin_known(const Account *a)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = state_load(dir, &e);

    error_clear(&e);
    return st && st->needs_signin;
}

/* What `tokend token` would print: refreshed under the lock when due, or
 * the current token while it is valid and the server is out of reach. */
SecStr *tunnel_token(const Account *a, bool force, struct tokend_error *e)
{
    enum refresh_outcome outcome;
    bool known = tunnel_signin_known(a);
    SecStr *token;

    if (flow_refresh(a, force ? 0 : a->min_validity, force, &outcome, e) < 0) {
        /* Once per lost sign-in, as the timer's refresh does, not at every
         * poll of a mail client. */
        if (e->status == TOKEND_EX_NOPERM && !known)
            notify_signin_needed(a, e->message);
        if (force || e->status != TOKEND_EX_TEMPFAIL || flow_token_seconds_left(a) <= 0)
            return NULL;
        log_warn("%s: %s; using the current token, which is still valid", a->name, e->message);
        error_clear(e);
    }
    token = flow_read_token(a, e);
    if (token)
        flow_remember_config(a);
    return token;
}

void *tunnel_login_retrying(const Account *a, tunnel_login_fn login, void *ctx,
                            struct tokend_error *e)
{
    g_autoptr(SecStr) token = tunnel_token(a, false, e);
    enum sasl_result result = SASL_RESULT_FAILED;
    void *session;

    if (!token)
        return NULL;
    session = login(ctx, token, &result, e);
    if (!session && result == SASL_RESULT_REFUSED) {
        /* Revoked or expired early at the server while our state says
         * valid: one forced refresh, one more try on a new connection.
         * Only an authentication failure: a server that cannot check now,
         * or refuses for another reason, would refuse the next token too. */
        log_info("%s: %s; refreshing and trying once more", a->name, e->message);
        secstr_free(g_steal_pointer(&token));
        error_clear(e);
        if (!(token = tunnel_token(a, true, e)))
            return NULL;
        session = login(ctx, token, &result, e);
    }
    /* A new token refused too: for an app, the mailbox is not its own. */
    if (!session)
        mailcheck_app_refused(a, result, e);
    // cppcheck-suppress returnDanglingLifetime ; result is an out-parameter
    return session;
}

/* Connected and logged in, or NULL; *result says how the login failed
 * (SASL_RESULT_REFUSED: the server refused the token itself). */
static void *session_login(void *target, const SecStr *token, enum sasl_result *result,
                           struct tokend_error *e)
{
    gint64 deadline = g_get_monotonic_time() + LOGIN_TIMEOUT_US;
    g_autoptr(Tunnel) tun = tunnel_open(target, deadline, e);

    *result = SASL_RESULT_FAILED;
    if (!tun || tunnel_login(tun, token, deadline, result, e) < 0)
        return NULL;
    return g_steal_pointer(&tun);
}

/* System mode, run by a reader: the token the verb read, and no refresh
 * of its own (a reader cannot): a refusal is said as it came. */
static Tunnel *reader_login(const struct tunnel_target *t, struct tokend_error *e)
{
    enum sasl_result result;

    return session_login((void *)t, t->reader_token, &result, e);
}

int tunnel_session(const Account *a, const struct tunnel_target *t, bool *greeted,
                   struct tokend_error *e)
{
    g_autoptr(Tunnel) tun = NULL;

    *greeted = false;
    tun = t->reader ? reader_login(t, e) : tunnel_login_retrying(a, session_login, (void *)t, e);
    if (!tun)
        return -1;
    /* A client that hangs up must not kill us mid-write: EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    if (tunnel_greet(tun, STDOUT_FILENO, e) < 0)
        return -1;
    *greeted = true;
    log_verbose("%s: logged in to %s port %d; relaying", a->name, t->host, t->port);
    return tunnel_relay(tun, STDIN_FILENO, STDOUT_FILENO, e);
}
