#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokend/config.h"
#include "tokend/claim.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/tokenset.h"
#include "tokend/uri.h"

#define CONFIG_MAX_BYTES (1024 * 1024)
#define DEFAULTS_GROUP "defaults"
#define ACCOUNT_PREFIX "account "
#define POP3S_PORT 995

enum key_type {
    KEY_STRING,
    KEY_PATH,
    KEY_URL,
    KEY_SECONDS,
    KEY_PORT,
    KEY_PROVIDER,
    KEY_STORE,
    KEY_FLOW,
    KEY_SECRET,
    KEY_PARAMS,
    KEY_CONSENT,
    KEY_DURATION,
    KEY_TOKEN_SETS,
};

enum key_scope {
    SCOPE_BOTH,
    SCOPE_ACCOUNT,
    SCOPE_DEFAULTS,
};

struct key_spec {
    const char *name;
    enum key_type type;
    enum key_scope scope;
    size_t offset; /* into Account; unused for SCOPE_DEFAULTS */
};

#define F(field) offsetof(Account, field)

static const struct key_spec keys[] = {
    {"provider", KEY_PROVIDER, SCOPE_BOTH, F(provider)},
    {"tenant", KEY_STRING, SCOPE_BOTH, F(tenant)},
    {"authority", KEY_STRING, SCOPE_BOTH, F(authority)},
    {"client_id", KEY_STRING, SCOPE_BOTH, F(client_id)},
    {"client_secret", KEY_SECRET, SCOPE_BOTH, F(client_secret)},
    {"client_secret_file", KEY_PATH, SCOPE_BOTH, F(client_secret_file)},
    {"username", KEY_STRING, SCOPE_ACCOUNT, F(username)},
    {"identity", KEY_STRING, SCOPE_ACCOUNT, F(identity)},
    {"scopes", KEY_STRING, SCOPE_BOTH, F(scopes)},
    {"redirect_uri", KEY_URL, SCOPE_BOTH, F(redirect_uri)},
    {"token_file", KEY_PATH, SCOPE_ACCOUNT, F(token_file)},
    {"store", KEY_STORE, SCOPE_BOTH, F(store)},
    {"ca_file", KEY_PATH, SCOPE_BOTH, F(ca_file)},
    {"issuer", KEY_URL, SCOPE_BOTH, F(issuer)},
    {"authorize_url", KEY_URL, SCOPE_BOTH, F(authorize_url)},
    {"token_url", KEY_URL, SCOPE_BOTH, F(token_url)},
    {"device_authorization_url", KEY_URL, SCOPE_BOTH, F(device_authorization_url)},
    {"revocation_url", KEY_URL, SCOPE_BOTH, F(revocation_url)},
    {"prompt", KEY_STRING, SCOPE_BOTH, F(prompt)},
    {"auth_params", KEY_PARAMS, SCOPE_BOTH, F(auth_params)},
    {"offline_consent", KEY_CONSENT, SCOPE_BOTH, F(offline_consent)},
    {"flow", KEY_FLOW, SCOPE_BOTH, F(flow)},
    {"refresh_margin", KEY_SECONDS, SCOPE_BOTH, F(refresh_margin)},
    {"min_validity", KEY_SECONDS, SCOPE_BOTH, F(min_validity)},
    {"login_timeout", KEY_SECONDS, SCOPE_BOTH, F(login_timeout)},
    {"imap_host", KEY_STRING, SCOPE_BOTH, F(imap_host)},
    {"imap_port", KEY_PORT, SCOPE_BOTH, F(imap_port)},
    {"smtp_host", KEY_STRING, SCOPE_BOTH, F(smtp_host)},
    {"smtp_port", KEY_PORT, SCOPE_BOTH, F(smtp_port)},
    {"pop_host", KEY_STRING, SCOPE_BOTH, F(pop_host)},
    {"pop_port", KEY_PORT, SCOPE_BOTH, F(pop_port)},
    {"notify_cmd", KEY_STRING, SCOPE_BOTH, F(notify_cmd)},
    {"tunnel_mech", KEY_STRING, SCOPE_BOTH, F(tunnel_mech)},
    {"tunnel_tls", KEY_STRING, SCOPE_BOTH, F(tunnel_tls)},
    {"store_get", KEY_STRING, SCOPE_BOTH, F(store_get)},
    {"store_put", KEY_STRING, SCOPE_BOTH, F(store_put)},
    {"store_delete", KEY_STRING, SCOPE_BOTH, F(store_delete)},
    {"store_timeout", KEY_SECONDS, SCOPE_BOTH, F(store_timeout)},
    {"token_sets", KEY_TOKEN_SETS, SCOPE_ACCOUNT, F(token_sets)},
    {"max_parallel", KEY_SECONDS, SCOPE_DEFAULTS, 0},
    {"signin_lifetime", KEY_DURATION, SCOPE_BOTH, F(signin_lifetime)},
    {"notify_before", KEY_DURATION, SCOPE_BOTH, F(notify_before)},
};

