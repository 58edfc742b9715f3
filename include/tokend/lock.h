#pragma once
/* A per-account lock (flock on a file in the account's folder) around every
 * refresh, waited for with a bound. */

#include "tokend/error.h"

/* How long a refresh, a sign-in's save or a migration waits for another
 * holder of the refresh lock. */
#define LOCK_TIMEOUT_MS 60000

/* Returns an fd holding the lock, or -1 with e set (TEMPFAIL on timeout). */
int lock_acquire(const char *account_dir, int timeout_ms, struct tokend_error *e);
/* The sign-in lock (obtain.lock beside it), held for a whole obtain, so
 * that two sign-ins of one account never both get a grant: taken without
 * waiting; TEMPFAIL naming the holder's pid when another obtain has it.
 * Separate from the refresh lock, which `token` waits for with a bound and
 * must not find held for the minutes a user takes to sign in. */
int lock_obtain(const char *account_dir, struct tokend_error *e);
void lock_release(int fd);
