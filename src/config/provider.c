#include <string.h>
#include <glib.h>

#include "tokend/provider.h"
#include "tokend/uri.h"

#define MS_MAIL "https://outlook.office.com/"
#define MS_SIGNOUT "Sign out everywhere, in your account's security settings"

static const char *const ms_domains[] = {"outlook.com", "msn.com", "passport.com",
                                         "windowslive.com", NULL};
static const char *const ms_prefixes[] = {"hotmail.", "live.", "outlook.", NULL};
static const char *const ms_mx[] = {"mail.protection.outlook.com", NULL};
static const char *const google_domains[] = {"gmail.com", "googlemail.com", NULL};
static const char *const google_mx[] = {"google.com", "googlemail.com", NULL};

/* Exchange Online admits an app only to the mailboxes it is given
 * permissions on, through a service principal that names the app's
 * enterprise application (its object id is the token's oid claim). */
#define MS_APP_SETUP_IN(connect_options)                                                           \
    "An Exchange administrator runs once, in Exchange Online PowerShell:\n"                        \
    "  Connect-ExchangeOnline -Organization {tenant}" connect_options "\n"                         \
    "  # the app in Exchange ({object_id}: its Enterprise application's object id)\n"              \
    "  New-ServicePrincipal -AppId {client_id} -ObjectId {object_id} -DisplayName "                \
    "\"tokend {account}\"\n"                                                                       \
    "  # IMAP and POP: the mailbox the app reads\n"                                                \
    "  Add-MailboxPermission -Identity \"{mailbox}\" -User {object_id} -AccessRights FullAccess\n" \
    "  # SMTP: the address the app sends as\n"                                                     \
    "  Add-RecipientPermission -Identity \"{mailbox}\" -Trustee {object_id} -AccessRights "        \
    "SendAs\n"                                                                                     \
    "  # only the named mailboxes, should the app hold other Exchange application\n"               \
    "  # permissions (RBAC for Applications; add each mailbox to the filter):\n"                   \
    "  New-ManagementScope -Name \"tokend {account}\" -RecipientRestrictionFilter "                \
    "\"PrimarySmtpAddress -eq '{mailbox}'\"\n"                                                     \
    "  New-ManagementRoleAssignment -App {object_id} -Role \"Application Mail.ReadWrite\" "        \
    "-CustomResourceScope \"tokend {account}\"\n"                                                  \
    "The app registration needs the application permissions IMAP.AccessAsApp, "                    \
    "POP.AccessAsApp and SMTP.SendAsApp of Office 365 Exchange Online, with admin consent "        \
    "(doc/registration-microsoft-app.md).\n"
#define MS_APP_SETUP MS_APP_SETUP_IN("")
/* A mailbox the app was not given, in one line (the whole of it above). */
#define MS_APP_MAILBOX_HINT                                                                        \
    "an Exchange administrator must give the app this mailbox, in Exchange Online PowerShell: "    \
    "Add-MailboxPermission -Identity \"{mailbox}\" -User {object_id} -AccessRights FullAccess "    \
    "(IMAP, POP) and Add-RecipientPermission -Identity \"{mailbox}\" -Trustee {object_id} "        \
    "-AccessRights SendAs (SMTP), and add {mailbox} to the app's application access policy or "    \
    "RBAC management scope if it has one (tokend add --app-only prints the whole setup)"

/* Microsoft's other clouds and endpoints (doc/clouds.md cites the pages):
 * Microsoft's entry with its own login host, mail hosts and the resource
 * of its scopes.  No consumer accounts, no public client, no detection. */
#define MS_CLOUD(NAME, TITLE, SERVICE, AUTHORITY, RESOURCE, IMAP, SMTP, GRAPH, USER_SCOPES,        \
                 CONNECT)                                                                          \
    {                                                                                              \
        .name = NAME, .title = TITLE, .mail_service = SERVICE,                                     \
        .authorize_url = "https://{authority}/{tenant}/oauth2/v2.0/authorize",                     \
        .token_url = "https://{authority}/{tenant}/oauth2/v2.0/token",                             \
        .device_url = "https://{authority}/{tenant}/oauth2/v2.0/devicecode",                       \
        .default_authority = AUTHORITY, .default_tenant = "organizations",                         \
        .default_scopes = USER_SCOPES " offline_access openid profile",                            \
        .default_redirect_uri = "http://localhost/", .imap_host = IMAP, .imap_port = 993,          \
        .smtp_host = SMTP, .smtp_port = 587, .pop_host = IMAP, .graph_url = GRAPH,                 \
        .refresh_sends_scopes = true, .sets_ask_offline_access = true,                             \
        .app_grants = "client_credentials", .app_scopes = "https://" RESOURCE "/.default",         \
        .app_needs_certificate = true, .app_setup = MS_APP_SETUP_IN(CONNECT),                      \
        .app_mailbox_hint = MS_APP_MAILBOX_HINT,                                                   \
        .unlisted_scopes = "offline_access openid profile email", .inactivity_limit = 90L * 86400, \
        .unknown_end_hint = "the provider does not say; signin_lifetime sets it",                  \
        .remote_signout_hint = MS_SIGNOUT, .registration_guide = "clouds.md",                      \
    }
