#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/paths.h"
#include "tokend/log.h"

/* Set once by main, before any path is asked for (like the log level). */
static bool system_mode;

void paths_set_system(bool on)
{
    system_mode = on;
}

bool paths_system(void)
{
    return system_mode;
}

/* $env when it is an absolute path, else the fallback. */
static char *env_dir(const char *env, const char *fallback)
{
    const char *v = g_getenv(env);

    return g_strdup(v && g_path_is_absolute(v) ? v : fallback);
}

char *paths_sysconf_dir(void)
{
    return env_dir("TOKEND_SYSCONFDIR", "/etc/tokend");
}

char *paths_runtime_dir(void)
{
    return env_dir("TOKEND_RUNTIMEDIR", "/run/tokend");
}

const char *paths_system_user(void)
{
    const char *v = g_getenv("TOKEND_SYSTEM_USER");

    return v && *v ? v : "tokend";
}

static char *xdg_dir(const char *env, const char *fallback)
{
    const char *v = g_getenv(env);

    /* The XDG spec: relative paths are invalid and must be ignored. */
    if (v && g_path_is_absolute(v))
        return g_strdup(v);
    return g_build_filename(g_get_home_dir(), fallback, NULL);
}

char *paths_config_file(const char *explicit_path)
{
    g_autofree char *base = NULL;
    const char *env;

    if (explicit_path)
        return g_strdup(explicit_path);
    if (system_mode) {
        base = paths_sysconf_dir();
        return g_build_filename(base, "config", NULL);
    }
    env = g_getenv("TOKEND_CONFIG");
    if (env && *env)
        return g_strdup(env);
    base = xdg_dir("XDG_CONFIG_HOME", ".config");
    return g_build_filename(base, "tokend", "config", NULL);
}

char *paths_state_dir(void)
{
    if (system_mode)
        return env_dir("TOKEND_STATEDIR", "/var/lib/tokend");
    g_autofree char *base = xdg_dir("XDG_STATE_HOME", ".local/state");
    return g_build_filename(base, "tokend", NULL);
}

static bool own_dir(const char *path)
{
    struct stat st;

    return path && g_path_is_absolute(path) && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
           st.st_uid == getuid();
}

char *paths_user_runtime_dir(void)
{
    const char *v = g_getenv("XDG_RUNTIME_DIR");
    g_autofree char *guess = g_strdup_printf("/run/user/%u", (unsigned)getuid());

    if (own_dir(v))
        return g_strdup(v);
    if (own_dir(guess))
        return g_steal_pointer(&guess);
    return NULL;
}

char *paths_cache_dir(void)
{
    g_autofree char *base = NULL;

    if (system_mode)
        return paths_runtime_dir();
    if ((base = paths_user_runtime_dir()))
        return g_build_filename(base, "tokend", NULL);
    return paths_state_dir();
}

char *paths_account_dir(const char *account)
{
    g_autofree char *state = paths_state_dir();
    return g_build_filename(state, account, NULL);
}

char *paths_expand(const char *path, const char *base_dir)
{
    if (g_str_has_prefix(path, "~/"))
        return g_build_filename(g_get_home_dir(), path + 2, NULL);
    if (g_path_is_absolute(path) || !base_dir)
        return g_strdup(path);
    return g_build_filename(base_dir, path, NULL);
}

enum dir_verdict {
    DIR_PRIVATE,
    DIR_NOT_A_FOLDER,
    DIR_NOT_OURS,
    DIR_LOOSE, /* ours, but others may read or enter it */
};

/* The rule for a folder that keeps tokens, from its lstat. */
static enum dir_verdict judge_dir(const struct stat *st)
{
    if (!S_ISDIR(st->st_mode))
        return DIR_NOT_A_FOLDER;
    if (st->st_uid != geteuid())
        return DIR_NOT_OURS;
    return (st->st_mode & 077) != 0 ? DIR_LOOSE : DIR_PRIVATE;
}

static int check_private_dir(const char *path, struct tokend_error *e)
{
    struct stat st;
    enum dir_verdict v;

    if (lstat(path, &st) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot use folder %s: %s", path,
                         g_strerror(errno));
    v = judge_dir(&st);
    if (v == DIR_NOT_A_FOLDER)
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is not a folder", path);
    if (v == DIR_NOT_OURS)
        return error_set(e, TOKEND_EX_CANTCREAT,
                         "folder %s belongs to another user; refusing to keep tokens there", path);
    if (v == DIR_LOOSE) {
        log_warn("folder %s was accessible to others (mode %03o); setting 0700", path,
                 (unsigned)(st.st_mode & 0777));
        if (chmod(path, 0700) < 0)
            return error_set(e, TOKEND_EX_CANTCREAT, "cannot make %s private: %s", path,
                             g_strerror(errno));
    }
    return 0;
}

/* A folder that only we (or root) can change: owner root or us; writable
 * by others only with the sticky bit (/tmp), by the group only when it is
 * our own group. */
static bool safe_ancestor(const struct stat *st)
{
    bool sticky = (st->st_mode & S_ISVTX) != 0;

    if (st->st_uid != 0 && st->st_uid != geteuid())
        return false;
    if ((st->st_mode & S_IWOTH) && !sticky)
        return false;
    return !(st->st_mode & S_IWGRP) || sticky || st->st_gid == getegid();
}

int paths_check_parents(const char *path, struct tokend_error *e)
{
    g_autofree char *dir = g_path_get_dirname(path);

    for (;;) {
        struct stat st;
        char *up;

        if (stat(dir, &st) < 0)
            return error_set(e, TOKEND_EX_CANTCREAT, "cannot use folder %s: %s", dir,
                             g_strerror(errno));
        if (!S_ISDIR(st.st_mode) || !safe_ancestor(&st))
            return error_set(e, TOKEND_EX_CANTCREAT,
                             "folder %s can be changed by another user (owner %u, mode %03o); "
                             "refusing to trust what is kept under it",
                             dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
        if (strcmp(dir, "/") == 0 || strcmp(dir, ".") == 0)
            return 0;
        up = g_path_get_dirname(dir);
        g_free(dir);
        dir = up;
    }
}

int paths_trust_private_dir(const char *path, struct tokend_error *e)
{
    struct stat st;

    if (paths_check_parents(path, e) < 0)
        return -1;
    if (lstat(path, &st) < 0 && errno == ENOENT)
        return 1;
    return check_private_dir(path, e);
}

bool paths_is_private_dir(const char *path)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    struct stat st;
    bool ok = lstat(path, &st) == 0 && judge_dir(&st) == DIR_PRIVATE &&
              paths_check_parents(path, &e) == 0;

    error_clear(&e);
    return ok;
}

int paths_ensure_private_dir(const char *path, struct tokend_error *e)
{
    g_autofree char *parent = g_path_get_dirname(path);

    if (g_mkdir_with_parents(parent, 0700) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create folder %s: %s", parent,
                         g_strerror(errno));
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create folder %s: %s", path,
                         g_strerror(errno));
    if (paths_check_parents(path, e) < 0)
        return -1;
    return check_private_dir(path, e);
}
