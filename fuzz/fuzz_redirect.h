#pragma once
/* Shared by fuzz_pasted.c and fuzz_query.c: check parsed redirect
 * parameters the way the sign-in does, against a few clients. */

#include "tokend/oauth.h"

void fuzz_check_redirect(const RedirectParams *p);
