/* The file store: $XDG_STATE_HOME/tokend/ACCOUNT/KIND, 0600 in 0700 folders,
 * replaced atomically. */

#include "tokend/store.h"
#include "tokend/fileio.h"
#include "tokend/paths.h"

static char *secret_path(const char *account, const char *kind, bool create, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(account);

    if (create && paths_ensure_private_dir(dir, e) < 0)
        return NULL;
    return g_build_filename(dir, kind, NULL);
}

static int file_get(Store *s, const char *account, const char *kind, SecStr **out,
                    struct tokend_error *e)
{
    g_autofree char *path = secret_path(account, kind, false, e);
    g_autoptr(SecStr) v = NULL;
    bool missing = false;

    (void)s;
    if (fileio_read_secret(path, STORE_SECRET_MAX_BYTES, &v, &missing, e) < 0) {
        if (missing) {
            error_clear(e);
            return 0;
        }
        return -1;
    }
    if (v->len == 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is empty", path);
    *out = g_steal_pointer(&v);
    return 0;
}

static int file_put(Store *s, const char *account, const char *kind, const char *label,
                    const SecStr *value, struct tokend_error *e)
{
    g_autofree char *path = secret_path(account, kind, true, e);

    (void)s;
    (void)label;
    if (!path)
        return -1;
    return fileio_write_atomic(path, value->data, value->len, FILEIO_SYNC_DURABLE, e);
}

static int file_remove(Store *s, const char *account, const char *kind, struct tokend_error *e)
{
    g_autofree char *path = secret_path(account, kind, false, e);

    (void)s;
    return fileio_remove(path, e);
}

static void file_free(Store *s)
{
    g_free(s);
}

static const struct store_ops file_ops = {
    .kind = STORE_KIND_FILE,
    .get = file_get,
    .put = file_put,
    .remove = file_remove,
    .free = file_free,
};

Store *store_file_new(struct tokend_error *e)
{
    Store *s = g_new0(Store, 1);

    (void)e;
    s->ops = &file_ops;
    return s;
}
