#pragma once
/* notify_cmd: tell the user that a sign-in is needed (a desktop
 * notification, a mail).  The command gets the account, the reason and the
 * command to run in its environment, never a token; stdin /dev/null, and
 * its output on tokend's stderr (never on stdout: the tunnel's session). */

#include "tokend/config.h"

void notify_signin_needed(const Account *a, const char *reason);
/* The same ahead of time: a sign-in will be needed by signin_by (unix
 * seconds, also given as TOKEND_SIGNIN_BY); reason says by which rule. */
void notify_signin_soon(const Account *a, const char *reason, gint64 signin_by);
