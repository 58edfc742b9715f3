/* Refresh, logout and the saving of a token response that every flow shares.
 * Order of writes after the server answers: the new refresh token first (a
 * strict server has already revoked the old one), then the access token
 * file, then the state that says how long it is valid. */

#include <string.h>
#include <unistd.h>

#include "flow_internal.h"
#include "tokend/claim.h"
#include "tokend/fault.h"
#include "tokend/fileio.h"
#include "tokend/http.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/reauth.h"
#include "tokend/room.h"
#include "tokend/shared.h"
#include "tokend/state.h"
#include "tokend/tokenset.h"
#include "tokend/store.h"
#include "tokend/sysview.h"
#include "tokend/tokenfile.h"

/* Store the refresh token; when the keyring refuses, keep it in the file
 * store rather than lose it, and the reverse; when both refuse, in a rescue
 * file.  Returns the name of the store used. */
static const char *put_refresh_token(const Account *a, const char *preferred, const SecStr *token,
                                     struct tokend_error *e)
{
    g_autofree char *label = store_label(a->name, a->username);
    g_autoptr(Store) s = NULL;
    g_autoptr(Store) rescue = NULL;
    /* Stored with where it came from (flow_binding.c), rescued alike. */
    g_autoptr(SecStr) rt = flow_binding_wrap(a, token);
    struct tokend_error first = TOKEND_ERROR_INIT;
    struct tokend_error second = TOKEND_ERROR_INIT;

    s = store_open_account(a, preferred, &first);
    if (s && store_put(s, a->name, STORE_REFRESH_TOKEN, label, rt, &first) == 0)
        return store_name(s);
    rescue =
        store_open_quietly(store_kind_info(s ? store_kind(s) : STORE_KIND_AUTO)->fallback, &second);
    if (!rescue || store_put(rescue, a->name, STORE_REFRESH_TOKEN, label, rt, &second) < 0) {
        room_rescue(a, rt, &first, e);
        error_clear(&first);
        error_clear(&second);
        return NULL;
    }
    log_warn("%s: could not save the new refresh token in the %s store (%s); kept it in the "
             "%s store instead",
             a->name, s ? store_name(s) : "chosen", first.message, store_name(rescue));
    error_clear(&first);
    return store_name(rescue);
}

static void forget_in_store(const Account *a, const char *name)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(Store) s = store_open_account(a, name, &e);

    if (!s || store_remove(s, a->name, STORE_REFRESH_TOKEN, &e) < 0)
        log_warn("%s: could not remove the old refresh token from the %s store: %s", a->name, name,
                 e.message);
    error_clear(&e);
}

static int ensure_token_dir(const Account *a, const char *account_dir, struct tokend_error *e)
{
    g_autofree char *parent = g_path_get_dirname(a->token_file);

    g_autofree char *run = paths_system() ? paths_runtime_dir() : NULL;

    if (strcmp(parent, account_dir) == 0)
        return 0;
    /* The system mode's runtime folder: readers enter it to their files. */
    if (g_mkdir_with_parents(parent, g_strcmp0(parent, run) == 0 ? 0755 : 0700) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create folder %s for token_file", parent);
    return 0;
}

void flow_state_remember_config(AccountState *st, const Account *a)
{
    g_free(st->config_id);
    st->config_id = g_strdup(a->config_id);
    st->min_validity = a->min_validity;
    st->refresh_margin = a->refresh_margin;
    g_free(st->token_file);
    st->token_file = g_strdup(a->token_file);
    st->token_file_mode = a->token_file_mode;
    /* What the launcher answers `refresh ACCOUNT` from, under config_id. */
    st->next_due = flow_next_due_of(a, st);
}

void flow_remember_config(const Account *a)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = NULL;
    int fd = lock_acquire(dir, 0, &e);

    /* Best effort: whoever holds the lock writes the state anyway. */
    if (fd >= 0 && (st = state_load(dir, &e)) && (st->store || st->app_only) &&
        g_strcmp0(st->config_id, a->config_id) != 0) {
        flow_state_remember_config(st, a);
        state_save(dir, st, &e);
    }
    lock_release(fd);
    error_clear(&e);
}

