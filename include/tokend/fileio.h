#pragma once
/* Small files written atomically and read with a size cap. */

#include <stddef.h>
#include <sys/types.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

/* Replace path with data: a temporary file in the same folder, created 0600,
 * written, fsynced, renamed over path, folder fsynced.  On any failure the
 * old file is untouched and the temporary removed. */
int fileio_write_atomic(const char *path, const void *data, size_t len,
                        struct tokend_error *e);
/* Read a whole file of at most cap bytes.  Returns 0, or -1 with e set;
 * a missing file returns -1 with *missing set (if given) and e set. */
int fileio_read(const char *path, size_t cap, char **out, size_t *out_len, bool *missing,
                struct tokend_error *e);
/* The same into a wiped-on-free buffer, checking that the file is a regular
 * file of ours that only we can read. */
int fileio_read_secret(const char *path, size_t cap, SecStr **out, bool *missing,
                       struct tokend_error *e);
/* Check an open file: regular, owned by us, no group/other bits.  Repairs
 * loose modes with a warning when repair is true. */
int fileio_check_private(int fd, const char *path, bool repair, struct tokend_error *e);
/* Remove a file; a missing one is fine.  Returns 1 if removed, 0 if absent. */
int fileio_remove(const char *path, struct tokend_error *e);
