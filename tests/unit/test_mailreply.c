/* mailreply: IMAP, POP3 and SMTP reply lines parsed by status and response
 * code; the SASL error challenge's status. */

#include <string.h>

#include "tokend/mailreply.h"
#include "testutil.h"

enum { IMAP = MAIL_PROTO_IMAP, POP3 = MAIL_PROTO_POP3, SMTP = MAIL_PROTO_SMTP };
enum { U = MAILREPLY_UNTAGGED, C = MAILREPLY_CONTINUE, F = MAILREPLY_FINAL };
enum {
    NONE = MAILREPLY_NONE,
    OK = MAILREPLY_OK,
    NO = MAILREPLY_NO,
    BAD = MAILREPLY_BAD,
    BYE = MAILREPLY_BYE,
    PRE = MAILREPLY_PREAUTH
};

static const struct {
    int proto;
    const char *line;
    int kind, status;
    const char *tag, *keyword, *code, *text;
    const char *atoms; /* joined by " ", NULL: none */
    int number;
    bool more;
} good[] = {
    /* IMAP */
    {IMAP, "t1 OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Logged in", F, OK, "t1", NULL,
     "CAPABILITY", "Logged in", "IMAP4rev1 SASL-IR AUTH=XOAUTH2"},
    {IMAP, "t2 NO [AUTHENTICATIONFAILED] Authentication failed.", F, NO, "t2", NULL,
     "AUTHENTICATIONFAILED", "Authentication failed."},
    {IMAP, "t2 no [authenticationFailed] odd case", F, NO, "t2", NULL, "AUTHENTICATIONFAILED",
     "odd case"},
    {IMAP, "t3 NO [UNAVAILABLE] Temporary authentication failure.", F, NO, "t3", NULL,
     "UNAVAILABLE", "Temporary authentication failure."},
    {IMAP, "A0001 BAD Error in IMAP command", F, BAD, "A0001", NULL, NULL, "Error in IMAP command"},
    {IMAP, "a1 OK", F, OK, "a1", NULL, NULL, ""},
    {IMAP, "t1 NO AUTHENTICATE failed.", F, NO, "t1", NULL, NULL, "AUTHENTICATE failed."},
    {IMAP, "t1 OK [ALERT no closing bracket", F, OK, "t1", NULL, NULL, "[ALERT no closing bracket"},
    {IMAP, "t1 NO [BAD\"CODE] text", F, NO, "t1", NULL, NULL, "[BAD\"CODE] text"},
    {IMAP, "* OK [CAPABILITY IMAP4rev1 X]Y] ready", U, OK, NULL, NULL, "CAPABILITY", "Y] ready",
     "IMAP4rev1 X"},
    {IMAP, "* CAPABILITY IMAP4rev1 IDLE\rEVIL ]bad AUTH=PLAIN  x{y", U, NONE, NULL, "CAPABILITY",
     NULL, "IMAP4rev1 IDLE\rEVIL ]bad AUTH=PLAIN  x{y", "IMAP4rev1 AUTH=PLAIN"},
    {IMAP, "* capability imap4rev1", U, NONE, NULL, "CAPABILITY", NULL, "imap4rev1", "imap4rev1"},
    {IMAP, "* BYE shutting down", U, BYE, NULL, NULL, NULL, "shutting down"},
    {IMAP, "* PREAUTH [CAPABILITY IMAP4rev1] hi", U, PRE, NULL, NULL, "CAPABILITY", "hi",
     "IMAP4rev1"},
    {IMAP, "* 3 EXISTS", U, NONE, NULL, "EXISTS", NULL, ""},
    {IMAP, "* FLAGS (\\Seen)", U, NONE, NULL, "FLAGS", NULL, "(\\Seen)"},
    {IMAP, "+ ", C, NONE, NULL, NULL, NULL, ""},
    {IMAP, "+", C, NONE, NULL, NULL, NULL, ""},
    {IMAP, "+ eyJzdGF0dXMiOiI0MDEifQ==", C, NONE, NULL, NULL, NULL, "eyJzdGF0dXMiOiI0MDEifQ=="},
    /* POP3 */
    {POP3, "+OK Dovecot ready.", F, OK, NULL, NULL, NULL, "Dovecot ready."},
    {POP3, "+OK", F, OK, NULL, NULL, NULL, ""},
    {POP3, "-ERR [AUTH] Authentication failed.", F, NO, NULL, NULL, "AUTH",
     "Authentication failed."},
    {POP3, "-ERR [SYS/TEMP] Temporary authentication failure.", F, NO, NULL, NULL, "SYS/TEMP",
     "Temporary authentication failure."},
    {POP3, "-err [in-use] odd case", F, NO, NULL, NULL, "IN-USE", "odd case"},
    {POP3, "-ERR [] empty", F, NO, NULL, NULL, NULL, "[] empty"},
    {POP3, "-ERR [SYS//TEMP] x", F, NO, NULL, NULL, NULL, "[SYS//TEMP] x"},
    {POP3, "-ERR Authentication failure: unknown user name or bad password.", F, NO, NULL, NULL,
     NULL, "Authentication failure: unknown user name or bad password."},
    {POP3, "+ ", C, NONE, NULL, NULL, NULL, ""},
    {POP3, "+ eyJzdGF0dXMiOiI0MDEifQ==", C, NONE, NULL, NULL, NULL, "eyJzdGF0dXMiOiI0MDEifQ=="},
    /* SMTP */
    {SMTP, "220 localhost ESMTP", F, OK, NULL, NULL, NULL, "localhost ESMTP", NULL, 220},
    {SMTP, "250-AUTH PLAIN XOAUTH2", F, OK, NULL, NULL, NULL, "AUTH PLAIN XOAUTH2", NULL, 250,
     true},
    {SMTP, "250", F, OK, NULL, NULL, NULL, "", NULL, 250},
    {SMTP, "235 2.7.0 Authentication successful", F, OK, NULL, NULL, "2.7.0",
     "Authentication successful", NULL, 235},
    {SMTP, "535 5.7.8 Authentication credentials invalid", F, NO, NULL, NULL, "5.7.8",
     "Authentication credentials invalid", NULL, 535},
    {SMTP, "535-5.7.8 Username and Password not accepted.", F, NO, NULL, NULL, "5.7.8",
     "Username and Password not accepted.", NULL, 535, true},
    {SMTP, "454 4.7.0 Temporary authentication failure", F, NO, NULL, NULL, "4.7.0",
     "Temporary authentication failure", NULL, 454},
    {SMTP, "535 4.7.8 class of another reply", F, NO, NULL, NULL, NULL,
     "4.7.8 class of another reply", NULL, 535},
    {SMTP, "535 5.7.8123 not a code", F, NO, NULL, NULL, NULL, "5.7.8123 not a code", NULL, 535},
    {SMTP, "235 2.7.0", F, OK, NULL, NULL, "2.7.0", "", NULL, 235},
    {SMTP, "334 ", C, NONE, NULL, NULL, NULL, "", NULL, 334},
    {SMTP, "334 eyJzdGF0dXMiOiI0MDEifQ==", C, NONE, NULL, NULL, NULL,
     "eyJzdGF0dXMiOiI0MDEifQ==", NULL, 334},
};

