/* Classifying OAuth error responses, with Microsoft's AADSTS codes mapped to
 * what the user must do.  One row per known code: adding a newly seen error
 * is one line. */

#include <stdlib.h>
#include <string.h>

#include "tokend/oauth.h"
#include "tokend/shared.h"

enum error_class {
    ERROR_CLASS_SIGNIN,   /* sign in again: tokend obtain */
    ERROR_CLASS_ADMIN,    /* an administrator must act */
    ERROR_CLASS_CONFIG,   /* a setting is wrong */
    ERROR_CLASS_SLOWDOWN, /* too many requests */
    ERROR_CLASS_TEMP,     /* the server is having trouble */
};

struct known_code {
    long code;
    enum error_class cls;
    const char *meaning;
    const char *what_to_do; /* the hint, or NULL (sign-in rows: "run: tokend obtain") */
};

static const struct known_code known_codes[] = {
    {50076, ERROR_CLASS_SIGNIN, "multi-factor authentication is required", NULL},
    {50079, ERROR_CLASS_SIGNIN, "multi-factor authentication must be set up", NULL},
    {50173, ERROR_CLASS_SIGNIN, "the sign-in was revoked, for example by a password change", NULL},
    {700082, ERROR_CLASS_SIGNIN, "the sign-in expired after 90 days without use",
     "sign in again; a timer running tokend refresh (tokend-refresh.timer) keeps a sign-in in "
     "use"},
    {70008, ERROR_CLASS_SIGNIN, "the sign-in has expired or was revoked", NULL},
    {70043, ERROR_CLASS_SIGNIN, "a sign-in frequency policy requires signing in again", NULL},
    {70000, ERROR_CLASS_SIGNIN, "the grant is no longer valid", NULL},
    {65001, ERROR_CLASS_SIGNIN, "consent is missing",
     "set prompt = consent and sign in again; where users may not consent, ask your "
     "administrator to consent to the application"},
    {54005, ERROR_CLASS_SIGNIN, "the authorization code was already redeemed", NULL},
    {700084, ERROR_CLASS_SIGNIN,
     "the app is registered as a single-page app, whose sign-ins last 24 hours", NULL},
    {90094, ERROR_CLASS_ADMIN, "an administrator must consent to this application",
     "ask your administrator to grant consent"},
    {53003, ERROR_CLASS_ADMIN, "a Conditional Access policy blocks this sign-in",
     "ask your administrator which policy blocks it (it may want a managed computer, a "
     "location or a sign-in method); the Entra sign-in logs name the policy"},
    {530035, ERROR_CLASS_ADMIN, "security defaults or Conditional Access block this sign-in",
     "ask your administrator"},
    {50020, ERROR_CLASS_ADMIN, "the account is not in this tenant",
     "check tenant, or ask your administrator to invite the account"},
    {90072, ERROR_CLASS_ADMIN, "the account is not in this tenant",
     "check tenant, or ask your administrator to invite the account"},
    {7000112, ERROR_CLASS_CONFIG, "the application is disabled",
     "its owner has switched this client_id off (Thunderbird's old one since 2024-08-01): set "
     "client_id to an application that works (tokend add --client thunderbird, or your own "
     "registration), then run tokend obtain"},
    {700016, ERROR_CLASS_CONFIG, "the application is not known in this tenant",
     "check client_id and tenant"},
    {50011, ERROR_CLASS_CONFIG, "the redirect URI is not registered for this application",
     "register http://localhost as a \"Mobile and desktop applications\" redirect URI in the "
     "app registration, or set redirect_uri to the one registered there"},
    {7000218, ERROR_CLASS_CONFIG, "the app is registered as confidential and wants a secret",
     "register the redirect as Mobile and desktop and allow public client flows"},
    {700025, ERROR_CLASS_CONFIG, "a public client must not send a client secret",
     "remove client_secret"},
    {500011, ERROR_CLASS_CONFIG, "the resource in the scopes is not available in this tenant",
     "check scopes and tenant; for an app-only account, the Exchange Online service principal "
     "(New-ServicePrincipal) and admin consent must be in this tenant"},
    /* App-only accounts: the app's certificate or secret. */
    {700027, ERROR_CLASS_CONFIG,
     "the app's certificate is not registered, or the assertion's signature is wrong",
     "upload client_certificate to the app registration (Certificates & secrets)"},
    {7000215, ERROR_CLASS_CONFIG, "the client secret is wrong",
     "copy the secret's Value (not its ID) from Certificates & secrets"},
    {7000222, ERROR_CLASS_CONFIG, "the client secret has expired",
     "create a new secret in Certificates & secrets and set it in client_secret_file"},
    {700024, ERROR_CLASS_CONFIG,
     "the client assertion is not within its valid time range (clock skew)",
     "set this machine's clock right (timedatectl, NTP)"},
    {9002313, ERROR_CLASS_CONFIG, "the request was malformed", "check the account settings"},
    {900144, ERROR_CLASS_CONFIG, "a required parameter is missing",
     "check client_id, scopes and redirect_uri in the account; -v shows the server's words"},
    {50196, ERROR_CLASS_SLOWDOWN, "the server saw too many requests in a loop", NULL},
};

