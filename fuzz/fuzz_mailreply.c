/* mailreply_parse and mailreply_sasl_status: what mail servers answer
 * during a login, then sasl_classify on every final reply.  The first byte
 * chooses the parser (its value mod 4: IMAP, POP3, SMTP, the SASL error
 * challenge); the rest is split into lines at "\n" as the connection
 * reader splits them. */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tokend/mailreply.h"
#include "tokend/sasl.h"

static void check_word(const char *s)
{
    if (!s)
        return;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            abort();
}

/* What callers rely on: a code is one word without "]"; atoms are atoms
 * (they go into the client's PREAUTH line); an IMAP final reply has a tag. */
static void check_reply(enum mail_proto p, const MailReply *r)
{
    if (!r->line || !r->text || strchr(r->line, '\n') || (r->code && strchr(r->code, ']')))
        abort();
    check_word(r->code);
    check_word(r->keyword);
    for (guint i = 0; r->atoms && i < r->atoms->len; i++) {
        const char *a = g_ptr_array_index(r->atoms, i);
        check_word(a);
        if (p == MAIL_PROTO_IMAP && !mailreply_is_atom(a))
            abort();
    }
    if (p == MAIL_PROTO_IMAP && r->kind == MAILREPLY_FINAL && !mailreply_is_atom(r->tag))
        abort();
    if (p == MAIL_PROTO_SMTP && (r->number < 200 || r->number > 599))
        abort();
}

static void check_status(const char *data)
{
    g_autofree char *status = mailreply_sasl_status(data);

    if (status && (!*status || strlen(status) > 64))
        abort();
    check_word(status);
}

static void one_line(int which, const char *line)
{
    g_auto(MailReply) r = {0};
    enum mail_proto p = (enum mail_proto)which;

    if (which == 3) {
        check_status(line);
        return;
    }
    if (mailreply_parse(p, line, &r) < 0) {
        if (r.line || r.text || r.atoms)
            abort();
        return;
    }
    check_reply(p, &r);
    if (r.kind == MAILREPLY_CONTINUE)
        check_status(r.text);
    for (int m = SASL_MECH_XOAUTH2; m <= SASL_MECH_OAUTHBEARER; m++) {
        int got =
            sasl_classify(p, (enum sasl_mech)m, &r, r.kind == MAILREPLY_CONTINUE ? NULL : "401");
        if (got < SASL_RESULT_OK || got > SASL_RESULT_FAILED)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (size < 1)
        return 0;
    text = g_strndup((const char *)data + 1, size - 1); /* a line is a C string to the parser */
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        size_t n = strlen(*l);
        if (n && (*l)[n - 1] == '\r')
            (*l)[n - 1] = '\0';
        one_line(data[0] % 4, *l);
    }
    return 0;
}
