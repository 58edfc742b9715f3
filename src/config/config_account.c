/* One account: its keys applied, its provider's defaults filled in, its
 * values resolved (authority, hosts) and checked together. */

#include <string.h>

#include "config_internal.h"
#include "tokend/paths.h"
#include "tokend/uri.h"

#define POP3S_PORT 995

void config_account_free(Account *a)
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
    g_free(a->token_file_group);
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
    g_free(a->smtp_tls);
    g_free(a->send_as);
    g_free(a->smtp_backend);
    g_free(a->graph_url);
    g_free(a->relay_password_hash);
    g_free(a->store_get);
    g_free(a->store_put);
    g_free(a->store_delete);
    g_strfreev(a->token_sets);
    config_app_free(a);
    g_free(a);
}

static bool has_key(const struct parse_ctx *c, const char *key)
{
    return g_key_file_has_key(c->kf, c->group, key, NULL) ||
           g_key_file_has_key(c->kf, DEFAULTS_GROUP, key, NULL);
}

static void fill_defaults(Account *a)
{
    const struct provider_preset *p = a->provider;
    g_autofree char *state = NULL;

    if (!a->authority && p->default_authority)
        a->authority = g_strdup(p->default_authority);
    if (!a->tenant && p->default_tenant)
        a->tenant = g_strdup(p->default_tenant);
    if (!a->scopes)
        a->scopes = g_strdup(config_app_only(a) ? p->app_scopes : p->default_scopes);
    if (!a->redirect_uri)
        a->redirect_uri = g_strdup(p->default_redirect_uri);
    if (!a->authorize_url)
        a->authorize_url = provider_expand(p->authorize_url, a->authority, a->tenant);
    if (!a->token_url)
        a->token_url = provider_expand(p->token_url, a->authority, a->tenant);
    if (!a->device_authorization_url)
        a->device_authorization_url = provider_expand(p->device_url, a->authority, a->tenant);
    if (!a->revocation_url)
        a->revocation_url = provider_expand(p->revocation_url, a->authority, a->tenant);
    if (!a->issuer)
        a->issuer = provider_expand(p->issuer, a->authority, a->tenant);
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
    if (!a->graph_url && p->graph_url)
        a->graph_url = g_strdup(p->graph_url);
    if (!a->token_file && paths_system()) {
        g_autofree char *run = paths_runtime_dir();
        g_autofree char *file = g_strconcat(a->name, ".token", NULL);
        a->token_file = g_build_filename(run, file, NULL);
    }
    if (!a->token_file) {
        state = paths_account_dir(a->name);
        a->token_file = g_build_filename(state, "token", NULL);
    }
    if (!a->token_file_mode)
        a->token_file_mode = a->token_file_group ? 0640 : 0600;
}

/* authority: a host, host:port, or https://host[:port][/TENANT]; the tenant
 * of the URL must agree with `tenant`, and sets it when only the URL has it.
 * Kept as "host[:port]": the endpoints are built from it by GUri. */
static int resolve_authority(struct parse_ctx *c, Account *a)
{
    g_autofree char *authority = NULL;
    g_autofree char *tenant = NULL;
    const char *why = NULL;

    if (!provider_has_authority(a->provider))
        return 0;
    if (a->tenant && !uri_tenant_valid(a->tenant))
        return config_key_error(c, "tenant",
                                "\"%s\" is not common, organizations, consumers, a "
                                "GUID or a domain (contoso.onmicrosoft.com)",
                                a->tenant);
    if (!a->authority)
        return 0;
    if (!uri_parse_authority(a->authority, &authority, &tenant, &why))
        return config_key_error(c, "authority", "\"%s\" %s", a->authority, why);
    if (tenant && a->tenant && g_ascii_strcasecmp(tenant, a->tenant) != 0)
        return config_key_error(c, "authority",
                                "names tenant %s, but tenant = %s; give one of them", tenant,
                                a->tenant);
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
        return config_key_error(c, host_key, "\"%s\" %s", *host, why);
    if (own_port && *port && own_port != *port)
        return config_key_error(c, host_key, "names port %d, but %s = %d; give one of them",
                                own_port, port_key, *port);
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
    return config_key_error(c, key, "\"%s\" is not one of %s", value, list);
}

static int resolve_values(struct parse_ctx *c, Account *a)
{
    static const char *const mechs[] = {"auto", "xoauth2", "oauthbearer", NULL};
    static const char *const tls[] = {"auto", "implicit", "starttls", NULL};
    static const char *const backends[] = {"smtp", "graph", NULL};

    if (check_word(c, "tunnel_mech", a->tunnel_mech, mechs) < 0 ||
        check_word(c, "tunnel_tls", a->tunnel_tls, tls) < 0 ||
        check_word(c, "smtp_backend", a->smtp_backend, backends) < 0)
        return -1;
    if (g_strcmp0(a->smtp_backend, "graph") == 0 && !a->graph_url)
        return config_key_error(c, "smtp_backend",
                                "graph needs Microsoft Graph's URL: provider = %s has none; set "
                                "graph_url",
                                a->provider->name);
    if (resolve_authority(c, a) < 0 ||
        resolve_host(c, "imap_host", &a->imap_host, "imap_port", &a->imap_port) < 0 ||
        resolve_host(c, "smtp_host", &a->smtp_host, "smtp_port", &a->smtp_port) < 0 ||
        resolve_host(c, "pop_host", &a->pop_host, "pop_port", &a->pop_port) < 0)
        return -1;
    return 0;
}