static char *joined(const GPtrArray *a)
{
    g_autoptr(GString) s = g_string_new(NULL);

    for (guint i = 0; a && i < a->len; i++)
        g_string_append_printf(s, "%s%s", i ? " " : "", (const char *)g_ptr_array_index(a, i));
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static void test_good(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_auto(MailReply) r = {0};

        g_test_message("row %zu: %s", i, good[i].line);
        g_assert_cmpint(mailreply_parse(good[i].proto, good[i].line, &r), ==, 0);
        g_assert_cmpint(r.kind, ==, good[i].kind);
        g_assert_cmpint(r.status, ==, good[i].status);
        g_assert_cmpstr(r.tag, ==, good[i].tag);
        g_assert_cmpstr(r.keyword, ==, good[i].keyword);
        g_assert_cmpstr(r.code, ==, good[i].code);
        g_assert_cmpstr(r.text, ==, good[i].text);
        g_assert_cmpint(r.number, ==, good[i].number);
        g_assert_cmpint(r.more, ==, good[i].more);
        g_assert_nonnull(r.line);
        if (good[i].atoms) {
            g_autofree char *a = joined(r.atoms);
            g_assert_cmpstr(a, ==, good[i].atoms);
        }
    }
}

static const struct {
    int proto;
    const char *line;
} bad[] = {
    {IMAP, ""},        {IMAP, "t1"},         {IMAP, "t1 "},      {IMAP, "t1 MAYBE so"},
    {IMAP, "t1 OKAY"}, {IMAP, "t1 BYE bye"}, {IMAP, "t+1 OK x"}, {IMAP, "t]1 OK x"},
    {IMAP, "* "},      {IMAP, "*"},          {IMAP, "* 3"},      {IMAP, "*  x"},
    {IMAP, "+x"},      {IMAP, "t\r1 OK x"},  {POP3, ""},         {POP3, "+OKAY"},
    {POP3, "-ERRR x"}, {POP3, "OK"},         {POP3, "+x"},       {SMTP, ""},
    {SMTP, "25"},      {SMTP, "2500 x"},     {SMTP, "250x"},     {SMTP, "600 x"},
    {SMTP, "150 x"},   {SMTP, "abc"},        {SMTP, "-250 x"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_auto(MailReply) r = {0};

        g_test_message("row %zu: %s", i, bad[i].line);
        g_assert_cmpint(mailreply_parse(bad[i].proto, bad[i].line, &r), ==, -1);
        g_assert_null(r.line);
        g_assert_null(r.text);
    }
}

