#pragma once
/* A unix socket server for machines without socket activation, as
 * systemd's Accept=yes would run one: each connection gets a fresh
 * process (self_argv, the connection as its stdin and stdout), at most
 * max_sessions at once; the next hear busy_line and are closed. */

#include <sys/types.h>
#include "tokend/error.h"

/* Listen at path (a stale socket there is replaced; anything else is
 * refused), mode 0660 and group gid ((gid_t)-1: ours).  Runs until SIGTERM
 * or SIGINT, then removes the socket. */
int unixlisten_run(const char *path, gid_t gid, int max_sessions, const char *busy_line,
                   char *const *self_argv, struct tokend_error *e);
