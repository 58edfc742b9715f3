#pragma once
/* Authorization server metadata: OpenID Connect discovery, or RFC 8414
 * (/.well-known/oauth-authorization-server), fetched and parsed.  Keeping
 * it (a day, beside the account's state) is the flow's (flow_client.c):
 * protocol code writes no files. */

#include <stdbool.h>
#include "tokend/error.h"
#include "tokend/http.h"
#include "tokend/secstr.h"

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
#define DISCOVERY_MAX_BYTES (256 * 1024)

/* The issuer's metadata from the server; *doc (when not NULL) receives the
 * document as it came, to be kept. */
Discovery *discovery_fetch(Http *h, const char *issuer, SecStr **doc, struct tokend_error *e);
void discovery_free(Discovery *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Discovery, discovery_free)
