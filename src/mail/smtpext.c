/* SMTP service extensions: names, MAIL and RCPT parameters checked against
 * what upstream offers, BDAT's arguments.  Pure functions. */

#include <string.h>

#include "tokend/smtpext.h"

static const char *const names[] = {
    "SIZE",       "8BITMIME", "SMTPUTF8", "PIPELINING", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES",
    "BINARYMIME",
};

const char *smtpext_name(unsigned i)
{
    return i < G_N_ELEMENTS(names) ? names[i] : NULL;
}

unsigned smtpext_from_keywords(const char *const *keywords, unsigned n)
{
    unsigned exts = 0;

    for (unsigned k = 0; k < n; k++) {
        size_t len = strcspn(keywords[k], " ");
        for (unsigned i = 0; i < G_N_ELEMENTS(names); i++)
            if (strlen(names[i]) == len && g_ascii_strncasecmp(keywords[k], names[i], len) == 0)
                exts |= 1u << i;
    }
    return exts;
}

char *smtpext_ehlo_lines(unsigned exts, guint64 size, bool auth)
{
    g_autoptr(GPtrArray) words = g_ptr_array_new_with_free_func(g_free);
    GString *s = g_string_new(NULL);

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++)
        if (exts & (1u << i))
            g_ptr_array_add(words, (1u << i) == SMTPEXT_SIZE && size
                                       ? g_strdup_printf("SIZE %" G_GUINT64_FORMAT, size)
                                       : g_strdup(names[i]));
    if (auth)
        g_ptr_array_add(words, g_strdup("AUTH PLAIN LOGIN"));
    for (guint i = 0; i < words->len; i++)
        g_string_append_printf(s, "250%c%s%s", i + 1 < words->len ? '-' : ' ',
                               (char *)words->pdata[i], i + 1 < words->len ? "\r\n" : "");
    return g_string_free(s, FALSE);
}

/* What becomes of one parameter. */
enum action { PASS, DROP, REFUSE };

/* Parameters that only inform (RFC 3461 ORCPT, ENVID, RET; SIZE; a
 * NOTIFY that asks for no success notice; the relay's own AUTH=) are
 * dropped when upstream cannot take them, as a relaying MTA drops them
 * for a next hop without DSN (RFC 3461 §4.1); the others are refused. */
static const struct rule {
    const char *keyword;
    bool rcpt;
    enum smtpext needs; /* 0: never passed on */
    enum action without;
} rules[] = {
    {"SIZE", false, SMTPEXT_SIZE, DROP},
    {"SMTPUTF8", false, SMTPEXT_SMTPUTF8, REFUSE},
    {"RET", false, SMTPEXT_DSN, DROP},
    {"ENVID", false, SMTPEXT_DSN, DROP},
    {"AUTH", false, 0, DROP},
    {"BODY", false, SMTPEXT_8BITMIME, REFUSE},
    {"NOTIFY", true, SMTPEXT_DSN, DROP},
    {"ORCPT", true, SMTPEXT_DSN, DROP},
};

static const struct rule *rule_of(const char *keyword, size_t len, bool rcpt)
{
    for (size_t i = 0; i < G_N_ELEMENTS(rules); i++)
        if (rules[i].rcpt == rcpt && strlen(rules[i].keyword) == len &&
            g_ascii_strncasecmp(rules[i].keyword, keyword, len) == 0)
            return &rules[i];
    return NULL;
}

/* BODY=7BIT needs nothing of upstream; 8BITMIME and BINARYMIME their own. */
static enum smtpext body_needs(const char *value)
{
    if (g_ascii_strcasecmp(value, "7BIT") == 0)
        return 0;
    if (g_ascii_strcasecmp(value, "8BITMIME") == 0)
        return SMTPEXT_8BITMIME;
    if (g_ascii_strcasecmp(value, "BINARYMIME") == 0)
        return SMTPEXT_BINARYMIME;
    return ~0u;
}

/* *missing: the extension upstream lacks for a refusal (~0u: none would do). */
static enum action action_of(const struct rule *r, const char *value, unsigned offered,
                             unsigned *missing)
{
    unsigned needs = r->needs;
    g_autofree char *upper = g_ascii_strup(value ? value : "", -1);

    if (!r->needs)
        return DROP;
    if (strcmp(r->keyword, "BODY") == 0 && (needs = body_needs(upper)) == 0)
        return offered & SMTPEXT_8BITMIME ? PASS : DROP;
    *missing = needs;
    if (needs != ~0u && (offered & needs) == needs)
        return PASS;
    if (strcmp(r->keyword, "NOTIFY") == 0 && strstr(upper, "SUCCESS"))
        return REFUSE; /* a success notice that upstream cannot send */
    return needs == ~0u ? REFUSE : r->without;
}

static char *refusal(const char *param, size_t len, unsigned missing)
{
    g_autofree char *name = g_strcanon(g_strndup(param, MIN(len, 32)),
                                       G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "-", '?');

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++)
        if (missing == 1u << i)
            return g_strdup_printf("555 %s tokend: %s needs %s, which the upstream server "
                                   "does not offer",
                                   missing == SMTPEXT_SMTPUTF8 ? "5.6.7" : "5.5.4", name, names[i]);
    return g_strdup_printf("555 5.5.4 tokend: parameter %s is not supported", name);
}

int smtpext_params(const char *params, bool rcpt, unsigned offered, char **out, char **reply,
                   bool *utf8)
{
    g_auto(GStrv) list = g_strsplit(params, " ", -1);
    g_autoptr(GString) cmd = g_string_new(NULL);

    *out = *reply = NULL;
    *utf8 = false;
    for (char **p = list; *p; p++) {
        size_t len = strcspn(*p, "=");
        const struct rule *r = **p ? rule_of(*p, len, rcpt) : NULL;
        const char *value = (*p)[len] == '=' ? *p + len + 1 : NULL;
        unsigned missing = ~0u;
        enum action a = r ? action_of(r, value, offered, &missing) : REFUSE;

        if (!**p)
            continue;
        if (a == REFUSE) {
            *reply = refusal(*p, len, missing);
            return -1;
        }
        if (a == PASS)
            g_string_append_printf(cmd, " %s", *p);
        *utf8 = *utf8 || (r->needs == SMTPEXT_SMTPUTF8);
    }
    *out = g_string_free(g_steal_pointer(&cmd), FALSE);
    return 0;
}

int smtpext_bdat(const char *arg, guint64 *size, bool *last)
{
    g_auto(GStrv) parts = g_strsplit(arg, " ", 3);
    guint64 n;

    *size = 0;
    *last = false;
    if (!parts[0] || !*parts[0] || strspn(parts[0], "0123456789") != strlen(parts[0]) ||
        strlen(parts[0]) > 18 || !g_ascii_string_to_unsigned(parts[0], 10, 0, G_MAXINT64, &n, NULL))
        return -1;
    if (parts[1] && (g_ascii_strcasecmp(parts[1], "LAST") != 0 || parts[2]))
        return -1;
    *size = n;
    *last = parts[1] != NULL;
    return 0;
}

bool smtpext_non_ascii(const char *text)
{
    for (; *text; text++)
        if ((unsigned char)*text >= 0x80)
            return true;
    return false;
}
