/* The command store: the user's own commands keep the refresh token (pass,
 * age, systemd-creds, a script).  Each command line is split like a shell
 * would split it and run without one, with TOKEND_ACCOUNT in its
 * environment.  The secret travels only on the command's standard input
 * (put) or output (get), never in its arguments or environment.  Every run
 * is bounded in time and in output, and killed (with its process group)
 * when it outlives the bound.
 *
 * Conventions: get exits 0 and prints the token as one line, or prints
 * nothing when nothing is stored; put reads the token (one line) on its
 * standard input; delete removes it.  Any other exit is an error. */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/store.h"
#include "tokend/log.h"

#define OUTPUT_MAX_BYTES 65536
#define STDERR_KEEP_BYTES 4096
#define POLL_SLICE_MS 50

typedef struct command_store {
    Store base;
    char *get;
    char *put;
    char *remove;
    int timeout_s;
} CommandStore;

/* One run of a command: its pipes, what it printed, how it ended. */
struct run {
    const char *key; /* store_get, store_put or store_delete: for messages */
    char *program;   /* the command's first word */
    pid_t pid;
    int in_fd, out_fd, err_fd, pid_fd;
    const SecStr *input;
    size_t written;
    SecStr *out;
    GString *err;
    bool too_much;
    bool exited;
    int status;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void run_clear(struct run *r)
{
    close_fd(&r->in_fd);
    close_fd(&r->out_fd);
    close_fd(&r->err_fd);
    close_fd(&r->pid_fd);
    g_free(r->program);
    secstr_free(r->out);
    /* A failing command may have said the token on stderr. */
    if (r->err)
        explicit_bzero(r->err->str, r->err->allocated_len);
    if (r->err)
        g_string_free(r->err, TRUE);
}

static int open_pipes(int in[2], int out[2], int err[2])
{
    in[0] = in[1] = out[0] = out[1] = err[0] = err[1] = -1;
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        return -1;
    return 0;
}

static void close_pipes(int in[2], int out[2], int err[2])
{
    int *fds[] = {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]};

    for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
        close_fd(fds[i]);
}

/* The child gets the pipes as 0, 1, 2 and nothing else (no lock file), a
 * process group of its own (so that a timeout stops its children too) and
 * default signal dispositions. */
static int spawn_child(struct run *r, char **argv, char **env, int in[2], int out[2], int err[2])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    rc = posix_spawnp(&r->pid, argv[0], &fa, &attr, argv, env);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static int run_start(struct run *r, const char *line, const char *account, struct tokend_error *e)
{
    g_auto(GStrv) argv = NULL;
    g_auto(GStrv) env = NULL;
    g_autoptr(GError) gerr = NULL;
    int in[2], out[2], err[2], rc;

    if (!g_shell_parse_argv(line, NULL, &argv, &gerr))
        return error_set(e, TOKEND_EX_CONFIG, "%s: %s", r->key, gerr->message);
    r->program = g_strdup(argv[0]);
    env = g_environ_setenv(g_get_environ(), "TOKEND_ACCOUNT", account, TRUE);
    if (open_pipes(in, out, err) < 0) {
        close_pipes(in, out, err);
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot make pipes for %s: %s", r->key,
                         g_strerror(errno));
    }
    rc = spawn_child(r, argv, env, in, out, err);
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    r->in_fd = in[1];
    r->out_fd = out[0];
    r->err_fd = err[0];
    if (rc != 0)
        return error_set(e, TOKEND_EX_UNAVAILABLE, "the %s command %s cannot be run: %s", r->key,
                         r->program, g_strerror(rc));
    fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
    r->pid_fd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    if (!r->input || r->input->len == 0)
        close_fd(&r->in_fd);
    return 0;
}

static void feed_input(struct run *r)
{
    ssize_t n = write(r->in_fd, r->input->data + r->written, r->input->len - r->written);

    if (n > 0)
        r->written += (size_t)n;
    /* EPIPE: the command does not want it all; its exit status says more. */
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || r->written == r->input->len)
        close_fd(&r->in_fd);
}

/* Read what is there; the output beyond its bound stops the run. */
static void drain(struct run *r, int *fd, bool is_out)
{
    char buf[4096];
    ssize_t n = -1;

    while (*fd >= 0 && (n = read(*fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno != EINTR)
                break;
            continue;
        }
        if (is_out && r->out->len + (size_t)n > OUTPUT_MAX_BYTES) {
            r->too_much = true;
            close_fd(fd);
        } else if (is_out) {
            secstr_append(r->out, buf, (size_t)n);
        } else if (r->err->len < STDERR_KEEP_BYTES) {
            g_string_append_len(r->err, buf, MIN(n, STDERR_KEEP_BYTES - (gssize)r->err->len));
        }
        explicit_bzero(buf, sizeof(buf));
    }
    if (n == 0)
        close_fd(fd);
}

