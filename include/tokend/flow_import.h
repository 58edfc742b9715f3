#pragma once
/* Seeding an account with a refresh token another tool obtained: one
 * refresh proves it (and rotates it where the server rotates), and only
 * then is anything stored. */

#include <stdbool.h>
#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/secstr.h"

struct import_outcome {
    bool rotated;      /* the server sent a new refresh token */
    char *store;       /* where it is kept now */
    gint64 expires_in; /* the new access token's lifetime */
};

/* Refuses (TOKEND_EX_CANTCREAT) an account that already has a stored
 * refresh token unless force, and (TOKEND_EX_CONFIG) a token issued_to
 * another client than the account's (NULL: not known).  Nothing is stored
 * when the refresh fails; e then carries the refresh's error and status. */
int flow_import(const Account *a, const SecStr *refresh_token, const char *issued_to, bool force,
                struct import_outcome *out, struct tokend_error *e);
void import_outcome_clear(struct import_outcome *out);
