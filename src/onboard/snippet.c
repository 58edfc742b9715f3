/* tokend snippet: the recipe templates filled from an account.
 *
 * A template is the text of doc/recipes/NAME.in, compiled in.  @NAME@ (upper
 * case letters and _) is a placeholder; any other '@' is copied as it is, so
 * "@USER@@@HOST@" is the user, an '@' and the host.  Each value is escaped
 * for where the client reads it, inside the template's double quotes:
 * mbsync, git config and Python (getmail's password_command) take '\' before '"' and
 * '\'; mutt also before '$' and '`', which it expands; fetchmail takes '\'
 * before '\' and has no way to write '"' (refused); msmtp only strips the
 * outer quotes (as it is); OfflineIMAP's INI values are taken as they are.  @TOKEND@ and @CONFIG@
 * are the words of a command line that a shell runs: quoted for sh when they hold anything but
 * plain path characters (not in getmail's argv tuple). */

#include <string.h>

#include "tokend/relay.h"
#include "tokend/snippet.h"
#include "snippet_templates.h"

enum snippet_quote {
    SNIPPET_QUOTE_DQ,        /* mbsync and git config "..." */
    SNIPPET_QUOTE_FETCHMAIL, /* fetchmail "...": \\ only, no '"' */
    SNIPPET_QUOTE_MSMTP,     /* msmtp "...": as it is */
    SNIPPET_QUOTE_MUTT,      /* mutt and neomutt "..." */
    SNIPPET_QUOTE_PYTHON,    /* getmail: a Python tuple of strings */
    SNIPPET_QUOTE_INI,       /* OfflineIMAP: INI values */
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
    /* through tokend relay on the ports of its systemd sockets */
    {"postfix", "postfix-relay.in", SNIPPET_QUOTE_MSMTP, SNIPPET_SMTP},
    {"msmtp-relay", "msmtprc-relay.in", SNIPPET_QUOTE_MSMTP, SNIPPET_SMTP},
    {"mutt-relay", "muttrc-relay.in", SNIPPET_QUOTE_MUTT, SNIPPET_SMTP},
    {"neomutt-relay", "muttrc-relay.in", SNIPPET_QUOTE_MUTT, SNIPPET_SMTP},
    {"fetchmail-relay", "fetchmailrc-relay.in", SNIPPET_QUOTE_FETCHMAIL, SNIPPET_IMAP},
    {"fetchmail-relay-pop3", "fetchmailrc-relay-pop3.in", SNIPPET_QUOTE_FETCHMAIL, SNIPPET_POP},
    {"git-send-email", "gitconfig-relay.in", SNIPPET_QUOTE_DQ, SNIPPET_SMTP},
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

enum snippet_value {
    SNIPPET_VALUE_ACCOUNT,
    SNIPPET_VALUE_USER,
    SNIPPET_VALUE_URL_USER,
    SNIPPET_VALUE_HOST,
    SNIPPET_VALUE_PORT,
    SNIPPET_VALUE_TOKEN_FILE,
    SNIPPET_VALUE_CA_FILE,
    SNIPPET_VALUE_MAILDIR,
    SNIPPET_VALUE_METADATA,
    SNIPPET_VALUE_TOKEND,
    SNIPPET_VALUE_CONFIG,
    SNIPPET_VALUE_RELAY_CERT,
};

#define SNIPPET_OWN_SERVICE (-1) /* @HOST@ and @PORT@: the client's service */

/* The placeholders: what fills them, for which service (hosts and ports),
 * and whether a shell runs them as words of a command. */
static const struct placeholder {
    const char *name;
    enum snippet_value value;
    int service;
    bool command;
} placeholders[] = {
    {"ACCOUNT", SNIPPET_VALUE_ACCOUNT, 0, false},
    {"USER", SNIPPET_VALUE_USER, 0, false},
    {"FROM", SNIPPET_VALUE_USER, 0, false},
    {"URL_USER", SNIPPET_VALUE_URL_USER, 0, false},
    {"HOST", SNIPPET_VALUE_HOST, SNIPPET_OWN_SERVICE, false},
    {"PORT", SNIPPET_VALUE_PORT, SNIPPET_OWN_SERVICE, false},
    {"IMAP_HOST", SNIPPET_VALUE_HOST, SNIPPET_IMAP, false},
    {"IMAP_PORT", SNIPPET_VALUE_PORT, SNIPPET_IMAP, false},
    {"SMTP_HOST", SNIPPET_VALUE_HOST, SNIPPET_SMTP, false},
    {"SMTP_PORT", SNIPPET_VALUE_PORT, SNIPPET_SMTP, false},
    {"POP_HOST", SNIPPET_VALUE_HOST, SNIPPET_POP, false},
    {"POP_PORT", SNIPPET_VALUE_PORT, SNIPPET_POP, false},
    {"TOKEN_FILE", SNIPPET_VALUE_TOKEN_FILE, 0, false},
    {"CA_FILE", SNIPPET_VALUE_CA_FILE, 0, false},
    {"MAILDIR", SNIPPET_VALUE_MAILDIR, 0, false},
    {"METADATA", SNIPPET_VALUE_METADATA, 0, false},
    {"TOKEND", SNIPPET_VALUE_TOKEND, 0, true},
    {"CONFIG", SNIPPET_VALUE_CONFIG, 0, true},
    {"RELAY_CERT", SNIPPET_VALUE_RELAY_CERT, 0, false},
};

static const struct placeholder *placeholder_find(const char *name, size_t len)
{
    for (size_t i = 0; i < G_N_ELEMENTS(placeholders); i++)
        if (strlen(placeholders[i].name) == len && !strncmp(placeholders[i].name, name, len))
            return &placeholders[i];
    return NULL;
}

static const char *service_host(const Account *a, enum snippet_service s)
{
    switch (s) {
    case SNIPPET_IMAP:
        return a->imap_host;
    case SNIPPET_SMTP:
        return a->smtp_host;
    case SNIPPET_POP:
        return a->pop_host;
    }
    return NULL;
}

static int service_port(const Account *a, enum snippet_service s)
{
    switch (s) {
    case SNIPPET_IMAP:
        return a->imap_port;
    case SNIPPET_SMTP:
        return a->smtp_port;
    case SNIPPET_POP:
        return a->pop_port;
    }
    return 0;
}

/* The configuration key a missing value comes from. */
static const char *value_key(const struct placeholder *p, enum snippet_service s)
{
    static const char *const hosts[] = {
        [SNIPPET_IMAP] = "imap_host", [SNIPPET_SMTP] = "smtp_host", [SNIPPET_POP] = "pop_host"};

    if (p->value == SNIPPET_VALUE_HOST || p->value == SNIPPET_VALUE_PORT)
        return hosts[s];
    if (p->value == SNIPPET_VALUE_USER || p->value == SNIPPET_VALUE_URL_USER)
        return "username";
    return p->name;
}

/* The relay's loopback certificate, made now if the relay has not made it
 * yet: a client may read it before its first connection (msmtp does). */
static char *relay_cert(void)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *key = NULL;
    char *cert = NULL;

