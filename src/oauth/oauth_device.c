/* RFC 8628 device authorization grant and RFC 7009 revocation. */

#include <math.h>
#include <string.h>

#include "tokend/oauth.h"
#include "tokend/shared.h"
#include "tokend/tokenrule.h"

#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
#define DEFAULT_INTERVAL 5
#define DEFAULT_DEVICE_EXPIRES 900

void device_auth_free(DeviceAuth *d)
{
    if (!d)
        return;
    secstr_free(d->device_code);
    g_free(d->user_code);
    g_free(d->verification_uri);
    g_free(d->verification_uri_complete);
    g_free(d);
}

static char *get_string(const cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsString(v) && v->valuestring && *v->valuestring ? g_strdup(v->valuestring) : NULL;
}

static gint64 get_number(const cJSON *root, const char *name, gint64 dflt, gint64 max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    double d = cJSON_IsNumber(v)   ? v->valuedouble
               : cJSON_IsString(v) ? g_ascii_strtod(v->valuestring, NULL)
                                   : NAN;

    if (!isfinite(d) || d < 1)
        return dflt;
    return (gint64)MIN(d, (double)max);
}

static int bad_device(struct tokend_error *e, const char *what)
{
    return error_set(e, TOKEND_EX_DATAERR, "malformed device authorization response: %s", what);
}

int oauth_parse_device_response(const HttpResponse *r, DeviceAuth **out, struct tokend_error *e)
{
    g_autoptr(cJSON) root = NULL;
    g_autoptr(DeviceAuth) d = g_new0(DeviceAuth, 1);
    g_autofree char *code = NULL;

    if (r->status < 200 || r->status > 299)
        return oauth_error_from_response(r, e);
    root = cJSON_ParseWithLength(r->body->data, r->body->len);
    if (!cJSON_IsObject(root))
        return bad_device(e, "not a JSON object");
    code = get_string(root, "device_code");
    d->user_code = get_string(root, "user_code");
    d->verification_uri = get_string(root, "verification_uri");
    if (!d->verification_uri)
        d->verification_uri = get_string(root, "verification_url");
    d->verification_uri_complete = get_string(root, "verification_uri_complete");
    if (!code || !tokenrule_valid(code, strlen(code)))
        return bad_device(e, "device_code is missing");
    if (!d->user_code || !d->verification_uri)
        return bad_device(e, "user_code or verification_uri is missing");
    if (http_check_url(d->verification_uri, e) < 0 ||
        (d->verification_uri_complete && http_check_url(d->verification_uri_complete, e) < 0))
        return bad_device(e, "the verification URI is not https");
    d->device_code = secstr_from(code, strlen(code));
    explicit_bzero(code, strlen(code));
    d->expires_in = get_number(root, "expires_in", DEFAULT_DEVICE_EXPIRES, 3600);
    d->interval = (int)get_number(root, "interval", DEFAULT_INTERVAL, 60);
    *out = g_steal_pointer(&d);
    return 0;
}

int oauth_device_start(Http *h, const struct oauth_client *c, DeviceAuth **out,
                       struct tokend_error *e)
{
    g_autoptr(SecStr) form = secstr_new(256);
    g_autoptr(HttpResponse) r = NULL;

    if (!c->device_url) {
        error_set(e, TOKEND_EX_CONFIG, "no device authorization endpoint is known");
        error_set_hint(e, "set device_authorization_url, or issuer for discovery");
        return -1;
    }
    if (c->scopes)
        secstr_append_form(form, "scope", c->scopes, strlen(c->scopes));
    oauth_add_client_auth(form, c);
    if (http_request(h, c->device_url, form, &r, e) < 0)
        return -1;
    return oauth_parse_device_response(r, out, e);
}

static bool error_is(const HttpResponse *r, const char *want)
{
    g_autoptr(cJSON) root = cJSON_ParseWithLength(r->body->data, r->body->len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");

    return cJSON_IsString(err) && strcmp(err->valuestring, want) == 0;
}

int oauth_device_poll(Http *h, const struct oauth_client *c, const SecStr *device_code,
                      enum device_poll *state, TokenResponse **out, struct tokend_error *e)
{
    g_autoptr(SecStr) form = secstr_new(512);
    g_autoptr(HttpResponse) r = NULL;

    secstr_append_form(form, "grant_type", DEVICE_GRANT, strlen(DEVICE_GRANT));
    secstr_append_form(form, "device_code", device_code->data, device_code->len);
    oauth_add_client_auth(form, c);
    if (http_request(h, c->token_url, form, &r, e) < 0)
        return -1;
    if (r->status == 400 && error_is(r, "authorization_pending")) {
        *state = DEVICE_POLL_PENDING;
        return 0;
    }
    if (r->status == 400 && error_is(r, "slow_down")) {
        *state = DEVICE_POLL_SLOW_DOWN;
        return 0;
    }
    if (oauth_parse_token_response(r, out, e) < 0)
        return -1;
    *state = DEVICE_POLL_DONE;
    return 0;
}

int oauth_revoke(Http *h, const struct oauth_client *c, const SecStr *refresh_token,
                 struct tokend_error *e)
{
    g_autoptr(SecStr) form = secstr_new(512);
    g_autoptr(HttpResponse) r = NULL;

    secstr_append_form(form, "token", refresh_token->data, refresh_token->len);
    secstr_append_form(form, "token_type_hint", "refresh_token", 13);
    oauth_add_client_auth(form, c);
    if (http_request(h, c->revocation_url, form, &r, e) < 0)
        return -1;
    if (r->status == 200)
        return 0;
    /* Servers may demand client authentication to revoke (glewlwyd does),
     * which a public client cannot give. */
    if (r->status == 401 && !c->client_secret)
        return error_set(e, TOKEND_EX_NOPERM,
                         "the server lets no public client revoke (HTTP 401); the sign-in "
                         "stays valid there until it expires or is removed at the server");
    return oauth_error_from_response(r, e);
}
