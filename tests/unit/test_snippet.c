/* snippet: the recipe templates filled in, each value escaped as its client
 * reads double-quoted strings. */

#include <string.h>

#include "tokend/snippet.h"
#include "testutil.h"

static Account *account(void)
{
    Account *a = g_new0(Account, 1);

    a->name = g_strdup("w");
    a->username = g_strdup("alice@example.org");
    a->imap_host = g_strdup("imap.example.org");
    a->imap_port = 993;
    a->smtp_host = g_strdup("smtp.example.org");
    a->smtp_port = 587;
    a->token_file = g_strdup("/state/w/token");
    return a;
}

static void account_free(Account *a)
{
    g_free(a->name);
    g_free(a->username);
    g_free(a->imap_host);
    g_free(a->smtp_host);
    g_free(a->token_file);
    g_free(a);
}

static const struct {
    const char *client;
    const char *program;
    const char *line; /* a line the output holds */
} lines[] = {
    {"msmtp", "/usr/bin/tokend", "passwordeval \"/usr/bin/tokend -c /c/t.conf token w\"\n"},
    /* msmtp strips the outer quotes only */
    {"msmtp", "/a/$b \"c\"/tokend", "passwordeval \"'/a/$b \"c\"/tokend' -c /c/t.conf token w\"\n"},
    /* mutt expands $ and ` inside double quotes */
    {"mutt", "/a/$b \"c\"/tokend",
     "set imap_oauth_refresh_command = \"'/a/\\$b \\\"c\\\"/tokend' -c /c/t.conf token w\"\n"},
    {"mutt", "/a/`b`/tokend",
     "set smtp_oauth_refresh_command = \"'/a/\\`b\\`/tokend' -c /c/t.conf token w\"\n"},
    {"mutt", "/usr/bin/tokend",
     "set smtp_url = \"smtp://alice%40example.org@smtp.example.org:587/\"\n"},
    {"mutt-tunnel", "/usr/bin/tokend",
     "set folder = \"imap://alice%40example.org@imap.example.org/\"\n"},
    {"mbsync", "/a/\\b \"c\"/tokend",
     "PassCmd \"'/a/\\\\b \\\"c\\\"/tokend' -c /c/t.conf token w\"\n"},
    {"mbsync", "/usr/bin/tokend", "Path ~/Mail/w/\n"},
    {"fetchmail", "/a/\\b/tokend",
     "    plugin \"'/a/\\\\b/tokend' -c /c/t.conf tunnel w %h %p\"\n"},
    {"fetchmail", "/usr/bin/tokend", "poll imap.example.org protocol IMAP service 993\n"},
    {"fetchmail7", "/usr/bin/tokend", "    passwordfile \"/state/w/token\"\n"},
    /* getmail: an argv tuple, no shell */
    {"getmail", "/a/b \"c\"/tokend",
     "password_command = (\"/a/b \\\"c\\\"/tokend\", \"-c\", \"/c/t.conf\", \"token\", \"w\")\n"},
    {"offlineimap", "/a/b c/tokend", "preauthtunnel = '/a/b c/tokend' -c /c/t.conf tunnel w\n"},
    {"getmail", "/usr/bin/tokend", "ca_certs = /etc/ssl/certs/ca-certificates.crt\n"},
};

static void test_lines(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(GString) out = g_string_new(NULL);
        Account *a = account();

        g_test_message("%s with %s", lines[i].client, lines[i].program);
        g_assert_cmpint(snippet_render(a, lines[i].client, lines[i].program, "/c/t.conf", out, &e),
                        ==, 0);
        testutil_assert_contains(out->str, lines[i].line);
        g_assert_null(strstr(out->str, "@ACCOUNT@"));
        account_free(a);
    }
}

/* System mode (no configuration path): every client's command says
 * --system, which a consumer may run without reading the configuration. */
