#pragma once
/* A refresh at a server that rotates refresh tokens makes the stored one
 * worthless the moment the server answers: the new one must be saved.  So
 * the room for the answer is reserved before the request goes out, and a
 * new refresh token that still cannot be saved is rescued to a place that
 * likely has room, and taken back by the next run. */

#include "tokend/config.h"
#include "tokend/error.h"
#include "tokend/secstr.h"
#include "tokend/state.h"

/* Under the account's lock, before a refresh request: reserve room for the
 * refresh token (file store), the token file and the state.  Fails with
 * TOKEND_EX_CANTCREAT naming the folder when one is not writable or full. */
int room_reserve(const Account *a, const char *account_dir, struct tokend_error *e);
/* Give back what room_reserve reserved and the saves did not use. */
void room_release(const Account *a, const char *account_dir);
/* Before a sign-in: the folders of the token file and of the state are
 * writable and have room (TOKEND_EX_CANTCREAT otherwise). */
int room_check(const Account *a, struct tokend_error *e);
/* The new refresh token could not be stored (why): keep it in a rescue
 * file.  Always fails, with the one line that says where it is and what to
 * run, or that it is lost. */
int room_rescue(const Account *a, const SecStr *rt, const struct tokend_error *why,
                struct tokend_error *e);
/* Under the account's lock, before the stored refresh token is read: move a
 * rescued refresh token (newer than any stored one) back into the store. */
int room_take_back(const Account *a, AccountState *st, struct tokend_error *e);
/* A rescued refresh token is waiting to be taken back. */
bool room_has_rescued(const Account *a);
/* Remove rescued refresh tokens (a new one was stored, or logout). */
void room_forget_rescued(const Account *a);
