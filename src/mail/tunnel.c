/* The tunnel's login: IMAP (RFC 9051/3501 AUTHENTICATE with SASL-IR, RFC
 * 4959) and POP3 (RFC 5034 AUTH), with XOAUTH2 or OAUTHBEARER (RFC 7628),
 * after implicit TLS or STARTTLS/STLS. */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tokend/log.h"
#include "tokend/netconn.h"
#include "tokend/splice.h"
#include "tokend/tokenformat.h"
#include "tokend/tunnel.h"

#define POP3_MAX_COMMAND 255 /* RFC 5034 §4: longer initial responses wait for "+" */

struct tunnel {
    struct tunnel_target t;
    NetConn *conn;
    GString *caps; /* IMAP: the capability atoms; POP3: the CAPA lines */
    bool caps_known;
    unsigned tag;
};

static const char *const mech_names[] = {
    [TUNNEL_MECH_AUTO] = "auto",
    [TUNNEL_MECH_XOAUTH2] = "xoauth2",
    [TUNNEL_MECH_OAUTHBEARER] = "oauthbearer",
};

static const char *const tls_names[] = {
    [TUNNEL_TLS_AUTO] = "auto",
    [TUNNEL_TLS_IMPLICIT] = "implicit",
    [TUNNEL_TLS_STARTTLS] = "starttls",
};

