#pragma once
/* When an account will need a new sign-in, as far as it can be known or
 * estimated from the state and the configuration (never the network):
 * what the server said of its refresh token, the account's
 * signin_lifetime, a Conditional Access sign-in frequency that ended the
 * last sign-in (AADSTS70043), Microsoft's 90 days of inactivity.  And
 * whether `refresh` owes the user a warning about it (notify_before). */

#include <stdbool.h>
#include <glib.h>
#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/state.h"

enum reauth_rule {
    REAUTH_RULE_UNKNOWN,
    REAUTH_RULE_SERVER,      /* refresh_token_expires_in in the last token response */
    REAUTH_RULE_LIFETIME,    /* the account's signin_lifetime */
    REAUTH_RULE_FREQUENCY,   /* the interval the last AADSTS70043 implies */
    REAUTH_RULE_INACTIVITY,  /* the provider's inactivity_limit without a refresh */
    REAUTH_RULE_CERTIFICATE, /* app-only: the app's certificate expires */
};

struct reauth_estimate {
    gint64 at; /* unix seconds; 0 when unknown */
    enum reauth_rule rule;
};

/* The moment a new sign-in will be needed, and the rule that says so.  The
 * server's word wins; otherwise the earliest of the estimates that apply. */
struct reauth_estimate reauth_estimate(const Account *a, const AccountState *st);
/* "server", "signin_lifetime", "sign-in-frequency", "microsoft-inactivity"
 * (for status --json), or NULL when unknown. */
const char *reauth_rule_key(enum reauth_rule rule);
/* In words, for status and TOKEND_REASON: "estimated: Microsoft 90-day
 * inactivity", "signin_lifetime = 7d", "server said" ... */
char *reauth_rule_text(const Account *a, const AccountState *st, enum reauth_rule rule);
/* When `refresh` is to warn about the next sign-in (estimate.at -
 * notify_before), or G_MAXINT64 when it is not: nothing known, warnings
 * off, the sign-in already lost, or this moment already warned about. */
gint64 reauth_warn_at(const Account *a, const AccountState *st);
/* Note a token response in the state: the server's word on the refresh
 * token's life; a new sign-in starts with no warning sent. */
void reauth_note_response(AccountState *st, gint64 refresh_expires_in, bool new_refresh_token,
                          bool signin, gint64 now);
/* Note a failed refresh: AADSTS70043 says a sign-in frequency policy ended
 * the sign-in, after as long as it is known to have worked. */
void reauth_note_failure(AccountState *st, const struct tokend_error *err, gint64 now);
