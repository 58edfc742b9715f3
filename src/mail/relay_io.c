/* The relay's client side: lines and raw data through a fixed buffer, with
 * a timeout on every wait; and the upstream login the sessions share. */

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "relay_internal.h"
#include "tokend/log.h"
#include "tokend/mailconn.h"
#include "tokend/sandbox.h"
#include "tokend/sasl.h"
#include "tokend/splice.h"
#include "tokend/tunnel.h"

void relay_io_init(RelayIO *io, const struct relay_ctx *ctx)
{
    io->in = ctx->in;
    io->out = ctx->out;
    io->timeout_s = ctx->timeout_s;
    io->off = io->len = 0;
    io->eof = false;
    io->tls = NULL;
}

static int wait_for(int fd, short events, int timeout_s)
{
    struct pollfd p = {.fd = fd, .events = events};
    int r;

    do
        r = poll(&p, 1, timeout_s * 1000);
    while (r < 0 && errno == EINTR);
    return r;
}

/* More bytes into the buffer: 1, 0 at end of stream, -1 timeout/error. */
static int fill(RelayIO *io, struct tokend_error *e)
{
    ssize_t n;

    if (io->off > 0) {
        memmove(io->buf, io->buf + io->off, io->len - io->off);
        io->len -= io->off;
        io->off = 0;
    }
    if (io->eof || io->len == RELAY_IO_BUF)
        return io->eof ? 0 : 1;
    if (io->tls) {
        n = netconn_read_some(io->tls, io->buf + io->len, RELAY_IO_BUF - io->len,
                              g_get_monotonic_time() + (gint64)io->timeout_s * G_USEC_PER_SEC, e);
        if (n < 0)
            return -1;
        io->eof = n == 0;
        io->len += (size_t)n;
        return n > 0;
    }
    if (wait_for(io->in, POLLIN, io->timeout_s) == 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "the client sent nothing for %d seconds",
                         io->timeout_s);
    do
        n = read(io->in, io->buf + io->len, RELAY_IO_BUF - io->len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "reading from the client: %s", g_strerror(errno));
    io->eof = n == 0;
    io->len += (size_t)n;
    return n > 0;
}

/* Skips to the end of an overlong line. */
static enum relay_io_result skip_line(RelayIO *io, struct tokend_error *e)
{
    for (;;) {
        char *lf = memchr(io->buf + io->off, '\n', io->len - io->off);
        int r;
        if (lf) {
            io->off = (size_t)(lf + 1 - io->buf);
            return RELAY_IO_TOO_LONG;
        }
        io->off = io->len;
        if ((r = fill(io, e)) <= 0)
            return r < 0 ? RELAY_IO_FAILED : RELAY_IO_EOF;
    }
}

enum relay_io_result relay_io_line(RelayIO *io, GString *line, size_t max, struct tokend_error *e)
{
    for (;;) {
        char *start = io->buf + io->off;
        char *lf = memchr(start, '\n', io->len - io->off);
        int r;

        if (lf) {
            size_t n = (size_t)(lf - start);
            g_string_truncate(line, 0);
            if (n > max)
                return io->off = (size_t)(lf + 1 - io->buf), RELAY_IO_TOO_LONG;
            g_string_append_len(line, start, (gssize)(n > 0 && lf[-1] == '\r' ? n - 1 : n));
            io->off += n + 1;
            return RELAY_IO_LINE;
        }
        if (io->len - io->off > max)
            return skip_line(io, e);
        if ((r = fill(io, e)) < 0)
            return RELAY_IO_FAILED;
        if (r == 0)
            return RELAY_IO_EOF;
    }
}

ssize_t relay_io_peek(RelayIO *io, const char **data, struct tokend_error *e)
{
    if (io->off == io->len) {
        io->off = io->len = 0;
        if (fill(io, e) < 0)
            return -1;
    }
    *data = io->buf + io->off;
    return (ssize_t)(io->len - io->off);
}

void relay_io_consume(RelayIO *io, size_t n)
{
    io->off += MIN(n, io->len - io->off);
}

int relay_io_copy(RelayIO *io, MailConn *up, guint64 n, struct tokend_error *e)
{
    while (n > 0) {
        const char *data;
        ssize_t got = relay_io_peek(io, &data, e);
        size_t take;

        if (got <= 0)
            return got == 0 ? error_set(e, TOKEND_EX_TEMPFAIL,
                                        "the client went away in the middle of a message")
                            : -1;
        take = (size_t)MIN((guint64)got, n);
        if (up &&
            mailconn_write(up, data, take,
                           g_get_monotonic_time() + (gint64)io->timeout_s * G_USEC_PER_SEC, e) < 0)
            return -1;
        relay_io_consume(io, take);
        n -= take;
    }
    return 0;
}

