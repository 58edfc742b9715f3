/* Signing in: the authorization-code flow with PKCE, through the loopback
 * catcher or by pasting the final URL (or both at once: whichever comes
 * first). */

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

#define PASTE_MAX 65536
#define PASTE_READ 1024
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
        return provider_preset(a->provider)->offline_needs_consent;
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
    const struct provider_preset *p = provider_preset(a->provider);
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

static void show_url(const Account *a, const char *url, bool open_browser)
{
    bool opened = open_browser && browser_open(url);

    fprintf(stderr, "tokend: %s: %s this URL to sign in:\n%s\n", a->name,
            opened ? "a browser was opened; if it did not appear, open" : "open", url);
}

static int read_pasted(int timeout_s, char **out, struct tokend_error *e)
{
    g_autoptr(GString) line = g_string_sized_new(1024);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    char buf[1024];

    if (isatty(STDIN_FILENO))
        fprintf(stderr, "Paste the address of the page the sign-in ended on, then Enter:\n");
    while (!strchr(line->str, '\n')) {
        int left = (int)((deadline - g_get_monotonic_time()) / 1000);
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, left) == 0)
            return error_set(e, TOKEND_EX_TEMPFAIL, "nothing was pasted within %d s", timeout_s);
        n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        g_string_append_len(line, buf, n);
        if (line->len > PASTE_MAX)
            return error_set(e, TOKEND_EX_DATAERR, "the pasted text is too long");
    }
    explicit_bzero(buf, sizeof(buf));
    *out = g_strdup(line->str);
    explicit_bzero(line->str, line->len);
    return 0;
}

static int wait_manual(const Account *a, RedirectParams **params, struct tokend_error *e)
{
    char *pasted = NULL;
    int r;

    if (read_pasted(a->login_timeout, &pasted, e) < 0)
        return -1;
    r = oauth_parse_pasted(pasted, params, e);
    secure_free_str(pasted);
    return r;
}

/* What came on stdin so far, waiting for its end of line; wiped when freed
 * since it may hold a code. */
struct paste_input {
    GString *text;
    bool open; /* stdin may still bring a paste */
};

static void paste_input_forget(struct paste_input *in, gsize used)
{
    explicit_bzero(in->text->str, used);
    g_string_erase(in->text, 0, (gssize)used);
}

static bool catcher_answered(const Catcher *c)
{
    struct pollfd pfd = {.fd = catcher_fd(c), .events = POLLIN};

    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* One pasted line: 1 when it is this sign-in's redirect (now *out; the
 * catcher takes no other), else 0 after one line saying why not. */
static int paste_try(const Account *a, Catcher *c, const char *line, RedirectParams **out)
{
    g_autoptr(RedirectParams) p = NULL;
    struct tokend_error pe = TOKEND_ERROR_INIT;

    if (line[strspn(line, " \t\r")] == '\0')
        return 0;
    if (oauth_parse_pasted(line, &p, &pe) == 0 && catcher_take_pasted(c, p, &pe) == 0) {
        *out = g_steal_pointer(&p);
        return 1;
    }
    if (catcher_answered(c)) {
        /* The browser came first: that is the answer, nothing to report. */
        error_clear(&pe);
        return 0;
    }
    error_prefix(&pe, "paste not taken");
    if (!pe.hint)
        error_set_hint(&pe, "paste the whole address of the page the browser ended on, or "
                            "finish the sign-in in the browser");
    error_print(&pe, a->name);
    error_clear(&pe);
    return 0;
}

/* Read what stdin has and try each complete line (and what is left when
 * stdin ends).  Returns 1 when a paste won. */
static int paste_read(const Account *a, Catcher *c, struct paste_input *in, RedirectParams **out)
{
    char buf[PASTE_READ];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    const char *nl;
    int won = 0;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) {
        in->open = false;
        won = paste_try(a, c, in->text->str, out);
        paste_input_forget(in, in->text->len);
        return won;
    }
    g_string_append_len(in->text, buf, n);
    explicit_bzero(buf, sizeof(buf));
    while (!won && (nl = memchr(in->text->str, '\n', in->text->len))) {
        gsize used = (gsize)(nl - in->text->str) + 1;
        in->text->str[used - 1] = '\0';
        won = paste_try(a, c, in->text->str, out);
        paste_input_forget(in, used);
    }
    if (in->text->len > PASTE_MAX) {
        fprintf(stderr, "tokend: %s: paste not taken: the pasted text is too long\n", a->name);
        paste_input_forget(in, in->text->len);
    }
    return won;
}

