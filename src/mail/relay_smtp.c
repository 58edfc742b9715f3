/* The relay's SMTP side: a submission server for local programs (EHLO with
 * what the relay itself supports, AUTH PLAIN and LOGIN choosing the
 * account, MAIL FROM checked against the account's addresses), which logs
 * in upstream with the account's token once the account is known and then
 * passes each command on, the message streamed through a fixed buffer.
 *
 * Token trouble (a sign-in needed, the token server out of reach, the
 * token refused after one forced refresh) is 454 4.7.0, never 5xx: an MTA
 * in front keeps the mail queued.  What upstream rejects is passed on with
 * its number and its words, redacted. */

#include <string.h>
#include <unistd.h>

#include "relay_internal.h"
#include "tokend/graph.h"
#include "tokend/log.h"
#include "tokend/relaycmd.h"
#include "tokend/smtpext.h"

/* Bad commands before the relay hangs up (RFC 5321 §4.3.2 lets it). */
#define MAX_ERRORS 10
/* Upstream's answer after the end of the data (RFC 5321 §4.5.3.2.6). */
#define DATA_DONE_TIMEOUT_US (600 * G_USEC_PER_SEC)
/* Recipients of one message through Graph (Exchange Online's limit per
 * message is 500 by default). */
#define GRAPH_RCPT_MAX 500

struct smtp {
    const struct relay_ctx *ctx;
    RelayIO *io;
    const Account *account;
    MailConn *up;
    RelayGraph *graph; /* smtp_backend = graph: instead of up */
    char *sender;      /* Graph: MAIL FROM, and RCPT TO below */
    GPtrArray *rcpts;
    bool greeted, in_mail, has_rcpt, quit;
    bool utf8;        /* this message's MAIL asked for SMTPUTF8 */
    unsigned offered; /* upstream's extensions (tokend/smtpext.h) */
    int errors;
};

enum auth_step { AUTH_USER, AUTH_DONE, AUTH_FAILED };

static gint64 deadline_of(const struct smtp *s)
{
    return g_get_monotonic_time() + (gint64)s->ctx->timeout_s * G_USEC_PER_SEC;
}

/* A client that cannot be written to ends the session. */
static int say(struct smtp *s, const char *text)
{
    if (relay_io_say(s->io, "%s", text) < 0)
        s->quit = true;
    return 0;
}

static int bad(struct smtp *s, const char *text)
{
    s->errors++;
    return say(s, text);
}

/* Upstream's reply, passed on: its number, its enhanced code and its
 * words (redacted, one line). */
static int pass_reply(struct smtp *s, const MailReply *r)
{
    g_autofree char *words = mailconn_words(s->up, r->text ? r->text : "");
    g_autofree char *line = r->code ? g_strdup_printf("%d %s %s", r->number, r->code, words)
                                    : g_strdup_printf("%d %s", r->number, words);

    return say(s, line);
}

/* The upstream connection failed mid-session: the client hears 421 and the
 * session ends; nothing not acknowledged by upstream was acknowledged. */
static int upstream_lost(struct smtp *s, struct tokend_error *e)
{
    g_autofree char *line =
        g_strdup_printf("421 4.4.2 tokend: %s", e->message ? e->message : "upstream failed");

    say(s, line);
    s->quit = true;
    return -1;
}

/* A command sent upstream and its reply passed on; *number gets it. */
static int forward(struct smtp *s, const char *command, int *number, struct tokend_error *e)
{
    g_auto(MailReply) r = {0};
    g_autofree char *line = g_strconcat(command, "\r\n", NULL);

    log_debug("relay: U: %s", command);
    if (mailconn_write(s->up, line, strlen(line), deadline_of(s), e) < 0 ||
        mailconn_read(s->up, &r, deadline_of(s), e) < 0)
        return upstream_lost(s, e);
    if (r.kind != MAILREPLY_FINAL && r.kind != MAILREPLY_CONTINUE) {
        error_set(e, TOKEND_EX_TEMPFAIL, "upstream answered out of turn");
        return upstream_lost(s, e);
    }
    if (number)
        *number = r.number;
    return pass_reply(s, &r);
}

