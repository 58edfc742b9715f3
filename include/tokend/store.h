#pragma once
/* Where long-lived secrets are kept, per account: the Secret Service
 * (libsecret) or private files.  Stores know nothing of OAuth: they keep a
 * named secret (a "kind", such as "refresh_token") for an account. */

#include <stdbool.h>
#include <glib.h>
#include "tokend/error.h"
#include "tokend/secstr.h"
#include "tokend/store_kind.h"

struct account; /* config.h */

/* The secret every store keeps per account, by this name (its "kind"). */
#define STORE_REFRESH_TOKEN "refresh_token"
/* An app-only account's private key (PEM), when client_key names no file. */
#define STORE_CLIENT_KEY "client_key"
/* An app-only account's client secret, when neither client_secret nor
 * client_secret_file (nor a key) is set. */
#define STORE_CLIENT_SECRET "client_secret"
/* The most a secret may be: what the file store reads back. */
#define STORE_SECRET_MAX_BYTES 16384

typedef struct store Store;

struct store_ops {
    enum store_kind kind;
    int (*get)(Store *s, const char *account, const char *kind, SecStr **out,
               struct tokend_error *e);
    int (*put)(Store *s, const char *account, const char *kind, const char *label,
               const SecStr *value, struct tokend_error *e);
    int (*remove)(Store *s, const char *account, const char *kind, struct tokend_error *e);
    void (*free)(Store *s);
};

struct store {
    const struct store_ops *ops;
};

/* Open a store.  STORE_KIND_AUTO picks the Secret Service when a session bus
 * with an unlocked default collection is there, else the file store.
 * Forcing the Secret Service when it is missing or locked fails with
 * TOKEND_EX_UNAVAILABLE.  Calls never prompt and are bounded in time. */
Store *store_open(enum store_kind kind, struct tokend_error *e);
/* Open a store by its name (as state.json records it; not one that
 * needs_account). */
Store *store_open_named(const char *name, struct tokend_error *e);
/* Open a place without a word when it cannot answer (quiet_unless_known):
 * for looking where a secret might be.  Not one that needs_account. */
Store *store_open_quietly(enum store_kind kind, struct tokend_error *e);
/* The account's store: the one named (as the state names it), or the one
 * its configuration chooses when name is NULL.  Only this one opens the
 * command store, which needs the account's commands. */
Store *store_open_account(const struct account *a, const char *name, struct tokend_error *e);
const char *store_name(const Store *s);
/* How an account's refresh token is labelled where a person may see it (the
 * keyring): "tokend refresh token for ACCOUNT [USERNAME]". */
char *store_label(const char *account, const char *username);
enum store_kind store_kind(const Store *s);
/* *out is NULL (and 0 returned) when nothing is stored.  A locked keyring
 * is an error (TOKEND_EX_UNAVAILABLE), never "nothing stored". */
int store_get(Store *s, const char *account, const char *kind, SecStr **out,
              struct tokend_error *e);
int store_put(Store *s, const char *account, const char *kind, const char *label,
              const SecStr *value, struct tokend_error *e);
/* Returns 1 if something was removed, 0 if nothing was stored. */
int store_remove(Store *s, const char *account, const char *kind, struct tokend_error *e);
void store_free(Store *s);

/* Backends. */
Store *store_file_new(struct tokend_error *e);
/* probe_only: fail quietly (no message worth showing) when unavailable. */
Store *store_secret_new(bool probe_only, struct tokend_error *e);
/* Command lines split like a shell would, run without one; bounded by
 * timeout_s seconds each. */
Store *store_command_new(const char *get, const char *put, const char *remove, int timeout_s,
                         struct tokend_error *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Store, store_free)
