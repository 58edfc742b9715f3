/* What a change leaves of an account, put back when it fails halfway: the
 * stored refresh token in every store a save may write to (the chosen one,
 * the one the state names, and the fallbacks), the access token file and
 * the state, taken as raw bytes under the account's lock before the change
 * and restored (or removed, where there was nothing) after a failure.  A
 * rescue file the change left is removed too, unless one was there. */

#include <string.h>

#include "flow_internal.h"
#include "tokend/fileio.h"
#include "tokend/room.h"
#include "tokend/shared.h"
#include "tokend/state.h"
#include "tokend/store.h"

/* The chosen store, the state's, and every place of the table. */
#define UNDO_STORES (2 + STORE_KIND_COUNT)
#define FILE_MAX (64 * 1024)

struct undo_entry {
    char *store;   /* store name */
    SecStr *value; /* as stored, or NULL: nothing was */
};

struct flow_undo {
    struct undo_entry entries[UNDO_STORES];
    size_t n;
    SecStr *token; /* the access token file, or NULL */
    SecStr *state; /* state.json, or NULL */
    bool rescued;  /* a rescued refresh token was there */
};

void flow_undo_free(FlowUndo *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        g_free(u->entries[i].store);
        secstr_free(u->entries[i].value);
    }
    secstr_free(u->token);
    secstr_free(u->state);
    g_free(u);
}

/* A place that may not answer (the keyring) is asked only when it is the
 * one chosen or named, or can answer without a prompt (as logout does). */
static Store *open_store(const Account *a, const char *name, bool named, struct tokend_error *e)
{
    int kind = store_kind_from_name(name);

    if (kind >= 0 && store_kind_info(kind)->quiet_unless_known && !named)
        return store_open_quietly(kind, e);
    return store_open_account(a, name, e);
}

static int take_store(FlowUndo *u, const Account *a, const char *name, bool named,
                      struct tokend_error *e)
{
    struct tokend_error probe = TOKEND_ERROR_INIT;
    g_autoptr(Store) s = NULL;
    struct undo_entry *entry;

    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->entries[i].store, name) == 0)
            return 0;
    if (!(s = open_store(a, name, named, &probe))) {
        /* A store that cannot be opened cannot be written either. */
        error_clear(&probe);
        return 0;
    }
    entry = &u->entries[u->n];
    if (store_get(s, a->name, STORE_REFRESH_TOKEN, &entry->value, e) < 0) {
        error_prefix(e, "cannot read the %s store to keep what it holds", name);
        return -1;
    }
    entry->store = g_strdup(name);
    u->n++;
    return 0;
}

static int take_file(const char *path, SecStr **out, struct tokend_error *e)
{
    bool missing = false;

    if (fileio_read_secret(path, FILE_MAX, out, &missing, e) == 0)
        return 0;
    if (!missing)
        return -1;
    error_clear(e);
    return 0;
}

FlowUndo *flow_undo_take(const Account *a, const char *dir, const AccountState *st,
                         const char *chosen, struct tokend_error *e)
{
    g_autoptr(FlowUndo) u = g_new0(FlowUndo, 1);
    g_autofree char *state_path = g_build_filename(dir, STATE_FILE, NULL);
    const char *names[UNDO_STORES] = {chosen, st->store};
    size_t n = 2;

    /* Every place a save may fall back to (those needing the account's
     * commands only when they are the chosen one, above). */
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        if (store_kind_info(k)->is_place && !store_kind_info(k)->needs_account)
            names[n++] = store_kind_name(k);

    for (size_t i = 0; i < n; i++)
        if (names[i] && take_store(u, a, names[i], i < 2, e) < 0)
            return NULL;
    if (take_file(a->token_file, &u->token, e) < 0 || take_file(state_path, &u->state, e) < 0) {
        error_prefix(e, "cannot keep a copy of what the account holds");
        return NULL;
    }
    u->rescued = room_has_rescued(a);
    return g_steal_pointer(&u);
}

static int put_back_file(const char *path, const SecStr *value, enum fileio_sync sync,
                         struct tokend_error *e)
{
    if (value)
        return fileio_write_atomic(path, value->data, value->len, sync, e);
    return fileio_remove(path, e) < 0 ? -1 : 0;
}

static int put_back_store(const Account *a, const struct undo_entry *entry, struct tokend_error *e)
{
    g_autoptr(Store) s = store_open_account(a, entry->store, e);
    g_autofree char *label = NULL;

    if (!s)
        return -1;
    if (!entry->value)
        return store_remove(s, a->name, STORE_REFRESH_TOKEN, e) < 0 ? -1 : 0;
    label = g_strdup_printf("tokend refresh token for %s%s%s", a->name, a->username ? " " : "",
                            a->username ? a->username : "");
    return store_put(s, a->name, STORE_REFRESH_TOKEN, label, entry->value, e);
}

/* Keeps the first failure in e. */
static void note(struct tokend_error *e, int r, struct tokend_error *one)
{
    if (r < 0 && !e->status)
        error_move(e, one);
    error_clear(one);
}

int flow_undo_restore(const Account *a, const char *dir, const FlowUndo *u, bool *unrescued,
                      struct tokend_error *e)
{
    g_autofree char *state_path = g_build_filename(dir, STATE_FILE, NULL);
    struct tokend_error one = TOKEND_ERROR_INIT;

    for (size_t i = 0; i < u->n; i++)
        note(e, put_back_store(a, &u->entries[i], &one), &one);
    *unrescued = !u->rescued && room_has_rescued(a);
    if (*unrescued)
        room_forget_rescued(a);
    note(e, put_back_file(a->token_file, u->token, FILEIO_SYNC_DATA, &one), &one);
    note(e, put_back_file(state_path, u->state, FILEIO_SYNC_DATA, &one), &one);
    return e->status ? -1 : 0;
}