void flow_remove_stale_temps(const Account *a, const char *account_dir)
{
    g_autofree char *token_dir = g_path_get_dirname(a->token_file);
    g_autofree char *token_base = g_path_get_basename(a->token_file);
    bool together = strcmp(token_dir, account_dir) == 0;
    const char *names[] = {STORE_REFRESH_TOKEN, STATE_FILE, CLAIM_FILE,
                           together ? token_base : NULL, NULL};

    fileio_remove_stale_temps_in(account_dir, names);
    if (!together)
        fileio_remove_stale_temps(a->token_file);
}

/* Store a new refresh token (in `preferred`, or the configured store when
 * NULL), then forget the old one where it was and record where it went. */
static int keep_refresh_token(const Account *a, AccountState *st, const char *preferred,
                              const SecStr *rt, struct tokend_error *e)
{
    const char *used = put_refresh_token(a, preferred, rt, e);

    if (!used)
        return -1;
    FAULT_POINT("after-store");
    room_forget_rescued(a);
    if (st->store && strcmp(st->store, used) != 0)
        forget_in_store(a, st->store);
    g_free(st->store);
    st->store = g_strdup(used);
    return 0;
}

/* Asked for offline_access; the server's `scope` leaves it out. */
static bool offline_access_dropped(const Account *a, const TokenResponse *t)
{
    g_auto(GStrv) asked = g_strsplit_set(a->scopes ? a->scopes : "", " \t", -1);
    g_auto(GStrv) granted = g_strsplit_set(t->scope ? t->scope : "", " \t", -1);

    return t->scope && g_strv_contains((const char *const *)asked, "offline_access") &&
           !g_strv_contains((const char *const *)granted, "offline_access");
}

/* The folder is this configuration file's account's (claim.h): said, not
 * fatal, when it cannot be recorded. */
static void claim_folder(const Account *a, const char *dir)
{
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (claim_record_folder(a->config_file, dir, &e) < 0)
        log_warn("%s: %s", a->name, e.message);
    error_clear(&e);
}

int flow_save_response(const Account *a, const char *dir, AccountState *st,
                       const char *signin_store, const TokenResponse *t, struct tokend_error *e)
{
    gint64 now = state_now();
    bool signin = signin_store != NULL;

    if (t->refresh_token) {
        /* A new sign-in goes where obtain decided; a refresh keeps the
         * token where it was (flow_save_rotated). */
        if ((signin ? keep_refresh_token(a, st, signin_store, t->refresh_token, e)
                    : flow_save_rotated(a, st, t->refresh_token, e)) < 0)
            return -1;
    } else if (signin) {
        log_warn("%s: the server sent no refresh token, so tokend cannot refresh; %s", a->name,
                 offline_access_dropped(a, t)
                     ? "it did not grant offline_access without a consent prompt: set "
                       "offline_consent = always (or prompt = consent) and sign in again"
                     : "check that scopes include offline_access");
    }
    if (ensure_token_dir(a, dir, e) < 0 ||
        tokenfile_write_shared(a->token_file, t->access_token, a->token_file_group,
                               a->token_file_mode, e) < 0)
        return -1;
    FAULT_POINT("after-token-file");
    st->expires_at = now + t->expires_in;
    st->obtained_at = now;
    st->last_attempt = now;
    if (signin)
        st->signed_in_at = now;
    else
        st->last_refresh = now;
    st->needs_signin = !t->refresh_token && !st->store;
    reauth_note_response(st, t->refresh_expires_in, t->refresh_token != NULL, signin, now);
    st->last_status = 0;
    g_clear_pointer(&st->last_error, g_free);
    flow_state_remember_config(st, a);
    flow_binding_record(st, a);
    /* System mode: what a reader needs, after the token it describes. */
    if (paths_system() && sysview_write(a, st->expires_at, e) < 0)
        return -1;
    claim_folder(a, dir);
    /* A response without `scope` grants what was asked: the configured
     * scopes at sign-in, the same grant again on a refresh. */
    if (t->scope || signin || !st->scope) {
        g_free(st->scope);
        st->scope = g_strdup(t->scope ? t->scope : a->scopes);
    }
    return state_save(dir, st, e);
}

