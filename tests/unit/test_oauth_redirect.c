/* oauth: what comes back from the authorization server, pasted by the user
 * or caught on the loopback redirect, and its checks. */

#include <string.h>

#include "tokend/oauth.h"
#include "testutil.h"

#define MS_URL "https://login.microsoftonline.com/common/oauth2/nativeclient"

static const struct {
    const char *input;
    const char *code, *state, *error, *description;
    bool bare;
} pasted_good[] = {
    {MS_URL "?code=M.C507_BAY.2.U.abc&state=xyz&session_state=1234-5678", "M.C507_BAY.2.U.abc",
     "xyz", NULL, NULL, false},
    {"  \t" MS_URL "?code=M.C507_BAY.2.U.abc&state=xyz  \n", "M.C507_BAY.2.U.abc", "xyz", NULL,
     NULL, false},
    {"\"" MS_URL "?code=c1&state=xyz\"", "c1", "xyz", NULL, NULL, false},
    {"'" MS_URL "?code=c1&state=xyz'", "c1", "xyz", NULL, NULL, false},
    {"<" MS_URL "?code=c1&state=xyz>", "c1", "xyz", NULL, NULL, false},
    {" \"<" MS_URL "?code=c1&state=xyz>\" ", "c1", "xyz", NULL, NULL, false},
    {MS_URL "?code=c1&state=xyz\n", "c1", "xyz", NULL, NULL, false},
    {MS_URL "?code=c1&state=xyz\r\n", "c1", "xyz", NULL, NULL, false},
    {MS_URL "/?code=c1&state=xyz", "c1", "xyz", NULL, NULL, false},
    {"http://localhost:8123/?state=xyz&code=c1", "c1", "xyz", NULL, NULL, false},
    {"http://127.0.0.1/#code=c1&state=xyz", "c1", "xyz", NULL, NULL, false},
    {"code=abc&state=xyz", "abc", "xyz", NULL, NULL, false},
    /* Parameters without "=" or without a name are passed over. */
    {"flag&&=x&code=abc&state=xyz&", "abc", "xyz", NULL, NULL, false},
    {"code=a+b%2Bc&state=x%20y", "a b+c", "x y", NULL, NULL, false},
    {"?code=abc&state=xyz", "abc", "xyz", NULL, NULL, false},
    {"M.C507_BAY.2.U.abc", "M.C507_BAY.2.U.abc", NULL, NULL, NULL, true},
    {"  M.C507_BAY.2.U.abc\n", "M.C507_BAY.2.U.abc", NULL, NULL, NULL, true},
    {"4/0AX4XfWh-_~.", "4/0AX4XfWh-_~.", NULL, NULL, NULL, true},
    {MS_URL "?code=a%2Bb&state=x%20y", "a+b", "x y", NULL, NULL, false},
    {MS_URL "?code=a+b&state=x+y", "a b", "x y", NULL, NULL, false},
    {MS_URL "?code=%41%62&state=%e2%9c%93", "Ab", "\xe2\x9c\x93", NULL, NULL, false},
    {MS_URL "?error=access_denied&error_description=The+user+denied&state=xyz", NULL, "xyz",
     "access_denied", "The user denied", false},
    {MS_URL "?code=c1&state=xyz&&novalue&=x&unknown=1", "c1", "xyz", NULL, NULL, false},
    {MS_URL "?code=c1&state=", "c1", "", NULL, NULL, false},
};

static void test_pasted_good(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(pasted_good); i++) {
        g_autoptr(RedirectParams) p = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu: %s", i, pasted_good[i].input);
        g_assert_cmpint(oauth_parse_pasted(pasted_good[i].input, &p, &e), ==, 0);
        g_assert_nonnull(p);
        if (pasted_good[i].code)
            g_assert_cmpstr(p->code->data, ==, pasted_good[i].code);
        else
            g_assert_null(p->code);
        g_assert_cmpstr(p->state, ==, pasted_good[i].state);
        g_assert_cmpstr(p->error, ==, pasted_good[i].error);
        g_assert_cmpstr(p->error_description, ==, pasted_good[i].description);
        g_assert_cmpint(p->bare, ==, pasted_good[i].bare);
        g_assert_cmpint(e.status, ==, 0);
    }
}