/* The account is known: log in upstream.  Token trouble is 454. */
static int login_upstream(struct smtp *s, const Account *a, struct tokend_error *e)
{
    struct tokend_error le = TOKEND_ERROR_INIT;
    bool graph = relay_graph_backend(a);

    if (graph ? !(s->graph = relay_graph_start(a, s->ctx, &le))
              : !(s->up = relay_upstream_login(a, MAIL_PROTO_SMTP, &le))) {
        g_autofree char *line = g_strdup_printf("454 4.7.0 tokend: %s: %s%s%s", a->name,
                                                le.message ? le.message : "login failed",
                                                le.hint ? "; " : "", le.hint ? le.hint : "");
        log_warn("%s: %s", a->name, le.message ? le.message : "login failed");
        error_clear(&le);
        return say(s, line);
    }
    s->account = a;
    s->offered = graph ? SMTPEXT_GRAPH : relay_smtp_offered(s->up, s->ctx->timeout_s);
    (void)e;
    return 0;
}

static const Account *default_graph_account(const Config *cfg)
{
    return cfg->relay_account ? relay_find_account(cfg, cfg->relay_account) : NULL;
}

/* Before the login, what the relay supports; after it, only what
 * upstream supports too (Graph: its size limit, tokend/smtpext.h's
 * SMTPEXT_GRAPH).  STARTTLS while it may come; AUTH only where a login
 * may go on (under TLS for other machines). */
static int say_ehlo(struct smtp *s)
{
    const Account *a = s->account ? s->account : default_graph_account(s->ctx->cfg);
    bool graph = relay_graph_backend(a);
    unsigned exts = graph   ? SMTPEXT_GRAPH
                    : s->up ? s->offered & (SMTPEXT_RELAY | SMTPEXT_BINARYMIME)
                            : SMTPEXT_RELAY;
    g_autofree char *lines = smtpext_ehlo_lines(exts, graph ? GRAPH_MIME_MAX : 0,
                                                relay_tls_login_allowed(s->io, s->ctx));
    g_autofree char *reply = g_strconcat(
        *lines ? "250-localhost tokend relay\r\n" : "250 localhost tokend relay",
        relay_tls_offered(s->io, s->ctx) && !s->account ? "250-STARTTLS\r\n" : "", lines, NULL);

    return say(s, reply);
}

static int ehlo(struct smtp *s, bool extended, const char *arg)
{
    if (!*arg)
        return bad(s, "501 5.5.4 tokend: EHLO needs the client's name");
    s->greeted = true;
    s->in_mail = s->has_rcpt = false;
    if (!extended)
        return say(s, "250 localhost tokend relay");
    return say_ehlo(s);
}

/* STARTTLS (RFC 3207): TLS from here on, the session as new (EHLO again). */
static int cmd_starttls(struct smtp *s, const char *arg)
{
    if (!relay_tls_offered(s->io, s->ctx) || s->account || s->in_mail)
        return bad(s, "503 5.5.1 tokend: STARTTLS is not possible now");
    if (*arg)
        return bad(s, "501 5.5.4 tokend: STARTTLS takes no argument");
    s->greeted = false;
    s->quit = !relay_tls_go(s->io, s->ctx, "220 2.0.0 tokend: ready to start TLS");
    return 0;
}

/* The client's answer to a 334; -1 (s->quit) when it is gone. */
static int sasl_response(struct smtp *s, GString *line, struct tokend_error *e)
{
    enum relay_io_result r = relay_io_line(s->io, line, RELAY_LINE_MAX, e);

    if (r == RELAY_IO_LINE)
        return 0;
    if (r == RELAY_IO_TOO_LONG)
        bad(s, "500 5.5.6 tokend: authentication exchange line is too long");
    else
        s->quit = true;
    error_clear(e);
    return -1;
}

