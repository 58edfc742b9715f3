#pragma once
/* What a process keeps once it only relays bytes between a mail client
 * and a server it has logged in to (`tokend tunnel`, `tokend relay`):
 * hours of parsing network bytes with no new privileges
 * (PR_SET_NO_NEW_PRIVS), no file system at all (a Landlock ruleset that
 * handles every file right and grants none, where the kernel has
 * Landlock) and a seccomp filter that allows the relay loop's system calls
 * only: any other call kills the whole process with SIGSYS
 * (SECCOMP_RET_KILL_PROCESS), which the kernel's audit log records as
 * `type=1326 ... sig=31 syscall=N`.
 *
 * The caller wipes its secrets first (the token, what the login sent):
 * the sandbox keeps the relay from opening or sending anything new, not
 * from leaking what is still in memory.
 *
 * TOKEND_SANDBOX=off in the environment skips it, with a warning (for
 * debugging a violation under strace or gdb).  AddressSanitizer builds
 * skip it too (LeakSanitizer reads /proc and uses ptrace at exit), said
 * with -v. */

#include <stdbool.h>
#include "tokend/error.h"

struct sandbox_policy {
    /* Who relays, for log lines: "tunnel", "relay". */
    const char *who;
    /* More system calls the caller's loop needs, by name (seccomp's
     * names: "accept4"), NULL-terminated; NULL for none.  A name this
     * architecture does not have is left out. */
    const char *const *extra_syscalls;
    /* Calls that fail with EACCES instead of killing the process, by name,
     * NULL-terminated; NULL for none.  For a library that tries a file and
     * does without when it cannot (iconv's converter modules). */
    const char *const *refused_syscalls;
};

/* Enter the sandbox for the rest of the process's life (every thread).
 * -1 (e filled) when it could not be entered: the caller must not relay. */
int sandbox_enter(const struct sandbox_policy *p, struct tokend_error *e);
/* The system calls the filter allows without extra_syscalls, by name,
 * NULL-terminated (for the tests and the manual). */
const char *const *sandbox_syscalls(void);
