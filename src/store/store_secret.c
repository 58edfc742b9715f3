/* The Secret Service store (gnome-keyring, KWallet, KeePassXC) through
 * libsecret.  It never prompts: a locked collection is reported as locked,
 * and every call is cancelled after CALL_TIMEOUT_S. */

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/secretlib.h"
#include "tokend/store.h"
#include "tokend/log.h"

#define CALL_TIMEOUT_S 10

typedef struct secret_store {
    Store base;
    const struct secretlib *lib;
    SecretService *service;
} SecretStore;

static const SecretSchema schema = {
    "org.tokend.Secret",
    SECRET_SCHEMA_NONE,
    {
        {"account", SECRET_SCHEMA_ATTRIBUTE_STRING},
        {"kind", SECRET_SCHEMA_ATTRIBUTE_STRING},
        {NULL, 0},
    },
    0,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* A watchdog thread cancels the call when it outlives its bound. */
struct deadline {
    const struct secretlib *lib;
    GCancellable *cancel;
    GThread *thread;
    GMutex lock;
    GCond done_cond;
    bool done;
};

static gpointer deadline_run(gpointer data)
{
    struct deadline *d = data;
    gint64 until = g_get_monotonic_time() + CALL_TIMEOUT_S * G_USEC_PER_SEC;

    g_mutex_lock(&d->lock);
    while (!d->done && g_cond_wait_until(&d->done_cond, &d->lock, until))
        ;
    if (!d->done)
        d->lib->cancellable_cancel(d->cancel);
    g_mutex_unlock(&d->lock);
    return NULL;
}

static void deadline_start(struct deadline *d, const struct secretlib *lib)
{
    d->lib = lib;
    d->cancel = lib->cancellable_new();
    d->done = false;
    g_mutex_init(&d->lock);
    g_cond_init(&d->done_cond);
    d->thread = g_thread_new("tokend-deadline", deadline_run, d);
}

static void deadline_stop(struct deadline *d)
{
    g_mutex_lock(&d->lock);
    d->done = true;
    g_cond_signal(&d->done_cond);
    g_mutex_unlock(&d->lock);
    g_thread_join(d->thread);
    d->lib->object_unref(d->cancel);
    g_mutex_clear(&d->lock);
    g_cond_clear(&d->done_cond);
}

static int dbus_error(const struct secretlib *lib, GError *err, const char *what,
                      struct tokend_error *e)
{
    if (g_error_matches(err, lib->io_error_quark(), G_IO_ERROR_CANCELLED))
        error_set(e, TOKEND_EX_UNAVAILABLE, "the keyring did not answer within %d s while %s",
                  CALL_TIMEOUT_S, what);
    else
        error_set(e, TOKEND_EX_UNAVAILABLE, "the keyring failed while %s: %s", what,
                  err ? err->message : "unknown error");
    error_set_hint(e, "check that a Secret Service (gnome-keyring, KeePassXC) is running, "
                      "or set store = file");
    return -1;
}

static int locked_error(struct tokend_error *e)
{
    error_set(e, TOKEND_EX_UNAVAILABLE, "the keyring is locked");
    error_set_hint(e, "unlock it (log in to the desktop, or use your keyring's unlock tool) "
                      "and try again");
    return -1;
}

static GHashTable *attributes(const char *account, const char *kind)
{
    GHashTable *a = g_hash_table_new(g_str_hash, g_str_equal);

    g_hash_table_insert(a, (gpointer) "account", (gpointer)account);
    g_hash_table_insert(a, (gpointer) "kind", (gpointer)kind);
    return a;
}

/* 1 locked, 0 unlocked, -1 error (no default collection counts as error). */
static int default_collection_locked(SecretStore *s, struct tokend_error *e)
{
    struct deadline d;
    g_autoptr(GError) err = NULL;
    SecretCollection *c;
    int locked;

    deadline_start(&d, s->lib);
    c = s->lib->collection_for_alias_sync(s->service, SECRET_COLLECTION_DEFAULT,
                                          SECRET_COLLECTION_NONE, d.cancel, &err);
    deadline_stop(&d);
    if (err)
        return dbus_error(s->lib, err, "looking for the default collection", e);
    if (!c)
        return error_set(e, TOKEND_EX_UNAVAILABLE, "the keyring has no default collection");
    locked = s->lib->collection_get_locked(c) ? 1 : 0;
    s->lib->object_unref(c);
    return locked;
}

static int secret_get_locked(Store *base, const char *account, const char *kind, SecStr **out,
                             struct tokend_error *e)
{
    SecretStore *s = (SecretStore *)base;
    g_autoptr(GHashTable) attrs = attributes(account, kind);
    g_autoptr(GError) err = NULL;
    struct deadline d;
    GList *items;
    SecretValue *value;
    const char *data;
    gsize len = 0;
    int r = 0;

    deadline_start(&d, s->lib);
    /* No SECRET_SEARCH_UNLOCK: we never prompt.  Locked items are found
     * too, so a locked keyring is told apart from an empty one. */
    items = s->lib->service_search_sync(
        s->service, &schema, attrs, SECRET_SEARCH_ALL | SECRET_SEARCH_LOAD_SECRETS, d.cancel, &err);
    deadline_stop(&d);
    if (err)
        return dbus_error(s->lib, err, "reading the refresh token", e);
    if (!items) {
        /* A collection that was locked when the daemon loaded it shows only
         * hashed attributes: nothing matches, yet the token may be there. */
        int locked = default_collection_locked(s, e);
        if (locked < 0)
            return -1;
        return locked ? locked_error(e) : 0;
    }
    if (s->lib->item_get_locked(items->data)) {
        r = locked_error(e);
    } else if ((value = s->lib->item_get_secret(items->data)) != NULL) {
        data = s->lib->value_get(value, &len);
        if (len > 0)
            *out = secstr_from(data, len);
        else
            r = error_set(e, TOKEND_EX_UNAVAILABLE, "the keyring holds an empty secret");
        s->lib->value_unref(value);
    } else {
        r = error_set(e, TOKEND_EX_UNAVAILABLE, "the keyring did not hand out the secret");
    }
    g_list_free_full(items, s->lib->object_unref);
    return r;
}

static int secret_put_locked(Store *base, const char *account, const char *kind, const char *label,
                             const SecStr *v, struct tokend_error *e)
{
    SecretStore *s = (SecretStore *)base;
    g_autoptr(GHashTable) attrs = attributes(account, kind);
    g_autoptr(GError) err = NULL;
    struct deadline d;
    SecretValue *value;
    int locked = default_collection_locked(s, e);
    gboolean ok;

    if (locked < 0)
        return -1;
    if (locked)
        return locked_error(e);
    value = s->lib->value_new(v->data, (gssize)v->len, "text/plain");
    deadline_start(&d, s->lib);
    ok = s->lib->service_store_sync(s->service, &schema, attrs, SECRET_COLLECTION_DEFAULT, label,
                                    value, d.cancel, &err);
    deadline_stop(&d);
    s->lib->value_unref(value);
    if (!ok)
        return dbus_error(s->lib, err, "saving the refresh token", e);
    return 0;
}

static int secret_remove_locked(Store *base, const char *account, const char *kind,
                                struct tokend_error *e)
{
    SecretStore *s = (SecretStore *)base;
    g_autoptr(GHashTable) attrs = attributes(account, kind);
    g_autoptr(GError) err = NULL;
    struct deadline d;
    gboolean removed;

    int locked;

    deadline_start(&d, s->lib);
    removed = s->lib->service_clear_sync(s->service, &schema, attrs, d.cancel, &err);
    deadline_stop(&d);
    if (err)
        return dbus_error(s->lib, err, "removing the refresh token", e);
    if (removed)
        return 1;
    /* Nothing removed from a locked collection is not "nothing stored":
     * its items are out of reach. */
    if ((locked = default_collection_locked(s, e)) < 0)
        return -1;
    return locked ? locked_error(e) : 0;
}

/* A bulk refresh saves answers from several threads: one keyring call at a
 * time. */
G_LOCK_DEFINE_STATIC(keyring);

static int secret_get(Store *base, const char *account, const char *kind, SecStr **out,
                      struct tokend_error *e)
{
    int r;

    G_LOCK(keyring);
    r = secret_get_locked(base, account, kind, out, e);
    G_UNLOCK(keyring);
    return r;
}

static int secret_put(Store *base, const char *account, const char *kind, const char *label,
                      const SecStr *v, struct tokend_error *e)
{
    int r;

    G_LOCK(keyring);
    r = secret_put_locked(base, account, kind, label, v, e);
    G_UNLOCK(keyring);
    return r;
}

static int secret_remove(Store *base, const char *account, const char *kind, struct tokend_error *e)
{
    int r;

    G_LOCK(keyring);
    r = secret_remove_locked(base, account, kind, e);
    G_UNLOCK(keyring);
    return r;
}

static void secret_free(Store *base)
{
    SecretStore *s = (SecretStore *)base;

    if (s->service)
        s->lib->object_unref(s->service);
    g_free(s);
}

static const struct store_ops secret_ops = {
    .kind = STORE_KIND_SECRET_SERVICE,
    .get = secret_get,
    .put = secret_put,
    .remove = secret_remove,
    .free = secret_free,
};

/* A D-Bus address value: bytes other than [-0-9A-Za-z_/.\\*] as %XX (the
 * D-Bus specification, "Server Addresses"). */
static char *bus_address_of(const char *path)
{
    GString *s = g_string_new("unix:path=");

    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (g_ascii_isalnum(*p) || strchr("-_/.\\*", *p))
            g_string_append_c(s, (char)*p);
        else
            g_string_append_printf(s, "%%%02x", *p);
    }
    return g_string_free(s, FALSE);
}

