/* App-only accounts in the configuration: the keys of their grants checked
 * together (config_account.c calls this instead of the sign-in checks). */

#include <string.h>

#include "config_internal.h"

void config_app_free(Account *a)
{
    g_free(a->client_certificate);
    g_free(a->client_key);
    g_free(a->client_key_passphrase_file);
    g_free(a->assertion_alg);
    g_free(a->service_account_file);
    g_free(a->subject);
}

static int not_for_grant(struct parse_ctx *c, const Account *a, const char *key, const char *value)
{
    if (!value)
        return 0;
    return config_key_error(c, key, "does not apply to grant = %s", account_grant_name(a->grant));
}

bool config_app_secret_stored(const Account *a)
{
    return a->grant == ACCOUNT_GRANT_CLIENT_CREDENTIALS && !a->client_secret &&
           !a->client_secret_file && !a->client_certificate && !a->client_key;
}

/* client_credentials: the app proves itself with a signed assertion
 * (private_key_jwt; Microsoft wants its certificate's thumbprint) or with
 * a client secret, never both.  Neither named: the client secret is in the
 * account's store (tokend import --secret puts it there). */
static int check_client_credentials(struct parse_ctx *c, Account *a)
{
    bool secret = a->client_secret || a->client_secret_file;
    bool key = a->client_certificate || a->client_key;

    if (!a->client_id)
        return config_key_error(c, "client_id", "missing (the application id of the app)");
    if (secret && key)
        return config_key_error(c, "client_certificate",
                                "give a certificate (client_certificate, client_key) or a "
                                "client secret, not both");
    if (key && !a->client_certificate && a->provider->app_needs_certificate)
        return config_key_error(c, "client_certificate",
                                "missing (%s finds the app's key by its certificate's thumbprint)",
                                a->provider->title);
    if (not_for_grant(c, a, "service_account_file", a->service_account_file) < 0 ||
        not_for_grant(c, a, "subject", a->subject) < 0)
        return -1;
    return 0;
}

/* jwt_bearer: a service account (its JSON key file, or client_id and
 * client_key) asks for a token to act for `subject`. */
static int check_jwt_bearer(struct parse_ctx *c, Account *a)
{
    if (!a->service_account_file && !a->client_id)
        return config_key_error(c, "service_account_file",
                                "missing (grant = jwt_bearer signs with the service account's "
                                "JSON key file, or with client_key as client_id)");
    if (a->service_account_file && a->client_key)
        return config_key_error(c, "client_key",
                                "the service account file holds the key; give one of them");
    if (a->client_secret && a->client_secret_file)
        return config_key_error(c, "client_secret",
                                "give client_secret or client_secret_file, not both");
    if (!a->subject && !a->username)
        return config_key_error(c, "subject",
                                "missing (the mailbox the service account acts for; or set "
                                "username)");
    return 0;
}

int config_validate_app(struct parse_ctx *c, Account *a)
{
    static const char *const algs[] = {"RS256", "PS256", NULL};
    const struct provider_preset *p = a->provider;
    const char *grant = account_grant_name(a->grant);
    g_auto(GStrv) grants = g_strsplit(p->app_grants ? p->app_grants : "", " ", -1);

    if (!g_strv_contains((const char *const *)grants, grant))
        return config_key_error(c, "grant", "provider = %s takes no %s grant%s%s", p->name, grant,
                                p->app_grants ? "; it takes " : "",
                                p->app_grants ? p->app_grants : "");
    if (!a->scopes)
        return config_key_error(
            c, "scopes", "missing (provider = %s has no default for grant = %s)", p->name, grant);
    if (!a->token_url && !a->issuer)
        return config_key_error(c, NULL, "provider = %s needs issuer or token_url", p->name);
    if (a->assertion_alg && !g_strv_contains(algs, a->assertion_alg))
        return config_key_error(c, "assertion_alg", "\"%s\" is not one of RS256, PS256",
                                a->assertion_alg);
    if (a->client_key_passphrase_file && !a->client_key && !a->client_certificate)
        return config_key_error(c, "client_key_passphrase_file", "applies to client_key only");
    if (a->token_sets)
        return config_key_error(c, "token_sets",
                                "needs a refresh token, which an app-only account never has");
    if (a->grant == ACCOUNT_GRANT_CLIENT_CREDENTIALS)
        return check_client_credentials(c, a);
    return check_jwt_bearer(c, a);
}