static void test_atom(void)
{
    static const struct {
        const char *s;
        bool atom;
    } rows[] = {
        {"IMAP4rev1", true}, {"AUTH=XOAUTH2", true}, {"X-GM-EXT-1", true},   {"", false},
        {"a]b", false},      {"a b", false},         {"a\rb", false},        {"a\nb", false},
        {"(x", false},       {"x*", false},          {"x%", false},          {"\"x", false},
        {"x\\", false},      {"{x", false},          {"caf\xc3\xa9", false},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++)
        g_assert_cmpint(mailreply_is_atom(rows[i].s), ==, rows[i].atom);
    g_assert_false(mailreply_is_atom(NULL));
}

static void test_sasl_status(void)
{
    static const struct {
        const char *json; /* base64-encoded here; NULL: data as is */
        const char *data;
        const char *want;
    } rows[] = {
        {"{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://mail.google.com/\"}", NULL,
         "401"},
        {"{\"status\":\"invalid_token\",\"scope\":\"mail\",\"openid-configuration\":\"x\"}", NULL,
         "invalid_token"},
        {"{\"status\":\"400\"}", NULL, "400"},
        {"{\"schemes\":\"bearer\"}", NULL, NULL},
        {"{\"status\":401}", NULL, NULL},
        {"{\"status\":\"\"}", NULL, NULL},
        {"{\"status\":\"a b\"}", NULL, NULL},
        {"{\"status\":\"a\\r\\nb\"}", NULL, NULL},
        {"[\"status\"]", NULL, NULL},
        {"not json", NULL, NULL},
        {NULL, "", NULL},
        {NULL, "!!!!", NULL},
        {NULL, "abc", NULL},
        {NULL, "eyJzdGF0dXMiOiI0MDEifQ", NULL},    /* unpadded */
        {NULL, "eyJzdGF0dXMiOiI0MDEifQ==", "401"}, /* {"status":"401"} */
        {NULL, "eyJzdGF0dXMiOiI0MDEifQ== ", NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        g_autofree char *data =
            rows[i].json ? g_base64_encode((const guchar *)rows[i].json, strlen(rows[i].json))
                         : g_strdup(rows[i].data);
        g_autofree char *got = mailreply_sasl_status(data);

        g_test_message("row %zu", i);
        g_assert_cmpstr(got, ==, rows[i].want);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/mailreply/good", test_good);
    g_test_add_func("/mailreply/bad", test_bad);
    g_test_add_func("/mailreply/atom", test_atom);
    g_test_add_func("/mailreply/sasl-status", test_sasl_status);
    return testutil_run();
}
