/* tokend snippet: the recipe templates filled from an account.
 *
 * A template is the text of doc/recipes/NAME.in, compiled in.  @NAME@ (upper
 * case letters and _) is a placeholder; any other '@' is copied as it is, so
 * "@USER@@@HOST@" is the user, an '@' and the host.  Each value is escaped
 * for where the client reads it, inside the template's double quotes:
 * mbsync and Python (getmail's password_command) take '\' before '"' and
 * '\'; mutt also before '$' and '`', which it expands; fetchmail takes '\'
 * before '\' and has no way to write '"' (refused); msmtp only strips the
 * outer quotes (as it is); OfflineIMAP's INI values are taken as they are.  @TOKEND@ and @CONFIG@ are the
 * words of a command line that a shell runs: quoted for sh when they hold
 * anything but plain path characters (not in getmail's argv tuple). */

#include <string.h>

#include "tokend/snippet.h"
#include "snippet_templates.h"

enum snippet_quote {
    SNIPPET_QUOTE_DQ,     /* mbsync "..." */
    SNIPPET_QUOTE_FETCHMAIL, /* fetchmail "...": \\ only, no '"' */
    SNIPPET_QUOTE_MSMTP,  /* msmtp "...": as it is */
    SNIPPET_QUOTE_MUTT,   /* mutt and neomutt "..." */
    SNIPPET_QUOTE_PYTHON, /* getmail: a Python tuple of strings */
    SNIPPET_QUOTE_INI,    /* OfflineIMAP: INI values */
};

enum snippet_service { SNIPPET_IMAP, SNIPPET_SMTP, SNIPPET_POP };

struct snippet_client {
    const char *name;
    const char *template;
    enum snippet_quote quote;
    enum snippet_service service; /* what @HOST@ and @PORT@ are */
};

static const struct snippet_client clients[] = {
    {"fetchmail", "fetchmailrc-plugin.in", SNIPPET_QUOTE_FETCHMAIL, SNIPPET_IMAP},
    {"fetchmail-pop3", "fetchmailrc-plugin-pop3.in", SNIPPET_QUOTE_FETCHMAIL, SNIPPET_POP},
    {"fetchmail7", "fetchmailrc.in", SNIPPET_QUOTE_FETCHMAIL, SNIPPET_IMAP},
    {"mutt", "muttrc.in", SNIPPET_QUOTE_MUTT, SNIPPET_IMAP},
    {"neomutt", "muttrc.in", SNIPPET_QUOTE_MUTT, SNIPPET_IMAP},
    {"mutt-tunnel", "muttrc-tunnel.in", SNIPPET_QUOTE_MUTT, SNIPPET_IMAP},
    {"neomutt-tunnel", "muttrc-tunnel.in", SNIPPET_QUOTE_MUTT, SNIPPET_IMAP},
    {"msmtp", "msmtprc.in", SNIPPET_QUOTE_MSMTP, SNIPPET_SMTP},
    {"mbsync", "mbsyncrc.in", SNIPPET_QUOTE_DQ, SNIPPET_IMAP},
    {"mbsync-tunnel", "mbsyncrc-tunnel.in", SNIPPET_QUOTE_DQ, SNIPPET_IMAP},
    {"offlineimap", "offlineimaprc-tunnel.in", SNIPPET_QUOTE_INI, SNIPPET_IMAP},
    {"getmail", "getmailrc.in", SNIPPET_QUOTE_PYTHON, SNIPPET_IMAP},
};

#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

struct snippet_ctx {
    const Account *a;
    const struct snippet_client *client;
    const char *program;
    const char *config;
};

const char *snippet_client_names(void)
{
    static char names[256];

    if (!names[0]) {
        for (size_t i = 0; i < G_N_ELEMENTS(clients); i++) {
            g_strlcat(names, i ? " " : "", sizeof(names));
            g_strlcat(names, clients[i].name, sizeof(names));
        }
    }
    return names;
}

static const struct snippet_client *client_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(clients); i++)
        if (strcmp(clients[i].name, name) == 0)
            return &clients[i];
    return NULL;
}

