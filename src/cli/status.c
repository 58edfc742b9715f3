#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "tokend/status.h"
#include "tokend/paths.h"
#include "tokend/reauth.h"
#include "tokend/relayrun.h"
#include "tokend/state.h"
#include "tokend/shared.h"
#include "tokend/tokenfile.h"
#include "tokend/tokenset.h"

static char *when(gint64 t)
{
    g_autoptr(GDateTime) dt = t > 0 ? g_date_time_new_from_unix_local(t) : NULL;
    return dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("never");
}

/* A sign-in the account had is lost: the server refused the refresh
 * token, or the configuration now points it elsewhere.  (One never signed
 * in is not lost: `refresh` of all accounts passes it by.) */
static bool signin_lost(const AccountState *st)
{
    return st->needs_signin || st->binding_refused;
}

static const char *signin_state(const AccountState *st)
{
    if (st->binding_refused)
        return "needed (the configuration now names another server or client than the "
               "refresh token came from; it is not sent there)";
    if (st->app_only && !st->needs_signin)
        return "not needed (app-only)";
    if (!st->store && !st->app_only)
        return "needed (not signed in)";
    if (st->needs_signin)
        return "needed";
    return "not needed";
}

static char *expiry_text(gint64 expires_at, gint64 now)
{
    g_autofree char *at = when(expires_at);

    if (expires_at == 0)
        return g_strdup("none");
    if (expires_at <= now)
        return g_strdup_printf("expired at %s", at);
    return g_strdup_printf("valid until %s (%" G_GINT64_FORMAT " min left)", at,
                           (expires_at - now) / 60);
}

/* The token sets: the configured ones (fetched or not), then the others
 * the state has a token for (`token --scope`, a set no longer configured). */
static bool set_configured(const Account *a, const StateTokenSet *ts)
{
    return g_strcmp0(tokenset_find(a->token_sets, ts->key), ts->scopes) == 0;
}

static char *set_text(const Account *a, const char *name, const StateTokenSet *ts, gint64 now)
{
    g_return_val_if_fail(name || ts, NULL);
    g_autofree char *expiry = ts ? expiry_text(ts->expires_at, now) : NULL;
    g_autofree char *scopes = ts ? error_escape(ts->scopes ? ts->scopes : "") : NULL;
    g_autofree char *key = ts ? error_escape(ts->key) : NULL;

    if (name && !ts)
        return g_strdup_printf("%s: not fetched yet (tokend refresh %s, or tokend token %s "
                               "--set %s)",
                               name, a->name, a->name, name);
    if (name)
        return g_strdup_printf("%s: %s", name, expiry);
    if (g_str_has_prefix(ts->key, "scopes."))
        return g_strdup_printf("--scope %s: %s", scopes, expiry);
    if (tokenset_find(a->token_sets, ts->key))
        return g_strdup_printf("%s (as token_sets named it before: %s): %s", key, scopes, expiry);
    return g_strdup_printf("%s (no longer in token_sets): %s", key, expiry);
}

static void print_sets(const Account *a, const AccountState *st, gint64 now)
{
    for (char *const *s = a->token_sets; s && *s; s++) {
        g_autofree char *name = g_strndup(*s, strcspn(*s, " "));
        const StateTokenSet *ts = state_token_set_find(st, name);
        g_autofree char *text = set_text(a, name, ts && set_configured(a, ts) ? ts : NULL, now);
        printf("  token set:    %s\n", text);
    }
    for (guint i = 0; st->token_sets && i < st->token_sets->len; i++) {
        const StateTokenSet *ts = g_ptr_array_index(st->token_sets, i);
        g_autofree char *text = NULL;
        if (set_configured(a, ts))
            continue;
        text = set_text(a, NULL, ts, now);
        printf("  token set:    %s\n", text);
    }
}

/* The state says an access token was written, but the file does not hold
 * it: what is wrong and what to run, or NULL. */
