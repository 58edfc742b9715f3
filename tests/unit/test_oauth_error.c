/* oauth_error: OAuth and Microsoft AADSTS errors mapped to what to do. */

#include <string.h>

#include "tokend/oauth.h"
#include "testutil.h"

#define JSON "application/json; charset=utf-8"
#define HTML "text/html"

static const struct {
    long http_status;
    const char *content_type;
    const char *body;
    int retry_after;      /* from the Retry-After header */
    int status;           /* expected */
    const char *fragment; /* in the message */
    int want_retry_after;
} cases[] = {
    {400, JSON,
     "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: The provided "
     "authorization code or refresh token has expired.\\r\\nTrace ID: x\","
     "\"error_codes\":[70008]}",
     0, TOKEND_EX_NOPERM, "AADSTS70008", 0},
    {401, JSON,
     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000218: The request "
     "body must contain client_assertion or client_secret.\",\"error_codes\":[7000218]}",
     0, TOKEND_EX_CONFIG, "AADSTS7000218", 0},
    {400, JSON,
     "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS90094: The grant requires "
     "admin permission.\",\"error_codes\":[90094]}",
     0, TOKEND_EX_NOPERM, "administrator", 0},
    {400, JSON, "{\"error\":\"invalid_request\",\"error_codes\":[50196]}", 0, TOKEND_EX_TEMPFAIL,
     "AADSTS50196", 0},
    {429, HTML, "<html>Too Many Requests</html>", 30, TOKEND_EX_TEMPFAIL, "429", 30},
    {429, JSON, "{\"error\":\"slow_down\"}", 30, TOKEND_EX_TEMPFAIL, "slow down", 30},
    {429, JSON, "", 0, TOKEND_EX_TEMPFAIL, "429", 0},
    {503, HTML, "<html><h1>Service Unavailable</h1></html>", 0, TOKEND_EX_TEMPFAIL, "503", 0},
    {502, NULL, "", 12, TOKEND_EX_TEMPFAIL, "502", 0},
    {404, HTML, "<html>Not Found</html>", 0, TOKEND_EX_DATAERR, "404", 0},
    {302, NULL, "", 0, TOKEND_EX_DATAERR, "302", 0},
    {400, JSON, "{\"error\":\"unknown_thing\"}", 0, TOKEND_EX_CONFIG, "unknown_thing", 0},
    {400, JSON, "{\"error\":5}", 0, TOKEND_EX_DATAERR, "400", 0},
    {400, JSON, "{\"error\":\"\"}", 0, TOKEND_EX_DATAERR, "400", 0},
    {400, JSON, "[\"error\"]", 0, TOKEND_EX_DATAERR, "400", 0},
    {400, JSON,
     "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS700082: The refresh token "
     "has expired due to inactivity.\"}",
     0, TOKEND_EX_NOPERM, "AADSTS700082", 0},
    {400, JSON,
     "{\"error\":\"invalid_grant\",\"error_description\":\"no code here\","
     "\"error_codes\":[\"70008\"]}",
     0, TOKEND_EX_NOPERM, "invalid_grant", 0},
    {400, JSON, "{\"error\":\"interaction_required\",\"error_codes\":[50076]}", 0, TOKEND_EX_NOPERM,
     "multi-factor", 0},
    {400, JSON, "{\"error\":\"invalid_request\",\"error_codes\":[9002313]}", 0, TOKEND_EX_CONFIG,
     "AADSTS9002313", 0},
    {400, JSON, "{\"error\":\"invalid_grant\",\"error_codes\":[53003]}", 0, TOKEND_EX_NOPERM,
     "administrator", 0},
    {400, JSON, "{\"error\":\"temporarily_unavailable\"}", 0, TOKEND_EX_TEMPFAIL, "temporarily", 0},
    {400, JSON, "{\"error\":\"invalid_grant\",\"error_codes\":[1e300]}", 0, TOKEND_EX_NOPERM,
     "invalid_grant", 0},
    {200, JSON, "{\"error\":\"invalid_grant\",\"error_codes\":[70008]}", 0, TOKEND_EX_NOPERM,
     "AADSTS70008", 0},
    /* glewlwyd: a refused refresh token is an empty 400, a bad code 403 invalid_code. */
    {400, NULL, "", 0, TOKEND_EX_NOPERM, "HTTP 400, empty answer", 0},
    {400, JSON, " \n", 0, TOKEND_EX_NOPERM, "HTTP 400, empty answer", 0},
    {400, HTML, "<html>Bad Request</html>", 0, TOKEND_EX_DATAERR, "HTTP 400", 0},
    {401, NULL, "", 0, TOKEND_EX_DATAERR, "HTTP 401", 0},
    {403, JSON, "{\"error\":\"invalid_code\"}", 0, TOKEND_EX_NOPERM, "invalid_code", 0},
    /* App-only accounts (client credentials), as Microsoft answers them: the
     * certificate, the secret, the clock, the tenant; each a setting or an
     * administrator's step, never a sign-in. */
    {401, JSON,
     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700027: Client assertion "
     "failed signature validation.\\r\\nTrace ID: x\",\"error_codes\":[700027]}",
     0, TOKEND_EX_CONFIG, "certificate is not registered", 0},
    {401, JSON,
     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid client "
     "secret provided.\",\"error_codes\":[7000215]}",
     0, TOKEND_EX_CONFIG, "client secret is wrong (AADSTS7000215)", 0},
    {401, JSON,
     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000222: The provided "
     "client secret keys for app 'x' are expired.\",\"error_codes\":[7000222]}",
     0, TOKEND_EX_CONFIG, "client secret has expired (AADSTS7000222)", 0},
    {400, JSON,
     "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700024: Client assertion "
     "is not within its valid time range.\",\"error_codes\":[700024]}",
     0, TOKEND_EX_CONFIG, "clock skew", 0},
    {400, JSON,
     "{\"error\":\"invalid_resource\",\"error_description\":\"AADSTS500011: The resource "
     "principal named https://outlook.office365.com was not found in the tenant.\","
     "\"error_codes\":[500011]}",
     0, TOKEND_EX_CONFIG, "not available in this tenant (AADSTS500011)", 0},
    /* Google, a service account acting for a mailbox it may not act for:
     * the grant is refused (flow_app says what the administrator must do). */
    {400, JSON, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid email or User ID\"}",
     0, TOKEND_EX_NOPERM, "(invalid_grant)", 0},
    {401, JSON,
     "{\"error\":\"unauthorized_client\",\"error_description\":\"Client is unauthorized to "
     "retrieve access tokens using this method, or client not authorized for any of the scopes "
     "requested.\"}",
     0, TOKEND_EX_CONFIG, "this client may not use this grant", 0},
};

