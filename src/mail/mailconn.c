/* A mail session before the login: IMAP (RFC 9051 / 3501, STARTTLS §6.2.1),
 * POP3 (RFC 1939, CAPA RFC 2449, STLS RFC 2595), SMTP submission (RFC 5321
 * EHLO, STARTTLS RFC 3207).  What differs between the three is in the
 * protocols[] table. */

#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "tokend/log.h"
#include "tokend/mailconn.h"
#include "tokend/peercred.h"
#include "tokend/redact.h"

/* A plain-text greeting on a port that is not the protocol's own must
 * start this soon: a server that speaks TLS from the first byte sends
 * nothing until the client begins, and would keep tokend waiting until it
 * gives up itself (Dovecot after 30 s). */
#define FIRST_BYTE_US (5 * G_USEC_PER_SEC)
#define LOGOUT_US (2 * G_USEC_PER_SEC)
#define WORDS_MAX 300
#define CAPA_LINES_MAX 1000
#define TLS_HANDSHAKE 0x16 /* the first byte of a TLS record: handshake, alert */
#define TLS_ALERT 0x15

struct mailconn {
    struct mail_target t;
    char *host, *ca_file;
    NetConn *conn;
    GPtrArray *caps;  /* capability atoms as sent */
    GPtrArray *mechs; /* SASL mechanisms offered */
    bool caps_known;
    unsigned tag;
    GPtrArray *secrets; /* SecStr: what was sent that the server may echo */
};

struct proto_ops {
    const char *name;
    int implicit_port;
    int plain_ports[2];   /* where a plain greeting may take its time */
    const char *starttls; /* command and capability */
    const char *logout;
    int (*greeting)(MailConn *c, const MailReply *r, struct tokend_error *e);
    int (*capabilities)(MailConn *c, gint64 deadline, struct tokend_error *e);
};

static const struct proto_ops protocols[];

static const struct proto_ops *ops(const MailConn *c)
{
    return &protocols[c->t.proto];
}

const char *mail_proto_name(enum mail_proto p)
{
    switch (p) {
    case MAIL_PROTO_IMAP:
        return "IMAP";
    case MAIL_PROTO_POP3:
        return "POP3";
    case MAIL_PROTO_SMTP:
        return "SMTP";
    }
    return "?";
}