bool snippet_client_known(const char *client)
{
    return client_find(client) != NULL;
}

static const char *template_text(const char *name)
{
    for (const struct snippet_template *t = snippet_templates; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t->text;
    return NULL;
}

/* A word for sh: as it is when it holds only plain path characters. */
static char *shell_word(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!g_ascii_isalnum(*p) && !strchr("/._+@%=:,-~", *p))
            return g_shell_quote(s);
    return g_strdup(s);
}

static char *url_user(const char *user)
{
    return g_uri_escape_string(user, NULL, FALSE);
}

static char *port_text(int port)
{
    return port > 0 ? g_strdup_printf("%d", port) : NULL;
}

static char *service_host(const Account *a, enum snippet_service s)
{
    switch (s) {
    case SNIPPET_IMAP:
        return g_strdup(a->imap_host);
    case SNIPPET_SMTP:
        return g_strdup(a->smtp_host);
    case SNIPPET_POP:
        return g_strdup(a->pop_host);
    }
    return NULL;
}

static char *service_port(const Account *a, enum snippet_service s)
{
    switch (s) {
    case SNIPPET_IMAP:
        return a->imap_host ? port_text(a->imap_port) : NULL;
    case SNIPPET_SMTP:
        return a->smtp_host ? port_text(a->smtp_port) : NULL;
    case SNIPPET_POP:
        return a->pop_host ? port_text(a->pop_port) : NULL;
    }
    return NULL;
}

static const char *service_key(enum snippet_service s, bool port)
{
    switch (s) {
    case SNIPPET_IMAP:
        return port ? "imap_port" : "imap_host";
    case SNIPPET_SMTP:
        return port ? "smtp_port" : "smtp_host";
    case SNIPPET_POP:
        return port ? "pop_port" : "pop_host";
    }
    return "";
}

/* The raw value of a placeholder and the configuration key it comes from
 * (for the error when it is missing); *command when sh reads it. */
static char *raw_value(const struct snippet_ctx *c, const char *name, const char **key,
                       bool *command)
{
    const Account *a = c->a;

    *key = NULL;
    *command = false;
    if (!strcmp(name, "ACCOUNT"))
        return g_strdup(a->name);
    if (!strcmp(name, "USER") || !strcmp(name, "FROM"))
        return *key = "username", g_strdup(a->username);
    if (!strcmp(name, "URL_USER"))
        return *key = "username", a->username ? url_user(a->username) : NULL;
    if (!strcmp(name, "HOST"))
        return *key = service_key(c->client->service, false),
               service_host(a, c->client->service);
    if (!strcmp(name, "PORT"))
        return *key = service_key(c->client->service, false),
               service_port(a, c->client->service);
    if (!strcmp(name, "IMAP_HOST") || !strcmp(name, "IMAP_PORT"))
        return *key = "imap_host", name[5] == 'H' ? service_host(a, SNIPPET_IMAP)
                                                   : service_port(a, SNIPPET_IMAP);
    if (!strcmp(name, "SMTP_HOST") || !strcmp(name, "SMTP_PORT"))
        return *key = "smtp_host", name[5] == 'H' ? service_host(a, SNIPPET_SMTP)
                                                   : service_port(a, SNIPPET_SMTP);
    if (!strcmp(name, "POP_HOST") || !strcmp(name, "POP_PORT"))
        return *key = "pop_host", name[4] == 'H' ? service_host(a, SNIPPET_POP)
                                                  : service_port(a, SNIPPET_POP);
    if (!strcmp(name, "TOKEN_FILE"))
        return g_strdup(a->token_file);
    if (!strcmp(name, "CA_FILE"))
        return g_strdup(a->ca_file ? a->ca_file : SYSTEM_CA_FILE);
    if (!strcmp(name, "MAILDIR"))
        return g_strdup_printf("~/Mail/%s", a->name);
    if (!strcmp(name, "METADATA"))
        return g_strdup("~/.offlineimap");
    *command = true;
    if (!strcmp(name, "TOKEND"))
        return g_strdup(c->program);
    if (!strcmp(name, "CONFIG"))
        return g_strdup(c->config);
    *key = "";
    return NULL;
}

