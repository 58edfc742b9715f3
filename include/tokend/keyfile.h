#pragma once
/* The keys of app-only accounts, parsed from memory: a PEM private key
 * (encrypted with a passphrase or not), a PEM certificate's thumbprints and
 * expiry, and Google's service account JSON key.  OpenSSL reads PEM and
 * X.509, cJSON the JSON; nothing here reads a file or prints.  A private
 * key is a secret: it lives in an AppKey (OpenSSL's own memory, freed with
 * EVP_PKEY_free, which wipes it) or in a SecStr. */

#include <stdbool.h>
#include <glib.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

/* The most a key, certificate or JSON key file may be. */
#define KEYFILE_MAX_BYTES (64 * 1024)

typedef struct app_key AppKey;

typedef struct app_cert {
    char *x5t_s256;   /* base64url(SHA-256(DER)), RFC 7515 x5t#S256 */
    char *x5t;        /* base64url(SHA-1(DER)), for tenants that read only x5t */
    gint64 not_after; /* expiry, unix seconds */
    void *rsa_n;      /* BIGNUM *: an RSA key's modulus, else NULL */
    void *rsa_e;      /* BIGNUM *: its public exponent */
} AppCert;

/* Google's service account key file ("type": "service_account"). */
typedef struct service_account {
    char *client_email;   /* the assertion's iss */
    char *client_id;      /* the numeric id the Admin console asks for */
    char *private_key_id; /* the assertion's kid */
    char *token_uri;      /* or NULL */
    SecStr *private_key;  /* PEM */
} ServiceAccount;

/* An RSA private key in PEM (PKCS#8, encrypted PKCS#8 or traditional RSA).
 * passphrase: for an encrypted key, or NULL.  65 when it is not a key, 78
 * when it is encrypted and no passphrase (or a wrong one) was given. */
AppKey *keyfile_parse_private_key(const SecStr *pem, const SecStr *passphrase,
                                  struct tokend_error *e);
void app_key_free(AppKey *k);
/* OpenSSL's EVP_PKEY *, for the signer. */
void *app_key_pkey(const AppKey *k);

/* The first certificate of a PEM text. */
AppCert *keyfile_parse_certificate(const char *pem, size_t len, struct tokend_error *e);
void app_cert_free(AppCert *c);
/* The private key is the one the certificate was made for. */
bool keyfile_key_matches(const AppKey *k, const AppCert *c);

ServiceAccount *keyfile_parse_service_account(const SecStr *json, struct tokend_error *e);
void service_account_free(ServiceAccount *s);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AppKey, app_key_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AppCert, app_cert_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ServiceAccount, service_account_free)