static char *token_file_problem(const Account *a, const AccountState *st)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) token = NULL;
    const char *what;
    bool missing = false;

    if (st->expires_at == 0)
        return NULL;
    token = tokenfile_read_shared(a->token_file, geteuid(), a->token_file_mode, &missing, &e);
    error_clear(&e);
    if (token)
        return NULL;
    what = missing ? "the access token file is missing"
                   : "the access token file does not hold one token";
    if (!st->store || st->needs_signin)
        return g_strdup_printf("%s; run: tokend obtain %s", what, a->name);
    return g_strdup_printf("%s; run: tokend refresh --force %s", what, a->name);
}

/* Verified against what the account says now: a changed username or
 * identity makes an earlier match meaningless. */
static bool identity_verified(const Account *a, const AccountState *st)
{
    return st->identity && st->identity_verified &&
           ((a->username && g_ascii_strcasecmp(st->identity, a->username) == 0) ||
            (a->identity && g_ascii_strcasecmp(st->identity, a->identity) == 0));
}

static char *identity_text(const Account *a, const AccountState *st)
{
    g_autofree char *who = st->identity ? error_escape(st->identity) : NULL;

    if (identity_verified(a, st))
        return g_strdup_printf("%s (verified)", who);
    if (who)
        return g_strdup_printf("not verified (the sign-in named %s)", who);
    return g_strdup("not verified (the provider named nobody)");
}

/* The configured scopes the server left out of the grant (NULL when none
 * or nothing is known yet).  A narrower grant is the server's right, not a
 * configuration error. */
static bool word_in(const char *list, const char *word)
{
    g_auto(GStrv) words = g_strsplit_set(list ? list : "", " \t", -1);

    return g_strv_contains((const char *const *)words, word);
}

/* Whether the server granted scope, as its preset says it lists grants. */
static bool scope_granted(const struct provider_preset *p, const AccountState *st,
                          const char *scope)
{
    g_autofree char *prefix = g_strconcat(scope, "=", NULL);
    g_auto(GStrv) spellings = g_strsplit(p->scope_spellings ? p->scope_spellings : "", " ", -1);

    if (word_in(st->scope, scope))
        return true;
    if (word_in(p->unlisted_scopes, scope))
        return strcmp(scope, "offline_access") != 0 || st->store;
    for (char **s = spellings; *s; s++)
        if (g_str_has_prefix(*s, prefix) && word_in(st->scope, *s + strlen(prefix)))
            return true;
    return false;
}

static GPtrArray *scopes_not_granted(const Account *a, const AccountState *st)
{
    const struct provider_preset *p = a->provider;
    g_auto(GStrv) asked = NULL;
    GPtrArray *missing;

    if (!st->scope || !a->scopes)
        return NULL;
    asked = g_strsplit_set(a->scopes, " \t", -1);
    missing = g_ptr_array_new_with_free_func(g_free);
    for (char **s = asked; *s; s++)
        if (**s && !scope_granted(p, st, *s))
            g_ptr_array_add(missing, g_strdup(*s));
    if (missing->len == 0)
        g_clear_pointer(&missing, g_ptr_array_unref);
    return missing;
}

static void print_granted(const Account *a, const AccountState *st)
{
    g_autoptr(GPtrArray) missing = scopes_not_granted(a, st);
    g_autofree char *granted = NULL;
    g_autofree char *left_out = NULL;

    if (!missing)
        return;
    g_ptr_array_add(missing, NULL);
    granted = error_escape(st->scope);
    left_out = g_strjoinv(" ", (char **)missing->pdata);
    printf("  granted:      %s (not granted: %s)\n", *granted ? granted : "(nothing)", left_out);
}

static void add_granted_json(cJSON *o, const Account *a, const AccountState *st)
{
    g_autoptr(GPtrArray) missing = scopes_not_granted(a, st);
    cJSON *list = cJSON_AddArrayToObject(o, "not_granted");

    if (st->scope)
        cJSON_AddStringToObject(o, "granted_scope", st->scope);
    else
        cJSON_AddNullToObject(o, "granted_scope");
    for (guint i = 0; missing && i < missing->len; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(g_ptr_array_index(missing, i)));
}

