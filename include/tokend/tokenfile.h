#pragma once
/* The access token file that fetchmail's passwordfile, mutt and friends read:
 * the bare token and one "\n", 0600 (0640 for a reader group), replaced
 * atomically, never empty. */

#include <stdbool.h>
#include <sys/types.h>
#include "tokend/error.h"
#include "tokend/fileio.h"
#include "tokend/secstr.h"

/* A token is written only if it is valid (tokenrule.h). */
int tokenfile_write(const char *path, const SecStr *token, struct tokend_error *e);
/* Read the token back (without the newline).  Refuses files that are not
 * ours or readable by others, and contents that are not one valid token. */
SecStr *tokenfile_read(const char *path, bool *missing, struct tokend_error *e);
/* The same for a file a group may read (token_file_group, NULL: none):
 * given to the group with its mode before the first byte.  73 when this
 * user is not in the group (with the sysusers.d line that adds it). */
int tokenfile_write_shared(const char *path, const SecStr *token, const char *group, int mode,
                           struct tokend_error *e);
/* The same, synced as asked: a token that can be had again at once (an
 * app's, minted anew) need not wait for the disk (FILEIO_SYNC_NONE); the
 * others are FILEIO_SYNC_DATA, never empty or torn after a power cut. */
int tokenfile_write_synced(const char *path, const SecStr *token, const char *group, int mode,
                           enum fileio_sync sync, struct tokend_error *e);
/* Read a token file of owner whose mode may be up to mode (0600, 0640). */
SecStr *tokenfile_read_shared(const char *path, uid_t owner, int mode, bool *missing,
                              struct tokend_error *e);
/* The gid of a reader group, which this process must be in to give files
 * to it (73 with the sysusers.d line otherwise; 78 for no such group). */
int tokenfile_reader_gid(const char *group, gid_t *gid, struct tokend_error *e);
