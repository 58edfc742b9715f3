#pragma once
/* `tokend tunnel`: log in to an IMAP or POP3 server with XOAUTH2 or
 * OAUTHBEARER (the session is mailconn.c's, the login sasl.c's), then hand
 * the authenticated session to a mail client on stdin/stdout (IMAP
 * `* PREAUTH`, POP3 `+OK`) and relay bytes both ways. */

#include <stdbool.h>
#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/mailconn.h"
#include "tokend/sasl.h"
#include "tokend/secstr.h"

#define TUNNEL_USAGE "tokend tunnel ACCOUNT [--pop3] [HOST [PORT]]"

enum tunnel_proto {
    TUNNEL_PROTO_IMAP,
    TUNNEL_PROTO_POP3,
};

struct tunnel_target {
    enum tunnel_proto proto;
    const char *host;
    int port;
    enum mail_tls tls;   /* tunnel_tls */
    enum sasl_mech mech; /* tunnel_mech */
    const char *ca_file;
    const char *user;
    /* System mode, run by a reader: the token the verb read from its file
     * (the system broker refreshed it when stale; tokend refreshes nothing
     * itself then). */
    bool reader;
    const SecStr *reader_token;
};

typedef struct tunnel Tunnel;

/* The values of tunnel_mech and tunnel_tls (NULL: auto); -1 if none. */
int tunnel_mech_from_name(const char *name);
int tunnel_tls_from_name(const char *name);
/* Connect, secure the connection and learn what the server offers. */
Tunnel *tunnel_open(const struct tunnel_target *t, gint64 deadline, struct tokend_error *e);
/* Log in; *result says how a failure came (SASL_RESULT_REFUSED: the token). */
int tunnel_login(Tunnel *t, const SecStr *token, gint64 deadline, enum sasl_result *result,
                 struct tokend_error *e);
/* Greet the client on fd out as an authenticated session. */
int tunnel_greet(Tunnel *t, int out, struct tokend_error *e);
/* Relay until either side closes (fd in from the client, out to it),
 * with the session's secrets wiped and in the sandbox (sandbox.h). */
int tunnel_relay(Tunnel *t, int in, int out, struct tokend_error *e);
void tunnel_free(Tunnel *t);
/* Tell a client that was not greeted why, in its protocol, on fd out:
 * line is tokend's one-line message. */
void tunnel_refuse(enum tunnel_proto p, int out, int status, const char *line);
/* The session a verb runs: token, connect, login (one forced refresh when
 * the server refuses a token tokend believed valid), greet, relay.
 * *greeted tells whether the client has been handed the session. */
/* The state already says a sign-in is needed (notify_cmd has run). */
bool tunnel_signin_known(const Account *a);
/* The token as `tokend token` hands it out (force: refreshed first);
 * notify_cmd runs once when a sign-in is needed.  The relay's too. */
SecStr *tunnel_token(const Account *a, bool force, struct tokend_error *e);
/* A login with the account's token: login returns the logged-in session
 * or NULL with *result; when the server refused the token itself
 * (SASL_RESULT_REFUSED), one forced refresh and one more login. */
typedef void *(*tunnel_login_fn)(void *ctx, const SecStr *token, enum sasl_result *result,
                                 struct tokend_error *e);
void *tunnel_login_retrying(const Account *a, tunnel_login_fn login, void *ctx,
                            struct tokend_error *e);
int tunnel_session(const Account *a, const struct tunnel_target *t, bool *greeted,
                   struct tokend_error *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Tunnel, tunnel_free)
