#pragma once
/* `tokend relay`: SMTP submission, IMAP and POP3 for local programs that
 * only know passwords.  One process serves one connection on fds in/out
 * (inetd style; systemd socket activation with Accept=yes): the client is
 * checked (who is at the other end), authenticated locally (its login
 * name chooses the account), and the relay logs in upstream with the
 * account's token through the one SASL engine (sasl.c), then relays the
 * session.  relay_listen accepts connections and starts one such process
 * per connection. */

#include <stdbool.h>
#include <sys/types.h>

#include "tokend/config.h"
#include "tokend/error.h"

#define RELAY_USAGE                                                                                \
    "tokend relay [--listen ADDR:PORT]... [--max-sessions N] [--timeout SECONDS] "                 \
    "[--tls starttls|implicit] smtp|imap|pop3"

#define RELAY_PASSWORD_USAGE "tokend relay-password ACCOUNT"

enum relay_proto {
    RELAY_PROTO_SMTP,
    RELAY_PROTO_IMAP,
    RELAY_PROTO_POP3,
};

enum relay_peer_kind {
    RELAY_PEER_PIPE,     /* not a socket: whoever started tokend */
    RELAY_PEER_UNIX,     /* a unix socket: SO_PEERCRED */
    RELAY_PEER_LOOPBACK, /* TCP from a loopback address: inet_diag */
    RELAY_PEER_REMOTE,   /* TCP from another machine */
};

struct relay_ctx {
    const Config *cfg;
    enum relay_proto proto;
    int in, out;
    int timeout_s;     /* a client silent this long is dropped */
    bool implicit_tls; /* --tls implicit: TLS from the first byte */
    bool tcp;          /* the client is on TCP: TLS is offered (STARTTLS) */
    bool remote;       /* from another machine: TLS and the account's password needed */
};

/* "smtp", "imap", "pop3"; -1 if none. */
int relay_proto_from_name(const char *name);
const char *relay_proto_name(enum relay_proto p);

/* Who is at the other end of fd, and (but for REMOTE) their uid. */
int relay_peer_of(int fd, enum relay_peer_kind *kind, uid_t *uid, struct tokend_error *e);
/* uid is tokend's own, or one that relay_peers (user and group names,
 * separated by spaces or commas) allows; -1 (e says which name) when a
 * name is neither a user nor a group. */
int relay_peer_allowed(uid_t uid, const char *relay_peers, bool *allowed, struct tokend_error *e);
/* The peer may use the relay: 0 (ctx->tcp and ctx->remote set), or -1
 * with e the sentence the client and the log get.  A peer on another
 * machine needs relay_remote_ready. */
int relay_check_peer(struct relay_ctx *ctx, struct tokend_error *e);
/* The relay may serve other machines: relay_tls_certificate and
 * relay_tls_key in [defaults] serve TLS, and some account has a
 * relay_password_hash (yescrypt); -1 with e the sentence that says why. */
int relay_remote_ready(const Config *cfg, struct tokend_error *e);
/* Where the certificate tokend makes for loopback is (the one clients
 * may trust: fetchmail's sslcertfile, msmtp's tls_trust_file). */
char *relay_tls_loopback_cert_path(void);
/* The loopback certificate and key, made once (a P-256 key, self-signed,
 * for localhost, 127.0.0.1 and ::1; the key 0600 in a 0700 folder of the
 * state folder, the folder put in place whole by one rename): their paths. */
int relay_tls_loopback(char **cert, char **key, struct tokend_error *e);
/* The hash of password (yescrypt, libxcrypt's default cost), or NULL (e). */
char *relay_password_hash_new(const char *password, struct tokend_error *e);

/* The account a login name chooses: the account's name, its username or
 * one of its send_as addresses (case-insensitive for addresses). */
const Account *relay_find_account(const Config *cfg, const char *login);
/* address may be given as MAIL FROM by a: its username or a send_as. */
bool relay_may_send_as(const Account *a, const char *address);

/* One session on ctx's fds; -1 (e) when it ended on an error worth a
 * log line (the client has been told already). */
int relay_smtp_session(const struct relay_ctx *ctx, struct tokend_error *e);
int relay_mailbox_session(const struct relay_ctx *ctx, struct tokend_error *e);
/* Refuse a client in its protocol: SMTP 421/554, IMAP BYE, POP3 -ERR. */
void relay_refuse(enum relay_proto p, int out, bool permanent, const char *line);

/* Listen on each of addrs ("ADDR:PORT"), start `self_argv` with each
 * connection on its stdin and stdout, at most max_sessions at a time (the
 * next are refused in their protocol).  Runs until SIGTERM or SIGINT,
 * with a runtime file for `tokend status` (tokend/relayrun.h) naming
 * cfg's file, removed on the way out. */
int relay_listen(const Config *cfg, enum relay_proto p, char **addrs, int max_sessions,
                 char *const *self_argv, struct tokend_error *e);
