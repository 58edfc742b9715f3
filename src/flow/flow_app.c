/* App-only accounts: no person, no browser, no refresh token.  A new access
 * token is minted (client credentials or a JWT bearer grant) when the
 * account's token is within the margin of its expiry, under the account's
 * lock, and written where a person's token goes (token file, state).
 *
 * One app serves many mailboxes: the token of an app and its scopes (and,
 * for a JWT bearer grant, the mailbox it acts for) is kept once, in
 * STATE/.apps/HASH/ under its own lock, and every mailbox account of that
 * app copies it from there.  Thirty mailboxes cost one token request per
 * expiry, not thirty.  Locks are taken account first, then the app's. */

#include <string.h>
#include <sys/stat.h>

#include "flow_internal.h"
#include "tokend/assertion.h"
#include "tokend/fileio.h"
#include "tokend/idtoken.h"
#include "tokend/keyfile.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/shared.h"
#include "tokend/state.h"
#include "tokend/store.h"
#include "tokend/tokenfile.h"

/* Not an account name (those start with a letter or digit). */
#define APPS_DIR ".apps"
#define APP_TOKEN_FILE "token"

/* What the app proves itself with. */
typedef struct app_creds {
    AppKey *key;         /* NULL: a client secret (or nothing) */
    AppCert *cert;       /* NULL: no certificate */
    ServiceAccount *sa;  /* Google's JSON key, or NULL */
    const char *iss;     /* the assertion's issuer */
    gint64 cert_expires; /* 0: no certificate */
} AppCreds;