static int no_session_bus(const char *bus, const char *why, struct tokend_error *e)
{
    error_set(e, TOKEND_EX_UNAVAILABLE,
              "no D-Bus session bus for the Secret Service (DBUS_SESSION_BUS_ADDRESS is not "
              "set and %s %s)",
              bus, why);
    error_set_hint(e, "from cron or without a login, keep the user's session bus (and the "
                      "keyring) running with: loginctl enable-linger; or set store = file or "
                      "store = command");
    return -1;
}

/* The session bus: DBUS_SESSION_BUS_ADDRESS, else the user's bus socket,
 * $XDG_RUNTIME_DIR/bus, or /run/user/UID/bus where XDG_RUNTIME_DIR is not
 * set (cron), taken when it is a socket of our own.  GLib is told through
 * the environment: set once, under the keyring lock, before its session
 * bus is first made (notify_cmd inherits it too). */
static int session_bus_find(struct tokend_error *e)
{
    const char *runtime = g_getenv("XDG_RUNTIME_DIR");
    g_autofree char *fallback = NULL;
    g_autofree char *bus = NULL;
    g_autofree char *address = NULL;
    struct stat sb;

    if (g_getenv("DBUS_SESSION_BUS_ADDRESS"))
        return 0;
    if (!runtime || !*runtime) {
        fallback = g_strdup_printf("/run/user/%u", (unsigned)getuid());
        runtime = fallback;
    }
    bus = g_build_filename(runtime, "bus", NULL);
    if (lstat(bus, &sb) < 0)
        return no_session_bus(bus, "does not exist", e);
    if (!S_ISSOCK(sb.st_mode))
        return no_session_bus(bus, "is not a socket", e);
    if (sb.st_uid != getuid())
        return no_session_bus(bus, "belongs to another user", e);
    address = bus_address_of(bus);
    log_debug("keyring: the session bus at %s", bus);
    g_setenv("DBUS_SESSION_BUS_ADDRESS", address, TRUE);
    return 0;
}

