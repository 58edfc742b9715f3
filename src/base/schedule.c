#include <string.h>

#include "tokend/schedule.h"
#include "tokend/shared.h"
#include "tokend/fileio.h"
#include "tokend/paths.h"

#define PREFIX "due-"
#define MAX_BYTES 8192

static char *schedule_path(const char *config_path)
{
    g_autofree char *state = paths_state_dir();
    g_autofree char *hash = g_compute_checksum_for_string(G_CHECKSUM_SHA256, config_path, -1);
    g_autofree char *name = g_strdup_printf(PREFIX "%.16s.json", hash);

    return g_build_filename(state, name, NULL);
}

gint64 schedule_read(const char *config_path, const char *config_id)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autofree char *path = schedule_path(config_path);
    g_autofree char *data = NULL;
    g_autoptr(cJSON) root = NULL;
    const cJSON *id, *due;
    size_t len = 0;

    if (!config_id || fileio_read(path, MAX_BYTES, &data, &len, NULL, &e) < 0) {
        error_clear(&e);
        return -1;
    }
    root = cJSON_ParseWithLength(data, len);
    id = cJSON_GetObjectItemCaseSensitive(root, "config_id");
    due = cJSON_GetObjectItemCaseSensitive(root, "due");
    if (!cJSON_IsString(id) || strcmp(id->valuestring, config_id) != 0 || !cJSON_IsNumber(due))
        return -1;
    return (gint64)due->valuedouble;
}

int schedule_write(const char *config_path, const char *config_id, gint64 due,
                   struct tokend_error *e)
{
    g_autofree char *path = schedule_path(config_path);
    g_autofree char *state = paths_state_dir();
    g_autoptr(cJSON) root = cJSON_CreateObject();
    char *text;
    int r;

    if (!config_id || paths_ensure_private_dir(state, e) < 0)
        return -1;
    cJSON_AddStringToObject(root, "config_id", config_id);
    cJSON_AddNumberToObject(root, "due", (double)due);
    text = cJSON_PrintUnformatted(root);
    if (!text)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot write the schedule: out of memory");
    r = fileio_write_atomic(path, text, strlen(text), FILEIO_SYNC_NONE, e);
    cJSON_free(text);
    return r;
}

void schedule_forget(void)
{
    g_autofree char *state = paths_state_dir();
    g_autoptr(GDir) dir = g_dir_open(state, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir)) != NULL) {
        if (g_str_has_prefix(name, PREFIX) && g_str_has_suffix(name, ".json")) {
            g_autofree char *path = g_build_filename(state, name, NULL);
            struct tokend_error e = TOKEND_ERROR_INIT;
            fileio_remove(path, &e);
            error_clear(&e);
        }
    }
}
