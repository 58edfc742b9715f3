#include <math.h>
#include <string.h>
#include <curl/curl.h>

#include "tokend/oauth.h"
#include "tokend/shared.h"
#include "tokend/shared_curl.h"
#include "tokend/log.h"
#include "tokend/tokenrule.h"

#define DEFAULT_EXPIRES_IN 3600
#define MAX_EXPIRES_IN (366 * 86400)

void token_response_free(TokenResponse *t)
{
    if (!t)
        return;
    secstr_free(t->access_token);
    secstr_free(t->refresh_token);
    g_free(t->scope);
    secstr_free(t->id_token);
    g_free(t);
}

void redirect_params_free(RedirectParams *p)
{
    if (!p)
        return;
    secstr_free(p->code);
    g_free(p->state);
    g_free(p->iss);
    g_free(p->error);
    g_free(p->error_description);
    g_free(p->address);
    g_free(p);
}

static int bad_response(struct tokend_error *e, const char *what)
{
    error_set(e, TOKEND_EX_DATAERR, "malformed token response: %s", what);
    error_set_hint(e, "the server or a proxy in between is misbehaving; try again later");
    return -1;
}

static int get_expires_in(const cJSON *v, gint64 *out, struct tokend_error *e)
{
    double d;
    char *end = NULL;

    if (!v || cJSON_IsNull(v)) {
        *out = DEFAULT_EXPIRES_IN;
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        d = v->valuedouble;
    } else if (cJSON_IsString(v) && v->valuestring && *v->valuestring) {
        /* Microsoft's v1 endpoints and some clouds send "3599". */
        d = g_ascii_strtod(v->valuestring, &end);
        if (*end != '\0')
            return bad_response(e, "expires_in is not a number");
    } else {
        return bad_response(e, "expires_in is not a number");
    }
    if (!isfinite(d) || d < 1 || d > MAX_EXPIRES_IN)
        return bad_response(e, "expires_in is out of range");
    *out = (gint64)d;
    return 0;
}

static int get_token(const cJSON *root, const char *name, bool required, SecStr **out,
                     struct tokend_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    g_autofree char *what = NULL;

    if (!v || (cJSON_IsNull(v) && !required)) {
        if (!required)
            return 0;
        what = g_strdup_printf("%s is missing", name);
        return bad_response(e, what);
    }
    if (!cJSON_IsString(v) || !v->valuestring ||
        !tokenrule_valid(v->valuestring, strlen(v->valuestring))) {
        what = g_strdup_printf("%s is not a valid token", name);
        return bad_response(e, what);
    }
    *out = secstr_from(v->valuestring, strlen(v->valuestring));
    return 0;
}

/* Wipe every string in the tree before it is freed: it holds tokens. */

/* One JSON text and nothing after it.  cJSON stops after the first value and
 * ends a string at a NUL, raw or escaped: "tok\u0000en" would become the
 * token "tok".  No token response has either. */
static cJSON *parse_whole_json(const SecStr *body)
{
    const char *end = NULL;
    const char *stop = body->data + body->len;
    cJSON *root;

    if (memchr(body->data, '\0', body->len) ||
        g_strstr_len(body->data, (gssize)body->len, "\\u0000"))
        return NULL;
    root = cJSON_ParseWithLengthOpts(body->data, body->len, &end, false);
    while (root && end < stop && g_ascii_isspace(*end))
        end++;
    if (root && end != stop) {
        shared_json_wipe_delete(root);
        return NULL;
    }
    return root;
}

/* Kept as it came: whether it is usable is for the identity check to say,
 * and only where it needs one. */
static void get_id_token(const cJSON *root, TokenResponse *t)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "id_token");

    if (cJSON_IsString(v) && v->valuestring)
        t->id_token = secstr_from(v->valuestring, strlen(v->valuestring));
    else if (v && !cJSON_IsNull(v))
        t->id_token_bad = true;
}

/* How long the refresh token lives, where the server says (Google, for
 * apps in Testing or time-based access).  Only informative: a value that
 * is not a sensible number is left out rather than failing the sign-in. */
static void get_refresh_expires_in(const cJSON *root, TokenResponse *t)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "refresh_token_expires_in");
    struct tokend_error e = TOKEND_ERROR_INIT;
    gint64 n = 0;

    if (v && !cJSON_IsNull(v) && get_expires_in(v, &n, &e) == 0)
        t->refresh_expires_in = n;
    else if (v && !cJSON_IsNull(v))
        log_verbose("ignoring refresh_token_expires_in: %s", e.message);
    error_clear(&e);
}