/* Read a paste beside the catcher unless stdin is closed, or is our
 * controlling terminal while we run in the background (reading would stop
 * us).  Where stdin is at its end (</dev/null) the catcher waits alone. */
static bool paste_possible(const Catcher *c)
{
    pid_t foreground;

    if (catcher_fd(c) == STDIN_FILENO || fcntl(STDIN_FILENO, F_GETFL) < 0)
        return false;
    foreground = isatty(STDIN_FILENO) ? tcgetpgrp(STDIN_FILENO) : -1;
    return foreground < 0 || foreground == getpgrp();
}

/* The browser's redirect came: keep half-typed text with a code in it
 * from reaching the shell. */
static int catcher_won(Catcher *c, const struct paste_input *in, RedirectParams **out,
                       struct tokend_error *e)
{
    if (in->open && isatty(STDIN_FILENO))
        tcflush(STDIN_FILENO, TCIFLUSH);
    return catcher_wait(c, 0, out, e);
}

static int race_loop(const Account *a, Catcher *c, struct paste_input *in, RedirectParams **out,
                     struct tokend_error *e)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)a->login_timeout * G_USEC_PER_SEC;

    for (int round = 0;; round++) {
        struct pollfd pfd[2] = {{.fd = catcher_fd(c), .events = POLLIN},
                                {.fd = in->open ? STDIN_FILENO : -1, .events = POLLIN}};
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;

        if (round > 0 && left <= 0)
            break;
        if (poll(pfd, 2, round == 0 ? 0 : (int)MIN(left, G_MAXINT)) < 0 && errno != EINTR)
            return error_set(e, TOKEND_EX_SOFTWARE, "cannot wait for the sign-in: %s",
                             g_strerror(errno));
        if (pfd[0].revents & POLLIN)
            return catcher_won(c, in, out, e);
        if (pfd[1].revents & POLLNVAL)
            in->open = false;
        else if (pfd[1].revents && paste_read(a, c, in, out) == 1)
            return 0;
        if (round == 0 && in->open)
            fprintf(stderr,
                    "tokend: %s: waiting for the browser to come back to %s; "
                    "or paste the address of the page the browser ended on:\n",
                    a->name, catcher_redirect_uri(c));
    }
    error_set(e, TOKEND_EX_TEMPFAIL, "no sign-in arrived within %d s", a->login_timeout);
    error_set_hint(e, "run tokend obtain again; if the browser runs on another machine, paste "
                      "the address of the page it ended on");
    return -1;
}

/* Wait for the browser's redirect at the catcher and, at the same time,
 * for the user to paste the address of the page the browser ended on (on
 * another machine that page fails to load).  The first redirect of this
 * sign-in wins, and the other side is dropped; a paste that is not one is
 * refused in a line and the wait goes on, up to login_timeout. */
static int wait_race(const Account *a, Catcher *c, RedirectParams **out, struct tokend_error *e)
{
    /* Room for the longest paste, so that no copy of a code is left
     * behind by a reallocation. */
    struct paste_input in = {g_string_sized_new(PASTE_MAX + 2 * PASTE_READ), paste_possible(c)};
    int r = race_loop(a, c, &in, out, e);

    explicit_bzero(in.text->str, in.text->allocated_len);
    g_string_free(in.text, TRUE);
    return r;
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
    show_url(a, url, !o->no_browser);
    if (catcher ? wait_race(a, catcher, &params, e) < 0 : wait_manual(a, &params, e) < 0)
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
    int r, held;

    /* One sign-in per account at a time: a second one would leave the
     * first one's grant at the server with nothing holding it. */
    if (paths_ensure_private_dir(dir, e) < 0 || (held = lock_obtain(dir, e)) < 0)
        return -1;
    r = obtain_locked(a, o, http, device, e);
    lock_release(held);
    return r;
}
