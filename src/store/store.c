#include <string.h>

#include "tokend/store.h"
#include "tokend/config.h"
#include "tokend/log.h"
#include "tokend/paths.h"

/* The one place that opens each kind of the table (store_kind.c).  quiet:
 * a place that may not answer fails without a message worth showing. */
static Store *open_kind(enum store_kind kind, bool quiet, struct tokend_error *e)
{
    struct tokend_error probe = TOKEND_ERROR_INIT;
    Store *s;

    switch (kind) {
    case STORE_KIND_FILE:
        return store_file_new(e);
    case STORE_KIND_SECRET_SERVICE:
        if (paths_system())
            break; /* no session bus: the configuration says so (78) */
        return store_secret_new(quiet, e);
    case STORE_KIND_COMMAND:
        error_set(e, TOKEND_EX_SOFTWARE, "the command store needs the account");
        return NULL;
    case STORE_KIND_AUTO:
        if (paths_system())
            return store_file_new(e);
        s = store_secret_new(true, &probe);
        if (s)
            return s;
        log_verbose("Secret Service not usable (%s); using the file store", probe.message);
        error_clear(&probe);
        return store_file_new(e);
    case STORE_KIND_COUNT:
        break;
    }
    error_set(e, kind == STORE_KIND_SECRET_SERVICE ? TOKEND_EX_CONFIG : TOKEND_EX_SOFTWARE,
              kind == STORE_KIND_SECRET_SERVICE ? "the system mode has no Secret Service"
                                                : "unknown store");
    return NULL;
}

Store *store_open(enum store_kind kind, struct tokend_error *e)
{
    return open_kind(kind, false, e);
}

Store *store_open_named(const char *name, struct tokend_error *e)
{
    int kind = store_kind_from_name(name);

    if (kind < 0 || !store_kind_info(kind)->is_place || store_kind_info(kind)->needs_account) {
        error_set(e, TOKEND_EX_CANTCREAT, "unknown store \"%s\" in the account state", name);
        return NULL;
    }
    return store_open(kind, e);
}

Store *store_open_quietly(enum store_kind kind, struct tokend_error *e)
{
    return open_kind(kind, store_kind_info(kind)->quiet_unless_known, e);
}

static Store *open_commands(const Account *a, struct tokend_error *e)
{
    Store *s = store_command_new(a->store_get, a->store_put, a->store_delete, a->store_timeout, e);

    if (!s)
        error_set_hint(e, "set them in [account %s] of the configuration", a->name);
    return s;
}

Store *store_open_account(const Account *a, const char *name, struct tokend_error *e)
{
    if (name && store_kind_from_name(name) == STORE_KIND_COMMAND)
        return open_commands(a, e);
    if (name)
        return store_open_named(name, e);
    if (a->store == STORE_KIND_COMMAND)
        return open_commands(a, e);
    return store_open(a->store, e);
}

const char *store_name(const Store *s)
{
    return store_kind_name(s->ops->kind);
}

char *store_label(const char *account, const char *username)
{
    return g_strdup_printf("tokend refresh token for %s%s%s", account, username ? " " : "",
                           username ? username : "");
}

enum store_kind store_kind(const Store *s)
{
    return s->ops->kind;
}

int store_get(Store *s, const char *account, const char *kind, SecStr **out, struct tokend_error *e)
{
    *out = NULL;
    return s->ops->get(s, account, kind, out, e);
}

int store_put(Store *s, const char *account, const char *kind, const char *label,
              const SecStr *value, struct tokend_error *e)
{
    return s->ops->put(s, account, kind, label, value, e);
}

int store_remove(Store *s, const char *account, const char *kind, struct tokend_error *e)
{
    return s->ops->remove(s, account, kind, e);
}

void store_free(Store *s)
{
    if (s)
        s->ops->free(s);
}
