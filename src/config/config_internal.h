#pragma once
/* What the configuration's modules share among themselves: config.c reads
 * the file and its groups, config_keys.c the key table and the values,
 * config_account.c fills and checks an account.  Included by them only. */

#include "tokend/config.h"

#define DEFAULTS_GROUP "defaults"
#define ACCOUNT_PREFIX "account "

struct parse_ctx {
    GKeyFile *kf;
    const char *path;
    const char *group;
    struct tokend_error *e;
};

/* "PATH: [GROUP] KEY: what" (78).  Returns -1. */
int config_key_error(const struct parse_ctx *c, const char *key, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* The group's value of key (NULL when absent), unescaped. */
int config_get_value(const struct parse_ctx *c, const char *group, const char *key, char **out);
int config_parse_int(const struct parse_ctx *c, const char *key, const char *v, gint64 min,
                     gint64 max, int *out);
int config_parse_enum(const struct parse_ctx *c, const char *key, const char *v,
                      const char *const *names, int *out);
/* Every key of the group is known, given once, and in a group it may be. */
int config_check_group_keys(const struct parse_ctx *c, bool is_defaults);
/* Apply every known key, the account's own value winning over [defaults]. */
int config_apply_keys(struct parse_ctx *c, Account *a, bool has_defaults, const char *base_dir);
/* One [account NAME] group: keys, defaults of its provider, checks. */
Account *config_parse_account(struct parse_ctx *c, const char *name, bool has_defaults,
                              const char *base_dir);
void config_account_free(Account *a);
/* An app-only account's keys (config_app.c): what its grant needs is
 * there, and nothing of a person's sign-in is asked for. */
int config_validate_app(struct parse_ctx *c, Account *a);
void config_app_free(Account *a);
/* GKeyFile merges a repeated [group] into the first one: refused. */
int config_check_repeated_groups(const char *data, size_t len, const char *path,
                                 struct tokend_error *e);
/* Every [account NAME] group of c->kf into cfg (a name already there is
 * refused). */
int config_parse_groups(struct parse_ctx *c, Config *cfg, bool has_defaults, const char *base_dir);
/* "path|dev:inode:size:mtime" of one file, or NULL. */
char *config_file_identity(const char *path);
/* System mode (config_system.c): a configuration file only root or the
 * service user can change, and no one else can read; the accounts.d files
 * beside the main file (data: its text, for its [defaults]); the identity
 * of them all (takes id, the main file's). */
int config_system_check_file(const char *path, struct tokend_error *e);
int config_system_add_dropins(Config *cfg, const char *data, size_t len, struct tokend_error *e);
char *config_system_identity(const char *path, char *id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Account, config_account_free)
