/* tokenformat: bare tokens and SASL XOAUTH2 / OAUTHBEARER initial responses. */

#include <string.h>

#include "tokend/tokenformat.h"
#include "testutil.h"

/* Google's documented XOAUTH2 example
 * (developers.google.com/gmail/imap/xoauth2-protocol). */
#define GOOGLE_USER "someuser@example.com"
#define GOOGLE_TOKEN "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
#define GOOGLE_SASL                                                                                \
    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNS"             \
    "bGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="

static char *b64(const char *text)
{
    return g_base64_encode((const guchar *)text, strlen(text));
}

static SecStr *render(enum token_format f, const char *token, const char *user, const char *host,
                      int port, TokendError *e)
{
    g_autoptr(SecStr) t = secstr_from(token, strlen(token));
    return tokenformat_render(f, t, user, host, port, e);
}

static void test_from_name(void)
{
    g_assert_cmpint(tokenformat_from_name("raw"), ==, TOKEN_FORMAT_RAW);
    g_assert_cmpint(tokenformat_from_name("xoauth2"), ==, TOKEN_FORMAT_XOAUTH2);
    g_assert_cmpint(tokenformat_from_name("oauthbearer"), ==, TOKEN_FORMAT_OAUTHBEARER);
    g_assert_cmpint(tokenformat_from_name("XOAUTH2"), ==, -1);
    g_assert_cmpint(tokenformat_from_name(""), ==, -1);
    g_assert_cmpint(tokenformat_from_name("plain"), ==, -1);
}

static void test_raw(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) out = render(TOKEN_FORMAT_RAW, "tok.en", NULL, NULL, 0, &e);

    g_assert_nonnull(out);
    g_assert_cmpstr(out->data, ==, "tok.en");
}

static void test_xoauth2(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) out =
        render(TOKEN_FORMAT_XOAUTH2, GOOGLE_TOKEN, GOOGLE_USER, "imap.gmail.com", 993, &e);
    g_autofree char *want = b64("user=" GOOGLE_USER "\001auth=Bearer " GOOGLE_TOKEN "\001\001");

    g_assert_nonnull(out);
    g_assert_cmpstr(out->data, ==, GOOGLE_SASL);
    g_assert_cmpstr(out->data, ==, want);
    g_assert_cmpuint(out->len, ==, strlen(GOOGLE_SASL));
}

static const struct {
    const char *user, *host;
    int port;
    const char *plain;
} bearer_cases[] = {
    {"user@example.com", "imap.example.com", 993,
     "n,a=user@example.com,\001host=imap.example.com\001port=993\001auth=Bearer TOKEN\001\001"},
    {"user@example.com", NULL, 993, "n,a=user@example.com,\001auth=Bearer TOKEN\001\001"},
    {"user@example.com", "smtp.example.com", 587,
     "n,a=user@example.com,\001host=smtp.example.com\001port=587\001auth=Bearer TOKEN\001\001"},
    /* RFC 7628 section 3.1 / RFC 5801: ',' and '=' are escaped in the GS2 header. */
    {"a,b=c", NULL, 0, "n,a=a=2Cb=3Dc,\001auth=Bearer TOKEN\001\001"},
};

static void test_oauthbearer(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bearer_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(SecStr) out = render(TOKEN_FORMAT_OAUTHBEARER, "TOKEN", bearer_cases[i].user,
                                       bearer_cases[i].host, bearer_cases[i].port, &e);
        g_autofree char *want = b64(bearer_cases[i].plain);

        g_test_message("case %zu", i);
        g_assert_nonnull(out);
        g_assert_cmpstr(out->data, ==, want);
    }
}

static void test_needs_user(void)
{
    static const enum token_format formats[] = {TOKEN_FORMAT_XOAUTH2, TOKEN_FORMAT_OAUTHBEARER};

    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(SecStr) out = render(formats[i], "TOKEN", NULL, "imap.example.com", 993, &e);

        g_assert_null(out);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        testutil_assert_contains(e.hint, "username");
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/tokenformat/from-name", test_from_name);
    g_test_add_func("/tokenformat/raw", test_raw);
    g_test_add_func("/tokenformat/xoauth2", test_xoauth2);
    g_test_add_func("/tokenformat/oauthbearer", test_oauthbearer);
    g_test_add_func("/tokenformat/needs-user", test_needs_user);
    return testutil_run();
}
