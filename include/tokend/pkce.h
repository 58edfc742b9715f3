#pragma once
/* RFC 7636 PKCE (S256 only) and random state values. */

#include "tokend/error.h"
#include "tokend/secstr.h"

typedef struct pkce {
    SecStr *verifier; /* 64 unreserved characters */
    char *challenge;  /* BASE64URL(SHA256(verifier)) */
} Pkce;

Pkce *pkce_new(struct tokend_error *e);
void pkce_free(Pkce *p);
/* The S256 challenge of a verifier (for tests). */
char *pkce_challenge(const char *verifier, size_t len);
/* A random URL-safe string carrying `bytes` random bytes. */
char *pkce_random_string(size_t bytes, struct tokend_error *e);
/* Base64url without padding. */
char *pkce_base64url(const unsigned char *data, size_t len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Pkce, pkce_free)
