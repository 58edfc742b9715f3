/* Warning ahead of a needed sign-in, from `refresh`: once for each moment
 * reauth_warn_at names, remembered in the state before the user is told,
 * so that a failing notify_cmd is not run again at every timer tick. */

#include "flow_internal.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/notify.h"
#include "tokend/paths.h"
#include "tokend/reauth.h"
#include "tokend/state.h"

/* Another tokend holding the lock longer: the next tick warns instead. */
#define LOCK_WAIT_MS 5000

static char *when_text(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);

    return dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
}

/* Under the lock: note the warning as sent; the moment it is about. */
static gint64 take_warning(const Account *a, const char *dir, char **rule, struct tokend_error *e)
{
    gint64 now = state_now();
    g_autoptr(AccountState) st = state_load(dir, e);
    struct reauth_estimate est;

    if (!st || reauth_warn_at(a, st) > now)
        return 0;
    est = reauth_estimate(a, st);
    st->warned_for = est.at;
    st->warned_at = now;
    st->next_due = flow_next_due_of(a, st);
    if (state_save(dir, st, e) < 0)
        return 0;
    *rule = reauth_rule_text(a, st, est.rule);
    return est.at;
}

void flow_reauth_warn(const Account *a)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    g_autofree char *rule = NULL;
    g_autofree char *when = NULL;
    g_autofree char *reason = NULL;
    g_autofree char *command = NULL;
    gint64 at = 0;
    int fd;

    if (paths_trust_private_dir(dir, &e) != 0 || (fd = lock_acquire(dir, LOCK_WAIT_MS, &e)) < 0) {
        error_clear(&e);
        return;
    }
    at = take_warning(a, dir, &rule, &e);
    lock_release(fd);
    if (e.message)
        log_warn("%s: %s", a->name, e.message);
    error_clear(&e);
    if (at == 0)
        return;
    when = when_text(at);
    command = config_command(a, "obtain");
    reason = g_strdup_printf("a new sign-in will be needed by %s (%s)", when, rule);
    if (config_app_only(a)) {
        g_free(reason);
        reason = g_strdup_printf("the app's certificate expires on %s (%s)", when, rule);
        log_warn("%s: %s; upload a new certificate to the app registration and set "
                 "client_certificate and client_key to it",
                 a->name, reason);
        notify_signin_soon(a, reason, at);
        return;
    }
    log_warn("%s: %s; run: %s", a->name, reason, command);
    notify_signin_soon(a, reason, at);
}
