/* The relay's Graph backend (smtp_backend = graph): the message is taken
 * locally and sent with Microsoft Graph's sendMail (graph.c).
 *
 * Two processes.  Sending needs the network and, when Graph refuses a
 * token, a forced refresh: the account's files, its store and the token
 * server, none of which the sandbox lets in.  So once the account is
 * known the relay forks an agent that keeps all of that and does nothing
 * but send: it reads "SEND LENGTH SENDER" and the message from a socket
 * pair and answers with one SMTP reply line.  The process that reads the
 * client (and parses the message's header) enters the sandbox as the SMTP
 * relay does, with wait4 for the agent's end and, refused with EACCES
 * rather than fatal, open/openat: GMime asks iconv for a charset
 * converter module when it decodes a display name, and does without. */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay_internal.h"
#include "tokend/flow.h"
#include "tokend/graph.h"
#include "tokend/log.h"
#include "tokend/mimelib.h"
#include "tokend/notify.h"
#include "tokend/sandbox.h"
#include "tokend/tokenset.h"
#include "tokend/tunnel.h"

/* The token set whose token goes to Graph, when the account has one. */
#define GRAPH_SET "graph"
/* "SEND LENGTH SENDER": RFC 5321's path is at most 256 bytes. */
#define REQUEST_LINE_MAX 512

struct relay_graph {
    int fd;
    pid_t agent;
    int timeout_s;
};

bool relay_graph_backend(const Account *a)
{
    return a && g_strcmp0(a->smtp_backend, "graph") == 0;
}

/* Agent ------------------------------------------------------------------ */

/* The token for Graph: the account's token set "graph", else its own
 * token (an app-only account whose scopes are Graph's). */
static SecStr *graph_token(const Account *a, bool force, struct tokend_error *e)
{
    const char *scopes = a->token_sets ? tokenset_find(a->token_sets, GRAPH_SET) : NULL;
    struct token_set_target t = {.key = GRAPH_SET, .scopes = scopes, .named = true};
    enum refresh_outcome outcome;
    bool known;

    if (!scopes)
        return tunnel_token(a, force, e);
    known = tunnel_signin_known(a);
    if (flow_refresh_set(a, &t, force ? 0 : a->min_validity, force, &outcome, e) < 0) {
        /* As tunnel_token: notify_cmd once per lost sign-in. */
        if (e->status == TOKEND_EX_NOPERM && !known)
            notify_signin_needed(a, e->message);
        if (force || e->status != TOKEND_EX_TEMPFAIL || flow_set_seconds_left(a, &t) <= 0)
            return NULL;
        log_warn("%s: %s; using the current Graph token, which is still valid", a->name,
                 e->message);
        error_clear(e);
    }
    return flow_read_set_token(a, &t, e);
}

static char *token_trouble(const Account *a, struct tokend_error *e)
{
    char *line = g_strdup_printf("454 4.7.0 tokend: %s: %s%s%s", a->name,
                                 e->message ? e->message : "no token", e->hint ? "; " : "",
                                 e->hint ? e->hint : "");

    log_warn("%s: %s", a->name, e->message ? e->message : "no token");
    error_clear(e);
    return line;
}

/* One message to Graph: the reply for the client.  A 401 is one forced
 * refresh and one more try: the token was revoked or expired early. */
static char *agent_send(const Account *a, const char *sender, const char *mime, size_t len,
                        int timeout_s)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct graph_answer ans = {0};
    g_autoptr(SecStr) token = graph_token(a, false, &e);
    char *reply;

    if (!token)
        return token_trouble(a, &e);
    graph_send_mail(a->graph_url, a->ca_file, sender, token, mime, len, timeout_s, &ans);
    if (ans.status == 401) {
        log_info("%s: Microsoft Graph refused the token; refreshing and trying once more", a->name);
        secstr_free(g_steal_pointer(&token));
        if (!(token = graph_token(a, true, &e))) {
            graph_answer_clear(&ans);
            return token_trouble(a, &e);
        }
        graph_send_mail(a->graph_url, a->ca_file, sender, token, mime, len, timeout_s, &ans);
    }
    reply =
        ans.status == 401 ? graph_token_refused(&ans, a->name) : graph_smtp_reply(&ans, a->name);
    graph_answer_clear(&ans);
    return reply;
}

