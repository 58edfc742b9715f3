#pragma once
/* What the flow modules (src/flow*.c) share among themselves: the
 * protocol's view of an account, the saving steps every flow runs in the
 * same order, the identity and binding checks.  Not for the verbs, which
 * use tokend/flow.h. */

#include "tokend/flow.h"
#include "tokend/catcher.h"
#include "tokend/http.h"
#include "tokend/oauth.h"

struct account_state;

/* The client as the protocol sees it, with endpoints resolved. */
typedef struct flow_client {
    struct oauth_client oauth;
    SecStr *secret;
    char *authorize_url;
    char *token_url;
    char *device_url;
    char *revocation_url;
    char *userinfo_url; /* from discovery: who signed in, asked with the access token */
    char *issuer;
    char *scopes; /* asked for at a sign-in, when not the account's own (+ email) */
} FlowClient;

/* The protocol's view of an account; may fetch the server metadata. */
FlowClient *flow_client_new(const Account *a, Http *h, struct tokend_error *e);
void flow_client_free(FlowClient *c);

/* Save a token response: refresh token first, then the token file, then
 * the state.  signin_store: the store a new sign-in chose, or NULL for a
 * refresh (which keeps the token where it is). */
int flow_save_response(const Account *a, const char *account_dir, struct account_state *st,
                       const char *signin_store, const TokenResponse *t, struct tokend_error *e);

/* A refresh's new refresh token, saved where the old one is (rescued as
 * flow_save_response does); updates st->store, does not write the state. */
int flow_save_rotated(const Account *a, struct account_state *st, const SecStr *rt,
                      struct tokend_error *e);

/* Under the lock: the set's token, scopes and expiry in the state. */
int flow_save_set_response(const Account *a, const char *account_dir, struct account_state *st,
                           const struct token_set_target *set, const TokenResponse *t,
                           struct tokend_error *e);

/* The set's cached token is there, for these scopes, valid for more than
 * margin seconds. */
bool flow_set_fresh(const char *account_dir, const struct account_state *st,
                    const struct token_set_target *set, int margin);

/* The device flow's part of obtain: the user signs in elsewhere. */
int flow_device(const Account *a, FlowClient *client, Http *http, bool open_browser,
                TokenResponse **t, struct tokend_error *e);

/* An app-only account (flow_app.c): its token made fresh for margin
 * seconds, from the app's shared token or a new one minted; since > 0:
 * only a token obtained at `since` or later will do (a forced refresh,
 * obtain).  Under the account's lock, then the app's. */
/* logout of an app-only account: the app's shared token goes too, so that
 * the account cannot copy it without its credentials (the app's other
 * mailboxes mint a new one when next asked). */
int flow_app_forget(const Account *a, GString *removed, struct tokend_error *e);
int flow_app_refresh(const Account *a, int margin, gint64 since, enum refresh_outcome *outcome,
                     struct tokend_error *e);
/* Many accounts' refresh (flow_refresh_many): forced, one new token per
 * app, which every mailbox of that app takes. */
typedef struct flow_app_run FlowAppRun;
FlowAppRun *flow_app_run_new(bool force);
int flow_app_refresh_in_run(FlowAppRun *run, const Account *a, int margin,
                            enum refresh_outcome *outcome, struct tokend_error *e);
void flow_app_run_free(FlowAppRun *run);
/* Note in the state what the configuration says of the account. */
void flow_state_remember_config(struct account_state *st, const Account *a);

/* Remember a failed attempt in the account's state. */
void flow_record_failure(const char *account_dir, struct account_state *st,
                         const struct tokend_error *err);

/* Under the account's lock: remove what writers killed mid-write left. */
/* flow_paste.c: show the sign-in URL (opening the browser if asked); wait
 * for a paste alone (manual), or for the catcher's redirect or a paste,
 * whichever comes first (race), up to the account's login_timeout. */
void flow_show_url(const Account *a, const char *url, bool open_browser);
int flow_wait_manual(const Account *a, RedirectParams **params, struct tokend_error *e);
int flow_wait_race(const Account *a, Catcher *c, RedirectParams **out, struct tokend_error *e);

/* "why; run: tokend obtain ACCOUNT" (77): the one way a flow says that a
 * sign-in is needed.  Returns -1. */
int flow_signin_needed(const Account *a, const char *why, struct tokend_error *e);
void flow_remove_stale_temps(const Account *a, const char *account_dir);

/* The same from a state already read. */
gint64 flow_next_due_of(const Account *a, const struct account_state *st);

/* Who signed in, as the token response's id_token says. */
typedef struct flow_identity {
    char *name;    /* the claim that matched, or the best one seen, or NULL */
    bool verified; /* it matched the account's username or identity */
    bool wanted;   /* the account has a username or identity to match */
} FlowIdentity;

/* Compare who signed in with the account's username and identity.  *out
 * is NULL when the response names nobody usable (no id_token, only an
 * unmatched sub, or a malformed id_token that nothing needed).  A name
 * matching neither is refused (77); a malformed id_token where a check is
 * needed is 65.  Call before anything of the response is stored. */
int flow_identity_check(const Account *a, const TokenResponse *t, FlowIdentity **out,
                        struct tokend_error *e);
/* The same for a sign-in (obtain, import): when the id_token names nobody
 * by a name (none, or sub alone) and the account has one to match, the
 * server's userinfo endpoint (discovery) is asked with the new access
 * token, and its names judged as the id_token's.  *out, for an account
 * with a name to match, is there even when nobody could be named (then
 * not verified). */
int flow_identity_check_signin(const Account *a, const FlowClient *c, Http *http,
                               const TokenResponse *t, FlowIdentity **out, struct tokend_error *e);
/* Note the result in the state that flow_save_response will write. */
void flow_identity_remember(struct account_state *st, const FlowIdentity *id, bool signin);
void flow_identity_free(FlowIdentity *id);
/* The stored refresh token is bound to the issuer or token endpoint and the
 * client id it was issued for: record them (at every save), and refuse
 * (TOKEND_EX_NOPERM) to send it when the configuration now points elsewhere.
 * A state without a binding is accepted (and bound at its next save). */
void flow_binding_record(struct account_state *st, const Account *a);
int flow_binding_check(const Account *a, const struct account_state *st, struct tokend_error *e);
/* The same binding kept with the secret: the form a refresh token is
 * stored in (one line of visible characters), and back.  unwrap refuses
 * (TOKEND_EX_NOPERM) a token bound elsewhere than the account now says,
 * and (TOKEND_EX_DATAERR) a damaged record; a bare entry, stored before
 * the binding went with the secret, comes back as it is with *bound
 * false. */
SecStr *flow_binding_wrap(const Account *a, const SecStr *rt);
int flow_binding_unwrap(const Account *a, const SecStr *stored, SecStr **rt, bool *bound,
                        struct tokend_error *e);

/* Under the account's lock, before a change that must leave the account
 * as it was if it fails (import): what its stores (chosen: the store a
 * save will choose), token file and state hold.  Restoring puts it all
 * back, and removes what the change added (*unrescued: a rescue file the
 * change made, whose message no longer holds). */
typedef struct flow_undo FlowUndo;
FlowUndo *flow_undo_take(const Account *a, const char *account_dir, const struct account_state *st,
                         const char *chosen, struct tokend_error *e);
int flow_undo_restore(const Account *a, const char *account_dir, const FlowUndo *u, bool *unrescued,
                      struct tokend_error *e);
void flow_undo_free(FlowUndo *u);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowClient, flow_client_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowUndo, flow_undo_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowIdentity, flow_identity_free)