static bool reaped(struct run *r)
{
    pid_t got = r->exited ? 0 : waitpid(r->pid, &r->status, WNOHANG);

    /* Gone without a status (reaped elsewhere): count it as a failure. */
    if (got < 0 && errno == ECHILD)
        r->status = W_EXITCODE(255, 0);
    if (got == r->pid || (got < 0 && errno == ECHILD))
        r->exited = true;
    return r->exited;
}

static void poll_once(struct run *r, int wait_ms)
{
    struct pollfd p[4];
    nfds_t n = 0;

    if (r->in_fd >= 0)
        p[n++] = (struct pollfd){.fd = r->in_fd, .events = POLLOUT};
    if (r->out_fd >= 0)
        p[n++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
    if (r->err_fd >= 0)
        p[n++] = (struct pollfd){.fd = r->err_fd, .events = POLLIN};
    if (r->pid_fd >= 0)
        p[n++] = (struct pollfd){.fd = r->pid_fd, .events = POLLIN};
    /* Without a pidfd, look at the child every slice. */
    if (poll(p, n, r->pid_fd >= 0 ? wait_ms : MIN(wait_ms, POLL_SLICE_MS)) <= 0)
        return;
    if (r->in_fd >= 0 && p[0].revents)
        feed_input(r);
    drain(r, &r->out_fd, true);
    drain(r, &r->err_fd, false);
}

/* Until the command exits (what it wrote before is in the pipes then), its
 * bound passes, or it prints too much.  Returns false when it was stopped. */
static bool run_wait(struct run *r, int timeout_s)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    gint64 left;

    while (!reaped(r) && !r->too_much && (left = deadline - g_get_monotonic_time()) > 0)
        poll_once(r, (int)MIN(left / 1000 + 1, G_MAXINT));
    if (r->exited) {
        drain(r, &r->out_fd, true);
        drain(r, &r->err_fd, false);
        return !r->too_much;
    }
    kill(-r->pid, SIGKILL);
    kill(r->pid, SIGKILL);
    while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
        ;
    r->exited = true;
    return false;
}

/* Whether line holds the secret (a token line without its newline). */
static bool holds(const char *line, const SecStr *secret)
{
    size_t len = secret ? strcspn(secret->data, "\r\n") : 0;

    return len > 0 && memmem(line, strlen(line), secret->data, len) != NULL;
}

/* The first line of what the command said on stderr, when it reads like
 * words and holds none of the secrets known here.  A get that failed may
 * still have printed the token it could not deliver: a single long word is
 * never shown. */
static char *first_stderr_line(const struct run *r)
{
    g_autofree char *line = g_strndup(r->err->str, strcspn(r->err->str, "\r\n"));

    g_strstrip(line);
    if (!strchr(line, ' ') || holds(line, r->input) || holds(line, r->out))
        return NULL;
    return error_one_line(line, 200);
}

static int run_failed(const struct run *r, struct tokend_error *e)
{
    g_autofree char *said = first_stderr_line(r);
    g_autofree char *how = NULL;

    if (r->too_much)
        how = g_strdup_printf("printed more than %d bytes and was stopped", OUTPUT_MAX_BYTES);
    else if (WIFEXITED(r->status))
        how = g_strdup_printf("exited with status %d", WEXITSTATUS(r->status));
    else
        how = g_strdup_printf("was killed by signal %d", WTERMSIG(r->status));
    error_set(e, TOKEND_EX_UNAVAILABLE, "the %s command %s %s%s%s", r->key, r->program, how,
              said ? ": " : "", said ? said : "");
    error_set_hint(e, "check %s in the configuration", r->key);
    return -1;
}

/* A command that closes its input early must not kill tokend: SIGPIPE is
 * blocked in this thread only (refresh saves from several threads), and
 * one that our write raised is taken back before it is unblocked. */
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

/* Run one command line; *out gets its standard output when wanted. */
static int command_run(const CommandStore *cs, const char *key, const char *line,
                       const char *account, const SecStr *input, SecStr **out,
                       struct tokend_error *e)
{
    struct run r = {.key = key,
                    .in_fd = -1,
                    .out_fd = -1,
                    .err_fd = -1,
                    .pid_fd = -1,
                    .input = input,
                    .out = secstr_new(256),
                    .err = g_string_new(NULL)};
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old_chld;
    sigset_t old_mask;
    bool chld_ignored;
    int rc = -1;

