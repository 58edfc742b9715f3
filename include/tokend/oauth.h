#pragma once
/* The OAuth 2.0 protocol: authorization URLs, redirect parameters, grants
 * and the parsing of token and error responses.  Knows nothing of the
 * command line, the config file or where tokens are stored. */

#include <stdbool.h>
#include <glib.h>
#include "tokend/error.h"
#include "tokend/http.h"
#include "tokend/secstr.h"

/* The client as the protocol sees it: filled by the flow layer from the
 * account, its provider preset and discovery. */
struct oauth_client {
    const char *client_id;
    const SecStr *client_secret; /* NULL for public clients */
    const char *authorize_url;
    const char *token_url;
    const char *device_url;
    const char *revocation_url;
    const char *issuer; /* expected `iss` in redirects, or NULL */
    bool iss_required;  /* server advertised RFC 9207 support */
    const char *scopes;
    /* The refresh request's `scope`, or NULL to leave it out ("as granted",
     * RFC 6749 section 6: never more than was granted). */
    const char *refresh_scopes;
    /* The server takes the secret only in HTTP Basic (its metadata lists
     * client_secret_basic and not client_secret_post); else in the body. */
    bool secret_basic;
};

typedef struct token_response {
    SecStr *access_token;
    SecStr *refresh_token; /* NULL when the server sent none */
    gint64 expires_in;     /* seconds; 3600 when the server said nothing */
    char *scope;
    SecStr *id_token;          /* OpenID Connect: who signed in, or NULL */
    bool id_token_bad;         /* an id_token was there but not a string */
    gint64 refresh_expires_in; /* refresh_token_expires_in, when the server says; else 0 */
} TokenResponse;

typedef struct redirect_params {
    SecStr *code;
    char *state;
    char *iss;
    char *error;
    char *error_description;
    bool bare;     /* the user pasted only a code: there is no state to check */
    char *address; /* a pasted URL without its query and fragment, or NULL */
} RedirectParams;

/* A 2xx token response becomes *out; anything else fills e with the OAuth
 * error classified (sign in again, administrator, configuration, slow down). */
int oauth_parse_token_response(const HttpResponse *r, TokenResponse **out, struct tokend_error *e);
/* Fill e from a non-2xx response (or a 2xx one carrying "error"). */
int oauth_error_from_response(const HttpResponse *r, struct tokend_error *e);
/* Classify an OAuth error.  code is Microsoft's error_codes[0] (0 if none). */
int oauth_error_classify(const char *error, long code, const char *description,
                         struct tokend_error *e);
/* Whether e was classified from Microsoft's error code (AADSTS...) code. */
bool oauth_error_has_code(const struct tokend_error *e, long code);
void token_response_free(TokenResponse *t);

/* Parse what a user pasted: the whole final URL (with any extra parameters
 * such as session_state, in quotes or not), its query string, or the bare
 * code. */
int oauth_parse_pasted(const char *input, RedirectParams **out, struct tokend_error *e);
/* Add one decoded redirect parameter (duplicates of known ones are errors;
 * unknown ones such as session_state are ignored). */
int oauth_redirect_add(RedirectParams *p, const char *name, const char *value,
                       struct tokend_error *e);
/* Parse a raw query string (name=value&...). */
int oauth_parse_query(const char *query, RedirectParams **out, struct tokend_error *e);
/* Check a redirect: state must match (unless the user pasted a bare code),
 * an error= is reported, iss must match when present or required, a code
 * must be there. */
int oauth_check_redirect(const RedirectParams *p, const char *expected_state,
                         const struct oauth_client *c, struct tokend_error *e);
void redirect_params_free(RedirectParams *p);

/* The authorization request URL. */
char *oauth_authorize_url(const struct oauth_client *c, const char *redirect_uri, const char *state,
                          const char *challenge, const char *const *extra, struct tokend_error *e);

/* Grants.  form: a request body to which the client's credentials are
 * added before it is POSTed to the token endpoint. */
/* Add client_id (and client_secret, in the body) to a form; nothing when
 * the secret goes in HTTP Basic (oauth_client_basic). */
void oauth_add_client_auth(SecStr *form, const struct oauth_client *c);
/* HTTP Basic's "ID:SECRET", each form-encoded first (RFC 6749 2.3.1), for
 * http_request_auth; NULL when the secret goes in the body or there is
 * none. */
SecStr *oauth_client_basic(const struct oauth_client *c);
int oauth_token_request(Http *h, const struct oauth_client *c, SecStr *form, TokenResponse **out,
                        struct tokend_error *e);
int oauth_redeem_code(Http *h, const struct oauth_client *c, const SecStr *code,
                      const SecStr *verifier, const char *redirect_uri, TokenResponse **out,
                      struct tokend_error *e);
/* The refresh request body, client credentials included: POST it to the
 * token endpoint and parse with oauth_parse_token_response. */
SecStr *oauth_refresh_form(const struct oauth_client *c, const SecStr *refresh_token);

/* App-only grants (oauth_app.c).  Client credentials (RFC 6749 4.4) for
 * `scopes`; the client proves itself with client_assertion (RFC 7523 2.2,
 * private_key_jwt) when given, else with its secret (client_secret_post). */
SecStr *oauth_client_credentials_form(const struct oauth_client *c, const SecStr *client_assertion);
/* RFC 7523 2.1: the signed assertion is the grant; client_id (and secret)
 * only when the client has one (Google's service accounts have none). */
SecStr *oauth_jwt_bearer_form(const struct oauth_client *c, const SecStr *assertion);

/* RFC 8628 device authorization. */
typedef struct device_auth {
    SecStr *device_code;
    char *user_code;
    char *verification_uri;          /* Google spells it verification_url */
    char *verification_uri_complete; /* or NULL */
    gint64 expires_in;
    int interval;
} DeviceAuth;

enum device_poll {
    DEVICE_POLL_PENDING,
    DEVICE_POLL_SLOW_DOWN,
    DEVICE_POLL_DONE,
};

int oauth_device_start(Http *h, const struct oauth_client *c, DeviceAuth **out,
                       struct tokend_error *e);
/* One poll: *state says whether to go on; DONE fills *out. */
int oauth_device_poll(Http *h, const struct oauth_client *c, const SecStr *device_code,
                      enum device_poll *state, TokenResponse **out, struct tokend_error *e);
void device_auth_free(DeviceAuth *d);
int oauth_parse_device_response(const HttpResponse *r, DeviceAuth **out, struct tokend_error *e);

/* RFC 7009: revoke a refresh token. */
int oauth_revoke(Http *h, const struct oauth_client *c, const SecStr *refresh_token,
                 struct tokend_error *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(TokenResponse, token_response_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DeviceAuth, device_auth_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RedirectParams, redirect_params_free)
