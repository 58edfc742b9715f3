#pragma once
/* Not a module's interface: what several modules must agree on, defined
 * once.  Include it from .c files only (a second definition of a cleanup in
 * one file does not compile).  GLib and cJSON only: both binaries use it;
 * libcurl's part is shared_curl.h. */

#include <glib.h>
#include <cjson/cJSON.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(cJSON, cJSON_Delete)

/* An account's state file, in its folder (paths_account_dir). */
#define STATE_FILE "state.json"
