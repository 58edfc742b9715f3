/* sasl: the command that opens the exchange (where the initial response
 * may go) and what a final reply means, for every protocol and mechanism. */

#include <string.h>

#include "tokend/sasl.h"
#include "testutil.h"

enum { IMAP = MAIL_PROTO_IMAP, POP3 = MAIL_PROTO_POP3, SMTP = MAIL_PROTO_SMTP };
enum { X = SASL_MECH_XOAUTH2, O = SASL_MECH_OAUTHBEARER };

static void test_mech_names(void)
{
    g_assert_cmpint(sasl_mech_from_name(NULL), ==, SASL_MECH_AUTO);
    g_assert_cmpint(sasl_mech_from_name("auto"), ==, SASL_MECH_AUTO);
    g_assert_cmpint(sasl_mech_from_name("xoauth2"), ==, SASL_MECH_XOAUTH2);
    g_assert_cmpint(sasl_mech_from_name("XOAUTH2"), ==, SASL_MECH_XOAUTH2);
    g_assert_cmpint(sasl_mech_from_name("OAuthBearer"), ==, SASL_MECH_OAUTHBEARER);
    g_assert_cmpint(sasl_mech_from_name("plain"), ==, -1);
    g_assert_cmpint(sasl_mech_from_name(""), ==, -1);
    g_assert_cmpstr(sasl_mech_name(SASL_MECH_OAUTHBEARER), ==, "OAUTHBEARER");
}

/* A response of n octets of 'a'. */
static SecStr *response(size_t n)
{
    SecStr *s = secstr_new(n);

    for (size_t i = 0; i < n; i++)
        secstr_append(s, "a", 1);
    return s;
}

