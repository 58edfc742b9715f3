/* Signing in: the authorization-code flow with PKCE, through the loopback
 * catcher or by pasting the final URL (or both at once: whichever comes
 * first; the terminal side of that is flow_paste.c). */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "flow_internal.h"
#include "tokend/browser.h"
#include "tokend/catcher.h"
#include "tokend/http.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/pkce.h"
#include "tokend/room.h"
#include "tokend/state.h"
#include "tokend/store.h"

#define STATE_BYTES 24
#define NONCE_BYTES 24

/* OpenID Connect Core section 11: a server may ignore offline_access (and
 * then refuse a refresh that asks for it) unless the user was asked for
 * consent. */
static bool offline_consent_wanted(const Account *a)
{
    g_auto(GStrv) scopes = g_strsplit_set(a->scopes ? a->scopes : "", " \t", -1);

    if (!g_strv_contains((const char *const *)scopes, "offline_access"))
        return false;
    switch (a->offline_consent) {
    case OFFLINE_CONSENT_AUTO:
        return a->provider->offline_needs_consent;
    case OFFLINE_CONSENT_ALWAYS:
        return true;
    case OFFLINE_CONSENT_NEVER:
        return false;
    }
    return false;
}

/* name=value pairs for the authorize request: the preset's, then the
 * consent offline_access needs, then login_hint and prompt, then the user's
 * auth_params, later ones winning. */
static GPtrArray *authorize_extras(const Account *a)
{
    GPtrArray *x = g_ptr_array_new_with_free_func(g_free);
    const struct provider_preset *p = a->provider;
    g_auto(GStrv) preset = g_strsplit(p->extra_auth_params ? p->extra_auth_params : "", " ", -1);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(g_free);

    for (char **s = preset; *s; s++)
        if (**s)
            g_ptr_array_add(all, g_strdup(*s));
    if (offline_consent_wanted(a))
        g_ptr_array_add(all, g_strdup("prompt=consent"));
    if (a->username)
        g_ptr_array_add(all, g_strconcat("login_hint=", a->username, NULL));
    if (a->prompt)
        g_ptr_array_add(all, g_strconcat("prompt=", a->prompt, NULL));
    for (char **s = a->auth_params; s && *s; s++)
        g_ptr_array_add(all, g_strdup(*s));
    /* Walk backwards so the last setting of a name wins. */
    for (guint i = all->len; i-- > 0;) {
        const char *kv = g_ptr_array_index(all, i);
        const char *eq = strchr(kv, '=');
        char *name = g_strndup(kv, (gsize)(eq - kv));
        if (g_hash_table_add(seen, name))
            g_ptr_array_insert(x, 0, g_strdup(kv));
    }
    g_ptr_array_add(x, NULL);
    return x;
}

static bool scopes_have_openid(const char *scopes)
{
    g_auto(GStrv) names = g_strsplit(scopes ? scopes : "", " ", -1);

    return g_strv_contains((const char *const *)names, "openid");
}

/* OpenID Connect: a nonce ties the ID token to this sign-in.  Some servers
 * (glewlwyd) refuse an authorization request for `openid` without one.
 * The user's own auth_params nonce, if any, is kept. */
static int add_nonce(const char *scopes, GPtrArray *extras, struct tokend_error *e)
{
    g_autofree char *nonce = NULL;

    if (!scopes_have_openid(scopes))
        return 0;
    for (guint i = 0; i + 1 < extras->len; i++)
        if (g_str_has_prefix(g_ptr_array_index(extras, i), "nonce="))
            return 0;
    if (!(nonce = pkce_random_string(NONCE_BYTES, e)))
        return -1;
    g_ptr_array_insert(extras, (gint)extras->len - 1, g_strconcat("nonce=", nonce, NULL));
    return 0;
}

static int save_signin(const Account *a, const char *store, const TokenResponse *t,
                       const FlowIdentity *id, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = NULL;
    int fd, r;

    if (paths_ensure_private_dir(dir, e) < 0)
        return -1;
    fd = lock_acquire(dir, LOCK_TIMEOUT_MS, e);
    if (fd < 0)
        return -1;
    flow_remove_stale_temps(a, dir);
    st = state_load(dir, e);
    if (!st) {
        /* A broken state file must not stop a fresh sign-in. */
        log_warn("%s: %s; starting a new state", a->name, e->message);
        error_clear(e);
        st = state_new();
    }
    flow_identity_remember(st, id, true);
    r = flow_save_response(a, dir, st, store, t, e);
    lock_release(fd);
    if (r == 0)
        fprintf(stderr,
                "tokend: %s: signed in; refresh token in the %s store, access token in "
                "%s (valid for %" G_GINT64_FORMAT " min)\n",
                a->name, st->store ? st->store : "(none)", a->token_file, t->expires_in / 60);
    return r;
}

/* A bare pasted code carries no state to check beforehand: PKCE makes the
 * server refuse one from another sign-in, which is the paste's fault (65),
 * not a sign-in to repeat later (77). */
