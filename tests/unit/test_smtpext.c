/* smtpext: the SMTP extensions the relay passes on, the MAIL and RCPT
 * parameters checked against what upstream offers, BDAT's arguments; and
 * relaycmd's UTF-8 rule for MAIL and RCPT lines. */

#include <string.h>

#include "tokend/relaycmd.h"
#include "tokend/smtpext.h"
#include "testutil.h"

#define ALL (SMTPEXT_RELAY | SMTPEXT_BINARYMIME)

static const struct {
    const char *params;
    bool rcpt;
    unsigned offered;
    const char *out;   /* NULL: refused */
    const char *reply; /* the refusal's start */
    bool utf8;
} cases[] = {
    {"", false, 0, "", NULL, false},
    {"SIZE=1000 BODY=8BITMIME", false, ALL, " SIZE=1000 BODY=8BITMIME", NULL, false},
    {"SIZE=1000", false, 0, "", NULL, false},
    {"BODY=7BIT", false, SMTPEXT_8BITMIME, " BODY=7BIT", NULL, false},
    {"BODY=7BIT", false, 0, "", NULL, false},
    {"body=8bitmime", false, 0, NULL, "555 5.5.4 tokend: body needs 8BITMIME", false},
    {"BODY=BINARYMIME", false, SMTPEXT_RELAY, NULL, "555 5.5.4 tokend: BODY needs BINARYMIME",
     false},
    {"BODY=BINARYMIME", false, ALL, " BODY=BINARYMIME", NULL, false},
    {"BODY=QUOTED", false, ALL, NULL, "555 5.5.4 tokend: parameter BODY is not", false},
    /* SMTPUTF8 (RFC 6531): passed on, or refused with 5.6.7. */
    {"SMTPUTF8", false, ALL, " SMTPUTF8", NULL, true},
    {"SMTPUTF8 BODY=8BITMIME", false, SMTPEXT_8BITMIME, NULL,
     "555 5.6.7 tokend: SMTPUTF8 needs SMTPUTF8", false},
    /* DSN (RFC 3461): passed on, or dropped but for a success notice. */
    {"RET=HDRS ENVID=QQ+2B1", false, ALL, " RET=HDRS ENVID=QQ+2B1", NULL, false},
    {"RET=HDRS ENVID=QQ+2B1", false, 0, "", NULL, false},
    {"NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org", true, ALL,
     " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org", NULL, false},
    {"NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@example.org", true, 0, "", NULL, false},
    {"NOTIFY=NEVER", true, 0, "", NULL, false},
    {"notify=success", true, SMTPEXT_8BITMIME, NULL, "555 5.5.4 tokend: notify needs DSN", false},
    /* The relay's own AUTH= is never passed on; unknown ones refused. */
    {"AUTH=<>", false, ALL, "", NULL, false},
    {"XFOO=1", false, ALL, NULL, "555 5.5.4 tokend: parameter XFOO is not supported", false},
    {"SIZE=1", true, ALL, NULL, "555 5.5.4 tokend: parameter SIZE is not supported", false},
    {"NOTIFY=NEVER", false, ALL, NULL, "555 5.5.4 tokend: parameter NOTIFY", false},
    {"X\xc3\xa9=1", false, ALL, NULL, "555 5.5.4 tokend: parameter X??", false},
    {"SIZE=1  BODY=7BIT", false, ALL, " SIZE=1 BODY=7BIT", NULL, false},
};

static void test_params(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *out = NULL, *reply = NULL;
        bool utf8 = true;
        int rc =
            smtpext_params(cases[i].params, cases[i].rcpt, cases[i].offered, &out, &reply, &utf8);

        g_test_message("case %zu: %s", i, cases[i].params);
        g_assert_cmpint(rc, ==, cases[i].out ? 0 : -1);
        g_assert_cmpstr(out, ==, cases[i].out);
        if (cases[i].reply)
            g_assert_true(g_str_has_prefix(reply, cases[i].reply));
        else
            g_assert_null(reply);
        if (cases[i].out)
            g_assert_cmpint(utf8, ==, cases[i].utf8);
    }
}

static void test_keywords_and_ehlo(void)
{
    static const char *const kw[] = {"size",     "SIZE 41943040", "8BITMIME", "AUTH",
                                     "CHUNKING", "BURL",          "DSNX",     "Pipelining"};
    unsigned exts = smtpext_from_keywords(kw, G_N_ELEMENTS(kw));
    g_autofree char *lines = smtpext_ehlo_lines(exts, 0, true);
    g_autofree char *own = smtpext_ehlo_lines(SMTPEXT_RELAY, 0, true);

    g_assert_cmpuint(exts, ==,
                     SMTPEXT_SIZE | SMTPEXT_8BITMIME | SMTPEXT_CHUNKING | SMTPEXT_PIPELINING);
    g_assert_cmpstr(lines, ==,
                    "250-SIZE\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
                    "250 AUTH PLAIN LOGIN");
    for (unsigned i = 0; smtpext_name(i); i++)
        if (SMTPEXT_RELAY & (1u << i))
            testutil_assert_contains(own, smtpext_name(i));
    g_assert_null(strstr(own, "BINARYMIME"));
    g_assert_null(smtpext_name(8));
}

static void test_bdat(void)
{
    static const struct {
        const char *arg;
        int rc;
        guint64 size;
        bool last;
    } rows[] = {
        {"0 LAST", 0, 0, true},
        {"1048576", 0, 1048576, false},
        {"12 last", 0, 12, true},
        {"", -1, 0, false},
        {"-1", -1, 0, false},
        {"+5", -1, 0, false},
        {"5 LAST x", -1, 0, false},
        {"5 FIRST", -1, 0, false},
        {"99999999999999999999", -1, 0, false},
        {"5  LAST", -1, 0, false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        guint64 size = 7;
        bool last = true;

        g_test_message("row %zu: %s", i, rows[i].arg);
        g_assert_cmpint(smtpext_bdat(rows[i].arg, &size, &last), ==, rows[i].rc);
        g_assert_cmpuint(size, ==, rows[i].size);
        g_assert_cmpint(last, ==, rows[i].last);
    }
}

static void test_utf8_only_in_mail_and_rcpt(void)
{
    static const struct {
        const char *line;
        int rc;
    } rows[] = {
        {"MAIL FROM:<j\xc3\xb8rn@example.org> SMTPUTF8", 0},
        {"rcpt TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>", 0},
        {"NOOP \xc3\xa9t\xc3\xa9", -1},
        {"EHLO \xc3\xa9", -1},
        {"MAIL FROM:<\xc3@example.org>", -1},   /* not UTF-8 */
        {"MAIL FROM:<a\x7f@example.org>", -1},  /* DEL */
        {"RCPT TO:<a\xc2\x85@example.org>", 0}, /* U+0085 is UTF-8 */
        {"MAIL FROM:<a\r@example.org>", -1},
    };

    g_assert_true(smtpext_non_ascii("j\xc3\xb8rn"));
    g_assert_false(smtpext_non_ascii("alice@example.org"));
    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        enum relaycmd_smtp verb;
        const char *arg;

        g_test_message("row %zu", i);
        g_assert_cmpint(relaycmd_smtp_parse(rows[i].line, strlen(rows[i].line), &verb, &arg), ==,
                        rows[i].rc);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/smtpext/params", test_params);
    g_test_add_func("/smtpext/keywords-and-ehlo", test_keywords_and_ehlo);
    g_test_add_func("/smtpext/bdat", test_bdat);
    g_test_add_func("/smtpext/utf8-only-in-mail-and-rcpt", test_utf8_only_in_mail_and_rcpt);
    return testutil_run();
}