static void app_creds_free(AppCreds *c)
{
    if (!c)
        return;
    app_key_free(c->key);
    app_cert_free(c->cert);
    service_account_free(c->sa);
    g_free(c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AppCreds, app_creds_free)

/* A key only its owner may read: a looser one is refused, not repaired (it
 * may have been read already), with the command that fixes it. */
static int read_key_file(const char *key, const char *path, SecStr **out, struct tokend_error *e)
{
    struct stat st;

    if (stat(path, &st) == 0 && (st.st_mode & 077) != 0) {
        error_set(e, TOKEND_EX_CONFIG, "%s %s is readable by others (mode %03o)", key, path,
                  (unsigned)(st.st_mode & 0777));
        error_set_hint(e, "run: chmod 600 %s", path);
        return -1;
    }
    if (fileio_read_secret(path, KEYFILE_MAX_BYTES, out, NULL, e) < 0) {
        e->status = TOKEND_EX_CONFIG;
        error_prefix(e, "%s", key);
        return -1;
    }
    return 0;
}

/* client_key, else the account's store (Secret Service, file, command). */
static int read_private_key(const Account *a, SecStr **out, struct tokend_error *e)
{
    g_autoptr(Store) s = NULL;

    if (a->client_key)
        return read_key_file("client_key", a->client_key, out, e);
    if (!(s = store_open_account(a, NULL, e)) ||
        store_get(s, a->name, STORE_CLIENT_KEY, out, e) < 0)
        return -1;
    if (*out)
        return 0;
    error_set(e, TOKEND_EX_CONFIG, "no client_key is set, and the %s store holds no key for %s",
              store_name(s), a->name);
    error_set_hint(e, "set client_key to the private key's file");
    return -1;
}

/* The PEM key, decrypted with client_key_passphrase_file when it has one;
 * what names it (a file, the store) prefixes an error. */
static int parse_key(const Account *a, const SecStr *pem, const char *what, AppCreds *c,
                     struct tokend_error *e)
{
    g_autoptr(SecStr) passphrase = NULL;

    if (a->client_key_passphrase_file &&
        read_key_file("client_key_passphrase_file", a->client_key_passphrase_file, &passphrase, e) <
            0)
        return -1;
    while (passphrase && passphrase->len > 0 && passphrase->data[passphrase->len - 1] == '\n')
        passphrase->data[--passphrase->len] = '\0';
    if (!(c->key = keyfile_parse_private_key(pem, passphrase, e))) {
        error_prefix(e, "%s", what);
        return -1;
    }
    return 0;
}

static int load_key(const Account *a, AppCreds *c, struct tokend_error *e)
{
    g_autoptr(SecStr) pem = NULL;

    if (read_private_key(a, &pem, e) < 0)
        return -1;
    return parse_key(a, pem, a->client_key ? a->client_key : "the stored client key", c, e);
}

static int load_certificate(const Account *a, AppCreds *c, struct tokend_error *e)
{
    g_autofree char *pem = NULL;
    size_t len = 0;

    if (fileio_read(a->client_certificate, KEYFILE_MAX_BYTES, &pem, &len, NULL, e) < 0 ||
        !(c->cert = keyfile_parse_certificate(pem, len, e))) {
        e->status = TOKEND_EX_CONFIG;
        error_prefix(e, "client_certificate %s", a->client_certificate);
        return -1;
    }
    c->cert_expires = c->cert->not_after;
    if (c->key && !keyfile_key_matches(c->key, c->cert)) {
        error_set(e, TOKEND_EX_CONFIG, "client_key is not the key of client_certificate %s",
                  a->client_certificate);
        error_set_hint(e, "give the private key the certificate was made from");
        return -1;
    }
    return 0;
}

static int load_service_account(const Account *a, AppCreds *c, struct tokend_error *e)
{
    g_autoptr(SecStr) json = NULL;

    if (read_key_file("service_account_file", a->service_account_file, &json, e) < 0)
        return -1;
    if (!(c->sa = keyfile_parse_service_account(json, e)) ||
        !(c->key = keyfile_parse_private_key(c->sa->private_key, NULL, e))) {
        e->status = TOKEND_EX_CONFIG;
        error_prefix(e, "service_account_file %s", a->service_account_file);
        return -1;
    }
    c->iss = c->sa->client_email;
    return 0;
}

/* Nothing to load for a client secret (flow_client_new reads it). */
static AppCreds *app_creds_load(const Account *a, struct tokend_error *e)
{
    g_autoptr(AppCreds) c = g_new0(AppCreds, 1);
    bool signs = a->grant == ACCOUNT_GRANT_JWT_BEARER || a->client_certificate || a->client_key;

    c->iss = a->client_id;
    if (a->service_account_file) {
        if (load_service_account(a, c, e) < 0)
            return NULL;
    } else if (signs && load_key(a, c, e) < 0) {
        return NULL;
    }
    if (a->client_certificate && load_certificate(a, c, e) < 0)
        return NULL;
    return g_steal_pointer(&c);
}

static SecStr *app_assertion(const Account *a, const AppCreds *c, const char *aud,
                             struct tokend_error *e)
{
    bool bearer = a->grant == ACCOUNT_GRANT_JWT_BEARER;
    int alg = assertion_alg_from_name(a->assertion_alg ? a->assertion_alg : "RS256");
    struct assertion_claims claims = {
        .iss = c->iss,
        /* RFC 7523 2.2: a client assertion's subject is the client. */
        .sub = bearer ? (a->subject ? a->subject : a->username) : a->client_id,
        .aud = aud,
        .scope = bearer ? a->scopes : NULL,
        .now = state_now(),
        .lifetime = ASSERTION_LIFETIME,
        .kid = c->sa ? c->sa->private_key_id : NULL,
        .x5t_s256 = c->cert ? c->cert->x5t_s256 : NULL,
        .x5t = c->cert ? c->cert->x5t : NULL,
    };

    return assertion_build(&claims, (enum assertion_alg)alg, c->key, e);
}

/* The request body: a client credentials grant (with a signed client
 * assertion, or the client secret), or a JWT bearer grant. */
static SecStr *app_form(const Account *a, const FlowClient *fc, const AppCreds *c,
                        struct tokend_error *e)
{
    g_autoptr(SecStr) assertion = NULL;

    if (c->key && !(assertion = app_assertion(a, c, fc->token_url, e)))
        return NULL;
    if (a->grant == ACCOUNT_GRANT_JWT_BEARER)
        return oauth_jwt_bearer_form(&fc->oauth, assertion);
    return oauth_client_credentials_form(&fc->oauth, assertion);
}

/* "...: MEANING (TAG)": the server's error is the tag. */
static char *error_tag(const char *message)
{
    char *what = g_strdup(strrchr(message, '(') ? strrchr(message, '(') + 1 : message);

    if (*what && what[strlen(what) - 1] == ')')
        what[strlen(what) - 1] = '\0';
    return what;
}

/* A refusal of the app's grant is no sign-in a person could make: say what
 * the administrator must do instead of "run: tokend obtain".  Google says
 * unauthorized_client when the delegation does not cover the client id or
 * the scope: the administrator's step too, not a setting of the account. */
static void app_refused(const Account *a, const AppCreds *c, struct tokend_error *e)
{
    g_autofree char *what = e->message ? error_tag(e->message) : NULL;
    bool bearer = a->grant == ACCOUNT_GRANT_JWT_BEARER;

    if (!what || !((e->status == TOKEND_EX_NOPERM && g_str_has_prefix(e->message, "sign-in")) ||
                   (bearer && strcmp(what, "unauthorized_client") == 0)))
        return;
    if (bearer) {
        error_set(e, TOKEND_EX_NOPERM, "the service account may not act for %s (%s)",
                  a->subject ? a->subject : a->username, what);
        error_set_hint(e,
                       "in the Admin console (Security, API controls, Domain-wide delegation) "
                       "allow client id %s for %s, and check that %s is a user of the domain",
                       c && c->sa && c->sa->client_id ? c->sa->client_id : "of the service account",
                       a->scopes, a->subject ? a->subject : a->username);
        return;
    }
    error_set(e, TOKEND_EX_NOPERM, "the server refused the app's token request (%s)", what);
    error_set_hint(e, "check the app's permissions and admin consent at the server");
}

/* A 401 or 403 without a word (glewlwyd's answer to an assertion signed by
 * a key it does not know) to the app's own request refuses its credentials:
 * a setting to check, not a broken server. */
static void app_unexplained(const Account *a, const HttpResponse *r, struct tokend_error *e)
{
    for (size_t i = 0; i < r->body->len; i++)
        if (!g_ascii_isspace(r->body->data[i]))
            return;
    if (r->status != 401 && r->status != 403)
        return;
    error_set(e, TOKEND_EX_CONFIG,
              "the server refused the app's credentials (HTTP %ld, no reason given)", r->status);
    error_set_hint(e, "check that client_id and the %s are those registered for the app",
                   a->client_secret || a->client_secret_file || config_app_secret_stored(a)
                       ? "client secret"
                       : "certificate or key");
}

/* A client credentials answer carries no refresh token; one that does is
 * not kept anywhere. */
static int app_request(const Account *a, Http *http, TokenResponse **t, gint64 *cert_expires,
                       struct tokend_error *e)
{
    g_autoptr(FlowClient) fc = NULL;
    g_autoptr(AppCreds) c = NULL;
    g_autoptr(SecStr) form = NULL;
    g_autoptr(HttpResponse) r = NULL;
    g_autoptr(SecStr) basic = NULL;

    if (!(fc = flow_client_new(a, http, e)) || !(c = app_creds_load(a, e)) ||
        !(form = app_form(a, fc, c, e)))
        return -1;
    /* A signed assertion is the client's authentication: no secret. */
    basic = c->key ? NULL : oauth_client_basic(&fc->oauth);
    if (http_request_auth(http, fc->token_url, form, basic, &r, e) < 0)
        return -1;
    if (oauth_parse_token_response(r, t, e) < 0) {
        app_refused(a, c, e);
        app_unexplained(a, r, e);
        return -1;
    }
    if ((*t)->refresh_token) {
        log_verbose("%s: ignoring the refresh token the server sent with an app-only token",
                    a->name);
        g_clear_pointer(&(*t)->refresh_token, secstr_free);
    }
    *cert_expires = c->cert_expires;
    return 0;
}

/* The folder of the app's shared token: one per token endpoint, client,
 * scopes and (JWT bearer) mailbox.  It is a cache (a missing or torn one
 * is minted again), so it lives in memory where there is a runtime
 * folder: writing it then costs no journal commit and no write-back. */
static char *app_dir(const Account *a)
{
    g_autofree char *state = paths_cache_dir();
    g_autofree char *what = g_strjoin(
        "\n", account_grant_name(a->grant), a->token_url ? a->token_url : a->issuer,
        a->client_id ? a->client_id : "", a->service_account_file ? a->service_account_file : "",
        a->scopes,
        a->grant == ACCOUNT_GRANT_JWT_BEARER ? (a->subject ? a->subject : a->username) : "", NULL);
    g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, what, -1);

    hash[32] = '\0';
    return g_build_filename(state, APPS_DIR, hash, NULL);
}

