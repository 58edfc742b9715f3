#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "tokend/lock.h"
#include "tokend/log.h"

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
            return error_set(e, TOKEND_EX_CANTCREAT, "cannot lock %s: %s", path, g_strerror(err));
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

/* Who holds it, for the message: the pid its holder wrote. */
static long holder_pid(int fd)
{
    char buf[24] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    guint64 pid = 0;

    if (n > 0)
        g_ascii_string_to_unsigned(g_strstrip(buf), 10, 1, G_MAXINT32, &pid, NULL);
    return (long)pid;
}

int lock_obtain(const char *account_dir, struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(account_dir, "obtain.lock", NULL);
    g_autofree char *pid = g_strdup_printf("%ld\n", (long)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    g_autofree char *who = NULL;
    long other;
    int err;

    if (fd < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot open lock %s: %s", path,
                         g_strerror(errno));
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if ((err = errno) == EINTR)
            continue;
        other = err == EWOULDBLOCK ? holder_pid(fd) : -1;
        close(fd);
        if (other < 0)
            return error_set(e, TOKEND_EX_CANTCREAT, "cannot lock %s: %s", path, g_strerror(err));
        who = other > 0 ? g_strdup_printf(" (pid %ld)", other) : g_strdup("");
        error_set(e, TOKEND_EX_TEMPFAIL, "another tokend obtain%s is signing in to this account",
                  who);
        error_set_hint(e, "finish or stop that sign-in first");
        return -1;
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, strlen(pid), 0) < 0)
        log_verbose("cannot note this process in %s: %s", path, g_strerror(errno));
    return fd;
}

void lock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}
