#include <stdarg.h>
#include <string.h>

#include "tokend/autoconfig.h"
#include "tokend/uri.h"

#define MAX_DEPTH 16
#define MAX_VALUE 2048

enum server_slot {
    SLOT_NONE,
    SLOT_IMAP,
    SLOT_POP,
    SLOT_SMTP,
};

struct parse {
    Autoconfig *ac;
    const char *email;
    GPtrArray *stack; /* element names, outermost first */
    GString *text;
    enum server_slot slot;
    struct autoconfig_server cur;
    char *cur_username;
    bool in_oauth;
};

static void server_clear(struct autoconfig_server *s)
{
    g_clear_pointer(&s->host, g_free);
    g_clear_pointer(&s->socket_type, g_free);
    s->port = 0;
    s->oauth2 = false;
}

void autoconfig_free(Autoconfig *a)
{
    if (!a)
        return;
    server_clear(&a->imap);
    server_clear(&a->pop);
    server_clear(&a->smtp);
    g_free(a->username);
    g_free(a->issuer);
    g_free(a->scopes);
    g_free(a->auth_url);
    g_free(a->token_url);
    g_free(a);
}

static gboolean fail(GError **err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* The message is folded to one printable line by error_set later. */
static gboolean fail(GError **err, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (strlen(text) > 200)
        strcpy(text + 196, "...");
    g_set_error_literal(err, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT, text);
    return FALSE;
}

/* Values end up in the configuration file: printable ASCII, and nothing
 * GKeyFile or the inline-comment rule would read differently. */
static bool value_safe(const char *v)
{
    if (!*v)
        return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '\\' || *p == '#')
            if (*p != ' ')
                return false;
    return v[0] != ' ' && v[strlen(v) - 1] != ' ';
}

static const char *parent(const struct parse *p, guint up)
{
    return p->stack->len > up ? g_ptr_array_index(p->stack, p->stack->len - 1 - up) : "";
}

static void on_start(GMarkupParseContext *ctx, const char *name, const char **attr_names,
                     const char **attr_values, gpointer user, GError **err)
{
    struct parse *p = user;
    const char *type = NULL;

    (void)ctx;
    if (p->stack->len >= MAX_DEPTH) {
        fail(err, "elements nested deeper than %d levels", MAX_DEPTH);
        return;
    }
    if (p->stack->len == 0 && strcmp(name, "clientConfig") != 0) {
        fail(err, "not an autoconfig document (the root is <%s>, not <clientConfig>)", name);
        return;
    }
    g_string_truncate(p->text, 0);
    if (strcmp(parent(p, 0), "emailProvider") == 0 &&
        (strcmp(name, "incomingServer") == 0 || strcmp(name, "outgoingServer") == 0)) {
        for (int i = 0; attr_names[i]; i++)
            if (strcmp(attr_names[i], "type") == 0)
                type = attr_values[i];
        p->slot = g_strcmp0(type, "imap") == 0   ? SLOT_IMAP
                  : g_strcmp0(type, "pop3") == 0 ? SLOT_POP
                  : g_strcmp0(type, "smtp") == 0 ? SLOT_SMTP
                                                 : SLOT_NONE;
        server_clear(&p->cur);
        g_clear_pointer(&p->cur_username, g_free);
    }
    if (strcmp(name, "oAuth2") == 0 &&
        (strcmp(parent(p, 0), "clientConfig") == 0 || strcmp(parent(p, 0), "emailProvider") == 0))
        p->in_oauth = true;
    g_ptr_array_add(p->stack, g_strdup(name));
}

static void on_text(GMarkupParseContext *ctx, const char *text, gsize len, gpointer user,
                    GError **err)
{
    struct parse *p = user;

    (void)ctx;
    if (p->text->len + len > MAX_VALUE) {
        fail(err, "a value inside <%s> is longer than %d bytes", parent(p, 0), MAX_VALUE);
        return;
    }
    g_string_append_len(p->text, text, (gssize)len);
}

