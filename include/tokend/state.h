#pragma once
/* What tokend remembers about an account besides its secrets: the access
 * token's expiry, where the refresh token is stored, when it last talked to
 * the server.  Kept as JSON beside the token file so that `token` and
 * `refresh` can decide without the keyring.  Never holds a secret. */

#include <stdbool.h>
#include <glib.h>
#include "tokend/error.h"
#include "tokend/fileio.h"

/* The most state.json may be: what state_load reads. */
#define STATE_MAX_BYTES (64 * 1024)

/* A token for other scopes than the mail token's (tokenset.h): its file is
 * ACCOUNTDIR/token.KEY. */
typedef struct state_token_set {
    char *key;       /* set name, or "scopes.HASH" */
    char *scopes;    /* asked for, canonical */
    char *granted;   /* the server's `scope`, or NULL */
    char *config_id; /* named sets: the configuration that named them */
    gint64 expires_at;
    gint64 obtained_at;
} StateTokenSet;

typedef struct account_state {
    gint64 expires_at;      /* access token expiry (unix seconds), 0 if none */
    gint64 obtained_at;     /* when the access token was received */
    gint64 signed_in_at;    /* last successful obtain */
    gint64 last_refresh;    /* last successful refresh */
    gint64 last_attempt;    /* last refresh attempt, successful or not */
    char *store;            /* where the refresh token is: "secret-service", "file", or NULL */
    char *token_file;       /* where the access token was written */
    int token_file_mode;    /* its mode: 0600, or 0640 for a reader group */
    char *scope;            /* as granted */
    char *last_error;       /* one line, when the last attempt failed */
    int last_status;        /* exit status of the last attempt */
    bool needs_signin;      /* the server refused the refresh token */
    char *identity;         /* who signed in, from the id_token (or userinfo), or NULL */
    bool identity_verified; /* identity matched the account's username or identity */
    /* For an account with a username or identity to match, at the last
     * sign-in: "verified", or "not verified" when the server named nobody
     * by a name a person types (no id_token, or sub alone, and nothing
     * from userinfo); NULL when there was nothing to match. */
    char *identity_check;
    /* What the configuration said when this state was written, so that the
     * launcher can answer `token` without parsing the configuration: valid
     * while the file's identity is config_id. */
    char *config_id;
    int min_validity;
    int refresh_margin;
    /* Where the stored refresh token came from: it is sent nowhere else.
     * NULL client id: a state written before this was recorded. */
    char *bound_client_id;
    char *bound_issuer;
    char *bound_token_url;
    /* When a new sign-in will be needed (reauth.h).  0: not known. */
    gint64 refresh_token_expires_at; /* the server said (refresh_token_expires_in) */
    gint64 frequency_seen_at;        /* the last AADSTS70043 (sign-in frequency) */
    gint64 frequency_interval;       /* how long the sign-in it ended had worked */
    gint64 warned_for;               /* the moment a warning was sent for, this sign-in */
    gint64 warned_at;                /* when that warning was sent */
    GPtrArray *token_sets;           /* StateTokenSet *, or NULL when there is none */
    /* An app-only account's token (flow_app.c): minted, never refreshed;
     * there is no refresh token, so `store` stays NULL. */
    bool app_only;
    gint64 cert_expires_at; /* its certificate's expiry, 0 if none */
    /* When `refresh` next has work for this account (the mail token, the
     * configured token sets, the warning ahead of a sign-in), as the
     * configuration config_id says: the launcher's answer to `refresh
     * ACCOUNT`.  0: not known (ask the engine). */
    gint64 next_due;
    /* The last refresh was refused because the configuration now names
     * another server or client than the refresh token came from. */
    bool binding_refused;
} AccountState;

AccountState *state_new(void);
/* Load account_dir/state.json; a missing file gives an empty state. */
AccountState *state_load(const char *account_dir, struct tokend_error *e);
/* The same for a state that the next mint makes again (an app-only
 * account's, an app's), written unsynced: one that does not parse (torn by
 * a power cut) gives an empty state, with a warning, instead of an error.
 * A file that cannot be read is still an error. */
AccountState *state_load_remade(const char *account_dir, struct tokend_error *e);
/* Replaced atomically, its data synced (FILEIO_SYNC_DATA): never empty or
 * torn after a power cut. */
int state_save(const char *account_dir, const AccountState *st, struct tokend_error *e);
/* The same, synced as asked: FILEIO_SYNC_NONE only for a state that can be
 * made again from nothing (an app's shared token, minted anew). */
int state_save_synced(const char *account_dir, const AccountState *st, enum fileio_sync sync,
                      struct tokend_error *e);
void state_free(AccountState *st);
/* Parse from memory (for tests and fuzzing). */
AccountState *state_parse(const char *json, size_t len, struct tokend_error *e);
/* The time in seconds since the epoch, as every expiry here counts it. */
gint64 state_now(void);
/* The freshness rule, for the mail token and the token sets alike: a token
 * expiring at `expires_at` (0: none known) is valid for more than `margin`
 * seconds at time `now`. */
bool state_expiry_fresh(gint64 expires_at, int margin, gint64 now);
/* The account's access token is fresh (state_expiry_fresh). */
bool state_token_fresh(const AccountState *st, int margin, gint64 now);
/* Fresh, and its token file is `token_file` (NULL: whichever the state
 * names) and is there: one access(2), no read. */
bool state_token_ready(const AccountState *st, const char *token_file, int margin, gint64 now);

/* The token set with this key, or NULL; _get adds it when missing. */
StateTokenSet *state_token_set_find(const AccountState *st, const char *key);
StateTokenSet *state_token_set_get(AccountState *st, const char *key);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(AccountState, state_free)