/* AUTH LOGIN's password, read and wiped; kept in *password (for the
 * caller to wipe) only for a client on another machine: for allowed local
 * peers it plays no part (tokend(1), RELAY). */
static int read_password(struct smtp *s, char **password, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_new(NULL);
    int r;

    say(s, "334 UGFzc3dvcmQ6");
    r = sasl_response(s, line, e);
    if (r == 0 && strcmp(line->str, "*") == 0) {
        bad(s, "501 5.7.0 tokend: authentication cancelled");
        r = -1;
    } else if (r == 0 && s->ctx->remote)
        *password = relaycmd_b64_password(line->str);
    explicit_bzero(line->str, line->len);
    return r;
}

/* AUTH PLAIN|LOGIN [initial-response]: the login name, or NULL when the
 * client has been answered. */
static char *auth_user(struct smtp *s, const char *arg, char **password, struct tokend_error *e)
{
    g_auto(GStrv) parts = g_strsplit(arg, " ", 3);
    g_autoptr(GString) line = g_string_new(NULL);
    bool plain = parts[0] && g_ascii_strcasecmp(parts[0], "PLAIN") == 0;
    bool login = parts[0] && g_ascii_strcasecmp(parts[0], "LOGIN") == 0;
    const char *resp = parts[0] ? parts[1] : NULL;
    char *user;

    if (!plain && !login)
        return bad(s, "504 5.5.4 tokend: AUTH PLAIN or AUTH LOGIN"), NULL;
    if (resp && parts[2])
        return bad(s, "501 5.5.4 tokend: AUTH MECHANISM [INITIAL-RESPONSE]"), NULL;
    if (!resp) {
        say(s, plain ? "334 " : "334 VXNlcm5hbWU6");
        if (sasl_response(s, line, e) < 0)
            return NULL;
        resp = line->str;
    }
    if (strcmp(resp, "*") == 0)
        return bad(s, "501 5.7.0 tokend: authentication cancelled"), NULL;
    user = plain ? relaycmd_plain_user(resp) : relaycmd_b64_text(resp);
    if (plain && s->ctx->remote)
        *password = relaycmd_plain_password(resp);
    explicit_bzero(line->str, line->len);
    if (parts[1])
        explicit_bzero(parts[1], strlen(parts[1]));
    if (!user)
        return bad(s, "501 5.5.2 tokend: the authentication response is not valid base64"), NULL;
    if (login && read_password(s, password, e) < 0)
        return g_free(user), NULL;
    return user;
}

static int cmd_auth(struct smtp *s, const char *arg, struct tokend_error *e)
{
    char *password = NULL;
    g_autofree char *user = NULL, *why = NULL;
    g_autofree char *safe = NULL;
    g_autofree char *line = NULL;
    const Account *a;

    if (s->account)
        return bad(s, "503 5.5.1 tokend: already authenticated");
    if (!s->greeted || s->in_mail)
        return bad(s, "503 5.5.1 tokend: AUTH comes after EHLO, before MAIL");
    if (!relay_tls_login_allowed(s->io, s->ctx))
        return bad(s, "530 5.7.0 tokend: must issue a STARTTLS command first");
    if (!(user = auth_user(s, arg, &password, e)))
        return relay_password_take(s->ctx, NULL, password, NULL), 0;
    safe = relay_safe_name(user);
    if (!(a = relay_find_account(s->ctx->cfg, user))) {
        line =
            g_strdup_printf("535 5.7.8 tokend: no account \"%s\" in %s", safe, s->ctx->cfg->path);
        relay_password_take(s->ctx, NULL, password, NULL);
        return bad(s, line);
    }
    if (relay_password_take(s->ctx, a, password, &why) < 0) {
        line = g_strdup_printf("535 5.7.8 tokend: %s", why);
        return bad(s, line);
    }
    if (login_upstream(s, a, e) < 0 || !s->account)
        return 0;
    line = g_strdup_printf("235 2.7.0 tokend: %s logged in", a->name);
    return say(s, line);
}