    if (relay_tls_loopback(&cert, &key, &e) < 0) {
        error_clear(&e);
        return relay_tls_loopback_cert_path();
    }
    return cert;
}

/* The raw value of a placeholder, or NULL when the account lacks it. */
static char *raw_value(const struct snippet_ctx *c, const struct placeholder *p,
                       enum snippet_service s)
{
    const Account *a = c->a;

    switch (p->value) {
    case SNIPPET_VALUE_ACCOUNT:
        return g_strdup(a->name);
    case SNIPPET_VALUE_USER:
        return g_strdup(a->username);
    case SNIPPET_VALUE_URL_USER:
        return a->username ? g_uri_escape_string(a->username, NULL, FALSE) : NULL;
    case SNIPPET_VALUE_HOST:
        return g_strdup(service_host(a, s));
    case SNIPPET_VALUE_PORT:
        return service_host(a, s) && service_port(a, s) > 0
                   ? g_strdup_printf("%d", service_port(a, s))
                   : NULL;
    case SNIPPET_VALUE_TOKEN_FILE:
        return g_strdup(a->token_file);
    case SNIPPET_VALUE_CA_FILE:
        return g_strdup(a->ca_file ? a->ca_file : SYSTEM_CA_FILE);
    case SNIPPET_VALUE_MAILDIR:
        return g_strdup_printf("~/Mail/%s", a->name);
    case SNIPPET_VALUE_METADATA:
        return g_strdup("~/.offlineimap");
    case SNIPPET_VALUE_TOKEND:
        return g_strdup(c->program);
    case SNIPPET_VALUE_CONFIG:
        return g_strdup(c->config);
    case SNIPPET_VALUE_RELAY_CERT:
        return relay_cert();
    }
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

static const char *value_what(const struct placeholder *p, enum snippet_service s)
{
    switch (p->value) {
    case SNIPPET_VALUE_TOKEND:
        return "the path of tokend";
    case SNIPPET_VALUE_CONFIG:
        return "the path of the configuration file";
    case SNIPPET_VALUE_TOKEN_FILE:
        return "the path of the token file";
    case SNIPPET_VALUE_CA_FILE:
        return "ca_file";
    case SNIPPET_VALUE_RELAY_CERT:
        return "the relay's loopback certificate";
    case SNIPPET_VALUE_ACCOUNT:
    case SNIPPET_VALUE_USER:
    case SNIPPET_VALUE_URL_USER:
    case SNIPPET_VALUE_HOST:
    case SNIPPET_VALUE_PORT:
    case SNIPPET_VALUE_MAILDIR:
    case SNIPPET_VALUE_METADATA:
        break;
    }
    return value_key(p, s);
}

/* Appends the value of placeholder p, escaped for the client; 0 or -1. */
static int append_value(const struct snippet_ctx *c, const struct placeholder *p, GString *out,
                        struct tokend_error *e)
{
    enum snippet_service s =
        p->service == SNIPPET_OWN_SERVICE ? c->client->service : (enum snippet_service)p->service;
    g_autofree char *raw = raw_value(c, p, s);
    g_autofree char *word = NULL;