/* A system service has no desktop session, hence no keyring. */
static int validate_system_store(struct parse_ctx *c, const Account *a)
{
    if (!paths_system() || a->store != STORE_KIND_SECRET_SERVICE)
        return 0;
    return config_key_error(c, "store",
                            "the Secret Service is a desktop session's keyring, and the system "
                            "mode has no session: use store = file (kept under %s) or store = "
                            "command (systemd-creds, see tokend.conf(5))",
                            "/var/lib/tokend");
}

/* dir itself or a path below it (both absolute, `..` resolved first). */
static bool path_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0' || n == 1);
}

/* A system account's token file lies in the runtime or the state folder:
 * the service user writes it, and anywhere else it could replace a file
 * the service user may write for another purpose. */
static int validate_system_token_file(struct parse_ctx *c, const Account *a)
{
    g_autofree char *run = NULL, *state = NULL, *file = NULL;

    if (!paths_system() || !a->token_file)
        return 0;
    run = paths_runtime_dir();
    state = paths_state_dir();
    if (!g_path_is_absolute(a->token_file))
        return config_key_error(c, "token_file", "must be an absolute path in system mode");
    file = g_canonicalize_filename(a->token_file, "/");
    if (path_under(file, run) || path_under(file, state))
        return 0;
    return config_key_error(c, "token_file",
                            "%s is outside %s and %s: in system mode a token file lies in the "
                            "runtime or the state folder (leave token_file out for %s/%s.token)",
                            a->token_file, run, state, run, a->name);
}

/* The commands are kept when store names another kind: migrate reads the
 * token back through them. */
static int validate_store_commands(struct parse_ctx *c, const Account *a)
{
    if (validate_system_store(c, a) < 0 || validate_system_token_file(c, a) < 0)
        return -1;
    const char *names[] = {"store_get", "store_put", "store_delete"};
    const char *lines[] = {a->store_get, a->store_put, a->store_delete};

    for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
        g_auto(GStrv) argv = NULL;
        g_autoptr(GError) err = NULL;

        if (!lines[i] && a->store == STORE_KIND_COMMAND)
            return config_key_error(c, names[i],
                                    "missing (store = command runs store_get, "
                                    "store_put and store_delete)");
        if (lines[i] && !g_shell_parse_argv(lines[i], NULL, &argv, &err))
            return config_key_error(c, names[i], "\"%s\" cannot be split into words: %s", lines[i],
                                    err->message);
    }
    if (a->store_timeout == 0)
        return config_key_error(c, "store_timeout", "must be at least 1 second");
    return 0;
}

static int validate_account(struct parse_ctx *c, Account *a)
{
    const struct provider_preset *p = a->provider;

    if (config_app_only(a))
        return config_validate_app(c, a) < 0 ? -1 : validate_store_commands(c, a);
    if (!a->client_id)
        return config_key_error(c, "client_id", "missing (the application id registered with %s)",
                                p->name);
    if (!provider_has_tenant(p) && has_key(c, "tenant"))
        return config_key_error(c, "tenant", "does not apply to provider = %s", p->name);
    if (!provider_has_authority(p) && has_key(c, "authority"))
        return config_key_error(c, "authority", "does not apply to provider = %s", p->name);
    if (provider_has_authority(p) && (!a->authorize_url || !a->token_url))
        return config_key_error(c, "authority", "\"%s\" and tenant \"%s\" make no valid URL",
                                a->authority, a->tenant);
    if (a->client_secret && a->client_secret_file)
        return config_key_error(c, "client_secret",
                                "give client_secret or client_secret_file, not both");
    if (p->needs_client_secret && !a->client_secret && !a->client_secret_file)
        return config_key_error(c, "client_secret",
                                "missing (%s desktop clients need the secret they were issued)",
                                p->name);
    if (!a->issuer && (!a->authorize_url || !a->token_url))
        return config_key_error(
            c, NULL, "provider = %s needs issuer, or authorize_url and token_url", p->name);
    if (a->refresh_margin < 0 || a->min_validity < 0)
        return config_key_error(c, NULL, "margins cannot be negative");
    if (a->login_timeout == 0)
        return config_key_error(c, "login_timeout", "must be at least 1 second");
    return validate_store_commands(c, a);
}

Account *config_parse_account(struct parse_ctx *c, const char *name, bool has_defaults,
                              const char *base_dir)
{
    g_autoptr(Account) a = g_new0(Account, 1);

    a->name = g_strdup(name);
    a->refresh_margin = 600;
    a->min_validity = 120;
    a->login_timeout = 300;
    a->store_timeout = 30;
    a->notify_before = 2 * 86400;
    if (!config_account_name_valid(name)) {
        config_key_error(c, NULL,
                         "account name \"%s\" may use letters, digits and ._@+- only, "
                         "starting with a letter or digit",
                         name);
        return NULL;
    }
    if (config_check_group_keys(c, false) < 0 ||
        config_apply_keys(c, a, has_defaults, base_dir) < 0)
        return NULL;
    if (!a->provider) {
        g_autofree char *names = provider_names_text();
        config_key_error(c, "provider", "missing (%s)", names);
        return NULL;
    }
    if (resolve_values(c, a) < 0)
        return NULL;
    fill_defaults(a);
    if (validate_account(c, a) < 0)
        return NULL;
    return g_steal_pointer(&a);
}
