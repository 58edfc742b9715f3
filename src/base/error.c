#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tokend/error.h"
#include "tokend/log.h"
#include "tokend/redact.h"

#define MESSAGE_MAX 400

char *error_one_line(const char *text, size_t max)
{
    GString *out = g_string_sized_new(64);
    const char *p = text ? text : "";
    bool space = false;

    while (*p && out->len < max) {
        gunichar c = g_utf8_get_char_validated(p, -1);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            p++;
            continue;
        }
        if (g_unichar_iscntrl(c) || g_unichar_isspace(c)) {
            space = out->len > 0;
        } else {
            if (space)
                g_string_append_c(out, ' ');
            space = false;
            g_string_append_unichar(out, c);
        }
        p = g_utf8_next_char(p);
    }
    if (*p)
        g_string_append(out, "...");
    return g_string_free(out, FALSE);
}

static void escape_char(GString *out, gunichar c)
{
    switch (c) {
    case '\n':
        g_string_append(out, "\\n");
        break;
    case '\r':
        g_string_append(out, "\\r");
        break;
    case '\t':
        g_string_append(out, "\\t");
        break;
    default:
        g_string_append_printf(out, c < 0x100 ? "\\x%02x" : "\\u%04x", c);
    }
}

char *error_escape(const char *text)
{
    GString *out = g_string_sized_new(64);

    for (const char *p = text ? text : ""; *p;) {
        gunichar c = g_utf8_get_char_validated(p, -1);

        if (c == (gunichar)-1 || c == (gunichar)-2) {
            g_string_append_printf(out, "\\x%02x", (unsigned char)*p++);
            continue;
        }
        if (c == '\\')
            g_string_append(out, "\\\\");
        else if (g_unichar_iscntrl(c) || g_unichar_type(c) == G_UNICODE_FORMAT ||
                 g_unichar_type(c) == G_UNICODE_LINE_SEPARATOR ||
                 g_unichar_type(c) == G_UNICODE_PARAGRAPH_SEPARATOR)
            escape_char(out, c);
        else
            g_string_append_unichar(out, c);
        p = g_utf8_next_char(p);
    }
    return g_string_free(out, FALSE);
}

static char *format_line(const char *fmt, va_list ap) G_GNUC_PRINTF(1, 0);

static char *format_line(const char *fmt, va_list ap)
{
    g_autofree char *raw = g_strdup_vprintf(fmt, ap);
    return error_one_line(raw, MESSAGE_MAX);
}

int error_set(struct tokend_error *e, int status, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return -1;
    error_clear(e);
    e->status = status;
    va_start(ap, fmt);
    e->message = format_line(fmt, ap);
    va_end(ap);
    return -1;
}

void error_set_hint(struct tokend_error *e, const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return;
    g_free(e->hint);
    va_start(ap, fmt);
    e->hint = format_line(fmt, ap);
    va_end(ap);
}

void error_set_detail(struct tokend_error *e, const char *text)
{
    if (!e)
        return;
    g_free(e->detail);
    e->detail = NULL;
    if (text) {
        g_autofree char *safe = redact_text(text, NULL);
        e->detail = error_one_line(safe, 2000);
    }
}

void error_prefix(struct tokend_error *e, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *prefix = NULL;
    char *joined;

    if (!e || !e->message)
        return;
    va_start(ap, fmt);
    prefix = format_line(fmt, ap);
    va_end(ap);
    joined = g_strdup_printf("%s: %s", prefix, e->message);
    g_free(e->message);
    e->message = joined;
}

void error_clear(struct tokend_error *e)
{
    if (!e)
        return;
    g_clear_pointer(&e->message, g_free);
    g_clear_pointer(&e->hint, g_free);
    g_clear_pointer(&e->detail, g_free);
    e->status = 0;
    e->retry_after = 0;
}

void error_move(struct tokend_error *dst, struct tokend_error *src)
{
    error_clear(dst);
    *dst = *src;
    *src = (struct tokend_error)TOKEND_ERROR_INIT;
}

void error_print(const struct tokend_error *e, const char *account)
{
    const char *msg = e->message ? e->message : "unknown error";
    GString *line = g_string_new("tokend: ");

    if (account)
        g_string_append_printf(line, "%s: ", account);
    g_string_append(line, msg);
    if (e->hint)
        g_string_append_printf(line, "; %s", e->hint);
    fprintf(stderr, "%s\n", line->str);
    if (e->detail && log_level >= LOG_LEVEL_VERBOSE)
        fprintf(stderr, "tokend: server said: %s\n", e->detail);
    g_string_free(line, TRUE);
}

const char *error_status_name(int status)
{
    switch (status) {
    case TOKEND_OK:
        return "ok";
    case TOKEND_EX_USAGE:
        return "usage";
    case TOKEND_EX_DATAERR:
        return "bad-response";
    case TOKEND_EX_UNAVAILABLE:
        return "keyring-unavailable";
    case TOKEND_EX_SOFTWARE:
        return "internal";
    case TOKEND_EX_CANTCREAT:
        return "cannot-write";
    case TOKEND_EX_TEMPFAIL:
        return "temporary";
    case TOKEND_EX_NOPERM:
        return "sign-in-needed";
    case TOKEND_EX_CONFIG:
        return "config";
    case TOKEND_EX_INTERRUPTED:
        return "interrupted";
    default:
        return "error";
    }
}
