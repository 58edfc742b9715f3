/* The relay's IMAP and POP3 side: a client that logs in with a password
 * (IMAP LOGIN, POP3 USER and PASS) chooses the account by its login name;
 * the relay logs in upstream with the account's token, answers the login
 * and then relays bytes both ways (splice.c).  On TCP it offers STARTTLS
 * (IMAP) and STLS (POP3) first (relay_tls.c).  The password is ignored
 * for allowed local peers; a client on another machine must be under TLS
 * and give the account's relay password.  Token trouble is a temporary
 * failure (IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP]); a login name that
 * names no account is an authentication failure. */

#include <string.h>

#include "relay_internal.h"
#include "tokend/log.h"
#include "tokend/relaycmd.h"

#define MAX_ERRORS 10

struct mailbox {
    const struct relay_ctx *ctx;
    RelayIO *io;
    char *user; /* POP3: given with USER */
    MailConn *up;
    bool quit;
    int errors;
};

static enum mail_proto mail_proto(const struct mailbox *m)
{
    return m->ctx->proto == RELAY_PROTO_POP3 ? MAIL_PROTO_POP3 : MAIL_PROTO_IMAP;
}

static int say(struct mailbox *m, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static int say(struct mailbox *m, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (relay_io_say(m->io, "%s", text) < 0)
        m->quit = true;
    return 0;
}

/* The login refused before upstream is asked: unknown account, or (another
 * machine) a password that does not match. */
static int refuse_login(struct mailbox *m, const char *tag, const char *why)
{
    m->errors++;
    return mail_proto(m) == MAIL_PROTO_POP3
               ? say(m, "-ERR [AUTH] tokend: %s", why)
               : say(m, "%s NO [AUTHENTICATIONFAILED] tokend: %s", tag, why);
}

/* The login: 0 and m->up, or 0 with the client told why (tag: IMAP's). */
static int login(struct mailbox *m, const char *tag, const char *user, const char *password)
{
    struct tokend_error le = TOKEND_ERROR_INIT;
    g_autofree char *safe = relay_safe_name(user);
    g_autofree char *why = NULL;
    bool pop3 = mail_proto(m) == MAIL_PROTO_POP3;
    const Account *a = relay_find_account(m->ctx->cfg, user);

    if (!a) {
        why = g_strdup_printf("no account \"%s\" in %s", safe, m->ctx->cfg->path);
        return refuse_login(m, tag, why);
    }
    if (relay_password_check(m->ctx, a, password, &le) < 0) {
        log_warn("relay: %s", le.message);
        why = g_strdup(le.message);
        error_clear(&le);
        return refuse_login(m, tag, why);
    }
    if (!(m->up = relay_upstream_login(a, mail_proto(m), &le))) {
        why = g_strdup_printf("tokend: %s: %s%s%s", a->name, le.message, le.hint ? "; " : "",
                              le.hint ? le.hint : "");
        log_warn("%s: %s", a->name, le.message);
        error_clear(&le);
        return pop3 ? say(m, "-ERR [SYS/TEMP] %s", why)
                    : say(m, "%s NO [UNAVAILABLE] %s", tag, why);
    }
    return pop3 ? say(m, "+OK tokend: %s logged in", a->name)
                : say(m, "%s OK tokend: %s logged in", tag, a->name);
}

/* STARTTLS or STLS, answered with go: a failed handshake ends the session. */
static int start_tls(struct mailbox *m, const char *go)
{
    m->quit = !relay_tls_go(m->io, m->ctx, go);
    return 0;
}

static char *imap_capabilities(const struct mailbox *m)
{
    return g_strdup_printf("IMAP4rev1%s%s", relay_tls_offered(m->io, m->ctx) ? " STARTTLS" : "",
                           relay_tls_login_allowed(m->io, m->ctx) ? "" : " LOGINDISABLED");
}

static int imap_command(struct mailbox *m, const GString *line)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *tag = NULL, *cmd = NULL, *caps = imap_capabilities(m);

    if (relaycmd_imap_parse(line->str, line->len, &tag, &cmd, args, 2) < 0) {
        m->errors++;
        return say(m, "* BAD tokend: not a command this relay understands before login "
                      "(printable ASCII, atoms and quoted strings, no literals)");
    }
    log_debug("relay: C: %s %s", tag, cmd);
    if (strcmp(cmd, "CAPABILITY") == 0)
        return say(m, "* CAPABILITY %s\r\n%s OK tokend: capabilities", caps, tag);
    if (strcmp(cmd, "NOOP") == 0)
        return say(m, "%s OK tokend: nothing done", tag);
    if (strcmp(cmd, "LOGOUT") == 0) {
        m->quit = true;
        return say(m, "* BYE tokend: logging out\r\n%s OK tokend: bye", tag);
    }
    if (strcmp(cmd, "STARTTLS") == 0 && relay_tls_offered(m->io, m->ctx)) {
        g_autofree char *go = g_strdup_printf("%s OK tokend: begin TLS now", tag);
        return start_tls(m, go);
    }
    if (strcmp(cmd, "LOGIN") == 0 && args->len == 2 && !relay_tls_login_allowed(m->io, m->ctx))
        return m->errors++, say(m, "%s NO [PRIVACYREQUIRED] tokend: STARTTLS first", tag);
    if (strcmp(cmd, "LOGIN") == 0 && args->len == 2) {
        int rc = login(m, tag, g_ptr_array_index(args, 0), g_ptr_array_index(args, 1));
        explicit_bzero(g_ptr_array_index(args, 1), strlen(g_ptr_array_index(args, 1)));
        return rc;
    }
    m->errors++;
    return say(m, "%s NO tokend: only CAPABILITY, NOOP, %sLOGIN and LOGOUT before login", tag,
               relay_tls_offered(m->io, m->ctx) ? "STARTTLS, " : "");
}