struct known_error {
    const char *error;
    enum error_class cls;
    const char *meaning;
};

static const struct known_error known_errors[] = {
    {"invalid_grant", ERROR_CLASS_SIGNIN, "the sign-in is no longer valid"},
    {"interaction_required", ERROR_CLASS_SIGNIN, "the server wants an interactive sign-in"},
    {"login_required", ERROR_CLASS_SIGNIN, "the server wants an interactive sign-in"},
    {"consent_required", ERROR_CLASS_SIGNIN, "consent is missing"},
    {"access_denied", ERROR_CLASS_SIGNIN, "access was denied"},
    {"expired_token", ERROR_CLASS_SIGNIN, "the sign-in request expired"},
    {"authorization_declined", ERROR_CLASS_SIGNIN, "the sign-in was declined"},
    {"invalid_client", ERROR_CLASS_CONFIG, "the server does not accept this client"},
    {"unauthorized_client", ERROR_CLASS_CONFIG, "this client may not use this grant"},
    {"invalid_request", ERROR_CLASS_CONFIG, "the server rejected the request"},
    {"invalid_scope", ERROR_CLASS_CONFIG, "the server rejected the scopes"},
    {"unsupported_grant_type", ERROR_CLASS_CONFIG, "the server does not support this grant"},
    {"unsupported_response_type", ERROR_CLASS_CONFIG, "the server does not support this flow"},
    {"slow_down", ERROR_CLASS_SLOWDOWN, "the server asks to slow down"},
    {"temporarily_unavailable", ERROR_CLASS_TEMP, "the server is temporarily unavailable"},
    {"server_error", ERROR_CLASS_TEMP, "the server had an internal error"},
    /* glewlwyd's answer (HTTP 403) to a bad, used or expired code. */
    {"invalid_code", ERROR_CLASS_SIGNIN, "the server refused the authorization code"},
};

static const struct known_code *find_code(long code)
{
    for (size_t i = 0; i < G_N_ELEMENTS(known_codes); i++)
        if (known_codes[i].code == code)
            return &known_codes[i];
    return NULL;
}

static const struct known_error *find_error(const char *error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(known_errors); i++)
        if (g_strcmp0(known_errors[i].error, error) == 0)
            return &known_errors[i];
    return NULL;
}

/* "AADSTS70008: The provided grant has expired...\r\nTrace ID: ..." gives
 * 70008 when error_codes was missing. */
static long code_from_description(const char *d)
{
    const char *p = d ? strstr(d, "AADSTS") : NULL;

    return p ? strtol(p + 6, NULL, 10) : 0;
}

/* AADSTS900144 names the parameter: "...must contain the following
 * parameter: 'grant_type'." */
static char *missing_parameter(const char *d)
{
    const char *p = d ? strstr(d, "parameter: '") : NULL;
    const char *end = p ? strchr(p + 12, '\'') : NULL;
    g_autofree char *name = NULL;

    if (!end || end == p + 12 || end - (p + 12) > 64)
        return NULL;
    name = g_strndup(p + 12, (gsize)(end - (p + 12)));
    for (const char *c = name; *c; c++)
        if (!g_ascii_isalnum(*c) && *c != '_')
            return NULL;
    return g_strdup_printf("the request lacks the parameter %s", name);
}

int oauth_error_classify(const char *error, long code, const char *description,
                         struct tokend_error *e)
{
    const struct known_error *ke = find_error(error);
    const struct known_code *kc;
    enum error_class cls = ke ? ke->cls : ERROR_CLASS_CONFIG;
    g_autofree char *meaning = NULL;
    g_autofree char *tag = NULL;

