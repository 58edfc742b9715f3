/* The token requests of app-only accounts: client credentials and the JWT
 * bearer grant. */

#include <string.h>

#include "tokend/oauth.h"

#define CLIENT_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define JWT_BEARER_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"

SecStr *oauth_client_credentials_form(const struct oauth_client *c, const SecStr *client_assertion)
{
    SecStr *form = secstr_new(2048);

    secstr_append_form(form, "grant_type", "client_credentials", strlen("client_credentials"));
    secstr_append_form(form, "scope", c->scopes, strlen(c->scopes));
    if (!client_assertion) {
        oauth_add_client_auth(form, c);
        return form;
    }
    secstr_append_form(form, "client_id", c->client_id, strlen(c->client_id));
    secstr_append_form(form, "client_assertion_type", CLIENT_ASSERTION_TYPE,
                       strlen(CLIENT_ASSERTION_TYPE));
    secstr_append_form(form, "client_assertion", client_assertion->data, client_assertion->len);
    return form;
}

SecStr *oauth_jwt_bearer_form(const struct oauth_client *c, const SecStr *assertion)
{
    SecStr *form = secstr_new(2048);

    secstr_append_form(form, "grant_type", JWT_BEARER_GRANT, strlen(JWT_BEARER_GRANT));
    secstr_append_form(form, "assertion", assertion->data, assertion->len);
    if (c->client_id)
        oauth_add_client_auth(form, c);
    return form;
}
