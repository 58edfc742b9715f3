/* autoconfig: the ISPDB parser, with good and hostile documents; and the
 * address check of detect. */

#include <string.h>

#include "tokend/autoconfig.h"
#include "tokend/detect.h"
#include "testutil.h"

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">"
#define IMAP(h, p, auth)                                                                           \
    "<emailProvider id=\"x\"><incomingServer type=\"imap\"><hostname>" h "</hostname><port>" p     \
    "</port><socketType>SSL</socketType><username>%EMAILLOCALPART%</username>"                     \
    "<authentication>" auth "</authentication></incomingServer></emailProvider>"
#define OAUTH(i)                                                                                   \
    "<oAuth2><issuer>" i "</issuer><scope>openid offline_access</scope>"                           \
    "<authURL>https://" i "/auth</authURL><tokenURL>https://" i "/token</tokenURL></oAuth2>"

static void test_good(void)
{
    static const struct {
        const char *xml;
        const char *imap_host, *username, *issuer;
        int imap_port;
    } cases[] = {
        {HEAD IMAP("imap.example.org", "993", "OAuth2") OAUTH("auth.example.org") "</clientConfig>",
         "imap.example.org", "alice", "auth.example.org", 993},
        /* Upper case host names are folded; CDATA is text. */
        {HEAD IMAP("IMAP.Example.ORG", "143", "OAuth2") "<oAuth2><issuer><![CDATA[id.example]]>"
                                                        "</issuer></oAuth2></clientConfig>",
         "imap.example.org", "alice", "id.example", 143},
        /* An OAuth2 server beats an earlier password one. */
        {HEAD "<emailProvider><incomingServer type=\"imap\"><hostname>old.example</hostname>"
              "<port>993</port><authentication>password-cleartext</authentication>"
              "</incomingServer><incomingServer type=\"imap\"><hostname>new.example</hostname>"
              "<port>993</port><username>%EMAILADDRESS%</username><authentication>OAuth2"
              "</authentication></incomingServer></emailProvider></clientConfig>",
         "new.example", "alice@example.org", NULL, 993},
        /* The IMAP server's user name wins over the POP server's. */
        {HEAD "<emailProvider>"
              "<incomingServer type=\"pop3\"><hostname>pop.example</hostname>"
              "<username>%EMAILLOCALPART%</username></incomingServer>"
              "<incomingServer type=\"imap\"><hostname>imap.example</hostname><port>993</port>"
              "<username>%EMAILADDRESS%</username></incomingServer></emailProvider></clientConfig>",
         "imap.example", "alice@example.org", NULL, 993},
        {HEAD
         "<emailProvider>"
         "<incomingServer type=\"imap\"><hostname>imap.example</hostname>"
         "<port>993</port><username>%EMAILDOMAIN%</username></incomingServer>"
         "<incomingServer type=\"pop3\"><hostname>pop.example</hostname>"
         "<username>%EMAILLOCALPART%</username></incomingServer></emailProvider></clientConfig>",
         "imap.example", "example.org", NULL, 993},
        /* Unknown elements and a DOCTYPE without entities are ignored. */
        {"<!DOCTYPE clientConfig><clientConfig><documentation><x/></documentation>" IMAP(
             "a.example", "1", "OAuth2") OAUTH("https://id.example/tenant") "</clientConfig>",
         "a.example", "alice", "https://id.example/tenant", 1},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Autoconfig) ac = NULL;

        g_test_message("case %zu", i);
        ac = autoconfig_parse(cases[i].xml, strlen(cases[i].xml), "alice@example.org", &e);
        g_assert_nonnull(ac);
        g_assert_cmpstr(ac->imap.host, ==, cases[i].imap_host);
        g_assert_cmpint(ac->imap.port, ==, cases[i].imap_port);
        g_assert_cmpstr(ac->username, ==, cases[i].username);
        g_assert_cmpstr(ac->issuer, ==, cases[i].issuer);
    }
}

