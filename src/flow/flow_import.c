/* `tokend import`: the refresh token of another tool becomes the account's
 * after one refresh with it succeeds.  The refresh is the proof that the
 * token, the client and the server belong together, and at servers that
 * rotate refresh tokens it retires the other tool's copy.  Under both of
 * the account's locks, as a sign-in and a refresh would be. */

#include <signal.h>
#include <string.h>

#include "tokend/flow_import.h"
#include "flow_internal.h"
#include "tokend/http.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/room.h"
#include "tokend/state.h"
#include "tokend/store.h"

void import_outcome_clear(struct import_outcome *out)
{
    g_clear_pointer(&out->store, g_free);
}

static AccountState *load_state(const Account *a, const char *dir, bool force,
                                struct tokend_error *e)
{
    g_autoptr(AccountState) st = state_load(dir, e);

    if (!st) {
        if (!force)
            return NULL;
        log_warn("%s: %s; starting a new state", a->name, e->message);
        error_clear(e);
        return state_new();
    }
    if (st->store && !force) {
        error_set(e, TOKEND_EX_CANTCREAT,
                  "already signed in (a refresh token is in the %s "
                  "store); nothing was imported",
                  st->store);
        error_set_hint(e, "add --force to replace it, or run: tokend logout %s", a->name);
        return NULL;
    }
    return g_steal_pointer(&st);
}

/* The proving refresh; a refused token is the other tool's, not a sign-in
 * tokend lost, so nothing of it is recorded in the state. */
static int prove(const Account *a, Http *http, const FlowClient *client, const SecStr *rt,
                 const char *issued_to, TokenResponse **t, struct tokend_error *e)
{
    g_autoptr(SecStr) form = NULL;
    g_autoptr(SecStr) basic = NULL;
    g_autoptr(HttpResponse) r = NULL;

    /* A refresh token works only for the client it was issued to: say so
     * rather than send it where it can only be refused. */
    if (issued_to && g_strcmp0(issued_to, client->oauth.client_id) != 0) {
        error_set(e, TOKEND_EX_CONFIG,
                  "the refresh token was issued to client_id %s, not to "
                  "this account's %s; nothing was imported",
                  issued_to, client->oauth.client_id ? client->oauth.client_id : "(none)");
        error_set_hint(e, "set client_id = %s (and its client_secret) in [account %s]", issued_to,
                       a->name);
        return -1;
    }
    form = oauth_refresh_form(&client->oauth, rt);
    basic = oauth_client_basic(&client->oauth);
    if (http_request_auth(http, client->token_url, form, basic, &r, e) < 0 ||
        oauth_parse_token_response(r, t, e) < 0) {
        error_prefix(e, "the server refused the imported refresh token");
        if (e->status == TOKEND_EX_TEMPFAIL) {
            error_set_hint(e, "nothing was stored; try again later");
        } else {
            g_autofree char *command = config_command(a, "obtain");
            error_set_hint(e, "nothing was stored; sign in instead with: %s", command);
        }
        return -1;
    }
    return 0;
}

/* Between the request and the save, the server may already have rotated
 * the token and retired the other tool's copy: the answer is saved before
 * a termination signal acts, as for every refresh. */
static void hold_termination(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static int prove_and_save(const Account *a, const char *dir, AccountState *st, const char *store,
                          Http *http, const SecStr *rt, const char *issued_to,
                          struct import_outcome *out, bool *answered, struct tokend_error *e)
{
    g_autoptr(FlowClient) client = flow_client_new(a, http, e);
    g_autoptr(TokenResponse) t = NULL;
    g_autoptr(FlowIdentity) id = NULL;

    if (!client || prove(a, http, client, rt, issued_to, &t, e) < 0)
        return -1;
    *answered = true;
    out->rotated = t->refresh_token && !secstr_equal(t->refresh_token, rt);
    if (flow_identity_check_signin(a, client, http, t, &id, e) < 0)
        return -1;
    if (!t->refresh_token)
        t->refresh_token = secstr_dup(rt);
    flow_identity_remember(st, id, true);
    if (flow_save_response(a, dir, st, store, t, e) < 0)
        return -1;
    out->store = g_strdup(st->store);
    out->expires_in = t->expires_in;
    return 0;
}

/* The import failed after the refresh: the account is put back as it was
 * (a save may have stored the new token, or half of what goes with it). */
static void undo(const Account *a, const char *dir, const FlowUndo *u, bool rotated,
                 struct tokend_error *e)
{
    struct tokend_error back = TOKEND_ERROR_INIT;
    g_autofree char *command = config_command(a, "obtain");
    g_autofree char *advice = NULL;
    bool unrescued = false;

    if (flow_undo_restore(a, dir, u, &unrescued, &back) == 0 && unrescued) {
        /* Not kept anywhere any more, whatever the rescue said. */
        error_set(e, TOKEND_EX_CANTCREAT,
                  "the imported refresh token could not be stored, so nothing was imported");
        error_set_hint(e, "make room, then import again");
    }
    advice = g_steal_pointer(&e->hint);
    if (back.status) {
        error_prefix(e, "%s", back.message);
        error_set_hint(e, "the account may be left half imported: sign in with: %s", command);
    } else {
        error_set_hint(e, "%s%sthe account is as it was before the import%s", advice ? advice : "",
                       advice ? "; " : "",
                       rotated ? "; the imported refresh token is lost (the server replaced "
                                 "it), and the other tool's copy no longer works"
                               : "");
    }
    error_clear(&back);
}

static int import_locked(const Account *a, const char *dir, const SecStr *rt, const char *issued_to,
                         bool force, struct import_outcome *out, struct tokend_error *e)
{
    g_autoptr(Http) http = http_new(a->ca_file);
    g_autoptr(AccountState) st = NULL;
    g_autoptr(Store) store = NULL;
    g_autoptr(FlowUndo) before = NULL;
    bool answered = false;
    sigset_t old;
    int r;

    flow_remove_stale_temps(a, dir);
    if (!(st = load_state(a, dir, force, e)) || !(store = store_open_account(a, NULL, e)) ||
        room_check(a, e) < 0 || !(before = flow_undo_take(a, dir, st, store_name(store), e)))
        return -1;
    hold_termination(&old);
    r = prove_and_save(a, dir, st, store_name(store), http, rt, issued_to, out, &answered, e);
    if (r < 0 && answered)
        undo(a, dir, before, out->rotated, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

int flow_import(const Account *a, const SecStr *refresh_token, const char *issued_to, bool force,
                struct import_outcome *out, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    int held, fd, r;

    if (paths_ensure_private_dir(dir, e) < 0 || (held = lock_obtain(dir, e)) < 0)
        return -1;
    fd = lock_acquire(dir, LOCK_TIMEOUT_MS, e);
    if (fd < 0) {
        lock_release(held);
        return -1;
    }
    r = import_locked(a, dir, refresh_token, issued_to, force, out, e);
    lock_release(fd);
    lock_release(held);
    return r;
}
