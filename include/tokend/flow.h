#pragma once
/* The flows a verb runs for one account: sign in (obtain), refresh, forget.
 * They use the protocol, HTTP, catcher and store modules and keep the
 * account's state, token file and stored refresh token consistent.  This
 * is the verbs' interface; what the flow modules share among themselves
 * is in src/flow/flow_internal.h. */

#include <stdbool.h>
#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/secstr.h"

struct obtain_options {
    bool no_browser;
    bool manual;
    bool device;
};

enum refresh_outcome {
    REFRESH_NOT_NEEDED,     /* fresh enough, nothing done */
    REFRESH_DONE_ELSEWHERE, /* another tokend refreshed while we waited */
    REFRESH_DONE,
};

/* A token for other scopes than the mail token's, from the same refresh
 * token (tokenset.h). */
struct token_set_target {
    const char *key;    /* the set's name, or tokenset_scopes_key() */
    const char *scopes; /* canonical (tokenset_normalize) */
    bool named;         /* a set of the configuration's token_sets */
};
/* Make the set's cached token valid for more than margin seconds (`token`:
 * min_validity; `refresh`: refresh_margin): when it is not, or with force, a
 * refresh that asks for the set's scopes, under the account's lock; the
 * rotated refresh token is saved first, as by flow_refresh, the access
 * token in the set's own file; the mail token is left alone.  A server
 * that grants less than was asked is an error (TOKEND_EX_NOPERM) naming
 * what it granted. */
int flow_refresh_set(const Account *a, const struct token_set_target *set, int margin, bool force,
                     enum refresh_outcome *outcome, struct tokend_error *e);
SecStr *flow_read_set_token(const Account *a, const struct token_set_target *set,
                            struct tokend_error *e);
/* Seconds the set's cached token is still valid (0 if none). */
gint64 flow_set_seconds_left(const Account *a, const struct token_set_target *set);
/* Note in the state that the configuration still names the set so (for
 * the launcher); best effort. */
void flow_remember_set_config(const Account *a, const struct token_set_target *set);
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
    /* Failed because the account was never signed in (or was logged out):
     * nothing is stored and the state knows of no sign-in. */
    bool never_signed_in;
    bool next_due_known;
    gint64 next_due; /* as flow_next_due, when known: saves reading the state again */
    void *bulk;      /* private */
};

/* Refresh many accounts at once (each when due, or all with force): at most
 * max_parallel requests in flight over reused connections, with every
 * per-account guarantee of flow_refresh. */
void flow_refresh_many(struct refresh_request *reqs, size_t n, int max_parallel, bool force);

/* Forget the account locally; reports what was removed in *removed. */
int flow_logout(const Account *a, GString *removed, struct tokend_error *e);
/* Move the refresh token to the store named target ("file",
 * "secret-service", "command"), verified before the old copy goes; says
 * what was done in *done. */
int flow_migrate(const Account *a, const char *target, GString *done, struct tokend_error *e);
/* Note in the account's state what the current configuration says of it,
 * so that the launcher can answer from the state alone. */
void flow_remember_config(const Account *a);
/* When `refresh` will next have work for this account (0: now): the mail
 * token, the configured token sets, the warning ahead of a sign-in. */
gint64 flow_next_due(const Account *a);
/* `refresh`: warn once (a line, notify_cmd) when the next sign-in is within
 * notify_before (reauth.h); remembered in the state until a new sign-in. */
void flow_reauth_warn(const Account *a);
/* What an administrator's one-time setup of an app-only account names:
 * the app's client id (a service account file's own), and what the
 * current token says of the app, unchecked (Microsoft: oid, the object id
 * of its enterprise application; tid, its tenant).  NULL when unknown. */
struct flow_app_facts {
    char *client_id;
    char *object_id;
    char *tenant_id;
};
int flow_app_facts(const Account *a, struct flow_app_facts *f, struct tokend_error *e);
/* `import --key`: the PEM key in path (only its owner may read it) checked
 * (its passphrase, its certificate) and kept in the account's store, where
 * an app-only account without client_key finds it; *store names it. */
int flow_app_import_key(const Account *a, const char *path, char **store, struct tokend_error *e);
/* `import --secret`: the client secret of an app-only account of the
 * client credentials grant that names neither a secret nor a key, from
 * path (only its owner may read it) or, path NULL, as given (read from
 * standard input by the caller); one line, kept in the account's store
 * and read back; *store names it. */
int flow_app_import_secret(const Account *a, const char *path, const SecStr *given, char **store,
                           struct tokend_error *e);
void flow_app_facts_clear(struct flow_app_facts *f);
/* Seconds the current access token is still valid (0 if none). */
gint64 flow_token_seconds_left(const Account *a);
/* Read the current access token (after flow_refresh made it fresh). */
SecStr *flow_read_token(const Account *a, struct tokend_error *e);