/* When the next sign-in is needed (reauth.h); nothing before a first one. */
static bool frequency_ended_it(const AccountState *st)
{
    return st->needs_signin && st->frequency_seen_at > 0 &&
           st->frequency_seen_at >= st->signed_in_at;
}

static char *reauth_text(const Account *a, const AccountState *st, gint64 now)
{
    struct reauth_estimate est = reauth_estimate(a, st);
    g_autofree char *rule = reauth_rule_text(a, st, est.rule);
    g_autofree char *at = when(est.at);
    g_autofree char *seen = when(st->frequency_seen_at);
    g_autofree char *warned = st->warned_at ? when(st->warned_at) : NULL;
    g_autofree char *tail = warned ? g_strdup_printf("; warned %s", warned) : g_strdup("");

    if (st->needs_signin)
        return frequency_ended_it(st)
                   ? g_strdup_printf("now (AADSTS70043 on %s: a Conditional Access sign-in "
                                     "frequency ended the sign-in)",
                                     seen)
                   : g_strdup("now");
    if (est.at == 0)
        return g_strdup_printf("unknown (%s)", rule);
    if (est.at <= now)
        return g_strdup_printf("due since %s (%s%s)", at, rule, tail);
    return g_strdup_printf("by %s (in %" G_GINT64_FORMAT " d %" G_GINT64_FORMAT " h; %s%s)", at,
                           (est.at - now) / 86400, (est.at - now) % 86400 / 3600, rule, tail);
}

static void add_time_or_null(cJSON *o, const char *name, gint64 t)
{
    if (t > 0)
        cJSON_AddNumberToObject(o, name, (double)t);
    else
        cJSON_AddNullToObject(o, name);
}

static void add_reauth_json(cJSON *o, const Account *a, const AccountState *st)
{
    struct reauth_estimate est = reauth_estimate(a, st);
    g_autofree char *text = reauth_rule_text(a, st, est.rule);
    /* An app-only account holds no sign-in but its certificate's end. */
    bool held = (st->store || st->app_only) && !st->needs_signin;
    bool known = held && est.at > 0;

    add_time_or_null(o, "signin_expected_by", known ? est.at : 0);
    if (known)
        cJSON_AddStringToObject(o, "signin_rule", reauth_rule_key(est.rule));
    else
        cJSON_AddNullToObject(o, "signin_rule");
    if (held)
        cJSON_AddStringToObject(o, "signin_rule_text", text);
    else
        cJSON_AddNullToObject(o, "signin_rule_text");
    add_time_or_null(o, "signin_warned_at", st->warned_at);
    add_time_or_null(o, "signin_frequency_seen_at", st->frequency_seen_at);
    add_time_or_null(o, "signin_frequency_interval", st->frequency_interval);
}

/* App-only accounts: the grant, and when the certificate expires. */
static void print_app(const Account *a, const AccountState *st, gint64 now)
{
    g_autofree char *at = when(st->cert_expires_at);

    printf("  grant:        app-only (%s)\n", account_grant_name(a->grant));
    if (st->cert_expires_at > 0)
        printf("  certificate:  %s %s (%" G_GINT64_FORMAT " d)\n",
               st->cert_expires_at > now ? "expires" : "EXPIRED", at,
               (st->cert_expires_at - now) / 86400);
}

static void add_app_json(cJSON *o, const Account *a, const AccountState *st)
{
    cJSON_AddStringToObject(o, "grant", account_grant_name(a->grant));
    add_time_or_null(o, "certificate_expires_at", st->cert_expires_at);
}