#undef F

static const char *reserved_auth_params[] = {
    "response_type",         "client_id",     "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "client_secret", NULL,
};

struct parse_ctx {
    GKeyFile *kf;
    const char *path;
    const char *group;
    struct tokend_error *e;
};

static int key_error(const struct parse_ctx *c, const char *key, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static int key_error(const struct parse_ctx *c, const char *key, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (key)
        return error_set(c->e, TOKEND_EX_CONFIG, "%s: [%s] %s: %s", c->path, c->group, key, what);
    return error_set(c->e, TOKEND_EX_CONFIG, "%s: [%s]: %s", c->path, c->group, what);
}

bool config_account_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 64 || !g_ascii_isalnum(name[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!g_ascii_isalnum(ch) && !strchr("._@+-", ch))
            return false;
    }
    return true;
}

static const struct key_spec *key_lookup(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

const char *const *config_known_keys(void)
{
    static const char *names[G_N_ELEMENTS(keys) + 1];

    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        names[i] = keys[i].name;
    return names;
}

const char *store_kind_name(enum store_kind kind)
{
    switch (kind) {
    case STORE_KIND_AUTO:
        return "auto";
    case STORE_KIND_SECRET_SERVICE:
        return "secret-service";
    case STORE_KIND_FILE:
        return "file";
    case STORE_KIND_COMMAND:
        return "command";
    }
    return "unknown";
}

const char *flow_kind_name(enum flow_kind kind)
{
    switch (kind) {
    case FLOW_KIND_CODE:
        return "code";
    case FLOW_KIND_DEVICE:
        return "device";
    }
    return "unknown";
}

/* A value as written, unescaped, with an inline comment (" #...") removed
 * and surrounding white space trimmed; *out NULL when the key is not there.
 * A value GLib cannot read (not UTF-8, an unknown escape) is an error, not
 * a missing key: it must neither fall back to [defaults] nor pass as is. */
static int get_value(const struct parse_ctx *c, const char *group, const char *key, char **out)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *v = g_key_file_get_string(c->kf, group, key, &err);
    char *hash;

    *out = NULL;
    if (g_error_matches(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND) ||
        g_error_matches(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND))
        return 0;
    if (err || !v)
        return key_error(c, key,
                         "the value is not UTF-8 text, or has a \\ escape other "
                         "than \\s \\n \\t \\r \\\\");
    for (hash = strchr(v, '#'); hash; hash = strchr(hash + 1, '#')) {
        if (hash == v || hash[-1] == ' ' || hash[-1] == '\t') {
            *hash = '\0';
            break;
        }
    }
    *out = g_strstrip(g_steal_pointer(&v));
    return 0;
}

static int parse_int(const struct parse_ctx *c, const char *key, const char *v, gint64 min,
                     gint64 max, int *out)
{
    gint64 n;
    g_autoptr(GError) err = NULL;

    if (!g_ascii_string_to_signed(v, 10, min, max, &n, &err))
        return key_error(
            c, key, "\"%s\" is not a whole number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
            v, min, max);
    *out = (int)n;
    return 0;
}

/* "7d", "36h", "90m", "45s", "2w" or plain seconds. */
#define MAX_DURATION (3650LL * 86400)

