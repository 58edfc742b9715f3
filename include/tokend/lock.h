#pragma once
/* A per-account lock (flock on a file in the account's folder) around every
 * refresh, waited for with a bound. */

#include "tokend/error.h"

/* Returns an fd holding the lock, or -1 with e set (TEMPFAIL on timeout). */
int lock_acquire(const char *account_dir, int timeout_ms, struct tokend_error *e);
void lock_release(int fd);
