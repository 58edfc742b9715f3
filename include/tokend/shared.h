#pragma once
/* Not a module's interface: what several modules must agree on, defined
 * once.  Include it from .c files only (a second definition of a cleanup in
 * one file does not compile).  GLib and cJSON only: both binaries use it;
 * libcurl's part is shared_curl.h. */

#include <string.h>
#include <glib.h>
#include <cjson/cJSON.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(cJSON, cJSON_Delete)

/* A parsed document that held secrets (a token response, a key file):
 * every string wiped before it is freed.  g_autoptr(SecretJson). */
static inline void shared_json_wipe(cJSON *node)
{
    for (; node; node = node->next) {
        if (node->valuestring)
            explicit_bzero(node->valuestring, strlen(node->valuestring));
        shared_json_wipe(node->child);
    }
}

static inline void shared_json_wipe_delete(cJSON *root)
{
    shared_json_wipe(root);
    cJSON_Delete(root);
}

typedef cJSON SecretJson;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SecretJson, shared_json_wipe_delete)

/* An account's state file, in its folder (paths_account_dir). */
#define STATE_FILE "state.json"