    block_sigpipe(&old_mask);
    /* Its exit status is wanted, even where the browser's children are not
     * (obtain ignores SIGCHLD, and runs one thread). */
    sigaction(SIGCHLD, NULL, &old_chld);
    chld_ignored = old_chld.sa_handler == SIG_IGN;
    if (chld_ignored)
        sigaction(SIGCHLD, &dfl, NULL);
    if (run_start(&r, line, account, e) < 0)
        goto out;
    if (!run_wait(&r, cs->timeout_s)) {
        if (r.too_much)
            run_failed(&r, e);
        else
            error_set(e, TOKEND_EX_TEMPFAIL,
                      "the %s command %s did not finish within %d "
                      "seconds and was stopped",
                      key, r.program, cs->timeout_s);
        goto out;
    }
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
        run_failed(&r, e);
        goto out;
    }
    if (out)
        *out = g_steal_pointer(&r.out);
    rc = 0;
out:
    if (chld_ignored)
        sigaction(SIGCHLD, &old_chld, NULL);
    unblock_sigpipe(&old_mask);
    run_clear(&r);
    return rc;
}

static int check_kind(const char *kind, struct tokend_error *e)
{
    if (strcmp(kind, STORE_REFRESH_TOKEN) == 0)
        return 0;
    return error_set(e, TOKEND_EX_SOFTWARE,
                     "the command store keeps only refresh tokens, "
                     "not %s",
                     kind);
}

/* One line of visible characters (RFC 6749 VSCHAR), the newline after it
 * taken off. */
static bool one_token_line(SecStr *v)
{
    if (v->len && v->data[v->len - 1] == '\n')
        v->data[--v->len] = '\0';
    if (v->len && v->data[v->len - 1] == '\r')
        v->data[--v->len] = '\0';
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->data[i] < 0x20 || (unsigned char)v->data[i] > 0x7e)
            return false;
    return true;
}

static int command_get(Store *s, const char *account, const char *kind, SecStr **out,
                       struct tokend_error *e)
{
    CommandStore *cs = (CommandStore *)s;
    g_autoptr(SecStr) v = NULL;

    if (check_kind(kind, e) < 0 || command_run(cs, "store_get", cs->get, account, NULL, &v, e) < 0)
        return -1;
    if (!one_token_line(v))
        return error_set(e, TOKEND_EX_DATAERR,
                         "the store_get command printed something "
                         "other than one line with the refresh token");
    if (v->len)
        *out = g_steal_pointer(&v);
    return 0;
}

static int command_put(Store *s, const char *account, const char *kind, const char *label,
                       const SecStr *value, struct tokend_error *e)
{
    CommandStore *cs = (CommandStore *)s;
    g_autoptr(SecStr) line = NULL;

    (void)label;
    if (check_kind(kind, e) < 0)
        return -1;
    line = secstr_dup(value);
    secstr_append(line, "\n", 1);
    return command_run(cs, "store_put", cs->put, account, line, NULL, e);
}

static int command_remove(Store *s, const char *account, const char *kind, struct tokend_error *e)
{
    CommandStore *cs = (CommandStore *)s;

    if (check_kind(kind, e) < 0 ||
        command_run(cs, "store_delete", cs->remove, account, NULL, NULL, e) < 0)
        return -1;
    return 1;
}

static void command_free(Store *s)
{
    CommandStore *cs = (CommandStore *)s;

    g_free(cs->get);
    g_free(cs->put);
    g_free(cs->remove);
    g_free(cs);
}

static const struct store_ops command_ops = {
    .kind = STORE_KIND_COMMAND,
    .get = command_get,
    .put = command_put,
    .remove = command_remove,
    .free = command_free,
};

Store *store_command_new(const char *get, const char *put, const char *remove, int timeout_s,
                         struct tokend_error *e)
{
    CommandStore *cs;

    if (!get || !put || !remove) {
        error_set(e, TOKEND_EX_CONFIG,
                  "the command store needs store_get, store_put and "
                  "store_delete");
        return NULL;
    }
    cs = g_new0(CommandStore, 1);
    cs->base.ops = &command_ops;
    cs->get = g_strdup(get);
    cs->put = g_strdup(put);
    cs->remove = g_strdup(remove);
    cs->timeout_s = timeout_s > 0 ? timeout_s : 30;
    return &cs->base;
}