int flow_save_rotated(const Account *a, AccountState *st, const SecStr *rt, struct tokend_error *e)
{
    /* Where it was, unless the user chose a store. */
    return keep_refresh_token(a, st, a->store == STORE_KIND_AUTO ? st->store : NULL, rt, e);
}

void flow_record_failure(const char *dir, AccountState *st, const struct tokend_error *err)
{
    struct tokend_error e = TOKEND_ERROR_INIT;

    reauth_note_failure(st, err, state_now());
    st->last_attempt = state_now();
    st->last_status = err->status;
    g_free(st->last_error);
    st->last_error = g_strdup(err->message);
    if (err->status == TOKEND_EX_NOPERM)
        st->needs_signin = true;
    if (state_save(dir, st, &e) < 0)
        log_warn("%s", e.message);
    error_clear(&e);
}

int flow_signin_needed(const Account *a, const char *why, struct tokend_error *e)
{
    g_autofree char *command = config_command(a, "obtain");

    error_set(e, TOKEND_EX_NOPERM, "%s", why);
    error_set_hint(e, "run: %s", command);
    return -1;
}

SecStr *flow_read_token(const Account *a, struct tokend_error *e)
{
    return tokenfile_read_shared(a->token_file, geteuid(), a->token_file_mode, NULL, e);
}

/* The places to look for the account's secret: where the state says it
 * is first, then every place of the table (one that needs the account's
 * commands only where they are configured). */
static void places_to_look(const Account *a, const AccountState *st, const char **names)
{
    size_t n = 0;

    if (st->store)
        names[n++] = st->store;
    for (int k = 0; k < STORE_KIND_COUNT; k++) {
        const struct store_kind_info *info = store_kind_info(k);
        if (info->is_place && (!info->needs_account || a->store == (enum store_kind)k) &&
            g_strcmp0(st->store, info->name) != 0)
            names[n++] = info->name;
    }
    names[n] = NULL;
}

/* What an account keeps in a store: its refresh token and, for an app-only
 * account, the key or client secret that `tokend import` put there. */
static const struct {
    const char *item, *what;
    bool app_only;
} kept_items[] = {
    {STORE_REFRESH_TOKEN, "the refresh token", false},
    {STORE_CLIENT_KEY, "the client key", true},
    {STORE_CLIENT_SECRET, "the client secret", true},
};

/* Remove what the account keeps (kept_items) from every store that may
 * hold it.  A store that holds the refresh token (the state says so) and
 * cannot be opened, or any store that fails to remove an item, is a
 * failure: the first one fills failed. */
static void forget_everywhere(const Account *a, const AccountState *st, GString *removed,
                              struct tokend_error *failed)
{
    const char *names[STORE_KIND_COUNT + 2];

    places_to_look(a, st, names);
    for (size_t i = 0; names[i]; i++) {
        struct tokend_error e = TOKEND_ERROR_INIT;
        g_autoptr(Store) s = NULL;
        bool holds = g_strcmp0(st->store, names[i]) == 0;
        int kind = store_kind_from_name(names[i]);

        if (kind < 0)
            continue;
        /* A place that may not answer is only asked when it holds the token
         * or can answer. */
        s = store_kind_info(kind)->quiet_unless_known && !holds
                ? store_open_quietly(kind, &e)
                : store_open_account(a, names[i], &e);
        for (size_t k = 0; k < G_N_ELEMENTS(kept_items); k++) {
            int r = 0;

            if (kept_items[k].app_only && !config_app_only(a))
                continue;
            if (s && (r = store_remove(s, a->name, kept_items[k].item, &e)) > 0)
                g_string_append_printf(removed, "removed %s (%s store); ", kept_items[k].what,
                                       names[i]);
            if (e.message && (r < 0 || (holds && k == 0)) && !failed->status) {
                error_move(failed, &e);
                error_prefix(failed, "%s is still in the %s store", kept_items[k].what, names[i]);
            }
            error_clear(&e);
        }
    }
}

