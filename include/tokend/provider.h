#pragma once
/* The providers tokend knows by name: one table, one entry each, holding
 * everything that differs between them (endpoints, scopes, mail hosts,
 * which refresh and re-sign-in rules apply, how `tokend add` recognises
 * and sets one up).  Every other module asks the entry, never which
 * provider it is.  Pure data; no I/O. */

#include <stdbool.h>
#include <stddef.h>

struct provider_preset {
    const char *name;         /* the configuration's `provider` value */
    const char *title;        /* for sentences: "Microsoft", "Google" */
    const char *mail_service; /* its mail service: "Microsoft 365", or NULL */
    /* Endpoints: fixed URLs, or "https://{authority}/{tenant}/..." templates
     * filled by provider_expand() from the `authority` and `tenant` keys,
     * which apply only to a provider whose templates name them.  No token
     * URL: the account gives `issuer` (discovery) or its own URLs. */
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
    /* Microsoft Graph's root URL for `smtp_backend = graph` (sendMail), or
     * NULL when the provider has no Graph. */
    const char *graph_url;
    bool needs_client_secret;
    /* The account's `issuer` is looked up (OIDC discovery / RFC 8414) for
     * the endpoints it does not give. */
    bool discovers;
    /* A refresh sends the configured scopes (Microsoft's v2 endpoint wants
     * them, one resource only); otherwise it leaves `scope` out, which
     * RFC 6749 section 6 defines as "as granted". */
    bool refresh_sends_scopes;
    /* offline_access names no resource: a token set's refresh asks for it
     * too, so that the answer carries the next refresh token. */
    bool sets_ask_offline_access;
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
    /* App-only accounts (no person signs in): the grants the provider
     * takes, space separated (config.h's account_grant names), and the
     * scopes asked for by default (NULL: the account must give scopes). */
    const char *app_grants;
    const char *app_scopes;
    /* A signed client assertion must carry the certificate's thumbprint
     * (x5t#S256): a bare key is not enough. */
    bool app_needs_certificate;
    /* tokend add --app-only: what an administrator does once so that the
     * app may use the mailbox, printed with {client_id}, {object_id},
     * {tenant}, {mailbox}, {scopes} (comma separated) and {account} filled
     * in (add.c's app_setup_text); NULL: nothing to say. */
    const char *app_setup;
    /* tunnel, check: what the administrator must do when the mail server
     * refuses the app's token for a mailbox (the app may not use it), one
     * line with {client_id}, {object_id} and {mailbox} filled in
     * (mailcheck.c); NULL: a plain sentence. */
    const char *app_mailbox_hint;
    /* Re-sign-in: seconds a refresh token lasts unused (0: not known), and
     * what to say when no rule gives the end of a sign-in. */
    long inactivity_limit;
    const char *unknown_end_hint;
    /* Where a person ends a sign-in at the provider itself, for a logout
     * the provider could not be told of (no revocation endpoint), or NULL. */
    const char *remote_signout_hint;

    /* tokend add: the registration guide in doc/ (NULL: `--provider` does
     * not offer it; it is found through autoconfig), a public client
     * `--client NAME` may name, and how an address is recognised. */
    const char *registration_guide;
    const char *public_client;    /* the NAME of --client NAME */
    const char *public_client_id; /* whose it is: public_client_note */
    const char *public_client_note;
    const char *const *consumer_domains;  /* exact domains */
    const char *const *consumer_prefixes; /* "hotmail." + a country's suffix */
    const char *consumer_tenant;          /* the tenant of those domains */
    const char *const *mx_hosts;          /* MX under one of these: this provider */
    bool mx_tenant_is_domain;             /* and the domain names the tenant */
    const char *issuer_host;              /* an autoconfig issuer under it */
    /* A domain is a tenant when this document ({domain} is the domain) has
     * an issuer ".../TENANT/v2.0" under authority_url. */
    const char *tenant_discovery_url;
    const char *authority_url;
};

/* The entries, in the table's order; NULL past the last. */
const struct provider_preset *provider_at(size_t i);
/* By name; NULL if unknown. */
const struct provider_preset *provider_find(const char *name);
/* The entry for a server known only by its issuer (the one that
 * `discovers`). */
const struct provider_preset *provider_discovering(void);
/* "microsoft, google or generic": the names, for messages. */
char *provider_names_text(void);
/* The `tenant` and `authority` keys apply (the endpoint templates use them). */
bool provider_has_tenant(const struct provider_preset *p);
bool provider_has_authority(const struct provider_preset *p);
/* Fill an endpoint template: returns a newly allocated URL, or NULL if the
 * authority or the tenant is not valid. */
char *provider_expand(const char *tmpl, const char *authority, const char *tenant);
