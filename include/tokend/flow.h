#pragma once
/* The flows a verb runs for one account: sign in (obtain), refresh, forget.
 * They use the protocol, HTTP, catcher and store modules and keep the
 * account's state, token file and stored refresh token consistent. */

#include <stdbool.h>
#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/http.h"
#include "tokend/oauth.h"
#include "tokend/secstr.h"

struct obtain_options {
    bool no_browser;
    bool manual;
    bool device;
};

enum refresh_outcome {
    REFRESH_NOT_NEEDED,   /* fresh enough, nothing done */
    REFRESH_DONE_ELSEWHERE, /* another tokend refreshed while we waited */
    REFRESH_DONE,
};

struct account_state;

/* The client as the protocol sees it, with endpoints resolved. */
typedef struct flow_client {
    struct oauth_client oauth;
    SecStr *secret;
    char *authorize_url;
    char *token_url;
    char *device_url;
    char *revocation_url;
    char *issuer;
} FlowClient;

/* The protocol's view of an account; may fetch the server metadata. */
FlowClient *flow_client_new(const Account *a, Http *h, struct tokend_error *e);
void flow_client_free(FlowClient *c);

/* Save a token response: refresh token first, then the token file, then
 * the state.  signin_store: the store a new sign-in chose, or NULL for a
 * refresh (which keeps the token where it is). */
int flow_save_response(const Account *a, const char *account_dir, struct account_state *st,
                       const char *signin_store, const TokenResponse *t,
                       struct tokend_error *e);
/* A refresh's new refresh token, saved where the old one is (rescued as
 * flow_save_response does); updates st->store, does not write the state. */
int flow_save_rotated(const Account *a, struct account_state *st, const SecStr *rt,
                      struct tokend_error *e);
/* A token for other scopes than the mail token's, from the same refresh
 * token (tokenset.h). */
struct token_set_target {
    const char *key;    /* the set's name, or tokenset_scopes_key() */
    const char *scopes; /* canonical (tokenset_normalize) */
    bool named;         /* a set of the configuration's token_sets */
};
/* Make the set's cached token fresh (min_validity): when it is not, a
 * refresh that asks for the set's scopes, under the account's lock; the
 * rotated refresh token is saved first, as by flow_refresh, the access
 * token in the set's own file; the mail token is left alone.  A server
 * that grants less than was asked is an error (TOKEND_EX_NOPERM) naming
 * what it granted. */
int flow_refresh_set(const Account *a, const struct token_set_target *set,
                     enum refresh_outcome *outcome, struct tokend_error *e);
SecStr *flow_read_set_token(const Account *a, const struct token_set_target *set,
                            struct tokend_error *e);
/* Under the lock: the set's token, scopes and expiry in the state. */
int flow_save_set_response(const Account *a, const char *account_dir,
                           struct account_state *st, const struct token_set_target *set,
                           const TokenResponse *t, struct tokend_error *e);
/* The set's cached token is there, for these scopes, valid for more than
 * margin seconds. */
bool flow_set_fresh(const char *account_dir, const struct account_state *st,
                    const struct token_set_target *set, int margin);
/* Seconds the set's cached token is still valid (0 if none). */
gint64 flow_set_seconds_left(const Account *a, const struct token_set_target *set);
/* Remove the token sets' files from the account's folder (logout). */
int flow_forget_sets(const char *account_dir, GString *removed, struct tokend_error *e);
/* Note in the state that the configuration still names the set so (for
 * the launcher); best effort. */
void flow_remember_set_config(const Account *a, const struct token_set_target *set);
/* The device flow's part of obtain: the user signs in elsewhere. */
int flow_device(const Account *a, FlowClient *client, Http *http, bool open_browser,
                TokenResponse **t, struct tokend_error *e);
int flow_obtain(const Account *a, const struct obtain_options *o, struct tokend_error *e);
/* Refresh when the access token expires within margin seconds (always with
 * force).  Serialised per account by a lock. */
int flow_refresh(const Account *a, int margin, bool force, enum refresh_outcome *outcome,
                 struct tokend_error *e);
/* One account of a bulk refresh: its outcome, or its error. */
struct refresh_request {
    const Account *account;
    enum refresh_outcome outcome;
    struct tokend_error error;
    bool signin_known; /* the state already said a sign-in is needed */
    bool next_due_known;
    gint64 next_due; /* as flow_next_due, when known: saves reading the state again */
    void *bulk; /* private */
};

/* Refresh many accounts at once (each when due, or all with force): at most
 * max_parallel requests in flight over reused connections, with every
 * per-account guarantee of flow_refresh. */
void flow_refresh_many(struct refresh_request *reqs, size_t n, int max_parallel, bool force);
/* Remember a failed attempt in the account's state. */
void flow_record_failure(const char *account_dir, struct account_state *st,
                         const struct tokend_error *err);

/* Forget the account locally; reports what was removed in *removed. */
int flow_logout(const Account *a, GString *removed, struct tokend_error *e);
/* Move the refresh token to the store named target ("file",
 * "secret-service", "command"), verified before the old copy goes; says
 * what was done in *done. */
int flow_migrate(const Account *a, const char *target, GString *done, struct tokend_error *e);
/* Note in the account's state what the current configuration says of it,
 * so that the launcher can answer from the state alone. */
void flow_remember_config(const Account *a);
/* Under the account's lock: remove what writers killed mid-write left. */
void flow_remove_stale_temps(const Account *a, const char *account_dir);
/* When `refresh` will next have work for this account (0: now). */
gint64 flow_next_due(const Account *a);
/* The same from a state already read. */
gint64 flow_next_due_of(const Account *a, const struct account_state *st);
/* `refresh`: warn once (a line, notify_cmd) when the next sign-in is within
 * notify_before (reauth.h); remembered in the state until a new sign-in. */
void flow_reauth_warn(const Account *a);
/* Seconds the current access token is still valid (0 if none). */
gint64 flow_token_seconds_left(const Account *a);
/* Read the current access token (after flow_refresh made it fresh). */
SecStr *flow_read_token(const Account *a, struct tokend_error *e);

/* Who signed in, as the token response's id_token says. */
typedef struct flow_identity {
    char *name;    /* the claim that matched, or the best one seen */
    bool verified; /* it matched the account's username or identity */
} FlowIdentity;

/* Compare who signed in with the account's username and identity.  *out
 * is NULL when the response names nobody usable (no id_token, only an
 * unmatched sub, or a malformed id_token that nothing needed).  A name
 * matching neither is refused (77); a malformed id_token where a check is
 * needed is 65.  Call before anything of the response is stored. */
int flow_identity_check(const Account *a, const TokenResponse *t, FlowIdentity **out,
                        struct tokend_error *e);
/* Note the result in the state that flow_save_response will write. */
void flow_identity_remember(struct account_state *st, const FlowIdentity *id, bool signin);
void flow_identity_free(FlowIdentity *id);
/* The stored refresh token is bound to the issuer or token endpoint and the
 * client id it was issued for: record them (at every save), and refuse
 * (TOKEND_EX_NOPERM) to send it when the configuration now points elsewhere.
 * A state without a binding is accepted (and bound at its next save). */
void flow_binding_record(struct account_state *st, const Account *a);
int flow_binding_check(const Account *a, const struct account_state *st,
                       struct tokend_error *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowClient, flow_client_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FlowIdentity, flow_identity_free)