static int parse_duration(const struct parse_ctx *c, const char *key, const char *v, int *out)
{
    static const struct {
        char unit;
        gint64 seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
    g_autofree char *digits = g_strdup(v);
    size_t len = strlen(digits);
    gint64 scale = 1, n;

    for (size_t i = 0; len > 1 && i < G_N_ELEMENTS(units); i++) {
        if (g_ascii_tolower(digits[len - 1]) == units[i].unit) {
            scale = units[i].seconds;
            digits[len - 1] = '\0';
        }
    }
    if (!g_ascii_string_to_signed(digits, 10, 0, MAX_DURATION, &n, NULL) ||
        n * scale > MAX_DURATION)
        return key_error(c, key,
                         "\"%s\" is not a duration such as 7d, 36h, 90m or 600 "
                         "(seconds), up to 3650 days",
                         v);
    *out = (int)(n * scale);
    return 0;
}

static int parse_params(const struct parse_ctx *c, const char *key, const char *v, char ***out)
{
    g_auto(GStrv) parts = g_strsplit_set(v, " \t", -1);
    g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func(g_free);

    for (char **p = parts; *p; p++) {
        const char *eq = strchr(*p, '=');
        g_autofree char *name = NULL;

        if (**p == '\0')
            continue;
        if (!eq || eq == *p)
            return key_error(c, key, "\"%s\" is not of the form name=value", *p);
        name = g_strndup(*p, (gsize)(eq - *p));
        if (g_strv_contains(reserved_auth_params, name))
            return key_error(c, key, "\"%s\" is set by tokend itself and cannot be given", name);
        g_ptr_array_add(kept, g_strdup(*p));
    }
    g_ptr_array_add(kept, NULL);
    g_strfreev(*out);
    *out = (char **)g_ptr_array_free(g_steal_pointer(&kept), FALSE);
    return 0;
}

static int parse_enum(const struct parse_ctx *c, const char *key, const char *v,
                      const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], v) == 0) {
            *out = i;
            return 0;
        }
    }
    g_autofree char *list = g_strjoinv(", ", (char **)names);
    return key_error(c, key, "\"%s\" is not one of: %s", v, list);
}

static int parse_token_sets(const struct parse_ctx *c, const char *key, const char *v, char ***out)
{
    g_autofree char *why = NULL;
    char **sets = tokenset_parse_config(v, &why);

    if (!sets)
        return key_error(c, key, "%s", why);
    g_strfreev(*out);
    *out = sets;
    return 0;
}

static int apply_key(const struct parse_ctx *c, const struct key_spec *k, const char *v, Account *a,
                     const char *base_dir)
{
    static const char *const provider_names[] = {"microsoft", "google", "generic", NULL};
    static const char *const store_names[] = {"auto", "secret-service", "file", "command", NULL};
    static const char *const flow_names[] = {"code", "device", NULL};
    static const char *const consent_names[] = {"auto", "always", "never", NULL};
    void *field = (char *)a + k->offset;
    const char *why = NULL;

    if (*v == '\0' && k->type != KEY_PARAMS && k->type != KEY_STRING)
        return key_error(c, k->name, "empty value");
    switch (k->type) {
    case KEY_STRING:
        g_free(*(char **)field);
        *(char **)field = *v ? g_strdup(v) : NULL;
        return 0;
    case KEY_URL:
        /* Parsed, not compared as a prefix: "http://localhost:80@evil.example/"
         * goes to evil.example. */
        if (!uri_endpoint_ok(v, &why))
            return key_error(c, k->name, "\"%s\" %s", v, why);
        if (strcmp(k->name, "issuer") == 0 && uri_has_query(v))
            return key_error(c, k->name,
                             "\"%s\" has a query (?...), which an issuer never "
                             "has (RFC 8414)",
                             v);
        g_free(*(char **)field);
        *(char **)field = g_strdup(v);
        return 0;
    case KEY_PATH:
        g_free(*(char **)field);
        *(char **)field = paths_expand(v, base_dir);
        return 0;
    case KEY_SECONDS:
        return parse_int(c, k->name, v, 0, 86400 * 365, (int *)field);
    case KEY_PORT:
        return parse_int(c, k->name, v, 1, 65535, (int *)field);
    case KEY_PROVIDER:
        return parse_enum(c, k->name, v, provider_names, (int *)field);
    case KEY_STORE:
        return parse_enum(c, k->name, v, store_names, (int *)field);
    case KEY_FLOW:
        return parse_enum(c, k->name, v, flow_names, (int *)field);
    case KEY_SECRET:
        secstr_free(*(SecStr **)field);
        *(SecStr **)field = secstr_from(v, strlen(v));
        return 0;
    case KEY_PARAMS:
        return parse_params(c, k->name, v, (char ***)field);
    case KEY_CONSENT:
        return parse_enum(c, k->name, v, consent_names, (int *)field);
    case KEY_DURATION:
        return parse_duration(c, k->name, v, (int *)field);
    case KEY_TOKEN_SETS:
        return parse_token_sets(c, k->name, v, (char ***)field);
    }
    return 0;
}

