/* uri: the loopback rule, host:port, authority and tenant values. */

#include <string.h>

#include "tokend/uri.h"
#include "testutil.h"

static void test_loopback(void)
{
    static const char *const yes[] = {"127.0.0.1", "::1", "[::1]", "localhost", "LocalHost"};
    static const char *const no[] = {"127.0.0.1.evil.example",
                                     "localhost.evil",
                                     "localhostx",
                                     "::2",
                                     "[::1",
                                     "0.0.0.0",
                                     "",
                                     "example.com"};

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++)
        g_assert_true(uri_host_is_loopback(yes[i]));
    for (size_t i = 0; i < G_N_ELEMENTS(no); i++) {
        g_test_message("not loopback: %s", no[i]);
        g_assert_false(uri_host_is_loopback(no[i]));
    }
    g_assert_false(uri_host_is_loopback(NULL));
}

static void test_host_port(void)
{
    static const struct {
        const char *text, *host;
        int port;
    } good[] = {
        {"imap.example.com", "imap.example.com", 0},
        {"imap.example.com:143", "imap.example.com", 143},
        {"127.0.0.1:1", "127.0.0.1", 1},
        {"[::1]", "::1", 0},
        {"[2001:db8::1]:65535", "2001:db8::1", 65535},
        {"mailhost", "mailhost", 0},
    };
    static const char *const bad[] = {
        "",
        ":143",
        "imap.example.com:",
        "imap.example.com:0",
        "imap.example.com:65536",
        "imap.example.com:+143",
        "imap.example.com:14 3",
        "::1",
        "::1:993",
        "[::1",
        "[::1]:",
        "[::1]x",
        "[example.com]",
        "imap..example.com",
        "-imap.example.com",
        "imap_host",
        "imap.example.com/",
        "user@imap.example.com",
        "imap.example.com:143:1",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autofree char *host = NULL;
        const char *why = NULL;
        int port = -1;

        g_test_message("good: %s", good[i].text);
        g_assert_true(uri_split_host_port(good[i].text, &host, &port, &why));
        g_assert_cmpstr(host, ==, good[i].host);
        g_assert_cmpint(port, ==, good[i].port);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *host = NULL;
        const char *why = NULL;
        int port = -1;

        g_test_message("bad: %s", bad[i]);
        g_assert_false(uri_split_host_port(bad[i], &host, &port, &why));
        g_assert_null(host);
        g_assert_nonnull(why);
    }
}

static void test_authority(void)
{
    static const struct {
        const char *text, *authority, *tenant;
    } good[] = {
        {"login.microsoftonline.com", "login.microsoftonline.com", NULL},
        {"127.0.0.1:8443", "127.0.0.1:8443", NULL},
        {"[::1]:8443", "[::1]:8443", NULL},
        {"https://login.microsoftonline.us", "login.microsoftonline.us", NULL},
        {"https://login.microsoftonline.us/", "login.microsoftonline.us", NULL},
        {"https://[::1]:8443/common", "[::1]:8443", "common"},
        {"https://login.microsoftonline.com/contoso.com/", "login.microsoftonline.com",
         "contoso.com"},
    };
    static const char *const bad[] = {
        "",
        "http://login.example",
        "https://",
        "https:///t.example",
        "https://u@h.example",
        "https://h.example?x",
        "https://h.example/#x",
        "https://h.example/a/b",
        "https://h.example//",
        "https://h.example/%2e%2e",
        "https://h.example/x/../common",
        "https://h.example/./common",
        "https://h.example/common/..",
        "https://h.example/c%6fmmon",
        "https://h.example:0",
        "h.example/common",
        "h.example?x",
        "u@h.example",
        "file:///etc/passwd",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autofree char *authority = NULL;
        g_autofree char *tenant = NULL;
        const char *why = NULL;

        g_test_message("good: %s", good[i].text);
        g_assert_true(uri_parse_authority(good[i].text, &authority, &tenant, &why));
        g_assert_cmpstr(authority, ==, good[i].authority);
        g_assert_cmpstr(tenant, ==, good[i].tenant);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *authority = NULL;
        g_autofree char *tenant = NULL;
        const char *why = NULL;

        g_test_message("bad: %s", bad[i]);
        g_assert_false(uri_parse_authority(bad[i], &authority, &tenant, &why));
        g_assert_nonnull(why);
    }
}

static void test_tenant(void)
{
    static const char *const good[] = {
        "common",
        "organizations",
        "consumers",
        "Common",
        "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "contoso.onmicrosoft.com",
        "contoso.com",
    };
    static const char *const bad[] = {
        "",
        "t1",
        "contoso",
        "contoso.com/",
        "a/b.com",
        "contoso..com",
        ".contoso.com",
        "contoso.com.",
        "-a.com",
        "a-.com",
        "con toso.com",
        "contoso.com?x",
        "72f988bf-86f1-41af-91ab-2d7cd011db4",
        "72f988bf86f141af91ab2d7cd011db47",
        "%63ommon",
        "caf\xc3\xa9.com",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
        g_assert_true(uri_tenant_valid(good[i]));
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("bad tenant %zu", i);
        g_assert_false(uri_tenant_valid(bad[i]));
    }
    g_assert_false(uri_tenant_valid(NULL));
}

static void test_endpoint(void)
{
    static const char *const good[] = {
        "https://idp.example/token", "https://idp.example/t?p=policy",
        "http://127.0.0.1:9/x",      "http://localhost/",
        "http://[::1]:8080/",        "https://[2001:db8::1]/t",
    };
    static const char *const bad[] = {
        "http://idp.example/",     "https://",
        "https://u@idp.example/",  "https://idp.example:0/",
        "https://idp.example/t#x", "http://localhost:80@evil.example/",
        "ftp://idp.example/",      "idp.example/token",
        "//idp.example/",
    };
    const char *why = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
        g_assert_true(uri_endpoint_ok(good[i], &why));
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("bad endpoint: %s", bad[i]);
        g_assert_false(uri_endpoint_ok(bad[i], &why));
    }
}

static void test_build(void)
{
    g_autofree char *a = uri_build("https", "login.microsoftonline.com", "/common/x");
    g_autofree char *b = uri_build("https", "[::1]:8443", "/common/x");

    g_assert_cmpstr(a, ==, "https://login.microsoftonline.com/common/x");
    g_assert_cmpstr(b, ==, "https://[::1]:8443/common/x");
    g_assert_null(uri_build("https", "h.example/", "/x"));
    g_assert_null(uri_build("https", NULL, "/x"));
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/uri/loopback", test_loopback);
    g_test_add_func("/uri/host-port", test_host_port);
    g_test_add_func("/uri/authority", test_authority);
    g_test_add_func("/uri/tenant", test_tenant);
    g_test_add_func("/uri/endpoint", test_endpoint);
    g_test_add_func("/uri/build", test_build);
    return testutil_run();
}
