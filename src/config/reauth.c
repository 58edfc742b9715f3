/* When a new sign-in will be needed: the provider's rules, the user's
 * signin_lifetime and what the server said, from the state alone. */

#include <string.h>

#include "tokend/reauth.h"

/* A sign-in frequency policy is at least an hour: a shorter span seen says
 * nothing about it. */
#define MIN_FREQUENCY 3600

static void consider(struct reauth_estimate *est, gint64 at, enum reauth_rule rule)
{
    if (est->at == 0 || at < est->at) {
        est->at = at;
        est->rule = rule;
    }
}

struct reauth_estimate reauth_estimate(const Account *a, const AccountState *st)
{
    struct reauth_estimate est = {0, REAUTH_RULE_UNKNOWN};
    gint64 used = MAX(st->signed_in_at, st->last_refresh);

    /* An app-only account never signs in: its end is its certificate's. */
    if (st->app_only) {
        est.at = st->cert_expires_at;
        est.rule = st->cert_expires_at > 0 ? REAUTH_RULE_CERTIFICATE : REAUTH_RULE_UNKNOWN;
        return est;
    }
    if (st->refresh_token_expires_at > 0) {
        est.at = st->refresh_token_expires_at;
        est.rule = REAUTH_RULE_SERVER;
        return est;
    }
    if (a->signin_lifetime > 0 && st->signed_in_at > 0)
        consider(&est, st->signed_in_at + a->signin_lifetime, REAUTH_RULE_LIFETIME);
    if (st->frequency_interval > 0 && st->signed_in_at > 0)
        consider(&est, st->signed_in_at + st->frequency_interval, REAUTH_RULE_FREQUENCY);
    if (a->provider->inactivity_limit > 0 && used > 0)
        consider(&est, used + a->provider->inactivity_limit, REAUTH_RULE_INACTIVITY);
    return est;
}

const char *reauth_rule_key(enum reauth_rule rule)
{
    switch (rule) {
    case REAUTH_RULE_UNKNOWN:
        return NULL;
    case REAUTH_RULE_SERVER:
        return "server";
    case REAUTH_RULE_LIFETIME:
        return "signin_lifetime";
    case REAUTH_RULE_FREQUENCY:
        return "sign-in-frequency";
    case REAUTH_RULE_INACTIVITY:
        return "microsoft-inactivity";
    case REAUTH_RULE_CERTIFICATE:
        return "certificate";
    }
    return NULL;
}

/* "7 d", "7 d 3 h", "5 h 10 min", "12 min". */
static char *span_text(gint64 s)
{
    gint64 d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;

    if (d > 0 && h > 0)
        return g_strdup_printf("%" G_GINT64_FORMAT " d %" G_GINT64_FORMAT " h", d, h);
    if (d > 0)
        return g_strdup_printf("%" G_GINT64_FORMAT " d", d);
    if (h > 0 && m > 0)
        return g_strdup_printf("%" G_GINT64_FORMAT " h %" G_GINT64_FORMAT " min", h, m);
    if (h > 0)
        return g_strdup_printf("%" G_GINT64_FORMAT " h", h);
    return g_strdup_printf("%" G_GINT64_FORMAT " min", m);
}

static char *date_text(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local(t);

    return dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
}

char *reauth_rule_text(const Account *a, const AccountState *st, enum reauth_rule rule)
{
    g_autofree char *span = NULL;
    g_autofree char *seen = NULL;

    switch (rule) {
    case REAUTH_RULE_UNKNOWN:
        return g_strdup(a->provider->unknown_end_hint);
    case REAUTH_RULE_SERVER:
        return g_strdup("server said (refresh_token_expires_in)");
    case REAUTH_RULE_LIFETIME:
        span = span_text(a->signin_lifetime);
        return g_strdup_printf("signin_lifetime = %s", span);
    case REAUTH_RULE_FREQUENCY:
        span = span_text(st->frequency_interval);
        seen = date_text(st->frequency_seen_at);
        return g_strdup_printf("estimated: Conditional Access sign-in frequency (AADSTS70043 "
                               "on %s ended a sign-in that had worked %s)",
                               seen, span);
    case REAUTH_RULE_INACTIVITY:
        return g_strdup_printf("estimated: %s %ld-day inactivity", a->provider->title,
                               a->provider->inactivity_limit / 86400);
    case REAUTH_RULE_CERTIFICATE:
        return g_strdup_printf("client_certificate %s expires", a->client_certificate);
    }
    return g_strdup("unknown");
}

gint64 reauth_warn_at(const Account *a, const AccountState *st)
{
    struct reauth_estimate est;

    if (a->notify_before <= 0 || (!st->store && !st->app_only) || st->needs_signin)
        return G_MAXINT64;
    est = reauth_estimate(a, st);
    if (est.at == 0)
        return G_MAXINT64;
    /* Once for each moment: one that moved later by more than the warning
     * span (a Microsoft sign-in used again) is a new one. */
    if (st->warned_for > 0 && est.at < st->warned_for + MAX(a->notify_before, MIN_FREQUENCY))
        return G_MAXINT64;
    return est.at - a->notify_before;
}

void reauth_note_response(AccountState *st, gint64 refresh_expires_in, bool new_refresh_token,
                          bool signin, gint64 now)
{
    if (refresh_expires_in > 0)
        st->refresh_token_expires_at = now + refresh_expires_in;
    else if (signin || new_refresh_token)
        st->refresh_token_expires_at = 0;
    if (signin) {
        st->warned_for = 0;
        st->warned_at = 0;
    }
}

void reauth_note_failure(AccountState *st, const struct tokend_error *err, gint64 now)
{
    gint64 worked;

    /* oauth_error_classify names the code in the message: "... (AADSTS70043)".
     * Once per lost sign-in: the attempts after it see the same code. */
    if (err->status != TOKEND_EX_NOPERM || !err->message ||
        !strstr(err->message, "(AADSTS70043)") ||
        (st->needs_signin && st->frequency_seen_at >= st->signed_in_at))
        return;
    st->frequency_seen_at = now;
    /* The sign-in worked until its last refresh: the policy's interval is at
     * least that (and the estimate is early rather than late). */
    worked = MAX(st->last_refresh, st->signed_in_at) - st->signed_in_at;
    if (st->signed_in_at > 0 && worked >= MIN_FREQUENCY)
        st->frequency_interval = worked;
}