static void account_free(Account *a)
{
    if (!a)
        return;
    g_free(a->name);
    g_free(a->tenant);
    g_free(a->authority);
    g_free(a->client_id);
    secstr_free(a->client_secret);
    g_free(a->client_secret_file);
    g_free(a->username);
    g_free(a->identity);
    g_free(a->scopes);
    g_free(a->redirect_uri);
    g_free(a->token_file);
    g_free(a->ca_file);
    g_free(a->issuer);
    g_free(a->authorize_url);
    g_free(a->token_url);
    g_free(a->device_authorization_url);
    g_free(a->revocation_url);
    g_free(a->prompt);
    g_strfreev(a->auth_params);
    g_free(a->imap_host);
    g_free(a->smtp_host);
    g_free(a->pop_host);
    g_free(a->notify_cmd);
    g_free(a->tunnel_mech);
    g_free(a->tunnel_tls);
    g_free(a->store_get);
    g_free(a->store_put);
    g_free(a->store_delete);
    g_strfreev(a->token_sets);
    g_free(a);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Account, account_free)

static int check_group_keys(const struct parse_ctx *c, bool is_defaults)
{
    g_auto(GStrv) names = g_key_file_get_keys(c->kf, c->group, NULL, NULL);

    for (char **n = names; n && *n; n++) {
        const struct key_spec *k = key_lookup(*n);
        if (!k)
            return key_error(c, *n, "unknown key");
        for (char **m = names; m < n; m++)
            if (strcmp(*m, *n) == 0)
                return key_error(c, *n, "given twice");
        if (is_defaults && k->scope == SCOPE_ACCOUNT)
            return key_error(c, *n, "belongs in an [account NAME] group, not [defaults]");
        if (!is_defaults && k->scope == SCOPE_DEFAULTS)
            return key_error(c, *n, "belongs in the [defaults] group");
    }
    return 0;
}

/* Apply every known key, the account's own value winning over [defaults]. */
static int apply_keys(struct parse_ctx *c, Account *a, bool has_defaults, const char *base_dir)
{
    const char *own_group = c->group;

    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        const struct key_spec *k = &keys[i];
        g_autofree char *v = NULL;

        if (k->scope == SCOPE_DEFAULTS)
            continue;
        c->group = own_group;
        if (get_value(c, own_group, k->name, &v) < 0)
            return -1;
        if (!v && has_defaults && k->scope == SCOPE_BOTH) {
            c->group = DEFAULTS_GROUP;
            if (get_value(c, DEFAULTS_GROUP, k->name, &v) < 0)
                return -1;
        }
        if (v && apply_key(c, k, v, a, base_dir) < 0)
            return -1;
    }
    c->group = own_group;
    return 0;
}

static bool has_key(const struct parse_ctx *c, const char *key)
{
    return g_key_file_has_key(c->kf, c->group, key, NULL) ||
           g_key_file_has_key(c->kf, DEFAULTS_GROUP, key, NULL);
}

