#include <string.h>
#include <glib.h>

#include "tokend/provider.h"
#include "tokend/uri.h"

#define MS_MAIL "https://outlook.office.com/"

static const struct provider_preset presets[PROVIDER_COUNT] = {
    [PROVIDER_MICROSOFT] =
        {
            .name = "microsoft",
            .authorize_url = "https://{authority}/{tenant}/oauth2/v2.0/authorize",
            .token_url = "https://{authority}/{tenant}/oauth2/v2.0/token",
            .device_url = "https://{authority}/{tenant}/oauth2/v2.0/devicecode",
            .revocation_url = NULL, /* Microsoft has no RFC 7009 endpoint */
            .issuer = NULL,         /* templated per tenant; never checked */
            .default_authority = "login.microsoftonline.com",
            .default_tenant = "common",
            .default_scopes =
                MS_MAIL "IMAP.AccessAsUser.All " MS_MAIL "POP.AccessAsUser.All " MS_MAIL
                        "SMTP.Send offline_access openid profile",
            .default_redirect_uri = "http://localhost/",
            .extra_auth_params = NULL,
            .imap_host = "outlook.office365.com",
            .imap_port = 993,
            .smtp_host = "smtp.office365.com",
            .smtp_port = 587,
            .pop_host = "outlook.office365.com",
            .needs_client_secret = false,
            .refresh_sends_scopes = true,
            .unlisted_scopes = "offline_access openid profile email",
        },
    [PROVIDER_GOOGLE] =
        {
            .name = "google",
            .authorize_url = "https://accounts.google.com/o/oauth2/v2/auth",
            .token_url = "https://oauth2.googleapis.com/token",
            .device_url = "https://oauth2.googleapis.com/device/code",
            .revocation_url = "https://oauth2.googleapis.com/revoke",
            .issuer = "https://accounts.google.com",
            .default_scopes = "https://mail.google.com/ openid email",
            .default_redirect_uri = "http://127.0.0.1/",
            .extra_auth_params = "access_type=offline prompt=consent",
            .imap_host = "imap.gmail.com",
            .imap_port = 993,
            .smtp_host = "smtp.gmail.com",
            .smtp_port = 587,
            .pop_host = "pop.gmail.com",
            .needs_client_secret = true,
            .scope_spellings = "email=https://www.googleapis.com/auth/userinfo.email "
                               "profile=https://www.googleapis.com/auth/userinfo.profile",
        },
    [PROVIDER_GENERIC] =
        {
            .name = "generic",
            .default_scopes = "openid offline_access",
            .default_redirect_uri = "http://127.0.0.1/",
            .imap_port = 993,
            .smtp_port = 587,
            .offline_needs_consent = true,
        },
};

const struct provider_preset *provider_preset(enum provider_kind kind)
{
    g_return_val_if_fail(kind < PROVIDER_COUNT, NULL);
    return &presets[kind];
}

int provider_from_name(const char *name)
{
    for (int i = 0; i < PROVIDER_COUNT; i++)
        if (g_strcmp0(presets[i].name, name) == 0)
            return i;
    return -1;
}

const char *provider_name(enum provider_kind kind)
{
    return kind < PROVIDER_COUNT ? presets[kind].name : "unknown";
}

static char *replace_all(const char *text, const char *what, const char *with)
{
    g_auto(GStrv) parts = g_strsplit(text, what, -1);
    return g_strjoinv(with, parts);
}

/* "SCHEME://{authority}PATH": the URL is built by GUri from the authority's
 * host and port and the path with the tenant, which must be a valid one, so
 * no value can make a broken URL.  A template without {authority} is a
 * fixed URL. */
char *provider_expand(const char *tmpl, const char *authority, const char *tenant)
{
    const char *mark = tmpl ? strstr(tmpl, "://{authority}") : NULL;
    g_autofree char *scheme = NULL;
    g_autofree char *path = NULL;

    if (!tmpl)
        return NULL;
    if (!mark)
        return strstr(tmpl, "{tenant}") ? NULL : g_strdup(tmpl);
    if (strstr(tmpl, "{tenant}") && !uri_tenant_valid(tenant))
        return NULL;
    scheme = g_strndup(tmpl, (gsize)(mark - tmpl));
    path = replace_all(mark + strlen("://{authority}"), "{tenant}", tenant ? tenant : "");
    return uri_build(scheme, authority, path);
}
