#pragma once
/* The configuration file (INI, read with GKeyFile): one [account NAME]
 * group per account and an optional [defaults] group whose keys apply to
 * every account.  Unknown keys and bad values are errors naming the file,
 * the group and the key. */

#include <stdbool.h>
#include <sys/stat.h>
#include <glib.h>
#include "tokend/error.h"
#include "tokend/provider.h"
#include "tokend/secstr.h"
#include "tokend/store_kind.h"

enum flow_kind {
    FLOW_KIND_CODE,
    FLOW_KIND_DEVICE,
};

/* How the account gets its tokens: a person signs in (authorization code,
 * or the device grant per `flow`), or the app alone, with no person and no
 * refresh token (client credentials, RFC 6749 4.4; a JWT bearer grant,
 * RFC 7523 2.1). */
enum account_grant {
    ACCOUNT_GRANT_AUTHORIZATION_CODE,
    ACCOUNT_GRANT_CLIENT_CREDENTIALS,
    ACCOUNT_GRANT_JWT_BEARER,
};

/* When a sign-in asks for consent so that offline_access is granted
 * (OpenID Connect Core section 11). */
enum offline_consent {
    OFFLINE_CONSENT_AUTO,   /* when the provider needs it (generic) */
    OFFLINE_CONSENT_ALWAYS, /* whenever the scopes include offline_access */
    OFFLINE_CONSENT_NEVER,
};

typedef struct account {
    char *name;
    const struct provider_preset *provider; /* an entry of provider.h's table */
    char *tenant;
    char *authority;
    char *client_id;
    SecStr *client_secret;    /* given inline in the file */
    char *client_secret_file; /* or read from this file when needed */
    char *username;
    char *identity; /* the expected sign-in name, when not username */
    char *scopes;   /* space separated */
    char *redirect_uri;
    char *token_file;       /* absolute */
    char *token_file_group; /* the group that may read it, or NULL */
    int token_file_mode;    /* 0600, or 0640 with a group */
    enum store_kind store;
    char *ca_file;
    char *issuer;
    char *authorize_url;
    char *token_url;
    char *device_authorization_url;
    char *revocation_url;
    char *prompt;
    char **auth_params; /* NULL-terminated "key=value" */
    enum offline_consent offline_consent;
    enum flow_kind flow;
    int refresh_margin; /* seconds */
    int min_validity;   /* seconds */
    int login_timeout;  /* seconds */
    char *imap_host;
    int imap_port;
    char *smtp_host;
    int smtp_port;
    char *pop_host;
    int pop_port;
    char *notify_cmd;
    char *tunnel_mech;  /* auto, xoauth2 or oauthbearer (checked by tunnel) */
    char *tunnel_tls;   /* auto, implicit or starttls (checked by tunnel) */
    char *smtp_tls;     /* the relay's upstream: auto, implicit or starttls */
    char *send_as;      /* the relay: more MAIL FROM addresses, space separated */
    char *smtp_backend; /* the relay's sending: smtp (default) or graph */
    char *graph_url;    /* Microsoft Graph's root URL (the provider's, or the key's) */
    /* The relay, for clients on other machines: a crypt(3) yescrypt hash. */
    char *relay_password_hash;
    char *store_get; /* store = command: command lines */
    char *store_put;
    char *store_delete;
    int store_timeout;   /* seconds, for each store command */
    int signin_lifetime; /* seconds a sign-in lasts, when known to the user; 0 if not */
    int notify_before;   /* seconds ahead of a needed sign-in to warn; 0: never */
    char **token_sets;   /* "NAME SCOPES" items (tokenset_parse_config), or NULL */
    /* App-only accounts (grant other than authorization_code). */
    enum account_grant grant;
    char *client_certificate;         /* PEM certificate: private_key_jwt */
    char *client_key;                 /* PEM private key; NULL: the account's store holds it */
    char *client_key_passphrase_file; /* for an encrypted client_key */
    char *assertion_alg;              /* RS256 (default) or PS256 */
    char *service_account_file;       /* Google's JSON key (jwt_bearer) */
    char *subject;                    /* jwt_bearer: whom to act for (default: username) */
    const char *config_id;            /* the file's identity (config_identity), or NULL */
    const char *config_file;          /* the file, links resolved (config_target_path), or NULL */
    const char *config_arg;           /* the file as given with -c (absolute), or NULL */
} Account;

typedef struct config {
    char *path;
    char *id;            /* config_identity() of the file when it was read */
    char *file;          /* the file read, links resolved (config_target_path) */
    GPtrArray *accounts; /* Account*, in file order */
    int max_parallel;
    /* [defaults]: the relay's TLS certificate chain and key (PEM), or NULL. */
    char *relay_tls_certificate;
    char *relay_tls_key;
    char *relay_account; /* [defaults]: the relay's account for SMTP clients that do not log in */
    char *relay_peers;   /* [defaults]: users and groups the relay serves beside its own */
    char *config_arg;    /* set by config_set_arg */
} Config;

Config *config_load(const char *path, struct tokend_error *e);
/* Parse from memory; path is only used in messages and for relative paths. */
Config *config_parse(const char *data, size_t len, const char *path, struct tokend_error *e);
const Account *config_find(const Config *c, const char *name);
void config_free(Config *c);
/* An account name may be used as a folder name. */
bool config_account_name_valid(const char *name);
/* The keys the config file accepts, NULL-terminated (for docs and tests). */
const char *const *config_known_keys(void);
/* The file a configuration path names, symbolic links followed (path
 * itself when it cannot be resolved): what is read and written. */
char *config_target_path(const char *path);
/* "path|dev:inode:size:mtime" of a config file, or NULL if it cannot be
 * stat'ed: what tokend's cached decisions are tied to. */
char *config_identity(const char *path);
const char *flow_kind_name(enum flow_kind kind);
const char *account_grant_name(enum account_grant grant);
/* The account gets its tokens without a person: no browser, no refresh
 * token; a new access token is minted when the old one is due. */
bool config_app_only(const Account *a);
/* An app-only account of the client credentials grant that names neither a
 * client secret nor a key: its client secret is kept in its store. */
bool config_app_secret_stored(const Account *a);
/* Remember that the file was named with -c, so that the commands tokend
 * tells the user to run name it too. */
void config_set_arg(Config *c, const char *path);
/* "tokend [-c FILE] VERB ACCOUNT", quoted for a shell where needed. */
char *config_command(const Account *a, const char *verb);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Config, config_free)
