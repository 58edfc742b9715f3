#pragma once
/* Logging in with a bearer token: one SASL client for IMAP AUTHENTICATE
 * (RFC 9051 §6.2.2, SASL-IR RFC 4959), POP3 AUTH (RFC 5034) and SMTP AUTH
 * (RFC 4954), with XOAUTH2 or OAUTHBEARER (RFC 7628).  What differs between
 * the mechanisms and between the protocols is in two tables in sasl.c; the
 * session around it (TLS, greeting, capabilities, replies) is mailconn.c's.
 * The token and the initial response become the session's secrets, so
 * that whatever the server echoes of them is redacted. */

#include <stdbool.h>

#include "tokend/error.h"
#include "tokend/mailconn.h"
#include "tokend/mailreply.h"
#include "tokend/secstr.h"

enum sasl_mech {
    SASL_MECH_AUTO, /* OAUTHBEARER when offered, else XOAUTH2 */
    SASL_MECH_XOAUTH2,
    SASL_MECH_OAUTHBEARER,
};

enum sasl_result {
    SASL_RESULT_OK,
    /* Authentication failed: the server refused the token (IMAP
     * [AUTHENTICATIONFAILED], POP3 [AUTH], SMTP 535, an error challenge
     * with status 401 or invalid_token, a failure without any code); a new
     * token may pass.  77. */
    SASL_RESULT_REFUSED,
    /* Refused for another reason (an error challenge with another status,
     * IMAP [AUTHORIZATIONFAILED], [EXPIRED], SMTP 534, ...): a new token
     * changes nothing.  77. */
    SASL_RESULT_DENIED,
    /* The server cannot check now (IMAP [UNAVAILABLE], POP3 [SYS/TEMP],
     * SMTP 4xx).  75. */
    SASL_RESULT_TEMPFAIL,
    /* The connection failed or the server spoke out of turn (e says).  75. */
    SASL_RESULT_FAILED,
};

/* "auto", "xoauth2", "oauthbearer" (any case); NULL is auto; -1 if none. */
int sasl_mech_from_name(const char *name);
const char *sasl_mech_name(enum sasl_mech m);
/* The mechanism wanted comes to on c (AUTO: what the server offers). */
enum sasl_mech sasl_choose(const MailConn *c, enum sasl_mech wanted);
/* Logs in as user with token.  0, or -1 with *result saying how it failed
 * and e the one-line message with the server's words. */
int sasl_login(MailConn *c, enum sasl_mech wanted, const char *user, const SecStr *token,
               gint64 deadline, enum sasl_result *result, struct tokend_error *e);

/* The parts, public for the unit tests. */

/* The command that opens the exchange ("TAG AUTHENTICATE MECH [IR]",
 * "AUTH MECH [IR]", CRLF), with the initial response ir when the protocol
 * lets it go there (IMAP with SASL-IR offered; POP3 within 255 octets;
 * SMTP within 512); *with_ir says whether it did.  ir NULL: never. */
SecStr *sasl_command(enum mail_proto p, const char *tag, enum sasl_mech m, const SecStr *ir,
                     bool sasl_ir_offered, bool *with_ir);
/* What a final reply to the exchange means, given the status of the
 * mechanism's error challenge (NULL when there was none). */
enum sasl_result sasl_classify(enum mail_proto p, enum sasl_mech m, const MailReply *final,
                               const char *challenge_status);
