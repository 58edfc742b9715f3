#pragma once
/* What tokend accepts as a token (access, refresh, device code) from a
 * server, and so what it ever stores or writes: the protocol's rule, which
 * the token file's reader applies again. */

#include <stdbool.h>
#include <stddef.h>

/* fetchmail reads at most 10000 bytes of a passwordfile, where every
 * access token may end up. */
#define TOKENRULE_MAX_BYTES 9000

/* Non-empty, at most TOKENRULE_MAX_BYTES, printable ASCII without spaces
 * (no CR, no LF). */
bool tokenrule_valid(const char *token, size_t len);