int oauth_parse_token_response(const HttpResponse *r, TokenResponse **out, struct tokend_error *e)
{
    g_autoptr(SecretJson) root = NULL;
    g_autoptr(TokenResponse) t = NULL;
    const cJSON *type, *scope;

    if (r->status < 200 || r->status > 299)
        return oauth_error_from_response(r, e);
    root = parse_whole_json(r->body);
    if (!cJSON_IsObject(root))
        return bad_response(e, "not a JSON object");
    if (cJSON_GetObjectItemCaseSensitive(root, "error"))
        return oauth_error_from_response(r, e);
    t = g_new0(TokenResponse, 1);
    if (get_token(root, "access_token", true, &t->access_token, e) < 0 ||
        get_token(root, "refresh_token", false, &t->refresh_token, e) < 0 ||
        get_expires_in(cJSON_GetObjectItemCaseSensitive(root, "expires_in"), &t->expires_in, e) < 0)
        return -1;
    type = cJSON_GetObjectItemCaseSensitive(root, "token_type");
    if (type && !(cJSON_IsString(type) && g_ascii_strcasecmp(type->valuestring, "bearer") == 0))
        return bad_response(e, "token_type is not Bearer");
    scope = cJSON_GetObjectItemCaseSensitive(root, "scope");
    if (scope && !cJSON_IsString(scope) && !cJSON_IsNull(scope))
        return bad_response(e, "scope is not a string");
    if (scope && cJSON_IsString(scope))
        t->scope = g_strdup(scope->valuestring);
    get_id_token(root, t);
    get_refresh_expires_in(root, t);
    *out = g_steal_pointer(&t);
    return 0;
}

static int set_param(RedirectParams *p, const char *name, char *value, struct tokend_error *e)
{
    char **slot = NULL;

    if (strcmp(name, "code") == 0) {
        if (p->code) {
            secure_free_str(value);
            return error_set(e, TOKEND_EX_DATAERR, "the redirect carries two codes");
        }
        p->code = secstr_from(value, strlen(value));
        secure_free_str(value);
        return 0;
    }
    if (strcmp(name, "state") == 0)
        slot = &p->state;
    else if (strcmp(name, "iss") == 0)
        slot = &p->iss;
    else if (strcmp(name, "error") == 0)
        slot = &p->error;
    else if (strcmp(name, "error_description") == 0)
        slot = &p->error_description;
    if (!slot) {
        g_free(value); /* session_state and friends */
        return 0;
    }
    if (*slot) {
        g_free(value);
        return error_set(e, TOKEND_EX_DATAERR, "the redirect carries \"%s\" twice", name);
    }
    *slot = value;
    return 0;
}

int oauth_redirect_add(RedirectParams *p, const char *name, const char *value,
                       struct tokend_error *e)
{
    return set_param(p, name, g_strdup(value ? value : ""), e);
}

/* application/x-www-form-urlencoded ('+' is a space), each parameter
 * decoded by GLib (which refuses a bad %-escape, an encoded NUL and
 * non-UTF-8 text).  A parameter without "=" or with an empty name is passed
 * over, which GLib's iterator would refuse for the whole query. */
int oauth_parse_query(const char *query, RedirectParams **out, struct tokend_error *e)
{
    g_autoptr(RedirectParams) p = NULL;
    g_auto(GStrv) parts = NULL;
    const char *s = query;

    if (!s)
        return error_set(e, TOKEND_EX_DATAERR, "the redirect has no parameters");
    p = g_new0(RedirectParams, 1);
    if (*s == '?' || *s == '#')
        s++;
    parts = g_strsplit(s, "&", -1);
    for (char **part = parts; *part; part++) {
        GUriParamsIter iter;
        char *name = NULL, *value = NULL;
        bool ok;

        if (**part == '=' || !strchr(*part, '='))
            continue;
        g_uri_params_iter_init(&iter, *part, -1, "&", G_URI_PARAMS_WWW_FORM);
        ok = g_uri_params_iter_next(&iter, &name, &value, NULL);
        explicit_bzero(*part, strlen(*part)); /* it may hold the code */
        if (!ok) {
            g_free(name);
            if (value)
                secure_free_str(value);
            return error_set(e, TOKEND_EX_DATAERR, "the redirect is not properly encoded");
        }
        if (set_param(p, name, value, e) < 0) {
            g_free(name);
            return -1;
        }
        g_free(name);
    }
    *out = g_steal_pointer(&p);
    return 0;
}

