#pragma once
/* Access tokens for other scopes than the mail token's, from the same
 * refresh token: named token sets (the account's `token_sets` key) and
 * scope lists given on the command line.  Each is cached in its own token
 * file in the account's folder, ACCOUNTDIR/token.KEY, where KEY is the set's
 * name or "scopes." and a hash of the scope list.  GLib only: the launcher
 * uses it. */

#include <stdbool.h>
#include <glib.h>

/* A scope list in canonical form: the scopes (RFC 6749 scope-tokens)
 * sorted, each once, joined by one space.  NULL (and *why set) when a
 * scope has a character RFC 6749 does not allow, or there is none. */
char *tokenset_normalize(const char *const *scopes, const char **why);
/* The cache key of a canonical scope list: "scopes.<16 hex digits>". */
char *tokenset_scopes_key(const char *canonical);
/* A set name: 1-32 of A-Z a-z 0-9 _ -. */
bool tokenset_name_valid(const char *name);
/* Parse the value of `token_sets`: "NAME:SCOPE SCOPE...; NAME:SCOPE..."
 * (the parts separated by ";", GKeyFile's list separator; a trailing ";"
 * is allowed).  Gives a NULL-terminated array whose items are "NAME
 * CANONICAL-SCOPES", or NULL with *why set. */
char **tokenset_parse_config(const char *value, char **why);
/* The canonical scopes of set NAME in what tokenset_parse_config gave, or
 * NULL. */
const char *tokenset_find(char *const *sets, const char *name);
/* A key tokenset_scopes_key or a set name could have given. */
bool tokenset_key_valid(const char *key);
/* ACCOUNTDIR/token.KEY */
char *tokenset_token_file(const char *account_dir, const char *key);

struct account;
struct account_state;
struct tokend_error;
/* When the account's configured token sets next need a refresh (their
 * expiry less the refresh margin): 0 when one was never fetched, is for
 * other scopes now, or lost its file; G_MAXINT64 with none configured. */
gint64 tokenset_next_due(const struct account *a, const struct account_state *st);
/* Remove the sets' token files from an account folder, saying so in
 * removed; the count removed. */
int tokenset_forget_files(const char *dir, GString *removed, struct tokend_error *e);
