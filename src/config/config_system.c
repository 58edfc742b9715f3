/* The system mode's configuration files: /etc/tokend/config and the
 * accounts.d/NAME.conf files beside it (sorted by name), each owned by root or the
 * service user and closed to other users, the [defaults] of the main file
 * applying to all. */

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"
#include "tokend/fileio.h"
#include "tokend/paths.h"
#include "tokend/sysuser.h"

#define DROPIN_MAX_BYTES (1024 * 1024)
#define DROPIN_SUFFIX ".conf"

static int refuse_file(const char *path, const char *why, struct tokend_error *e)
{
    error_set(e, TOKEND_EX_CONFIG, "%s %s; tokend refuses a configuration another user can change",
              path, why);
    error_set_hint(e, "run: chown root:%s %s && chmod 0640 %s", paths_system_user(), path, path);
    return -1;
}

int config_system_check_file(const char *path, struct tokend_error *e)
{
    struct stat st;
    uid_t service = 0;
    gid_t group = 0;

    if (stat(path, &st) < 0)
        return 0; /* the read says what is missing */
    if (!sysuser_service_ids(&service, &group))
        service = 0;
    if (st.st_uid != 0 && st.st_uid != service)
        return refuse_file(path, "belongs to another user", e);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return refuse_file(path, "may be written by others", e);
    if (st.st_mode & S_IRWXO)
        return refuse_file(path, "may be read by others (it can hold client secrets)", e);
    return 0;
}

static gint compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* accounts.d/NAME.conf beside the main file, sorted; none when it is absent. */
static GPtrArray *dropin_files(const char *main_path, struct tokend_error *e)
{
    g_autofree char *parent = g_path_get_dirname(main_path);
    g_autofree char *dir = g_build_filename(parent, "accounts.d", NULL);
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, &err);
    const char *name;

    if (!d && !g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)) {
        error_set(e, TOKEND_EX_CONFIG, "cannot read %s: %s", dir, err->message);
        return NULL;
    }
    while (d && (name = g_dir_read_name(d)) != NULL)
        if (g_str_has_suffix(name, DROPIN_SUFFIX) && name[0] != '.')
            g_ptr_array_add(files, g_build_filename(dir, name, NULL));
    g_ptr_array_sort(files, compare_paths);
    return g_steal_pointer(&files);
}

/* The main file's [defaults] into kf, as if written there. */
static void copy_defaults(GKeyFile *from, GKeyFile *kf)
{
    g_auto(GStrv) keys = g_key_file_get_keys(from, DEFAULTS_GROUP, NULL, NULL);

    for (char **k = keys; k && *k; k++) {
        g_autofree char *v = g_key_file_get_value(from, DEFAULTS_GROUP, *k, NULL);
        if (v)
            g_key_file_set_value(kf, DEFAULTS_GROUP, *k, v);
        if (v)
            explicit_bzero(v, strlen(v));
    }
}

static int add_dropin(Config *cfg, GKeyFile *main_kf, const char *path, struct tokend_error *e)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *data = NULL;
    g_autofree char *base_dir = g_path_get_dirname(path);
    struct parse_ctx c = {.kf = kf, .path = path, .group = DEFAULTS_GROUP, .e = e};
    size_t len = 0;
    int rc = -1;

    if (config_system_check_file(path, e) < 0)
        return -1;
    if (fileio_read(path, DROPIN_MAX_BYTES, &data, &len, NULL, e) < 0) {
        e->status = TOKEND_EX_CONFIG;
        return -1;
    }
    if (config_check_repeated_groups(data, len, path, e) < 0)
        goto out;
    if (!g_key_file_load_from_data(kf, data, len, G_KEY_FILE_NONE, &err)) {
        error_set(e, TOKEND_EX_CONFIG, "%s: %s", path, err->message);
        goto out;
    }
    if (g_key_file_has_group(kf, DEFAULTS_GROUP)) {
        config_key_error(&c, NULL, "belongs in the main file %s, for every account", cfg->path);
        goto out;
    }
    copy_defaults(main_kf, kf);
    rc = config_parse_groups(&c, cfg, g_key_file_has_group(kf, DEFAULTS_GROUP), base_dir);
out:
    explicit_bzero(data, len);
    return rc;
}

int config_system_add_dropins(Config *cfg, const char *data, size_t len, struct tokend_error *e)
{
    g_autoptr(GKeyFile) main_kf = g_key_file_new();
    g_autoptr(GPtrArray) files = dropin_files(cfg->path, e);

    if (!files)
        return -1;
    /* Already parsed once: it loads. */
    (void)g_key_file_load_from_data(main_kf, data, len, G_KEY_FILE_NONE, NULL);
    for (guint i = 0; i < files->len; i++)
        if (add_dropin(cfg, main_kf, g_ptr_array_index(files, i), e) < 0)
            return -1;
    return 0;
}

char *config_system_identity(const char *path, char *id)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GPtrArray) files = dropin_files(path, &e);
    GString *all = g_string_new(id);

    g_free(id);
    error_clear(&e);
    for (guint i = 0; files && i < files->len; i++) {
        g_autofree char *one = config_file_identity(g_ptr_array_index(files, i));
        g_string_append_printf(all, "+%s", one ? one : "?");
    }
    return g_string_free(all, FALSE);
}
