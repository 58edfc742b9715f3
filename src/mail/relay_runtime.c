/* Where the relay listens: the runtime files of `relay --listen` and the
 * socket units as the service manager sees them (tokend/relayrun.h). */

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/peercred.h"
#include "tokend/relayrun.h"
#include "tokend/shared.h"
#include "tokend/spawn.h"
#include "tokend/uri.h"

#define RUNFILE_MAX 8192
/* `systemctl show` is asked with this bound: status never hangs on it. */
#define SYSTEMCTL_TIMEOUT_MS 3000

static const char *const units[] = {"tokend-relay-smtp.socket", "tokend-relay-imap.socket",
                                    "tokend-relay-pop3.socket"};

void relay_listener_free(RelayListener *l)
{
    if (!l)
        return;
    g_free(l->protocol);
    g_free(l->address);
    g_free(l->via);
    g_free(l->state);
    g_free(l);
}

static char *runtime_dir(void)
{
    g_autofree char *base = NULL;

    if (paths_system()) {
        base = paths_runtime_dir();
        return g_build_filename(base, "relay", NULL);
    }
    if ((base = paths_user_runtime_dir()))
        return g_build_filename(base, "tokend", "relay", NULL);
    base = paths_state_dir();
    return g_build_filename(base, ".relay", NULL);
}

char *relayrun_register(const char *proto, char *const *addrs, const char *config_path,
                        struct tokend_error *e)
{
    g_autofree char *dir = runtime_dir();
    g_autofree char *path = g_strdup_printf("%s/%d.json", dir, (int)getpid());
    g_autoptr(cJSON) o = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(o, "listen");
    g_autofree char *config = g_canonicalize_filename(config_path, NULL);
    g_autofree char *text = NULL;

    cJSON_AddNumberToObject(o, "pid", getpid());
    cJSON_AddStringToObject(o, "protocol", proto);
    cJSON_AddStringToObject(o, "config", config);
    for (char *const *a = addrs; *a; a++)
        cJSON_AddItemToArray(list, cJSON_CreateString(*a));
    if (!(text = cJSON_PrintUnformatted(o)))
        return error_set(e, TOKEND_EX_SOFTWARE, "out of memory"), NULL;
    if (paths_ensure_private_dir(dir, e) < 0 ||
        fileio_write_atomic(path, text, strlen(text), FILEIO_SYNC_NONE, e) < 0)
        return error_prefix(e, "the relay's runtime file"), NULL;
    return g_steal_pointer(&path);
}

void relayrun_remove(const char *path)
{
    if (path && unlink(path) < 0 && errno != ENOENT)
        log_warn("cannot remove %s: %s", path, g_strerror(errno));
}

/* A listening socket of ours takes connections to address. */
static bool listening(const char *address)
{
    g_autofree char *host = NULL, *port_text = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *res = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;
    const char *why = NULL;
    uid_t uid = (uid_t)-1;
    int port, rc;

    if (!uri_split_host_port(address, &host, &port, &why) || port <= 0)
        return false;
    port_text = g_strdup_printf("%d", port);
    if (getaddrinfo(host, port_text, &hints, &res) != 0)
        return false;
    rc = peercred_listener_uid(res->ai_addr, &uid, &e);
    freeaddrinfo(res);
    error_clear(&e);
    return rc == 0 && uid == getuid();
}

static bool alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static void add_listener(GPtrArray *list, const char *proto, const char *address, int pid)
{
    RelayListener *l = g_new0(RelayListener, 1);
    bool up = alive(pid);

    l->protocol = g_strdup(proto);
    l->address = g_strdup(address);
    l->via = g_strdup("tokend relay --listen");
    l->pid = pid;
    l->active = up && listening(address);
    l->state = g_strdup_printf(!up         ? "process %d is gone (its runtime file is left over)"
                               : l->active ? "listening (process %d)"
                                           : "not listening (process %d)",
                               pid);
    g_ptr_array_add(list, l);
}

/* One runtime file's listeners, when it serves config_path. */
static void read_runfile(const char *path, const char *config_path, GPtrArray *list)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *text = NULL;
    g_autoptr(cJSON) o = NULL;
    const cJSON *pid, *proto, *config, *addrs, *a;

    if (fileio_read(path, RUNFILE_MAX, &text, NULL, NULL, &e) < 0) {
        log_verbose("%s", e.message);
        error_clear(&e);
        return;
    }
    o = cJSON_Parse(text);
    pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    proto = cJSON_GetObjectItemCaseSensitive(o, "protocol");
    config = cJSON_GetObjectItemCaseSensitive(o, "config");
    addrs = cJSON_GetObjectItemCaseSensitive(o, "listen");
    if (!cJSON_IsNumber(pid) || !cJSON_IsString(proto) || !cJSON_IsString(config) ||
        !cJSON_IsArray(addrs)) {
        log_verbose("%s: not a relay runtime file", path);
        return;
    }
    if (strcmp(config->valuestring, config_path) != 0)
        return;
    cJSON_ArrayForEach(a, addrs)
    {
        if (cJSON_IsString(a))
            add_listener(list, proto->valuestring, a->valuestring, pid->valueint);
    }
}