static const struct {
    const char *client;
    const char *line;
} system_lines[] = {
    {"fetchmail", "    plugin \"/usr/bin/tokend --system tunnel w %h %p\"\n"},
    {"mutt", "set imap_oauth_refresh_command = \"/usr/bin/tokend --system token w\"\n"},
    {"msmtp", "passwordeval \"/usr/bin/tokend --system token w\"\n"},
    {"mbsync-tunnel", "Tunnel \"/usr/bin/tokend --system tunnel w\"\n"},
    {"getmail", "password_command = (\"/usr/bin/tokend\", \"--system\", \"token\", \"w\")\n"},
    {"offlineimap", "preauthtunnel = /usr/bin/tokend --system tunnel w\n"},
};

static void test_system_lines(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(system_lines); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(GString) out = g_string_new(NULL);
        Account *a = account();

        g_test_message("%s in system mode", system_lines[i].client);
        g_assert_cmpint(snippet_render(a, system_lines[i].client, "/usr/bin/tokend", NULL, out, &e),
                        ==, 0);
        testutil_assert_contains(out->str, system_lines[i].line);
        g_assert_null(strstr(out->str, "-c "));
        g_assert_null(strstr(out->str, "@"
                                       "CONFIG@"));
        account_free(a);
    }
}

static const struct {
    const char *client;
    const char *program;
    const char *drop; /* the key to unset, or NULL */
    int status;
    const char *words;
} errors[] = {
    {"fetchmail", "/a/\"b\"/tokend", NULL, TOKEND_EX_CONFIG,
     "the path of tokend holds a '\"', which a fetchmail configuration cannot carry"},
    {"msmtp", "/usr/bin/tokend", "smtp_host", TOKEND_EX_CONFIG,
     "the msmtp configuration needs smtp_host, which the account does not set"},
    {"mutt", "/usr/bin/tokend", "imap_host", TOKEND_EX_CONFIG, "needs imap_host"},
    {"fetchmail7", "/usr/bin/tokend", "username", TOKEND_EX_CONFIG, "needs username"},
    {"mbsync", "/a/\nb", NULL, TOKEND_EX_CONFIG, "the path of tokend holds a control character"},
    {"thunderbird", "/usr/bin/tokend", NULL, TOKEND_EX_USAGE,
     "unknown mail client \"thunderbird\"; known: fetchmail fetchmail-pop3 fetchmail7 mutt"},
};

static void drop(Account *a, const char *key)
{
    if (!g_strcmp0(key, "smtp_host"))
        g_clear_pointer(&a->smtp_host, g_free);
    if (!g_strcmp0(key, "imap_host"))
        g_clear_pointer(&a->imap_host, g_free);
    if (!g_strcmp0(key, "username"))
        g_clear_pointer(&a->username, g_free);
}

static void test_errors(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(errors); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(GString) out = g_string_new(NULL);
        Account *a = account();

        drop(a, errors[i].drop);
        g_assert_cmpint(
            snippet_render(a, errors[i].client, errors[i].program, "/c/t.conf", out, &e), ==, -1);
        g_assert_cmpint(e.status, ==, errors[i].status);
        testutil_assert_contains(e.message, errors[i].words);
        account_free(a);
    }
}

static void test_clients_listed(void)
{
    g_assert_cmpstr(snippet_client_names(), ==,
                    "fetchmail fetchmail-pop3 fetchmail7 mutt neomutt mutt-tunnel neomutt-tunnel "
                    "msmtp mbsync mbsync-tunnel offlineimap getmail postfix msmtp-relay "
                    "mutt-relay neomutt-relay fetchmail-relay fetchmail-relay-pop3 git-send-email");
    g_assert_true(snippet_client_known("neomutt"));
    g_assert_false(snippet_client_known("Mutt"));
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/snippet/lines", test_lines);
    g_test_add_func("/snippet/system-lines", test_system_lines);
    g_test_add_func("/snippet/errors", test_errors);
    g_test_add_func("/snippet/clients", test_clients_listed);
    return testutil_run();
}
