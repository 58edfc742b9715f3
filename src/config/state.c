#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "tokend/state.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/shared.h"

#define MAX_MARGIN (86400 * 365) /* as config.c allows */

AccountState *state_new(void)
{
    return g_new0(AccountState, 1);
}

void state_free(AccountState *st)
{
    if (!st)
        return;
    g_free(st->store);
    g_free(st->token_file);
    g_free(st->scope);
    g_free(st->last_error);
    g_free(st->config_id);
    g_free(st->identity);
    g_free(st->identity_check);
    g_free(st->bound_client_id);
    g_free(st->bound_issuer);
    g_free(st->bound_token_url);
    if (st->token_sets)
        g_ptr_array_free(st->token_sets, TRUE);
    g_free(st);
}

static gint64 get_int(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    double d;

    if (!cJSON_IsNumber(v))
        return 0;
    d = v->valuedouble;
    if (!(d >= 0 && d < 1e15))
        return 0;
    return (gint64)d;
}

/* An int field: out of range counts as absent rather than wrapping (a
 * margin that wrapped negative would pass an expired token off as fresh). */
static int get_small(const cJSON *obj, const char *name, int max)
{
    gint64 v = get_int(obj, name);

    return v <= max ? (int)v : 0;
}

static char *get_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && v->valuestring ? g_strdup(v->valuestring) : NULL;
}

static void token_set_free(gpointer p)
{
    StateTokenSet *t = p;

    g_free(t->key);
    g_free(t->scopes);
    g_free(t->granted);
    g_free(t->config_id);
    g_free(t);
}

StateTokenSet *state_token_set_find(const AccountState *st, const char *key)
{
    for (guint i = 0; st->token_sets && i < st->token_sets->len; i++) {
        StateTokenSet *t = g_ptr_array_index(st->token_sets, i);
        if (strcmp(t->key, key) == 0)
            return t;
    }
    return NULL;
}

StateTokenSet *state_token_set_get(AccountState *st, const char *key)
{
    StateTokenSet *t = state_token_set_find(st, key);

    if (t)
        return t;
    if (!st->token_sets)
        st->token_sets = g_ptr_array_new_with_free_func(token_set_free);
    t = g_new0(StateTokenSet, 1);
    t->key = g_strdup(key);
    g_ptr_array_add(st->token_sets, t);
    return t;
}

/* "token_sets": {"KEY": {"scopes": ..., "expires_at": ...}, ...} */
static void parse_token_sets(AccountState *st, const cJSON *root)
{
    const cJSON *sets = cJSON_GetObjectItemCaseSensitive(root, "token_sets");
    const cJSON *item;

    cJSON_ArrayForEach(item, sets)
    {
        StateTokenSet *t;
        if (!cJSON_IsObject(item) || !item->string || state_token_set_find(st, item->string))
            continue;
        t = state_token_set_get(st, item->string);
        t->scopes = get_str(item, "scopes");
        t->granted = get_str(item, "granted");
        t->config_id = get_str(item, "config_id");
        t->expires_at = get_int(item, "expires_at");
        t->obtained_at = get_int(item, "obtained_at");
    }
}

static void add_str(cJSON *obj, const char *name, const char *value);

static void save_token_sets(cJSON *root, const AccountState *st)
{
    cJSON *sets;

    if (!st->token_sets || st->token_sets->len == 0)
        return;
    sets = cJSON_AddObjectToObject(root, "token_sets");
    for (guint i = 0; i < st->token_sets->len; i++) {
        const StateTokenSet *t = g_ptr_array_index(st->token_sets, i);
        cJSON *o = cJSON_AddObjectToObject(sets, t->key);
        add_str(o, "scopes", t->scopes);
        add_str(o, "granted", t->granted);
        add_str(o, "config_id", t->config_id);
        cJSON_AddNumberToObject(o, "expires_at", (double)t->expires_at);
        cJSON_AddNumberToObject(o, "obtained_at", (double)t->obtained_at);
    }
}

AccountState *state_parse(const char *json, size_t len, struct tokend_error *e)
{
    g_autoptr(cJSON) root = cJSON_ParseWithLength(json, len);
    g_autoptr(AccountState) st = state_new();

    if (!cJSON_IsObject(root)) {
        error_set(e, TOKEND_EX_CANTCREAT, "state file is not a JSON object");
        return NULL;
    }
    st->expires_at = get_int(root, "expires_at");
    st->obtained_at = get_int(root, "obtained_at");
    st->signed_in_at = get_int(root, "signed_in_at");
    st->last_refresh = get_int(root, "last_refresh");
    st->last_attempt = get_int(root, "last_attempt");
    st->last_status = get_small(root, "last_status", 255);
    st->store = get_str(root, "store");
    st->token_file = get_str(root, "token_file");
    /* Only the modes tokend writes; anything else is read as private. */
    st->token_file_mode = get_int(root, "token_file_mode") == 0640 ? 0640 : 0600;
    st->scope = get_str(root, "scope");
    st->last_error = get_str(root, "last_error");
    st->needs_signin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "needs_signin"));
    st->config_id = get_str(root, "config_id");
    st->min_validity = get_small(root, "min_validity", MAX_MARGIN);
    st->refresh_margin = get_small(root, "refresh_margin", MAX_MARGIN);
    st->identity = get_str(root, "identity");
    st->identity_verified =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "identity_verified"));
    st->identity_check = get_str(root, "identity_check");
    st->bound_client_id = get_str(root, "refresh_token_client_id");
    st->bound_issuer = get_str(root, "refresh_token_issuer");
    st->bound_token_url = get_str(root, "refresh_token_url");
    st->refresh_token_expires_at = get_int(root, "refresh_expires_at");
    st->frequency_seen_at = get_int(root, "signin_frequency_seen_at");
    st->frequency_interval = get_int(root, "signin_frequency_interval");
    st->warned_for = get_int(root, "signin_warned_for");
    st->warned_at = get_int(root, "signin_warned_at");
    st->app_only = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "app_only"));
    st->cert_expires_at = get_int(root, "certificate_expires_at");
    st->next_due = get_int(root, "next_due");
    st->binding_refused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "binding_refused"));
    parse_token_sets(st, root);
    return g_steal_pointer(&st);
}

