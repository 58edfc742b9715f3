#pragma once
/* From an e-mail address to a provider: the well-known consumer domains,
 * then the domain's MX records, its Microsoft 365 tenant, and Mozilla
 * autoconfig with OpenID discovery on the issuer it names.  Each step says
 * what it found at -v. */

#include "tokend/error.h"
#include "tokend/provider.h"

typedef struct detection {
    const struct provider_preset *provider;
    char *how;           /* one line: what the provider was recognised by */
    char *tenant;        /* Microsoft: consumers, the domain, or a tenant id */
    char *issuer;        /* generic: the issuer, when discovery confirmed it */
    char *authorize_url; /* generic without discovery: from autoconfig */
    char *token_url;
    char *scopes;                           /* NULL: the preset's */
    char *username;                         /* NULL: the address */
    char *imap_host, *smtp_host, *pop_host; /* NULL: the preset's */
    int imap_port, smtp_port, pop_port;
} Detection;

/* email: "local@domain".  No provider found is -1 with CONFIG; a DNS server
 * that does not answer, TEMPFAIL; a broken autoconfig document, DATAERR.
 * An autoconfig document naming a sign-in on this machine (loopback) or
 * over plain http is refused (DATAERR) unless its issuer is trusted_issuer
 * (the user's --issuer, or NULL); a trusted_issuer other than the one
 * found is refused too. */
Detection *detect_provider(const char *email, const char *trusted_issuer, struct tokend_error *e);
/* The first step alone, with no network: the provider whose consumer
 * domain the address is in, or NULL. */
Detection *detect_known(const char *email);
/* The domain of an address, lower case, or NULL if it is not one. */
char *detect_domain(const char *email);
void detection_free(Detection *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Detection, detection_free)
