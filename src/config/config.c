#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_internal.h"
#include "tokend/claim.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/tokenset.h"
#include "tokend/uri.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

bool config_account_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 64 || !g_ascii_isalnum(name[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!g_ascii_isalnum(ch) && !strchr("._@+-", ch))
            return false;
    }
    return true;
}

/* The relay's certificate and key for other machines; relative paths
 * are the config file's folder's. */
static int parse_relay_tls(struct parse_ctx *c, Config *cfg)
{
    g_autofree char *dir = g_path_get_dirname(c->path);
    g_autofree char *cert = NULL, *key = NULL;

    if (config_get_value(c, DEFAULTS_GROUP, "relay_tls_certificate", &cert) < 0 ||
        config_get_value(c, DEFAULTS_GROUP, "relay_tls_key", &key) < 0)
        return -1;
    if (cert && *cert)
        cfg->relay_tls_certificate = paths_expand(cert, dir);
    if (key && *key)
        cfg->relay_tls_key = paths_expand(key, dir);
    return 0;
}

static int parse_defaults(struct parse_ctx *c, Config *cfg)
{
    g_autofree char *v = NULL;

    c->group = DEFAULTS_GROUP;
    if (config_check_group_keys(c, true) < 0)
        return -1;
    if (config_get_value(c, DEFAULTS_GROUP, "max_parallel", &v) < 0)
        return -1;
    if (v && config_parse_int(c, "max_parallel", v, 1, 1024, &cfg->max_parallel) < 0)
        return -1;
    if (config_get_value(c, DEFAULTS_GROUP, "relay_account", &cfg->relay_account) < 0 ||
        config_get_value(c, DEFAULTS_GROUP, "relay_peers", &cfg->relay_peers) < 0)
        return -1;
    return parse_relay_tls(c, cfg);
}

/* GKeyFile merges a repeated [group] into the first one: refuse it instead.
 * Scans in place, since the data may hold a client secret. */
int config_check_repeated_groups(const char *data, size_t len, const char *path,
                                 struct tokend_error *e)
{
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    const char *p = data, *end = data + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *close;

        if (!eol)
            eol = end;
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        close = p < eol && *p == '[' ? memchr(p, ']', (size_t)(eol - p)) : NULL;
        if (close) {
            char *group = g_strndup(p + 1, (gsize)(close - p - 1));
            if (!g_hash_table_add(seen, group))
                return error_set(e, TOKEND_EX_CONFIG, "%s: [%s]: the group appears twice", path,
                                 group);
        }
        p = eol + 1;
    }
    return 0;
}

Config *config_parse(const char *data, size_t len, const char *path, struct tokend_error *e)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) err = NULL;
    g_autoptr(Config) cfg = g_new0(Config, 1);
    g_autofree char *base_dir = g_path_get_dirname(path);
    struct parse_ctx c = {.kf = kf, .path = path, .group = "", .e = e};
    bool has_defaults;

    cfg->path = g_strdup(path);
    cfg->accounts = g_ptr_array_new_with_free_func((GDestroyNotify)config_account_free);
    cfg->max_parallel = 8;
    if (config_check_repeated_groups(data, len, path, e) < 0)
        return NULL;
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &err)) {
        error_set(e, TOKEND_EX_CONFIG, "%s: %s", path, err->message);
        return NULL;
    }
    has_defaults = g_key_file_has_group(kf, DEFAULTS_GROUP);
    if (has_defaults && parse_defaults(&c, cfg) < 0)
        return NULL;
    if (config_parse_groups(&c, cfg, has_defaults, base_dir) < 0 ||
        claim_token_files(cfg->accounts, path, e) < 0)
        return NULL;
    return g_steal_pointer(&cfg);
}

int config_parse_groups(struct parse_ctx *c, Config *cfg, bool has_defaults, const char *base_dir)
{
    g_auto(GStrv) groups = g_key_file_get_groups(c->kf, NULL);

    for (char **g = groups; *g; g++) {
        const char *name;
        Account *a;

        if (strcmp(*g, DEFAULTS_GROUP) == 0)
            continue;
        c->group = *g;
        if (!g_str_has_prefix(*g, ACCOUNT_PREFIX))
            return config_key_error(c, NULL, "unknown group (use [account NAME] or [defaults])");
        name = *g + strlen(ACCOUNT_PREFIX);
        if (config_find(cfg, name))
            return config_key_error(c, NULL, "account \"%s\" is defined twice", name);
        a = config_parse_account(c, name, has_defaults, base_dir);
        if (!a)
            return -1;
        g_ptr_array_add(cfg->accounts, a);
    }
    return 0;
}

