/* An account's token file and state folder are its own.  The token file:
 * compared across the accounts of one configuration, resolved (links,
 * "..", "~").  The state folder: a small file in it names the
 * configuration file (resolved) whose account wrote it. */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokend/claim.h"
#include "tokend/config.h"
#include "tokend/fileio.h"
#include "tokend/paths.h"

#define CLAIM_MAX 4096
#define CONFIG_MAX_BYTES (1024 * 1024)

/* path with every link resolved, as far as it exists: the file itself,
 * else its folder, else only "." and ".." taken out. */
static char *resolved(const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    char *real = realpath(path, NULL);
    char *out;

    if (!real && (real = realpath(dir, NULL)) != NULL) {
        out = g_build_filename(real, base, NULL);
        free(real);
        return out;
    }
    out = real ? g_strdup(real) : g_canonicalize_filename(path, NULL);
    free(real);
    return out;
}

int claim_token_files(const GPtrArray *accounts, const char *path, struct tokend_error *e)
{
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    for (guint i = 0; i < accounts->len; i++) {
        const Account *a = g_ptr_array_index(accounts, i);
        char *file = resolved(a->token_file);
        const char *other = g_hash_table_lookup(seen, file);

        if (other) {
            error_set(e, TOKEND_EX_CONFIG,
                      "%s: [account %s] and [account %s] both write the token file %s: one "
                      "account's token would be sent to the other's mail server",
                      path, other, a->name, file);
            error_set_hint(e, "give each account its own token_file, or leave it out (each "
                              "account then has its own, in its state folder)");
            g_free(file);
            return -1;
        }
        g_hash_table_insert(seen, file, a->name);
    }
    return 0;
}

static char *claim_path(const char *account_dir)
{
    return g_build_filename(account_dir, CLAIM_FILE, NULL);
}

/* The claim: the configuration file, then the folder it was made in (a
 * folder copied or moved elsewhere, a backup restored under another home,
 * carries a claim that is not about it). */
static char *claim_text(const char *config_file, const char *account_dir)
{
    g_autofree char *dir = g_canonicalize_filename(account_dir, NULL);

    return g_strdup_printf("%s\n%s\n", config_file, dir);
}

/* The configuration file named in the folder's claim, or NULL when there
 * is none about this folder. */
static char *read_claim(const char *account_dir)
{
    struct tokend_error ignored = TOKEND_ERROR_INIT;
    g_autofree char *path = claim_path(account_dir);
    g_autofree char *data = NULL;
    g_autofree char *dir = g_canonicalize_filename(account_dir, NULL);
    g_auto(GStrv) lines = NULL;

    if (fileio_read(path, CLAIM_MAX, &data, NULL, NULL, &ignored) < 0) {
        error_clear(&ignored);
        return NULL;
    }
    lines = g_strsplit(data, "\n", 3);
    if (!lines[0] || !*lines[0] || !lines[1] || strcmp(lines[1], dir) != 0)
        return NULL;
    return g_strdup(lines[0]);
}

/* The file still has an [account NAME] group (a line of its own, as
 * GKeyFile reads groups).  It may hold a client secret: wiped. */
static bool still_has_account(const char *file, const char *account)
{
    struct tokend_error ignored = TOKEND_ERROR_INIT;
    g_autofree char *data = NULL;
    g_autofree char *group = g_strdup_printf("[account %s]", account);
    size_t len = 0;
    bool found = false;

    if (fileio_read(file, CONFIG_MAX_BYTES, &data, &len, NULL, &ignored) < 0 || !data) {
        error_clear(&ignored);
        return false;
    }
    for (char *line = data; line && !found;) {
        char *eol = strchr(line, '\n');
        g_autofree char *copy = eol ? g_strndup(line, (gsize)(eol - line)) : g_strdup(line);

        found = strcmp(g_strstrip(copy), group) == 0;
        explicit_bzero(copy, strlen(copy));
        line = eol ? eol + 1 : NULL;
    }
    explicit_bzero(data, len);
    return found;
}

int claim_check_folder(const char *config_file, const char *account, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(account);
    g_autofree char *owner = NULL;

    if (!config_file || !(owner = read_claim(dir)) || strcmp(owner, config_file) == 0 ||
        !still_has_account(owner, account))
        return 0;
    error_set(e, TOKEND_EX_CONFIG,
              "%s: [account %s] is also in %s, whose sign-in is kept in the same state folder "
              "%s; two accounts of one name cannot share it",
              config_file, account, owner, dir);
    error_set_hint(e,
                   "rename [account %s] in one of the two files (each name has its own folder), "
                   "or, to move the account here, remove it from %s or run: tokend -c %s logout "
                   "%s",
                   account, owner, owner, account);
    return -1;
}

int claim_record_folder(const char *config_file, const char *account_dir, struct tokend_error *e)
{
    g_autofree char *owner = read_claim(account_dir);
    g_autofree char *path = claim_path(account_dir);
    g_autofree char *text = NULL;

    if (!config_file || g_strcmp0(owner, config_file) == 0)
        return 0;
    text = claim_text(config_file, account_dir);
    return fileio_write_atomic(path, text, strlen(text), FILEIO_SYNC_DATA, e);
}

void claim_release_folder(const char *account_dir)
{
    g_autofree char *path = claim_path(account_dir);

    (void)unlink(path);
}