static void test_responses(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(HttpResponse) r = g_new0(HttpResponse, 1);
        g_autoptr(TokenResponse) t = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        r->status = cases[i].http_status;
        r->body = secstr_from(cases[i].body, strlen(cases[i].body));
        r->content_type = g_strdup(cases[i].content_type);
        r->retry_after = cases[i].retry_after;
        g_test_message("case %zu: HTTP %ld %s", i, r->status, cases[i].body);
        g_assert_cmpint(oauth_parse_token_response(r, &t, &e), ==, -1);
        g_assert_null(t);
        g_assert_cmpint(e.status, ==, cases[i].status);
        testutil_assert_contains(e.message, cases[i].fragment);
        g_assert_cmpint(e.retry_after, ==, cases[i].want_retry_after);
        g_assert_null(strpbrk(e.message, "\r\n"));
        if (e.detail)
            g_assert_null(strpbrk(e.detail, "\r\n"));
        /* Say what to do (signing in again is the verb layer's to say). */
        if (e.status == TOKEND_EX_CONFIG || e.status == TOKEND_EX_TEMPFAIL ||
            strstr(e.message, "administrator"))
            g_assert_nonnull(e.hint);
    }
}

static void test_description_kept(void)
{
    const char *body = "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70008: "
                       "expired.\\r\\nTrace ID: x\\r\\nCorrelation ID: y\"}";
    g_autoptr(HttpResponse) r = g_new0(HttpResponse, 1);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    r->status = 400;
    r->body = secstr_from(body, strlen(body));
    g_assert_cmpint(oauth_error_from_response(r, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_NOPERM);
    /* Code found in the description; the description itself kept, folded. */
    testutil_assert_contains(e.message, "AADSTS70008");
    g_assert_cmpstr(e.detail, ==, "AADSTS70008: expired. Trace ID: x Correlation ID: y");
}

/* A struggling server is not a reason to sign in again, whatever error it
 * names: the message must not say so, and the hint must say to wait. */
static void test_5xx_with_error(void)
{
    const char *body = "{\"error\":\"invalid_grant\",\"error_description\":\"oops\"}";
    g_autoptr(HttpResponse) r = g_new0(HttpResponse, 1);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    r->status = 500;
    r->body = secstr_from(body, strlen(body));
    g_assert_cmpint(oauth_error_from_response(r, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_TEMPFAIL);
    g_assert_cmpstr(e.detail, ==, "oops");
    testutil_assert_contains(e.hint, "later");
    g_assert_null(strstr(e.message, "sign-in needed"));
    testutil_assert_contains(e.message, "500");
}

static const struct {
    const char *error;
    long code;
    const char *description;
    int status;
    const char *fragment, *hint;
} classify_cases[] = {
    {"invalid_grant", 0, NULL, TOKEND_EX_NOPERM, "invalid_grant", NULL},
    {"access_denied", 0, "The user denied", TOKEND_EX_NOPERM, "denied", NULL},
    {"consent_required", 65001, NULL, TOKEND_EX_NOPERM, "AADSTS65001", "prompt = consent"},
    {"invalid_grant", 65001, NULL, TOKEND_EX_NOPERM, "consent is missing",
     "ask your administrator to consent"},
    {"invalid_grant", 700082, NULL, TOKEND_EX_NOPERM, "90 days without use",
     "a timer running tokend refresh"},
    {"invalid_client", 7000112, "AADSTS7000112: Application is disabled.", TOKEND_EX_CONFIG,
     "the application is disabled (AADSTS7000112)", "set client_id"},
    {"invalid_request", 900144,
     "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
     TOKEND_EX_CONFIG, "the request lacks the parameter grant_type (AADSTS900144)", "scopes"},
    {"invalid_request", 900144, "AADSTS900144: ... parameter: 'a b'.", TOKEND_EX_CONFIG,
     "a required parameter is missing", "-v"},
    {"invalid_request", 900144, NULL, TOKEND_EX_CONFIG, "a required parameter is missing",
     "redirect_uri"},
    {"invalid_client", 700016, NULL, TOKEND_EX_CONFIG, "AADSTS700016", "client_id"},
    {"invalid_request", 0, "AADSTS50011: The redirect URI", TOKEND_EX_CONFIG, "AADSTS50011",
     "redirect_uri"},
    {"invalid_request", 50011, NULL, TOKEND_EX_CONFIG, "redirect URI",
     "register http://localhost as a \"Mobile and desktop applications\" redirect URI"},
    {"invalid_grant", 53003, NULL, TOKEND_EX_NOPERM, "Conditional Access", "administrator"},
    {"access_denied", 53003, NULL, TOKEND_EX_NOPERM, "Conditional Access policy blocks",
     "sign-in logs name the policy"},
    {"invalid_grant", 90094, NULL, TOKEND_EX_NOPERM, "administrator", "administrator"},
    {"invalid_grant", 50196, NULL, TOKEND_EX_TEMPFAIL, "slow down", "later"},
    {"slow_down", 0, NULL, TOKEND_EX_TEMPFAIL, "slow down", "later"},
    {"server_error", 0, NULL, TOKEND_EX_TEMPFAIL, "server_error", "later"},
    {"invalid_scope", 0, NULL, TOKEND_EX_CONFIG, "scopes", NULL},
    {"unknown_thing", 0, NULL, TOKEND_EX_CONFIG, "unknown_thing", NULL},
    {NULL, 0, NULL, TOKEND_EX_CONFIG, "error", NULL},
    /* An unknown code keeps the error's class. */
    {"invalid_grant", 12345, NULL, TOKEND_EX_NOPERM, "AADSTS12345", NULL},
    {"invalid_grant", 0, "AADSTSxyz", TOKEND_EX_NOPERM, "invalid_grant", NULL},
    /* App-only: what to do names the place to do it. */
    {"invalid_client", 700027, NULL, TOKEND_EX_CONFIG, "AADSTS700027",
     "upload client_certificate to the app registration"},
    {"invalid_client", 7000215, NULL, TOKEND_EX_CONFIG, "AADSTS7000215", "Value (not its ID)"},
    {"invalid_client", 7000222, NULL, TOKEND_EX_CONFIG, "AADSTS7000222", "client_secret_file"},
    {"invalid_client", 700024, NULL, TOKEND_EX_CONFIG, "AADSTS700024", "clock"},
    {"invalid_resource", 500011, NULL, TOKEND_EX_CONFIG, "AADSTS500011", "New-ServicePrincipal"},
    {"invalid_client", 0, "AADSTS7000222: expired", TOKEND_EX_CONFIG, "client secret has expired",
     "create a new secret"},
    {"invalid_grant", 0, "Invalid email or User ID", TOKEND_EX_NOPERM, "(invalid_grant)", NULL},
    /* error_codes wins over the description. */
    {"invalid_grant", 70008, "AADSTS90094: admin", TOKEND_EX_NOPERM, "AADSTS70008", NULL},
};

static void test_classify(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(classify_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu", i);
        g_assert_cmpint(oauth_error_classify(classify_cases[i].error, classify_cases[i].code,
                                             classify_cases[i].description, &e),
                        ==, -1);
        g_assert_cmpint(e.status, ==, classify_cases[i].status);
        testutil_assert_contains(e.message, classify_cases[i].fragment);
        if (classify_cases[i].hint)
            testutil_assert_contains(e.hint, classify_cases[i].hint);
        g_assert_cmpstr(e.detail, ==, classify_cases[i].description);
    }
}

/* Which code classified an error, as the flows ask it (the device flow
 * names the browser flow after 53003). */
static void test_has_code(void)
{
    static const struct {
        const char *error;
        long code;
        const char *description;
        long asked;
        bool has;
    } code_cases[] = {
        {"invalid_grant", 53003, NULL, 53003, true},
        {"access_denied", 0, "AADSTS53003: blocked", 53003, true},
        {"invalid_grant", 530035, NULL, 53003, false},
        {"invalid_grant", 53003, NULL, 5300, false},
        {"invalid_grant", 0, NULL, 53003, false},
        {"invalid_request", 50011, NULL, 50011, true},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(code_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("case %zu", i);
        g_assert_false(oauth_error_has_code(&e, code_cases[i].asked));
        oauth_error_classify(code_cases[i].error, code_cases[i].code, code_cases[i].description,
                             &e);
        g_assert_cmpint(oauth_error_has_code(&e, code_cases[i].asked), ==, code_cases[i].has);
        error_prefix(&e, "the sign-in failed");
        g_assert_cmpint(oauth_error_has_code(&e, code_cases[i].asked), ==, code_cases[i].has);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/oauth-error/responses", test_responses);
    g_test_add_func("/oauth-error/description-kept", test_description_kept);
    g_test_add_func("/oauth-error/5xx-with-error", test_5xx_with_error);
    g_test_add_func("/oauth-error/classify", test_classify);
    g_test_add_func("/oauth-error/has-code", test_has_code);
    return testutil_run();
}
