#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "tokend/lock.h"

int lock_acquire(const char *account_dir, int timeout_ms, struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(account_dir, "lock", NULL);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int delay_us = 1000;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot open lock %s: %s", path,
                         g_strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int err = errno;
            close(fd);
            return error_set(e, TOKEND_EX_CANTCREAT, "cannot lock %s: %s", path,
                             g_strerror(err));
        }
        if (g_get_monotonic_time() >= deadline) {
            close(fd);
            error_set(e, TOKEND_EX_TEMPFAIL,
                      "another tokend has been refreshing this account for over %d s",
                      timeout_ms / 1000);
            error_set_hint(e, "try again later");
            return -1;
        }
        g_usleep(delay_us);
        delay_us = MIN(delay_us * 2, 50000);
    }
    return fd;
}

void lock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