static void print_text(const Account *a, const AccountState *st, gint64 now)
{
    g_autofree char *problem = token_file_problem(a, st);
    g_autofree char *store = error_escape(st->store ? st->store : "none");
    g_autofree char *last_error = st->last_error ? error_escape(st->last_error) : NULL;
    g_autofree char *expiry = expiry_text(st->expires_at, now);
    g_autofree char *refreshed = when(st->last_refresh);
    g_autofree char *signed_in = when(st->signed_in_at);

    printf("%s: %s%s%s\n", a->name, a->provider->name, a->username ? ", " : "",
           a->username ? a->username : "");
    printf("  store:        %s (configured: %s)\n", store, store_kind_name(a->store));
    printf("  token file:   %s\n", a->token_file);
    printf("  access token: %s\n", expiry);
    print_sets(a, st, now);
    printf("  signed in:    %s\n", signed_in);
    printf("  last refresh: %s\n", refreshed);
    printf("  sign-in:      %s\n", signin_state(st));
    if (config_app_only(a))
        print_app(a, st, now);
    if (st->store) {
        g_autofree char *next = reauth_text(a, st, now);
        printf("  next sign-in: %s\n", next);
    }
    if (st->store || st->signed_in_at) {
        g_autofree char *identity = identity_text(a, st);
        printf("  identity:     %s\n", identity);
    }
    print_granted(a, st);
    if (last_error)
        printf("  last error:   %s\n", last_error);
    if (problem)
        printf("  problem:      %s\n", problem);
}

static cJSON *set_json(const Account *a, const char *name, const StateTokenSet *ts, gint64 now)
{
    g_return_val_if_fail(name || ts, NULL);
    g_autofree char *dir = paths_account_dir(a->name);
    // cppcheck-suppress nullPointerRedundantCheck ; name or ts is set (checked on entry)
    g_autofree char *file = tokenset_token_file(dir, name ? name : ts->key);
    cJSON *o = cJSON_CreateObject();
    gint64 expires_at = ts ? ts->expires_at : 0;

    if (name)
        cJSON_AddStringToObject(o, "name", name);
    else
        cJSON_AddNullToObject(o, "name");
    cJSON_AddStringToObject(o, "scopes", ts ? ts->scopes : tokenset_find(a->token_sets, name));
    cJSON_AddBoolToObject(o, "configured", name != NULL);
    cJSON_AddStringToObject(o, "token_file", file);
    add_time_or_null(o, "expires_at", expires_at);
    cJSON_AddNumberToObject(o, "expires_in", (double)MAX(expires_at - now, 0));
    cJSON_AddBoolToObject(o, "valid", expires_at > now);
    return o;
}

/* As print_sets: the configured sets, then the others in the state. */
static void add_sets_json(cJSON *o, const Account *a, const AccountState *st, gint64 now)
{
    cJSON *list = cJSON_AddArrayToObject(o, "token_sets");

    for (char *const *s = a->token_sets; s && *s; s++) {
        g_autofree char *name = g_strndup(*s, strcspn(*s, " "));
        const StateTokenSet *ts = state_token_set_find(st, name);
        cJSON_AddItemToArray(list, set_json(a, name, ts && set_configured(a, ts) ? ts : NULL, now));
    }
    for (guint i = 0; st->token_sets && i < st->token_sets->len; i++) {
        const StateTokenSet *ts = g_ptr_array_index(st->token_sets, i);
        if (!set_configured(a, ts))
            cJSON_AddItemToArray(list, set_json(a, NULL, ts, now));
    }
}