static int name_index(const char *const *names, size_t n, const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (g_ascii_strcasecmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

int tunnel_mech_from_name(const char *name)
{
    return name_index(mech_names, G_N_ELEMENTS(mech_names), name);
}

int tunnel_tls_from_name(const char *name)
{
    return name_index(tls_names, G_N_ELEMENTS(tls_names), name);
}

static bool implicit_tls(const struct tunnel_target *t)
{
    if (t->tls == TUNNEL_TLS_AUTO)
        return t->port == 993 || t->port == 995;
    return t->tls == TUNNEL_TLS_IMPLICIT;
}

/* A word of the capability list, case-insensitively. */
static bool has_word(const GString *list, const char *word)
{
    g_auto(GStrv) words = g_strsplit_set(list->str, " \r\n", -1);

    for (char **w = words; *w; w++)
        if (g_ascii_strcasecmp(*w, word) == 0)
            return true;
    return false;
}

static bool is_prefix(const char *line, const char *prefix)
{
    return g_ascii_strncasecmp(line, prefix, strlen(prefix)) == 0;
}

/* The server's words for a message: printable, bounded, one line. */
static char *server_words(const char *line)
{
    return error_one_line(line, 300);
}

/* IMAP ---------------------------------------------------------------- */

/* "[CAPABILITY a b]" in a status response. */
static void imap_take_code_caps(Tunnel *t, const char *line)
{
    const char *p = strstr(line, "[CAPABILITY ");
    const char *end;

    if (!p || !(end = strchr(p, ']')))
        return;
    p += strlen("[CAPABILITY ");
    g_string_assign(t->caps, "");
    g_string_append_len(t->caps, p, end - p);
    t->caps_known = true;
}

static bool imap_untagged(Tunnel *t, const char *line)
{
    if (!is_prefix(line, "* "))
        return false;
    if (is_prefix(line, "* CAPABILITY ")) {
        g_string_assign(t->caps, line + strlen("* CAPABILITY "));
        t->caps_known = true;
    }
    return true;
}

/* Reads up to the tagged answer to tag; returns it in line. */
static int imap_tagged(Tunnel *t, const char *tag, GString *line, gint64 deadline,
                       struct tokend_error *e)
{
    size_t n = strlen(tag);

    for (;;) {
        if (netconn_read_line(t->conn, line, deadline, e) < 0)
            return -1;
        if (imap_untagged(t, line->str))
            continue;
        if (strncmp(line->str, tag, n) == 0 && line->str[n] == ' ')
            return 0;
        g_autofree char *w = server_words(line->str);
        return error_set(e, TOKEND_EX_TEMPFAIL, "unexpected answer from %s: %s", t->t.host, w);
    }
}

static int imap_simple(Tunnel *t, const char *command, gint64 deadline, struct tokend_error *e)
{
    g_autofree char *tag = g_strdup_printf("t%u", ++t->tag);
    g_autofree char *text = g_strdup_printf("%s %s\r\n", tag, command);
    g_autoptr(GString) line = g_string_new(NULL);

    if (netconn_write(t->conn, text, strlen(text), deadline, e) < 0 ||
        imap_tagged(t, tag, line, deadline, e) < 0)
        return -1;
    if (!is_prefix(line->str + strlen(tag) + 1, "OK")) {
        g_autofree char *w = server_words(line->str);
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s refused %s: %s", t->t.host, command, w);
    }
    imap_take_code_caps(t, line->str);
    return 0;
}

static int imap_greeting(Tunnel *t, gint64 deadline, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_new(NULL);
    g_autofree char *w = NULL;

    if (netconn_read_line(t->conn, line, deadline, e) < 0)
        return -1;
    if (is_prefix(line->str, "* OK")) {
        imap_take_code_caps(t, line->str);
        return 0;
    }
    w = server_words(line->str);
    if (is_prefix(line->str, "* BYE"))
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s turned the connection away: %s", t->t.host, w);
    return error_set(e, TOKEND_EX_TEMPFAIL, "%s greeted with something else than IMAP: %s",
                     t->t.host, w);
}

/* The server offers no way to TLS (command: STARTTLS, STLS): only a
 * loopback server in tls = auto is spoken to in plain text. */
static int without_tls(const Tunnel *t, const char *command, int implicit_port,
                       struct tokend_error *e)
{
    if (netconn_is_loopback(t->conn) && t->t.tls == TUNNEL_TLS_AUTO)
        return 0;
    error_set(e, TOKEND_EX_CONFIG, "%s port %d offers no %s; tokend sends no token in plain text",
              t->t.host, t->t.port, command);
    error_set_hint(e, "use port %d (implicit TLS)", implicit_port);
    return -1;
}

static int imap_secure(Tunnel *t, gint64 deadline, struct tokend_error *e)
{
    if (!t->caps_known && imap_simple(t, "CAPABILITY", deadline, e) < 0)
        return -1;
    if (!has_word(t->caps, "STARTTLS"))
        return without_tls(t, "STARTTLS", 993, e);
    if (imap_simple(t, "STARTTLS", deadline, e) < 0 ||
        netconn_start_tls(t->conn, t->t.ca_file, deadline, e) < 0)
        return -1;
    t->caps_known = false; /* what was said in plain text is void (RFC 9051 §6.2.1) */
    return 0;
}

static int imap_open(Tunnel *t, gint64 deadline, struct tokend_error *e)
{
    if (imap_greeting(t, deadline, e) < 0)
        return -1;
    if (!netconn_is_tls(t->conn) && imap_secure(t, deadline, e) < 0)
        return -1;
    if (!t->caps_known && imap_simple(t, "CAPABILITY", deadline, e) < 0)
        return -1;
    return 0;
}

static bool choose_oauthbearer(const Tunnel *t, const char *offer_prefix)
{
    g_autofree char *ob = g_strconcat(offer_prefix, "OAUTHBEARER", NULL);

    switch (t->t.mech) {
    case TUNNEL_MECH_AUTO:
        return has_word(t->caps, ob);
    case TUNNEL_MECH_XOAUTH2:
        return false;
    case TUNNEL_MECH_OAUTHBEARER:
        return true;
    }
    return false;
}

static int refused_token(Tunnel *t, const char *what, const char *line, bool *refused,
                         struct tokend_error *e)
{
    g_autofree char *w = server_words(line);

    *refused = true;
    error_set(e, TOKEND_EX_NOPERM, "%s login to %s refused the token (%s)", what, t->t.host, w);
    error_set_hint(e,
                   "check username and scopes, and that the server accepts OAuth2 for this user");
    return -1;
}

/* After "+": the initial response if not sent yet, else the error
 * continuation's answer (XOAUTH2: empty; OAUTHBEARER: %x01, RFC 7628 §3.2.3). */
static int sasl_continue(Tunnel *t, const SecStr *ir, bool oauthbearer, bool *ir_sent,
                         gint64 deadline, struct tokend_error *e)
{
    if (!*ir_sent) {
        *ir_sent = true;
        if (netconn_write(t->conn, ir->data, ir->len, deadline, e) < 0)
            return -1;
        return netconn_write(t->conn, "\r\n", 2, deadline, e);
    }
    return netconn_write(t->conn, oauthbearer ? "AQ==\r\n" : "\r\n", oauthbearer ? 6 : 2, deadline,
                         e);
}

static int imap_result(Tunnel *t, const char *line, bool *refused, struct tokend_error *e)
{
    g_autofree char *w = NULL;

    if (is_prefix(line, "OK")) {
        imap_take_code_caps(t, line);
        return 0;
    }
    if (is_prefix(line, "NO") && !strstr(line, "[UNAVAILABLE]"))
        return refused_token(t, "IMAP", line, refused, e);
    w = server_words(line);
    error_set(e, TOKEND_EX_TEMPFAIL, "IMAP login to %s failed: %s", t->t.host, w);
    error_set_hint(e, "the server could not check the token now; try again later");
    return -1;
}

/* The SASL initial response for the mechanism chosen. */
static SecStr *initial_response(const Tunnel *t, bool oauthbearer, const SecStr *token,
                                struct tokend_error *e)
{
    return tokenformat_render(oauthbearer ? TOKEN_FORMAT_OAUTHBEARER : TOKEN_FORMAT_XOAUTH2, token,
                              t->t.user, t->t.host, t->t.port, e);
}

static int imap_login(Tunnel *t, const SecStr *token, gint64 deadline, bool *refused,
                      struct tokend_error *e)
{
    bool ob = choose_oauthbearer(t, "AUTH="), ir_sent;
    g_autofree char *tag = g_strdup_printf("t%u", ++t->tag);
    g_autoptr(SecStr) ir = initial_response(t, ob, token, e);
    g_autoptr(SecStr) cmd = secstr_new(0);
    g_autoptr(GString) line = g_string_new(NULL);

    if (!ir)
        return -1;
    secstr_append_str(cmd, tag);
    secstr_append_str(cmd, ob ? " AUTHENTICATE OAUTHBEARER" : " AUTHENTICATE XOAUTH2");
    ir_sent = has_word(t->caps, "SASL-IR");
    if (ir_sent) {
        secstr_append_str(cmd, " ");
        secstr_append(cmd, ir->data, ir->len);
    }
    secstr_append_str(cmd, "\r\n");
    log_verbose("%s: AUTHENTICATE %s as %s", t->t.host, ob ? "OAUTHBEARER" : "XOAUTH2", t->t.user);
    if (netconn_write(t->conn, cmd->data, cmd->len, deadline, e) < 0)
        return -1;
    for (;;) {
        if (netconn_read_line(t->conn, line, deadline, e) < 0)
            return -1;
        if (line->str[0] == '+') {
            if (sasl_continue(t, ir, ob, &ir_sent, deadline, e) < 0)
                return -1;
        } else if (!imap_untagged(t, line->str)) {
            size_t n = strlen(tag);
            if (strncmp(line->str, tag, n) != 0 || line->str[n] != ' ')
                return error_set(e, TOKEND_EX_TEMPFAIL, "unexpected answer from %s", t->t.host);
            return imap_result(t, line->str + n + 1, refused, e);
        }
    }
}

/* POP3 ---------------------------------------------------------------- */

static int pop_expect_ok(Tunnel *t, const char *what, GString *line, gint64 deadline,
                         struct tokend_error *e)
{
    if (netconn_read_line(t->conn, line, deadline, e) < 0)
        return -1;
    if (is_prefix(line->str, "+OK"))
        return 0;
    g_autofree char *w = server_words(line->str);
    return error_set(e, TOKEND_EX_TEMPFAIL, "%s of %s: %s", what, t->t.host, w);
}

static int pop_command(Tunnel *t, const char *command, GString *line, gint64 deadline,
                       struct tokend_error *e)
{
    g_autofree char *text = g_strdup_printf("%s\r\n", command);

    if (netconn_write(t->conn, text, strlen(text), deadline, e) < 0)
        return -1;
    return pop_expect_ok(t, command, line, deadline, e);
}

/* CAPA (RFC 2449); a server without it offers nothing we can use. */
static int pop_capa(Tunnel *t, gint64 deadline, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_new(NULL);

    g_string_assign(t->caps, "");
    t->caps_known = true;
    if (netconn_write(t->conn, "CAPA\r\n", 6, deadline, e) < 0)
        return -1;
    if (netconn_read_line(t->conn, line, deadline, e) < 0)
        return -1;
    if (!is_prefix(line->str, "+OK"))
        return 0;
    for (;;) {
        if (netconn_read_line(t->conn, line, deadline, e) < 0)
            return -1;
        if (strcmp(line->str, ".") == 0)
            break;
        /* "SASL A B" becomes the words "SASL:A SASL:B"; the rest as it is. */
        if (is_prefix(line->str, "SASL ")) {
            g_auto(GStrv) m = g_strsplit(line->str + 5, " ", -1);
            for (char **p = m; *p; p++)
                g_string_append_printf(t->caps, "SASL:%s ", *p);
        } else {
            g_string_append_printf(t->caps, "%s ", line->str);
        }
    }
    return 0;
}

static int pop_open(Tunnel *t, gint64 deadline, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_new(NULL);

    if (pop_expect_ok(t, "the greeting", line, deadline, e) < 0 || pop_capa(t, deadline, e) < 0)
        return -1;
    if (netconn_is_tls(t->conn))
        return 0;
    if (!has_word(t->caps, "STLS"))
        return without_tls(t, "STLS", 995, e);
    if (pop_command(t, "STLS", line, deadline, e) < 0 ||
        netconn_start_tls(t->conn, t->t.ca_file, deadline, e) < 0)
        return -1;
    return pop_capa(t, deadline, e);
}

static int pop_login(Tunnel *t, const SecStr *token, gint64 deadline, bool *refused,
                     struct tokend_error *e)
{
    bool ob = choose_oauthbearer(t, "SASL:"), ir_sent;
    const char *mech = ob ? "OAUTHBEARER" : "XOAUTH2";
    g_autoptr(SecStr) ir = initial_response(t, ob, token, e);
    g_autoptr(SecStr) cmd = secstr_new(0);
    g_autoptr(GString) line = g_string_new(NULL);

    if (!ir)
        return -1;
    secstr_append_str(cmd, "AUTH ");
    secstr_append_str(cmd, mech);
    ir_sent = strlen("AUTH ") + strlen(mech) + 1 + ir->len + 2 <= POP3_MAX_COMMAND;
    if (ir_sent) {
        secstr_append_str(cmd, " ");
        secstr_append(cmd, ir->data, ir->len);
    }
    secstr_append_str(cmd, "\r\n");
    log_verbose("%s: AUTH %s as %s", t->t.host, mech, t->t.user);
    if (netconn_write(t->conn, cmd->data, cmd->len, deadline, e) < 0)
        return -1;
    for (;;) {
        if (netconn_read_line(t->conn, line, deadline, e) < 0)
            return -1;
        if (is_prefix(line->str, "+OK"))
            return 0;
        if (line->str[0] == '+') {
            if (sasl_continue(t, ir, ob, &ir_sent, deadline, e) < 0)
                return -1;
            continue;
        }
        if (strstr(line->str, "[SYS/TEMP]") || strstr(line->str, "[UNAVAILABLE]") ||
            !is_prefix(line->str, "-ERR")) {
            g_autofree char *w = server_words(line->str);
            error_set(e, TOKEND_EX_TEMPFAIL, "POP3 login to %s failed: %s", t->t.host, w);
            error_set_hint(e, "the server could not check the token now; try again later");
            return -1;
        }
        return refused_token(t, "POP3", line->str, refused, e);
    }
}

/* Both ---------------------------------------------------------------- */

Tunnel *tunnel_open(const struct tunnel_target *target, gint64 deadline, struct tokend_error *e)
{
    g_autoptr(Tunnel) t = g_new0(Tunnel, 1);
    bool pop3 = target->proto == TUNNEL_PROTO_POP3;

    t->t = *target;
    t->caps = g_string_new(NULL);
    if (!(t->conn = netconn_connect(target->host, target->port, deadline, e)))
        return NULL;
    if (implicit_tls(target) && netconn_start_tls(t->conn, target->ca_file, deadline, e) < 0)
        return NULL;
    if ((pop3 ? pop_open(t, deadline, e) : imap_open(t, deadline, e)) < 0)
        return NULL;
    return g_steal_pointer(&t);
}

int tunnel_login(Tunnel *t, const SecStr *token, gint64 deadline, bool *refused,
                 struct tokend_error *e)
{
    *refused = false;
    if (t->t.proto == TUNNEL_PROTO_POP3)
        return pop_login(t, token, deadline, refused, e);
    /* The capabilities as they are after login, for the client: from the
     * OK's response code, or asked for in tunnel_greet. */
    t->caps_known = false;
    return imap_login(t, token, deadline, refused, e);
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

int tunnel_greet(Tunnel *t, int out, struct tokend_error *e)
{
    g_autofree char *text = NULL;
    gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    if (t->t.proto == TUNNEL_PROTO_POP3) {
        text = g_strdup("+OK tokend: logged in\r\n");
    } else {
        /* Either the OK carried [CAPABILITY ...], or we ask. */
        if (!t->caps_known && imap_simple(t, "CAPABILITY", deadline, e) < 0)
            return -1;
        /* The server's words go on one line, whatever they hold. */
        g_strcanon(t->caps->str,
                   G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
                   ' ');
        text = g_strdup_printf("* PREAUTH [CAPABILITY %s] tokend: logged in as %s\r\n",
                               g_strstrip(t->caps->str), t->t.user);
    }
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
    return splice_run(t->conn, in, out, e);
}

void tunnel_free(Tunnel *t)
{
    if (!t)
        return;
    netconn_free(t->conn);
    if (t->caps)
        g_string_free(t->caps, TRUE);
    g_free(t);
}
