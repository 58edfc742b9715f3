/* The configuration's keys: one table (name, type, where it may be given,
 * the Account field it fills) and the parsing of each type of value. */

#include <stddef.h>
#include <string.h>

#include "config_internal.h"
#include "tokend/paths.h"
#include "tokend/tokenset.h"
#include "tokend/uri.h"

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
    KEY_GRANT,
    KEY_MODE,
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
    {"token_file_group", KEY_STRING, SCOPE_BOTH, F(token_file_group)},
    {"token_file_mode", KEY_MODE, SCOPE_BOTH, F(token_file_mode)},
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
    {"grant", KEY_GRANT, SCOPE_BOTH, F(grant)},
    {"client_certificate", KEY_PATH, SCOPE_BOTH, F(client_certificate)},
    {"client_key", KEY_PATH, SCOPE_BOTH, F(client_key)},
    {"client_key_passphrase_file", KEY_PATH, SCOPE_BOTH, F(client_key_passphrase_file)},
    {"assertion_alg", KEY_STRING, SCOPE_BOTH, F(assertion_alg)},
    {"service_account_file", KEY_PATH, SCOPE_BOTH, F(service_account_file)},
    {"subject", KEY_STRING, SCOPE_ACCOUNT, F(subject)},
    {"send_as", KEY_STRING, SCOPE_ACCOUNT, F(send_as)},
    {"smtp_tls", KEY_STRING, SCOPE_BOTH, F(smtp_tls)},
    {"smtp_backend", KEY_STRING, SCOPE_BOTH, F(smtp_backend)},
    {"graph_url", KEY_URL, SCOPE_BOTH, F(graph_url)},
    {"relay_account", KEY_STRING, SCOPE_DEFAULTS, 0},
    {"relay_peers", KEY_STRING, SCOPE_DEFAULTS, 0},
    {"relay_tls_certificate", KEY_PATH, SCOPE_DEFAULTS, 0},
    {"relay_tls_key", KEY_PATH, SCOPE_DEFAULTS, 0},
    {"relay_password_hash", KEY_STRING, SCOPE_ACCOUNT, F(relay_password_hash)},
};

#undef F

static const char *reserved_auth_params[] = {
    "response_type",         "client_id",     "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "client_secret", NULL,
};

int config_key_error(const struct parse_ctx *c, const char *key, const char *fmt, ...)
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

static const char *const grant_names[] = {"authorization_code", "client_credentials", "jwt_bearer",
                                          NULL};

const char *account_grant_name(enum account_grant grant)
{
    return (size_t)grant < G_N_ELEMENTS(grant_names) - 1 ? grant_names[grant] : "unknown";
}