static char *fill_placeholders(const char *tmpl, const char *email)
{
    const char *at = strrchr(email, '@');
    g_autofree char *local = g_strndup(email, (gsize)(at - email));
    g_autoptr(GString) s = g_string_new(tmpl);

    g_string_replace(s, "%EMAILADDRESS%", email, 0);
    g_string_replace(s, "%EMAILLOCALPART%", local, 0);
    g_string_replace(s, "%EMAILDOMAIN%", at + 1, 0);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static gboolean server_value(struct parse *p, const char *name, const char *v, GError **err)
{
    guint64 port;

    if (strcmp(name, "hostname") == 0) {
        if (!uri_host_valid(v) || !value_safe(v))
            return fail(err, "<%s> \"%s\" is not a host name", name, v);
        g_free(p->cur.host);
        p->cur.host = g_ascii_strdown(v, -1);
    } else if (strcmp(name, "port") == 0) {
        if (!g_ascii_string_to_unsigned(v, 10, 1, 65535, &port, NULL))
            return fail(err, "<%s> \"%s\" is not a number from 1 to 65535", name, v);
        p->cur.port = (int)port;
    } else if (strcmp(name, "socketType") == 0) {
        if (strcmp(v, "SSL") != 0 && strcmp(v, "STARTTLS") != 0 && strcmp(v, "plain") != 0)
            return fail(err, "<%s> \"%s\" is not SSL, STARTTLS or plain", name, v);
        g_free(p->cur.socket_type);
        p->cur.socket_type = g_strdup(v);
    } else if (strcmp(name, "authentication") == 0) {
        p->cur.oauth2 = p->cur.oauth2 || strcmp(v, "OAuth2") == 0;
    } else if (strcmp(name, "username") == 0) {
        g_free(p->cur_username);
        p->cur_username = fill_placeholders(v, p->email);
        if (!value_safe(p->cur_username))
            return fail(err, "<%s> \"%s\" is not a user name", name, v);
    }
    return TRUE;
}

static bool issuer_ok(const char *v)
{
    g_autofree char *host = NULL;
    const char *why = NULL;
    int port = 0;

    if (g_str_has_prefix(v, "https://") || g_str_has_prefix(v, "http://"))
        return uri_endpoint_ok(v, &why) && !uri_has_query(v);
    return uri_split_host_port(v, &host, &port, &why);
}

static gboolean oauth_value(struct parse *p, const char *name, const char *v, GError **err)
{
    const char *why = NULL;
    char **slot = strcmp(name, "issuer") == 0     ? &p->ac->issuer
                  : strcmp(name, "scope") == 0    ? &p->ac->scopes
                  : strcmp(name, "authURL") == 0  ? &p->ac->auth_url
                  : strcmp(name, "tokenURL") == 0 ? &p->ac->token_url
                                                  : NULL;

    if (!slot)
        return TRUE;
    if (!value_safe(v))
        return fail(err, "<%s> \"%s\" has characters that cannot be used", name, v);
    if (slot == &p->ac->issuer && !issuer_ok(v))
        return fail(err, "<%s> \"%s\" is not a host name or an https URL", name, v);
    if ((slot == &p->ac->auth_url || slot == &p->ac->token_url) && !uri_endpoint_ok(v, &why))
        return fail(err, "<%s> \"%s\" is not an https URL", name, v);
    g_free(*slot);
    *slot = g_strdup(v);
    return TRUE;
}

/* The first server of each kind wins, unless a later one offers OAuth2
 * and it does not. */
static void server_done(struct parse *p)
{
    struct autoconfig_server *dst = p->slot == SLOT_IMAP   ? &p->ac->imap
                                    : p->slot == SLOT_POP  ? &p->ac->pop
                                    : p->slot == SLOT_SMTP ? &p->ac->smtp
                                                           : NULL;

    if (dst && p->cur.host && (!dst->host || (!dst->oauth2 && p->cur.oauth2))) {
        server_clear(dst);
        *dst = p->cur;
        memset(&p->cur, 0, sizeof(p->cur));
        /* The IMAP server's user name, else the POP server's. */
        if (p->cur_username &&
            (p->slot == SLOT_IMAP || (p->slot == SLOT_POP && !p->ac->username))) {
            g_free(p->ac->username);
            p->ac->username = g_steal_pointer(&p->cur_username);
        }
    }
    server_clear(&p->cur);
    g_clear_pointer(&p->cur_username, g_free);
    p->slot = SLOT_NONE;
}

static void on_end(GMarkupParseContext *ctx, const char *name, gpointer user, GError **err)
{
    struct parse *p = user;
    g_autofree char *v = g_strstrip(g_strdup(p->text->str));
    const char *up = parent(p, 1);

    (void)ctx;
    g_string_truncate(p->text, 0);
    g_ptr_array_set_size(p->stack, (gint)p->stack->len - 1);
    if (p->slot != SLOT_NONE &&
        (strcmp(up, "incomingServer") == 0 || strcmp(up, "outgoingServer") == 0)) {
        server_value(p, name, v, err);
    } else if (p->in_oauth && strcmp(up, "oAuth2") == 0) {
        oauth_value(p, name, v, err);
    } else if (strcmp(name, "incomingServer") == 0 || strcmp(name, "outgoingServer") == 0) {
        server_done(p);
    } else if (strcmp(name, "oAuth2") == 0) {
        p->in_oauth = false;
    }
}

static const GMarkupParser parser = {on_start, on_end, on_text, NULL, NULL};

static int check_complete(const Autoconfig *ac, struct tokend_error *e)
{
    if ((ac->auth_url || ac->token_url || ac->scopes) && !ac->issuer)
        return error_set(e, TOKEND_EX_DATAERR, "the autoconfig <oAuth2> has no <issuer>");
    if (!ac->imap.host && !ac->pop.host && !ac->smtp.host && !ac->issuer)
        return error_set(e, TOKEND_EX_DATAERR, "the autoconfig document names no mail server");
    return 0;
}

Autoconfig *autoconfig_parse(const char *xml, size_t len, const char *email, struct tokend_error *e)
{
    g_autoptr(Autoconfig) ac = g_new0(Autoconfig, 1);
    g_autoptr(GPtrArray) stack = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) text = g_string_new(NULL);
    g_autoptr(GError) err = NULL;
    struct parse p = {.ac = ac, .email = email, .stack = stack, .text = text};
    GMarkupParseContext *ctx;
    gboolean ok;

    if (!strchr(email, '@') || len > AUTOCONFIG_MAX_BYTES) {
        error_set(e, TOKEND_EX_DATAERR, "the autoconfig document is larger than %d bytes",
                  AUTOCONFIG_MAX_BYTES);
        return NULL;
    }
    /* GMarkup reads UTF-8 only; and GLib 2.74 sets its error twice on bad
     * UTF-8 inside CDATA, so refuse it before parsing. */
    if (!g_utf8_validate_len(xml, len, NULL)) {
        error_set(e, TOKEND_EX_DATAERR, "the autoconfig document is not valid: not UTF-8");
        return NULL;
    }
    ctx = g_markup_parse_context_new(&parser, G_MARKUP_TREAT_CDATA_AS_TEXT, &p, NULL);
    ok = g_markup_parse_context_parse(ctx, xml, (gssize)len, &err) &&
         g_markup_parse_context_end_parse(ctx, &err);
    g_markup_parse_context_free(ctx);
    server_clear(&p.cur);
    g_free(p.cur_username);
    if (!ok) {
        error_set(e, TOKEND_EX_DATAERR, "the autoconfig document is not valid: %s",
                  err ? err->message : "empty");
        return NULL;
    }
    if (check_complete(ac, e) < 0)
        return NULL;
    return g_steal_pointer(&ac);
}