/* The account for a client that did not log in: relay_account. */
static const Account *default_account(struct smtp *s)
{
    const Config *cfg = s->ctx->cfg;
    g_autofree char *line = NULL;
    const Account *a;

    if (s->ctx->remote || !cfg->relay_account || !*cfg->relay_account) {
        bad(s, "530 5.7.0 tokend: authentication required (AUTH with the account's address, "
               "or relay_account in [defaults])");
        return NULL;
    }
    if (!(a = relay_find_account(cfg, cfg->relay_account))) {
        line = g_strdup_printf("454 4.7.0 tokend: relay_account \"%s\" names no account in %s",
                               cfg->relay_account, cfg->path);
        say(s, line);
    }
    return a;
}

/* Graph ------------------------------------------------------------------ */

/* The message is kept here until Graph has it: a SIZE= over Graph's
 * limit is refused at once (RFC 1870 §6.1). */
static int graph_mail(struct smtp *s, const char *address, const char *params)
{
    g_auto(GStrv) list = g_strsplit(params, " ", -1);

    for (char **p = list; *p; p++) {
        guint64 size = 0;
        if (g_ascii_strncasecmp(*p, "SIZE=", 5) == 0 &&
            g_ascii_string_to_unsigned(*p + 5, 10, 0, G_MAXUINT64, &size, NULL) &&
            size > GRAPH_MIME_MAX)
            return say(s,
                       "552 5.3.4 tokend: Microsoft Graph takes messages of at most " G_STRINGIFY(
                           GRAPH_MIME_MAX) " bytes (4 MB a request, base64)");
    }
    g_free(s->sender);
    s->sender = g_strdup(address);
    g_ptr_array_set_size(s->rcpts, 0);
    s->in_mail = true;
    return say(s, "250 2.1.0 tokend: sender ok");
}

static int graph_rcpt(struct smtp *s, const char *address)
{
    if (s->rcpts->len >= GRAPH_RCPT_MAX)
        return say(s, "452 4.5.3 tokend: too many recipients for one message (" G_STRINGIFY(
                          GRAPH_RCPT_MAX) ")");
    g_ptr_array_add(s->rcpts, g_strdup(address));
    s->has_rcpt = true;
    return say(s, "250 2.1.5 tokend: recipient ok");
}

/* The message as it comes from the client's buffer, up to and with the
 * "." line, each piece handed to sink (which answers -1 when it fails).
 * A client that stalls or goes away: -1, the message not complete. */
typedef int (*data_sink)(struct smtp *s, const char *data, size_t len, void *ctx,
                         struct tokend_error *e);

static int read_data(struct smtp *s, data_sink sink, void *ctx, struct tokend_error *e)
{
    int state = RELAYCMD_DATA_LINE_START;
    bool end = false;

    while (!end) {
        const char *data;
        ssize_t n = relay_io_peek(s->io, &data, e);
        size_t take;

        if (n <= 0) {
            if (n == 0)
                error_set(e, TOKEND_EX_TEMPFAIL, "the client went away in the middle of a message");
            error_prefix(e, "the message was not sent");
            return upstream_lost(s, e);
        }
        take = relaycmd_data_end(data, (size_t)n, &state, &end);
        if (sink(s, data, take, ctx, e) < 0)
            return -1;
        relay_io_consume(s->io, take);
    }
    return 0;
}

/* Graph's copy of the message: into memory up to Graph's limit, without
 * its dot-stuffing; past the limit the rest is dropped (*msg NULL). */
struct spool {
    GByteArray **msg;
    int stuff_state;
};

static int spool_piece(struct smtp *s, const char *data, size_t len, void *ctx,
                       struct tokend_error *e)
{
    struct spool *sp = ctx;

    (void)s;
    (void)e;
    if (*sp->msg)
        relaycmd_unstuff(data, len, &sp->stuff_state, *sp->msg);
    /* The end line leaves 2 bytes that are not the message's. */
    if (*sp->msg && (*sp->msg)->len > GRAPH_MIME_MAX + 2)
        g_clear_pointer(sp->msg, g_byte_array_unref);
    return 0;
}