static void test_command(void)
{
    static const struct {
        int proto, mech;
        long ir; /* its length; -1: none */
        bool sasl_ir;
        bool with_ir;
        const char *start; /* the command up to the response */
    } rows[] = {
        {IMAP, X, 10, true, true, "t1 AUTHENTICATE XOAUTH2 "},
        {IMAP, O, 10, true, true, "t1 AUTHENTICATE OAUTHBEARER "},
        {IMAP, X, 10, false, false, "t1 AUTHENTICATE XOAUTH2\r\n"},
        {IMAP, X, 3000, true, true, "t1 AUTHENTICATE XOAUTH2 "}, /* no line limit */
        {IMAP, X, -1, true, false, "t1 AUTHENTICATE XOAUTH2\r\n"},
        /* RFC 5034 §4: "AUTH XOAUTH2 " 13 + IR + CRLF within 255 octets */
        {POP3, X, 240, false, true, "AUTH XOAUTH2 "},
        {POP3, X, 241, false, false, "AUTH XOAUTH2\r\n"},
        {POP3, O, 236, false, true, "AUTH OAUTHBEARER "},
        {POP3, O, 237, false, false, "AUTH OAUTHBEARER\r\n"},
        {POP3, X, 10, true, true, "AUTH XOAUTH2 "},
        /* RFC 4954 §4 and RFC 5321 §4.5.3.1.4: 512 octets */
        {SMTP, X, 497, false, true, "AUTH XOAUTH2 "},
        {SMTP, X, 498, false, false, "AUTH XOAUTH2\r\n"},
        {SMTP, O, 2048, false, false, "AUTH OAUTHBEARER\r\n"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        g_autoptr(SecStr) ir = rows[i].ir >= 0 ? response((size_t)rows[i].ir) : NULL;
        bool with = !rows[i].with_ir;
        g_autoptr(SecStr) cmd =
            sasl_command(rows[i].proto, "t1", rows[i].mech, ir, rows[i].sasl_ir, &with);
        size_t n = strlen(rows[i].start);

        g_test_message("row %zu", i);
        g_assert_cmpint(with, ==, rows[i].with_ir);
        g_assert_cmpint(strncmp(cmd->data, rows[i].start, n), ==, 0);
        if (with) {
            g_assert_cmpuint(cmd->len, ==, n + ir->len + 2);
            g_assert_cmpint(memcmp(cmd->data + n, ir->data, ir->len), ==, 0);
        } else {
            g_assert_cmpuint(cmd->len, ==, n);
        }
        g_assert_cmpint(memcmp(cmd->data + cmd->len - 2, "\r\n", 2), ==, 0);
    }
}

static void test_empty_response(void)
{
    g_autoptr(SecStr) ir = secstr_new(0);
    bool with = false;
    g_autoptr(SecStr) cmd = sasl_command(MAIL_PROTO_IMAP, "a", SASL_MECH_XOAUTH2, ir, true, &with);

    g_assert_true(with);
    g_assert_cmpstr(cmd->data, ==, "a AUTHENTICATE XOAUTH2 =\r\n");
}

enum {
    OK = SASL_RESULT_OK,
    REFUSED = SASL_RESULT_REFUSED,
    DENIED = SASL_RESULT_DENIED,
    TEMP = SASL_RESULT_TEMPFAIL,
    FAILED = SASL_RESULT_FAILED,
};

static void test_classify(void)
{
    static const struct {
        int proto, mech;
        const char *line, *status;
        int want;
    } rows[] = {
        {IMAP, X, "t1 OK [CAPABILITY IMAP4rev1] Logged in", NULL, OK},
        {IMAP, X, "t1 NO [AUTHENTICATIONFAILED] Authentication failed.", NULL, REFUSED},
        {IMAP, X, "t1 NO [AUTHENTICATIONFAILED] Authentication failed.", "401", REFUSED},
        {IMAP, O, "t1 NO [AUTHENTICATIONFAILED] Authentication failed.", "invalid_token", REFUSED},
        /* The error challenge says more than the code: not the token. */
        {IMAP, O, "t1 NO [AUTHENTICATIONFAILED] Authentication failed.", "insufficient_scope",
         DENIED},
        {IMAP, X, "t1 NO [AUTHENTICATIONFAILED] Authentication failed.", "400", DENIED},
        {IMAP, X, "t1 NO [UNAVAILABLE] Temporary authentication failure.", NULL, TEMP},
        {IMAP, X, "t1 NO [UNAVAILABLE] Temporary authentication failure.", "401", TEMP},
        {IMAP, X, "t1 no [unavailable] odd case", NULL, TEMP},
        {IMAP, X, "t1 NO [SERVERBUG] Internal error", NULL, TEMP},
        {IMAP, X, "t1 NO [AUTHORIZATIONFAILED] not for you", NULL, DENIED},
        {IMAP, X, "t1 NO [CONTACTADMIN] ask", NULL, DENIED},
        /* Exchange Online refuses a token with no code at all. */
        {IMAP, X, "t1 NO AUTHENTICATE failed.", NULL, REFUSED},
        {IMAP, X, "t1 NO [ALERT] something", NULL, REFUSED},
        {IMAP, X, "t1 BAD Error in IMAP command", NULL, FAILED},
        {POP3, X, "+OK Logged in.", NULL, OK},
        {POP3, X, "-ERR [AUTH] Authentication failed.", NULL, REFUSED},
        {POP3, X, "-ERR [AUTH] Authentication failed.", "401", REFUSED},
        {POP3, X, "-ERR [SYS/TEMP] Temporary authentication failure.", NULL, TEMP},
        {POP3, X, "-ERR [SYS/TEMP/DB] Database down.", "401", TEMP},
        {POP3, X, "-ERR [IN-USE] Mailbox locked", NULL, TEMP},
        {POP3, X, "-ERR [LOGIN-DELAY] Wait", NULL, TEMP},
        {POP3, X, "-ERR [SYS/PERM] Disabled", NULL, DENIED},
        {POP3, X, "-ERR [AUTHX] Not a known code", NULL, REFUSED},
        {POP3, X, "-ERR Authentication failure: unknown user name or bad password.", NULL, REFUSED},
        {SMTP, X, "235 2.7.0 Authentication successful", NULL, OK},
        {SMTP, X, "535 5.7.8 Authentication credentials invalid", NULL, REFUSED},
        {SMTP, X, "535 5.7.3 Authentication unsuccessful", NULL, REFUSED},
        {SMTP, O, "535 5.7.8 Authentication failed", "invalid_token", REFUSED},
        {SMTP, X, "454 4.7.0 Temporary authentication failure", NULL, TEMP},
        {SMTP, X, "454 4.7.0 Temporary authentication failure", "401", TEMP},
        {SMTP, X, "421 4.7.0 Try again later, closing connection.", NULL, TEMP},
        {SMTP, X, "534 5.7.9 Please log in with your web browser", NULL, DENIED},
        {SMTP, X, "530 5.7.0 Must issue a STARTTLS command first", NULL, DENIED},
        {SMTP, X, "504 5.5.4 Unrecognized authentication type", NULL, FAILED},
        {SMTP, X, "501 5.5.2 Syntax error", NULL, FAILED},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        g_auto(MailReply) r = {0};

        g_test_message("row %zu: %s", i, rows[i].line);
        g_assert_cmpint(mailreply_parse(rows[i].proto, rows[i].line, &r), ==, 0);
        g_assert_cmpint(sasl_classify(rows[i].proto, rows[i].mech, &r, rows[i].status), ==,
                        rows[i].want);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/sasl/mech-names", test_mech_names);
    g_test_add_func("/sasl/command", test_command);
    g_test_add_func("/sasl/empty-response", test_empty_response);
    g_test_add_func("/sasl/classify", test_classify);
    return testutil_run();
}