/* Under the app's lock: mint, then the app's token file, then its state. */
static int app_mint(const Account *a, const char *dir, AccountState *app, struct tokend_error *e)
{
    g_autoptr(Http) http = http_new(a->ca_file);
    g_autoptr(TokenResponse) t = NULL;
    g_autofree char *file = g_build_filename(dir, APP_TOKEN_FILE, NULL);
    gint64 cert_expires = 0, now = state_now();

    /* Not synced: a torn token file or state here after a power cut is a
     * cache miss (app_token mints again), never a secret that is lost. */
    if (app_request(a, http, &t, &cert_expires, e) < 0 ||
        tokenfile_write_synced(file, t->access_token, NULL, 0600, FILEIO_SYNC_NONE, e) < 0)
        return -1;
    app->app_only = true;
    app->expires_at = now + t->expires_in;
    app->obtained_at = now;
    app->cert_expires_at = cert_expires;
    g_free(app->token_file);
    app->token_file = g_steal_pointer(&file);
    g_free(app->scope);
    app->scope = g_strdup(t->scope ? t->scope : a->scopes);
    log_verbose("%s: minted a token for the app (valid %" G_GINT64_FORMAT " s)", a->name,
                t->expires_in);
    return state_save_synced(dir, app, FILEIO_SYNC_NONE, e);
}

