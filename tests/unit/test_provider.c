/* provider: names and endpoint templates. */

#include <string.h>

#include "tokend/provider.h"
#include "testutil.h"

static void test_from_name(void)
{
    static const struct {
        const char *name;
        int kind;
    } cases[] = {
        {"microsoft", PROVIDER_MICROSOFT},
        {"google", PROVIDER_GOOGLE},
        {"generic", PROVIDER_GENERIC},
        {"Microsoft", -1},
        {"GOOGLE", -1},
        {"microsoft ", -1},
        {"", -1},
        {"yahoo", -1},
        {NULL, -1},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_test_message("case %zu: %s", i, cases[i].name ? cases[i].name : "(null)");
        g_assert_cmpint(provider_from_name(cases[i].name), ==, cases[i].kind);
    }
    for (int k = 0; k < PROVIDER_COUNT; k++)
        g_assert_cmpint(provider_from_name(provider_name(k)), ==, k);
    g_assert_cmpstr(provider_name(PROVIDER_COUNT), ==, "unknown");
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
    const struct provider_preset *ms = provider_preset(PROVIDER_MICROSOFT);
    const struct provider_preset *google = provider_preset(PROVIDER_GOOGLE);
    const struct provider_preset *generic = provider_preset(PROVIDER_GENERIC);
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
    for (int k = 0; k < PROVIDER_COUNT; k++) {
        const struct provider_preset *p = provider_preset(k);
        g_assert_cmpstr(p->name, ==, provider_name(k));
        g_assert_nonnull(p->default_scopes);
        g_assert_true(g_str_has_prefix(p->default_redirect_uri, "http://"));
        g_assert_cmpint(p->imap_port, ==, 993);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/provider/from-name", test_from_name);
    g_test_add_func("/provider/expand", test_expand);
    g_test_add_func("/provider/presets", test_presets);
    return testutil_run();
}
