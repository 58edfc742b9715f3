#include <string.h>
#include <cjson/cJSON.h>

#include "tokend/mailreply.h"
#include "tokend/shared.h"

/* Longest SASL error challenge decoded (its JSON is a few dozen bytes). */
#define SASL_CHALLENGE_MAX 4096
#define SASL_STATUS_MAX 64

void mailreply_init(MailReply *r)
{
    memset(r, 0, sizeof(*r));
}

void mailreply_clear(MailReply *r)
{
    g_free(r->tag);
    g_free(r->keyword);
    g_free(r->code);
    g_free(r->text);
    g_free(r->line);
    if (r->atoms)
        g_ptr_array_unref(r->atoms);
    mailreply_init(r);
}

static bool atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\]", c);
}

bool mailreply_is_atom(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!atom_char((unsigned char)*s))
            return false;
    return true;
}

/* Printable ASCII but space: a word of POP3 CAPA or SMTP EHLO. */
static bool is_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* The words of text, split at spaces, those that pass ok. */
static GPtrArray *words(const char *text, bool (*ok)(const char *))
{
    g_auto(GStrv) parts = g_strsplit(text, " ", -1);
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);

    for (char **p = parts; *p; p++)
        if (ok(*p))
            g_ptr_array_add(out, g_strdup(*p));
    return out;
}

/* Length of the word at s (up to a space or the end). */
static size_t word_len(const char *s)
{
    return strcspn(s, " ");
}

/* s starts with word, case-insensitively, followed by a space or the end;
 * *rest is then what follows the space. */
static bool take_word(const char *s, const char *word, const char **rest)
{
    size_t n = strlen(word);

    if (g_ascii_strncasecmp(s, word, n) != 0 || (s[n] != ' ' && s[n] != '\0'))
        return false;
    *rest = s[n] == ' ' ? s + n + 1 : s + n;
    return true;
}

/* IMAP resp-text: ["[" resp-text-code "]" SP] text.  A code is an atom,
 * optionally followed by a space and anything but "]". */
static void imap_resp_text(const char *s, MailReply *r)
{
    const char *end;

    if (*s == '[' && (end = strchr(s, ']')) != NULL) {
        g_autofree char *inside = g_strndup(s + 1, (gsize)(end - s - 1));
        size_t n = word_len(inside);
        g_autofree char *atom = g_strndup(inside, n);

        if (mailreply_is_atom(atom)) {
            r->code = g_ascii_strup(atom, -1);
            if (g_ascii_strcasecmp(atom, "CAPABILITY") == 0)
                r->atoms = words(inside[n] ? inside + n + 1 : "", mailreply_is_atom);
            s = end + 1;
            while (*s == ' ')
                s++;
        }
    }
    r->text = g_strdup(s);
}

static const struct {
    const char *word;
    enum mailreply_status status;
} imap_statuses[] = {
    {"OK", MAILREPLY_OK},   {"NO", MAILREPLY_NO},           {"BAD", MAILREPLY_BAD},
    {"BYE", MAILREPLY_BYE}, {"PREAUTH", MAILREPLY_PREAUTH},
};

/* A status response's word, or MAILREPLY_NONE with *rest unchanged. */
static enum mailreply_status imap_status(const char *s, const char **rest)
{
    for (size_t i = 0; i < G_N_ELEMENTS(imap_statuses); i++)
        if (take_word(s, imap_statuses[i].word, rest))
            return imap_statuses[i].status;
    return MAILREPLY_NONE;
}

/* "* 3 EXISTS", "* CAPABILITY IMAP4rev1 ...", "* FLAGS (...)". */
static int imap_untagged_data(const char *s, MailReply *r)
{
    size_t n;

    if (g_ascii_isdigit(*s)) {
        s += strspn(s, "0123456789");
        if (*s++ != ' ')
            return -1;
    }
    n = word_len(s);
    r->keyword = g_ascii_strup(s, (gssize)n);
    if (!mailreply_is_atom(r->keyword))
        return -1;
    s += n;
    if (*s == ' ')
        s++;
    if (strcmp(r->keyword, "CAPABILITY") == 0)
        r->atoms = words(s, mailreply_is_atom);
    r->text = g_strdup(s);
    return 0;
}

static int imap_parse(const char *line, MailReply *r)
{
    const char *rest;
    size_t n;

    if (line[0] == '+' && (line[1] == ' ' || line[1] == '\0')) {
        r->kind = MAILREPLY_CONTINUE;
        r->text = g_strdup(line[1] ? line + 2 : "");
        return 0;
    }
    if (line[0] == '*' && line[1] == ' ') {
        r->kind = MAILREPLY_UNTAGGED;
        r->status = imap_status(line + 2, &rest);
        if (r->status == MAILREPLY_NONE)
            return imap_untagged_data(line + 2, r);
        imap_resp_text(rest, r);
        return 0;
    }
    /* tag SP ("OK" / "NO" / "BAD") SP resp-text; a tag has no "+". */
    n = word_len(line);
    r->tag = g_strndup(line, n);
    if (!mailreply_is_atom(r->tag) || strchr(r->tag, '+') || line[n] != ' ')
        return -1;
    r->kind = MAILREPLY_FINAL;
    r->status = imap_status(line + n + 1, &rest);
    if (r->status != MAILREPLY_OK && r->status != MAILREPLY_NO && r->status != MAILREPLY_BAD)
        return -1;
    imap_resp_text(rest, r);
    return 0;
}