static const char *const pasted_bad[] = {
    "",
    "   \n",
    "\"\"",
    "<>",
    "not a url at all",
    MS_URL,
    "https://",
    "https://login.microsoftonline.com/common/oauth2/nativeclient?code=a b&state=x",
    MS_URL "?code=c1&state=xyz&state=xyz",
    MS_URL "?code=c1&code=c2&state=xyz",
    MS_URL "?code=c1&state=a&iss=x&iss=y",
    MS_URL "?code=c1&state=xyz&error=e1&error=e2",
    MS_URL "?code=a%00b&state=xyz",
    MS_URL "?code=c1&state=x%zzy",
    "code=abc&state=xyz&state=abc",
    "token with\ttab",
    "caf\xc3\xa9",
};

static void test_pasted_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(pasted_bad); i++) {
        RedirectParams *p = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu: %s", i, pasted_bad[i]);
        g_assert_cmpint(oauth_parse_pasted(pasted_bad[i], &p, &e), ==, -1);
        g_assert_null(p);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
        g_assert_nonnull(e.message);
    }
}

static void test_redirect_add(void)
{
    g_autoptr(RedirectParams) p = g_new0(RedirectParams, 1);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    g_assert_cmpint(oauth_redirect_add(p, "code", "c+1", &e), ==, 0);
    g_assert_cmpint(oauth_redirect_add(p, "state", "s", &e), ==, 0);
    g_assert_cmpint(oauth_redirect_add(p, "session_state", "x", &e), ==, 0);
    g_assert_cmpint(oauth_redirect_add(p, "iss", NULL, &e), ==, 0);
    /* Values are taken as they are: already decoded. */
    g_assert_cmpstr(p->code->data, ==, "c+1");
    g_assert_cmpstr(p->state, ==, "s");
    g_assert_cmpstr(p->iss, ==, "");
    g_assert_cmpint(oauth_redirect_add(p, "state", "s", &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
    testutil_assert_contains(e.message, "state");
    g_assert_cmpint(oauth_redirect_add(p, "code", "c2", &e), ==, -1);
    g_assert_cmpstr(p->code->data, ==, "c+1");
}

#define ISSUER "https://idp.example"

static const struct {
    const char *query;
    const char *expected_state;
    const char *issuer;
    bool iss_required;
    int status;
    const char *fragment; /* in the message */
} check_cases[] = {
    {"code=c&state=s", "s", NULL, false, 0, NULL},
    {"code=c&state=s&session_state=x", "s", ISSUER, false, 0, NULL},
    {"code=c&state=s&iss=https%3A%2F%2Fidp.example", "s", ISSUER, true, 0, NULL},
    {"code=c&state=s&iss=https%3A%2F%2Fidp.example", "s", NULL, false, 0, NULL},
    {"code=c&state=t", "s", NULL, false, TOKEND_EX_DATAERR, "state differs"},
    {"code=c&state=S", "s", NULL, false, TOKEND_EX_DATAERR, "state differs"},
    {"code=c&state=", "s", NULL, false, TOKEND_EX_DATAERR, "state"},
    {"code=c", "s", NULL, false, TOKEND_EX_DATAERR, "no state"},
    {"error=access_denied&error_description=The+user+denied&state=s", "s", NULL, false,
     TOKEND_EX_NOPERM, "the sign-in failed"},
    {"error=access_denied&state=t", "s", NULL, false, TOKEND_EX_DATAERR, "state differs"},
    {"error=server_error&state=s", "s", NULL, false, TOKEND_EX_TEMPFAIL, "sign-in failed"},
    {"error=invalid_request&state=s&error_description=AADSTS50011%3A+bad+redirect", "s", NULL,
     false, TOKEND_EX_CONFIG, "AADSTS50011"},
    {"code=c&state=s&iss=https%3A%2F%2Fevil.example", "s", ISSUER, false, TOKEND_EX_DATAERR,
     "evil.example"},
    {"code=c&state=s", "s", ISSUER, true, TOKEND_EX_DATAERR, "iss"},
    {"state=s", "s", NULL, false, TOKEND_EX_DATAERR, "no authorization code"},
    {"code=&state=s", "s", NULL, false, TOKEND_EX_DATAERR, "no authorization code"},
};

static void test_check_redirect(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(check_cases); i++) {
        const struct oauth_client c = {
            .client_id = "cid",
            .issuer = check_cases[i].issuer,
            .iss_required = check_cases[i].iss_required,
        };
        g_autoptr(RedirectParams) p = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        int r;

        g_test_message("case %zu: %s", i, check_cases[i].query);
        g_assert_cmpint(oauth_parse_query(check_cases[i].query, &p, &e), ==, 0);
        r = oauth_check_redirect(p, check_cases[i].expected_state, &c, &e);
        g_assert_cmpint(r, ==, check_cases[i].status ? -1 : 0);
        g_assert_cmpint(e.status, ==, check_cases[i].status);
        if (check_cases[i].fragment)
            testutil_assert_contains(e.message, check_cases[i].fragment);
    }
}

/* A pasted bare code has no state to check, and no iss either. */
static void test_check_bare(void)
{
    const struct oauth_client c = {.client_id = "cid", .issuer = ISSUER, .iss_required = true};
    g_autoptr(RedirectParams) p = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    g_assert_cmpint(oauth_parse_pasted("M.C507_BAY.2.U.abc", &p, &e), ==, 0);
    g_assert_true(p->bare);
    g_assert_cmpint(oauth_check_redirect(p, "expected-state", &c, &e), ==, 0);
    g_assert_cmpint(e.status, ==, 0);
}

/* A URL whose query is empty may parse, but never passes the check. */
static void test_empty_query(void)
{
    static const char *const inputs[] = {MS_URL "?", MS_URL "?&&", MS_URL "#"};
    const struct oauth_client c = {.client_id = "cid"};

    for (size_t i = 0; i < G_N_ELEMENTS(inputs); i++) {
        g_autoptr(RedirectParams) p = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu: %s", i, inputs[i]);
        if (oauth_parse_pasted(inputs[i], &p, &e) == 0)
            g_assert_cmpint(oauth_check_redirect(p, "s", &c, &e), ==, -1);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
    }
}

/* Where a pasted URL went, compared with the redirect URI when the catcher
 * waits beside the prompt: never the parameters that carry the code. */
static const struct {
    const char *input, *address;
} pasted_addresses[] = {
    {"http://localhost:8123/?state=xyz&code=c1", "http://localhost:8123/"},
    {"\"http://localhost:8123?code=c1&state=xyz\"", "http://localhost:8123/"},
    {"http://127.0.0.1:40000/cb/?code=c1&state=xyz#frag", "http://127.0.0.1:40000/cb/"},
    {"http://127.0.0.1/#code=c1&state=xyz", "http://127.0.0.1/"},
    {"http://[::1]:5000/?code=c1&state=xyz", "http://[::1]:5000/"},
    {MS_URL "?code=c1&state=xyz&session_state=1", MS_URL},
    {"code=c1&state=xyz", NULL},
    {"?code=c1&state=xyz", NULL},
    {"M.C507_BAY.2.U.abc", NULL},
};

static void test_pasted_address(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(pasted_addresses); i++) {
        g_autoptr(RedirectParams) p = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu: %s", i, pasted_addresses[i].input);
        g_assert_cmpint(oauth_parse_pasted(pasted_addresses[i].input, &p, &e), ==, 0);
        g_assert_cmpstr(p->address, ==, pasted_addresses[i].address);
        g_assert_cmpstr(p->code->data, !=, NULL);
        if (p->address)
            g_assert_null(strstr(p->address, p->code->data));
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/oauth/pasted/good", test_pasted_good);
    g_test_add_func("/oauth/pasted/bad", test_pasted_bad);
    g_test_add_func("/oauth/pasted/empty-query", test_empty_query);
    g_test_add_func("/oauth/pasted/address", test_pasted_address);
    g_test_add_func("/oauth/redirect-add", test_redirect_add);
    g_test_add_func("/oauth/check-redirect", test_check_redirect);
    g_test_add_func("/oauth/check-redirect/bare", test_check_bare);
    return testutil_run();
}