/* The app's token does for margin seconds more, or for half its life when
 * it lives less than the margin (else every call would mint one). */
static bool app_token_fresh(const AccountState *app, int margin, gint64 since)
{
    gint64 life = app->expires_at - app->obtained_at;

    return app->obtained_at >= since &&
           state_expiry_fresh(app->expires_at, (int)MIN((gint64)margin, life / 2), state_now());
}

/* The app's token, fresh (app_token_fresh) and obtained at `since` or
 * later, minted when there is none such.  *app: the app's state. */
static SecStr *app_token(const Account *a, int margin, gint64 since, AccountState **app,
                         bool *minted, struct tokend_error *e)
{
    g_autofree char *dir = app_dir(a);
    g_autofree char *file = g_build_filename(dir, APP_TOKEN_FILE, NULL);
    SecStr *token = NULL;
    int fd;

    if (paths_ensure_private_dir(dir, e) < 0 || (fd = lock_acquire(dir, LOCK_TIMEOUT_MS, e)) < 0)
        return NULL;
    fileio_remove_stale_temps_in(dir, (const char *const[]){APP_TOKEN_FILE, STATE_FILE, NULL});
    if (!(*app = state_load_remade(dir, e))) {
        lock_release(fd);
        return NULL;
    }
    *minted = !app_token_fresh(*app, margin, since);
    if (!*minted)
        token = tokenfile_read(file, NULL, e);
    if (!token) {
        error_clear(e);
        *minted = true;
        if (app_mint(a, dir, *app, e) == 0)
            token = tokenfile_read(file, NULL, e);
    }
    lock_release(fd);
    return token;
}

int flow_app_forget(const Account *a, GString *removed, struct tokend_error *e)
{
    g_autofree char *dir = app_dir(a);
    g_autofree char *token = g_build_filename(dir, APP_TOKEN_FILE, NULL);
    g_autofree char *state = g_build_filename(dir, STATE_FILE, NULL);
    int fd, r;

    if (paths_trust_private_dir(dir, e) != 0)
        return e->status ? -1 : 0; /* 1: there is none */
    if ((fd = lock_acquire(dir, LOCK_TIMEOUT_MS, e)) < 0)
        return -1;
    r = fileio_remove(token, e);
    if (r > 0)
        g_string_append(removed, "removed the app's shared token; ");
    if (r >= 0)
        r = fileio_remove(state, e);
    lock_release(fd);
    return r < 0 ? -1 : 0;
}

