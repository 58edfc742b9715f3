/* redact: token-shaped text from servers and commands never printed. */

#include <string.h>

#include "tokend/redact.h"
#include "tokend/error.h"
#include "testutil.h"

#define JWT "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS1qd3Q"
#define XOAUTH2 "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNS"

static const struct {
    const char *in;
    const char *out;
} cases[] = {
    {"", ""},
    {"NO [AUTHENTICATIONFAILED] Authentication failed.",
     "NO [AUTHENTICATIONFAILED] Authentication failed."},
    {"-ERR [AUTH] Authentication failed.", "-ERR [AUTH] Authentication failed."},
    {"535 5.7.8 Error: authentication failed: " XOAUTH2,
     "535 5.7.8 Error: authentication failed: " REDACTED},
    {"NO bad token " JWT " rejected", "NO bad token " REDACTED " rejected"},
    {"invalid token ya29.a0AfH6SMBx1234abcdEFGH_ijkl", "invalid token " REDACTED},
    {"AADSTS70008: The provided authorization code or refresh token has expired",
     "AADSTS70008: The provided authorization code or refresh token has expired"},
    {"quoted \"" XOAUTH2 "==\" back", "quoted \"" REDACTED "\" back"},
    {"host imap.example.com port 993", "host imap.example.com port 993"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    {"250-ENHANCEDSTATUSCODES", "250-ENHANCEDSTATUSCODES"},
    {"* CAPABILITY IMAP4rev1 APPENDLIMIT=35651584 AUTH=XOAUTH2",
     "* CAPABILITY IMAP4rev1 APPENDLIMIT=35651584 AUTH=XOAUTH2"},
    /* Trace and correlation ids stay: support asks for them. */
    {"Trace ID: 0f3c5e9a-1b2c-4d5e-8f90-a1b2c3d4e5f6 Correlation ID: "
     "7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D",
     "Trace ID: 0f3c5e9a-1b2c-4d5e-8f90-a1b2c3d4e5f6 Correlation ID: "
     "7A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"},
    {"0f3c5e9a-1b2c-4d5e-8f90-a1b2c3d4e5f6x1", REDACTED},
    {"abcdefghijklmnopqrstuvwxyz0123", REDACTED},
};

static void test_table(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *r = redact_text(cases[i].in, NULL);
        g_assert_cmpstr(r, ==, cases[i].out);
        g_assert_true(redact_needed(cases[i].in, NULL) == (strcmp(cases[i].in, cases[i].out) != 0));
    }
}

static void test_known(void)
{
    const char *known[] = {"short1", NULL};
    g_autofree char *r = redact_text("token short1 and short1x", known);

    g_assert_cmpstr(r, ==, "token " REDACTED " and " REDACTED "x");
    g_autofree char *n = redact_text(NULL, known);
    g_assert_cmpstr(n, ==, "");
}

/* The server's raw words (shown with -v) are redacted where they are kept. */
static void test_error_detail(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    error_set(&e, TOKEND_EX_NOPERM, "refused");
    error_set_detail(&e, "invalid_grant: token " JWT);
    g_assert_null(strstr(e.detail, "eyJ"));
    testutil_assert_contains(e.detail, REDACTED);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/redact/table", test_table);
    g_test_add_func("/redact/known", test_known);
    g_test_add_func("/redact/error-detail", test_error_detail);
    return testutil_run();
}
