#pragma once
/* notify_cmd: tell the user that a sign-in is needed (a desktop
 * notification, a mail).  The command gets the account, the reason and the
 * command to run in its environment, never a token. */

#include "tokend/config.h"

void notify_signin_needed(const Account *a, const char *reason);