#define MS_MAIL_SCOPES(RESOURCE)                                                                   \
    "https://" RESOURCE "/IMAP.AccessAsUser.All https://" RESOURCE                                 \
    "/POP.AccessAsUser.All https://" RESOURCE "/SMTP.Send"

static const struct provider_preset presets[] = {
    {
        .name = "microsoft",
        .title = "Microsoft",
        .mail_service = "Microsoft 365",
        .authorize_url = "https://{authority}/{tenant}/oauth2/v2.0/authorize",
        .token_url = "https://{authority}/{tenant}/oauth2/v2.0/token",
        .device_url = "https://{authority}/{tenant}/oauth2/v2.0/devicecode",
        .revocation_url = NULL, /* Microsoft has no RFC 7009 endpoint */
        .issuer = NULL,         /* templated per tenant; never checked */
        .default_authority = "login.microsoftonline.com",
        .default_tenant = "common",
        .default_scopes = MS_MAIL "IMAP.AccessAsUser.All " MS_MAIL "POP.AccessAsUser.All " MS_MAIL
                                  "SMTP.Send offline_access openid profile",
        .default_redirect_uri = "http://localhost/",
        .imap_host = "outlook.office365.com",
        .imap_port = 993,
        .smtp_host = "smtp.office365.com",
        .smtp_port = 587,
        .pop_host = "outlook.office365.com",
        /* Graph's service root per cloud: doc/clouds.md cites the page. */
        .graph_url = "https://graph.microsoft.com",
        .refresh_sends_scopes = true,
        .sets_ask_offline_access = true,
        /* Client credentials for IMAP, POP and SMTP: one resource, its
         * application permissions granted by admin consent. */
        .app_grants = "client_credentials",
        .app_scopes = "https://outlook.office365.com/.default",
        .app_needs_certificate = true,
        .app_setup = MS_APP_SETUP,
        .app_mailbox_hint = MS_APP_MAILBOX_HINT,
        .unlisted_scopes = "offline_access openid profile email",
        /* A refresh token unused for 90 days expires (AADSTS700082). */
        .inactivity_limit = 90L * 86400,
        .unknown_end_hint = "the provider does not say; signin_lifetime sets it",
        .remote_signout_hint = MS_SIGNOUT,
        .registration_guide = "registration-microsoft.md",
        .public_client = "thunderbird",
        .public_client_id = "9e5f94bc-e8a4-4e73-b8be-63364c29d753",
        .public_client_note = "Thunderbird's public client, registered by Mozilla (may be revoked "
                              "by its owner; tenants may need admin consent)",
        .consumer_domains = ms_domains,
        .consumer_prefixes = ms_prefixes,
        .consumer_tenant = "consumers",
        .mx_hosts = ms_mx,
        .mx_tenant_is_domain = true,
        .issuer_host = "login.microsoftonline.com",
        .tenant_discovery_url =
            "https://login.microsoftonline.com/{domain}/v2.0/.well-known/openid-configuration",
        .authority_url = "https://login.microsoftonline.com",
    },
    {
        .name = "google",
        .title = "Google",
        .mail_service = "Google Workspace",
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
        /* A service account with domain-wide delegation. */
        .app_grants = "jwt_bearer",
        .app_scopes = "https://mail.google.com/",
        .app_setup = "A super administrator of the Google Workspace domain allows the service "
                     "account once, in the Admin console (admin.google.com): Security, Access "
                     "and data control, API controls, Manage Domain Wide Delegation, Add new:\n"
                     "  Client ID: {client_id}\n"
                     "  OAuth scopes: {scopes}\n"
                     "{mailbox} must be a user of the domain with Gmail turned on "
                     "(doc/registration-google-app.md).\n",
        .app_mailbox_hint = "a super administrator must allow client id {client_id} in "
                            "Domain-wide delegation with the account's scopes, and {mailbox} "
                            "must be a user of the domain with Gmail turned on",
        .scope_spellings = "email=https://www.googleapis.com/auth/userinfo.email "
                           "profile=https://www.googleapis.com/auth/userinfo.profile",
        .unknown_end_hint = "Google does not say; for an app in Testing set signin_lifetime = 7d",
        .registration_guide = "registration-google.md",
        .consumer_domains = google_domains,
        .mx_hosts = google_mx,
        .issuer_host = "accounts.google.com",
    },
    MS_CLOUD("microsoft-gcc-high", "Microsoft (US Government GCC High)", "Microsoft 365 GCC High",
             "login.microsoftonline.us", "outlook.office365.us", "outlook.office365.us",
             "outlook.office365.us", "https://graph.microsoft.us",
             MS_MAIL_SCOPES("outlook.office365.us"), " -ExchangeEnvironmentName O365USGovGCCHigh"),
    MS_CLOUD("microsoft-dod", "Microsoft (US Government DoD)", "Microsoft 365 DoD",
             "login.microsoftonline.us", "outlook-dod.office365.us", "outlook-dod.office365.us",
             "outlook-dod.office365.us", "https://dod-graph.microsoft.us",
             MS_MAIL_SCOPES("outlook-dod.office365.us"), " -ExchangeEnvironmentName O365USGovDoD"),
    MS_CLOUD("microsoft-china", "Microsoft (China, operated by 21Vianet)",
             "Microsoft 365 operated by 21Vianet", "login.partner.microsoftonline.cn",
             "partner.outlook.cn", "partner.outlook.cn", "partner.outlook.cn",
             "https://microsoftgraph.chinacloudapi.cn", MS_MAIL_SCOPES("partner.outlook.cn"),
             " -ExchangeEnvironmentName O365China"),
    /* Exchange Online High Volume Email: SMTP only, to the tenant's own
     * recipients, through its own host. */
    MS_CLOUD("microsoft-hve", "Microsoft (High Volume Email)", "Exchange Online High Volume Email",
             "login.microsoftonline.com", "outlook.office365.com", NULL, "smtp-hve.office365.com",
             NULL, MS_MAIL "SMTP.Send", ""),
    {
        .name = "generic",
        .title = "the server",
        .default_scopes = "openid offline_access",
        .default_redirect_uri = "http://127.0.0.1/",
        .imap_port = 993,
        .smtp_port = 587,
        .discovers = true,
        .offline_needs_consent = true,
        .app_grants = "client_credentials jwt_bearer",
        .app_setup = "The server's administrator lets client {client_id} use the scopes "
                     "{scopes} for {mailbox}.\n",
        .app_mailbox_hint = "the mail server's administrator must let client {client_id} use "
                            "{mailbox}: a token of the app opens only the mailboxes it is "
                            "allowed",
        .unknown_end_hint = "the provider does not say; signin_lifetime sets it",
    },
#ifdef TOKEND_TEST_PROVIDER
    /* Test builds only: a provider that exists nowhere but in this entry,
     * to show that an entry is all a new provider needs.  Its endpoints
     * are oidc-provider's, at the authority the test configures. */
    {
        .name = "example",
        .title = "Test Example",
        .authorize_url = "https://{authority}/auth",
        .token_url = "https://{authority}/token",
        .device_url = "https://{authority}/device/auth",
        .revocation_url = "https://{authority}/token/revocation",
        .issuer = "https://{authority}",
        .default_authority = "login.example.test",
        .default_scopes = "openid offline_access",
        .default_redirect_uri = "http://127.0.0.1/",
        .imap_host = "imap.example.test",
        .imap_port = 993,
        .smtp_host = "smtp.example.test",
        .smtp_port = 587,
        .offline_needs_consent = true,
        .inactivity_limit = 30L * 86400,
        .unknown_end_hint = "Example does not say",
        .registration_guide = "registration-example.md",
        .consumer_domains = (const char *const[]){"example.test", NULL},
    },
#endif
};