static void append_escaped(GString *out, const char *s, enum snippet_quote q)
{
    const char *special = "";

    switch (q) {
    case SNIPPET_QUOTE_DQ:
    case SNIPPET_QUOTE_PYTHON:
        special = "\"\\";
        break;
    case SNIPPET_QUOTE_MUTT:
        special = "\"\\$`";
        break;
    case SNIPPET_QUOTE_FETCHMAIL:
        special = "\\";
        break;
    case SNIPPET_QUOTE_MSMTP:
    case SNIPPET_QUOTE_INI:
        break;
    }
    for (; *s; s++) {
        if (strchr(special, *s))
            g_string_append_c(out, '\\');
        g_string_append_c(out, *s);
    }
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static const char *value_what(const char *name, const char *key)
{
    if (!strcmp(name, "TOKEND"))
        return "the path of tokend";
    if (!strcmp(name, "CONFIG"))
        return "the path of the configuration file";
    if (!strcmp(name, "TOKEN_FILE"))
        return "the path of the token file";
    return key ? key : name;
}

/* Appends the value of @name@; 0, 1 when name is no placeholder, or -1. */
static int append_value(const struct snippet_ctx *c, const char *name, GString *out,
                        struct tokend_error *e)
{
    const char *key;
    bool command;
    g_autofree char *raw = raw_value(c, name, &key, &command);
    g_autofree char *word = NULL;

    if (!raw && key && !*key)
        return 1;
    if (!raw) {
        error_set(e, TOKEND_EX_CONFIG, "the %s configuration needs %s, which the account "
                  "does not set", c->client->name, key ? key : name);
        error_set_hint(e, "add %s = ... to [account %s]", key ? key : name, c->a->name);
        return -1;
    }
    if (has_control(raw))
        return error_set(e, TOKEND_EX_CONFIG, "%s holds a control character, which a %s "
                         "configuration cannot carry", value_what(name, key), c->client->name);
    if (command && c->client->quote != SNIPPET_QUOTE_PYTHON)
        word = shell_word(raw);
    if (c->client->quote == SNIPPET_QUOTE_FETCHMAIL && strchr(word ? word : raw, '"'))
        return error_set(e, TOKEND_EX_CONFIG, "%s holds a '\"', which a fetchmail "
                         "configuration cannot carry", value_what(name, key));
    append_escaped(out, word ? word : raw, c->client->quote);
    return 0;
}

static bool placeholder_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!g_ascii_isupper(s[i]) && s[i] != '_')
            return false;
    return true;
}

static int render_text(const struct snippet_ctx *c, const char *text, GString *out,
                       struct tokend_error *e)
{
    const char *p = text, *at, *end;

    while ((at = strchr(p, '@'))) {
        g_string_append_len(out, p, at - p);
        end = strchr(at + 1, '@');
        if (end && placeholder_name(at + 1, end - at - 1)) {
            g_autofree char *name = g_strndup(at + 1, end - at - 1);
            int r = append_value(c, name, out, e);
            if (r < 0)
                return -1;
            if (r == 0) {
                p = end + 1;
                continue;
            }
        }
        g_string_append_c(out, '@');
        p = at + 1;
    }
    g_string_append(out, p);
    return 0;
}

int snippet_render(const Account *a, const char *client, const char *program,
                   const char *config, GString *out, struct tokend_error *e)
{
    struct snippet_ctx c = {.a = a, .client = client_find(client), .program = program,
                            .config = config};
    const char *text = c.client ? template_text(c.client->template) : NULL;

    if (!c.client)
        return error_set(e, TOKEND_EX_USAGE, "unknown mail client \"%s\"; known: %s", client,
                         snippet_client_names());
    if (!text)
        return error_set(e, TOKEND_EX_SOFTWARE, "no template %s compiled in",
                         c.client->template);
    return render_text(&c, text, out, e);
}
