/* The SASL client: a mechanism table (how the initial response is made,
 * how an error challenge is read and answered) and a protocol table (how
 * the exchange opens, how long its line may be, what a failure's codes
 * mean), driven by one exchange loop:
 *
 *   C: open (with the initial response when it may go on the line)
 *   S: continuation -> C: the initial response if not sent yet,
 *                      else the answer to an error challenge (XOAUTH2: an
 *                      empty line; OAUTHBEARER: %x01, RFC 7628 §3.2.3),
 *                      else "*" (cancel)
 *   S: final reply  -> classified by status and response code
 */

#include <string.h>

#include "tokend/log.h"
#include "tokend/sasl.h"
#include "tokend/tokenformat.h"

struct sasl_mechanism {
    const char *name;
    enum token_format format; /* the initial response, by tokenformat */
    const char *abort;        /* the answer to an error challenge */
    /* The error challenge's status, NULL when it is none. */
    char *(*challenge_status)(const char *data);
    /* The statuses by which the server refuses the token itself. */
    const char *const *token_refused;
};

/* Google and Dovecot send {"status":"401",...} for XOAUTH2; RFC 7628 §3.2.2
 * names OAUTHBEARER's "invalid_token". */
static const char *const bearer_refused[] = {"401", "invalid_token", NULL};

static const struct sasl_mechanism mechanisms[] = {
    [SASL_MECH_AUTO] = {"auto", TOKEN_FORMAT_RAW, NULL, NULL, NULL},
    [SASL_MECH_XOAUTH2] = {"XOAUTH2", TOKEN_FORMAT_XOAUTH2, "", mailreply_sasl_status,
                           bearer_refused},
    [SASL_MECH_OAUTHBEARER] = {"OAUTHBEARER", TOKEN_FORMAT_OAUTHBEARER,
                               "AQ==", mailreply_sasl_status, bearer_refused},
};

/* A response code (IMAP, POP3) or reply number (SMTP) and its meaning. */
struct sasl_code {
    const char *code;
    int number;
    enum sasl_result result;
};

static const struct sasl_code imap_codes[] = {
    {"AUTHENTICATIONFAILED", 0, SASL_RESULT_REFUSED},
    {"UNAVAILABLE", 0, SASL_RESULT_TEMPFAIL},
    {"SERVERBUG", 0, SASL_RESULT_TEMPFAIL},
    {"LIMIT", 0, SASL_RESULT_TEMPFAIL},
    {"INUSE", 0, SASL_RESULT_TEMPFAIL},
    {"AUTHORIZATIONFAILED", 0, SASL_RESULT_DENIED},
    {"EXPIRED", 0, SASL_RESULT_DENIED},
    {"PRIVACYREQUIRED", 0, SASL_RESULT_DENIED},
    {"CONTACTADMIN", 0, SASL_RESULT_DENIED},
    {NULL, 0, SASL_RESULT_OK},
};

/* RFC 2449 §8.1, RFC 3206; hierarchical: SYS/TEMP/X is SYS/TEMP. */
static const struct sasl_code pop3_codes[] = {
    {"AUTH", 0, SASL_RESULT_REFUSED},
    {"SYS/TEMP", 0, SASL_RESULT_TEMPFAIL},
    {"IN-USE", 0, SASL_RESULT_TEMPFAIL},
    {"LOGIN-DELAY", 0, SASL_RESULT_TEMPFAIL},
    {"UNAVAILABLE", 0, SASL_RESULT_TEMPFAIL},
    {"SYS/PERM", 0, SASL_RESULT_DENIED},
    {NULL, 0, SASL_RESULT_OK},
};

/* RFC 4954 §6: 535 5.7.8 credentials invalid, 454 4.7.0 temporary, 534
 * 5.7.9 mechanism too weak (Gmail: "web login required"), 538 5.7.11
 * encryption required, 530 5.7.0 authentication required. */
