/* Building the protocol's view of an account: the client secret (read only
 * when needed) and the endpoints. */

#include <string.h>
#include <sys/stat.h>

#include "flow_internal.h"
#include "tokend/discovery.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/store.h"

#define CLIENT_SECRET_MAX 4096

/* An app's client secret kept in the account's store (import --secret). */
static int stored_secret(const Account *a, SecStr **out, struct tokend_error *e)
{
    g_autoptr(Store) s = NULL;
    g_autofree char *again = NULL;

    if (!(s = store_open_account(a, NULL, e)) ||
        store_get(s, a->name, STORE_CLIENT_SECRET, out, e) < 0)
        return -1;
    if (*out)
        return 0;
    again = config_command(a, "import");
    error_set(e, TOKEND_EX_CONFIG,
              "no client secret or key is set, and the %s store holds no client secret for %s",
              store_name(s), a->name);
    error_set_hint(e,
                   "run: %s --secret FILE (or set client_secret_file, or client_certificate "
                   "and client_key)",
                   again);
    return -1;
}

static int load_secret(const Account *a, SecStr **out, struct tokend_error *e)
{
    g_autoptr(SecStr) s = NULL;
    bool missing = false;

    if (config_app_secret_stored(a))
        return stored_secret(a, out, e);
    if (a->client_secret) {
        *out = secstr_dup(a->client_secret);
        return 0;
    }
    if (!a->client_secret_file)
        return 0;
    if (fileio_read_secret(a->client_secret_file, CLIENT_SECRET_MAX, &s, &missing, e) < 0) {
        e->status = TOKEND_EX_CONFIG;
        error_prefix(e, "client_secret_file");
        return -1;
    }
    while (s->len > 0 && g_ascii_isspace(s->data[s->len - 1]))
        s->data[--s->len] = '\0';
    if (s->len == 0)
        return error_set(e, TOKEND_EX_CONFIG, "client_secret_file %s is empty",
                         a->client_secret_file);
    *out = g_steal_pointer(&s);
    return 0;
}

static void take(char **slot, const char *discovered)
{
    if (!*slot && discovered)
        *slot = g_strdup(discovered);
}

static bool has_scope(const char *scopes, const char *name)
{
    g_auto(GStrv) words = g_strsplit_set(scopes ? scopes : "", " \t", -1);

    return g_strv_contains((const char *const *)words, name);
}

/* An account that names its user (username, identity) has the sign-in
 * checked against it: where the server offers the email scope, it is
 * asked for, so that the server names the user by a name a person types
 * (the id_token or userinfo), not only by its opaque sub.  NULL when the
 * account's own scopes do. */
static char *scopes_with_email(const Account *a)
{
    bool named = (a->username && *a->username) || (a->identity && *a->identity);

    if (!named || !has_scope(a->scopes, "openid") || has_scope(a->scopes, "email"))
        return NULL;
    return g_strconcat(a->scopes, " email", NULL);
}

#define DISCOVERY_FILE "discovery.json"
#define DISCOVERY_MAX_AGE_S (24 * 3600)

/* The metadata kept beside the account's state, if it is there and for
 * this issuer; *stale when older than a day. */
static Discovery *metadata_kept(const char *path, const char *issuer, bool *stale)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *data = NULL;
    size_t len = 0;
    struct stat st;
    Discovery *d;

    if (stat(path, &st) < 0 || fileio_read(path, DISCOVERY_MAX_BYTES, &data, &len, NULL, &e) < 0) {
        error_clear(&e);
        return NULL;
    }
    *stale = g_get_real_time() / G_USEC_PER_SEC - st.st_mtime > DISCOVERY_MAX_AGE_S;
    d = discovery_parse(data, len, issuer, &e);
    error_clear(&e);
    return d;
}

/* The issuer's metadata: kept a day in the account folder; fetched again
 * after that, and the kept one used while the server is away. */
static Discovery *metadata_of(Http *h, const char *issuer, const char *dir, struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(dir, DISCOVERY_FILE, NULL);
    bool stale = false;
    g_autoptr(Discovery) kept = metadata_kept(path, issuer, &stale);
    g_autoptr(SecStr) doc = NULL;
    Discovery *d;

    if (kept && !stale)
        return g_steal_pointer(&kept);
    d = discovery_fetch(h, issuer, &doc, e);
    if (!d && kept && e->status == TOKEND_EX_TEMPFAIL) {
        log_warn("%s; using the metadata fetched earlier", e->message);
        error_clear(e);
        return g_steal_pointer(&kept);
    }
    if (d && fileio_write_atomic(path, doc->data, doc->len, FILEIO_SYNC_NONE, e) < 0) {
        log_warn("%s", e->message);
        error_clear(e);
    }
    return d;
}

/* Endpoints the configuration leaves out come from the server's metadata;
 * RFC 9207 `iss` becomes mandatory when the metadata promises it. */
static int discover(const Account *a, Http *h, FlowClient *c, bool *iss_required,
                    bool *secret_basic, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(Discovery) d = NULL;

    if (paths_ensure_private_dir(dir, e) < 0 || !(d = metadata_of(h, a->issuer, dir, e)))
        return -1;
    take(&c->authorize_url, d->authorization_endpoint);
    take(&c->token_url, d->token_endpoint);
    take(&c->device_url, d->device_authorization_endpoint);
    take(&c->revocation_url, d->revocation_endpoint);
    take(&c->userinfo_url, d->userinfo_endpoint);
    if (d->email_scope)
        c->scopes = scopes_with_email(a);
    *iss_required = d->iss_parameter_supported;
    *secret_basic = d->secret_basic_only;
    if (d->issuer_templated)
        g_clear_pointer(&c->issuer, g_free);
    return 0;
}

FlowClient *flow_client_new(const Account *a, Http *h, struct tokend_error *e)
{
    g_autoptr(FlowClient) c = g_new0(FlowClient, 1);
    bool iss_required = false, secret_basic = false;

    if (load_secret(a, &c->secret, e) < 0)
        return NULL;
    c->authorize_url = g_strdup(a->authorize_url);
    c->token_url = g_strdup(a->token_url);
    c->device_url = g_strdup(a->device_authorization_url);
    c->revocation_url = g_strdup(a->revocation_url);
    c->issuer = g_strdup(a->issuer);
    if (a->provider->discovers && a->issuer &&
        discover(a, h, c, &iss_required, &secret_basic, e) < 0)
        return NULL;
    if (!c->token_url) {
        error_set(e, TOKEND_EX_CONFIG, "no token endpoint known for this account");
        error_set_hint(e, "set token_url, or issuer for discovery");
        return NULL;
    }
    c->oauth = (struct oauth_client){
        .client_id = a->client_id,
        .client_secret = c->secret,
        .authorize_url = c->authorize_url,
        .token_url = c->token_url,
        .device_url = c->device_url,
        .revocation_url = c->revocation_url,
        .issuer = c->issuer,
        .iss_required = iss_required,
        .scopes = c->scopes ? c->scopes : a->scopes,
        .refresh_scopes = a->provider->refresh_sends_scopes ? a->scopes : NULL,
        .secret_basic = secret_basic && c->secret,
    };
    return g_steal_pointer(&c);
}

void flow_client_free(FlowClient *c)
{
    if (!c)
        return;
    secstr_free(c->secret);
    g_free(c->authorize_url);
    g_free(c->token_url);
    g_free(c->device_url);
    g_free(c->revocation_url);
    g_free(c->userinfo_url);
    g_free(c->issuer);
    g_free(c->scopes);
    g_free(c);
}
