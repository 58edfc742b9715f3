#pragma once
/* The access token file that fetchmail's passwordfile, mutt and friends read:
 * the bare token and one "\n", 0600, replaced atomically, never empty. */

#include <stdbool.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

/* A token is written only if it is valid (tokenrule.h). */
int tokenfile_write(const char *path, const SecStr *token, struct tokend_error *e);
/* Read the token back (without the newline).  Refuses files that are not
 * ours or readable by others, and contents that are not one valid token. */
SecStr *tokenfile_read(const char *path, bool *missing, struct tokend_error *e);
