#include <string.h>

#include "tokend/discovery.h"
#include "tokend/shared.h"
#include "tokend/log.h"

void discovery_free(Discovery *d)
{
    if (!d)
        return;
    g_free(d->issuer);
    g_free(d->authorization_endpoint);
    g_free(d->token_endpoint);
    g_free(d->device_authorization_endpoint);
    g_free(d->revocation_endpoint);
    g_free(d->userinfo_endpoint);
    g_free(d);
}

static char *endpoint(const cJSON *root, const char *name, struct tokend_error *e, bool *bad)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

    if (!v)
        return NULL;
    if (!cJSON_IsString(v) || http_check_url(v->valuestring, e) < 0) {
        *bad = true;
        error_set(e, TOKEND_EX_DATAERR, "the server metadata has an unusable %s", name);
        return NULL;
    }
    return g_strdup(v->valuestring);
}

static char *strip_slash(const char *s)
{
    char *c = g_strdup(s);
    size_t n = strlen(c);

    while (n > 0 && c[n - 1] == '/')
        c[--n] = '\0';
    return c;
}

static bool lists(const cJSON *array, const char *word)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, array)
    {
        if (cJSON_IsString(item) && g_strcmp0(item->valuestring, word) == 0)
            return true;
    }
    return false;
}

static bool secret_basic_only(const cJSON *root)
{
    const cJSON *methods =
        cJSON_GetObjectItemCaseSensitive(root, "token_endpoint_auth_methods_supported");

    return cJSON_IsArray(methods) && lists(methods, "client_secret_basic") &&
           !lists(methods, "client_secret_post");
}

Discovery *discovery_parse(const char *json, size_t len, const char *issuer, struct tokend_error *e)
{
    g_autoptr(cJSON) root = cJSON_ParseWithLength(json, len);
    g_autoptr(Discovery) d = g_new0(Discovery, 1);
    g_autofree char *want = strip_slash(issuer);
    g_autofree char *got = NULL;
    const cJSON *iss;
    bool bad = false;

    if (!cJSON_IsObject(root)) {
        error_set(e, TOKEND_EX_DATAERR, "the server metadata is not a JSON object");
        return NULL;
    }
    iss = cJSON_GetObjectItemCaseSensitive(root, "issuer");
    if (!cJSON_IsString(iss)) {
        error_set(e, TOKEND_EX_DATAERR, "the server metadata names no issuer");
        return NULL;
    }
    got = strip_slash(iss->valuestring);
    /* Microsoft's multi-tenant documents say ".../{tenantid}/v2.0": no
     * issuer check can hold there, so none is made. */
    d->issuer_templated = strstr(got, "{tenantid}") != NULL;
    if (!d->issuer_templated && strcmp(got, want) != 0) {
        error_set(e, TOKEND_EX_DATAERR, "the server metadata is for issuer %s, not %s", got, want);
        return NULL;
    }
    d->issuer = g_strdup(iss->valuestring);
    d->authorization_endpoint = endpoint(root, "authorization_endpoint", e, &bad);
    d->token_endpoint = endpoint(root, "token_endpoint", e, &bad);
    d->device_authorization_endpoint = endpoint(root, "device_authorization_endpoint", e, &bad);
    d->revocation_endpoint = endpoint(root, "revocation_endpoint", e, &bad);
    d->userinfo_endpoint = endpoint(root, "userinfo_endpoint", e, &bad);
    if (bad)
        return NULL;
    d->secret_basic_only = secret_basic_only(root);
    d->email_scope = lists(cJSON_GetObjectItemCaseSensitive(root, "scopes_supported"), "email");
    d->iss_parameter_supported =
        !d->issuer_templated && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                    root, "authorization_response_iss_parameter_supported"));
    return g_steal_pointer(&d);
}

/* OpenID Connect puts the well-known path after the issuer; RFC 8414
 * between the host and the issuer's path.  Built with GUri from the
 * issuer's parts (config refuses a query or fragment in it). */
static char *well_known(const char *issuer, bool oidc)
{
    g_autoptr(GUri) u = g_uri_parse(issuer, G_URI_FLAGS_ENCODED, NULL);
    g_autoptr(GUri) w = NULL;
    g_autofree char *base = NULL;
    g_autofree char *path = NULL;

    if (!u || !g_uri_get_host(u))
        return NULL;
    base = strip_slash(g_uri_get_path(u));
    path = oidc ? g_strconcat(base, "/.well-known/openid-configuration", NULL)
                : g_strconcat("/.well-known/oauth-authorization-server", base, NULL);
    w = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(u), NULL, g_uri_get_host(u),
                    g_uri_get_port(u), path, NULL, NULL);
    return g_uri_to_string(w);
}

Discovery *discovery_fetch(Http *h, const char *issuer, SecStr **doc, struct tokend_error *e)
{
    for (int oidc = 1; oidc >= 0; oidc--) {
        g_autofree char *url = well_known(issuer, oidc);
        g_autoptr(HttpResponse) r = NULL;
        Discovery *d;

        if (http_request(h, url, NULL, &r, e) < 0)
            return NULL;
        if (r->status == 404 && oidc)
            continue;
        if (r->status != 200) {
            error_set(e, r->status >= 500 ? TOKEND_EX_TEMPFAIL : TOKEND_EX_DATAERR,
                      "cannot read the server metadata at %s (HTTP %ld)", url, r->status);
            return NULL;
        }
        if (r->body->len > DISCOVERY_MAX_BYTES) {
            error_set(e, TOKEND_EX_DATAERR, "the server metadata at %s is too long", url);
            return NULL;
        }
        d = discovery_parse(r->body->data, r->body->len, issuer, e);
        if (d && doc)
            *doc = g_steal_pointer(&r->body);
        return d;
    }
    return NULL;
}
