/* The relay's local command parser: pure functions over one line. */

#include <string.h>

#include "tokend/relaycmd.h"

static const struct {
    const char *name;
    enum relaycmd_smtp verb;
} smtp_verbs[] = {
    {"EHLO", RELAYCMD_SMTP_EHLO}, {"HELO", RELAYCMD_SMTP_HELO},
    {"AUTH", RELAYCMD_SMTP_AUTH}, {"MAIL", RELAYCMD_SMTP_MAIL},
    {"RCPT", RELAYCMD_SMTP_RCPT}, {"DATA", RELAYCMD_SMTP_DATA},
    {"RSET", RELAYCMD_SMTP_RSET}, {"NOOP", RELAYCMD_SMTP_NOOP},
    {"QUIT", RELAYCMD_SMTP_QUIT}, {"VRFY", RELAYCMD_SMTP_VRFY},
    {"HELP", RELAYCMD_SMTP_HELP}, {"STARTTLS", RELAYCMD_SMTP_STARTTLS},
    {"BDAT", RELAYCMD_SMTP_BDAT},
};

bool relaycmd_printable(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return false;
    return true;
}

bool relaycmd_utf8_text(const char *line, size_t len)
{
    if (!g_utf8_validate_len(line, len, NULL))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] == 0x7f)
            return false;
    return true;
}

int relaycmd_smtp_parse(const char *line, size_t len, enum relaycmd_smtp *verb, const char **arg)
{
    size_t n = 0;
    enum relaycmd_smtp v = RELAYCMD_SMTP_UNKNOWN;
    bool ascii = relaycmd_printable(line, len);

    *verb = RELAYCMD_SMTP_UNKNOWN;
    *arg = "";
    if (strlen(line) != len || (!ascii && !relaycmd_utf8_text(line, len)))
        return -1;
    while (n < len && line[n] != ' ')
        n++;
    for (size_t i = 0; i < G_N_ELEMENTS(smtp_verbs); i++)
        if (strlen(smtp_verbs[i].name) == n &&
            g_ascii_strncasecmp(line, smtp_verbs[i].name, n) == 0)
            v = smtp_verbs[i].verb;
    /* UTF-8 only in the paths and parameters of MAIL and RCPT (RFC 6531). */
    if (!ascii && v != RELAYCMD_SMTP_MAIL && v != RELAYCMD_SMTP_RCPT)
        return -1;
    *verb = v;
    if (n < len)
        *arg = line + n + 1;
    return 0;
}

/* "<@a,@b:x@y>" -> "x@y"; the brackets are already gone. */
static const char *without_route(const char *inner)
{
    const char *colon;

    if (inner[0] != '@' || !(colon = strchr(inner, ':')))
        return inner;
    return colon + 1;
}

int relaycmd_path(const char *arg, const char *prefix, char **address, char **params)
{
    size_t plen = strlen(prefix);
    const char *open, *close;

    *address = *params = NULL;
    if (g_ascii_strncasecmp(arg, prefix, plen) != 0)
        return -1;
    open = arg + plen;
    if (*open == ' ')
        open++;
    if (*open != '<' || !(close = strchr(open, '>')))
        return -1;
    if (close[1] != '\0' && close[1] != ' ')
        return -1;
    {
        g_autofree char *inner = g_strndup(open + 1, (gsize)(close - open - 1));
        const char *addr = without_route(inner);
        if (strchr(addr, '<') || strchr(addr, ' '))
            return -1;
        *address = g_strdup(addr);
    }
    *params = g_strstrip(g_strdup(close + 1));
    return 0;
}

/* States: 0 in a line, 1 after CR, 2 at a line start, 3 "." at a line
 * start, 4 "." CR. */
size_t relaycmd_data_end(const char *data, size_t len, int *state, bool *end)
{
    static const struct {
        char ch;
        int next;
    } moves[5][2] = {
        {{'\r', 1}, {'\r', 1}}, {{'\n', 2}, {'\r', 1}},  {{'.', 3}, {'\r', 1}},
        {{'\r', 4}, {'\r', 4}}, {{'\n', -1}, {'\r', 1}},
    };

    *end = false;
    for (size_t i = 0; i < len; i++) {
        int st = *state, next = 0;
        /* Inside a line only CR matters: skip to it at memchr's pace. */
        if (st == 0) {
            const char *cr = memchr(data + i, '\r', len - i);
            if (!cr)
                return len;
            i = (size_t)(cr - data);
        }
        for (int m = 0; m < 2; m++) {
            if (data[i] == moves[st][m].ch) {
                next = moves[st][m].next;
                break;
            }
        }
        if (next < 0) {
            *state = RELAYCMD_DATA_LINE_START;
            *end = true;
            return i + 1;
        }
        *state = next;
    }
    return len;
}

