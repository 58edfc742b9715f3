#pragma once
/* A session with a mail server up to and around the login, shared by
 * `tunnel`, `check` and the relay: the connection (netconn.c), on loopback
 * the owner of the listening socket, TLS (implicit, or STARTTLS / STLS),
 * the greeting, the capabilities (IMAP
 * CAPABILITY, POP3 CAPA, SMTP EHLO) and the replies, read whole (IMAP untagged data taken in, SMTP
 * multi-line replies joined) and parsed by mailreply.c.  All the server says reaches logs and
 * messages through redact_text, with the secrets sent to it (mailconn_add_secret). */

#include <stdbool.h>
#include <glib.h>

#include "tokend/error.h"
#include "tokend/mailreply.h"
#include "tokend/netconn.h"
#include "tokend/secstr.h"

enum mail_tls {
    /* Implicit TLS on the protocol's TLS port (993, 995, 465), STARTTLS
     * elsewhere; plain text only to a loopback server without STARTTLS. */
    MAIL_TLS_AUTO,
    MAIL_TLS_IMPLICIT,
    MAIL_TLS_STARTTLS,
};

struct mail_target {
    enum mail_proto proto;
    const char *host;
    int port;
    enum mail_tls tls;
    const char *ca_file;
    /* The setting that chooses tls, named in hints (a literal such as
     * "tunnel_tls"), or NULL. */
    const char *tls_key;
};

typedef struct mailconn MailConn;

const char *mail_proto_name(enum mail_proto p);
int mail_tls_from_name(const char *name);

/* Connect, check who holds a loopback port (before any byte is sent or
 * read), secure the connection, read the greeting and the capabilities.
 * A loopback port held by another user than root or the one running
 * tokend is refused (TOKEND_EX_UNAVAILABLE) unless TLS is implicit, whose
 * certificate speaks for the server.  A plain-text greeting on a port that is not the
 * protocol's own must begin within a few seconds and not with a TLS
 * record: a server that speaks TLS from the first byte is named, with the
 * setting to change, instead of waited for. */
MailConn *mailconn_open(const struct mail_target *t, gint64 deadline, struct tokend_error *e);
const struct mail_target *mailconn_target(const MailConn *c);
NetConn *mailconn_netconn(MailConn *c);

/* The server offers capability (an IMAP capability, a POP3 CAPA or SMTP
 * EHLO keyword), or SASL mechanism mech; case-insensitive, whole atoms. */
bool mailconn_offers(const MailConn *c, const char *capability);
bool mailconn_offers_mech(const MailConn *c, const char *mech);
/* The capabilities now (asked for when unknown), well-formed atoms only. */
const GPtrArray *mailconn_capabilities(MailConn *c, gint64 deadline, struct tokend_error *e);
/* What was said is void (after a login); asked again when needed. */
void mailconn_forget_capabilities(MailConn *c);

/* A secret sent to the server, which it may echo: from now on redacted
 * from every log line and message (a wiped copy is kept). */
void mailconn_add_secret(MailConn *c, const SecStr *secret);
/* Wipe the secrets' copies: once the session is handed over and only
 * relayed, nothing secret stays in memory (tokend/sandbox.h). */
void mailconn_forget_secrets(MailConn *c);
/* The server's text made safe to show: redacted, one line, bounded. */
char *mailconn_words(const MailConn *c, const char *text);
/* text holds one of the secrets sent. */
bool mailconn_mentions_secret(const MailConn *c, const char *text);

/* An IMAP tag, new for each command. */
char *mailconn_tag(MailConn *c);
int mailconn_write(MailConn *c, const char *data, size_t len, gint64 deadline,
                   struct tokend_error *e);
/* The next continuation or final reply (IMAP untagged data is taken in and
 * skipped; an untagged BYE fails; SMTP lines are joined into one reply). */
int mailconn_read(MailConn *c, MailReply *r, gint64 deadline, struct tokend_error *e);
/* A command without secrets (IMAP: tagged here), read to its final reply;
 * -1 unless that is OK ("HOST refused COMMAND: ..."). */
int mailconn_command(MailConn *c, const char *command, gint64 deadline, struct tokend_error *e);
/* LOGOUT or QUIT, its answer awaited briefly; errors are ignored. */
void mailconn_logout(MailConn *c);
void mailconn_free(MailConn *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MailConn, mailconn_free)
