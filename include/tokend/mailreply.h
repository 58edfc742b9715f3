#pragma once
/* What mail servers answer, one line at a time, read by status and response
 * code, never by searching the text: IMAP (RFC 9051 §7 and RFC 3501's
 * IMAP4rev1: tagged, untagged and continuation responses, [resp-text-code]),
 * POP3 (RFC 1939 +OK/-ERR, "+ " continuations of RFC 5034, [response codes]
 * of RFC 2449 §8 and RFC 3206), SMTP (RFC 5321 §4.2 reply lines with
 * enhanced status codes, RFC 2034 and RFC 3463), and the error challenge of
 * XOAUTH2 and OAUTHBEARER (RFC 7628 §3.2.2: base64 of a JSON object with
 * "status").  Pure functions, no I/O; the fuzz target fuzz_mailreply feeds
 * them. */

#include <stdbool.h>
#include <glib.h>

enum mail_proto {
    MAIL_PROTO_IMAP,
    MAIL_PROTO_POP3,
    MAIL_PROTO_SMTP,
};

enum mailreply_kind {
    MAILREPLY_UNTAGGED, /* IMAP "* ...": a status or data, more to come */
    MAILREPLY_CONTINUE, /* IMAP and POP3 "+ DATA", SMTP 3xx: the server asks */
    MAILREPLY_FINAL,    /* IMAP tagged, POP3 +OK/-ERR, SMTP 2xx, 4xx, 5xx */
};

enum mailreply_status {
    MAILREPLY_NONE,    /* untagged data, a continuation */
    MAILREPLY_OK,      /* IMAP OK, POP3 +OK, SMTP 2xx */
    MAILREPLY_NO,      /* IMAP NO, POP3 -ERR, SMTP 4xx and 5xx */
    MAILREPLY_BAD,     /* IMAP BAD */
    MAILREPLY_BYE,     /* IMAP BYE */
    MAILREPLY_PREAUTH, /* IMAP PREAUTH */
};

typedef struct mail_reply {
    enum mailreply_kind kind;
    enum mailreply_status status;
    int number; /* SMTP reply code, else 0 */
    bool more;  /* SMTP "NNN-": more lines of this reply follow */
    char *tag;  /* IMAP tagged reply: the tag */
    /* IMAP untagged data: its name, upper case ("CAPABILITY", "EXISTS") */
    char *keyword;
    /* Response code, upper case: IMAP "AUTHENTICATIONFAILED", POP3
     * "SYS/TEMP", SMTP's enhanced status code "5.7.8" */
    char *code;
    /* IMAP: the capability atoms of [CAPABILITY ...] or "* CAPABILITY";
     * POP3 and SMTP: the words of the text.  Only well-formed atoms. */
    GPtrArray *atoms;
    char *text; /* the human-readable text, or a continuation's data */
    char *line; /* the whole line (SMTP: the reply's lines joined), for messages */
} MailReply;

void mailreply_init(MailReply *r);
void mailreply_clear(MailReply *r);
/* 0 and r filled, or -1 (r cleared) when line is not a reply of p.  Status
 * words and codes are matched case-insensitively. */
int mailreply_parse(enum mail_proto p, const char *line, MailReply *r);
/* An IMAP atom (RFC 9051 §9: ATOM-CHARs, no "]", no controls, no space). */
bool mailreply_is_atom(const char *s);
/* The "status" of an XOAUTH2 or OAUTHBEARER error challenge, as the server
 * wrote it ("401", "invalid_token"), or NULL when data is no such
 * challenge.  Free with g_free. */
char *mailreply_sasl_status(const char *data);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MailReply, mailreply_clear)
