#pragma once
/* Opening the user's browser: $BROWSER URL, else xdg-open URL, through
 * posix_spawnp (never a shell).  The child gets no secret. */

#include <stdbool.h>

/* Returns true if a browser was started. */
bool browser_open(const char *url);