static int redeem(Http *http, FlowClient *client, const RedirectParams *params, const Pkce *pkce,
                  const char *redirect, TokenResponse **t, struct tokend_error *e)
{
    g_autofree char *why = NULL;
    g_autofree char *detail = NULL;
    const char *tag;

    if (oauth_redeem_code(http, &client->oauth, params->code, pkce->verifier, redirect, t, e) == 0)
        return 0;
    if (!params->bare || e->status != TOKEND_EX_NOPERM ||
        !g_str_has_prefix(e->message, "sign-in needed"))
        return -1;
    tag = strrchr(e->message, '(');
    why = g_strdup(tag ? tag : "");
    detail = g_strdup(e->detail);
    error_set(e, TOKEND_EX_DATAERR,
              "the server refused the pasted code: it is not from this sign-in, or it expired "
              "or was used already %s",
              why);
    error_set_hint(e, "paste the address of the page this sign-in ended on, or run tokend "
                      "obtain again");
    error_set_detail(e, detail);
    return -1;
}

static int code_flow(const Account *a, const struct obtain_options *o, FlowClient *client,
                     Http *http, TokenResponse **t, struct tokend_error *e)
{
    g_autoptr(Pkce) pkce = NULL;
    g_autoptr(Catcher) catcher = NULL;
    g_autoptr(RedirectParams) params = NULL;
    g_autoptr(GPtrArray) extras = NULL;
    g_autofree char *state = NULL;
    g_autofree char *url = NULL;
    g_autofree char *redirect = NULL;
    bool manual = o->manual || !catcher_handles(a->redirect_uri);

    if (!(pkce = pkce_new(e)) || !(state = pkce_random_string(STATE_BYTES, e)))
        return -1;
    if (!manual && !(catcher = catcher_new(a->redirect_uri, state, e)))
        return -1;
    redirect = g_strdup(catcher ? catcher_redirect_uri(catcher) : a->redirect_uri);
    extras = authorize_extras(a);
    if (add_nonce(client->oauth.scopes, extras, e) < 0)
        return -1;
    url = oauth_authorize_url(&client->oauth, redirect, state, pkce->challenge,
                              (const char *const *)extras->pdata, e);
    if (!url)
        return -1;
    flow_show_url(a, url, !o->no_browser);
    if (catcher ? flow_wait_race(a, catcher, &params, e) < 0 : flow_wait_manual(a, &params, e) < 0)
        return -1;
    if (!params)
        return error_set(e, TOKEND_EX_SOFTWARE, "the sign-in ended with no answer");
    g_clear_pointer(&catcher, catcher_free);
    if (oauth_check_redirect(params, state, &client->oauth, e) < 0)
        return -1;
    return redeem(http, client, params, pkce, redirect, t, e);
}

static int obtain_locked(const Account *a, const struct obtain_options *o, Http *http, bool device,
                         struct tokend_error *e)
{
    g_autoptr(FlowClient) client = NULL;
    g_autoptr(Store) store = NULL;
    g_autoptr(TokenResponse) t = NULL;
    g_autoptr(FlowIdentity) id = NULL;
    int r;

    /* Know where the refresh token will go before the user signs in. */
    if (!(store = store_open_account(a, NULL, e)))
        return -1;
    log_info("%s: the refresh token will be kept in the %s store", a->name, store_name(store));
    /* And that the answer can be saved: a full or read-only folder is said
     * before the user signs in, not after. */
    if (room_check(a, e) < 0)
        return -1;
    if (!(client = flow_client_new(a, http, e)))
        return -1;
    r = device ? flow_device(a, client, http, !o->no_browser, &t, e)
               : code_flow(a, o, client, http, &t, e);
    if (r < 0)
        return -1;
    if (!t)
        return error_set(e, TOKEND_EX_SOFTWARE, "the sign-in ended with no tokens");
    if (flow_identity_check_signin(a, client, http, t, &id, e) < 0)
        return -1;
    return save_signin(a, store_name(store), t, id, e);
}

int flow_obtain(const Account *a, const struct obtain_options *o, struct tokend_error *e)
{
    g_autoptr(Http) http = http_new(a->ca_file);
    bool device = o->device || (a->flow == FLOW_KIND_DEVICE && !o->manual);
    g_autofree char *dir = paths_account_dir(a->name);
    enum refresh_outcome outcome;
    int r, held;

    /* Nobody signs in: a new token is minted. */
    if (config_app_only(a)) {
        if (flow_app_refresh(a, 0, G_MAXINT64, &outcome, e) < 0)
            return -1;
        log_info("%s: app-only account (grant = %s): no sign-in needed; a new token was minted",
                 a->name, account_grant_name(a->grant));
        return 0;
    }
    /* One sign-in per account at a time: a second one would leave the
     * first one's grant at the server with nothing holding it. */
    if (paths_ensure_private_dir(dir, e) < 0 || (held = lock_obtain(dir, e)) < 0)
        return -1;
    r = obtain_locked(a, o, http, device, e);
    lock_release(held);
    return r;
}