bool config_app_only(const Account *a)
{
    return a->grant != ACCOUNT_GRANT_AUTHORIZATION_CODE;
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
int config_get_value(const struct parse_ctx *c, const char *group, const char *key, char **out)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *v = g_key_file_get_string(c->kf, group, key, &err);
    char *hash;

    *out = NULL;
    if (g_error_matches(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND) ||
        g_error_matches(err, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND))
        return 0;
    if (err || !v)
        return config_key_error(c, key,
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

int config_parse_int(const struct parse_ctx *c, const char *key, const char *v, gint64 min,
                     gint64 max, int *out)
{
    gint64 n;
    g_autoptr(GError) err = NULL;

    if (!g_ascii_string_to_signed(v, 10, min, max, &n, &err))
        return config_key_error(
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
        return config_key_error(c, key,
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
            return config_key_error(c, key, "\"%s\" is not of the form name=value", *p);
        name = g_strndup(*p, (gsize)(eq - *p));
        if (g_strv_contains(reserved_auth_params, name))
            return config_key_error(c, key, "\"%s\" is set by tokend itself and cannot be given",
                                    name);
        g_ptr_array_add(kept, g_strdup(*p));
    }
    g_ptr_array_add(kept, NULL);
    g_strfreev(*out);
    *out = (char **)g_ptr_array_free(g_steal_pointer(&kept), FALSE);
    return 0;
}

int config_parse_enum(const struct parse_ctx *c, const char *key, const char *v,
                      const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++) {
        if (strcmp(names[i], v) == 0) {
            *out = i;
            return 0;
        }
    }
    g_autofree char *list = g_strjoinv(", ", (char **)names);
    return config_key_error(c, key, "\"%s\" is not one of: %s", v, list);
}

static int parse_provider(const struct parse_ctx *c, const char *key, const char *v, void *field)
{
    const struct provider_preset *p = provider_find(v);
    g_autofree char *names = NULL;

    if (p) {
        *(const struct provider_preset **)field = p;
        return 0;
    }
    names = provider_names_text();
    return config_key_error(c, key, "\"%s\" is not one of: %s", v, names);
}

static int parse_store(const struct parse_ctx *c, const char *key, const char *v, int *out)
{
    int kind = store_kind_from_name(v);
    g_autofree char *names = NULL;

    if (kind >= 0) {
        *out = kind;
        return 0;
    }
    names = store_kind_names(false);
    return config_key_error(c, key, "\"%s\" is not one of: %s", v, names);
}

static int parse_token_sets(const struct parse_ctx *c, const char *key, const char *v, char ***out)
{
    g_autofree char *why = NULL;
    char **sets = tokenset_parse_config(v, &why);

    if (!sets)
        return config_key_error(c, key, "%s", why);
    g_strfreev(*out);
    *out = sets;
    return 0;
}

/* A token file's mode: octal, the owner reads, the group at most reads,
 * others nothing (a token for everyone is no secret). */
static int parse_mode(const struct parse_ctx *c, const char *key, const char *v, int *out)
{
    guint64 m = 0;

    if (!g_ascii_string_to_unsigned(v, 8, 0, 07777, &m, NULL) || (m & ~(guint64)0640) ||
        !(m & 0400))
        return config_key_error(c, key,
                                "\"%s\" is not 0600 or 0640 (owner reads, the group "
                                "at most reads, others nothing)",
                                v);
    *out = (int)m;
    return 0;
}

/* Parsed, not compared as a prefix: "http://localhost:80@evil.example/"
 * goes to evil.example. */
static int parse_url(const struct parse_ctx *c, const char *key, const char *v, char **out)
{
    const char *why = NULL;

    if (!uri_endpoint_ok(v, &why))
        return config_key_error(c, key, "\"%s\" %s", v, why);
    if (strcmp(key, "issuer") == 0 && uri_has_query(v))
        return config_key_error(c, key,
                                "\"%s\" has a query (?...), which an issuer never "
                                "has (RFC 8414)",
                                v);
    g_free(*out);
    *out = g_strdup(v);
    return 0;
}

static int apply_key(const struct parse_ctx *c, const struct key_spec *k, const char *v, Account *a,
                     const char *base_dir)
{
    static const char *const flow_names[] = {"code", "device", NULL};
    static const char *const consent_names[] = {"auto", "always", "never", NULL};
    void *field = (char *)a + k->offset;

    if (*v == '\0' && k->type != KEY_PARAMS && k->type != KEY_STRING)
        return config_key_error(c, k->name, "empty value");
    switch (k->type) {
    case KEY_STRING:
        g_free(*(char **)field);
        *(char **)field = *v ? g_strdup(v) : NULL;
        return 0;
    case KEY_URL:
        return parse_url(c, k->name, v, (char **)field);
    case KEY_PATH:
        g_free(*(char **)field);
        *(char **)field = paths_expand(v, base_dir);
        return 0;
    case KEY_SECONDS:
        return config_parse_int(c, k->name, v, 0, 86400 * 365, (int *)field);
    case KEY_PORT:
        return config_parse_int(c, k->name, v, 1, 65535, (int *)field);
    case KEY_PROVIDER:
        return parse_provider(c, k->name, v, field);
    case KEY_STORE:
        return parse_store(c, k->name, v, (int *)field);
    case KEY_FLOW:
        return config_parse_enum(c, k->name, v, flow_names, (int *)field);
    case KEY_SECRET:
        secstr_free(*(SecStr **)field);
        *(SecStr **)field = secstr_from(v, strlen(v));
        return 0;
    case KEY_PARAMS:
        return parse_params(c, k->name, v, (char ***)field);
    case KEY_CONSENT:
        return config_parse_enum(c, k->name, v, consent_names, (int *)field);
    case KEY_DURATION:
        return parse_duration(c, k->name, v, (int *)field);
    case KEY_TOKEN_SETS:
        return parse_token_sets(c, k->name, v, (char ***)field);
    case KEY_GRANT:
        return config_parse_enum(c, k->name, v, grant_names, (int *)field);
    case KEY_MODE:
        return parse_mode(c, k->name, v, (int *)field);
    }
    return 0;
}

int config_check_group_keys(const struct parse_ctx *c, bool is_defaults)
{
    g_auto(GStrv) names = g_key_file_get_keys(c->kf, c->group, NULL, NULL);

    for (char **n = names; n && *n; n++) {
        const struct key_spec *k = key_lookup(*n);
        if (!k)
            return config_key_error(c, *n, "unknown key");
        for (char **m = names; m < n; m++)
            if (strcmp(*m, *n) == 0)
                return config_key_error(c, *n, "given twice");
        if (is_defaults && k->scope == SCOPE_ACCOUNT)
            return config_key_error(c, *n, "belongs in an [account NAME] group, not [defaults]");
        if (!is_defaults && k->scope == SCOPE_DEFAULTS)
            return config_key_error(c, *n, "belongs in the [defaults] group");
    }
    return 0;
}

/* Apply every known key, the account's own value winning over [defaults]. */
int config_apply_keys(struct parse_ctx *c, Account *a, bool has_defaults, const char *base_dir)
{
    const char *own_group = c->group;

    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        const struct key_spec *k = &keys[i];
        g_autofree char *v = NULL;

        if (k->scope == SCOPE_DEFAULTS)
            continue;
        c->group = own_group;
        if (config_get_value(c, own_group, k->name, &v) < 0)
            return -1;
        if (!v && has_defaults && k->scope == SCOPE_BOTH) {
            c->group = DEFAULTS_GROUP;
            if (config_get_value(c, DEFAULTS_GROUP, k->name, &v) < 0)
                return -1;
        }
        if (v && apply_key(c, k, v, a, base_dir) < 0)
            return -1;
    }
    c->group = own_group;
    return 0;
}