static void fill_defaults(Account *a)
{
    const struct provider_preset *p = provider_preset(a->provider);
    g_autofree char *state = NULL;

    if (!a->authority && p->default_authority)
        a->authority = g_strdup(p->default_authority);
    if (!a->tenant && p->default_tenant)
        a->tenant = g_strdup(p->default_tenant);
    if (!a->scopes)
        a->scopes = g_strdup(p->default_scopes);
    if (!a->redirect_uri)
        a->redirect_uri = g_strdup(p->default_redirect_uri);
    if (!a->authorize_url)
        a->authorize_url = provider_expand(p->authorize_url, a->authority, a->tenant);
    if (!a->token_url)
        a->token_url = provider_expand(p->token_url, a->authority, a->tenant);
    if (!a->device_authorization_url)
        a->device_authorization_url = provider_expand(p->device_url, a->authority, a->tenant);
    if (!a->revocation_url && p->revocation_url)
        a->revocation_url = g_strdup(p->revocation_url);
    if (!a->issuer && p->issuer)
        a->issuer = g_strdup(p->issuer);
    if (!a->imap_host && p->imap_host)
        a->imap_host = g_strdup(p->imap_host);
    if (!a->imap_port)
        a->imap_port = p->imap_port;
    if (!a->smtp_host && p->smtp_host)
        a->smtp_host = g_strdup(p->smtp_host);
    if (!a->smtp_port)
        a->smtp_port = p->smtp_port;
    if (!a->pop_host && p->pop_host)
        a->pop_host = g_strdup(p->pop_host);
    if (!a->pop_port)
        a->pop_port = POP3S_PORT;
    if (!a->token_file) {
        state = paths_account_dir(a->name);
        a->token_file = g_build_filename(state, "token", NULL);
    }
}

/* authority: a host, host:port, or https://host[:port][/TENANT]; the tenant
 * of the URL must agree with `tenant`, and sets it when only the URL has it.
 * Kept as "host[:port]": the endpoints are built from it by GUri. */
static int resolve_authority(struct parse_ctx *c, Account *a)
{
    g_autofree char *authority = NULL;
    g_autofree char *tenant = NULL;
    const char *why = NULL;

    if (a->provider != PROVIDER_MICROSOFT)
        return 0;
    if (a->tenant && !uri_tenant_valid(a->tenant))
        return key_error(c, "tenant",
                         "\"%s\" is not common, organizations, consumers, a "
                         "GUID or a domain (contoso.onmicrosoft.com)",
                         a->tenant);
    if (!a->authority)
        return 0;
    if (!uri_parse_authority(a->authority, &authority, &tenant, &why))
        return key_error(c, "authority", "\"%s\" %s", a->authority, why);
    if (tenant && a->tenant && g_ascii_strcasecmp(tenant, a->tenant) != 0)
        return key_error(c, "authority", "names tenant %s, but tenant = %s; give one of them",
                         tenant, a->tenant);
    if (tenant && !a->tenant)
        a->tenant = g_steal_pointer(&tenant);
    g_free(a->authority);
    a->authority = g_steal_pointer(&authority);
    return 0;
}

/* HOST_KEY may carry the port ("host:port", "[v6]:port"); PORT_KEY, if also
 * given, must say the same. */
static int resolve_host(struct parse_ctx *c, const char *host_key, char **host,
                        const char *port_key, int *port)
{
    g_autofree char *name = NULL;
    const char *why = NULL;
    int own_port = 0;

    if (!*host)
        return 0;
    if (!uri_split_host_port(*host, &name, &own_port, &why))
        return key_error(c, host_key, "\"%s\" %s", *host, why);
    if (own_port && *port && own_port != *port)
        return key_error(c, host_key, "names port %d, but %s = %d; give one of them", own_port,
                         port_key, *port);
    if (own_port)
        *port = own_port;
    g_free(*host);
    *host = g_steal_pointer(&name);
    return 0;
}

/* A key whose value is one of a few words (checked here so that every
 * command refuses the same file, not only the one that uses the key). */
static int check_word(struct parse_ctx *c, const char *key, const char *value,
                      const char *const *words)
{
    g_autofree char *list = NULL;

    if (!value || g_strv_contains(words, value))
        return 0;
    list = g_strjoinv(", ", (char **)words);
    return key_error(c, key, "\"%s\" is not one of %s", value, list);
}

