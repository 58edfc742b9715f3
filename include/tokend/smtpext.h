#pragma once
/* The SMTP service extensions `tokend relay` passes on (RFC 5321 §2.2):
 * SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), PIPELINING
 * (RFC 2920), CHUNKING (RFC 3030), DSN (RFC 3461), ENHANCEDSTATUSCODES
 * (RFC 2034), and BINARYMIME (RFC 3030) when upstream has it.  Before the
 * account is known the relay offers them all; once it is logged in
 * upstream, what the client asks for is checked against what upstream
 * offers: a parameter that only informs is dropped when upstream cannot
 * take it, one that asks for what upstream cannot do is refused (555).
 * Pure functions, no I/O; fuzz_relaycmd feeds them. */

#include <stdbool.h>
#include <glib.h>

enum smtpext {
    SMTPEXT_SIZE = 1 << 0,
    SMTPEXT_8BITMIME = 1 << 1,
    SMTPEXT_SMTPUTF8 = 1 << 2,
    SMTPEXT_PIPELINING = 1 << 3,
    SMTPEXT_CHUNKING = 1 << 4,
    SMTPEXT_DSN = 1 << 5,
    SMTPEXT_ENHANCEDSTATUSCODES = 1 << 6,
    SMTPEXT_BINARYMIME = 1 << 7,
};

/* What the relay itself offers before it knows upstream's (no BINARYMIME:
 * only passed on when upstream offers it). */
#define SMTPEXT_RELAY                                                                              \
    (SMTPEXT_SIZE | SMTPEXT_8BITMIME | SMTPEXT_SMTPUTF8 | SMTPEXT_PIPELINING | SMTPEXT_CHUNKING |  \
     SMTPEXT_DSN | SMTPEXT_ENHANCEDSTATUSCODES)

/* The EHLO keyword of extension number i (0, 1, ...); NULL past the last. */
const char *smtpext_name(unsigned i);
/* The extensions among EHLO keywords (case-insensitive, the keyword alone:
 * "SIZE 1000" counts as SIZE). */
unsigned smtpext_from_keywords(const char *const *keywords, unsigned n);
/* What the relay offers when it sends through Microsoft Graph's sendMail
 * (a whole MIME message: no chunks, no DSN, no SMTPUTF8 envelope). */
#define SMTPEXT_GRAPH                                                                              \
    (SMTPEXT_SIZE | SMTPEXT_8BITMIME | SMTPEXT_PIPELINING | SMTPEXT_ENHANCEDSTATUSCODES)

/* The EHLO reply's lines after the first ("250-X\r\n..."), the extensions
 * in exts (SIZE with its limit when size is not 0), then the AUTH line
 * last ("250 AUTH PLAIN LOGIN") when auth; the last line has "250 ". */
char *smtpext_ehlo_lines(unsigned exts, guint64 size, bool auth);

/* The parameters of MAIL FROM (rcpt false) or RCPT TO as upstream gets
 * them, upstream offering `offered`: 0 and *out (" A=1 B", or ""), or -1
 * and *reply, the whole reply line for the client.  *utf8 is set when MAIL
 * asks for SMTPUTF8.  Free *out and *reply with g_free. */
int smtpext_params(const char *params, bool rcpt, unsigned offered, char **out, char **reply,
                   bool *utf8);
/* "SIZE [LAST]" of BDAT: -1 when malformed. */
int smtpext_bdat(const char *arg, guint64 *size, bool *last);
/* text has a byte outside ASCII. */
bool smtpext_non_ascii(const char *text);