static const struct sasl_code smtp_codes[] = {
    {NULL, 535, SASL_RESULT_REFUSED}, {NULL, 454, SASL_RESULT_TEMPFAIL},
    {NULL, 534, SASL_RESULT_DENIED},  {NULL, 538, SASL_RESULT_DENIED},
    {NULL, 530, SASL_RESULT_DENIED},  {NULL, 0, SASL_RESULT_OK},
};

struct sasl_proto {
    const char *verb;
    bool tagged;
    size_t max_line;          /* octets with CRLF, for a command with IR; 0: no limit */
    bool ir_needs_capability; /* IMAP: SASL-IR offered (RFC 4959) */
    /* Older POP3 servers (RFC 1734) refuse an initial response: a bare
     * -ERR to it is tried once more without. */
    bool retry_without_ir;
    const struct sasl_code *codes;
    enum sasl_result no_code; /* a failure with no code of the table */
};

static const struct sasl_proto protos[] = {
    [MAIL_PROTO_IMAP] = {"AUTHENTICATE", true, 0, true, false, imap_codes, SASL_RESULT_REFUSED},
    [MAIL_PROTO_POP3] = {"AUTH", false, 255, false, true, pop3_codes, SASL_RESULT_REFUSED},
    [MAIL_PROTO_SMTP] = {"AUTH", false, 512, false, false, smtp_codes, SASL_RESULT_FAILED},
};