int mail_tls_from_name(const char *name)
{
    static const char *const names[] = {
        [MAIL_TLS_AUTO] = "auto",
        [MAIL_TLS_IMPLICIT] = "implicit",
        [MAIL_TLS_STARTTLS] = "starttls",
    };

    if (!name)
        return MAIL_TLS_AUTO;
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        if (g_ascii_strcasecmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

const struct mail_target *mailconn_target(const MailConn *c)
{
    return &c->t;
}

NetConn *mailconn_netconn(MailConn *c)
{
    return c->conn;
}

void mailconn_add_secret(MailConn *c, const SecStr *secret)
{
    g_ptr_array_add(c->secrets, secstr_dup(secret));
}

void mailconn_forget_secrets(MailConn *c)
{
    /* secstr_free, the array's free function, wipes each. */
    g_ptr_array_set_size(c->secrets, 0);
}

/* The secrets as redact_text takes them: borrowed pointers, NULL-ended. */
static const char **known_secrets(const MailConn *c)
{
    const char **known = g_new0(const char *, c->secrets->len + 1);

    for (guint i = 0; i < c->secrets->len; i++)
        known[i] = ((const SecStr *)g_ptr_array_index(c->secrets, i))->data;
    return known;
}

char *mailconn_words(const MailConn *c, const char *text)
{
    g_autofree const char **known = known_secrets(c);
    g_autofree char *safe = redact_text(text, known);

    return error_one_line(safe, WORDS_MAX);
}

bool mailconn_mentions_secret(const MailConn *c, const char *text)
{
    for (guint i = 0; i < c->secrets->len; i++) {
        const SecStr *s = g_ptr_array_index(c->secrets, i);
        if (s->len > 0 && strstr(text, s->data))
            return true;
    }
    return false;
}

char *mailconn_tag(MailConn *c)
{
    return g_strdup_printf("t%u", ++c->tag);
}

/* Capabilities ------------------------------------------------------------ */

static bool has_atom(const GPtrArray *list, const char *atom)
{
    for (guint i = 0; list && i < list->len; i++)
        if (g_ascii_strcasecmp(g_ptr_array_index(list, i), atom) == 0)
            return true;
    return false;
}

bool mailconn_offers(const MailConn *c, const char *capability)
{
    return has_atom(c->caps, capability);
}

bool mailconn_offers_mech(const MailConn *c, const char *mech)
{
    return has_atom(c->mechs, mech);
}

void mailconn_forget_capabilities(MailConn *c)
{
    g_ptr_array_set_size(c->caps, 0);
    g_ptr_array_set_size(c->mechs, 0);
    c->caps_known = false;
}

static void add_cap(MailConn *c, const char *atom)
{
    g_ptr_array_add(c->caps, g_strdup(atom));
}

/* IMAP: the atoms of [CAPABILITY ...] or "* CAPABILITY"; AUTH=X offers X. */
static void imap_take_caps(MailConn *c, const GPtrArray *atoms)
{
    mailconn_forget_capabilities(c);
    for (guint i = 0; i < atoms->len; i++) {
        const char *a = g_ptr_array_index(atoms, i);
        add_cap(c, a);
        if (g_ascii_strncasecmp(a, "AUTH=", 5) == 0 && a[5])
            g_ptr_array_add(c->mechs, g_strdup(a + 5));
    }
    c->caps_known = true;
}

/* POP3 CAPA and SMTP EHLO lines: a keyword, then its words; the keyword
 * of the SASL mechanisms (SASL, AUTH; SMTP's older "AUTH=X Y") lists them. */
static void take_keyword_line(MailConn *c, const char *line, const char *sasl_keyword)
{
    g_auto(GStrv) words = g_strsplit(line, " ", -1);
    bool sasl;

    if (!words[0] || !mailreply_is_atom(words[0]))
        return;
    sasl = g_ascii_strcasecmp(words[0], sasl_keyword) == 0;
    if (g_ascii_strncasecmp(words[0], "AUTH=", 5) == 0 && words[0][5]) {
        sasl = true;
        g_ptr_array_add(c->mechs, g_strdup(words[0] + 5));
    }
    add_cap(c, words[0]);
    for (char **w = words + 1; sasl && *w; w++)
        if (mailreply_is_atom(*w))
            g_ptr_array_add(c->mechs, g_strdup(*w));
}

/* Reading ----------------------------------------------------------------- */

static int read_line(MailConn *c, GString *line, gint64 deadline, struct tokend_error *e)
{
    if (netconn_read_line(c->conn, line, deadline, e) < 0)
        return -1;
    if (log_level >= LOG_LEVEL_DEBUG) {
        g_autofree char *w = mailconn_words(c, line->str);
        log_debug("%s: S: %s", c->t.host, w);
    }
    return 0;
}

static int unexpected(MailConn *c, const char *line, struct tokend_error *e)
{
    g_autofree char *w = mailconn_words(c, line);

    return error_set(e, TOKEND_EX_TEMPFAIL, "unexpected answer from %s: %s", c->t.host, w);
}

/* SMTP: the further lines of a multi-line reply, their texts joined. */
static int smtp_rest(MailConn *c, MailReply *r, GPtrArray *texts, GString *line, gint64 deadline,
                     struct tokend_error *e)
{
    g_auto(MailReply) next = {0};
    g_autoptr(GString) text = g_string_new(r->text);

    while (r->more) {
        if (read_line(c, line, deadline, e) < 0)
            return -1;
        if (mailreply_parse(MAIL_PROTO_SMTP, line->str, &next) < 0 || next.number != r->number)
            return unexpected(c, line->str, e);
        if (texts)
            g_ptr_array_add(texts, g_strdup(next.text));
        g_string_append_printf(text, "%s%s", text->len ? " " : "", next.text);
        r->more = next.more;
    }
    g_free(r->line);
    r->line = g_strdup_printf("%d%s%s %s", r->number, r->code ? " " : "", r->code ? r->code : "",
                              text->str);
    return 0;
}

/* One reply as the protocol frames it: one line, or SMTP's lines; texts
 * (may be NULL) gets each SMTP line's text. */
static int read_reply(MailConn *c, MailReply *r, GPtrArray *texts, gint64 deadline,
                      struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_new(NULL);

    if (read_line(c, line, deadline, e) < 0)
        return -1;
    if (mailreply_parse(c->t.proto, line->str, r) < 0)
        return unexpected(c, line->str, e);
    if (texts)
        g_ptr_array_add(texts, g_strdup(r->text));
    if (r->more)
        return smtp_rest(c, r, texts, line, deadline, e);
    return 0;
}

int mailconn_read(MailConn *c, MailReply *r, gint64 deadline, struct tokend_error *e)
{
    for (;;) {
        if (read_reply(c, r, NULL, deadline, e) < 0)
            return -1;
        if (r->atoms && c->t.proto == MAIL_PROTO_IMAP &&
            (g_strcmp0(r->code, "CAPABILITY") == 0 || g_strcmp0(r->keyword, "CAPABILITY") == 0))
            imap_take_caps(c, r->atoms);
        if (r->kind != MAILREPLY_UNTAGGED)
            return 0;
        if (r->status == MAILREPLY_BYE) {
            g_autofree char *w = mailconn_words(c, r->line);
            return error_set(e, TOKEND_EX_TEMPFAIL, "%s closed the session: %s", c->t.host, w);
        }
    }
}

int mailconn_write(MailConn *c, const char *data, size_t len, gint64 deadline,
                   struct tokend_error *e)
{
    return netconn_write(c->conn, data, len, deadline, e);
}

/* Sends command (IMAP: with a new tag) and reads its final reply into r. */
static int command_reply(MailConn *c, const char *command, MailReply *r, GPtrArray *texts,
                         gint64 deadline, struct tokend_error *e)
{
    g_autofree char *tag = c->t.proto == MAIL_PROTO_IMAP ? mailconn_tag(c) : NULL;
    g_autofree char *text = g_strdup_printf("%s%s%s\r\n", tag ? tag : "", tag ? " " : "", command);

    log_debug("%s: C: %s", c->t.host, command);
    if (netconn_write(c->conn, text, strlen(text), deadline, e) < 0)
        return -1;
    if ((texts ? read_reply(c, r, texts, deadline, e) : mailconn_read(c, r, deadline, e)) < 0)
        return -1;
    if (r->kind != MAILREPLY_FINAL || g_strcmp0(r->tag, tag) != 0)
        return unexpected(c, r->line, e);
    return 0;
}

static int refused(MailConn *c, const char *command, const MailReply *r, struct tokend_error *e)
{
    g_autofree char *w = mailconn_words(c, r->line);

    return error_set(e, TOKEND_EX_TEMPFAIL, "%s refused %s: %s", c->t.host, command, w);
}

int mailconn_command(MailConn *c, const char *command, gint64 deadline, struct tokend_error *e)
{
    g_auto(MailReply) r = {0};

    if (command_reply(c, command, &r, NULL, deadline, e) < 0)
        return -1;
    return r.status == MAILREPLY_OK ? 0 : refused(c, command, &r, e);
}

/* The protocols ----------------------------------------------------------- */

/* line: the greeting as sent; r: as parsed, or NULL. */
static int greeting_refused(MailConn *c, const MailReply *r, const char *line,
                            struct tokend_error *e)
{
    g_autofree char *w = mailconn_words(c, line);

    if (r && (r->status == MAILREPLY_BYE || r->status == MAILREPLY_NO))
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s turned the connection away: %s", c->t.host, w);
    return error_set(e, TOKEND_EX_TEMPFAIL, "%s greeted with something else than %s: %s", c->t.host,
                     ops(c)->name, w);
}

static int imap_greeting(MailConn *c, const MailReply *r, struct tokend_error *e)
{
    if (r->kind != MAILREPLY_UNTAGGED || r->status != MAILREPLY_OK)
        return greeting_refused(c, r, r->line, e);
    if (r->atoms && g_strcmp0(r->code, "CAPABILITY") == 0)
        imap_take_caps(c, r->atoms);
    return 0;
}

static int imap_capabilities(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    mailconn_forget_capabilities(c);
    if (mailconn_command(c, "CAPABILITY", deadline, e) < 0)
        return -1;
    c->caps_known = true; /* a server that lists none offers none */
    return 0;
}

static int pop3_greeting(MailConn *c, const MailReply *r, struct tokend_error *e)
{
    return r->status == MAILREPLY_OK ? 0 : greeting_refused(c, r, r->line, e);
}

/* CAPA (RFC 2449): "+OK", lines, "."; a server without it offers nothing
 * tokend can use, which is no error here. */
static int pop3_capabilities(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    g_auto(MailReply) r = {0};
    g_autoptr(GString) line = g_string_new(NULL);

    mailconn_forget_capabilities(c);
    c->caps_known = true;
    if (command_reply(c, "CAPA", &r, NULL, deadline, e) < 0)
        return -1;
    if (r.status != MAILREPLY_OK)
        return 0;
    for (int n = 0;; n++) {
        if (n > CAPA_LINES_MAX)
            return error_set(e, TOKEND_EX_TEMPFAIL, "%s sent an endless CAPA list", c->t.host);
        if (read_line(c, line, deadline, e) < 0)
            return -1;
        if (strcmp(line->str, ".") == 0)
            return 0;
        /* A line starting with "." is sent with one more (RFC 1939 §3). */
        take_keyword_line(c, line->str[0] == '.' ? line->str + 1 : line->str, "SASL");
    }
}

static int smtp_greeting(MailConn *c, const MailReply *r, struct tokend_error *e)
{
    return r->number == 220 ? 0 : greeting_refused(c, r, r->line, e);
}

/* EHLO (RFC 5321 §4.1.1.1): the first line names the server, each further
 * line an extension. */
static int smtp_capabilities(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    g_auto(MailReply) r = {0};
    g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func(g_free);

    mailconn_forget_capabilities(c);
    if (command_reply(c, "EHLO localhost", &r, texts, deadline, e) < 0)
        return -1;
    if (r.status != MAILREPLY_OK)
        return refused(c, "EHLO", &r, e);
    for (guint i = 1; i < texts->len; i++)
        take_keyword_line(c, g_ptr_array_index(texts, i), "AUTH");
    c->caps_known = true;
    return 0;
}

static const struct proto_ops protocols[] = {
    [MAIL_PROTO_IMAP] =
        {"IMAP", 993, {143, 0}, "STARTTLS", "LOGOUT", imap_greeting, imap_capabilities},
    [MAIL_PROTO_POP3] = {"POP3", 995, {110, 0}, "STLS", "QUIT", pop3_greeting, pop3_capabilities},
    [MAIL_PROTO_SMTP] =
        {"SMTP", 465, {587, 25}, "STARTTLS", "QUIT", smtp_greeting, smtp_capabilities},
};

const GPtrArray *mailconn_capabilities(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    if (!c->caps_known && ops(c)->capabilities(c, deadline, e) < 0)
        return NULL;
    return c->caps;
}

/* Opening ----------------------------------------------------------------- */

static bool implicit_tls(const MailConn *c)
{
    if (c->t.tls == MAIL_TLS_AUTO)
        return c->t.port == ops(c)->implicit_port;
    return c->t.tls == MAIL_TLS_IMPLICIT;
}

static void hint_implicit(MailConn *c, struct tokend_error *e)
{
    if (c->t.tls_key)
        error_set_hint(e, "set %s = implicit", c->t.tls_key);
    else
        error_set_hint(e, "use port %d, where tokend speaks TLS from the start",
                       ops(c)->implicit_port);
}

/* Plain text: a greeting must begin (soon, in auto mode on a port that is
 * not the protocol's), and not with a TLS record. */
static int await_greeting(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    const struct proto_ops *p = ops(c);
    bool own_port = c->t.port == p->plain_ports[0] || c->t.port == p->plain_ports[1];
    bool quick = c->t.tls == MAIL_TLS_AUTO && !own_port;
    gint64 until = quick ? MIN(deadline, g_get_monotonic_time() + FIRST_BYTE_US) : deadline;
    unsigned char first = 0;
    int r = netconn_first_byte(c->conn, until, &first, e);

    if (r < 0 || (r == 1 && first != TLS_HANDSHAKE && first != TLS_ALERT))
        return r < 0 ? -1 : 0;
    if (r == 1) {
        error_set(e, TOKEND_EX_CONFIG, "%s port %d speaks TLS from the first byte", c->t.host,
                  c->t.port);
        hint_implicit(c, e);
        return -1;
    }
    if (!quick || until == deadline)
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s port %d sent no greeting in time", c->t.host,
                         c->t.port);
    error_set(e, TOKEND_EX_TEMPFAIL,
              "%s port %d sent no greeting within %d s, as a server that speaks TLS from the "
              "first byte does",
              c->t.host, c->t.port, (int)(FIRST_BYTE_US / G_USEC_PER_SEC));
    hint_implicit(c, e);
    return -1;
}

/* Plain text on loopback reaches whoever holds the port: root or the user
 * running tokend, or nobody gets a byte. */
static int check_owner(MailConn *c, struct tokend_error *e)
{
    struct sockaddr_storage peer;
    struct tokend_error why = TOKEND_ERROR_INIT;
    uid_t uid;
    struct passwd pw, *found = NULL;
    char buf[1024];

    if (!netconn_peer(c->conn, &peer) ||
        peercred_listener_uid((struct sockaddr *)&peer, &uid, &why) < 0) {
        error_set(e, TOKEND_EX_UNAVAILABLE,
                  "cannot tell who holds %s port %d (%s); tokend sends nothing there", c->t.host,
                  c->t.port, why.message ? why.message : g_strerror(errno));
        error_clear(&why);
        return -1;
    }
    if (uid == 0 || uid == getuid() || uid == geteuid())
        return 0;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0)
        found = NULL;
    error_set(e, TOKEND_EX_UNAVAILABLE,
              "%s port %d is held by user %s (uid %u), not by root or you; tokend sends "
              "nothing there",
              c->t.host, c->t.port, found ? found->pw_name : "?", (unsigned)uid);
    error_set_hint(e, "a mail server on loopback must run as root or as you");
    return -1;
}

