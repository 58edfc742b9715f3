#include <string.h>

#include "tokend/secstr.h"

static void secstr_reserve(SecStr *s, size_t extra)
{
    size_t need = s->len + extra + 1;
    size_t cap = s->cap ? s->cap : 64;
    char *grown;

    if (need <= s->cap)
        return;
    while (cap < need)
        cap *= 2;
    /* No realloc: a moved buffer would leave the old bytes behind. */
    grown = g_malloc0(cap);
    if (s->data) {
        memcpy(grown, s->data, s->len);
        explicit_bzero(s->data, s->cap);
        g_free(s->data);
    }
    s->data = grown;
    s->cap = cap;
}

SecStr *secstr_new(size_t reserve)
{
    SecStr *s = g_new0(SecStr, 1);
    secstr_reserve(s, reserve);
    return s;
}

SecStr *secstr_from(const char *data, size_t len)
{
    SecStr *s = secstr_new(len);
    secstr_append(s, data, len);
    return s;
}

SecStr *secstr_dup(const SecStr *s)
{
    return s ? secstr_from(s->data, s->len) : NULL;
}

void secstr_append(SecStr *s, const char *data, size_t len)
{
    secstr_reserve(s, len);
    memcpy(s->data + s->len, data, len);
    s->len += len;
    s->data[s->len] = '\0';
}

void secstr_append_str(SecStr *s, const char *str)
{
    secstr_append(s, str, strlen(str));
}

static bool form_unreserved(unsigned char c)
{
    return g_ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

void secstr_append_form(SecStr *s, const char *key, const char *value, size_t value_len)
{
    static const char hex[] = "0123456789ABCDEF";

    if (s->len > 0)
        secstr_append(s, "&", 1);
    secstr_append_str(s, key);
    secstr_append(s, "=", 1);
    /* Escaped here, not with curl_easy_escape, so that no unwiped copy of
     * the secret is left in a library-allocated buffer. */
    secstr_reserve(s, value_len * 3);
    for (size_t i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (form_unreserved(c)) {
            s->data[s->len++] = (char)c;
        } else if (c == ' ') {
            s->data[s->len++] = '+';
        } else {
            s->data[s->len++] = '%';
            s->data[s->len++] = hex[c >> 4];
            s->data[s->len++] = hex[c & 15];
        }
    }
    s->data[s->len] = '\0';
}

bool secstr_equal(const SecStr *a, const SecStr *b)
{
    unsigned char diff = 0;

    if (!a || !b || a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++)
        diff |= (unsigned char)(a->data[i] ^ b->data[i]);
    return diff == 0;
}

void secstr_free(SecStr *s)
{
    if (!s)
        return;
    if (s->data) {
        explicit_bzero(s->data, s->cap);
        g_free(s->data);
    }
    g_free(s);
}

void secure_free_str(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    g_free(s);
}
