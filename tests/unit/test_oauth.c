/* oauth: token response parsing and the authorization URL.  Redirects are
 * in test_oauth_redirect.c, error responses in test_oauth_error.c. */

#include <string.h>

#include "tokend/oauth.h"
#include "testutil.h"

static HttpResponse *response(long status, const char *content_type, const char *body, size_t len)
{
    HttpResponse *r = g_new0(HttpResponse, 1);

    r->status = status;
    r->body = secstr_from(body, len);
    r->content_type = g_strdup(content_type);
    return r;
}

static const struct {
    const char *body;
    const char *access, *refresh, *scope;
    gint64 expires_in;
} good_cases[] = {
    {"{\"token_type\":\"Bearer\",\"scope\":\"a b\",\"expires_in\":3599,"
     "\"access_token\":\"EwB.access\",\"refresh_token\":\"M.C5.refresh\"}",
     "EwB.access", "M.C5.refresh", "a b", 3599},
    {"{\"access_token\":\"at\",\"expires_in\":\"3599\",\"token_type\":\"Bearer\"}", "at", NULL,
     NULL, 3599},
    {"{\"access_token\":\"at\",\"token_type\":\"Bearer\"}", "at", NULL, NULL, 3600},
    {"{\"access_token\":\"at\",\"expires_in\":null}", "at", NULL, NULL, 3600},
    {"{\"access_token\":\"at\",\"token_type\":\"bearer\",\"expires_in\":60}", "at", NULL, NULL, 60},
    {"{\"access_token\":\"at\",\"token_type\":\"BEARER\",\"expires_in\":60}", "at", NULL, NULL, 60},
    {"{\"access_token\":\"at\",\"expires_in\":60}", "at", NULL, NULL, 60},
    {"{\"access_token\":\"at\",\"expires_in\":3599,\"ext_expires_in\":7199}", "at", NULL, NULL,
     3599},
    {"{\"access_token\":\"at\",\"refresh_token\":null,\"scope\":null}", "at", NULL, NULL, 3600},
    {"{\"access_token\":\"ya29.a0-_~+/=\",\"id_token\":\"eyJ\",\"foo\":{\"bar\":[1]}}",
     "ya29.a0-_~+/=", NULL, NULL, 3600},
    {"{\"access_token\":\"at\",\"expires_in\":1}", "at", NULL, NULL, 1},
    {"{\"access_token\":\"at\",\"expires_in\":31622400}", "at", NULL, NULL, 31622400},
    {" \r\n{\"access_token\":\"at\"}\n", "at", NULL, NULL, 3600},
};

static void test_token_good(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(good_cases); i++) {
        const char *body = good_cases[i].body;
        g_autoptr(HttpResponse) r = response(200, "application/json", body, strlen(body));
        g_autoptr(TokenResponse) t = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu: %s", i, body);
        g_assert_cmpint(oauth_parse_token_response(r, &t, &e), ==, 0);
        g_assert_nonnull(t);
        g_assert_cmpstr(t->access_token->data, ==, good_cases[i].access);
        if (good_cases[i].refresh)
            g_assert_cmpstr(t->refresh_token->data, ==, good_cases[i].refresh);
        else
            g_assert_null(t->refresh_token);
        g_assert_cmpstr(t->scope, ==, good_cases[i].scope);
        g_assert_cmpint(t->expires_in, ==, good_cases[i].expires_in);
        g_assert_cmpint(e.status, ==, 0);
    }
}

static const char *const bad_cases[] = {
    "",
    "not json",
    "[]",
    "[{\"access_token\":\"at\"}]",
    "null",
    "\"at\"",
    "<html><body>Sign in to continue</body></html>",
    "{}",
    "{\"token_type\":\"Bearer\",\"expires_in\":3599}",
    "{\"access_token\":\"\"}",
    "{\"access_token\":null}",
    "{\"access_token\":\"a b\"}",
    "{\"access_token\":\"at\\r\\n\"}",
    "{\"access_token\":\"t\\u00f6k\"}",
    "{\"access_token\":12345}",
    "{\"access_token\":[\"at\"]}",
    "{\"access_token\":\"at\",\"token_type\":\"mac\"}",
    "{\"access_token\":\"at\",\"token_type\":\"\"}",
    "{\"access_token\":\"at\",\"token_type\":5}",
    "{\"access_token\":\"at\",\"expires_in\":-5}",
    "{\"access_token\":\"at\",\"expires_in\":0}",
    "{\"access_token\":\"at\",\"expires_in\":1e12}",
    "{\"access_token\":\"at\",\"expires_in\":\"abc\"}",
    "{\"access_token\":\"at\",\"expires_in\":\"\"}",
    "{\"access_token\":\"at\",\"expires_in\":\"3599s\"}",
    "{\"access_token\":\"at\",\"expires_in\":true}",
    "{\"access_token\":\"at\",\"expires_in\":{}}",
    "{\"access_token\":\"at\",\"refresh_token\":\"\"}",
    "{\"access_token\":\"at\",\"refresh_token\":\"r t\"}",
    "{\"access_token\":\"at\",\"refresh_token\":7}",
    "{\"access_token\":\"at\",\"scope\":[\"a\"]}",
    "{\"access_token\":\"at\"",
};

