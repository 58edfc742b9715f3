/* reauth: when a new sign-in will be needed, by which rule, and when
 * `refresh` warns about it. */

#include <string.h>

#include "tokend/reauth.h"
#include "testutil.h"

#define DAY 86400
#define T0 1700000000

static const struct {
    const char *provider;
    int lifetime; /* signin_lifetime */
    gint64 signed_in_at, last_refresh, server_at, interval;
    gint64 at;             /* expected */
    enum reauth_rule rule; /* expected */
} estimates[] = {
    /* Nothing known. */
    {"generic", 0, T0, T0 + DAY, 0, 0, 0, REAUTH_RULE_UNKNOWN},
    {"google", 0, T0, T0 + DAY, 0, 0, 0, REAUTH_RULE_UNKNOWN},
    /* Microsoft: 90 days after the last use, sign-in or refresh. */
    {"microsoft", 0, T0, 0, 0, 0, T0 + 90 * DAY, REAUTH_RULE_INACTIVITY},
    {"microsoft", 0, T0, T0 + 5 * DAY, 0, 0, T0 + 95 * DAY, REAUTH_RULE_INACTIVITY},
    {"microsoft", 0, 0, 0, 0, 0, 0, REAUTH_RULE_UNKNOWN},
    /* signin_lifetime counts from the sign-in, whatever the refreshes. */
    {"google", 7 * DAY, T0, T0 + 6 * DAY, 0, 0, T0 + 7 * DAY, REAUTH_RULE_LIFETIME},
    {"generic", 7 * DAY, 0, T0, 0, 0, 0, REAUTH_RULE_UNKNOWN},
    /* The earliest estimate wins. */
    {"microsoft", 100 * DAY, T0, 0, 0, 0, T0 + 90 * DAY, REAUTH_RULE_INACTIVITY},
    {"microsoft", 30 * DAY, T0, 0, 0, 0, T0 + 30 * DAY, REAUTH_RULE_LIFETIME},
    {"microsoft", 30 * DAY, T0, 0, 0, 7 * DAY, T0 + 7 * DAY, REAUTH_RULE_FREQUENCY},
    {"microsoft", 0, T0, T0 + 89 * DAY, 0, 100 * DAY, T0 + 100 * DAY, REAUTH_RULE_FREQUENCY},
    /* The server's word is authoritative, later or earlier. */
    {"microsoft", 0, T0, 0, T0 + DAY, 7 * DAY, T0 + DAY, REAUTH_RULE_SERVER},
    {"google", DAY, T0, 0, T0 + 7 * DAY, 0, T0 + 7 * DAY, REAUTH_RULE_SERVER},
};

static void test_estimate(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(estimates); i++) {
        Account a = {.provider = provider_find(estimates[i].provider),
                     .signin_lifetime = estimates[i].lifetime};
        AccountState st = {.signed_in_at = estimates[i].signed_in_at,
                           .last_refresh = estimates[i].last_refresh,
                           .refresh_token_expires_at = estimates[i].server_at,
                           .frequency_interval = estimates[i].interval};
        struct reauth_estimate est = reauth_estimate(&a, &st);
        g_autofree char *text = reauth_rule_text(&a, &st, est.rule);

        g_test_message("case %zu", i);
        g_assert_cmpint(est.at, ==, estimates[i].at);
        g_assert_cmpint(est.rule, ==, estimates[i].rule);
        g_assert_true(*text);
        g_assert_true((reauth_rule_key(est.rule) == NULL) == (est.rule == REAUTH_RULE_UNKNOWN));
    }
}

static void test_warn_at(void)
{
    Account a = {
        .provider = provider_find("generic"), .signin_lifetime = 7 * DAY, .notify_before = 2 * DAY};
    AccountState st = {.signed_in_at = T0, .store = "file"};

    g_assert_cmpint(reauth_warn_at(&a, &st), ==, T0 + 5 * DAY);
    /* Warned for this moment: not again; a moment moved well later is new. */
    st.warned_for = T0 + 7 * DAY;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, G_MAXINT64);
    st.refresh_token_expires_at = T0 + 7 * DAY + 30;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, G_MAXINT64);
    st.refresh_token_expires_at = T0 + 10 * DAY;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, T0 + 8 * DAY);
    st.refresh_token_expires_at = 0;
    st.warned_for = 0;
    /* Not signed in, sign-in already lost, warnings off, nothing known. */
    st.needs_signin = true;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, G_MAXINT64);
    st.needs_signin = false;
    st.store = NULL;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, G_MAXINT64);
    st.store = "file";
    a.notify_before = 0;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, G_MAXINT64);
    a.notify_before = 2 * DAY;
    a.signin_lifetime = 0;
    g_assert_cmpint(reauth_warn_at(&a, &st), ==, G_MAXINT64);
}

static void test_note(void)
{
    AccountState st = {
        .signed_in_at = T0, .last_refresh = T0 + 7 * DAY, .warned_for = 5, .warned_at = 4};
    struct tokend_error freq = {TOKEND_EX_NOPERM,
                                (char *)"sign-in needed: a sign-in frequency "
                                        "policy requires signing in again (AADSTS70043)",
                                NULL, NULL, 0};
    struct tokend_error other = {TOKEND_EX_NOPERM,
                                 (char *)"sign-in needed: the sign-in has "
                                         "expired or was revoked (AADSTS70008)",
                                 NULL, NULL, 0};
    struct tokend_error temp = {TOKEND_EX_TEMPFAIL, (char *)"(AADSTS70043)", NULL, NULL, 0};

    reauth_note_failure(&st, &other, T0 + 8 * DAY);
    reauth_note_failure(&st, &temp, T0 + 8 * DAY);
    g_assert_cmpint(st.frequency_seen_at, ==, 0);
    reauth_note_failure(&st, &freq, T0 + 8 * DAY);
    g_assert_cmpint(st.frequency_seen_at, ==, T0 + 8 * DAY);
    g_assert_cmpint(st.frequency_interval, ==, 7 * DAY);
    /* The attempts after it, with the sign-in lost, keep the first sighting. */
    st.needs_signin = true;
    reauth_note_failure(&st, &freq, T0 + 9 * DAY);
    g_assert_cmpint(st.frequency_seen_at, ==, T0 + 8 * DAY);

    /* A refresh keeps the server's word unless a new token comes without it. */
    reauth_note_response(&st, 3600, false, false, T0);
    g_assert_cmpint(st.refresh_token_expires_at, ==, T0 + 3600);
    reauth_note_response(&st, 0, false, false, T0);
    g_assert_cmpint(st.refresh_token_expires_at, ==, T0 + 3600);
    g_assert_cmpint(st.warned_for, ==, 5);
    reauth_note_response(&st, 0, true, false, T0);
    g_assert_cmpint(st.refresh_token_expires_at, ==, 0);
    /* A new sign-in: no warning sent yet. */
    reauth_note_response(&st, 0, true, true, T0);
    g_assert_cmpint(st.warned_for, ==, 0);
    g_assert_cmpint(st.warned_at, ==, 0);
    g_assert_cmpint(st.frequency_interval, ==, 7 * DAY);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/reauth/estimate", test_estimate);
    g_test_add_func("/reauth/warn-at", test_warn_at);
    g_test_add_func("/reauth/note", test_note);
    return testutil_run();
}
