#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"
#include "tokend/sysview.h"
#include "tokend/broker.h"
#include "tokend/fileio.h"
#include "tokend/paths.h"
#include "tokend/shared.h"
#include "tokend/state.h"
#include "tokend/sysuser.h"
#include "tokend/tokenfile.h"

#define VIEW_MAX_BYTES (64 * 1024)

static char *view_path(const char *name)
{
    g_autofree char *run = paths_runtime_dir();
    g_autofree char *file = g_strconcat(name, ".info", NULL);

    return g_build_filename(run, file, NULL);
}

static void add_str(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
}

int sysview_write(const Account *a, gint64 expires_at, struct tokend_error *e)
{
    g_autoptr(cJSON) o = cJSON_CreateObject();
    g_autofree char *path = view_path(a->name);
    g_autofree char *text = NULL;
    gid_t gid = (gid_t)-1;

    add_str(o, "token_file", a->token_file);
    cJSON_AddNumberToObject(o, "token_file_mode", a->token_file_mode);
    cJSON_AddNumberToObject(o, "expires_at", (double)expires_at);
    cJSON_AddNumberToObject(o, "min_validity", a->min_validity);
    add_str(o, "username", a->username);
    add_str(o, "imap_host", a->imap_host);
    cJSON_AddNumberToObject(o, "imap_port", a->imap_port);
    add_str(o, "pop_host", a->pop_host);
    cJSON_AddNumberToObject(o, "pop_port", a->pop_port);
    add_str(o, "ca_file", a->ca_file);
    add_str(o, "tunnel_mech", a->tunnel_mech);
    add_str(o, "tunnel_tls", a->tunnel_tls);
    text = cJSON_PrintUnformatted(o);
    /* The same readers as the token. */
    if (a->token_file_group && tokenfile_reader_gid(a->token_file_group, &gid, e) < 0)
        return -1;
    return fileio_write_atomic_shared(path, text, strlen(text), FILEIO_SYNC_DATA, gid,
                                      (mode_t)a->token_file_mode, e);
}

static char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? g_strdup(v->valuestring) : NULL;
}

static int get_int(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9 ? v->valueint : 0;
}

static Account *view_account(const char *name, const cJSON *o, gint64 *expires_at)
{
    Account *a = g_new0(Account, 1);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(o, "expires_at");

    a->name = g_strdup(name);
    a->token_file = get_str(o, "token_file");
    a->token_file_mode = get_int(o, "token_file_mode");
    a->min_validity = get_int(o, "min_validity");
    a->username = get_str(o, "username");
    a->imap_host = get_str(o, "imap_host");
    a->imap_port = get_int(o, "imap_port");
    a->pop_host = get_str(o, "pop_host");
    a->pop_port = get_int(o, "pop_port");
    a->ca_file = get_str(o, "ca_file");
    a->tunnel_mech = get_str(o, "tunnel_mech");
    a->tunnel_tls = get_str(o, "tunnel_tls");
    *expires_at = cJSON_IsNumber(exp) ? (gint64)exp->valuedouble : 0;
    return a;
}

static int unreadable(const char *name, const char *path, struct tokend_error *e)
{
    error_set(e, errno == EACCES ? TOKEND_EX_NOPERM : TOKEND_EX_UNAVAILABLE, "cannot read %s: %s",
              path, g_strerror(errno));
    error_set_hint(e,
                   errno == EACCES ? "set token_file_group for %s to a group of this user"
                                   : "run as root: tokend --system obtain %s",
                   name);
    return -1;
}

Account *sysview_read(const char *name, gint64 *expires_at, struct tokend_error *e)
{
    g_autofree char *path = NULL;
    g_autoptr(SecStr) text = NULL;
    g_autoptr(cJSON) o = NULL;
    uid_t owner;
    gid_t gid;

    if (!config_account_name_valid(name)) {
        error_set(e, TOKEND_EX_USAGE, "\"%s\" is not an account name", name);
        return NULL;
    }
    if (!sysuser_service_ids(&owner, &gid)) {
        error_set(e, TOKEND_EX_CONFIG, "there is no user %s", paths_system_user());
        return NULL;
    }
    path = view_path(name);
    if (fileio_read_secret_shared(path, VIEW_MAX_BYTES, owner, 0040, &text, NULL, e) < 0) {
        error_clear(e);
        unreadable(name, path, e);
        return NULL;
    }
    if (!(o = cJSON_ParseWithLength(text->data, text->len)) || !cJSON_IsObject(o)) {
        error_set(e, TOKEND_EX_DATAERR, "%s is not what tokend writes there", path);
        return NULL;
    }
    return view_account(name, o, expires_at);
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **sysview_names(void)
{
    g_autofree char *run = paths_runtime_dir();
    g_autoptr(GDir) d = g_dir_open(run, 0, NULL);
    GPtrArray *names = g_ptr_array_new();
    const char *file;

    while (d && (file = g_dir_read_name(d)) != NULL) {
        g_autofree char *name =
            g_str_has_suffix(file, ".info") ? g_strndup(file, strlen(file) - 5) : NULL;
        if (name && config_account_name_valid(name))
            g_ptr_array_add(names, g_steal_pointer(&name));
    }
    g_ptr_array_sort(names, compare_names);
    g_ptr_array_add(names, NULL);
    return (char **)g_ptr_array_free(names, FALSE);
}

void sysview_account_free(Account *a)
{
    config_account_free(a);
}

/* The view again, after the broker's refresh: its expiry and token file. */
static int reread(Account *view, gint64 *expires_at, struct tokend_error *e)
{
    Account *fresh = sysview_read(view->name, expires_at, e);

    if (!fresh)
        return -1;
    g_free(view->token_file);
    view->token_file = g_steal_pointer(&fresh->token_file);
    view->token_file_mode = fresh->token_file_mode;
    view->min_validity = fresh->min_validity;
    sysview_account_free(fresh);
    return 0;
}

SecStr *sysview_token(Account *view, gint64 *expires_at, struct tokend_error *e)
{
    uid_t owner;
    gid_t gid;

    if (!state_expiry_fresh(*expires_at, view->min_validity, state_now()) &&
        (broker_request_refresh(view->name, BROKER_TIMEOUT_MS, e) < 0 ||
         reread(view, expires_at, e) < 0))
        return NULL;
    if (!state_expiry_fresh(*expires_at, view->min_validity, state_now())) {
        error_set(e, TOKEND_EX_TEMPFAIL,
                  "the access token has expired or is about to, even after the system broker's "
                  "refresh");
        error_set_hint(e, "the next poll tries again; run as root: tokend --system status");
        return NULL;
    }
    if (!view->token_file || !sysuser_service_ids(&owner, &gid)) {
        error_set(e, TOKEND_EX_DATAERR, "the account's view names no token file");
        return NULL;
    }
    return tokenfile_read_shared(view->token_file, owner, view->token_file_mode, NULL, e);
}