static void read_runfiles(const char *config_path, GPtrArray *list)
{
    g_autofree char *dir = runtime_dir();
    g_autofree char *config = g_canonicalize_filename(config_path, NULL);
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GDir) d = NULL;
    const char *name;

    if (paths_trust_private_dir(dir, &e) != 0) {
        if (e.message)
            log_verbose("%s", e.message);
        error_clear(&e);
        return;
    }
    if (!(d = g_dir_open(dir, 0, NULL)))
        return;
    while ((name = g_dir_read_name(d))) {
        g_autofree char *path = NULL;
        if (!g_str_has_suffix(name, ".json") || strspn(name, "0123456789") != strlen(name) - 5)
            continue;
        path = g_build_filename(dir, name, NULL);
        read_runfile(path, config, list);
    }
}

static void unit_block(GHashTable *kv, GPtrArray *list)
{
    const char *id = g_hash_table_lookup(kv, "Id");
    const char *load = g_hash_table_lookup(kv, "LoadState");
    const char *active = g_hash_table_lookup(kv, "ActiveState");
    const char *sub = g_hash_table_lookup(kv, "SubState");
    const char *listen = g_hash_table_lookup(kv, "Listen");
    RelayListener *l;

    if (!id || !load || strcmp(load, "loaded") != 0)
        return;
    l = g_new0(RelayListener, 1);
    l->via = g_strdup(id);
    l->protocol = g_str_has_prefix(id, "tokend-relay-") ? g_strndup(id + 13, strcspn(id + 13, ".@"))
                                                        : g_strdup("?");
    l->address = g_strndup(listen ? listen : "", strcspn(listen ? listen : "", " "));
    l->active = active && strcmp(active, "active") == 0;
    l->state = g_strdup_printf("%s (%s)", active ? active : "?", sub ? sub : "?");
    g_ptr_array_add(list, l);
}

void relayrun_parse_units(const char *show, GPtrArray *list)
{
    g_auto(GStrv) lines = g_strsplit(show, "\n", -1);
    g_autoptr(GHashTable) kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    for (char **l = lines;; l++) {
        const char *eq = *l ? strchr(*l, '=') : NULL;

        if (!*l || !**l) {
            unit_block(kv, list);
            g_hash_table_remove_all(kv);
            if (!*l)
                return;
            continue;
        }
        if (eq) {
            char *key = g_strndup(*l, (gsize)(eq - *l));
            /* The first Listen= only: the units have one each. */
            if (g_hash_table_contains(kv, key))
                g_free(key);
            else
                g_hash_table_insert(kv, key, g_strdup(eq + 1));
        }
    }
}

/* The service manager to ask, with the environment systemctl needs; NULL
 * when none is reachable (no systemd, or no user manager running). */
static const char *manager(char ***env)
{
    g_autofree char *rt = NULL;
    g_autofree char *socket = NULL;

    *env = NULL;
    if (paths_system())
        return g_file_test("/run/systemd/private", G_FILE_TEST_EXISTS) ? "--system" : NULL;
    if (!(rt = paths_user_runtime_dir()))
        return NULL;
    socket = g_build_filename(rt, "systemd", "private", NULL);
    if (!g_file_test(socket, G_FILE_TEST_EXISTS))
        return NULL;
    *env = g_environ_setenv(g_get_environ(), "XDG_RUNTIME_DIR", rt, TRUE);
    return "--user";
}

static void read_units(GPtrArray *list)
{
    g_auto(GStrv) env = NULL;
    const char *which = manager(&env);
    const char *argv[] = {"systemctl",  which,    "show",
                          "--no-pager", "-p",     "Id,LoadState,ActiveState,SubState,Listen",
                          units[0],     units[1], units[2],
                          NULL};
    SpawnOptions o = {.what = "systemctl show",
                      .argv = argv,
                      .env = (const char *const *)env,
                      .out = SPAWN_IO_PIPE,
                      .err = SPAWN_IO_PIPE,
                      .timeout_ms = SYSTEMCTL_TIMEOUT_MS};
    SpawnResult r = SPAWN_RESULT_INIT;
    struct tokend_error e = TOKEND_ERROR_INIT;
    int rc;

    if (!which)
        return;
    if ((rc = spawn_run(&o, &r, &e)) == 0 && !spawn_succeeded(&r))
        rc = spawn_error(&e, TOKEND_EX_UNAVAILABLE, &r, NULL);
    if (rc == 0)
        relayrun_parse_units(r.out->data, list);
    else
        log_verbose("the relay's socket units: %s", e.message);
    error_clear(&e);
    spawn_result_clear(&r);
}

GPtrArray *relayrun_listeners(const char *config_path)
{
    GPtrArray *list = g_ptr_array_new_with_free_func((GDestroyNotify)relay_listener_free);

    read_runfiles(config_path, list);
    read_units(list);
    return list;
}
