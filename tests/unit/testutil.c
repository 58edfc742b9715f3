#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "testutil.h"

static char *home;

static void rm_rf(const char *path)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
        const char *name;

        (void)chmod(path, 0700);
        while (dir && (name = g_dir_read_name(dir))) {
            g_autofree char *child = g_build_filename(path, name, NULL);
            rm_rf(child);
        }
        if (g_rmdir(path) < 0)
            g_warning("cannot remove %s: %s", path, g_strerror(errno));
    } else if (g_unlink(path) < 0) {
        g_warning("cannot remove %s: %s", path, g_strerror(errno));
    }
}

static void set_dir(const char *var, const char *sub)
{
    g_autofree char *dir = g_build_filename(home, sub, NULL);

    g_assert_cmpint(g_mkdir_with_parents(dir, 0700), ==, 0);
    g_assert_true(g_setenv(var, dir, TRUE));
}

void testutil_init(int *argc, char ***argv)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *bus = NULL;

    g_test_init(argc, argv, NULL);
    home = g_dir_make_tmp("tokend-unit-XXXXXX", &err);
    g_assert_no_error(err);
    /* Before anything reads them: GLib caches the home folder. */
    g_assert_true(g_setenv("HOME", home, TRUE));
    set_dir("XDG_STATE_HOME", ".local/state");
    set_dir("XDG_CONFIG_HOME", ".config");
    set_dir("XDG_RUNTIME_DIR", "run");
    g_unsetenv("TOKEND_CONFIG");
    /* No keyring: a session bus that does not exist. */
    bus = g_strconcat("unix:path=", home, "/run/no-bus", NULL);
    g_assert_true(g_setenv("DBUS_SESSION_BUS_ADDRESS", bus, TRUE));
    g_assert_cmpstr(g_get_home_dir(), ==, home);
}

int testutil_run(void)
{
    int r = g_test_run();

    rm_rf(home);
    g_clear_pointer(&home, g_free);
    return r;
}

const char *testutil_home(void)
{
    return home;
}

char *testutil_mkdir(const char *name)
{
    g_autofree char *tmpl = g_strdup_printf("%s-XXXXXX", name);
    char *dir = g_build_filename(home, tmpl, NULL);

    g_assert_nonnull(g_mkdtemp_full(dir, 0700));
    return dir;
}

void testutil_write(const char *path, const char *data, gssize len, mode_t mode)
{
    g_autoptr(GError) err = NULL;

    g_assert_true(
        g_file_set_contents_full(path, data, len, G_FILE_SET_CONTENTS_CONSISTENT, (int)mode, &err));
    g_assert_no_error(err);
    /* The umask may have taken bits away. */
    g_assert_cmpint(chmod(path, mode), ==, 0);
}

char *testutil_read(const char *path, gsize *len)
{
    g_autoptr(GError) err = NULL;
    char *data = NULL;

    g_assert_true(g_file_get_contents(path, &data, len, &err));
    g_assert_no_error(err);
    return data;
}

mode_t testutil_mode(const char *path)
{
    struct stat st;

    g_assert_cmpint(lstat(path, &st), ==, 0);
    return st.st_mode & 07777;
}

static int compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *testutil_list(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;

    g_assert_nonnull(d);
    while ((name = g_dir_read_name(d)))
        g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, compare_names);
    g_ptr_array_add(names, NULL);
    return g_strjoinv(" ", (char **)names->pdata);
}
