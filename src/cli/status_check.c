/* `tokend status --check`: one verdict for a monitor, as the monitoring
 * plugins convention has it (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
 * a first line a monitor shows, with performance data after `|`). */

#include <stdio.h>
#include <string.h>

#include "tokend/status.h"
#include "tokend/paths.h"
#include "tokend/reauth.h"
#include "tokend/state.h"
#include "tokend/sysview.h"

/* One account's verdict and the words that say why. */
struct check_result {
    enum status_check_level level;
    char *why; /* NULL when all is well */
};

static const char *const check_level_names[] = {
    [STATUS_CHECK_OK] = "OK",
    [STATUS_CHECK_WARNING] = "WARNING",
    [STATUS_CHECK_CRITICAL] = "CRITICAL",
    [STATUS_CHECK_UNKNOWN] = "UNKNOWN",
};

/* How bad a level is: a monitor shows the worst, CRITICAL over UNKNOWN
 * over WARNING. */
static int severity(enum status_check_level level)
{
    switch (level) {
    case STATUS_CHECK_OK:
        return 0;
    case STATUS_CHECK_WARNING:
        return 1;
    case STATUS_CHECK_UNKNOWN:
        return 2;
    case STATUS_CHECK_CRITICAL:
        return 3;
    }
    return 3;
}

/* The sign-in (or an app-only account's certificate) within notify_before:
 * seconds left, or -1 when not due or not known. */
static gint64 due_within(const Account *a, const AccountState *st, gint64 now)
{
    struct reauth_estimate est = reauth_estimate(a, st);

    if (a->notify_before <= 0 || est.at == 0 || est.at - now > a->notify_before)
        return -1;
    return MAX(est.at - now, 0);
}

static struct check_result judge(const Account *a, const AccountState *st, gint64 now)
{
    struct reauth_estimate est = reauth_estimate(a, st);
    gint64 left = due_within(a, st, now);

    if (st->binding_refused)
        return (struct check_result){STATUS_CHECK_CRITICAL,
                                     g_strdup("sign-in needed (binding refused)")};
    if (st->needs_signin || (!st->store && !st->app_only))
        return (struct check_result){STATUS_CHECK_CRITICAL, g_strdup("sign-in needed")};
    if (st->last_status != 0)
        return (struct check_result){STATUS_CHECK_CRITICAL,
                                     g_strdup_printf("refresh failing (exit %d)", st->last_status)};
    if (left >= 0)
        return (struct check_result){
            STATUS_CHECK_WARNING,
            g_strdup_printf("%s due in %" G_GINT64_FORMAT " h",
                            est.rule == REAUTH_RULE_CERTIFICATE ? "certificate" : "sign-in",
                            left / 3600)};
    return (struct check_result){STATUS_CHECK_OK, NULL};
}

/* The account's state, or NULL when it cannot be read (UNKNOWN). */
static AccountState *check_load(const Account *a)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    AccountState *st = paths_trust_private_dir(dir, &e) < 0 ? NULL : state_load(dir, &e);

    error_clear(&e);
    return st;
}

static void add_perfdata(GString *perf, const Account *a, const AccountState *st, gint64 now)
{
    struct reauth_estimate est = reauth_estimate(a, st);

    g_string_append_printf(perf, " '%s token'=%" G_GINT64_FORMAT "s;;;0", a->name,
                           MAX(st->expires_at - now, 0));
    if (est.at == 0 || st->needs_signin)
        return;
    g_string_append_printf(perf, " '%s signin'=%" G_GINT64_FORMAT "s;", a->name,
                           MAX(est.at - now, 0));
    if (a->notify_before > 0)
        g_string_append_printf(perf, "%d:", a->notify_before);
    g_string_append(perf, ";1:;0");
}