static Store *secret_new_locked(bool probe_only, struct tokend_error *e)
{
    const struct secretlib *lib;
    g_autoptr(GError) err = NULL;
    SecretStore *s;
    struct deadline d;
    int locked;

    if (session_bus_find(e) < 0)
        return NULL;
    lib = secretlib_load(e);
    if (!lib)
        return NULL;
    s = g_new0(SecretStore, 1);
    s->base.ops = &secret_ops;
    s->lib = lib;
    deadline_start(&d, s->lib);
    s->service = lib->service_get_sync(SECRET_SERVICE_OPEN_SESSION, d.cancel, &err);
    deadline_stop(&d);
    if (!s->service) {
        dbus_error(s->lib, err, "connecting", e);
        secret_free(&s->base);
        return NULL;
    }
    if (probe_only) {
        /* For store = auto: only an unlocked default collection will do. */
        locked = default_collection_locked(s, e);
        if (locked != 0) {
            if (locked > 0)
                locked_error(e);
            secret_free(&s->base);
            return NULL;
        }
    }
    return &s->base;
}

Store *store_secret_new(bool probe_only, struct tokend_error *e)
{
    Store *s;

    G_LOCK(keyring);
    s = secret_new_locked(probe_only, e);
    G_UNLOCK(keyring);
    return s;
}
