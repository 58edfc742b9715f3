#pragma once
/* Provider presets: the endpoints, scopes and quirks of the providers tokend
 * knows by name.  Pure data; no I/O. */

#include <stdbool.h>

enum provider_kind {
    PROVIDER_MICROSOFT,
    PROVIDER_GOOGLE,
    PROVIDER_GENERIC,
    PROVIDER_COUNT,
};

struct provider_preset {
    const char *name;
    /* "https://{authority}/{tenant}/..." templates for Microsoft, filled by
     * provider_expand(), or fixed URLs. */
    const char *authorize_url;
    const char *token_url;
    const char *device_url;
    const char *revocation_url;
    const char *issuer;
    const char *default_authority;
    const char *default_tenant;
    const char *default_scopes;
    const char *default_redirect_uri;
    const char *extra_auth_params; /* "k=v k=v" always sent on authorize */
    const char *imap_host;
    int imap_port;
    const char *smtp_host;
    int smtp_port;
    const char *pop_host;
    bool needs_client_secret;
    /* A refresh sends the configured scopes (Microsoft's v2 endpoint wants
     * them, one resource only); otherwise it leaves `scope` out, which
     * RFC 6749 section 6 defines as "as granted". */
    bool refresh_sends_scopes;
    /* OpenID Connect Core section 11: the server may ignore offline_access
     * without prompt=consent, so ask for consent (offline_consent = auto). */
    bool offline_needs_consent;
    /* Scopes the granted `scope` never lists although they were granted
     * (Microsoft lists only what the access token is for), space separated;
     * offline_access among them counts as granted while a refresh token is
     * stored. */
    const char *unlisted_scopes;
    /* "asked=listed ..." : how the granted `scope` spells a scope that was
     * asked for under another name (Google: email is userinfo.email). */
    const char *scope_spellings;
};

const struct provider_preset *provider_preset(enum provider_kind kind);
/* Parse a provider name; returns -1 if unknown. */
int provider_from_name(const char *name);
const char *provider_name(enum provider_kind kind);
/* Fill a Microsoft endpoint template: returns a newly allocated URL, or NULL
 * if the authority or the tenant is not valid. */
char *provider_expand(const char *tmpl, const char *authority, const char *tenant);