/* POP3 resp-code (RFC 2449 §8): "[" resp-level *("/" resp-level) "]". */
static void pop3_resp_text(const char *s, MailReply *r)
{
    const char *end;

    if (*s == '[' && (end = strchr(s, ']')) != NULL && end > s + 1) {
        g_autofree char *code = g_strndup(s + 1, (gsize)(end - s - 1));
        if (is_word(code) && code[0] != '/' && !strstr(code, "//") &&
            code[strlen(code) - 1] != '/') {
            r->code = g_ascii_strup(code, -1);
            s = end + 1;
            while (*s == ' ')
                s++;
        }
    }
    r->text = g_strdup(s);
    r->atoms = words(s, is_word);
}

static int pop3_parse(const char *line, MailReply *r)
{
    const char *rest;

    if (take_word(line, "+OK", &rest) || take_word(line, "-ERR", &rest)) {
        r->kind = MAILREPLY_FINAL;
        r->status = line[0] == '+' ? MAILREPLY_OK : MAILREPLY_NO;
        pop3_resp_text(rest, r);
        return 0;
    }
    if (line[0] == '+' && (line[1] == ' ' || line[1] == '\0')) {
        r->kind = MAILREPLY_CONTINUE;
        r->text = g_strdup(line[1] ? line + 2 : "");
        return 0;
    }
    return -1;
}

/* An enhanced status code at s (RFC 3463: class "." subject "." detail,
 * 1 to 3 digits each) whose class is that of the reply; its length or 0. */
static size_t enhanced_code(const char *s, int number)
{
    const char *p = s;

    if (*p != '0' + number / 100 || p[1] != '.')
        return 0;
    p += 2;
    for (int part = 0; part < 2; part++) {
        size_t n = strspn(p, "0123456789");
        if (n < 1 || n > 3)
            return 0;
        p += n;
        if (part == 0 && *p++ != '.')
            return 0;
    }
    return *p == ' ' || *p == '\0' ? (size_t)(p - s) : 0;
}

static int smtp_parse(const char *line, MailReply *r)
{
    const char *s = line + 3;
    size_t n;

    if (strspn(line, "0123456789") < 3 || line[0] < '2' || line[0] > '5' ||
        (*s != ' ' && *s != '-' && *s != '\0'))
        return -1;
    r->number = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    r->more = *s == '-';
    r->kind = line[0] == '3' ? MAILREPLY_CONTINUE : MAILREPLY_FINAL;
    r->status = line[0] == '2' ? MAILREPLY_OK : line[0] == '3' ? MAILREPLY_NONE : MAILREPLY_NO;
    if (*s)
        s++;
    if (r->kind == MAILREPLY_FINAL && (n = enhanced_code(s, r->number)) > 0) {
        r->code = g_strndup(s, n);
        s += n;
        while (*s == ' ')
            s++;
    }
    r->text = g_strdup(s);
    r->atoms = words(s, is_word);
    return 0;
}

int mailreply_parse(enum mail_proto p, const char *line, MailReply *r)
{
    int ok = -1;

    mailreply_clear(r);
    switch (p) {
    case MAIL_PROTO_IMAP:
        ok = imap_parse(line, r);
        break;
    case MAIL_PROTO_POP3:
        ok = pop3_parse(line, r);
        break;
    case MAIL_PROTO_SMTP:
        ok = smtp_parse(line, r);
        break;
    }
    if (ok < 0) {
        mailreply_clear(r);
        return -1;
    }
    r->line = g_strdup(line);
    return 0;
}

/* RFC 4648 base64, padded, as the challenge is sent. */
static bool is_base64(const char *s, size_t n)
{
    size_t pad = 0;

    if (n == 0 || n % 4 != 0)
        return false;
    while (pad < 2 && s[n - 1 - pad] == '=')
        pad++;
    for (size_t i = 0; i < n - pad; i++)
        if (!g_ascii_isalnum(s[i]) && s[i] != '+' && s[i] != '/')
            return false;
    return true;
}

char *mailreply_sasl_status(const char *data)
{
    size_t n = strlen(data);
    gsize len = 0;
    g_autofree guchar *json = NULL;
    g_autoptr(cJSON) root = NULL;
    const cJSON *status;

    if (n > SASL_CHALLENGE_MAX || !is_base64(data, n))
        return NULL;
    json = g_base64_decode(data, &len);
    root = cJSON_ParseWithLength((const char *)json, len);
    status = cJSON_GetObjectItemCaseSensitive(root, "status");
    if (!cJSON_IsObject(root) || !cJSON_IsString(status) || !status->valuestring[0] ||
        strlen(status->valuestring) > SASL_STATUS_MAX || !is_word(status->valuestring))
        return NULL;
    return g_strdup(status->valuestring);
}