/* The client gone or silent: -1, nothing sent. */
static int graph_spool(struct smtp *s, GByteArray **msg, struct tokend_error *e)
{
    struct spool sp = {msg, RELAYCMD_DATA_LINE_START};

    if (read_data(s, spool_piece, &sp, e) < 0)
        return -1;
    if (*msg)
        g_byte_array_set_size(*msg, (*msg)->len - 2);
    return 0;
}

static int graph_data(struct smtp *s, struct tokend_error *e)
{
    g_autoptr(GByteArray) msg = g_byte_array_new();
    g_autofree char *reply = NULL;

    say(s, "354 tokend: send the message, end with <CR><LF>.<CR><LF>");
    s->in_mail = s->has_rcpt = false;
    if (graph_spool(s, &msg, e) < 0)
        return -1;
    if (msg && relay_graph_recipients(msg, s->rcpts, &reply) < 0)
        return say(s, reply);
    if (!msg || msg->len > GRAPH_MIME_MAX)
        return say(s, "552 5.3.4 tokend: the message is larger than Microsoft Graph takes: at "
                      "most " G_STRINGIFY(GRAPH_MIME_MAX) " bytes (4 MB a request, base64)");
    reply = relay_graph_submit(s->graph, s->sender, msg);
    return say(s, reply);
}

/* MAIL FROM or RCPT TO as upstream gets it, with the parameters of the
 * extensions upstream offers (tokend/smtpext.h), or NULL when the client
 * has been answered. */
static char *path_command(struct smtp *s, bool rcpt, const char *address, const char *params)
{
    g_autofree char *passed = NULL, *reply = NULL;
    bool utf8 = false;

    if (smtpext_params(params, rcpt, s->offered, &passed, &reply, &utf8) < 0)
        return say(s, reply), NULL;
    if (!rcpt)
        s->utf8 = utf8;
    if (smtpext_non_ascii(address) && !s->utf8)
        return say(s, "553 5.6.7 tokend: a non-ASCII address needs MAIL FROM with SMTPUTF8"), NULL;
    return g_strdup_printf("%s:<%s>%s", rcpt ? "RCPT TO" : "MAIL FROM", address, passed);
}

static int cmd_mail(struct smtp *s, const char *arg, struct tokend_error *e)
{
    g_autofree char *address = NULL, *params = NULL, *cmd = NULL, *safe = NULL, *line = NULL;
    const Account *a = s->account;
    int number = 0;

    if (!s->greeted || s->in_mail)
        return bad(s, "503 5.5.1 tokend: MAIL comes after EHLO, once per message");
    if (relaycmd_path(arg, "FROM:", &address, &params) < 0)
        return bad(s, "501 5.5.4 tokend: syntax: MAIL FROM:<address>");
    if (!a && !(a = default_account(s)))
        return 0;
    safe = relay_safe_name(address);
    if (!relay_may_send_as(a, address)) {
        line = g_strdup_printf("550 5.7.1 tokend: %s may not send as <%s>: neither its username "
                               "nor in its send_as",
                               a->name, safe);
        return say(s, line);
    }
    if (!s->account && (login_upstream(s, a, e) < 0 || !s->account))
        return 0;
    if (!(cmd = path_command(s, false, address, params)))
        return 0;
    if (s->graph)
        return graph_mail(s, address, params);
    if (forward(s, cmd, &number, e) < 0)
        return -1;
    s->in_mail = number / 100 == 2;
    return 0;
}