static int resolve_values(struct parse_ctx *c, Account *a)
{
    static const char *const mechs[] = {"auto", "xoauth2", "oauthbearer", NULL};
    static const char *const tls[] = {"auto", "implicit", "starttls", NULL};

    if (check_word(c, "tunnel_mech", a->tunnel_mech, mechs) < 0 ||
        check_word(c, "tunnel_tls", a->tunnel_tls, tls) < 0)
        return -1;
    if (resolve_authority(c, a) < 0 ||
        resolve_host(c, "imap_host", &a->imap_host, "imap_port", &a->imap_port) < 0 ||
        resolve_host(c, "smtp_host", &a->smtp_host, "smtp_port", &a->smtp_port) < 0 ||
        resolve_host(c, "pop_host", &a->pop_host, "pop_port", &a->pop_port) < 0)
        return -1;
    return 0;
}

/* The commands are kept when store names another kind: migrate reads the
 * token back through them. */
static int validate_store_commands(struct parse_ctx *c, const Account *a)
{
    const char *names[] = {"store_get", "store_put", "store_delete"};
    const char *lines[] = {a->store_get, a->store_put, a->store_delete};

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        g_auto(GStrv) argv = NULL;
        g_autoptr(GError) err = NULL;

        if (!lines[i] && a->store == STORE_KIND_COMMAND)
            return key_error(c, names[i],
                             "missing (store = command runs store_get, "
                             "store_put and store_delete)");
        if (lines[i] && !g_shell_parse_argv(lines[i], NULL, &argv, &err))
            return key_error(c, names[i], "\"%s\" cannot be split into words: %s", lines[i],
                             err->message);
    }
    if (a->store_timeout == 0)
        return key_error(c, "store_timeout", "must be at least 1 second");
    return 0;
}

static int validate_account(struct parse_ctx *c, Account *a)
{
    const struct provider_preset *p = provider_preset(a->provider);

    if (!a->client_id)
        return key_error(c, "client_id", "missing (the application id registered with %s)",
                         p->name);
    if (a->provider != PROVIDER_MICROSOFT && (has_key(c, "tenant") || has_key(c, "authority")))
        return key_error(c, has_key(c, "tenant") ? "tenant" : "authority",
                         "only applies to provider = microsoft");
    if (a->provider == PROVIDER_MICROSOFT && (!a->authorize_url || !a->token_url))
        return key_error(c, "authority", "\"%s\" and tenant \"%s\" make no valid URL", a->authority,
                         a->tenant);
    if (a->client_secret && a->client_secret_file)
        return key_error(c, "client_secret", "give client_secret or client_secret_file, not both");
    if (p->needs_client_secret && !a->client_secret && !a->client_secret_file)
        return key_error(c, "client_secret",
                         "missing (%s desktop clients need the secret they were issued)", p->name);
    if (a->provider == PROVIDER_GENERIC && !a->issuer && (!a->authorize_url || !a->token_url))
        return key_error(c, NULL,
                         "provider = generic needs issuer, or authorize_url and token_url");
    if (a->refresh_margin < 0 || a->min_validity < 0)
        return key_error(c, NULL, "margins cannot be negative");
    if (a->login_timeout == 0)
        return key_error(c, "login_timeout", "must be at least 1 second");
    return validate_store_commands(c, a);
}

static Account *parse_account(struct parse_ctx *c, const char *name, bool has_defaults,
                              const char *base_dir)
{
    g_autoptr(Account) a = g_new0(Account, 1);

    a->name = g_strdup(name);
    a->provider = PROVIDER_COUNT;
    a->refresh_margin = 600;
    a->min_validity = 120;
    a->login_timeout = 300;
    a->store_timeout = 30;
    a->notify_before = 2 * 86400;
    if (!config_account_name_valid(name)) {
        key_error(c, NULL,
                  "account name \"%s\" may use letters, digits and ._@+- only, "
                  "starting with a letter or digit",
                  name);
        return NULL;
    }
    if (check_group_keys(c, false) < 0 || apply_keys(c, a, has_defaults, base_dir) < 0)
        return NULL;
    if (a->provider == PROVIDER_COUNT) {
        key_error(c, "provider", "missing (microsoft, google or generic)");
        return NULL;
    }
    if (resolve_values(c, a) < 0)
        return NULL;
    fill_defaults(a);
    if (validate_account(c, a) < 0)
        return NULL;
    return g_steal_pointer(&a);
}

