/* The tunnel's ends: the server session (mailconn.c) and its login
 * (sasl.c) on one side, the mail client's greeting and refusals on the
 * other, and the relay between them (splice.c). */

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "tokend/sandbox.h"
#include "tokend/splice.h"
#include "tokend/tunnel.h"

#define GREET_TIMEOUT_US (30 * G_USEC_PER_SEC)

struct tunnel {
    struct tunnel_target t;
    MailConn *conn;
};

int tunnel_mech_from_name(const char *name)
{
    return sasl_mech_from_name(name);
}

int tunnel_tls_from_name(const char *name)
{
    return mail_tls_from_name(name);
}

static enum mail_proto mail_proto_of(enum tunnel_proto p)
{
    switch (p) {
    case TUNNEL_PROTO_IMAP:
        return MAIL_PROTO_IMAP;
    case TUNNEL_PROTO_POP3:
        return MAIL_PROTO_POP3;
    }
    return MAIL_PROTO_IMAP;
}

Tunnel *tunnel_open(const struct tunnel_target *target, gint64 deadline, struct tokend_error *e)
{
    struct mail_target mt = {
        .proto = mail_proto_of(target->proto),
        .host = target->host,
        .port = target->port,
        .tls = target->tls,
        .ca_file = target->ca_file,
        .tls_key = "tunnel_tls",
    };
    g_autoptr(Tunnel) t = g_new0(Tunnel, 1);

    t->t = *target;
    if (!(t->conn = mailconn_open(&mt, deadline, e)))
        return NULL;
    return g_steal_pointer(&t);
}

int tunnel_login(Tunnel *t, const SecStr *token, gint64 deadline, enum sasl_result *result,
                 struct tokend_error *e)
{
    return sasl_login(t->conn, t->t.mech, t->t.user, token, deadline, result, e);
}

static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

/* What an authenticated client may be told it can do: the server's
 * capabilities after login, well-formed atoms only (mailreply.c), none
 * that belongs before login or echoes what tokend sent. */
static bool preauth_capability(const MailConn *c, const char *atom)
{
    return g_ascii_strncasecmp(atom, "AUTH=", 5) != 0 &&
           g_ascii_strcasecmp(atom, "STARTTLS") != 0 &&
           g_ascii_strcasecmp(atom, "LOGINDISABLED") != 0 && !mailconn_mentions_secret(c, atom);
}

static char *preauth_line(Tunnel *t, struct tokend_error *e)
{
    gint64 deadline = g_get_monotonic_time() + GREET_TIMEOUT_US;
    const GPtrArray *caps = mailconn_capabilities(t->conn, deadline, e);
    g_autoptr(GString) line = g_string_new("* PREAUTH [CAPABILITY");
    g_autofree char *user = g_strdup(t->t.user);

    if (!caps)
        return NULL;
    for (guint i = 0; i < caps->len; i++)
        if (preauth_capability(t->conn, g_ptr_array_index(caps, i)))
            g_string_append_printf(line, " %s", (const char *)g_ptr_array_index(caps, i));
    g_strcanon(user, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "!#$%&'*+-./=?^_`{|}~@", '?');
    g_string_append_printf(line, "] tokend: logged in as %s\r\n", user);
    return g_string_free(g_steal_pointer(&line), FALSE);
}

int tunnel_greet(Tunnel *t, int out, struct tokend_error *e)
{
    g_autofree char *text = NULL;

    if (t->t.proto == TUNNEL_PROTO_POP3)
        text = g_strdup("+OK tokend: logged in\r\n");
    else if (!(text = preauth_line(t, e)))
        return -1;
    if (write_all(out, text, strlen(text)) < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "the mail client went away");
    return 0;
}

void tunnel_refuse(enum tunnel_proto p, int out, int status, const char *line)
{
    g_autofree char *text = NULL;

    if (p == TUNNEL_PROTO_POP3)
        text = g_strdup_printf("-ERR %s\r\n", line);
    else
        text = g_strdup_printf("* BYE [%s] %s\r\n",
                               status == TOKEND_EX_NOPERM ? "AUTHENTICATIONFAILED" : "UNAVAILABLE",
                               line);
    (void)write_all(out, text, strlen(text));
}

int tunnel_relay(Tunnel *t, int in, int out, struct tokend_error *e)
{
    static const struct sandbox_policy policy = {.who = "tunnel"};

    /* From here on only bytes move: no secret in memory, no files. */
    mailconn_forget_secrets(t->conn);
    if (sandbox_enter(&policy, e) < 0)
        return -1;
    return splice_run(mailconn_netconn(t->conn), in, out, e);
}

void tunnel_free(Tunnel *t)
{
    if (!t)
        return;
    mailconn_free(t->conn);
    g_free(t);
}
