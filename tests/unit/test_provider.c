/* provider: names and endpoint templates. */

#include <string.h>

#include "tokend/provider.h"
#include "testutil.h"

static void test_find(void)
{
    static const char *const unknown[] = {"Microsoft", "GOOGLE", "microsoft ", "", "yahoo", NULL};
    const struct provider_preset *p;
    size_t n = 0;

    g_assert_cmpstr(provider_find("microsoft")->name, ==, "microsoft");
    g_assert_cmpstr(provider_find("google")->name, ==, "google");
    g_assert_cmpstr(provider_find("generic")->name, ==, "generic");
    for (size_t i = 0; i < G_N_ELEMENTS(unknown); i++)
        g_assert_null(provider_find(unknown[i]));
    for (; (p = provider_at(n)) != NULL; n++)
        g_assert_true(provider_find(p->name) == p);
    g_assert_cmpuint(n, >=, 3);
    g_assert_null(provider_at(n + 1));
    g_autofree char *names = provider_names_text();
    g_assert_true(g_str_has_prefix(names, "microsoft, google"));
    g_assert_nonnull(strstr(names, " or "));
    g_assert_true(provider_discovering()->discovers);
}

/* Each entry holds everything the rest of the program asks of it. */
static void test_entries_complete(void)
{
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++) {
        g_test_message("provider %s", p->name);
        g_assert_nonnull(p->title);
        g_assert_nonnull(p->default_scopes);
        g_assert_nonnull(p->unknown_end_hint);
        g_assert_true(g_str_has_prefix(p->default_redirect_uri, "http://"));
        g_assert_cmpint(p->imap_port, ==, 993);
        /* Endpoints come from the entry, or from discovery of the issuer. */
        g_assert_true(p->discovers || (p->authorize_url && p->token_url));
        g_assert_true(!provider_has_tenant(p) || p->default_tenant);
        g_assert_true(!provider_has_authority(p) || p->default_authority);
        g_assert_true(!p->public_client || (p->public_client_id && p->public_client_note));
        g_assert_true(!p->tenant_discovery_url || p->authority_url);
    }
}