static cJSON *to_json(const Account *a, const AccountState *st, gint64 now)
{
    g_autofree char *problem = NULL;
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "account", a->name);
    cJSON_AddStringToObject(o, "provider", a->provider->name);
    if (a->username)
        cJSON_AddStringToObject(o, "username", a->username);
    cJSON_AddStringToObject(o, "store_configured", store_kind_name(a->store));
    if (st->store)
        cJSON_AddStringToObject(o, "store", st->store);
    else
        cJSON_AddNullToObject(o, "store");
    cJSON_AddStringToObject(o, "token_file", a->token_file);
    cJSON_AddNumberToObject(o, "expires_at", (double)st->expires_at);
    cJSON_AddNumberToObject(o, "expires_in", (double)MAX(st->expires_at - now, 0));
    cJSON_AddBoolToObject(o, "valid", st->expires_at > now);
    cJSON_AddNumberToObject(o, "signed_in_at", (double)st->signed_in_at);
    cJSON_AddNumberToObject(o, "last_refresh", (double)st->last_refresh);
    cJSON_AddBoolToObject(o, "needs_signin", (!st->store && !st->app_only) || signin_lost(st));
    cJSON_AddBoolToObject(o, "binding_refused", st->binding_refused);
    add_app_json(o, a, st);
    add_reauth_json(o, a, st);
    if (st->identity)
        cJSON_AddStringToObject(o, "identity", st->identity);
    else
        cJSON_AddNullToObject(o, "identity");
    cJSON_AddBoolToObject(o, "identity_verified", identity_verified(a, st));
    add_granted_json(o, a, st);
    add_sets_json(o, a, st, now);
    if (st->last_error)
        cJSON_AddStringToObject(o, "last_error", st->last_error);
    if ((problem = token_file_problem(a, st)))
        cJSON_AddStringToObject(o, "problem", problem);
    return o;
}

/* Where the relay listens for this configuration's accounts: after the
 * accounts in text, in each account's object in JSON (the same list). */
static void print_relay(const GPtrArray *listeners)
{
    printf("relay:\n");
    if (listeners->len == 0)
        printf("  none listening (tokend relay --listen, or the tokend-relay-*.socket units)\n");
    for (guint i = 0; i < listeners->len; i++) {
        const RelayListener *l = g_ptr_array_index(listeners, i);
        g_autofree char *state = error_escape(l->state);
        printf("  %-4s %-21s %s: %s\n", l->protocol, *l->address ? l->address : "?", l->via, state);
    }
}

static cJSON *relay_json(const GPtrArray *listeners)
{
    cJSON *list = cJSON_CreateArray();

    for (guint i = 0; i < listeners->len; i++) {
        const RelayListener *l = g_ptr_array_index(listeners, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "protocol", l->protocol);
        cJSON_AddStringToObject(o, "address", l->address);
        cJSON_AddStringToObject(o, "via", l->via);
        if (l->pid > 0)
            cJSON_AddNumberToObject(o, "pid", l->pid);
        cJSON_AddBoolToObject(o, "active", l->active);
        cJSON_AddStringToObject(o, "state", l->state);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

int status_print(const Config *cfg, GPtrArray *accounts, bool json, struct tokend_error *err)
{
    g_autoptr(cJSON) list = cJSON_CreateArray();
    g_autoptr(GPtrArray) relay = relayrun_listeners(cfg->path);
    gint64 now = state_now();
    int status = TOKEND_OK;
    char *text;

    for (guint i = 0; i < accounts->len; i++) {
        const Account *a = g_ptr_array_index(accounts, i);
        struct tokend_error e = TOKEND_ERROR_INIT;
        g_autofree char *dir = paths_account_dir(a->name);
        /* Only a folder that is ours and private is believed. */
        g_autoptr(AccountState) st =
            paths_trust_private_dir(dir, &e) < 0 ? NULL : state_load(dir, &e);

        if (!st) {
            st = state_new();
            st->last_error = g_strdup(e.message);
        }
        error_clear(&e);
        if (signin_lost(st))
            status = TOKEND_EX_NOPERM;
        if (json) {
            cJSON *o = to_json(a, st, now);
            cJSON_AddItemToObject(o, "relay", relay_json(relay));
            cJSON_AddItemToArray(list, o);
        } else {
            print_text(a, st, now);
        }
    }
    if (!json)
        print_relay(relay);
    if (json) {
        if (!(text = cJSON_Print(list)))
            return error_set(err, TOKEND_EX_SOFTWARE,
                             "cannot print the status as JSON (out "
                             "of memory)");
        puts(text);
        cJSON_free(text);
    }
    return status;
}
