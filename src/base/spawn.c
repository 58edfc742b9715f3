/* Starting another program: posix_spawnp with every stream chosen, nothing
 * else inherited, a poll loop with a deadline, and a stop of the process
 * group when the bound passes.  See spawn.h. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/spawn.h"

/* Without a pidfd (kernels before 5.3) the child is looked at this often. */
#define POLL_SLICE_MS 50
/* Reads of 4 KiB from one pipe before the loop looks at the others. */
#define DRAIN_READS 16

extern char **environ;

/* One run: tokend's ends of the pipes and where the child stands. */
struct run {
    const SpawnOptions *o;
    SpawnResult *r;
    pid_t pid;
    int pid_fd;
    int in_fd, out_fd, err_fd;
    size_t written;
    bool exited; /* seen exiting, not yet reaped (its pid stays ours) */
    bool too_much;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void close_pair(int p[2])
{
    close_fd(&p[0]);
    close_fd(&p[1]);
}

/* Where one of the child's streams comes from; child_end is its end of
 * the pipe.  In order 0, 1, 2: stdout taken from the log before stderr
 * is replaced. */
static void stream_action(posix_spawn_file_actions_t *fa, int target, enum spawn_io io,
                          int child_end)
{
    switch (io) {
    case SPAWN_IO_NULL:
        posix_spawn_file_actions_addopen(fa, target, "/dev/null",
                                         target == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0);
        break;
    case SPAWN_IO_PIPE:
        posix_spawn_file_actions_adddup2(fa, child_end, target);
        break;
    case SPAWN_IO_LOG:
        if (target != STDERR_FILENO)
            posix_spawn_file_actions_adddup2(fa, STDERR_FILENO, target);
        break;
    }
}

/* Default dispositions and an empty mask, whatever the calling thread
 * has blocked or ignored; a process group (or session) of its own. */
static void child_attributes(posix_spawnattr_t *attr, bool keep_group, bool new_session)
{
    sigset_t all, none;
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;

    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(attr, &all);
    posix_spawnattr_setsigmask(attr, &none);
    if (new_session) {
        flags |= POSIX_SPAWN_SETSID;
    } else if (!keep_group) {
        posix_spawnattr_setpgroup(attr, 0);
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    posix_spawnattr_setflags(attr, flags);
}

/* fds[i] is the pipe for stream i, or {-1, -1}.  Returns posix_spawnp's
 * error number. */
static int start_child(const SpawnOptions *o, int fds[3][2], bool new_session, pid_t *pid)
{
    enum spawn_io io[3] = {o->in, o->out, o->err};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc;

    posix_spawn_file_actions_init(&fa);
    for (int i = 0; i < 3; i++)
        stream_action(&fa, i, io[i], i == STDIN_FILENO ? fds[i][0] : fds[i][1]);
    /* Whatever was opened without O_CLOEXEC (by tokend or a library). */
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    posix_spawnattr_init(&attr);
    child_attributes(&attr, o->keep_group, new_session);
    rc = posix_spawnp(pid, o->argv[0], &fa, &attr, (char *const *)o->argv,
                      (char *const *)(o->env ? o->env : (const char *const *)environ));
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static int check_options(const SpawnOptions *o, bool detached, struct tokend_error *e)
{
    bool piped = o->in == SPAWN_IO_PIPE || o->out == SPAWN_IO_PIPE || o->err == SPAWN_IO_PIPE;

    if (!o->argv || !o->argv[0] || !o->argv[0][0])
        return error_set(e, TOKEND_EX_CONFIG, "%s: no program to run", o->what);
    if (o->in == SPAWN_IO_LOG || (detached && piped) || (!detached && o->timeout_ms <= 0))
        return error_set(e, TOKEND_EX_SOFTWARE, "%s: bad spawn options", o->what);
    return 0;
}

static int make_pipes(const SpawnOptions *o, int fds[3][2], struct tokend_error *e)
{
    enum spawn_io io[3] = {o->in, o->out, o->err};

    for (int i = 0; i < 3; i++)
        fds[i][0] = fds[i][1] = -1;
    for (int i = 0; i < 3; i++) {
        if (io[i] == SPAWN_IO_PIPE && pipe2(fds[i], O_CLOEXEC) < 0) {
            int saved = errno;
            for (int j = 0; j < 3; j++)
                close_pair(fds[j]);
            return error_set(e, TOKEND_EX_SOFTWARE, "cannot make pipes for %s: %s", o->what,
                             g_strerror(saved));
        }
    }
    return 0;
}

static void nonblocking(int fd)
{
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Started, with tokend's ends of the pipes in x; the child's closed. */
static int run_start(struct run *x, struct tokend_error *e)
{
    int fds[3][2], rc;

    if (make_pipes(x->o, fds, e) < 0)
        return -1;
    rc = start_child(x->o, fds, false, &x->pid);
    close_fd(&fds[0][0]);
    close_fd(&fds[1][1]);
    close_fd(&fds[2][1]);
    x->in_fd = fds[0][1];
    x->out_fd = fds[1][0];
    x->err_fd = fds[2][0];
    if (rc != 0)
        return error_set(e, TOKEND_EX_UNAVAILABLE, "%s cannot be run: %s", x->o->what,
                         g_strerror(rc));
    nonblocking(x->in_fd);
    nonblocking(x->out_fd);
    nonblocking(x->err_fd);
    x->pid_fd = (int)syscall(SYS_pidfd_open, x->pid, 0);
    if (!x->o->input || x->o->input->len == 0)
        close_fd(&x->in_fd);
    return 0;
}

static void feed_input(struct run *x)
{
    const SecStr *in = x->o->input;
    ssize_t n = write(x->in_fd, in->data + x->written, in->len - x->written);

    if (n > 0)
        x->written += (size_t)n;
    /* EPIPE: the child does not want it all; its exit status says more. */
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || x->written == in->len)
        close_fd(&x->in_fd);
}

/* Keep what fits: stdout past its cap stops the run, stderr past its cap
 * is dropped. */
static void keep(struct run *x, bool is_out, const char *buf, size_t n)
{
    SecStr *s = is_out ? x->r->out : x->r->err;
    size_t cap = is_out ? x->r->out_max : (x->o->err_max ? x->o->err_max : SPAWN_ERR_MAX);

    if (is_out && s->len + n > cap) {
        x->too_much = true;
        close_fd(&x->out_fd);
    } else if (s->len < cap) {
        secstr_append(s, buf, MIN(n, cap - s->len));
    }
}

/* Read what is there now, a bounded amount so that a child that never
 * stops writing cannot keep the loop from its deadline.  True when more
 * may be waiting. */
static bool drain(struct run *x, int *fd, bool is_out)
{
    char buf[4096];
    ssize_t n;

    for (int i = 0; i < DRAIN_READS && *fd >= 0; i++) {
        n = read(*fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return false;
        if (n <= 0) {
            close_fd(fd);
            return false;
        }
        keep(x, is_out, buf, (size_t)n);
        explicit_bzero(buf, (size_t)n);
    }
    return *fd >= 0;
}

/* Exited, without reaping it: until it is reaped its pid (and process
 * group) cannot be another's, so signalling them stays safe. */
static bool child_exited(struct run *x)
{
    siginfo_t info = {0};

    if (!x->exited && waitid(P_PID, (id_t)x->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0)
        x->exited = info.si_pid == x->pid;
    /* Reaped behind our back (SIGCHLD ignored): gone all the same. */
    else if (!x->exited && errno == ECHILD)
        x->exited = true;
    return x->exited;
}

/* Wait for one of the fds or the child, at most wait_ms. */
static void poll_once(struct run *x, int wait_ms)
{
    struct pollfd p[4];
    int *fds[4] = {&x->in_fd, &x->out_fd, &x->err_fd, &x->pid_fd};
    short events[4] = {POLLOUT, POLLIN, POLLIN, POLLIN};
    nfds_t n = 0;
    int which[4];

    for (int i = 0; i < 4; i++)
        if (*fds[i] >= 0) {
            which[n] = i;
            p[n++] = (struct pollfd){.fd = *fds[i], .events = events[i]};
        }
    if (poll(p, n, x->pid_fd >= 0 ? wait_ms : MIN(wait_ms, POLL_SLICE_MS)) <= 0)
        return;
    for (nfds_t i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        if (which[i] == 0)
            feed_input(x);
        else if (which[i] == 1)
            drain(x, &x->out_fd, true);
        else if (which[i] == 2)
            drain(x, &x->err_fd, false);
    }
}

static int ms_until(gint64 deadline)
{
    gint64 left = deadline - g_get_monotonic_time();

    return left <= 0 ? 0 : (int)MIN(left / 1000 + 1, G_MAXINT);
}

/* Until the child exits or the deadline passes; false when it did not
 * exit by then. */
static bool wait_exit(struct run *x, gint64 deadline)
{
    while (!child_exited(x) && !x->too_much && g_get_monotonic_time() < deadline)
        poll_once(x, ms_until(deadline));
    return x->exited;
}

static void signal_child(struct run *x, int sig)
{
    if (!x->o->keep_group)
        kill(-x->pid, sig);
    kill(x->pid, sig);
}

/* SIGTERM to the group, a grace, then SIGKILL to whatever is left of it
 * (the children of a shell that died on SIGTERM). */
static void run_stop(struct run *x)
{
    gint64 grace = g_get_monotonic_time() + SPAWN_KILL_GRACE_MS * 1000;

    signal_child(x, SIGTERM);
    close_fd(&x->in_fd);
    close_fd(&x->out_fd);
    close_fd(&x->err_fd);
    while (!child_exited(x) && g_get_monotonic_time() < grace)
        poll_once(x, ms_until(grace));
    signal_child(x, SIGKILL);
}

static void run_reap(struct run *x)
{
    int status = 0;
    pid_t got;

    while ((got = waitpid(x->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (got < 0) {
        /* Reaped elsewhere: its status is lost; count it as a failure. */
        x->r->end = SPAWN_END_EXITED;
        x->r->code = 255;
    } else if (WIFSIGNALED(status)) {
        x->r->end = SPAWN_END_SIGNALLED;
        x->r->code = WTERMSIG(status);
    } else {
        x->r->end = SPAWN_END_EXITED;
        x->r->code = WEXITSTATUS(status);
    }
}

/* The poll loop to the end.  What the child wrote before it exited is in
 * the pipes then, and taken; a child of its own that it left behind may
 * keep them open, so no end of file is waited for. */
static void run_loop(struct run *x, gint64 deadline)
{
    bool exited = wait_exit(x, deadline), more = exited;

    /* At least once, even when it exited at the deadline. */
    while (more && !x->too_much) {
        more = drain(x, &x->out_fd, true);
        more = drain(x, &x->err_fd, false) || more;
        more = more && g_get_monotonic_time() < deadline;
    }
    if (!exited || x->too_much)
        run_stop(x);
    run_reap(x);
    if (x->too_much)
        x->r->end = SPAWN_END_TOO_MUCH;
    else if (!exited)
        x->r->end = SPAWN_END_TIMED_OUT;
}

/* A child that closes its input early must not kill tokend: SIGPIPE is
 * blocked in this thread only (other threads may be running children),
 * and one that our write raised is taken back before it is unblocked. */
static void block_sigpipe(sigset_t *old_mask)
{
    sigset_t pipe_set;

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, old_mask);
}

static void unblock_sigpipe(const sigset_t *old_mask)
{
    sigset_t pipe_set, pending;
    struct timespec zero = {0, 0};

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (!sigismember(old_mask, SIGPIPE) && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE))
        sigtimedwait(&pipe_set, NULL, &zero);
    pthread_sigmask(SIG_SETMASK, old_mask, NULL);
}

static void result_init(const SpawnOptions *o, SpawnResult *r)
{
    *r = (SpawnResult){.what = g_strdup(o->what),
                       .timeout_ms = o->timeout_ms,
                       .out_max = o->out_max ? o->out_max : SPAWN_OUT_MAX,
                       .out = secstr_new(256),
                       .err = secstr_new(256)};
}

int spawn_run(const SpawnOptions *o, SpawnResult *r, struct tokend_error *e)
{
    struct run x = {.o = o, .r = r, .pid_fd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1};
    gint64 deadline = g_get_monotonic_time() + (gint64)o->timeout_ms * 1000;
    sigset_t old_mask;
    int rc = -1;

    result_init(o, r);
    if (check_options(o, false, e) < 0)
        return -1;
    block_sigpipe(&old_mask);
    if (run_start(&x, e) == 0) {
        run_loop(&x, deadline);
        rc = 0;
    }
    close_fd(&x.in_fd);
    close_fd(&x.out_fd);
    close_fd(&x.err_fd);
    close_fd(&x.pid_fd);
    unblock_sigpipe(&old_mask);
    return rc;
}

static gpointer reap_detached(gpointer data)
{
    pid_t pid = GPOINTER_TO_INT(data);

    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return NULL;
}

int spawn_detached(const SpawnOptions *o, struct tokend_error *e)
{
    int none[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    GThread *reaper;
    pid_t pid;
    int rc;

    if (check_options(o, true, e) < 0)
        return -1;
    rc = start_child(o, none, true, &pid);
    if (rc != 0)
        return error_set(e, TOKEND_EX_UNAVAILABLE, "%s cannot be run: %s", o->what, g_strerror(rc));
    /* No SIGCHLD disposition is changed: a thread waits for it.  Without
     * one it stays a zombie until tokend exits, which is harmless. */
    reaper = g_thread_try_new("reap", reap_detached, GINT_TO_POINTER(pid), NULL);
    if (reaper)
        g_thread_unref(reaper);
    return 0;
}

bool spawn_succeeded(const SpawnResult *r)
{
    return r->end == SPAWN_END_EXITED && r->code == 0;
}

static char *spawn_describe(const SpawnResult *r)
{
    switch (r->end) {
    case SPAWN_END_EXITED:
        return g_strdup_printf("exited with status %d", r->code);
    case SPAWN_END_SIGNALLED:
        return g_strdup_printf("was killed by signal %d (%s)", r->code, g_strsignal(r->code));
    case SPAWN_END_TIMED_OUT:
        if (r->timeout_ms % 1000 == 0)
            return g_strdup_printf("did not finish within %d seconds and was stopped",
                                   r->timeout_ms / 1000);
        return g_strdup_printf("did not finish within %d ms and was stopped", r->timeout_ms);
    case SPAWN_END_TOO_MUCH:
        return g_strdup_printf("printed more than %zu bytes and was stopped", r->out_max);
    }
    return g_strdup("ended");
}

int spawn_error(struct tokend_error *e, int status, const SpawnResult *r, const char *said)
{
    g_autofree char *how = spawn_describe(r);

    if (r->end == SPAWN_END_TIMED_OUT)
        status = TOKEND_EX_TEMPFAIL;
    return error_set(e, status, "%s %s%s%s", r->what, how, said && *said ? ": " : "",
                     said && *said ? said : "");
}

void spawn_result_clear(SpawnResult *r)
{
    g_free(r->what);
    secstr_free(r->out);
    secstr_free(r->err);
    *r = (SpawnResult)SPAWN_RESULT_INIT;
}
