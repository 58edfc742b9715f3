#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tokend/harden.h"

int harden_std_fds(struct tokend_error *e)
{
    int null = -1;

    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* The lowest free fd: this one when it is the first closed. */
        if (null < 0 && (null = open("/dev/null", O_RDWR | O_NOCTTY)) < 0) {
            error_set(e, TOKEND_EX_SOFTWARE, "fd %d is closed and /dev/null cannot be opened: %s",
                      fd, g_strerror(errno));
            error_set_hint(e, "run tokend with its standard input, output and error open");
            return -1;
        }
        if (null != fd && dup2(null, fd) < 0)
            return error_set(e, TOKEND_EX_SOFTWARE, "cannot open fd %d on /dev/null: %s", fd,
                             g_strerror(errno));
    }
    if (null > STDERR_FILENO)
        close(null);
    return 0;
}

/* The first hardening call that failed, for the caller's one warning. */
static int failed(struct tokend_error *e, const char *what, const char *call, int err)
{
    if (e->message)
        return -1;
    return error_set(e, TOKEND_EX_SOFTWARE, "%s (%s: %s)", what, call, g_strerror(err));
}

int harden_process(struct tokend_error *e)
{
    struct rlimit no_core = {0, 0};
    int rc = 0;

    /* Each is tried whatever the others say. */
    if (unsetenv("SSLKEYLOGFILE") < 0)
        rc = failed(e, "SSLKEYLOGFILE could not be removed: TLS keys could be written to it",
                    "unsetenv", errno);
    if (setrlimit(RLIMIT_CORE, &no_core) < 0)
        rc = failed(e, "core dumps could not be disabled: a crash could write tokens to disk",
                    "setrlimit RLIMIT_CORE", errno);
    if (prctl(PR_SET_DUMPABLE, 0) < 0)
        rc = failed(e, "core dumps could not be disabled: a crash could write tokens to disk",
                    "prctl PR_SET_DUMPABLE", errno);
    return rc;
}