int sasl_mech_from_name(const char *name)
{
    if (!name)
        return SASL_MECH_AUTO;
    for (size_t i = 0; i < G_N_ELEMENTS(mechanisms); i++)
        if (g_ascii_strcasecmp(mechanisms[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *sasl_mech_name(enum sasl_mech m)
{
    return mechanisms[m].name;
}

enum sasl_mech sasl_choose(const MailConn *c, enum sasl_mech wanted)
{
    switch (wanted) {
    case SASL_MECH_AUTO:
        /* Exchange Online offers only XOAUTH2, and tries it unlisted too. */
        return mailconn_offers_mech(c, "OAUTHBEARER") ? SASL_MECH_OAUTHBEARER : SASL_MECH_XOAUTH2;
    case SASL_MECH_XOAUTH2:
    case SASL_MECH_OAUTHBEARER:
        return wanted;
    }
    return SASL_MECH_XOAUTH2;
}

SecStr *sasl_command(enum mail_proto p, const char *tag, enum sasl_mech m, const SecStr *ir,
                     bool sasl_ir_offered, bool *with_ir)
{
    const struct sasl_proto *pr = &protos[p];
    SecStr *cmd = secstr_new(64 + (ir ? ir->len : 0));

    if (pr->tagged) {
        secstr_append_str(cmd, tag);
        secstr_append_str(cmd, " ");
    }
    secstr_append_str(cmd, pr->verb);
    secstr_append_str(cmd, " ");
    secstr_append_str(cmd, mechanisms[m].name);
    *with_ir = ir && (!pr->ir_needs_capability || sasl_ir_offered) &&
               (pr->max_line == 0 || cmd->len + 1 + ir->len + 2 <= pr->max_line);
    if (*with_ir) {
        secstr_append_str(cmd, " ");
        /* An empty response is "=" (RFC 4959 §3, RFC 4954 §4). */
        if (ir->len)
            secstr_append(cmd, ir->data, ir->len);
        else
            secstr_append_str(cmd, "=");
    }
    secstr_append_str(cmd, "\r\n");
    return cmd;
}

static bool code_matches(const char *row, const char *code)
{
    size_t n = strlen(row);

    return g_ascii_strncasecmp(row, code, n) == 0 && (code[n] == '\0' || code[n] == '/');
}

/* The table's meaning of a failure, or pr->no_code. */
static enum sasl_result by_code(const struct sasl_proto *pr, const MailReply *final)
{
    for (const struct sasl_code *c = pr->codes; c->code || c->number; c++) {
        if (c->number ? c->number == final->number
                      : final->code && code_matches(c->code, final->code))
            return c->result;
    }
    if (final->number >= 400 && final->number < 500)
        return SASL_RESULT_TEMPFAIL;
    return final->status == MAILREPLY_BAD ? SASL_RESULT_FAILED : pr->no_code;
}

static bool listed(const char *const *list, const char *word)
{
    for (; list && *list; list++)
        if (g_ascii_strcasecmp(*list, word) == 0)
            return true;
    return false;
}

enum sasl_result sasl_classify(enum mail_proto p, enum sasl_mech m, const MailReply *final,
                               const char *challenge_status)
{
    enum sasl_result r;

    if (final->status == MAILREPLY_OK)
        return SASL_RESULT_OK;
    r = by_code(&protos[p], final);
    /* Temporary trouble says nothing of the token, whatever came before. */
    if (r == SASL_RESULT_TEMPFAIL || !challenge_status)
        return r;
    return listed(mechanisms[m].token_refused, challenge_status) ? SASL_RESULT_REFUSED
                                                                 : SASL_RESULT_DENIED;
}

/* The exchange ------------------------------------------------------------ */

struct exchange {
    MailConn *c;
    enum mail_proto proto;
    enum sasl_mech mech;
    const SecStr *ir;
    char *tag;
    bool sasl_ir; /* IMAP: offered before the login */
    bool ir_sent, answered, cancelled, retried;
    char *status; /* of the error challenge */
};

static int write_line(struct exchange *x, const char *data, size_t len, gint64 deadline,
                      struct tokend_error *e)
{
    if (mailconn_write(x->c, data, len, deadline, e) < 0)
        return -1;
    return mailconn_write(x->c, "\r\n", 2, deadline, e);
}

static int send_command(struct exchange *x, bool ir_allowed, gint64 deadline,
                        struct tokend_error *e)
{
    g_autoptr(SecStr) cmd = NULL;

    g_free(x->tag);
    x->tag = protos[x->proto].tagged ? mailconn_tag(x->c) : NULL;
    cmd =
        sasl_command(x->proto, x->tag, x->mech, ir_allowed ? x->ir : NULL, x->sasl_ir, &x->ir_sent);
    log_debug("%s: C: %s %s%s", mailconn_target(x->c)->host, protos[x->proto].verb,
              mechanisms[x->mech].name, x->ir_sent ? " [initial response]" : "");
    return mailconn_write(x->c, cmd->data, cmd->len, deadline, e);
}

/* The server asks: the initial response, the answer to its error
 * challenge, then "*", which cancels (RFC 9051 §6.2.2, RFC 5034 §4, RFC
 * 4954 §4); a server asking on after that is out of turn. */
static int answer(struct exchange *x, const MailReply *r, gint64 deadline, struct tokend_error *e)
{
    const struct sasl_mechanism *m = &mechanisms[x->mech];

    if (!x->ir_sent) {
        x->ir_sent = true;
        return write_line(x, x->ir->data, x->ir->len, deadline, e);
    }
    if (!x->answered) {
        x->answered = true;
        x->status = m->challenge_status(r->text);
        return write_line(x, m->abort, strlen(m->abort), deadline, e);
    }
    if (!x->cancelled) {
        x->cancelled = true;
        return write_line(x, "*", 1, deadline, e);
    }
    return error_set(e, TOKEND_EX_TEMPFAIL, "%s went on asking after the login was cancelled",
                     mailconn_target(x->c)->host);
}

/* A bare refusal of a command that carried the initial response, from a
 * protocol whose older servers take none. */
static bool retry_without_ir(const struct exchange *x, const MailReply *final)
{
    return protos[x->proto].retry_without_ir && !x->retried && x->ir_sent && !x->answered &&
           final->status == MAILREPLY_NO && !final->code;
}

static int run(struct exchange *x, MailReply *final, gint64 deadline, struct tokend_error *e)
{
    if (send_command(x, true, deadline, e) < 0)
        return -1;
    for (;;) {
        if (mailconn_read(x->c, final, deadline, e) < 0)
            return -1;
        if (final->kind == MAILREPLY_CONTINUE) {
            if (answer(x, final, deadline, e) < 0)
                return -1;
            continue;
        }
        if (g_strcmp0(final->tag, x->tag) != 0) {
            g_autofree char *w = mailconn_words(x->c, final->line);
            return error_set(e, TOKEND_EX_TEMPFAIL, "unexpected answer from %s: %s",
                             mailconn_target(x->c)->host, w);
        }
        if (!retry_without_ir(x, final))
            return 0;
        x->retried = true;
        log_verbose("%s: AUTH with an initial response refused; trying without",
                    mailconn_target(x->c)->host);
        if (send_command(x, false, deadline, e) < 0)
            return -1;
    }
}

static int failed(const struct exchange *x, enum sasl_result r, const MailReply *final,
                  struct tokend_error *e)
{
    const char *proto = mail_proto_name(x->proto), *host = mailconn_target(x->c)->host;
    /* The status and what follows: the tag is ours. */
    const char *said = final->tag ? final->line + strlen(final->tag) + 1 : final->line;
    g_autofree char *w = mailconn_words(x->c, said);
    g_autofree char *s = x->status ? mailconn_words(x->c, x->status) : NULL;
    g_autofree char *words = g_strdup_printf("%s%s%s", w, s ? "; SASL status " : "", s ? s : "");

    switch (r) {
    case SASL_RESULT_OK:
        return 0;
    case SASL_RESULT_REFUSED:
        error_set(e, TOKEND_EX_NOPERM, "%s login to %s refused the token (%s)", proto, host, words);
        error_set_hint(e, "check username and scopes, and that the server accepts OAuth2 for "
                          "this user");
        return -1;
    case SASL_RESULT_DENIED:
        error_set(e, TOKEND_EX_NOPERM, "%s login to %s was refused (%s)", proto, host, words);
        error_set_hint(e, "a new token would not help: check username and scopes, or ask the "
                          "mail administrator");
        return -1;
    case SASL_RESULT_TEMPFAIL:
        error_set(e, TOKEND_EX_TEMPFAIL, "%s login to %s failed: %s", proto, host, words);
        error_set_hint(e, "the server could not check the token now; try again later");
        return -1;
    case SASL_RESULT_FAILED:
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s login to %s failed: %s", proto, host, words);
    }
    return -1;
}

int sasl_login(MailConn *c, enum sasl_mech wanted, const char *user, const SecStr *token,
               gint64 deadline, enum sasl_result *result, struct tokend_error *e)
{
    const struct mail_target *t = mailconn_target(c);
    struct exchange x = {.c = c, .proto = t->proto, .mech = sasl_choose(c, wanted)};
    g_autoptr(SecStr) ir =
        tokenformat_render(mechanisms[x.mech].format, token, user, t->host, t->port, e);
    g_auto(MailReply) final = {0};
    int r;

    *result = SASL_RESULT_FAILED;
    if (!ir)
        return -1;
    /* Whatever the server says from now on may echo these. */
    mailconn_add_secret(c, token);
    mailconn_add_secret(c, ir);
    x.ir = ir;
    x.sasl_ir = mailconn_offers(c, "SASL-IR");
    log_verbose("%s: %s %s as %s", t->host, protos[x.proto].verb, mechanisms[x.mech].name, user);
    /* What was offered before the login is void after it. */
    mailconn_forget_capabilities(c);
    r = run(&x, &final, deadline, e);
    if (r == 0) {
        *result = sasl_classify(x.proto, x.mech, &final, x.status);
        r = failed(&x, *result, &final, e);
    }
    g_free(x.tag);
    g_free(x.status);
    return r;
}
