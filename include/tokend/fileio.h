#pragma once
/* Small files written atomically and read with a size cap. */

#include <stddef.h>
#include <sys/types.h>
#include "tokend/error.h"
#include "tokend/secstr.h"

/* How far a replacement must be on disk before fileio_write_atomic returns. */
enum fileio_sync {
    FILEIO_SYNC_NONE,    /* caches that can be fetched again */
    FILEIO_SYNC_DATA,    /* never empty or torn after a power cut; may be the old file */
    FILEIO_SYNC_DURABLE, /* the new file survives a power cut: secrets that rotate */
};

/* Replace path with data: a temporary file in the same folder, created 0600,
 * written, synced as asked, renamed over path (and the folder synced for
 * FILEIO_SYNC_DURABLE).  A reader sees the old file or the new one, never a
 * mix.  On any failure the old file is untouched and the temporary removed. */
int fileio_write_atomic(const char *path, const void *data, size_t len, enum fileio_sync sync,
                        struct tokend_error *e);
/* The same for a file that a group may read: the temporary file gets gid
 * ((gid_t)-1: ours) and mode before its first byte is written, so that no
 * one else can read it at any moment. */
int fileio_write_atomic_shared(const char *path, const void *data, size_t len,
                               enum fileio_sync sync, gid_t gid, mode_t mode,
                               struct tokend_error *e);
/* Make room for a later fileio_write_atomic of path by this process: a
 * temporary file beside it with bytes allocated (written with zeros where
 * the file system cannot allocate) and synced.  That write then goes into
 * those blocks, so it cannot fail for lack of space while it needs no more.
 * Fails (TOKEND_EX_CANTCREAT, naming the folder) when the folder is not
 * writable or has no room.  Only while holding the lock that every writer of
 * path takes (the temporary is one of those fileio_remove_stale_temps
 * removes). */
int fileio_reserve(const char *path, size_t bytes, struct tokend_error *e);
/* Give back a reservation the write has not used. */
void fileio_release(const char *path);
/* Read a whole file of at most cap bytes.  Returns 0, or -1 with e set;
 * a missing file returns -1 with *missing set (if given) and e set. */
int fileio_read(const char *path, size_t cap, char **out, size_t *out_len, bool *missing,
                struct tokend_error *e);
/* The same into a wiped-on-free buffer, checking that the file is a regular
 * file of ours that only we can read. */
int fileio_read_secret(const char *path, size_t cap, SecStr **out, bool *missing,
                       struct tokend_error *e);
/* The same for a file of owner that a group may read (shared: 0040) or
 * not (0). */
int fileio_read_secret_shared(const char *path, size_t cap, uid_t owner, mode_t shared,
                              SecStr **out, bool *missing, struct tokend_error *e);
/* Check an open file: regular, owned by us, no group/other bits.  Repairs
 * loose modes with a warning when repair is true. */
int fileio_check_private(int fd, const char *path, bool repair, struct tokend_error *e);
/* Remove the temporary files that fileio_write_atomic left beside path when
 * the writer was killed before its rename.  Only while holding the lock that
 * every writer of path takes. */
void fileio_remove_stale_temps(const char *path);
/* The same for several files of one folder (names: NULL-terminated), in one
 * pass over the folder. */
void fileio_remove_stale_temps_in(const char *dir, const char *const *names);
/* Remove a file; a missing one is fine.  Returns 1 if removed, 0 if absent. */
int fileio_remove(const char *path, struct tokend_error *e);