char *config_file_identity(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return NULL;
    return g_strdup_printf("%s|%llu:%llu:%lld:%lld.%09ld", path, (unsigned long long)st.st_dev,
                           (unsigned long long)st.st_ino, (long long)st.st_size,
                           (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

char *config_identity(const char *path)
{
    char *id = config_file_identity(path);

    /* System mode: the accounts.d files too. */
    return id && paths_system() ? config_system_identity(path, id) : id;
}

/* Like a loose client_secret_file: said, not repaired (the file is the
 * user's own, perhaps a link into a dotfiles repository). */
static void warn_if_secret_readable(const Config *cfg, const char *path)
{
    struct stat st;
    bool secret = false;

    for (guint i = 0; i < cfg->accounts->len; i++)
        secret = secret || ((Account *)g_ptr_array_index(cfg->accounts, i))->client_secret;
    if (!secret || stat(path, &st) < 0 || (st.st_mode & 077) == 0)
        return;
    log_warn("%s holds client_secret and is readable by others (mode %03o); run: chmod 600 %s "
             "(or move the secret to a private client_secret_file)",
             path, (unsigned)(st.st_mode & 0777), path);
}

void config_set_arg(Config *c, const char *path)
{
    g_free(c->config_arg);
    c->config_arg = path ? g_canonicalize_filename(path, NULL) : NULL;
    for (guint i = 0; i < c->accounts->len; i++)
        ((Account *)g_ptr_array_index(c->accounts, i))->config_arg = c->config_arg;
}

/* Account names need no quoting (config_account_name_valid); a path only
 * when it has characters a shell would read. */
char *config_command(const Account *a, const char *verb)
{
    g_autofree char *file = NULL;

    if (a->config_arg) {
        bool plain = true;
        for (const char *p = a->config_arg; *p; p++)
            plain = plain && (g_ascii_isalnum(*p) || strchr("/._+@%=:,-", *p));
        file = plain ? g_strdup(a->config_arg) : g_shell_quote(a->config_arg);
    }
    return g_strdup_printf("tokend%s%s %s %s", file ? " -c " : "", file ? file : "", verb, a->name);
}

/* Every account's state folder is this file's (claim.h). */
static int claim_folders(const Config *cfg, struct tokend_error *e)
{
    for (guint i = 0; i < cfg->accounts->len; i++) {
        const Account *a = g_ptr_array_index(cfg->accounts, i);
        if (claim_check_folder(cfg->file, a->name, e) < 0)
            return -1;
    }
    return 0;
}

char *config_target_path(const char *path)
{
    char *real = realpath(path, NULL);
    char *target = g_strdup(real ? real : path);
    bool resolved = real != NULL;

    free(real);
    /* A link to nothing: where it points, so that the read finds nothing
     * there (as for no file) rather than a link. */
    for (int hops = 0; !resolved && hops < 40 && g_file_test(target, G_FILE_TEST_IS_SYMLINK);
         hops++) {
        g_autofree char *dir = g_path_get_dirname(target);
        g_autofree char *next = g_file_read_link(target, NULL);

        if (!next)
            break;
        g_free(target);
        target =
            g_path_is_absolute(next) ? g_steal_pointer(&next) : g_build_filename(dir, next, NULL);
    }
    return target;
}

Config *config_load(const char *path, struct tokend_error *e)
{
    g_autofree char *data = NULL;
    g_autofree char *id = config_identity(path);
    g_autofree char *target = config_target_path(path);
    size_t len = 0;
    bool missing = false;
    Config *cfg;

    /* A link (into a dotfiles repository, say) is read as its target,
     * which must be a regular file like any configuration. */
    if (paths_system() && config_system_check_file(target, e) < 0)
        return NULL;
    if (fileio_read(target, CONFIG_MAX_BYTES, &data, &len, &missing, e) < 0) {
        if (missing) {
            error_set(e, TOKEND_EX_CONFIG, "no configuration file at %s", path);
            error_set_hint(e, "create it (see tokend.conf(5)) or pass -c FILE");
        } else {
            e->status = TOKEND_EX_CONFIG;
        }
        return NULL;
    }
    cfg = config_parse(data, len, path, e);
    if (cfg && paths_system() &&
        (config_system_add_dropins(cfg, data, len, e) < 0 ||
         claim_token_files(cfg->accounts, path, e) < 0))
        g_clear_pointer(&cfg, config_free);
    /* The file may hold a client secret. */
    explicit_bzero(data, len);
    /* Identity taken before the read: an edit during it changes it again. */
    if (cfg) {
        warn_if_secret_readable(cfg, path);
        cfg->id = g_steal_pointer(&id);
        cfg->file = g_steal_pointer(&target);
        for (guint i = 0; i < cfg->accounts->len; i++) {
            Account *a = g_ptr_array_index(cfg->accounts, i);
            a->config_id = cfg->id;
            a->config_file = cfg->file;
        }
    }
    if (cfg && claim_folders(cfg, e) < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

const Account *config_find(const Config *c, const char *name)
{
    for (guint i = 0; i < c->accounts->len; i++) {
        const Account *a = g_ptr_array_index(c->accounts, i);
        if (strcmp(a->name, name) == 0)
            return a;
    }
    return NULL;
}

void config_free(Config *c)
{
    if (!c)
        return;
    g_free(c->path);
    g_free(c->id);
    g_free(c->file);
    g_free(c->config_arg);
    g_free(c->relay_account);
    g_free(c->relay_peers);
    g_free(c->relay_tls_certificate);
    g_free(c->relay_tls_key);
    if (c->accounts)
        g_ptr_array_free(c->accounts, TRUE);
    g_free(c);
}