static int greet(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_new(NULL);
    g_auto(MailReply) r = {0};

    if (!netconn_is_tls(c->conn) && await_greeting(c, deadline, e) < 0)
        return -1;
    if (read_line(c, line, deadline, e) < 0)
        return -1;
    if (mailreply_parse(c->t.proto, line->str, &r) < 0)
        return greeting_refused(c, NULL, line->str, e);
    if (r.more && smtp_rest(c, &r, NULL, line, deadline, e) < 0)
        return -1;
    return ops(c)->greeting(c, &r, e);
}

/* No STARTTLS offered: only a loopback server in tls = auto is spoken to in
 * plain text. */
static int without_tls(const MailConn *c, struct tokend_error *e)
{
    if (netconn_is_loopback(c->conn) && c->t.tls == MAIL_TLS_AUTO)
        return 0;
    error_set(e, TOKEND_EX_CONFIG, "%s port %d offers no %s; tokend sends no token in plain text",
              c->t.host, c->t.port, ops(c)->starttls);
    error_set_hint(e, "use port %d (implicit TLS)", ops(c)->implicit_port);
    return -1;
}

static int secure(MailConn *c, gint64 deadline, struct tokend_error *e)
{
    if (!mailconn_capabilities(c, deadline, e))
        return -1;
    if (!mailconn_offers(c, ops(c)->starttls))
        return without_tls(c, e);
    if (mailconn_command(c, ops(c)->starttls, deadline, e) < 0 ||
        netconn_start_tls(c->conn, c->t.ca_file, deadline, e) < 0)
        return -1;
    /* What was said in plain text is void (RFC 9051 §6.2.1, RFC 3207 §4.2). */
    mailconn_forget_capabilities(c);
    return 0;
}