    if (code <= 0)
        code = code_from_description(description);
    kc = code > 0 ? find_code(code) : NULL;
    if (kc)
        cls = kc->cls;
    tag = code > 0 ? g_strdup_printf("AADSTS%ld", code) : g_strdup(error ? error : "error");
    meaning = code == 900144 ? missing_parameter(description) : NULL;
    if (!meaning)
        meaning = g_strdup(kc ? kc->meaning : ke ? ke->meaning : "the server refused the request");
    switch (cls) {
    case ERROR_CLASS_SIGNIN:
        error_set(e, TOKEND_EX_NOPERM, "sign-in needed: %s (%s)", meaning, tag);
        if (kc && kc->what_to_do)
            error_set_hint(e, "%s", kc->what_to_do);
        break;
    case ERROR_CLASS_ADMIN:
        error_set(e, TOKEND_EX_NOPERM, "administrator needed: %s (%s)", meaning, tag);
        error_set_hint(e, "%s", kc ? kc->what_to_do : "ask your administrator");
        break;
    case ERROR_CLASS_CONFIG:
        error_set(e, TOKEND_EX_CONFIG, "configuration error: %s (%s)", meaning, tag);
        error_set_hint(e, "%s",
                       kc ? kc->what_to_do
                          : "check the account settings; -v shows "
                            "the server's description");
        break;
    case ERROR_CLASS_SLOWDOWN:
        error_set(e, TOKEND_EX_TEMPFAIL, "the server asks to slow down: %s (%s)", meaning, tag);
        error_set_hint(e, "try again later");
        break;
    case ERROR_CLASS_TEMP:
        error_set(e, TOKEND_EX_TEMPFAIL, "%s (%s)", meaning, tag);
        error_set_hint(e, "try again later");
        break;
    }
    error_set_detail(e, description);
    return -1;
}

bool oauth_error_has_code(const struct tokend_error *e, long code)
{
    g_autofree char *tag = g_strdup_printf("(AADSTS%ld)", code);

    return e->message && g_str_has_suffix(e->message, tag);
}

static long first_error_code(const cJSON *root)
{
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(root, "error_codes");
    const cJSON *first = cJSON_IsArray(codes) ? cJSON_GetArrayItem(codes, 0) : NULL;

    if (first && cJSON_IsNumber(first) && first->valuedouble > 0 && first->valuedouble < 1e9)
        return (long)first->valuedouble;
    return 0;
}

static int http_status_error(const HttpResponse *r, struct tokend_error *e)
{
    if (r->status == 429) {
        error_set(e, TOKEND_EX_TEMPFAIL, "the server asks to slow down (HTTP 429)");
        if (r->retry_after > 0)
            error_set_hint(e, "try again in %d s", r->retry_after);
        else
            error_set_hint(e, "try again later");
        e->retry_after = r->retry_after;
        return -1;
    }
    if (r->status >= 500) {
        error_set(e, TOKEND_EX_TEMPFAIL, "the server failed (HTTP %ld)", r->status);
        error_set_hint(e, "try again later");
        return -1;
    }
    return error_set(e, TOKEND_EX_DATAERR, "unexpected HTTP %ld response (%s)", r->status,
                     r->content_type ? r->content_type : "no content type");
}

static bool body_is_blank(const HttpResponse *r)
{
    for (size_t i = 0; i < r->body->len; i++)
        if (!g_ascii_isspace(r->body->data[i]))
            return false;
    return true;
}

int oauth_error_from_response(const HttpResponse *r, struct tokend_error *e)
{
    g_autoptr(cJSON) root = cJSON_ParseWithLength(r->body->data, r->body->len);
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "error_description");
    bool named = cJSON_IsString(error) && error->valuestring && *error->valuestring;

    /* RFC 6749 answers a refused grant with 400 and a JSON error; glewlwyd
     * sends the 400 empty (a revoked, replayed or unknown refresh token).
     * A grant refused without a word is still refused: sign in again. */
    if (r->status == 400 && body_is_blank(r))
        return error_set(e, TOKEND_EX_NOPERM,
                         "sign-in needed: the server refused the grant "
                         "without saying why (HTTP 400, empty answer)");
    /* Throttling and server failures are said by the status, whatever the
     * body calls them. */
    if (!named || r->status == 429 || r->status >= 500) {
        http_status_error(r, e);
        if (named)
            error_set_detail(e, cJSON_IsString(desc) ? desc->valuestring : error->valuestring);
        return -1;
    }
    oauth_error_classify(error->valuestring, first_error_code(root),
                         cJSON_IsString(desc) ? desc->valuestring : NULL, e);
    return -1;
}