    if (!raw) {
        error_set(e, TOKEND_EX_CONFIG,
                  "the %s configuration needs %s, which the account "
                  "does not set",
                  c->client->name, value_key(p, s));
        error_set_hint(e, "add %s = ... to [account %s]", value_key(p, s), c->a->name);
        return -1;
    }
    if (has_control(raw))
        return error_set(e, TOKEND_EX_CONFIG,
                         "%s holds a control character, which a %s "
                         "configuration cannot carry",
                         value_what(p, s), c->client->name);
    if (p->command && c->client->quote != SNIPPET_QUOTE_PYTHON)
        word = shell_word(raw);
    if (c->client->quote == SNIPPET_QUOTE_FETCHMAIL && strchr(word ? word : raw, '"'))
        return error_set(e, TOKEND_EX_CONFIG,
                         "%s holds a '\"', which a fetchmail "
                         "configuration cannot carry",
                         value_what(p, s));
    append_escaped(out, word ? word : raw, c->client->quote);
    return 0;
}

static int render_text(const struct snippet_ctx *c, const char *text, GString *out,
                       struct tokend_error *e)
{
    const char *p = text, *at, *end;
    const struct placeholder *ph;

    while ((at = strchr(p, '@'))) {
        g_string_append_len(out, p, at - p);
        end = strchr(at + 1, '@');
        ph = end ? placeholder_find(at + 1, end - at - 1) : NULL;
        if (ph) {
            if (append_value(c, ph, out, e) < 0)
                return -1;
            p = end + 1;
            continue;
        }
        g_string_append_c(out, '@');
        p = at + 1;
    }
    g_string_append(out, p);
    return 0;
}

/* System mode: a consumer cannot read the configuration, and needs not;
 * `--system` stands where a template names it (`-c CONFIG`, or getmail's
 * two strings of its argv tuple). */
static const char *const system_forms[][2] = {
    {"-c @CONFIG@", "--system"},
    {"\"-c\", \"@CONFIG@\"", "\"--system\""},
};

static char *system_text(const char *text)
{
    char *s = g_strdup(text);

    for (size_t i = 0; i < G_N_ELEMENTS(system_forms); i++) {
        g_auto(GStrv) parts = g_strsplit(s, system_forms[i][0], -1);
        g_free(s);
        s = g_strjoinv(system_forms[i][1], parts);
    }
    return s;
}

int snippet_render(const Account *a, const char *client, const char *program, const char *config,
                   GString *out, struct tokend_error *e)
{
    struct snippet_ctx c = {
        .a = a, .client = client_find(client), .program = program, .config = config};
    const char *text = c.client ? template_text(c.client->template) : NULL;
    g_autofree char *system = NULL;

    if (!c.client)
        return error_set(e, TOKEND_EX_USAGE, "unknown mail client \"%s\"; known: %s", client,
                         snippet_client_names());
    if (!text)
        return error_set(e, TOKEND_EX_SOFTWARE, "no template %s compiled in", c.client->template);
    if (!config) {
        system = system_text(text);
        return render_text(&c, system, out, e);
    }
    return render_text(&c, text, out, e);
}
