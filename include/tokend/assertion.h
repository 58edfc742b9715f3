#pragma once
/* JWT assertions signed with an app's private key (RFC 7523): the client
 * assertion of private_key_jwt (section 2.2, Microsoft's certificate
 * credentials) and the authorization grant of a service account (section
 * 2.1, Google's domain-wide delegation).  JSON by cJSON, base64url by
 * GLib, signatures by OpenSSL.  The assertion is a secret: whoever holds
 * it gets a token until it expires. */

#include <glib.h>
#include "tokend/error.h"
#include "tokend/keyfile.h"
#include "tokend/secstr.h"

enum assertion_alg {
    ASSERTION_ALG_RS256,
    ASSERTION_ALG_PS256,
};

/* The longest lifetime an assertion is given (Google allows an hour,
 * Microsoft wants a few minutes). */
#define ASSERTION_LIFETIME 300

struct assertion_claims {
    const char *iss;
    const char *sub;   /* NULL: left out */
    const char *aud;   /* the token endpoint */
    const char *scope; /* section 2.1 (Google): the scopes asked for; NULL: left out */
    const char *jti;   /* NULL: a fresh random one */
    gint64 now;        /* iat and nbf */
    int lifetime;      /* exp = now + lifetime */
    /* Header: a key id, and the certificate's thumbprints (NULL: left out). */
    const char *kid;
    const char *x5t_s256;
    const char *x5t;
};

/* "RS256" or "PS256"; NULL for anything else. */
const char *assertion_alg_name(enum assertion_alg alg);
/* By name; -1 if unknown. */
int assertion_alg_from_name(const char *name);
/* header.claims.signature, each part base64url without padding. */
SecStr *assertion_build(const struct assertion_claims *c, enum assertion_alg alg, const AppKey *key,
                        struct tokend_error *e);
