/* Moving an account's refresh token from one store to another, under the
 * account's lock.  Order: read from the old store, write to the new one,
 * read it back and compare, name the new store in the state, and only then
 * remove the old copy.  Whatever step fails, some store the state names
 * still holds the token: a crash before the state is saved leaves an extra
 * copy in the new store, one after it an extra copy in the old store. */

#include <string.h>

#include "flow_internal.h"
#include "tokend/fault.h"
#include "tokend/lock.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/state.h"
#include "tokend/store.h"

/* Write to the new store and read it back. */
static int copy_verified(const Account *a, Store *to, const SecStr *rt, struct tokend_error *e)
{
    g_autofree char *label = store_label(a->name, a->username);
    g_autoptr(SecStr) back = NULL;
    struct tokend_error ignored = TOKEND_ERROR_INIT;

    if (store_put(to, a->name, STORE_REFRESH_TOKEN, label, rt, e) < 0) {
        error_prefix(e, "cannot write to the %s store", store_name(to));
        return -1;
    }
    FAULT_POINT("migrate-after-put");
    if (store_get(to, a->name, STORE_REFRESH_TOKEN, &back, e) < 0) {
        error_prefix(e, "cannot read back from the %s store", store_name(to));
        return -1;
    }
    if (back && secstr_equal(back, rt))
        return 0;
    store_remove(to, a->name, STORE_REFRESH_TOKEN, &ignored);
    error_clear(&ignored);
    return error_set(e, TOKEND_EX_CANTCREAT, "the %s store gave back %s than was written",
                     store_name(to), back ? "something other" : "nothing, rather");
}

static int migrate_locked(const Account *a, const char *dir, AccountState *st, const char *target,
                          GString *done, struct tokend_error *e)
{
    g_autoptr(Store) from = NULL;
    g_autoptr(Store) to = NULL;
    g_autoptr(SecStr) rt = NULL;
    g_autofree char *old = NULL;
    struct tokend_error left = TOKEND_ERROR_INIT;

    if (!st->store)
        return flow_signin_needed(a, "not signed in (no refresh token stored)", e);
    if (strcmp(st->store, target) == 0) {
        g_string_append_printf(done, "the refresh token is already in the %s store", target);
        return 0;
    }
    if (!(from = store_open_account(a, st->store, e)) ||
        store_get(from, a->name, STORE_REFRESH_TOKEN, &rt, e) < 0)
        return -1;
    if (!rt)
        return flow_signin_needed(a, "no refresh token is stored", e);
    if (!(to = store_open_account(a, target, e)) || copy_verified(a, to, rt, e) < 0)
        return -1;
    old = g_steal_pointer(&st->store);
    st->store = g_strdup(target);
    if (state_save(dir, st, e) < 0)
        return -1;
    FAULT_POINT("migrate-after-state");
    g_string_append_printf(done, "moved the refresh token from the %s store to the %s store", old,
                           target);
    if (store_remove(from, a->name, STORE_REFRESH_TOKEN, &left) < 0)
        log_warn("%s: could not remove the old copy from the %s store (%s); remove it by hand",
                 a->name, old, left.message);
    error_clear(&left);
    return 0;
}

int flow_migrate(const Account *a, const char *target, GString *done, struct tokend_error *e)
{
    g_autofree char *dir = paths_account_dir(a->name);
    g_autoptr(AccountState) st = NULL;
    int trust, fd, r = -1;

    if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
        return flow_signin_needed(a, "not signed in (no refresh token stored)", e);
    if ((trust = paths_trust_private_dir(dir, e)) < 0)
        return -1;
    if (trust > 0)
        return flow_signin_needed(a, "not signed in (no refresh token stored)", e);
    if ((fd = lock_acquire(dir, LOCK_TIMEOUT_MS, e)) < 0)
        return -1;
    flow_remove_stale_temps(a, dir);
    if ((st = state_load(dir, e)))
        r = migrate_locked(a, dir, st, target, done, e);
    lock_release(fd);
    return r;
}