static char *trim_pasted(const char *input)
{
    char *s = g_strstrip(g_strdup(input));
    size_t n = strlen(s);

    /* Quotes or angle brackets around the URL, as mail and chat add them. */
    while (n >= 2 && strchr("\"'<", s[0]) && strchr("\"'>", s[n - 1])) {
        memmove(s, s + 1, n - 2);
        n -= 2;
        s[n] = '\0';
        g_strstrip(s);
        n = strlen(s);
    }
    return s;
}

/* Where a pasted redirect went: the URL without the parameters that carry
 * the code, to compare with the redirect URI. */
static char *url_address(CURLU *u)
{
    char *raw = NULL;
    char *copy = NULL;

    if (curl_url_set(u, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &raw, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK)
        copy = g_strdup(raw);
    curl_free(raw);
    return copy;
}

static int parse_url_query(const char *url, RedirectParams **out, struct tokend_error *e)
{
    g_autoptr(CURLU) u = curl_url();
    char *query = NULL;
    char *fragment = NULL;
    int r;

    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
        return error_set(e, TOKEND_EX_DATAERR, "the pasted text is not a valid URL");
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (!query)
        curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
    if (!query && !fragment)
        return error_set(e, TOKEND_EX_DATAERR,
                         "the pasted URL has no parameters; copy the whole address of the "
                         "page the sign-in ended on");
    r = oauth_parse_query(query ? query : fragment, out, e);
    if (r == 0)
        (*out)->address = url_address(u);
    if (query) {
        explicit_bzero(query, strlen(query));
        curl_free(query);
    }
    if (fragment) {
        explicit_bzero(fragment, strlen(fragment));
        curl_free(fragment);
    }
    return r;
}

int oauth_parse_pasted(const char *input, RedirectParams **out, struct tokend_error *e)
{
    g_autofree char *s = trim_pasted(input);
    int r;

    if (*s == '\0') {
        r = error_set(e, TOKEND_EX_DATAERR, "nothing was pasted");
    } else if (strstr(s, "://")) {
        r = parse_url_query(s, out, e);
    } else if (strchr(s, '=')) {
        r = oauth_parse_query(s, out, e);
    } else if (tokenrule_valid(s, strlen(s))) {
        RedirectParams *p = g_new0(RedirectParams, 1);
        p->code = secstr_from(s, strlen(s));
        p->bare = true;
        *out = p;
        r = 0;
    } else {
        r = error_set(e, TOKEND_EX_DATAERR, "the pasted text is neither a URL nor a code");
    }
    explicit_bzero(s, strlen(s));
    return r;
}

int oauth_check_redirect(const RedirectParams *p, const char *expected_state,
                         const struct oauth_client *c, struct tokend_error *e)
{
    if (!p->bare && (!p->state || g_strcmp0(p->state, expected_state) != 0)) {
        error_set(e, TOKEND_EX_DATAERR, "%s",
                  p->state ? "the redirect belongs to another sign-in attempt (state differs)"
                           : "the redirect has no state parameter");
        error_set_hint(e, "use the URL of this attempt, or run tokend obtain again");
        return -1;
    }
    if (p->error) {
        oauth_error_classify(p->error, 0, p->error_description, e);
        error_prefix(e, "the sign-in failed");
        return -1;
    }
    if (p->iss && c->issuer && strcmp(p->iss, c->issuer) != 0)
        return error_set(e, TOKEND_EX_DATAERR,
                         "the redirect comes from issuer %s, not %s: refusing it", p->iss,
                         c->issuer);
    if (!p->iss && c->iss_required && !p->bare)
        return error_set(e, TOKEND_EX_DATAERR,
                         "the redirect lacks the iss parameter the server promised: refusing it");
    if (!p->code || p->code->len == 0)
        return error_set(e, TOKEND_EX_DATAERR, "the redirect carries no authorization code");
    return 0;
}

static int append_param(CURLU *u, const char *name, const char *value)
{
    g_autofree char *pair = g_strconcat(name, "=", value, NULL);

    return curl_url_set(u, CURLUPART_QUERY, pair, CURLU_APPENDQUERY | CURLU_URLENCODE) == CURLUE_OK
               ? 0
               : -1;
}

char *oauth_authorize_url(const struct oauth_client *c, const char *redirect_uri, const char *state,
                          const char *challenge, const char *const *extra, struct tokend_error *e)
{
    g_autoptr(CURLU) u = curl_url();
    char *url = NULL;
    char *copy;
    int r = 0;

    if (http_check_url(c->authorize_url, e) < 0)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, c->authorize_url, 0) != CURLUE_OK) {
        error_set(e, TOKEND_EX_CONFIG, "authorize_url %s is not a valid URL", c->authorize_url);
        return NULL;
    }
    r |= append_param(u, "response_type", "code");
    r |= append_param(u, "client_id", c->client_id);
    r |= append_param(u, "redirect_uri", redirect_uri);
    r |= append_param(u, "scope", c->scopes);
    r |= append_param(u, "state", state);
    r |= append_param(u, "code_challenge", challenge);
    r |= append_param(u, "code_challenge_method", "S256");
    for (const char *const *x = extra; x && *x; x++) {
        const char *eq = strchr(*x, '=');
        g_autofree char *name = eq ? g_strndup(*x, (gsize)(eq - *x)) : NULL;
        if (name)
            r |= append_param(u, name, eq + 1);
    }
    if (r < 0 || curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        error_set(e, TOKEND_EX_CONFIG, "cannot build the authorization URL");
        return NULL;
    }
    copy = g_strdup(url);
    curl_free(url);
    return copy;
}