static int cmd_rcpt(struct smtp *s, const char *arg, struct tokend_error *e)
{
    g_autofree char *address = NULL, *params = NULL, *cmd = NULL;
    int number = 0;

    if (!s->in_mail)
        return bad(s, "503 5.5.1 tokend: RCPT comes after MAIL");
    if (relaycmd_path(arg, "TO:", &address, &params) < 0 || !*address)
        return bad(s, "501 5.5.4 tokend: syntax: RCPT TO:<address>");
    if (!(cmd = path_command(s, true, address, params)))
        return 0;
    if (s->graph)
        return graph_rcpt(s, address);
    if (forward(s, cmd, &number, e) < 0)
        return -1;
    s->has_rcpt = s->has_rcpt || number / 100 == 2;
    return 0;
}

static int upstream_piece(struct smtp *s, const char *data, size_t len, void *ctx,
                          struct tokend_error *e)
{
    (void)ctx;
    return mailconn_write(s->up, data, len, deadline_of(s), e) < 0 ? upstream_lost(s, e) : 0;
}

/* The message, from the client's buffer to upstream as it comes, up to
 * and with the "." line.  A client that stalls or goes away leaves
 * upstream without the end of the data: nothing is sent. */
static int stream_data(struct smtp *s, struct tokend_error *e)
{
    return read_data(s, upstream_piece, NULL, e);
}

static int cmd_data(struct smtp *s, const char *arg, struct tokend_error *e)
{
    g_auto(MailReply) r = {0};
    int number = 0;

    if (!s->in_mail || !s->has_rcpt)
        return bad(s, s->in_mail ? "554 5.5.1 tokend: no valid recipients"
                                 : "503 5.5.1 tokend: DATA comes after MAIL and RCPT");
    if (*arg)
        return bad(s, "501 5.5.4 tokend: DATA takes no argument");
    if (s->graph)
        return graph_data(s, e);
    if (forward(s, "DATA", &number, e) < 0)
        return -1;
    if (number != 354)
        return 0;
    s->in_mail = s->has_rcpt = false;
    if (stream_data(s, e) < 0)
        return -1;
    if (mailconn_read(s->up, &r, g_get_monotonic_time() + DATA_DONE_TIMEOUT_US, e) < 0)
        return upstream_lost(s, e);
    return pass_reply(s, &r);
}

/* Why a chunk cannot go upstream now, or NULL. */
static const char *bdat_refusal(const struct smtp *s)
{
    if (!s->in_mail)
        return "503 5.5.1 tokend: BDAT comes after MAIL and RCPT";
    if (!s->has_rcpt)
        return "554 5.5.1 tokend: no valid recipients";
    if (s->graph)
        return "502 5.5.1 tokend: BDAT is not offered when sending through Microsoft Graph; "
               "send with DATA";
    if (!(s->offered & SMTPEXT_CHUNKING))
        return "502 5.5.1 tokend: the upstream server does not offer CHUNKING; send with DATA";
    return NULL;
}

/* BDAT SIZE [LAST] (RFC 3030): the chunk follows the command unasked, so
 * a refused one is read and dropped; an accepted one is streamed. */
static int cmd_bdat(struct smtp *s, const char *arg, struct tokend_error *e)
{
    g_auto(MailReply) r = {0};
    const char *refused = bdat_refusal(s);
    guint64 size;
    bool last;

    if (smtpext_bdat(arg, &size, &last) < 0)
        return bad(s, "501 5.5.4 tokend: syntax: BDAT SIZE [LAST]");
    if (refused) {
        if (relay_io_copy(s->io, NULL, size, e) < 0)
            return upstream_lost(s, e);
        return bad(s, refused); /* a transaction upstream stays open: RSET ends it */
    }
    if (relay_smtp_bdat(s->up, s->io, size, last, &r, e) < 0) {
        error_prefix(e, "the message was not sent");
        return upstream_lost(s, e);
    }
    if (last || r.number / 100 != 2)
        s->in_mail = s->has_rcpt = false;
    return pass_reply(s, &r);
}

static int cmd_rset(struct smtp *s, struct tokend_error *e)
{
    s->in_mail = s->has_rcpt = false;
    if (s->graph)
        g_ptr_array_set_size(s->rcpts, 0);
    if (s->up)
        return forward(s, "RSET", NULL, e);
    return say(s, "250 2.0.0 tokend: reset");
}

