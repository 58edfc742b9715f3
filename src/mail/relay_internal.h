#pragma once
/* What the relay's modules share among themselves (relay_io.c, the SMTP
 * and mailbox sessions): the client side of the connection, read with a
 * bounded buffer and a timeout.  Included by src/mail/relay*.c only. */

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>

#include "tokend/error.h"
#include "tokend/mailconn.h"
#include "tokend/netconn.h"
#include "tokend/relay.h"

/* Client reads go through this much memory, whatever the client sends. */
#define RELAY_IO_BUF (64 * 1024)
/* A command line longer than this is refused and skipped (RFC 5321 allows
 * 512; AUTH responses and IMAP LOGIN with long names need more). */
#define RELAY_LINE_MAX 4096
/* Connect and login upstream together. */
#define RELAY_LOGIN_TIMEOUT_US (30 * G_USEC_PER_SEC)

enum relay_io_result {
    RELAY_IO_LINE = 1,
    RELAY_IO_EOF = 0,
    RELAY_IO_FAILED = -1,   /* timeout or error: e says */
    RELAY_IO_TOO_LONG = -2, /* the line was longer than max; skipped to its end */
};

typedef struct relay_io {
    int in, out;
    int timeout_s;
    char buf[RELAY_IO_BUF];
    size_t off, len;
    bool eof;
    NetConn *tls; /* after STARTTLS or implicit TLS: the client's TLS session */
} RelayIO;

void relay_io_init(RelayIO *io, const struct relay_ctx *ctx);
/* One line without CR LF (a bare LF ends a line too) into line. */
enum relay_io_result relay_io_line(RelayIO *io, GString *line, size_t max, struct tokend_error *e);
/* What is buffered, else one read (waiting up to the timeout): *data and
 * its length (0 at end of stream); -1 on timeout or error. */
ssize_t relay_io_peek(RelayIO *io, const char **data, struct tokend_error *e);
void relay_io_consume(RelayIO *io, size_t n);
/* n bytes of the client's, written to up as they come (dropped when up
 * is NULL); -1 when the client or upstream failed (e says which). */
int relay_io_copy(RelayIO *io, MailConn *up, guint64 n, struct tokend_error *e);
/* A reply line (CR LF added); -1 when the client is gone. */
int relay_io_say(RelayIO *io, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
int relay_io_write(RelayIO *io, const char *data, size_t len);

/* TLS with the client now (after the protocol's go-ahead, or before the
 * greeting): what the client sent before is dropped (RFC 3207 §4.2), and
 * io reads and writes through TLS from here on.  The certificate is the
 * configured one, else (not for other machines) the loopback one. */
int relay_tls_start(RelayIO *io, const struct relay_ctx *ctx, struct tokend_error *e);
/* TLS may be started: the client is on TCP and not under TLS yet. */
bool relay_tls_offered(const RelayIO *io, const struct relay_ctx *ctx);
/* A login may go on: not from another machine, or under TLS.  False: the
 * client must start TLS first. */
bool relay_tls_login_allowed(const RelayIO *io, const struct relay_ctx *ctx);
/* A client on another machine logs in as a with password: 0 when it is
 * the one relay_password_hash holds; -1 (e, the sentence for the client)
 * otherwise.  Local clients: always 0 (their uid was checked). */
int relay_password_check(const struct relay_ctx *ctx, const Account *a, const char *password,
                         struct tokend_error *e);
/* Says go (the protocol's go-ahead to STARTTLS or STLS), then TLS; false
 * (logged) when the handshake failed: the session ends. */
bool relay_tls_go(RelayIO *io, const struct relay_ctx *ctx, const char *go);
/* relay_password_check, then password (which may be NULL) wiped and
 * freed; when refused, the sentence for the client in *why (logged).
 * With a NULL only wipes (-1). */
int relay_password_take(const struct relay_ctx *ctx, const Account *a, char *password, char **why);
void relay_io_free_tls(RelayIO *io);
/* Splice the session with upstream c, through TLS if the client has it. */
int relay_io_splice(RelayIO *io, MailConn *c, struct tokend_error *e);

/* Log in upstream to the account's server for proto with its token (one
 * forced refresh when the token is refused): the session, or NULL and e. */
MailConn *relay_upstream_login(const Account *a, enum mail_proto proto, struct tokend_error *e);
/* A name a client gave, safe to repeat to it and to the log. */
char *relay_safe_name(const char *name);

/* The Graph backend (relay_graph.c): the message taken locally, sent by
 * an agent process with Microsoft Graph's sendMail. */
typedef struct relay_graph RelayGraph;
/* smtp_backend = graph. */
bool relay_graph_backend(const Account *a);
/* Starts the agent for account a (which fetches a token first: NULL and e
 * the 454's reason when there is none), then enters the sandbox. */
RelayGraph *relay_graph_start(const Account *a, const struct relay_ctx *ctx,
                              struct tokend_error *e);
void relay_graph_free(RelayGraph *g);
/* The message, without dot-stuffing, sent as sender: the SMTP reply line
 * for the client (250 only once Graph answered 202). */
char *relay_graph_submit(RelayGraph *g, const char *sender, const GByteArray *mime);
/* Graph sends to the header's recipients: RCPT TO addresses in no
 * header are added as a Bcc header; -1 and *refusal (the 5xx reply) when
 * the header names an address that is not a RCPT TO. */
int relay_graph_recipients(GByteArray *msg, const GPtrArray *rcpts, char **refusal);
/* The SMTP extensions upstream offers, asked once logged in
 * (tokend/smtpext.h); 0 when it cannot say. */
unsigned relay_smtp_offered(MailConn *up, int timeout_s);
/* BDAT SIZE [LAST] sent upstream with the chunk, read from the client as
 * it comes, and upstream's reply in *r; -1 when either side failed. */
int relay_smtp_bdat(MailConn *up, RelayIO *io, guint64 size, bool last, MailReply *r,
                    struct tokend_error *e);
