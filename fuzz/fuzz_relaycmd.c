/* The relay's local command parser: what a local mail client says before
 * its login.  The first byte chooses the parser (its value mod 4: SMTP
 * command with MAIL/RCPT paths, their parameters (smtpext.c), BDAT and AUTH
 * responses, IMAP command, POP3
 * command, the end-of-data scanner over the whole input); the rest is
 * split into lines at "\n" as the relay's reader splits them. */

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tokend/relaycmd.h"
#include "tokend/smtpext.h"

static void check_printable(const char *s)
{
    if (s && !relaycmd_printable(s, strlen(s)))
        abort();
}

/* A password: no CR or LF (NUL ends the C string anyway). */
static void check_password(char *p)
{
    if (p && strpbrk(p, "\r\n"))
        abort();
    g_free(p);
}

/* MAIL and RCPT parameters, upstream offering all or nothing: what is
 * passed on is a subset of what came, a refusal one printable line. */
static void smtp_params(const char *params, bool rcpt)
{
    static const unsigned offers[] = {0, SMTPEXT_RELAY | SMTPEXT_BINARYMIME};

    for (size_t i = 0; i < G_N_ELEMENTS(offers); i++) {
        g_autofree char *out = NULL, *reply = NULL;
        bool utf8;
        int rc = smtpext_params(params, rcpt, offers[i], &out, &reply, &utf8);

        if ((rc == 0) != (out != NULL) || (rc == 0) == (reply != NULL))
            abort();
        if (out && strlen(out) > strlen(params) + 1)
            abort();
        if (reply &&
            (!g_str_has_prefix(reply, "555 ") || !relaycmd_printable(reply, strlen(reply))))
            abort();
    }
}

static void smtp_line(const char *line)
{
    enum relaycmd_smtp verb;
    const char *arg;
    g_autofree char *address = NULL, *params = NULL, *user = NULL, *text = NULL;
    guint64 size;
    bool last;

    if (relaycmd_smtp_parse(line, strlen(line), &verb, &arg) < 0)
        return;
    if (relaycmd_path(arg, verb == RELAYCMD_SMTP_RCPT ? "TO:" : "FROM:", &address, &params) == 0) {
        if (strchr(address, '<') || strchr(address, ' '))
            abort();
        if (!relaycmd_utf8_text(params, strlen(params)))
            abort();
        smtp_params(params, verb == RELAYCMD_SMTP_RCPT);
    }
    if (relaycmd_smtp_parse(line, strlen(line), &verb, &arg) == 0 && verb == RELAYCMD_SMTP_BDAT &&
        smtpext_bdat(arg, &size, &last) == 0 && size > G_MAXINT64)
        abort();
    user = relaycmd_plain_user(arg);
    text = relaycmd_b64_text(arg);
    check_printable(user);
    check_printable(text);
    check_password(relaycmd_plain_password(arg));
    check_password(relaycmd_b64_password(arg));
}

static void imap_line(const char *line)
{
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *tag = NULL, *command = NULL;

    if (relaycmd_imap_parse(line, strlen(line), &tag, &command, args, 2) < 0) {
        if (tag || command)
            abort();
        return;
    }
    if (!*tag || !*command || args->len > 2)
        abort();
    check_printable(tag);
}

static void pop3_line(const char *line)
{
    g_autofree char *command = NULL;
    const char *arg;

    if (relaycmd_pop3_parse(line, strlen(line), &command, &arg) == 0 && !command)
        abort();
}

static void data_end(const uint8_t *data, size_t size)
{
    int state = RELAYCMD_DATA_LINE_START, stuff = RELAYCMD_DATA_LINE_START;
    bool end = false;
    size_t off = 0;
    g_autoptr(GByteArray) unstuffed = g_byte_array_new();

    /* Chunks of 7 bytes: the end is found across their edges. */
    while (off < size && !end) {
        size_t n = MIN(7, size - off);
        size_t took = relaycmd_data_end((const char *)data + off, n, &state, &end);
        if (took > n || (!end && took != n))
            abort();
        relaycmd_unstuff((const char *)data + off, took, &stuff, unstuffed);
        off += took;
    }
    if (end && (off < 3 || memcmp(data + off - 3, ".\r\n", 3) != 0))
        abort();
    /* Unstuffing only drops dots; the end line leaves its CR LF. */
    if (unstuffed->len > off ||
        (end && (unstuffed->len < 2 || memcmp(unstuffed->data + unstuffed->len - 2, "\r\n", 2))))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;

    if (size < 1)
        return 0;
    if (data[0] % 4 == 3) {
        data_end(data + 1, size - 1);
        return 0;
    }
    text = g_strndup((const char *)data + 1, size - 1);
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        size_t n = strlen(*l);
        if (n && (*l)[n - 1] == '\r')
            (*l)[n - 1] = '\0';
        if (data[0] % 4 == 0)
            smtp_line(*l);
        else if (data[0] % 4 == 1)
            imap_line(*l);
        else
            pop3_line(*l);
    }
    return 0;
}
