#include <string.h>

#include <glib.h>

#include "tokend/redact.h"

static bool token_char(unsigned char c)
{
    return c != 0 && (g_ascii_isalnum(c) || strchr("-._~+/=", c) != NULL);
}

/* 8-4-4-4-12 hex digits: the trace and correlation ids servers add to
 * their errors, which support asks for and which are no secret. */
static bool uuid_shaped(const char *run, size_t len)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

    if (len != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; i < len; i++)
        if (shape[i] == '-' ? run[i] != '-' : !g_ascii_isxdigit(run[i]))
            return false;
    return true;
}

/* A run of token characters that could be a token: long, with small
 * letters and capitals or digits; not a protocol word in capitals such as
 * AUTHENTICATIONFAILED, nor a UUID. */
static bool token_shaped(const char *run, size_t len)
{
    bool upper = false, lower = false, digit = false;

    if (len < REDACT_MIN_RUN || uuid_shaped(run, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)run[i];
        upper |= g_ascii_isupper(c);
        lower |= g_ascii_islower(c);
        digit |= g_ascii_isdigit(c);
    }
    /* Random base64 of this length all but surely has a small letter;
     * protocol words (250-ENHANCEDSTATUSCODES, APPENDLIMIT=35651584) have
     * none. */
    return lower && (upper || digit);
}

/* Length of the known secret that starts at p, or 0. */
static size_t known_at(const char *p, const char *const *known)
{
    for (const char *const *k = known; k && *k; k++) {
        size_t n = strlen(*k);
        if (n > 0 && strncmp(p, *k, n) == 0)
            return n;
    }
    return 0;
}

char *redact_text(const char *text, const char *const *known)
{
    const char *p = text ? text : "";
    GString *out = g_string_sized_new(strlen(p) + 1);

    while (*p) {
        size_t k = known_at(p, known);
        if (k > 0) {
            g_string_append(out, REDACTED);
            p += k;
            continue;
        }
        if (!token_char((unsigned char)*p)) {
            g_string_append_c(out, *p++);
            continue;
        }
        size_t len = 0;
        while (token_char((unsigned char)p[len]) && known_at(p + len, known) == 0)
            len++;
        if (token_shaped(p, len))
            g_string_append(out, REDACTED);
        else
            g_string_append_len(out, p, (gssize)len);
        p += len;
    }
    return g_string_free(out, FALSE);
}

bool redact_needed(const char *text, const char *const *known)
{
    g_autofree char *r = redact_text(text, known);
    return g_strcmp0(r, text ? text : "") != 0;
}
