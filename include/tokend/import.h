#pragma once
/* Reading a refresh token out of another tool's files, so that an account
 * can move to tokend without a new sign-in.  The parsers are pure (text in,
 * token out); import_read does the file, gpg and password work around them.
 * Knows nothing of OAuth or of tokend's stores. */

#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

enum import_format {
    IMPORT_FORMAT_FETCHMAIL_OAUTH2,   /* contrib/fetchmail-oauth2.py's config */
    IMPORT_FORMAT_MUTT_OAUTH2,        /* mutt_oauth2.py's gpg-encrypted JSON */
    IMPORT_FORMAT_OAMA,               /* oama's gpg-encrypted <email>.oama */
    IMPORT_FORMAT_PIZAUTH,            /* `pizauth dump`, dump version 1 */
    IMPORT_FORMAT_EMAIL_OAUTH2_PROXY, /* emailproxy.config, Fernet-encrypted */
};

/* -1 for an unknown name. */
int import_format_from_name(const char *name);
const char *import_format_name(enum import_format f);
/* "fetchmail-oauth2, mutt-oauth2, ..." for messages. */
const char *import_format_list(void);

typedef struct import_found {
    SecStr *refresh_token;
    char *client_id; /* the client it was issued to, when the file says */
} ImportFound;

void import_found_free(ImportFound *f);

/* Asks for the password that decrypts an email-oauth2-proxy file. */
typedef SecStr *(*ImportAskPassword)(const char *prompt, struct tokend_error *e);

/* Read the refresh token from FILE in the given format.  username picks the
 * account in files that hold several (email-oauth2-proxy: its username;
 * pizauth: its account name), or NULL. */
int import_read(enum import_format f, const char *file, const char *username, ImportAskPassword ask,
                ImportFound **out, struct tokend_error *e);
/* The terminal without echo when stdin is one, else the first line of
 * stdin. */
SecStr *import_ask_password(const char *prompt, struct tokend_error *e);

/* The parsers, exposed for the unit tests and fuzz targets. */
/* fetchmail-oauth2.py's config: name=value lines; *rt_file and *client_id
 * (NULL when absent). */
int import_parse_fetchmail_config(const char *text, size_t len, char **rt_file, char **client_id,
                                  struct tokend_error *e);
/* The first line of a refresh token file, trailing white space removed. */
SecStr *import_parse_token_line(const SecStr *text, struct tokend_error *e);
/* mutt_oauth2.py's and oama's JSON: its "refresh_token". */
SecStr *import_parse_json(const SecStr *json, struct tokend_error *e);
/* emailproxy.config: the section for username (or the only one with a
 * refresh_token); its encrypted refresh_token, salt, iterations, client_id. */
typedef struct proxy_entry {
    char *section;
    char *refresh_token; /* Fernet token: encrypted, base64url */
    guint8 *salt;
    gsize salt_len;
    guint64 iterations;
    char *client_id;
} ProxyEntry;

ProxyEntry *import_parse_proxy_config(const char *text, size_t len, const char *username,
                                      struct tokend_error *e);
void proxy_entry_free(ProxyEntry *p);
/* PBKDF2-HMAC-SHA256 of the password into a 32-byte Fernet key. */
int import_fernet_key(const SecStr *password, const guint8 *salt, gsize salt_len,
                      guint64 iterations, guint8 key[32], struct tokend_error *e);
/* Verify and decrypt a Fernet token (no time limit); NULL on failure. */
SecStr *import_fernet_decrypt(const char *token, const guint8 key[32]);

/* pizauth's dump (import_pizauth.c): the plaintext of nonce | ChaCha20-
 * Poly1305 ciphertext | tag under pizauth's built-in key, NULL when it does
 * not authenticate; then the refresh token of pizauth's account `account`
 * in that plaintext and *client_id its client (NULL when empty). */
SecStr *import_pizauth_open(const guint8 *dump, size_t len, struct tokend_error *e);
SecStr *import_parse_pizauth(const guint8 *plain, size_t len, const char *account, char **client_id,
                             struct tokend_error *e);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ImportFound, import_found_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ProxyEntry, proxy_entry_free)