static int read_full(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "SEND LENGTH SENDER\n", read a byte at a time (it is short). */
static int read_request(int fd, guint64 *len, char **sender)
{
    char line[REQUEST_LINE_MAX + 1];
    size_t n = 0;
    g_auto(GStrv) parts = NULL;

    while (n < REQUEST_LINE_MAX && read_full(fd, line + n, 1) == 0 && line[n] != '\n')
        n++;
    if (n == REQUEST_LINE_MAX || n == 0 || line[n] != '\n')
        return -1;
    line[n] = '\0';
    parts = g_strsplit(line, " ", 3);
    if (g_strv_length(parts) != 3 || strcmp(parts[0], "SEND") != 0 ||
        !g_ascii_string_to_unsigned(parts[1], 10, 0, GRAPH_MIME_MAX, len, NULL))
        return -1;
    *sender = g_strdup(parts[2]);
    return 0;
}

/* Serves the session until it closes its end: 0, or 1 on a broken request. */
static int agent_serve(const Account *a, int fd, int timeout_s)
{
    for (;;) {
        g_autofree char *sender = NULL, *mime = NULL, *reply = NULL;
        guint64 len = 0;

        if (read_request(fd, &len, &sender) < 0)
            return 0;
        mime = g_malloc(len + 1);
        if (read_full(fd, mime, len) < 0)
            return 1;
        /* The session checked the sender; so does the agent, which the
         * session cannot talk into sending as anyone else. */
        if (!relay_may_send_as(a, sender))
            reply = g_strdup_printf("550 5.7.1 tokend: %s may not send as this sender", a->name);
        else
            reply = agent_send(a, sender, mime, len, timeout_s);
        if (write_full(fd, reply, strlen(reply)) < 0 || write_full(fd, "\n", 1) < 0)
            return 1;
    }
}

/* The agent's life: a token first (the session says 454 at once when there
 * is none), then one send per request. */
static G_GNUC_NORETURN void agent_run(const Account *a, int fd, int timeout_s)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) token = graph_token(a, false, &e);
    g_autofree char *first = token ? g_strdup("OK") : token_trouble(a, &e);

    secstr_free(g_steal_pointer(&token));
    if (write_full(fd, first, strlen(first)) < 0 || write_full(fd, "\n", 1) < 0 ||
        strcmp(first, "OK") != 0)
        _exit(0);
    _exit(agent_serve(a, fd, timeout_s));
}

/* Session ---------------------------------------------------------------- */

/* One line from the agent, waiting at most until deadline (monotonic). */
static char *read_reply(int fd, gint64 deadline)
{
    GString *line = g_string_new(NULL);

    while (line->len < RELAY_LINE_MAX) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        char c;
        int r = left > 0 ? poll(&p, 1, (int)MIN(left, G_MAXINT)) : 0;

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || read(fd, &c, 1) != 1)
            break;
        if (c == '\n')
            return g_string_free(line, FALSE);
        g_string_append_c(line, c);
    }
    g_string_free(line, TRUE);
    return NULL;
}

static const char *const session_extra[] = {"wait4", NULL};
static const char *const session_refused[] = {"open", "openat", NULL};
static const struct sandbox_policy session_policy = {
    .who = "relay", .extra_syscalls = session_extra, .refused_syscalls = session_refused};

