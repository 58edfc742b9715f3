/* Room for the answer of a refresh, and rescue when there was none. */

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/room.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/store.h"
#include "tokend/shared.h"
#include "tokend/state.h"
#include "tokend/tokenrule.h"

#define ROOM_MIN 4096 /* one block of most file systems */
/* The most a token file may be (a token and its newline), in whole KiB. */
#define TOKEN_ROOM_MAX ((TOKENRULE_MAX_BYTES + 1 + 1023) / 1024 * 1024)

/* A new token is about as long as the one it replaces: room for twice that
 * and some, at least a block, at most what the file can hold.  (Freeing
 * what a write did not use costs time on some file systems, so not more.) */
static size_t room_for(const char *path, size_t max)
{
    struct stat st;
    size_t now = stat(path, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size : 0;

    return CLAMP(2 * now + 512, ROOM_MIN, max);
}

static void reserved_paths(const Account *a, const char *dir, char *paths[3], size_t sizes[3])
{
    paths[0] = g_build_filename(dir, STORE_REFRESH_TOKEN, NULL);
    paths[1] = g_strdup(a->token_file);
    paths[2] = g_build_filename(dir, STATE_FILE, NULL);
    sizes[0] = room_for(paths[0], STORE_SECRET_MAX_BYTES);
    sizes[1] = room_for(paths[1], TOKEN_ROOM_MAX);
    sizes[2] = room_for(paths[2], STATE_MAX_BYTES);
}

static int ensure_parent(const char *path, struct tokend_error *e)
{
    g_autofree char *parent = g_path_get_dirname(path);

    if (g_mkdir_with_parents(parent, 0700) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create folder %s: %s", parent,
                         g_strerror(errno));
    return 0;
}

static int reserve_all(const Account *a, const char *dir, struct tokend_error *e)
{
    char *paths[3];
    size_t sizes[3];
    int r = 0;

    reserved_paths(a, dir, paths, sizes);
    for (size_t i = 0; i < 3 && r == 0; i++) {
        r = ensure_parent(paths[i], e) < 0 ? -1 : fileio_reserve(paths[i], sizes[i], e);
        if (r < 0)
            while (i-- > 0)
                fileio_release(paths[i]);
    }
    for (size_t i = 0; i < 3; i++)
        g_free(paths[i]);
    return r;
}

int room_reserve(const Account *a, const char *dir, struct tokend_error *e)
{
    if (reserve_all(a, dir, e) == 0)
        return 0;
    error_prefix(e, "nothing was sent, the sign-in is kept");
    error_set_hint(e, "free space there (or make it writable), then run: tokend refresh %s",
                   a->name);
    return -1;
}

void room_release(const Account *a, const char *dir)
{
    char *paths[3];
    size_t sizes[3];

    reserved_paths(a, dir, paths, sizes);
    for (size_t i = 0; i < 3; i++) {
        fileio_release(paths[i]);
        g_free(paths[i]);
    }
}

int room_check(const Account *a, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    int r;

    if (paths_ensure_private_dir(dir, e) < 0)
        return -1;
    r = reserve_all(a, dir, e);
    room_release(a, dir);
    if (r < 0) {
        /* Said before the user signs in, not after. */
        error_prefix(e, "a sign-in could not be kept");
        error_set_hint(e, "free space there (or make it writable), then run: tokend obtain %s",
                       a->name);
    }
    return r;
}

/* Where a rescued refresh token may go, most likely to have room first:
 * the runtime folder and /dev/shm are in memory, the home folder may be on
 * another disk than the state. */
static GPtrArray *rescue_dirs(void)
{
    GPtrArray *dirs = g_ptr_array_new_with_free_func(g_free);
    const char *runtime = g_getenv("XDG_RUNTIME_DIR");

    if (runtime && g_path_is_absolute(runtime) && g_file_test(runtime, G_FILE_TEST_IS_DIR))
        g_ptr_array_add(dirs, g_build_filename(runtime, "tokend-rescue", NULL));
    if (g_file_test("/dev/shm", G_FILE_TEST_IS_DIR))
        g_ptr_array_add(dirs, g_strdup_printf("/dev/shm/tokend-rescue-%u", (unsigned)geteuid()));
    g_ptr_array_add(dirs, g_build_filename(g_get_home_dir(), ".tokend-rescue", NULL));
    return dirs;
}

static char *rescue_path(const char *dir, const Account *a)
{
    return g_build_filename(dir, a->name, NULL);
}

int room_rescue(const Account *a, const SecStr *rt, const struct tokend_error *why,
                struct tokend_error *e)
{
    g_autoptr(GPtrArray) dirs = rescue_dirs();
    const char *reason = why->message ? why->message : "unknown error";

    for (guint i = 0; i < dirs->len; i++) {
        struct tokend_error ignored = TOKEND_ERROR_INIT;
        const char *dir = g_ptr_array_index(dirs, i);
        g_autofree char *path = rescue_path(dir, a);
        int r = paths_ensure_private_dir(dir, &ignored) < 0
                    ? -1
                    : fileio_write_atomic(path, rt->data, rt->len, FILEIO_SYNC_DURABLE, &ignored);

        error_clear(&ignored);
        if (r == 0) {
            error_set(e, TOKEND_EX_CANTCREAT,
                      "the new refresh token could not be saved (%s); it is kept in %s", reason,
                      path);
            error_set_hint(e,
                           "make room, then run: tokend refresh %s (before a reboot; it "
                           "takes the token back from there)",
                           a->name);
            return -1;
        }
    }
    error_set(e, TOKEND_EX_CANTCREAT,
              "the new refresh token could not be saved anywhere (%s); the sign-in is lost",
              reason);
    error_set_hint(e, "make room, then run: tokend obtain %s", a->name);
    return -1;
}

static SecStr *find_rescued(const Account *a, char **where)
{
    g_autoptr(GPtrArray) dirs = rescue_dirs();

    for (guint i = 0; i < dirs->len; i++) {
        struct tokend_error ignored = TOKEND_ERROR_INIT;
        g_autofree char *path = rescue_path(g_ptr_array_index(dirs, i), a);
        SecStr *rt = NULL;

        if (fileio_read_secret(path, STORE_SECRET_MAX_BYTES, &rt, NULL, &ignored) == 0 &&
            rt->len > 0) {
            *where = g_steal_pointer(&path);
            return rt;
        }
        secstr_free(rt);
        error_clear(&ignored);
    }
    return NULL;
}

int room_take_back(const Account *a, AccountState *st, struct tokend_error *e)
{
    g_autofree char *where = NULL;
    g_autofree char *label = NULL;
    g_autoptr(SecStr) rt = find_rescued(a, &where);
    g_autoptr(Store) s = NULL;

    if (!rt)
        return 0;
    label = store_label(a->name, a->username);
    s = st->store ? store_open_named(st->store, e) : store_open(a->store, e);
    if (!s || store_put(s, a->name, STORE_REFRESH_TOKEN, label, rt, e) < 0) {
        error_prefix(e, "the refresh token rescued in %s is still there", where);
        error_set_hint(e, "make room, then run: tokend refresh %s", a->name);
        return -1;
    }
    if (!st->store)
        st->store = g_strdup(store_name(s));
    log_info("%s: took back the refresh token rescued in %s", a->name, where);
    room_forget_rescued(a);
    return 0;
}

bool room_has_rescued(const Account *a)
{
    g_autofree char *where = NULL;
    g_autoptr(SecStr) rt = find_rescued(a, &where);

    return rt != NULL;
}

void room_forget_rescued(const Account *a)
{
    g_autoptr(GPtrArray) dirs = rescue_dirs();

    for (guint i = 0; i < dirs->len; i++) {
        g_autofree char *path = rescue_path(g_ptr_array_index(dirs, i), a);
        (void)unlink(path);
    }
}