static int command(struct smtp *s, const GString *line, struct tokend_error *e)
{
    enum relaycmd_smtp verb;
    const char *arg;

    if (relaycmd_smtp_parse(line->str, line->len, &verb, &arg) < 0)
        return bad(s, "500 5.5.2 tokend: a command is printable ASCII");
    /* Never the line itself: AUTH PLAIN's carries a password. */
    log_debug("relay: C: %.*s", (int)strcspn(line->str, " "), line->str);
    switch (verb) {
    case RELAYCMD_SMTP_EHLO:
    case RELAYCMD_SMTP_HELO:
        if (s->up && s->in_mail && cmd_rset(s, e) < 0)
            return -1;
        return ehlo(s, verb == RELAYCMD_SMTP_EHLO, arg);
    case RELAYCMD_SMTP_AUTH:
        return cmd_auth(s, arg, e);
    case RELAYCMD_SMTP_MAIL:
        return cmd_mail(s, arg, e);
    case RELAYCMD_SMTP_RCPT:
        return cmd_rcpt(s, arg, e);
    case RELAYCMD_SMTP_DATA:
        return cmd_data(s, arg, e);
    case RELAYCMD_SMTP_RSET:
        return cmd_rset(s, e);
    case RELAYCMD_SMTP_NOOP:
        return say(s, "250 2.0.0 tokend: ok");
    case RELAYCMD_SMTP_QUIT:
        s->quit = true;
        return say(s, "221 2.0.0 tokend: bye");
    case RELAYCMD_SMTP_VRFY:
        return say(s, "252 2.5.0 tokend: cannot VRFY");
    case RELAYCMD_SMTP_HELP:
        return say(s, "214 2.0.0 tokend relay: see tokend(1)");
    case RELAYCMD_SMTP_STARTTLS:
        return cmd_starttls(s, arg);
    case RELAYCMD_SMTP_BDAT:
        return cmd_bdat(s, arg, e);
    case RELAYCMD_SMTP_UNKNOWN:
        return bad(s, "500 5.5.2 tokend: command not recognized");
    }
    return 0;
}

/* Reads and answers commands until QUIT, the end of the stream, a
 * timeout or too many errors. */
static int serve(struct smtp *s, GString *line, struct tokend_error *e)
{
    while (!s->quit) {
        enum relay_io_result r = relay_io_line(s->io, line, RELAY_LINE_MAX, e);

        if (r == RELAY_IO_EOF)
            return 0;
        if (r == RELAY_IO_FAILED) {
            g_autofree char *text = g_strdup_printf("421 4.4.2 tokend: %s; closing", e->message);
            say(s, text);
            return -1;
        }
        if (r == RELAY_IO_TOO_LONG)
            bad(s, "500 5.5.2 tokend: line too long");
        else if (command(s, line, e) < 0)
            return -1;
        if (s->errors >= MAX_ERRORS) {
            say(s, "421 4.7.0 tokend: too many bad commands; closing");
            return 0;
        }
    }
    return 0;
}

int relay_smtp_session(const struct relay_ctx *ctx, struct tokend_error *e)
{
    g_autofree RelayIO *io = g_new0(RelayIO, 1);
    g_autoptr(GString) line = g_string_new(NULL);
    struct smtp s = {.ctx = ctx, .io = io, .rcpts = g_ptr_array_new_with_free_func(g_free)};
    int rc;

    relay_io_init(io, ctx);
    if (ctx->implicit_tls && relay_tls_start(io, ctx, e) < 0)
        return -1;
    say(&s, "220 localhost ESMTP tokend relay");
    rc = serve(&s, line, e);
    if (s.up) {
        mailconn_logout(s.up);
        mailconn_free(s.up);
    }
    relay_graph_free(s.graph);
    g_free(s.sender);
    g_ptr_array_unref(s.rcpts);
    relay_io_free_tls(io);
    return rc;
}
