#pragma once
/* What a local mail client says to `tokend relay`, parsed: SMTP commands
 * (RFC 5321 §4.1), the paths of MAIL FROM and RCPT TO, the AUTH PLAIN
 * response (RFC 4616) and the login name of AUTH LOGIN, IMAP commands with
 * their atom and quoted-string arguments (RFC 9051 §9), POP3 commands
 * (RFC 1939).  Pure functions, no I/O; the fuzz target fuzz_relaycmd
 * feeds them.  Lines come without their CR LF. */

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>

enum relaycmd_smtp {
    RELAYCMD_SMTP_UNKNOWN,
    RELAYCMD_SMTP_EHLO,
    RELAYCMD_SMTP_HELO,
    RELAYCMD_SMTP_AUTH,
    RELAYCMD_SMTP_MAIL,
    RELAYCMD_SMTP_RCPT,
    RELAYCMD_SMTP_DATA,
    RELAYCMD_SMTP_RSET,
    RELAYCMD_SMTP_NOOP,
    RELAYCMD_SMTP_QUIT,
    RELAYCMD_SMTP_VRFY,
    RELAYCMD_SMTP_HELP,
    RELAYCMD_SMTP_STARTTLS,
    RELAYCMD_SMTP_BDAT,
};

/* Printable ASCII and spaces only (no controls, no 8-bit), len bytes. */
bool relaycmd_printable(const char *line, size_t len);
/* UTF-8 without controls, len bytes. */
bool relaycmd_utf8_text(const char *line, size_t len);
/* The verb (case-insensitive) and *arg, what follows it after one space
 * ("" when nothing).  -1 when the line is not printable ASCII, but for
 * MAIL and RCPT, whose addresses may be UTF-8 (RFC 6531; the caller
 * checks SMTPUTF8 was asked for). */
int relaycmd_smtp_parse(const char *line, size_t len, enum relaycmd_smtp *verb, const char **arg);
/* "FROM:<a@b> SIZE=10" with prefix "FROM:": *address "a@b" (may be "",
 * the null path), *params "SIZE=10" (or "").  A space after the colon is
 * tolerated; source routes are dropped (RFC 5321 §4.1.2 "@a,@b:x@y").
 * -1 when malformed.  Free both with g_free. */
int relaycmd_path(const char *arg, const char *prefix, char **address, char **params);
/* The end of a message's data (RFC 5321 §4.1.1.4: CR LF . CR LF, the
 * data's start counting as a line start), found across chunks: *state
 * starts as RELAYCMD_DATA_LINE_START and is carried from chunk to chunk.
 * Returns how many bytes of data belong to the message (with the end
 * line); *end when the end was found. */
#define RELAYCMD_DATA_LINE_START 2
size_t relaycmd_data_end(const char *data, size_t len, int *state, bool *end);
/* The data without its dot-stuffing (RFC 5321 §4.5.2: the first "." of a
 * line, at the data's start or after CR LF, dropped), appended to out;
 * *state starts as RELAYCMD_DATA_LINE_START and is carried from chunk to
 * chunk (the end line "." CR LF leaves CR LF at the end of out). */
void relaycmd_unstuff(const char *data, size_t len, int *state, GByteArray *out);
/* The authentication identity (authcid) of an AUTH PLAIN response,
 * base64 of "authzid NUL authcid NUL password"; the decoded copy, password
 * included, is wiped.  NULL when malformed.  Free with g_free. */
char *relaycmd_plain_user(const char *b64);
/* The text of a base64 SASL response (AUTH LOGIN's user name); NULL when
 * malformed or holding NUL or controls. */
char *relaycmd_b64_text(const char *b64);
/* The password of an AUTH PLAIN response (after the second NUL), or of
 * AUTH LOGIN's second answer: any bytes but NUL, CR and LF; NULL when
 * malformed.  The caller wipes it. */
char *relaycmd_plain_password(const char *b64);
char *relaycmd_b64_password(const char *b64);

/* An IMAP command: *tag, *command (upper case) and its arguments (atoms,
 * quoted strings unquoted), at most max_args.  -1 when malformed (a
 * literal {N} is malformed here: the caller says so).  Free with g_free /
 * g_ptr_array_unref; args owns its strings. */
int relaycmd_imap_parse(const char *line, size_t len, char **tag, char **command, GPtrArray *args,
                        guint max_args);
/* A POP3 command: *command (upper case) and *arg (the rest, may be ""). */
int relaycmd_pop3_parse(const char *line, size_t len, char **command, const char **arg);