static void expect_bad(const char *body, size_t len)
{
    g_autoptr(HttpResponse) r = response(200, "application/json", body, len);
    g_autoptr(TokenResponse) t = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    g_assert_cmpint(oauth_parse_token_response(r, &t, &e), ==, -1);
    g_assert_null(t);
    g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
    g_assert_nonnull(e.message);
    g_assert_null(strpbrk(e.message, "\r\n"));
}

static void test_token_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        g_test_message("case %zu: %s", i, bad_cases[i]);
        expect_bad(bad_cases[i], strlen(bad_cases[i]));
    }
}

static void test_token_hostile(void)
{
    const size_t depth = 10000, big = 1024 * 1024;
    g_autoptr(GString) bomb = g_string_new(NULL);
    g_autoptr(GString) huge = g_string_new("{\"access_token\":\"");
    g_autoptr(GString) obj_bomb = g_string_new(NULL);

    for (size_t i = 0; i < depth; i++)
        g_string_append_c(bomb, '[');
    for (size_t i = 0; i < depth; i++)
        g_string_append_c(bomb, ']');
    expect_bad(bomb->str, bomb->len);
    for (size_t i = 0; i < depth; i++)
        g_string_append(obj_bomb, "{\"a\":");
    g_string_append(obj_bomb, "1");
    for (size_t i = 0; i < depth; i++)
        g_string_append_c(obj_bomb, '}');
    expect_bad(obj_bomb->str, obj_bomb->len);
    for (size_t i = 0; i < big; i++)
        g_string_append_c(huge, 'a');
    g_string_append(huge, "\",\"token_type\":\"Bearer\"}");
    expect_bad(huge->str, huge->len);
}

/* A 2xx carrying "error" is an error, not a malformed token response. */
static void test_token_error_in_2xx(void)
{
    const char *body = "{\"error\":\"invalid_grant\",\"error_description\":\"expired\"}";
    g_autoptr(HttpResponse) r = response(200, "application/json", body, strlen(body));
    g_autoptr(TokenResponse) t = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    g_assert_cmpint(oauth_parse_token_response(r, &t, &e), ==, -1);
    g_assert_null(t);
    g_assert_cmpint(e.status, ==, TOKEND_EX_NOPERM);
}

/* The query of an authorization URL, decoded. */
static GHashTable *query_of(const char *url)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_ENCODED_QUERY, &err);
    GHashTable *params;

    g_assert_no_error(err);
    params = g_uri_parse_params(g_uri_get_query(uri), -1, "&", G_URI_PARAMS_WWW_FORM, &err);
    g_assert_no_error(err);
    return params;
}