static int parse_defaults(struct parse_ctx *c, Config *cfg)
{
    g_autofree char *v = NULL;

    c->group = DEFAULTS_GROUP;
    if (check_group_keys(c, true) < 0)
        return -1;
    if (get_value(c, DEFAULTS_GROUP, "max_parallel", &v) < 0)
        return -1;
    if (v && parse_int(c, "max_parallel", v, 1, 1024, &cfg->max_parallel) < 0)
        return -1;
    return 0;
}

/* GKeyFile merges a repeated [group] into the first one: refuse it instead.
 * Scans in place, since the data may hold a client secret. */
static int check_repeated_groups(const char *data, size_t len, const char *path,
                                 struct tokend_error *e)
{
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    const char *p = data, *end = data + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *close;

        if (!eol)
            eol = end;
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        close = p < eol && *p == '[' ? memchr(p, ']', (size_t)(eol - p)) : NULL;
        if (close) {
            char *group = g_strndup(p + 1, (gsize)(close - p - 1));
            if (!g_hash_table_add(seen, group))
                return error_set(e, TOKEND_EX_CONFIG, "%s: [%s]: the group appears twice", path,
                                 group);
        }
        p = eol + 1;
    }
    return 0;
}

Config *config_parse(const char *data, size_t len, const char *path, struct tokend_error *e)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(Config) cfg = g_new0(Config, 1);
    g_autofree char *base_dir = g_path_get_dirname(path);
    g_auto(GStrv) groups = NULL;
    struct parse_ctx c = {.kf = kf, .path = path, .group = "", .e = e};
    bool has_defaults;

    cfg->path = g_strdup(path);
    cfg->accounts = g_ptr_array_new_with_free_func((GDestroyNotify)account_free);
    cfg->max_parallel = 8;
    if (check_repeated_groups(data, len, path, e) < 0)
        return NULL;
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &err)) {
        error_set(e, TOKEND_EX_CONFIG, "%s: %s", path, err->message);
        return NULL;
    }
    has_defaults = g_key_file_has_group(kf, DEFAULTS_GROUP);
    if (has_defaults && parse_defaults(&c, cfg) < 0)
        return NULL;
    groups = g_key_file_get_groups(kf, NULL);
    for (char **g = groups; *g; g++) {
        const char *name;
        Account *a;

        if (strcmp(*g, DEFAULTS_GROUP) == 0)
            continue;
        c.group = *g;
        if (!g_str_has_prefix(*g, ACCOUNT_PREFIX)) {
            key_error(&c, NULL, "unknown group (use [account NAME] or [defaults])");
            return NULL;
        }
        name = *g + strlen(ACCOUNT_PREFIX);
        if (config_find(cfg, name)) {
            key_error(&c, NULL, "account \"%s\" is defined twice", name);
            return NULL;
        }
        a = parse_account(&c, name, has_defaults, base_dir);
        if (!a)
            return NULL;
        g_ptr_array_add(cfg->accounts, a);
    }
    if (claim_token_files(cfg->accounts, path, e) < 0)
        return NULL;
    return g_steal_pointer(&cfg);
}