static void note(GString *trouble, GString *detail, const Account *a, struct check_result *r)
{
    g_string_append_printf(detail, "%s: %s%s%s\n", a->name, check_level_names[r->level],
                           r->why ? ", " : "", r->why ? r->why : "");
    if (r->level != STATUS_CHECK_OK)
        g_string_append_printf(trouble, "%s%s: %s", trouble->len ? "; " : "", a->name, r->why);
    g_free(r->why);
}

static int print_verdict(enum status_check_level worst, GString *trouble, guint n, const char *what,
                         const GString *perf, const GString *detail)
{
    if (trouble->len == 0)
        g_string_printf(trouble, "%u account%s%s, none in trouble", n, n == 1 ? "" : "s", what);
    printf("TOKEND %s - %s |%s\n%s", check_level_names[worst], trouble->str, perf->str,
           detail->str);
    return (int)worst;
}

int status_check(GPtrArray *accounts)
{
    g_autoptr(GString) trouble = g_string_new(NULL);
    g_autoptr(GString) detail = g_string_new(NULL);
    g_autoptr(GString) perf = g_string_new(NULL);
    enum status_check_level worst = STATUS_CHECK_OK;
    gint64 now = state_now();

    for (guint i = 0; i < accounts->len; i++) {
        const Account *a = g_ptr_array_index(accounts, i);
        g_autoptr(AccountState) st = check_load(a);
        struct check_result r = {STATUS_CHECK_UNKNOWN, g_strdup("state unreadable")};

        if (st) {
            g_free(r.why);
            r = judge(a, st, now);
            add_perfdata(perf, a, st, now);
        }
        if (severity(r.level) > severity(worst))
            worst = r.level;
        note(trouble, detail, a, &r);
    }
    return print_verdict(worst, trouble, accounts->len, "", perf, detail);
}

/* A reader's verdict on one view: its access token only. */
static struct check_result judge_view(const Account *view, gint64 expires_at, gint64 now)
{
    if (expires_at <= now)
        return (struct check_result){STATUS_CHECK_CRITICAL,
                                     g_strdup("access token expired (is the timer running?)")};
    if (!state_expiry_fresh(expires_at, view->min_validity, now))
        return (struct check_result){
            STATUS_CHECK_WARNING,
            g_strdup_printf("access token expires in %" G_GINT64_FORMAT " s", expires_at - now)};
    return (struct check_result){STATUS_CHECK_OK, NULL};
}

int status_check_views(char *const *names)
{
    g_autoptr(GString) trouble = g_string_new(NULL);
    g_autoptr(GString) detail = g_string_new(NULL);
    g_autoptr(GString) perf = g_string_new(NULL);
    g_auto(GStrv) all = names && names[0] ? NULL : sysview_names();
    char *const *list = all ? all : names;
    enum status_check_level worst = STATUS_CHECK_OK;
    gint64 now = state_now();
    guint n = 0;

    for (char *const *name = list; name && *name; name++) {
        struct tokend_error e = TOKEND_ERROR_INIT;
        gint64 expires_at = 0;
        Account *view = sysview_read(*name, &expires_at, &e);
        Account shown = {.name = *name};
        struct check_result r = {STATUS_CHECK_UNKNOWN, NULL};

        error_clear(&e);
        if (!view && all)
            continue; /* another reader's account */
        if (!view) {
            r.why = g_strdup("view unreadable");
        } else {
            r = judge_view(view, expires_at, now);
            g_string_append_printf(perf, " '%s token'=%" G_GINT64_FORMAT "s;;;0", *name,
                                   MAX(expires_at - now, 0));
        }
        sysview_account_free(view);
        if (severity(r.level) > severity(worst))
            worst = r.level;
        note(trouble, detail, &shown, &r);
        n++;
    }
    if (n == 0) {
        status_check_fail("no account whose token file this user may read");
        return STATUS_CHECK_UNKNOWN;
    }
    return print_verdict(worst, trouble, n, " (token files only)", perf, detail);
}

void status_check_fail(const char *why)
{
    printf("TOKEND UNKNOWN - %s\n", why);
}
