/* Building the protocol's view of an account: the client secret (read only
 * when needed) and the endpoints. */

#include <string.h>

#include "tokend/flow.h"
#include "tokend/fileio.h"

#define CLIENT_SECRET_MAX 4096

static int load_secret(const Account *a, SecStr **out, struct tokend_error *e)
{
    g_autoptr(SecStr) s = NULL;
    bool missing = false;

    if (a->client_secret) {
        *out = secstr_dup(a->client_secret);
        return 0;
    }
    if (!a->client_secret_file)
        return 0;
    if (fileio_read_secret(a->client_secret_file, CLIENT_SECRET_MAX, &s, &missing, e) < 0) {
        e->status = TOKEND_EX_CONFIG;
        error_prefix(e, "client_secret_file");
        return -1;
    }
    while (s->len > 0 && g_ascii_isspace(s->data[s->len - 1]))
        s->data[--s->len] = '\0';
    if (s->len == 0)
        return error_set(e, TOKEND_EX_CONFIG, "client_secret_file %s is empty",
                         a->client_secret_file);
    *out = g_steal_pointer(&s);
    return 0;
}

FlowClient *flow_client_new(const Account *a, struct tokend_error *e)
{
    g_autoptr(FlowClient) c = g_new0(FlowClient, 1);

    if (load_secret(a, &c->secret, e) < 0)
        return NULL;
    c->authorize_url = g_strdup(a->authorize_url);
    c->token_url = g_strdup(a->token_url);
    c->device_url = g_strdup(a->device_authorization_url);
    c->revocation_url = g_strdup(a->revocation_url);
    c->issuer = g_strdup(a->issuer);
    if (!c->token_url) {
        error_set(e, TOKEND_EX_CONFIG, "no token endpoint known for this account");
        error_set_hint(e, "set token_url, or issuer for discovery");
        return NULL;
    }
    c->oauth = (struct oauth_client){
        .client_id = a->client_id,
        .client_secret = c->secret,
        .authorize_url = c->authorize_url,
        .token_url = c->token_url,
        .device_url = c->device_url,
        .revocation_url = c->revocation_url,
        .issuer = c->issuer,
        .iss_required = false,
        .scopes = a->scopes,
    };
    return g_steal_pointer(&c);
}

void flow_client_free(FlowClient *c)
{
    if (!c)
        return;
    secstr_free(c->secret);
    g_free(c->authorize_url);
    g_free(c->token_url);
    g_free(c->device_url);
    g_free(c->revocation_url);
    g_free(c->issuer);
    g_free(c);
}