/* Under the account's lock: its token file, then its state. */
static int save_account(const Account *a, const char *dir, AccountState *st, const SecStr *token,
                        const AccountState *app, struct tokend_error *e)
{
    g_autofree char *parent = g_path_get_dirname(a->token_file);

    if (g_mkdir_with_parents(parent, 0700) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create folder %s for token_file", parent);
    if (tokenfile_write_shared(a->token_file, token, a->token_file_group, a->token_file_mode, e) <
        0)
        return -1;
    st->app_only = true;
    st->expires_at = app->expires_at;
    st->obtained_at = app->obtained_at;
    st->cert_expires_at = app->cert_expires_at;
    st->last_attempt = st->last_refresh = state_now();
    if (st->signed_in_at == 0)
        st->signed_in_at = st->last_refresh;
    st->needs_signin = false;
    st->last_status = 0;
    g_clear_pointer(&st->last_error, g_free);
    g_free(st->scope);
    st->scope = g_strdup(app->scope);
    flow_state_remember_config(st, a);
    /* The token file is synced (clients read it; never empty or torn); the
     * state is not: all it holds is made again by the next mint, and
     * state_load_remade starts a torn one again. */
    return state_save_synced(dir, st, FILEIO_SYNC_NONE, e);
}

static int refresh_locked(const Account *a, const char *dir, AccountState *st, int margin,
                          gint64 since, enum refresh_outcome *outcome, struct tokend_error *e)
{
    g_autoptr(AccountState) app = NULL;
    g_autoptr(SecStr) token = NULL;
    bool minted = false;

    flow_remove_stale_temps(a, dir);
    if (!(token = app_token(a, margin, since, &app, &minted, e)) ||
        save_account(a, dir, st, token, app, e) < 0) {
        flow_record_failure(dir, st, e);
        return -1;
    }
    *outcome = minted ? REFRESH_DONE : REFRESH_DONE_ELSEWHERE;
    return 0;
}

int flow_app_refresh(const Account *a, int margin, gint64 since, enum refresh_outcome *outcome,
                     struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = NULL;
    int fd, r;

    *outcome = REFRESH_NOT_NEEDED;
    if (paths_ensure_private_dir(dir, e) < 0)
        return -1;
    /* Unread or torn: the lock's side says so, once. */
    if (!(st = state_load(dir, e)))
        error_clear(e);
    if (st && since == 0 && st->app_only &&
        state_token_ready(st, a->token_file, margin, state_now()))
        return 0;
    if ((fd = lock_acquire(dir, LOCK_TIMEOUT_MS, e)) < 0)
        return -1;
    state_free(st);
    st = state_load_remade(dir, e);
    if (st && since == 0 && st->app_only &&
        state_token_ready(st, a->token_file, margin, state_now())) {
        *outcome = REFRESH_DONE_ELSEWHERE;
        lock_release(fd);
        return 0;
    }
    r = st ? refresh_locked(a, dir, st, margin, since, outcome, e) : -1;
    lock_release(fd);
    return r;
}

/* A `refresh` of many accounts: forced, it mints once per app and every
 * other mailbox of that app takes the new token. */
struct flow_app_run {
    bool force;
    GHashTable *minted; /* app folder -> gint64 *: when this run minted for it */
};

FlowAppRun *flow_app_run_new(bool force)
{
    FlowAppRun *run = g_new0(FlowAppRun, 1);

    run->force = force;
    run->minted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return run;
}

void flow_app_run_free(FlowAppRun *run)
{
    if (!run)
        return;
    g_hash_table_destroy(run->minted);
    g_free(run);
}

int flow_app_refresh_in_run(FlowAppRun *run, const Account *a, int margin,
                            enum refresh_outcome *outcome, struct tokend_error *e)
{
    g_autofree char *dir = app_dir(a);
    const gint64 *minted = g_hash_table_lookup(run->minted, dir);
    gint64 before = state_now();
    gint64 since = !run->force ? 0 : minted ? *minted : G_MAXINT64;

    if (flow_app_refresh(a, margin, since, outcome, e) < 0)
        return -1;
    if (run->force && !minted)
        g_hash_table_insert(run->minted, g_steal_pointer(&dir), g_memdup2(&before, sizeof(before)));
    return 0;
}

void flow_app_facts_clear(struct flow_app_facts *f)
{
    g_clear_pointer(&f->client_id, g_free);
    g_clear_pointer(&f->object_id, g_free);
    g_clear_pointer(&f->tenant_id, g_free);
}

int flow_app_facts(const Account *a, struct flow_app_facts *f, struct tokend_error *e)
{
    g_autoptr(SecStr) token = NULL;
    g_autoptr(SecStr) json = NULL;
    g_autoptr(ServiceAccount) sa = NULL;

    if (a->service_account_file) {
        if (read_key_file("service_account_file", a->service_account_file, &json, e) < 0 ||
            !(sa = keyfile_parse_service_account(json, e)))
            return -1;
        f->client_id = g_strdup(sa->client_id);
    } else {
        f->client_id = g_strdup(a->client_id);
    }
    if (!(token = flow_read_token(a, e))) {
        error_clear(e);
        return 0;
    }
    f->object_id = idtoken_claim(token->data, token->len, "oid");
    f->tenant_id = idtoken_claim(token->data, token->len, "tid");
    return 0;
}

/* Only an account that signs with a key it does not name may keep one in
 * its store: else the key would lie there unused. */
static int key_importable(const Account *a, struct tokend_error *e)
{
    if (!config_app_only(a))
        return error_set(e, TOKEND_EX_CONFIG, "%s is not an app-only account: it keeps no key",
                         a->name);
    if (a->client_key) {
        error_set(e, TOKEND_EX_CONFIG, "client_key names the key's file (%s)", a->client_key);
        error_set_hint(e, "remove client_key from [account %s] to use a stored key", a->name);
        return -1;
    }
    if (a->service_account_file)
        return error_set(e, TOKEND_EX_CONFIG, "the service account file %s holds the key",
                         a->service_account_file);
    if (a->grant != ACCOUNT_GRANT_JWT_BEARER && !a->client_certificate)
        return error_set(e, TOKEND_EX_CONFIG,
                         "%s signs in with a client secret, not a key (client_certificate is "
                         "not set)",
                         a->name);
    return 0;
}

/* Kept, then read back: a store that loses it fails here, not at the
 * next mint.  what: "key" or "secret", as the messages name it. */
static int secret_put(const Account *a, const char *kind, const char *what, const SecStr *value,
                      char **store, struct tokend_error *e)
{
    g_autoptr(Store) s = NULL;
    g_autoptr(SecStr) back = NULL;
    g_autofree char *label = g_strdup_printf("tokend client %s for %s", what, a->name);

    if (!(s = store_open_account(a, NULL, e)) || store_put(s, a->name, kind, label, value, e) < 0 ||
        store_get(s, a->name, kind, &back, e) < 0)
        return -1;
    if (!back || !secstr_equal(back, value)) {
        error_set(e, TOKEND_EX_UNAVAILABLE,
                  "the %s store gave back something other than the %s it was given", store_name(s),
                  what);
        error_set_hint(e, "check the store; the %s was not kept", what);
        return -1;
    }
    *store = g_strdup(store_name(s));
    return 0;
}

int flow_app_import_key(const Account *a, const char *path, char **store, struct tokend_error *e)
{
    g_autoptr(AppCreds) c = g_new0(AppCreds, 1);
    g_autoptr(SecStr) pem = NULL;

    if (key_importable(a, e) < 0 || read_key_file("the key", path, &pem, e) < 0 ||
        parse_key(a, pem, path, c, e) < 0)
        return -1;
    if (a->client_certificate && load_certificate(a, c, e) < 0)
        return -1;
    return secret_put(a, STORE_CLIENT_KEY, "key", pem, store, e);
}

/* Only a client credentials account that names neither a secret nor a key
 * looks for its client secret in its store: else it would lie there
 * unused. */
static int secret_importable(const Account *a, struct tokend_error *e)
{
    const char *named = a->client_secret        ? "client_secret"
                        : a->client_secret_file ? "client_secret_file"
                                                : NULL;

    if (a->grant != ACCOUNT_GRANT_CLIENT_CREDENTIALS)
        return error_set(e, TOKEND_EX_CONFIG,
                         "%s is not an app-only account of grant = client_credentials: it keeps "
                         "no client secret",
                         a->name);
    if (named) {
        error_set(e, TOKEND_EX_CONFIG, "%s names the client secret in the configuration", named);
        error_set_hint(e, "remove %s from [account %s] to use a stored secret", named, a->name);
        return -1;
    }
    if (a->client_certificate || a->client_key)
        return error_set(e, TOKEND_EX_CONFIG,
                         "%s signs in with a key (client_certificate or client_key is set), not "
                         "a client secret",
                         a->name);
    return 0;
}

/* One line of visible characters (RFC 6749 appendix A.2, VSCHAR), the line
 * end and blanks after it taken off. */
static int secret_clean(SecStr *s, const char *where, struct tokend_error *e)
{
    while (s->len > 0 && g_ascii_isspace(s->data[s->len - 1]))
        s->data[--s->len] = '\0';
    if (s->len == 0)
        return error_set(e, TOKEND_EX_DATAERR, "%s holds no client secret", where);
    for (size_t i = 0; i < s->len; i++)
        if ((unsigned char)s->data[i] < 0x20 || (unsigned char)s->data[i] > 0x7e)
            return error_set(e, TOKEND_EX_DATAERR,
                             "%s is not one line of visible characters (a client secret)", where);
    return 0;
}

int flow_app_import_secret(const Account *a, const char *path, const SecStr *given, char **store,
                           struct tokend_error *e)
{
    g_autoptr(SecStr) secret = NULL;

    if (secret_importable(a, e) < 0)
        return -1;
    if (path && read_key_file("the secret", path, &secret, e) < 0)
        return -1;
    if (!path)
        secret = secstr_dup(given);
    if (secret_clean(secret, path ? path : "standard input", e) < 0)
        return -1;
    return secret_put(a, STORE_CLIENT_SECRET, "secret", secret, store, e);
}
