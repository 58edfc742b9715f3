/* catcher: which redirect URIs it serves, the URI it sends with its port,
 * and which pasted addresses it takes for its own.  Listens on loopback
 * ephemeral ports (or none). */

#include <stdlib.h>
#include <string.h>

#include "tokend/catcher.h"
#include "testutil.h"

#define STATE "s7a7e"

static void test_handles(void)
{
    static const char *const yes[] = {
        "http://localhost", "http://localhost/", "http://127.0.0.1:8400/cb",
        "http://[::1]/x",   "http://LOCALHOST/",
    };
    static const char *const no[] = {
        "https://localhost/",        "http://example.com/", "http://127.0.0.1.evil.example/",
        "http://user@localhost/",    "localhost",           "",
        "urn:ietf:wg:oauth:2.0:oob", "http://0.0.0.0/",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        g_test_message("handles %s", yes[i]);
        g_assert_true(catcher_handles(yes[i]));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(no); i++) {
        g_test_message("does not handle %s", no[i]);
        g_assert_false(catcher_handles(no[i]));
    }
}

/* The URI sent to the server keeps what was configured (a path, no slash
 * after a bare host: Microsoft registers "http://localhost") and adds the
 * port listened on. */
static void test_redirect_uri(void)
{
    static const struct {
        const char *configured, *prefix, *suffix;
    } cases[] = {
        {"http://localhost", "http://localhost:", ""},
        {"http://localhost/", "http://localhost:", "/"},
        {"http://127.0.0.1/callback", "http://127.0.0.1:", "/callback"},
        {"http://127.0.0.1:0/cb", "http://127.0.0.1:", "/cb"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Catcher) c = catcher_new(cases[i].configured, STATE, &e);
        const char *uri, *port;

        g_test_message("%s", cases[i].configured);
        g_assert_nonnull(c);
        uri = catcher_redirect_uri(c);
        g_assert_true(g_str_has_prefix(uri, cases[i].prefix));
        port = uri + strlen(cases[i].prefix);
        g_assert_cmpint(atoi(port), >, 0);
        g_assert_cmpstr(port + strspn(port, "0123456789"), ==, cases[i].suffix);
    }
    {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Catcher) c = catcher_new("http://example.com/", STATE, &e);

        g_assert_null(c);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        testutil_assert_contains(e.message, "not an http:// loopback address");
    }
}

static char *with_port(const char *text, int port)
{
    g_auto(GStrv) parts = g_strsplit(text, "PORT", -1);
    g_autofree char *number = g_strdup_printf("%d", port);

    return g_strjoinv(number, parts);
}

/* What a user pastes is checked against where this sign-in redirects. */
static void test_pasted(void)
{
    static const struct {
        const char *text;    /* PORT: the port listened on */
        const char *refusal; /* NULL: taken */
    } cases[] = {
        {"http://127.0.0.1:PORT/cb?code=c&state=" STATE, NULL},
        {"http://127.0.0.1:PORT/cb?state=" STATE "&code=c#frag", NULL},
        {"http://127.0.0.1:PORT/other?code=c&state=" STATE, "not the one this sign-in"},
        {"http://127.0.0.1:PORT/cb/?code=c&state=" STATE, "not the one this sign-in"},
        {"http://127.0.0.2:PORT/cb?code=c&state=" STATE, "not the one this sign-in"},
        {"https://127.0.0.1:PORT/cb?code=c&state=" STATE, "not the one this sign-in"},
        {"http://127.0.0.1:1/cb?code=c&state=" STATE, "not the one this sign-in"},
        {"http://127.0.0.1/cb?code=c&state=" STATE, "not the one this sign-in"},
        {"http://localhost:PORT/cb?code=c&state=" STATE, "not the one this sign-in"},
        {"http://127.0.0.1:PORT/cb?code=c&state=other", "another sign-in attempt"},
        {"http://127.0.0.1:PORT/cb?code=c", "no state parameter"},
        {"c0de", "alone cannot be checked"},
    };
    g_auto(TokendError) e0 = TOKEND_ERROR_INIT;
    g_autoptr(Catcher) c = catcher_new("http://127.0.0.1/cb", STATE, &e0);
    int port;

    g_assert_nonnull(c);
    port = atoi(catcher_redirect_uri(c) + strlen("http://127.0.0.1:"));
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *text = with_port(cases[i].text, port);
        g_autoptr(RedirectParams) p = NULL;

        g_test_message("pasted %s", text);
        g_assert_cmpint(oauth_parse_pasted(text, &p, &e), ==, 0);
        if (!cases[i].refusal)
            continue; /* taken below: once taken, the catcher stays taken */
        g_assert_cmpint(catcher_take_pasted(c, p, &e), <, 0);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
        testutil_assert_contains(e.message, cases[i].refusal);
    }
    for (size_t i = 0; i < 2; i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *text = with_port(cases[i].text, port);
        g_autoptr(RedirectParams) p = NULL;

        g_assert_cmpint(oauth_parse_pasted(text, &p, &e), ==, 0);
        g_assert_cmpint(catcher_take_pasted(c, p, &e), ==, 0);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/catcher/handles", test_handles);
    g_test_add_func("/catcher/redirect-uri", test_redirect_uri);
    g_test_add_func("/catcher/pasted", test_pasted);
    return testutil_run();
}
