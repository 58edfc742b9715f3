#pragma once
/* Authorization server metadata: OpenID Connect discovery, or RFC 8414
 * (/.well-known/oauth-authorization-server), cached beside the account's
 * state and fetched again when older than a day. */

#include <stdbool.h>
#include "tokend/error.h"
#include "tokend/http.h"

typedef struct discovery {
    char *issuer;
    char *authorization_endpoint;
    char *token_endpoint;
    char *device_authorization_endpoint;
    char *revocation_endpoint;
    char *userinfo_endpoint;      /* OpenID Connect: who signed in, for an access token */
    bool email_scope;             /* scopes_supported lists "email" */
    bool iss_parameter_supported; /* RFC 9207 */
    bool issuer_templated;        /* Microsoft's ".../{tenantid}/v2.0" */
    /* token_endpoint_auth_methods_supported lists client_secret_basic and
     * not client_secret_post: a client secret goes in HTTP Basic. */
    bool secret_basic_only;
} Discovery;

/* Parse a metadata document, checking that its issuer is `issuer`. */
Discovery *discovery_parse(const char *json, size_t len, const char *issuer,
                           struct tokend_error *e);
/* The metadata for issuer: from the cache in account_dir when fresh, else
 * fetched (and cached).  A stale cache is used when the server is away. */
Discovery *discovery_get(Http *h, const char *issuer, const char *account_dir,
                         struct tokend_error *e);
void discovery_free(Discovery *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Discovery, discovery_free)