static void test_authorize_url(void)
{
    static const char *const extra[] = {"login_hint=me@example.com", "prompt=select_account",
                                        "no-equals-sign", NULL};
    const struct oauth_client c = {
        .client_id = "00000000-0000-0000-0000-000000000001",
        .authorize_url = "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        .scopes = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
    };
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *url =
        oauth_authorize_url(&c, "http://localhost:8123/", "st-1",
                            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", extra, &e);
    g_autoptr(GHashTable) q = NULL;
    g_autofree char *lower = NULL;
    const char *query;

    g_assert_nonnull(url);
    g_assert_true(g_str_has_prefix(url, "https://login.microsoftonline.com/common/oauth2/"
                                        "v2.0/authorize?response_type=code&"));
    query = strchr(url, '?');
    /* Nothing in the query is left unencoded. */
    g_assert_null(strpbrk(query, " :/@"));
    /* curl writes lower-case hex digits; either case is valid. */
    lower = g_ascii_strdown(url, -1);
    testutil_assert_contains(lower, "redirect_uri=http%3a%2f%2flocalhost%3a8123%2f");
    testutil_assert_contains(lower, "login_hint=me%40example.com");
    testutil_assert_contains(url, "code_challenge_method=S256");
    q = query_of(url);
    g_assert_cmpstr(g_hash_table_lookup(q, "response_type"), ==, "code");
    g_assert_cmpstr(g_hash_table_lookup(q, "client_id"), ==, c.client_id);
    g_assert_cmpstr(g_hash_table_lookup(q, "redirect_uri"), ==, "http://localhost:8123/");
    g_assert_cmpstr(g_hash_table_lookup(q, "scope"), ==, c.scopes);
    g_assert_cmpstr(g_hash_table_lookup(q, "state"), ==, "st-1");
    g_assert_cmpstr(g_hash_table_lookup(q, "code_challenge"), ==,
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    g_assert_cmpstr(g_hash_table_lookup(q, "code_challenge_method"), ==, "S256");
    g_assert_cmpstr(g_hash_table_lookup(q, "login_hint"), ==, "me@example.com");
    g_assert_cmpstr(g_hash_table_lookup(q, "prompt"), ==, "select_account");
    g_assert_false(g_hash_table_contains(q, "no-equals-sign"));
    g_assert_cmpuint(g_hash_table_size(q), ==, 9);
}

static void test_authorize_url_keeps_query(void)
{
    const struct oauth_client c = {
        .client_id = "cid",
        .authorize_url = "https://idp.example/authorize?p=1",
        .scopes = "openid",
    };
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *url = oauth_authorize_url(&c, "http://127.0.0.1/", "s", "ch", NULL, &e);
    g_autoptr(GHashTable) q = NULL;

    g_assert_nonnull(url);
    g_assert_true(g_str_has_prefix(url, "https://idp.example/authorize?p=1&response_type=code&"));
    q = query_of(url);
    g_assert_cmpstr(g_hash_table_lookup(q, "p"), ==, "1");
    g_assert_cmpstr(g_hash_table_lookup(q, "client_id"), ==, "cid");
}

static void test_authorize_url_refused(void)
{
    static const char *const refused[] = {
        "http://idp.example/authorize",
        "ftp://idp.example/authorize",
        "not a url",
        NULL,
    };

    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++) {
        const struct oauth_client c = {
            .client_id = "cid", .authorize_url = refused[i], .scopes = "openid"};
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *url = oauth_authorize_url(&c, "http://127.0.0.1/", "s", "ch", NULL, &e);

        g_test_message("case %zu", i);
        g_assert_null(url);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    }
}

/* The refresh request carries scope only when the client says so: leaving
 * it out means "as granted" (RFC 6749 section 6). */
static void test_refresh_form(void)
{
    static const struct {
        const char *refresh_scopes;
        const char *want; /* NULL: no scope parameter */
    } cases[] = {
        {NULL, NULL},
        {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
         "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"},
        {"openid", "openid"},
    };
    g_autoptr(SecStr) rt = secstr_from("M.C5.refresh", 12);

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const struct oauth_client c = {.client_id = "cid",
                                       .scopes = "openid offline_access x",
                                       .refresh_scopes = cases[i].refresh_scopes};
        g_autoptr(SecStr) form = oauth_refresh_form(&c, rt);
        g_autoptr(GError) err = NULL;
        g_autoptr(GHashTable) q =
            g_uri_parse_params(form->data, (gssize)form->len, "&", G_URI_PARAMS_WWW_FORM, &err);

        g_test_message("case %zu", i);
        g_assert_no_error(err);
        g_assert_cmpstr(g_hash_table_lookup(q, "grant_type"), ==, "refresh_token");
        g_assert_cmpstr(g_hash_table_lookup(q, "refresh_token"), ==, "M.C5.refresh");
        g_assert_cmpstr(g_hash_table_lookup(q, "client_id"), ==, "cid");
        g_assert_cmpstr(g_hash_table_lookup(q, "scope"), ==, cases[i].want);
        g_assert_cmpuint(g_hash_table_size(q), ==, cases[i].want ? 4 : 3);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/oauth/token-response/good", test_token_good);
    g_test_add_func("/oauth/token-response/bad", test_token_bad);
    g_test_add_func("/oauth/token-response/hostile", test_token_hostile);
    g_test_add_func("/oauth/token-response/error-in-2xx", test_token_error_in_2xx);
    g_test_add_func("/oauth/authorize-url", test_authorize_url);
    g_test_add_func("/oauth/authorize-url/keeps-query", test_authorize_url_keeps_query);
    g_test_add_func("/oauth/authorize-url/refused", test_authorize_url_refused);
    g_test_add_func("/oauth/refresh-form", test_refresh_form);
    return testutil_run();
}