void relaycmd_unstuff(const char *data, size_t len, int *state, GByteArray *out)
{
    size_t from = 0;

    for (size_t i = 0; i < len; i++) {
        if (*state == RELAYCMD_DATA_LINE_START && data[i] == '.') {
            g_byte_array_append(out, (const guint8 *)data + from, (guint)(i - from));
            from = i + 1;
        }
        *state = data[i] == '\r'                  ? 1
                 : *state == 1 && data[i] == '\n' ? RELAYCMD_DATA_LINE_START
                                                  : 0;
    }
    g_byte_array_append(out, (const guint8 *)data + from, (guint)(len - from));
}

static guchar *b64_decode(const char *b64, gsize *len)
{
    size_t n = strlen(b64);

    /* GLib's decoder skips what is not base64: check first. */
    if (n == 0 || n % 4 != 0 ||
        strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789+/=") != n)
        return NULL;
    return g_base64_decode(b64, len);
}

char *relaycmd_plain_user(const char *b64)
{
    gsize len = 0;
    guchar *raw = b64_decode(b64, &len);
    const guchar *nul1, *nul2;
    char *user = NULL;

    if (!raw)
        return NULL;
    nul1 = memchr(raw, '\0', len);
    nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (gsize)(nul1 + 1 - raw)) : NULL;
    if (nul2 && nul2 > nul1 + 1 &&
        relaycmd_printable((const char *)nul1 + 1, (size_t)(nul2 - nul1 - 1)))
        user = g_strndup((const char *)nul1 + 1, (gsize)(nul2 - nul1 - 1));
    explicit_bzero(raw, len);
    g_free(raw);
    return user;
}

char *relaycmd_b64_text(const char *b64)
{
    gsize len = 0;
    guchar *raw = b64_decode(b64, &len);
    char *text = NULL;

    if (!raw)
        return NULL;
    if (len > 0 && relaycmd_printable((const char *)raw, len))
        text = g_strndup((const char *)raw, len);
    explicit_bzero(raw, len);
    g_free(raw);
    return text;
}

/* A password: any bytes but NUL, CR and LF (UTF-8 passwords pass). */
static char *password_of(const guchar *start, gsize len)
{
    for (gsize i = 0; i < len; i++)
        if (start[i] == '\0' || start[i] == '\r' || start[i] == '\n')
            return NULL;
    return g_strndup((const char *)start, len);
}

char *relaycmd_plain_password(const char *b64)
{
    gsize len = 0;
    guchar *raw = b64_decode(b64, &len);
    const guchar *nul1, *nul2;
    char *password = NULL;

    if (!raw)
        return NULL;
    nul1 = memchr(raw, '\0', len);
    nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (gsize)(nul1 + 1 - raw)) : NULL;
    if (nul2)
        password = password_of(nul2 + 1, len - (gsize)(nul2 + 1 - raw));
    explicit_bzero(raw, len);
    g_free(raw);
    return password;
}

char *relaycmd_b64_password(const char *b64)
{
    gsize len = 0;
    guchar *raw = b64_decode(b64, &len);
    char *password;

    if (!raw)
        return NULL;
    password = password_of(raw, len);
    explicit_bzero(raw, len);
    g_free(raw);
    return password;
}

/* An atom or a quoted string at *p (RFC 9051 astring without literals);
 * *p moves past it.  NULL when malformed. */
static char *imap_astring(const char **p)
{
    const char *s = *p;
    g_autoptr(GString) out = g_string_new(NULL);

    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                s++;
            else if (*s == '\\')
                return NULL;
            g_string_append_c(out, *s);
        }
        if (*s != '"')
            return NULL;
        *p = s + 1;
        return g_string_free(g_steal_pointer(&out), FALSE);
    }
    while (*s && *s != ' ' && !strchr("(){%*\"\\", *s))
        g_string_append_c(out, *s++);
    if (out->len == 0 || (*s && *s != ' '))
        return NULL;
    *p = s;
    return g_string_free(g_steal_pointer(&out), FALSE);
}

int relaycmd_imap_parse(const char *line, size_t len, char **tag, char **command, GPtrArray *args,
                        guint max_args)
{
    const char *p = line;
    g_autofree char *t = NULL, *c = NULL;

    *tag = *command = NULL;
    if (!relaycmd_printable(line, len) || strlen(line) != len)
        return -1;
    if (!(t = imap_astring(&p)) || line[0] == '"' || strchr(t, '+') || *p != ' ')
        return -1;
    p++;
    if (line[0] == '"' || *p == '"' || !(c = imap_astring(&p)))
        return -1;
    while (*p == ' ') {
        char *arg;
        p++;
        if (args->len >= max_args || !(arg = imap_astring(&p)))
            return -1;
        g_ptr_array_add(args, arg);
    }
    if (*p)
        return -1;
    *tag = g_steal_pointer(&t);
    *command = g_ascii_strup(c, -1);
    return 0;
}

int relaycmd_pop3_parse(const char *line, size_t len, char **command, const char **arg)
{
    const char *space;

    *command = NULL;
    *arg = "";
    if (!relaycmd_printable(line, len) || strlen(line) != len || len == 0)
        return -1;
    space = strchr(line, ' ');
    *command = g_ascii_strup(line, space ? (gssize)(space - line) : -1);
    if (space)
        *arg = space + 1;
    return 0;
}
