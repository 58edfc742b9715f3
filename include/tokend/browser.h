#pragma once
/* Opening the user's browser: $BROWSER URL, else xdg-open URL, through
 * spawn_detached (never a shell): stdin /dev/null, stdout to the log.  The
 * child gets no secret. */

#include <stdbool.h>

/* Returns true if a browser was started. */
bool browser_open(const char *url);