static int pop3_command(struct mailbox *m, const GString *line)
{
    g_autofree char *cmd = NULL;
    const char *arg;

    if (relaycmd_pop3_parse(line->str, line->len, &cmd, &arg) < 0) {
        m->errors++;
        return say(m, "-ERR tokend: a command is printable ASCII");
    }
    log_debug("relay: C: %s", cmd);
    if (strcmp(cmd, "CAPA") == 0)
        return say(m, "+OK tokend: capabilities\r\nUSER\r\n%s.",
                   relay_tls_offered(m->io, m->ctx) ? "STLS\r\n" : "");
    if (strcmp(cmd, "QUIT") == 0) {
        m->quit = true;
        return say(m, "+OK tokend: bye");
    }
    if (strcmp(cmd, "STLS") == 0 && relay_tls_offered(m->io, m->ctx))
        return start_tls(m, "+OK tokend: begin TLS now");
    if ((strcmp(cmd, "USER") == 0 || strcmp(cmd, "PASS") == 0) &&
        !relay_tls_login_allowed(m->io, m->ctx))
        return m->errors++, say(m, "-ERR tokend: STLS first");
    if (strcmp(cmd, "USER") == 0 && *arg) {
        g_free(m->user);
        m->user = g_strdup(arg);
        return say(m, m->ctx->remote ? "+OK tokend: the password, please"
                                     : "+OK tokend: the password is not checked here");
    }
    if (strcmp(cmd, "PASS") == 0 && m->user)
        return login(m, NULL, m->user, arg);
    m->errors++;
    return say(m, "-ERR tokend: only CAPA, %sUSER, PASS and QUIT before login",
               relay_tls_offered(m->io, m->ctx) ? "STLS, " : "");
}

/* What the client sent after its login, already read: upstream's. */
static int pass_buffered(struct mailbox *m, struct tokend_error *e)
{
    const char *data = m->io->buf + m->io->off;
    size_t n = m->io->len - m->io->off;
    gint64 deadline = g_get_monotonic_time() + (gint64)m->ctx->timeout_s * G_USEC_PER_SEC;

    relay_io_consume(m->io, n);
    return n ? mailconn_write(m->up, data, n, deadline, e) : 0;
}

static int serve(struct mailbox *m, GString *line, struct tokend_error *e)
{
    bool pop3 = mail_proto(m) == MAIL_PROTO_POP3;

    while (!m->quit && !m->up && m->errors < MAX_ERRORS) {
        enum relay_io_result r = relay_io_line(m->io, line, RELAY_LINE_MAX, e);

        if (r == RELAY_IO_EOF)
            return 0;
        if (r == RELAY_IO_FAILED) {
            if (pop3)
                say(m, "-ERR [SYS/TEMP] %s", e->message);
            else
                say(m, "* BYE [UNAVAILABLE] %s", e->message);
            return -1;
        }
        if (r == RELAY_IO_TOO_LONG) {
            m->errors++;
            say(m, pop3 ? "-ERR tokend: line too long" : "* BAD tokend: line too long");
        } else {
            pop3 ? pop3_command(m, line) : imap_command(m, line);
            explicit_bzero(line->str, line->len); /* a password, perhaps */
        }
    }
    if (!m->up)
        return 0;
    if (pass_buffered(m, e) < 0)
        return -1;
    return relay_io_splice(m->io, m->up, e);
}

int relay_mailbox_session(const struct relay_ctx *ctx, struct tokend_error *e)
{
    g_autofree RelayIO *io = g_new0(RelayIO, 1);
    g_autoptr(GString) line = g_string_new(NULL);
    struct mailbox m = {.ctx = ctx, .io = io};
    int rc;

    relay_io_init(io, ctx);
    if (ctx->implicit_tls && relay_tls_start(io, ctx, e) < 0)
        return -1;
    if (mail_proto(&m) == MAIL_PROTO_POP3) {
        say(&m, "+OK tokend relay ready");
    } else {
        g_autofree char *caps = imap_capabilities(&m);
        say(&m, "* OK [CAPABILITY %s] tokend relay ready", caps);
    }
    rc = serve(&m, line, e);
    g_free(m.user);
    mailconn_free(m.up);
    relay_io_free_tls(io);
    return rc;
}