char *config_identity(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return NULL;
    return g_strdup_printf("%s|%llu:%llu:%lld:%lld.%09ld", path, (unsigned long long)st.st_dev,
                           (unsigned long long)st.st_ino, (long long)st.st_size,
                           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* Like a loose client_secret_file: said, not repaired (the file is the
 * user's own, perhaps a link into a dotfiles repository). */
static void warn_if_secret_readable(const Config *cfg, const char *path)
{
    struct stat st;
    bool secret = false;

    for (guint i = 0; i < cfg->accounts->len; i++)
        secret = secret || ((Account *)g_ptr_array_index(cfg->accounts, i))->client_secret;
    if (!secret || stat(path, &st) < 0 || (st.st_mode & 077) == 0)
        return;
    log_warn("%s holds client_secret and is readable by others (mode %03o); run: chmod 600 %s "
             "(or move the secret to a private client_secret_file)",
             path, (unsigned)(st.st_mode & 0777), path);
}

void config_set_arg(Config *c, const char *path)
{
    g_free(c->config_arg);
    c->config_arg = path ? g_canonicalize_filename(path, NULL) : NULL;
    for (guint i = 0; i < c->accounts->len; i++)
        ((Account *)g_ptr_array_index(c->accounts, i))->config_arg = c->config_arg;
}

/* Account names need no quoting (config_account_name_valid); a path only
 * when it has characters a shell would read. */
char *config_command(const Account *a, const char *verb)
{
    g_autofree char *file = NULL;

    if (a->config_arg) {
        bool plain = true;
        for (const char *p = a->config_arg; *p; p++)
            plain = plain && (g_ascii_isalnum(*p) || strchr("/._+@%=:,-", *p));
        file = plain ? g_strdup(a->config_arg) : g_shell_quote(a->config_arg);
    }
    return g_strdup_printf("tokend%s%s %s %s", file ? " -c " : "", file ? file : "", verb, a->name);
}

/* Every account's state folder is this file's (claim.h). */
static int claim_folders(const Config *cfg, struct tokend_error *e)
{
    for (guint i = 0; i < cfg->accounts->len; i++) {
        const Account *a = g_ptr_array_index(cfg->accounts, i);
        if (claim_check_folder(cfg->file, a->name, e) < 0)
            return -1;
    }
    return 0;
}

char *config_target_path(const char *path)
{
    char *real = realpath(path, NULL);
    char *target = g_strdup(real ? real : path);
    bool resolved = real != NULL;

    free(real);
    /* A link to nothing: where it points, so that the read finds nothing
     * there (as for no file) rather than a link. */
    for (int hops = 0; !resolved && hops < 40 && g_file_test(target, G_FILE_TEST_IS_SYMLINK);
         hops++) {
        g_autofree char *dir = g_path_get_dirname(target);
        g_autofree char *next = g_file_read_link(target, NULL);

        if (!next)
            break;
        g_free(target);
        target =
            g_path_is_absolute(next) ? g_steal_pointer(&next) : g_build_filename(dir, next, NULL);
    }
    return target;
}

Config *config_load(const char *path, struct tokend_error *e)
{
    g_autofree char *data = NULL;
    g_autofree char *id = config_identity(path);
    g_autofree char *target = config_target_path(path);
    size_t len = 0;
    bool missing = false;
    Config *cfg;

    /* A link (into a dotfiles repository, say) is read as its target,
     * which must be a regular file like any configuration. */
    if (fileio_read(target, CONFIG_MAX_BYTES, &data, &len, &missing, e) < 0) {
        if (missing) {
            error_set(e, TOKEND_EX_CONFIG, "no configuration file at %s", path);
            error_set_hint(e, "create it (see tokend.conf(5)) or pass -c FILE");
        } else {
            e->status = TOKEND_EX_CONFIG;
        }
        return NULL;
    }
    cfg = config_parse(data, len, path, e);
    /* The file may hold a client secret. */
    explicit_bzero(data, len);
    /* Identity taken before the read: an edit during it changes it again. */
    if (cfg) {
        warn_if_secret_readable(cfg, path);
        cfg->id = g_steal_pointer(&id);
        cfg->file = g_steal_pointer(&target);
        for (guint i = 0; i < cfg->accounts->len; i++) {
            Account *a = g_ptr_array_index(cfg->accounts, i);
            a->config_id = cfg->id;
            a->config_file = cfg->file;
        }
    }
    if (cfg && claim_folders(cfg, e) < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

const Account *config_find(const Config *c, const char *name)
{
    for (guint i = 0; i < c->accounts->len; i++) {
        const Account *a = g_ptr_array_index(c->accounts, i);
        if (strcmp(a->name, name) == 0)
            return a;
    }
    return NULL;
}

void config_free(Config *c)
{
    if (!c)
        return;
    g_free(c->path);
    g_free(c->id);
    g_free(c->file);
    g_free(c->config_arg);
    if (c->accounts)
        g_ptr_array_free(c->accounts, TRUE);
    g_free(c);
}