static void test_expand(void)
{
    static const struct {
        const char *tmpl, *authority, *tenant, *out;
    } cases[] = {
        {"https://{authority}/{tenant}/oauth2/v2.0/token", "login.microsoftonline.com", "common",
         "https://login.microsoftonline.com/common/oauth2/v2.0/token"},
        {"https://{authority}/{tenant}/oauth2/v2.0/authorize", "login.microsoftonline.us",
         "contoso.onmicrosoft.com",
         "https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/authorize"},
        {"https://{authority}/{tenant}/x", "127.0.0.1:8443", "common",
         "https://127.0.0.1:8443/common/x"},
        {"https://{authority}/{tenant}/x", "[::1]:8443", "00000000-0000-0000-0000-0000000000aa",
         "https://[::1]:8443/00000000-0000-0000-0000-0000000000aa/x"},
        {"https://oauth2.googleapis.com/token", "ignored", "ignored",
         "https://oauth2.googleapis.com/token"},
        /* No value makes a broken URL: each of these is refused. */
        {"https://{authority}/{tenant}/x", NULL, NULL, NULL},
        {"https://{authority}/{tenant}/x", "a", NULL, NULL},
        {"https://{authority}/{tenant}/x", "login.example/", "common", NULL},
        {"https://{authority}/{tenant}/x", "user@login.example", "common", NULL},
        {"https://{authority}/{tenant}/x", "login.example:0", "common", NULL},
        {"https://{authority}/{tenant}/x", "login.example", "a/../b", NULL},
        {"https://{authority}/{tenant}/x", "login.example", "t?x=1", NULL},
        {"https://{authority}/{tenant}/x", "login.example", "", NULL},
        {"https://{tenant}/x", "a", "common", NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = provider_expand(cases[i].tmpl, cases[i].authority, cases[i].tenant);
        g_test_message("case %zu", i);
        g_assert_cmpstr(got, ==, cases[i].out);
    }
    g_assert_null(provider_expand(NULL, "a", "t"));
}

static void test_presets(void)
{
    const struct provider_preset *ms = provider_find("microsoft");
    const struct provider_preset *google = provider_find("google");
    const struct provider_preset *generic = provider_find("generic");
    g_autofree char *token =
        provider_expand(ms->token_url, ms->default_authority, ms->default_tenant);

    g_assert_cmpstr(token, ==, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
    g_assert_nonnull(strstr(ms->default_scopes, "offline_access"));
    g_assert_nonnull(strstr(ms->default_scopes, "IMAP.AccessAsUser.All"));
    g_assert_false(ms->needs_client_secret);
    g_assert_null(ms->revocation_url);
    g_assert_true(google->needs_client_secret);
    g_assert_cmpstr(google->token_url, ==, "https://oauth2.googleapis.com/token");
    g_assert_cmpstr(google->issuer, ==, "https://accounts.google.com");
    g_assert_nonnull(strstr(google->extra_auth_params, "access_type=offline"));
    g_assert_null(generic->token_url);
    g_assert_null(generic->authorize_url);
    /* Only Microsoft sends scopes on refresh; the others leave them out. */
    g_assert_true(ms->refresh_sends_scopes);
    g_assert_false(google->refresh_sends_scopes);
    g_assert_false(generic->refresh_sends_scopes);
    /* Only generic OpenID providers need consent for offline_access. */
    g_assert_true(generic->offline_needs_consent);
    g_assert_false(ms->offline_needs_consent);
    g_assert_cmpstr(ms->unlisted_scopes, ==, "offline_access openid profile email");
    g_assert_null(generic->unlisted_scopes);
    g_assert_null(generic->scope_spellings);
    g_assert_true(provider_has_tenant(ms) && provider_has_authority(ms));
    g_assert_false(provider_has_tenant(google) || provider_has_authority(google));
    g_assert_cmpint(ms->inactivity_limit, ==, 90 * 86400);
    g_assert_cmpint(google->inactivity_limit, ==, 0);
}

/* Microsoft's other clouds and High Volume Email (doc/clouds.md): their
 * login host, mail hosts and the resource of their scopes, for a person's
 * sign-in and an app alike. */
static void test_clouds(void)
{
    static const struct {
        const char *name, *token, *imap, *smtp, *user_scope, *app_scope, *environment, *graph;
    } cases[] = {
        {"microsoft-gcc-high", "https://login.microsoftonline.us/organizations/oauth2/v2.0/token",
         "outlook.office365.us", "outlook.office365.us",
         "https://outlook.office365.us/IMAP.AccessAsUser.All",
         "https://outlook.office365.us/.default", "O365USGovGCCHigh", "https://graph.microsoft.us"},
        {"microsoft-dod", "https://login.microsoftonline.us/organizations/oauth2/v2.0/token",
         "outlook-dod.office365.us", "outlook-dod.office365.us",
         "https://outlook-dod.office365.us/SMTP.Send", "https://outlook-dod.office365.us/.default",
         "O365USGovDoD", "https://dod-graph.microsoft.us"},
        {"microsoft-china",
         "https://login.partner.microsoftonline.cn/organizations/oauth2/v2.0/token",
         "partner.outlook.cn", "partner.outlook.cn",
         "https://partner.outlook.cn/POP.AccessAsUser.All", "https://partner.outlook.cn/.default",
         "O365China", "https://microsoftgraph.chinacloudapi.cn"},
        {"microsoft-hve", "https://login.microsoftonline.com/organizations/oauth2/v2.0/token", NULL,
         "smtp-hve.office365.com", "https://outlook.office.com/SMTP.Send",
         "https://outlook.office365.com/.default", NULL, NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const struct provider_preset *p = provider_find(cases[i].name);
        g_autofree char *token = NULL;

        g_test_message("provider %s", cases[i].name);
        g_assert_nonnull(p);
        token = provider_expand(p->token_url, p->default_authority, p->default_tenant);
        g_assert_cmpstr(token, ==, cases[i].token);
        g_assert_cmpstr(p->imap_host, ==, cases[i].imap);
        g_assert_cmpstr(p->pop_host, ==, cases[i].imap);
        g_assert_cmpstr(p->smtp_host, ==, cases[i].smtp);
        g_assert_cmpstr(p->graph_url, ==, cases[i].graph);
        g_assert_cmpint(p->smtp_port, ==, 587);
        g_assert_nonnull(strstr(p->default_scopes, cases[i].user_scope));
        g_assert_nonnull(strstr(p->default_scopes, "offline_access"));
        g_assert_cmpstr(p->app_scopes, ==, cases[i].app_scope);
        g_assert_cmpstr(p->app_grants, ==, "client_credentials");
        g_assert_true(p->app_needs_certificate && p->refresh_sends_scopes);
        g_assert_null(p->consumer_domains);
        g_assert_null(p->public_client);
        g_assert_true(!cases[i].environment || strstr(p->app_setup, cases[i].environment));
        g_assert_nonnull(strstr(p->app_setup, "New-ServicePrincipal -AppId {client_id}"));
    }
}

/* tunnel and check: a mailbox the mail server refuses the app's token for
 * is said with what the administrator must do, in one line; for Exchange
 * Online the permissions and the access policy, for every cloud. */
static void test_app_mailbox_hint(void)
{
    const struct provider_preset *p;

    for (size_t i = 0; (p = provider_at(i)) != NULL; i++) {
        g_test_message("provider %s", p->name);
        if (!p->app_grants || !p->app_mailbox_hint)
            continue;
        g_assert_nonnull(strstr(p->app_mailbox_hint, "{mailbox}"));
        g_assert_null(strchr(p->app_mailbox_hint, '\n'));
        if (!g_str_has_prefix(p->name, "microsoft"))
            continue;
        g_assert_nonnull(strstr(p->app_mailbox_hint,
                                "Add-MailboxPermission -Identity \"{mailbox}\" -User {object_id} "
                                "-AccessRights FullAccess"));
        g_assert_nonnull(strstr(p->app_mailbox_hint, "Add-RecipientPermission"));
        g_assert_nonnull(strstr(p->app_mailbox_hint, "application access policy"));
    }
    g_assert_nonnull(provider_find("microsoft")->app_mailbox_hint);
    g_assert_nonnull(provider_find("microsoft-gcc-high")->app_mailbox_hint);
    g_assert_nonnull(provider_find("google")->app_mailbox_hint);
    g_assert_nonnull(provider_find("generic")->app_mailbox_hint);
}

/* Graph's service root of the global cloud (sendMail for smtp_backend =
 * graph); the national clouds' are in test_clouds. */
static void test_graph_root(void)
{
    g_assert_cmpstr(provider_find("microsoft")->graph_url, ==, "https://graph.microsoft.com");
    g_assert_null(provider_find("google")->graph_url);
    g_assert_null(provider_find("generic")->graph_url);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/provider/graph-root", test_graph_root);
    g_test_add_func("/provider/find", test_find);
    g_test_add_func("/provider/entries-complete", test_entries_complete);
    g_test_add_func("/provider/app-mailbox-hint", test_app_mailbox_hint);
    g_test_add_func("/provider/expand", test_expand);
    g_test_add_func("/provider/presets", test_presets);
    g_test_add_func("/provider/clouds", test_clouds);
    return testutil_run();
}