MailConn *mailconn_open(const struct mail_target *t, gint64 deadline, struct tokend_error *e)
{
    g_autoptr(MailConn) c = g_new0(MailConn, 1);

    c->t = *t;
    c->t.host = c->host = g_strdup(t->host);
    c->t.ca_file = c->ca_file = g_strdup(t->ca_file);
    c->caps = g_ptr_array_new_with_free_func(g_free);
    c->mechs = g_ptr_array_new_with_free_func(g_free);
    c->secrets = g_ptr_array_new_with_free_func((GDestroyNotify)secstr_free);
    if (!(c->conn = netconn_connect(t->host, t->port, deadline, e)))
        return NULL;
    if (!implicit_tls(c) && netconn_is_loopback(c->conn) && check_owner(c, e) < 0)
        return NULL;
    if (implicit_tls(c) && netconn_start_tls(c->conn, t->ca_file, deadline, e) < 0)
        return NULL;
    if (greet(c, deadline, e) < 0)
        return NULL;
    if (!netconn_is_tls(c->conn) && secure(c, deadline, e) < 0)
        return NULL;
    if (!mailconn_capabilities(c, deadline, e))
        return NULL;
    return g_steal_pointer(&c);
}

void mailconn_logout(MailConn *c)
{
    struct tokend_error e = TOKEND_ERROR_INIT;

    (void)mailconn_command(c, ops(c)->logout, g_get_monotonic_time() + LOGOUT_US, &e);
    error_clear(&e);
}

void mailconn_free(MailConn *c)
{
    if (!c)
        return;
    netconn_free(c->conn);
    if (c->caps)
        g_ptr_array_unref(c->caps);
    if (c->mechs)
        g_ptr_array_unref(c->mechs);
    if (c->secrets)
        g_ptr_array_unref(c->secrets);
    g_free(c->host);
    g_free(c->ca_file);
    g_free(c);
}
