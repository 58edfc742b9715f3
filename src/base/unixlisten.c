/* `tokend --system broker --listen PATH`: one process per connection on
 * a unix socket, as relay_listen.c does for the relay's TCP ports. */

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/log.h"
#include "tokend/unixlisten.h"

/* A socket file left by a listener that is gone; never another file. */
static int clear_stale(const char *path, struct tokend_error *e)
{
    struct stat st;

    if (lstat(path, &st) < 0)
        return errno == ENOENT
                   ? 0
                   : error_set(e, TOKEND_EX_CANTCREAT, "%s: %s", path, g_strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is there and is not a socket", path);
    if (unlink(path) < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot remove the old socket %s: %s", path,
                         g_strerror(errno));
    return 0;
}

/* Bound, given its group and listening under a name of its own, then
 * renamed into place: whoever finds the socket at path finds it whole. */
static int listen_at(const char *path, gid_t gid, struct tokend_error *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    g_autofree char *tmp = g_strdup_printf("%s.%d", path, (int)getpid());
    mode_t old_mask;
    int fd, rc;

    if (strlen(tmp) >= sizeof(sa.sun_path))
        return error_set(e, TOKEND_EX_USAGE, "--listen %s: the path is too long", path);
    if (clear_stale(path, e) < 0 || clear_stale(tmp, e) < 0)
        return -1;
    strcpy(sa.sun_path, tmp);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "socket: %s", g_strerror(errno));
    /* 0660 from the first moment, and our group until the chown. */
    old_mask = umask(0117);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old_mask);
    if (rc == 0 && gid != (gid_t)-1 && chown(tmp, (uid_t)-1, gid) < 0)
        rc = -1;
    if (rc < 0 || listen(fd, 64) < 0 || rename(tmp, path) < 0) {
        error_set(e, TOKEND_EX_CANTCREAT, "--listen %s: %s", path, g_strerror(errno));
        unlink(tmp);
        close(fd);
        return -1;
    }
    return fd;
}

static void start_child(int conn, char *const *self_argv, const sigset_t *old)
{
    dup2(conn, STDIN_FILENO);
    dup2(conn, STDOUT_FILENO);
    if (conn > STDOUT_FILENO && conn != STDERR_FILENO)
        close(conn);
    sigprocmask(SIG_SETMASK, old, NULL);
    execv(self_argv[0], self_argv);
    _exit(127);
}

static void accept_one(int lfd, int max_sessions, int *active, const char *busy_line,
                       char *const *self_argv, const sigset_t *old)
{
    // cppcheck-suppress nullPointer ; accept4 takes NULL for an address not wanted
    int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    pid_t pid;

    if (conn < 0)
        return;
    if (*active >= max_sessions || (pid = fork()) < 0) {
        log_warn("%d sessions running; refused one more", *active);
        (void)send(conn, busy_line, strlen(busy_line), MSG_NOSIGNAL | MSG_DONTWAIT);
    } else if (pid == 0) {
        start_child(conn, self_argv, old);
    } else {
        (*active)++;
    }
    close(conn);
}

/* Reaps the sessions that ended; false on SIGTERM or SIGINT. */
static bool on_signal(int sfd, int *active)
{
    struct signalfd_siginfo si;
    bool go_on = true;

    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            go_on = false;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        (*active)--;
    return go_on;
}

int unixlisten_run(const char *path, gid_t gid, int max_sessions, const char *busy_line,
                   char *const *self_argv, struct tokend_error *e)
{
    struct pollfd p[2];
    sigset_t mask, old;
    int active = 0, rc = 0;

    if ((p[0].fd = listen_at(path, gid, e)) < 0)
        return -1;
    p[0].events = POLLIN;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, &old);
    p[1] = (struct pollfd){.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), .events = POLLIN};
    log_info("listening on %s", path);
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            rc = error_set(e, TOKEND_EX_SOFTWARE, "poll: %s", g_strerror(errno));
            break;
        }
        if ((p[1].revents & POLLIN) && !on_signal(p[1].fd, &active))
            break;
        if (p[0].revents & POLLIN)
            accept_one(p[0].fd, max_sessions, &active, busy_line, self_argv, &old);
    }
    close(p[0].fd);
    close(p[1].fd);
    unlink(path);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