int relay_io_write(RelayIO *io, const char *data, size_t len)
{
    if (io->tls) {
        struct tokend_error e = TOKEND_ERROR_INIT;
        int rc = netconn_write(io->tls, data, len,
                               g_get_monotonic_time() + (gint64)io->timeout_s * G_USEC_PER_SEC, &e);
        error_clear(&e);
        return rc;
    }
    while (len > 0) {
        ssize_t n = write(io->out, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && wait_for(io->out, POLLOUT, io->timeout_s) > 0)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int relay_io_say(RelayIO *io, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_debug("relay: L: %s", text);
    line = g_strconcat(text, "\r\n", NULL);
    return relay_io_write(io, line, strlen(line));
}

void relay_io_free_tls(RelayIO *io)
{
    g_clear_pointer(&io->tls, netconn_free);
}

int relay_io_splice(RelayIO *io, MailConn *c, struct tokend_error *e)
{
    if (io->tls)
        return splice_run_tls(mailconn_netconn(c), io->tls, e);
    return splice_run(mailconn_netconn(c), io->in, io->out, e);
}

char *relay_safe_name(const char *name)
{
    char *s = g_strndup(name, 128);

    return g_strcanon(s, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "!#$%&'*+-./=?^_`{|}~@", '?');
}

struct upstream {
    const Account *a;
    struct mail_target t;
    enum sasl_mech mech;
};

static void *upstream_login(void *ctx, const SecStr *token, enum sasl_result *result,
                            struct tokend_error *e)
{
    struct upstream *u = ctx;
    gint64 deadline = g_get_monotonic_time() + RELAY_LOGIN_TIMEOUT_US;
    g_autoptr(MailConn) c = mailconn_open(&u->t, deadline, e);

    *result = SASL_RESULT_FAILED;
    if (!c || sasl_login(c, u->mech, u->a->username, token, deadline, result, e) < 0)
        return NULL;
    return g_steal_pointer(&c);
}

static int upstream_of(const Account *a, enum mail_proto proto, struct upstream *u,
                       struct tokend_error *e)
{
    bool smtp = proto == MAIL_PROTO_SMTP, pop3 = proto == MAIL_PROTO_POP3;
    const char *tls_key = smtp ? "smtp_tls" : "tunnel_tls";
    int tls = mail_tls_from_name(smtp ? a->smtp_tls : a->tunnel_tls);
    int mech = sasl_mech_from_name(a->tunnel_mech);

    u->a = a;
    u->t.proto = proto;
    u->t.host = smtp ? a->smtp_host : pop3 ? a->pop_host : a->imap_host;
    u->t.port = smtp ? a->smtp_port : pop3 ? a->pop_port : a->imap_port;
    u->t.ca_file = a->ca_file;
    u->t.tls_key = tls_key;
    if (tls < 0 || mech < 0)
        return error_set(e, TOKEND_EX_CONFIG, "%s must be auto, %s",
                         tls < 0 ? tls_key : "tunnel_mech",
                         tls < 0 ? "implicit or starttls" : "xoauth2 or oauthbearer");
    u->t.tls = tls;
    u->mech = mech;
    if (!u->t.host)
        return error_set(e, TOKEND_EX_CONFIG, "no %s server: set %s in [account %s]",
                         mail_proto_name(proto),
                         smtp   ? "smtp_host"
                         : pop3 ? "pop_host"
                                : "imap_host",
                         a->name);
    if (!a->username)
        return error_set(e, TOKEND_EX_CONFIG, "the relay needs username in [account %s]", a->name);
    return 0;
}

static const struct sandbox_policy relay_policy = {.who = "relay", .extra_syscalls = NULL};

MailConn *relay_upstream_login(const Account *a, enum mail_proto proto, struct tokend_error *e)
{
    struct upstream u = {0};
    MailConn *c;

    if (upstream_of(a, proto, &u, e) < 0)
        return NULL;
    if (!(c = tunnel_login_retrying(a, upstream_login, &u, e)))
        return NULL;
    log_verbose("%s: logged in to %s port %d", a->name, u.t.host, u.t.port);
    /* Logged in, with nothing more to read from disk: the login's secrets
     * go, and the process enters the sandbox before it parses another
     * byte from the client or the server. */
    mailconn_forget_secrets(c);
    if (sandbox_enter(&relay_policy, e) < 0) {
        mailconn_free(c);
        return NULL;
    }
    return c;
}