void oauth_add_client_auth(SecStr *form, const struct oauth_client *c)
{
    if (c->secret_basic && c->client_secret)
        return;
    secstr_append_form(form, "client_id", c->client_id, strlen(c->client_id));
    if (c->client_secret)
        secstr_append_form(form, "client_secret", c->client_secret->data, c->client_secret->len);
}

/* application/x-www-form-urlencoded: what secstr_append_form writes after
 * "&k=". */
static void append_form_encoded(SecStr *s, const char *value, size_t len)
{
    g_autoptr(SecStr) pair = secstr_new(len * 3 + 8);

    secstr_append_form(pair, "k", value, len);
    secstr_append(s, pair->data + strlen("k="), pair->len - strlen("k="));
}

SecStr *oauth_client_basic(const struct oauth_client *c)
{
    SecStr *basic;

    if (!c->secret_basic || !c->client_secret)
        return NULL;
    basic = secstr_new(256);
    append_form_encoded(basic, c->client_id, strlen(c->client_id));
    secstr_append(basic, ":", 1);
    append_form_encoded(basic, c->client_secret->data, c->client_secret->len);
    return basic;
}

int oauth_token_request(Http *h, const struct oauth_client *c, SecStr *form, TokenResponse **out,
                        struct tokend_error *e)
{
    g_autoptr(HttpResponse) r = NULL;
    g_autoptr(SecStr) basic = oauth_client_basic(c);

    oauth_add_client_auth(form, c);
    if (http_request_auth(h, c->token_url, form, basic, &r, e) < 0)
        return -1;
    return oauth_parse_token_response(r, out, e);
}

int oauth_redeem_code(Http *h, const struct oauth_client *c, const SecStr *code,
                      const SecStr *verifier, const char *redirect_uri, TokenResponse **out,
                      struct tokend_error *e)
{
    g_autoptr(SecStr) form = secstr_new(1024);

    secstr_append_form(form, "grant_type", "authorization_code", 18);
    secstr_append_form(form, "code", code->data, code->len);
    secstr_append_form(form, "redirect_uri", redirect_uri, strlen(redirect_uri));
    secstr_append_form(form, "code_verifier", verifier->data, verifier->len);
    return oauth_token_request(h, c, form, out, e);
}

SecStr *oauth_refresh_form(const struct oauth_client *c, const SecStr *refresh_token)
{
    SecStr *form = secstr_new(1024);

    secstr_append_form(form, "grant_type", "refresh_token", 13);
    secstr_append_form(form, "refresh_token", refresh_token->data, refresh_token->len);
    if (c->refresh_scopes)
        secstr_append_form(form, "scope", c->refresh_scopes, strlen(c->refresh_scopes));
    oauth_add_client_auth(form, c);
    return form;
}