/* The agent's first line: "OK", or the 454 the client gets. */
static int first_answer(RelayGraph *g, const Account *a, struct tokend_error *e)
{
    g_autofree char *first = read_reply(g->fd, g_get_monotonic_time() + RELAY_LOGIN_TIMEOUT_US * 2);

    if (first && strcmp(first, "OK") == 0)
        return 0;
    if (first && g_str_has_prefix(first, "454 4.7.0 tokend: ")) {
        const char *why = first + strlen("454 4.7.0 tokend: ");
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s",
                         g_str_has_prefix(why, a->name) ? why + strlen(a->name) + 2 : why);
    }
    return error_set(e, TOKEND_EX_TEMPFAIL, "the Graph sender did not start");
}

RelayGraph *relay_graph_start(const Account *a, const struct relay_ctx *ctx, struct tokend_error *e)
{
    g_autofree RelayGraph *g = g_new0(RelayGraph, 1);
    int sv[2];

    /* Before the fork and the sandbox (which refuses open()). */
    if (!mimelib_load(e))
        return NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        error_set(e, TOKEND_EX_TEMPFAIL, "socketpair: %s", g_strerror(errno));
        return NULL;
    }
    if ((g->agent = fork()) < 0) {
        error_set(e, TOKEND_EX_TEMPFAIL, "fork: %s", g_strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    if (g->agent == 0) {
        /* The agent never speaks to the client. */
        close(sv[0]);
        close(ctx->in);
        close(ctx->out);
        agent_run(a, sv[1], ctx->timeout_s);
    }
    close(sv[1]);
    g->fd = sv[0];
    g->timeout_s = ctx->timeout_s;
    if (first_answer(g, a, e) < 0) {
        relay_graph_free(g_steal_pointer(&g));
        return NULL;
    }
    if (sandbox_enter(&session_policy, e) < 0) {
        relay_graph_free(g_steal_pointer(&g));
        return NULL;
    }
    return g_steal_pointer(&g);
}

void relay_graph_free(RelayGraph *g)
{
    int status;

    if (!g)
        return;
    close(g->fd);
    while (waitpid(g->agent, &status, 0) < 0 && errno == EINTR)
        ;
    g_free(g);
}

char *relay_graph_submit(RelayGraph *g, const char *sender, const GByteArray *mime)
{
    g_autofree char *head = g_strdup_printf("SEND %u %s\n", mime->len, sender);
    /* A token refresh, then two requests each bounded by the timeout. */
    gint64 deadline = g_get_monotonic_time() + RELAY_LOGIN_TIMEOUT_US * 2 +
                      (gint64)g->timeout_s * 2 * G_USEC_PER_SEC;
    char *reply;

    if (write_full(g->fd, head, strlen(head)) < 0 ||
        write_full(g->fd, (const char *)mime->data, mime->len) < 0 ||
        !(reply = read_reply(g->fd, deadline)))
        return g_strdup("451 4.3.0 tokend: the Graph sender did not answer; the message may not "
                        "have been sent");
    return reply;
}

/* Recipients ------------------------------------------------------------- */

/* Where the header ends: after its empty line, or the whole message. */
static size_t header_length(const GByteArray *msg)
{
    const char *d = (const char *)msg->data;
    const char *crlf = g_strstr_len(d, msg->len, "\r\n\r\n");
    const char *lf = g_strstr_len(d, msg->len, "\n\n");

    if (crlf && (!lf || crlf < lf))
        return (size_t)(crlf - d) + 4;
    return lf ? (size_t)(lf - d) + 2 : msg->len;
}

static void add_addresses(const struct mimelib *l, InternetAddressList *list, GHashTable *seen)
{
    int n = list ? l->address_list_length(list) : 0;

    for (int i = 0; i < n; i++) {
        InternetAddress *ia = l->address_list_get_address(list, i);
        GTypeInstance *inst = (GTypeInstance *)ia;
        if (l->type_check_instance_is_a(inst, l->address_group_get_type()))
            add_addresses(l, l->address_group_get_members((InternetAddressGroup *)ia), seen);
        else if (l->type_check_instance_is_a(inst, l->address_mailbox_get_type()))
            g_hash_table_add(
                seen,
                g_ascii_strdown(l->address_mailbox_get_addr((InternetAddressMailbox *)ia), -1));
    }
}

/* The addresses of the header's To, Cc and Bcc (groups' members
 * included), lower case. */
static GHashTable *header_recipients(const GByteArray *msg)
{
    static const GMimeAddressType types[] = {GMIME_ADDRESS_TYPE_TO, GMIME_ADDRESS_TYPE_CC,
                                             GMIME_ADDRESS_TYPE_BCC};
    /* Loaded by relay_graph_start, before the sandbox. */
    const struct mimelib *l = mimelib_load(NULL);
    GHashTable *seen;
    GMimeStream *stream;
    GMimeParser *parser;
    GMimeMessage *m;

    if (!l)
        return NULL;
    seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    stream = l->stream_mem_new_with_buffer((const char *)msg->data, header_length(msg));
    parser = l->parser_new_with_stream(stream);
    m = l->parser_construct_message(parser, NULL);

    for (size_t i = 0; m && i < G_N_ELEMENTS(types); i++)
        add_addresses(l, l->message_get_addresses(m, types[i]), seen);
    if (m)
        l->object_unref(m);
    l->object_unref(parser);
    l->object_unref(stream);
    return seen;
}

/* Microsoft Graph has no envelope: sendMail with MIME sends to the
 * message's own To, Cc and Bcc.  A MIME Bcc header becomes the message's
 * Bcc recipients, who get it without the header (Exchange's MIME
 * conversion, [MS-OXCMAIL] 2.1.3.1.1.2: Bcc recipients are never written
 * to the MIME of a message submitted onwards), so an SMTP client's blind
 * recipients, in RCPT TO and in no header, are added to the message as a
 * Bcc header and delivered without anyone seeing them.  The other way
 * round cannot be done: an address in To or Cc that is not a RCPT TO
 * (a client sending the recipients in several transactions, a list
 * expanded before the relay) would be sent to by Graph all the same, so
 * such a message is refused, saying why. */
int relay_graph_recipients(GByteArray *msg, const GPtrArray *rcpts, char **refusal)
{
    g_autoptr(GHashTable) seen = header_recipients(msg);
    g_autoptr(GHashTable) wanted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GString) bcc = g_string_new(NULL);
    bool crlf = g_strstr_len((const char *)msg->data, (gssize)header_length(msg), "\r\n") != NULL;
    GHashTableIter it;
    gpointer key;

    if (!seen) {
        *refusal = g_strdup("451 4.3.0 tokend: cannot read the message's recipients (GMime)");
        return -1;
    }
    for (guint i = 0; i < rcpts->len; i++) {
        char *low = g_ascii_strdown(g_ptr_array_index(rcpts, i), -1);
        if (!g_hash_table_contains(seen, low) && !g_hash_table_contains(wanted, low))
            g_string_append_printf(bcc, "%s%s", bcc->len ? (crlf ? ",\r\n " : ",\n ") : "Bcc: ",
                                   (const char *)g_ptr_array_index(rcpts, i));
        g_hash_table_add(wanted, low);
    }
    g_hash_table_iter_init(&it, seen);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        g_autofree char *safe = NULL;
        if (g_hash_table_contains(wanted, key))
            continue;
        safe = relay_safe_name(key);
        *refusal = g_strdup_printf(
            "554 5.6.0 tokend: <%s> is in the message's To, Cc or Bcc but not a RCPT TO of this "
            "transaction, and Microsoft Graph sends to every address of the header: give each "
            "of them as RCPT TO in one transaction",
            safe);
        return -1;
    }
    if (bcc->len) {
        g_string_append(bcc, crlf ? "\r\n" : "\n");
        g_byte_array_prepend(msg, (const guint8 *)bcc->str, (guint)bcc->len);
    }
    return 0;
}
