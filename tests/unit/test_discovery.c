/* discovery: the metadata document parser (OpenID Connect discovery,
 * RFC 8414): the issuer check, the endpoints, RFC 9207's flag. */

#include <string.h>

#include "tokend/discovery.h"
#include "testutil.h"

#define ISSUER "https://idp.example"

static Discovery *parse(const char *json, const char *issuer, TokendError *e)
{
    return discovery_parse(json, strlen(json), issuer, e);
}

static void test_good(void)
{
    static const struct {
        const char *json, *issuer, *token;
        bool iss_supported, templated;
    } good[] = {
        {"{\"issuer\":\"" ISSUER "\",\"token_endpoint\":\"" ISSUER "/t\"}", ISSUER, ISSUER "/t",
         false, false},
        /* A trailing slash on either side is the same issuer. */
        {"{\"issuer\":\"" ISSUER "/\",\"token_endpoint\":\"" ISSUER "/t\"}", ISSUER, ISSUER "/t",
         false, false},
        {"{\"issuer\":\"" ISSUER "\"}", ISSUER "/", NULL, false, false},
        {"{\"issuer\":\"" ISSUER "\",\"authorization_response_iss_parameter_supported\":true}",
         ISSUER, NULL, true, false},
        {"{\"issuer\":\"" ISSUER "\",\"authorization_response_iss_parameter_supported\":1}", ISSUER,
         NULL, false, false},
        /* The test peers: http to loopback. */
        {"{\"issuer\":\"http://127.0.0.1:9/x\",\"token_endpoint\":\"http://127.0.0.1:9/t\"}",
         "http://127.0.0.1:9/x", "http://127.0.0.1:9/t", false, false},
        /* Microsoft's multi-tenant document: no issuer check, no RFC 9207. */
        {"{\"issuer\":\"https://login.microsoftonline.com/{tenantid}/v2.0\","
         "\"authorization_response_iss_parameter_supported\":true}",
         "https://login.microsoftonline.com/common/v2.0", NULL, false, true},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Discovery) d = parse(good[i].json, good[i].issuer, &e);

        g_test_message("good %zu: %s", i, good[i].json);
        g_assert_nonnull(d);
        g_assert_cmpstr(d->token_endpoint, ==, good[i].token);
        g_assert_cmpint(d->iss_parameter_supported, ==, good[i].iss_supported);
        g_assert_cmpint(d->issuer_templated, ==, good[i].templated);
        g_assert_null(e.message);
    }
}

/* Who signed in: the userinfo endpoint, and whether the email scope is
 * offered (asked for when the account names its user). */
static void test_userinfo_and_email(void)
{
    static const struct {
        const char *json, *userinfo;
        bool email;
    } cases[] = {
        {"{\"issuer\":\"" ISSUER "\",\"userinfo_endpoint\":\"" ISSUER "/me\","
         "\"scopes_supported\":[\"openid\",\"email\",\"profile\"]}",
         ISSUER "/me", true},
        {"{\"issuer\":\"" ISSUER "\",\"scopes_supported\":[\"openid\",\"profile\"]}", NULL, false},
        {"{\"issuer\":\"" ISSUER "\",\"scopes_supported\":\"openid email\"}", NULL, false},
        {"{\"issuer\":\"" ISSUER "\",\"scopes_supported\":[7,\"email\"]}", NULL, true},
        {"{\"issuer\":\"" ISSUER "\"}", NULL, false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Discovery) d = parse(cases[i].json, ISSUER, &e);

        g_test_message("case %zu: %s", i, cases[i].json);
        g_assert_nonnull(d);
        g_assert_cmpstr(d->userinfo_endpoint, ==, cases[i].userinfo);
        g_assert_cmpint(d->email_scope, ==, cases[i].email);
    }
}

static void test_bad(void)
{
    static const struct {
        const char *json, *fragment;
    } bad[] = {
        {"", "not a JSON object"},
        {"[]", "not a JSON object"},
        {"{}", "names no issuer"},
        {"{\"issuer\":7}", "names no issuer"},
        {"{\"issuer\":\"https://evil.example\"}", "for issuer https://evil.example, not " ISSUER},
        {"{\"issuer\":\"" ISSUER "/other\"}", "not " ISSUER},
        {"{\"issuer\":\"" ISSUER "\",\"token_endpoint\":\"http://idp.example/t\"}",
         "unusable token_endpoint"},
        {"{\"issuer\":\"" ISSUER "\",\"authorization_endpoint\":7}",
         "unusable authorization_endpoint"},
        {"{\"issuer\":\"" ISSUER "\",\"device_authorization_endpoint\":\"not a url\"}",
         "unusable device_authorization_endpoint"},
        {"{\"issuer\":\"" ISSUER "\",\"revocation_endpoint\":\"ftp://idp.example/r\"}",
         "unusable revocation_endpoint"},
        {"{\"issuer\":\"" ISSUER "\",\"userinfo_endpoint\":\"http://idp.example/me\"}",
         "unusable userinfo_endpoint"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Discovery) d = parse(bad[i].json, ISSUER, &e);

        g_test_message("bad %zu: %s", i, bad[i].json);
        g_assert_null(d);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
        testutil_assert_contains(e.message, bad[i].fragment);
    }
}

/* token_endpoint_auth_methods_supported: HTTP Basic only when it is listed
 * and client_secret_post is not. */
static void test_auth_methods(void)
{
    static const struct {
        const char *methods;
        bool basic_only;
    } cases[] = {
        {NULL, false},
        {"[\"client_secret_basic\"]", true},
        {"[\"private_key_jwt\",\"client_secret_basic\"]", true},
        {"[\"client_secret_basic\",\"client_secret_post\"]", false},
        {"[\"client_secret_post\"]", false},
        {"[]", false},
        {"\"client_secret_basic\"", false},
        {"[1,\"none\"]", false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct tokend_error e = TOKEND_ERROR_INIT;
        g_autofree char *json =
            cases[i].methods ? g_strdup_printf("{\"issuer\":\"" ISSUER
                                               "\",\"token_endpoint_auth_methods_supported\":%s}",
                                               cases[i].methods)
                             : g_strdup("{\"issuer\":\"" ISSUER "\"}");
        g_autoptr(Discovery) d = discovery_parse(json, strlen(json), ISSUER, &e);

        g_test_message("case %zu", i);
        g_assert_nonnull(d);
        g_assert_cmpint(d->secret_basic_only, ==, cases[i].basic_only);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/discovery/good", test_good);
    g_test_add_func("/discovery/userinfo-and-email", test_userinfo_and_email);
    g_test_add_func("/discovery/bad", test_bad);
    g_test_add_func("/discovery/auth-methods", test_auth_methods);
    return testutil_run();
}
