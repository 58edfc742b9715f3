#pragma once
/* Not a module's interface: the scoped cleanup of libcurl's URL handle,
 * defined once for the engine's modules.  Include it from .c files only. */

#include <glib.h>
#include <curl/curl.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CURLU, curl_url_cleanup)
