#pragma once
/* Who signed in: the claims of an OpenID Connect ID token.  The token comes
 * straight from the token endpoint over TLS, so (OpenID Connect Core
 * 3.1.3.7) TLS server validation vouches for it and its signature is not
 * checked; its audience is.  Knows nothing of accounts or configuration. */

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>
#include "tokend/error.h"

/* The claims that name a user; NULL when absent or unusable (not a string,
 * too long, control characters). */
typedef struct id_claims {
    char *sub;
    char *email;
    char *preferred_username;
    char *upn;
} IdClaims;

/* Decode the payload of a JWS compact id_token (header.payload.signature)
 * and read its claims.  The audience must include client_id (when given).
 * A malformed token fills e (65) and returns -1. */
int idtoken_parse(const char *jwt, size_t len, const char *client_id, IdClaims **out,
                  struct tokend_error *e);
/* The same claims from an OpenID Connect userinfo answer (a JSON object,
 * OpenID Connect Core 5.3.2), fetched with the access token over TLS.  Not
 * an object: 65. */
int idtoken_parse_userinfo(const char *json, size_t len, IdClaims **out, struct tokend_error *e);
void id_claims_free(IdClaims *c);
/* One string claim of a JWS compact token's payload, or NULL (not a JWT,
 * no such claim, unusable).  Nothing is checked: for messages only, such
 * as the object id Microsoft puts in an app's access token (oid). */
char *idtoken_claim(const char *jwt, size_t len, const char *name);
/* True when at least one claim names the user by a name a person types
 * (email, preferred_username, upn), not only the often opaque sub. */
bool idtoken_has_name(const IdClaims *c);
/* The claim that matches name, or NULL: email, preferred_username and upn
 * compare without regard to ASCII case, sub exactly. */
const char *idtoken_match(const IdClaims *c, const char *name);
/* The claim that best says who signed in (email, preferred_username, upn,
 * then sub), or NULL. */
const char *idtoken_best_name(const IdClaims *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(IdClaims, id_claims_free)