/* *torn: the file was read but does not parse. */
static AccountState *load(const char *account_dir, bool *torn, struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(account_dir, STATE_FILE, NULL);
    g_autofree char *data = NULL;
    size_t len = 0;
    bool missing = false;
    AccountState *st;

    *torn = false;
    if (fileio_read(path, STATE_MAX_BYTES, &data, &len, &missing, e) < 0) {
        if (missing) {
            error_clear(e);
            return state_new();
        }
        return NULL;
    }
    st = state_parse(data, len, e);
    *torn = !st;
    if (!st)
        error_prefix(e, "%s", path);
    return st;
}

AccountState *state_load(const char *account_dir, struct tokend_error *e)
{
    bool torn;

    return load(account_dir, &torn, e);
}

AccountState *state_load_remade(const char *account_dir, struct tokend_error *e)
{
    bool torn;
    AccountState *st = load(account_dir, &torn, e);

    if (st || !torn)
        return st;
    log_warn("%s; starting it again (the next mint writes it whole)", e->message);
    error_clear(e);
    return state_new();
}

static void add_str(cJSON *obj, const char *name, const char *value)
{
    if (value)
        cJSON_AddStringToObject(obj, name, value);
}

int state_save(const char *account_dir, const AccountState *st, struct tokend_error *e)
{
    return state_save_synced(account_dir, st, FILEIO_SYNC_DATA, e);
}

int state_save_synced(const char *account_dir, const AccountState *st, enum fileio_sync sync,
                      struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(account_dir, STATE_FILE, NULL);
    g_autoptr(cJSON) root = cJSON_CreateObject();
    g_autofree char *text = NULL;
    char *printed;

    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddNumberToObject(root, "expires_at", (double)st->expires_at);
    cJSON_AddNumberToObject(root, "obtained_at", (double)st->obtained_at);
    cJSON_AddNumberToObject(root, "signed_in_at", (double)st->signed_in_at);
    cJSON_AddNumberToObject(root, "last_refresh", (double)st->last_refresh);
    cJSON_AddNumberToObject(root, "last_attempt", (double)st->last_attempt);
    cJSON_AddNumberToObject(root, "last_status", st->last_status);
    cJSON_AddBoolToObject(root, "needs_signin", st->needs_signin);
    add_str(root, "store", st->store);
    add_str(root, "token_file", st->token_file);
    cJSON_AddNumberToObject(root, "token_file_mode", st->token_file_mode == 0640 ? 0640 : 0600);
    add_str(root, "scope", st->scope);
    add_str(root, "last_error", st->last_error);
    add_str(root, "config_id", st->config_id);
    cJSON_AddNumberToObject(root, "min_validity", st->min_validity);
    cJSON_AddNumberToObject(root, "refresh_margin", st->refresh_margin);
    add_str(root, "identity", st->identity);
    cJSON_AddBoolToObject(root, "identity_verified", st->identity_verified);
    add_str(root, "identity_check", st->identity_check);
    add_str(root, "refresh_token_client_id", st->bound_client_id);
    add_str(root, "refresh_token_issuer", st->bound_issuer);
    add_str(root, "refresh_token_url", st->bound_token_url);
    cJSON_AddNumberToObject(root, "refresh_expires_at", (double)st->refresh_token_expires_at);
    cJSON_AddNumberToObject(root, "signin_frequency_seen_at", (double)st->frequency_seen_at);
    cJSON_AddNumberToObject(root, "signin_frequency_interval", (double)st->frequency_interval);
    cJSON_AddNumberToObject(root, "signin_warned_for", (double)st->warned_for);
    cJSON_AddNumberToObject(root, "signin_warned_at", (double)st->warned_at);
    if (st->app_only) {
        cJSON_AddBoolToObject(root, "app_only", true);
        cJSON_AddNumberToObject(root, "certificate_expires_at", (double)st->cert_expires_at);
    }
    cJSON_AddNumberToObject(root, "next_due", (double)st->next_due);
    cJSON_AddBoolToObject(root, "binding_refused", st->binding_refused);
    save_token_sets(root, st);
    printed = cJSON_Print(root);
    if (!printed)
        return error_set(e, TOKEND_EX_SOFTWARE, "out of memory");
    text = g_strconcat(printed, "\n", NULL);
    cJSON_free(printed);
    return fileio_write_atomic(path, text, strlen(text), sync, e);
}

gint64 state_now(void)
{
    return g_get_real_time() / G_USEC_PER_SEC;
}

bool state_expiry_fresh(gint64 expires_at, int margin, gint64 now)
{
    return expires_at > 0 && expires_at - now > margin;
}

bool state_token_fresh(const AccountState *st, int margin, gint64 now)
{
    return state_expiry_fresh(st->expires_at, margin, now);
}

bool state_token_ready(const AccountState *st, const char *token_file, int margin, gint64 now)
{
    if (token_file && g_strcmp0(st->token_file, token_file) != 0)
        return false;
    return st->token_file && state_token_fresh(st, margin, now) &&
           access(st->token_file, F_OK) == 0;
}