static char *nested(int depth)
{
    GString *s = g_string_new("<clientConfig>");

    for (int i = 0; i < depth; i++)
        g_string_append(s, "<a>");
    for (int i = 0; i < depth; i++)
        g_string_append(s, "</a>");
    g_string_append(s, "</clientConfig>");
    return g_string_free(s, FALSE);
}

static void test_bad(void)
{
    g_autofree char *deep = nested(100);
    g_autofree char *long_value = g_strnfill(3000, 'a');
    g_autofree char *long_doc =
        g_strconcat(HEAD "<oAuth2><issuer>", long_value, "</issuer></oAuth2></clientConfig>", NULL);
    const struct {
        const char *xml;
        const char *words;
    } cases[] = {
        {"", "not valid"},
        {"<clientConfig>", "not valid"},
        {"<html/>", "not an autoconfig document"},
        {HEAD "<oAuth2><issuer>&xxe;</issuer></oAuth2></clientConfig>", "not valid"},
        {"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><clientConfig><oAuth2><issuer>&a;</issuer>"
         "</oAuth2></clientConfig>",
         "not valid"},
        {deep, "nested deeper"},
        {long_doc, "longer than"},
        {HEAD IMAP("imap.example.org", "99999", "OAuth2") "</clientConfig>", "not a number"},
        {HEAD IMAP("imap.example.org", "-1", "OAuth2") "</clientConfig>", "not a number"},
        {HEAD IMAP("imap example.org", "993", "OAuth2") "</clientConfig>", "not a host name"},
        {HEAD IMAP("imap.example.org\n", "993", "OAuth2") OAUTH("a#b") "</clientConfig>",
         "cannot be used"},
        {HEAD OAUTH("id.example") "<oAuth2><issuer>http://id.example/</issuer></oAuth2>"
                                  "</clientConfig>",
         "not a host name or an https URL"},
        {HEAD "<oAuth2><issuer>id.example</issuer><tokenURL>http://id.example/t</tokenURL>"
              "</oAuth2></clientConfig>",
         "not an https URL"},
        {HEAD "<oAuth2><scope>openid</scope></oAuth2></clientConfig>", "no <issuer>"},
        {HEAD "</clientConfig>", "names no mail server"},
        {"<clientConfig>\xff</clientConfig>", "not UTF-8"},
        /* GLib sets its error twice on this one unless refused before. */
        {"<clientConfig><oAuth2><issuer><![CDATA[a\xd8\xd8"
         "b]]></isntConfig>",
         "not UTF-8"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Autoconfig) ac = NULL;

        g_test_message("case %zu: %s", i, cases[i].words);
        ac = autoconfig_parse(cases[i].xml, strlen(cases[i].xml), "alice@example.org", &e);
        g_assert_null(ac);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
        testutil_assert_contains(e.message, cases[i].words);
    }
}

static void test_too_large(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *big = g_strnfill(AUTOCONFIG_MAX_BYTES + 1, ' ');

    g_assert_null(autoconfig_parse(big, strlen(big), "a@b.example", &e));
    testutil_assert_contains(e.message, "larger than");
}

static void test_domain(void)
{
    static const struct {
        const char *email, *domain;
    } cases[] = {
        {"alice@example.org", "example.org"},
        {"Alice.B+tag@Example.ORG", "example.org"},
        {"a@b@c.example", "c.example"},
        {"alice@localhost", NULL},
        {"alice@127.0.0.1", NULL},
        {"@example.org", NULL},
        {"alice", NULL},
        {"al ice@example.org", NULL},
        {"al#ice@example.org", NULL},
        {"alice@exa mple.org", NULL},
        {"alice@example.org/", NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *d = detect_domain(cases[i].email);
        g_test_message("case %zu: %s", i, cases[i].email);
        g_assert_cmpstr(d, ==, cases[i].domain);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/autoconfig/good", test_good);
    g_test_add_func("/autoconfig/bad", test_bad);
    g_test_add_func("/autoconfig/too-large", test_too_large);
    g_test_add_func("/autoconfig/domain", test_domain);
    return testutil_run();
}