const struct provider_preset *provider_at(size_t i)
{
    return i < G_N_ELEMENTS(presets) ? &presets[i] : NULL;
}

const struct provider_preset *provider_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(presets); i++)
        if (g_strcmp0(presets[i].name, name) == 0)
            return &presets[i];
    return NULL;
}

const struct provider_preset *provider_discovering(void)
{
    size_t i = 0;

    while (i + 1 < G_N_ELEMENTS(presets) && !presets[i].discovers)
        i++;
    return &presets[i];
}

char *provider_names_text(void)
{
    GString *s = g_string_new(NULL);
    size_t n = G_N_ELEMENTS(presets);

    for (size_t i = 0; i < n; i++)
        g_string_append_printf(s, "%s%s",
                               i == 0       ? ""
                               : i + 1 == n ? " or "
                                            : ", ",
                               presets[i].name);
    return g_string_free(s, FALSE);
}

static bool template_uses(const struct provider_preset *p, const char *mark)
{
    const char *urls[] = {p->authorize_url, p->token_url, p->device_url, p->revocation_url,
                          p->issuer};

    for (size_t i = 0; i < G_N_ELEMENTS(urls); i++)
        if (urls[i] && strstr(urls[i], mark))
            return true;
    return false;
}

bool provider_has_tenant(const struct provider_preset *p)
{
    return template_uses(p, "{tenant}");
}

bool provider_has_authority(const struct provider_preset *p)
{
    return template_uses(p, "{authority}");
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