/* What a logout the server was not told of leaves usable: the access
 * token until it expires ("" when it has or nothing is known). */
static char *still_usable(const AccountState *st)
{
    gint64 now = state_now();
    g_autoptr(GDateTime) dt = NULL;
    g_autofree char *when = NULL;

    if (st->expires_at <= now)
        return g_strdup("");
    dt = g_date_time_new_from_unix_local(st->expires_at);
    when = dt ? g_date_time_format(dt, "%Y-%m-%d %H:%M:%S") : g_strdup("?");
    return g_strdup_printf("; the access token stays usable until %s (%" G_GINT64_FORMAT
                           " min from now) to anyone holding a copy",
                           when, (st->expires_at - now + 59) / 60);
}

static void no_revocation(const Account *a, const AccountState *st)
{
    g_autofree char *usable = still_usable(st);

    log_warn("%s: the provider has no revocation endpoint, so it could not be told of this "
             "logout: the sign-in stays valid there until it expires or is ended there%s%s%s%s",
             a->name, a->provider->remote_signout_hint ? " (" : "",
             a->provider->remote_signout_hint ? a->provider->remote_signout_hint : "",
             a->provider->remote_signout_hint ? ")" : "", usable);
}

/* RFC 7009: revoke the refresh token (never the access token alone) where
 * the provider has an endpoint.  A failure is reported; the local forget
 * happens anyway. */
static void revoke_at_provider(const Account *a, const AccountState *st, GString *removed)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(Http) http = http_new(a->ca_file);
    g_autoptr(FlowClient) client = NULL;
    g_autoptr(Store) s = NULL;
    g_autoptr(SecStr) stored = NULL;
    g_autoptr(SecStr) rt = NULL;
    g_autofree char *usable = NULL;
    bool bound;

    if (!st->store)
        return;
    if (!(client = flow_client_new(a, http, &e)))
        goto out;
    if (!client->revocation_url) {
        no_revocation(a, st);
        return;
    }
    if (flow_binding_check(a, st, &e) < 0)
        goto out;
    if (!(s = store_open_account(a, st->store, &e)) ||
        store_get(s, a->name, STORE_REFRESH_TOKEN, &stored, &e) < 0 || !stored ||
        flow_binding_unwrap(a, stored, &rt, &bound, &e) < 0)
        goto out;
    if (oauth_revoke(http, &client->oauth, rt, &e) == 0)
        g_string_append(removed, "revoked the refresh token at the provider; ");
out:
    usable = still_usable(st);
    if (e.message)
        log_warn("%s: could not revoke the refresh token at the provider (%s); forgetting it "
                 "locally anyway%s",
                 a->name, e.message, usable);
    error_clear(&e);
}

/* A token file the state names is removed only inside the account's own
 * folder: the state is not the configuration, and a planted or edited one
 * must not make logout delete /etc/passwd or another account's files. */
static bool in_account_dir(const char *dir, const char *path)
{
    g_autofree char *canonical = NULL;
    g_autofree char *parent = NULL;
    g_autofree char *home = g_canonicalize_filename(dir, NULL);

    if (!path || !g_path_is_absolute(path))
        return false;
    canonical = g_canonicalize_filename(path, NULL);
    parent = g_path_get_dirname(canonical);
    return strcmp(parent, home) == 0;
}

/* The refresh token could not be removed: the state stays, naming its
 * store for another logout to try again, and says why. */
