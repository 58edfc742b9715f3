#pragma once
/* Kill points for crash tests.  Builds with -Dfault_injection=true die with
 * SIGKILL at the point named by $TOKEND_FAULT; other builds compile them
 * away.  FAULT_NUMBER(VAR, normal) lets such a build take a limit from $VAR
 * (to drive paths that need a slow disk or a big load); elsewhere it is the
 * normal value.
 *
 * FAULT_IO(op, path) numbers the file operations (op: "create", "reserve",
 * "write", "sync", "rename", "dirsync") of a process: in such a build the one
 * numbered $TOKEND_FAULT_IO_AT fails with $TOKEND_FAULT_IO_ERRNO (ENOSPC or
 * EIO), and "N op path" is appended to $TOKEND_FAULT_LOG.  It returns the
 * errno to fail with, or 0; elsewhere it is always 0.  With
 * $TOKEND_FAULT_NO_FALLOCATE=1, fileio_reserve acts as on a file system
 * without fallocate.
 *
 * FAULT_OPEN(name): where $TOKEND_FAULT names this point, such a build
 * opens $TOKEND_FAULT_LOG (created, appended to) and writes one line: a
 * process that must not open files (the relay's sandbox, sandbox.h) is
 * seen to be killed for it, the file never written.  Elsewhere nothing. */

int fault_io(const char *op, const char *path);
void fault_open(const char *name);

#ifdef TOKEND_FAULT_INJECTION
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#define FAULT_POINT(name)                                                                          \
    do {                                                                                           \
        const char *fault_ = getenv("TOKEND_FAULT");                                               \
        if (fault_ && strcmp(fault_, name) == 0)                                                   \
            raise(SIGKILL);                                                                        \
    } while (0)
#define FAULT_NUMBER(var, normal) (getenv(var) ? atoi(getenv(var)) : (normal))
#define FAULT_IO(op, path) fault_io(op, path)
#define FAULT_OPEN(name) fault_open(name)
#else
#define FAULT_OPEN(name) ((void)(name))
#define FAULT_IO(op, path) ((void)(op), (void)(path), 0)
#define FAULT_NUMBER(var, normal) (normal)
#define FAULT_POINT(name)                                                                          \
    do {                                                                                           \
    } while (0)
#endif