static void keep_for_another_try(const Account *a, const char *dir, AccountState *st, int fd,
                                 struct tokend_error *kept)
{
    g_autofree char *command = config_command(a, "logout");
    g_autofree char *advice = g_steal_pointer(&kept->hint);
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (fd >= 0) {
        st->needs_signin = true;
        st->last_status = kept->status;
        g_free(st->last_error);
        st->last_error = g_strdup(kept->message);
        if (state_save(dir, st, &e) < 0)
            log_warn("%s: %s", a->name, e.message);
        error_clear(&e);
    }
    error_set_hint(kept, "%s, then run %s again", advice ? advice : "fix that", command);
}

int flow_logout(const Account *a, GString *removed, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    g_autofree char *state_path = g_build_filename(dir, STATE_FILE, NULL);
    g_autoptr(AccountState) st = NULL;
    struct tokend_error kept = TOKEND_ERROR_INIT;
    int trust = paths_trust_private_dir(dir, e);
    int fd;

    if (trust < 0)
        return -1;
    st = trust == 0 ? state_load(dir, e) : NULL;
    if (!st && e->status)
        log_warn("%s: %s; logging out with what the configuration says", a->name, e->message);
    if (!st)
        st = state_new();
    error_clear(e);
    fd = trust == 0 ? lock_acquire(dir, LOCK_TIMEOUT_MS, e) : -1;
    if (fd < 0 && e->status)
        return -1;
    if (fd >= 0)
        flow_remove_stale_temps(a, dir);
    revoke_at_provider(a, st, removed);
    forget_everywhere(a, st, removed, &kept);
    if (config_app_only(a) && flow_app_forget(a, removed, &kept) < 0)
        error_prefix(&kept, "the app's shared token is still kept");
    room_forget_rescued(a);
    if (fileio_remove(a->token_file, e) > 0)
        g_string_append_printf(removed, "removed the access token file %s; ", a->token_file);
    if (st->token_file && strcmp(st->token_file, a->token_file) != 0 &&
        in_account_dir(dir, st->token_file) && fileio_remove(st->token_file, e) > 0)
        g_string_append_printf(removed, "removed the access token file %s; ", st->token_file);
    tokenset_forget_files(dir, removed, e);
    if (kept.status)
        keep_for_another_try(a, dir, st, fd, &kept);
    else if (fileio_remove(state_path, e) > 0)
        g_string_append(removed, "removed the state; ");
    if (!kept.status && trust == 0)
        claim_release_folder(dir);
    lock_release(fd);
    if (removed->len >= 2)
        g_string_truncate(removed, removed->len - 2);
    if (kept.status && !e->status)
        error_move(e, &kept);
    error_clear(&kept);
    return e->status ? -1 : 0;
}

/* The account's state, for a question that "nothing known" answers well
 * enough: NULL when the folder is not to be trusted or the state cannot be
 * read (the next refresh says why). */
static AccountState *state_if_trusted(const Account *a)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *dir = paths_account_dir(a->name);
    AccountState *st = paths_trust_private_dir(dir, &e) == 0 ? state_load(dir, &e) : NULL;

    error_clear(&e);
    return st;
}

gint64 flow_next_due(const Account *a)
{
    g_autoptr(AccountState) st = state_if_trusted(a);

    return flow_next_due_of(a, st);
}

gint64 flow_next_due_of(const Account *a, const AccountState *st)
{
    gint64 due;

    if (!st || (!st->store && !st->app_only) || st->needs_signin || st->expires_at == 0 ||
        g_strcmp0(st->token_file, a->token_file) != 0 || access(a->token_file, F_OK) < 0)
        return 0;
    /* A warning about the next sign-in is due too (reauth_warn_at), and
     * the configured token sets are kept fresh as the mail token is. */
    due = MIN(st->expires_at - a->refresh_margin, reauth_warn_at(a, st));
    return MIN(due, tokenset_next_due(a, st));
}

gint64 flow_token_seconds_left(const Account *a)
{
    g_autoptr(AccountState) st = state_if_trusted(a);

    if (!st || g_strcmp0(st->token_file, a->token_file) != 0)
        return 0;
    return MAX(st->expires_at - state_now(), 0);
}
