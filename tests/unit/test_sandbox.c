/* The relay's sandbox: a forked child enters it, does what the relay loop
 * does (pipes, poll, clocks, malloc of big and small blocks, random
 * numbers), says so on a pipe, then tries something it must not: the
 * kernel kills it with SIGSYS.  AddressSanitizer builds run without the
 * sandbox (sandbox.h): there the child is expected to survive. */

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "tokend/sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

enum forbidden {
    FORBIDDEN_OPENAT,
    FORBIDDEN_EXEC_MAPPING,
    FORBIDDEN_SOCKET,
    FORBIDDEN_FCNTL_DUP,
};

/* What the relay loop does; 0 when all of it worked. */
static int allowed_calls(int out)
{
    struct pollfd p = {.fd = out, .events = POLLOUT};
    struct timespec ts;
    char rnd[16];
    char *big = malloc(8 << 20), *small = malloc(100);
    int fl = fcntl(out, F_GETFL);

    if (!big || !small || poll(&p, 1, 1000) != 1 || clock_gettime(CLOCK_MONOTONIC, &ts) < 0 ||
        getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd) || fl < 0 ||
        fcntl(out, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    memset(big, 1, 8 << 20);
    big = realloc(big, 16 << 20);
    free(big);
    free(small);
    return write(out, "ok", 2) == 2 ? 0 : -1;
}

static void try_forbidden(enum forbidden f)
{
    switch (f) {
    case FORBIDDEN_OPENAT:
        (void)openat(AT_FDCWD, "/dev/null", O_RDONLY);
        return;
    case FORBIDDEN_EXEC_MAPPING:
        (void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return;
    case FORBIDDEN_SOCKET:
        (void)socket(AF_INET, SOCK_STREAM, 0);
        return;
    case FORBIDDEN_FCNTL_DUP:
        (void)fcntl(0, F_DUPFD, 10);
        return;
    }
}

/* The child's wait status; what it wrote before in said. */
static int run_child(enum forbidden f, const char *env, char *said, size_t said_size)
{
    int fds[2], status = 0;
    ssize_t n;
    pid_t pid;

    g_assert_cmpint(pipe(fds), ==, 0);
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        struct sandbox_policy p = {.who = "test"};
        struct tokend_error e = TOKEND_ERROR_INIT;

        close(fds[0]);
        if (env)
            setenv("TOKEND_SANDBOX", env, 1);
        if (sandbox_enter(&p, &e) < 0 || allowed_calls(fds[1]) < 0)
            _exit(2);
        try_forbidden(f);
        _exit(0); /* not reached in the sandbox */
    }
    close(fds[1]);
    n = read(fds[0], said, said_size - 1);
    said[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    return status;
}

static void assert_killed(enum forbidden f)
{
    char said[8];
    int status = run_child(f, NULL, said, sizeof(said));

    g_assert_cmpstr(said, ==, "ok");
#ifdef ASAN
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#else
    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
#endif
}

static void test_openat_killed(void)
{
    assert_killed(FORBIDDEN_OPENAT);
}

static void test_exec_mapping_killed(void)
{
    assert_killed(FORBIDDEN_EXEC_MAPPING);
}

static void test_socket_killed(void)
{
    assert_killed(FORBIDDEN_SOCKET);
}

static void test_fcntl_dup_killed(void)
{
    assert_killed(FORBIDDEN_FCNTL_DUP);
}

/* The escape hatch: nothing is filtered. */
static void test_off_allows_everything(void)
{
    char said[8];
    int status = run_child(FORBIDDEN_OPENAT, "off", said, sizeof(said));

    g_assert_cmpstr(said, ==, "ok");
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

/* The list the manual shows: no call that reaches files, processes or
 * new connections. */
static void test_list_has_no_file_or_process_calls(void)
{
    static const char *const never[] = {"open",   "openat",   "execve", "socket", "connect",
                                        "ptrace", "unlinkat", "clone",  "fork",   NULL};
    const char *const *list = sandbox_syscalls();

    for (size_t i = 0; list[i]; i++)
        for (size_t j = 0; never[j]; j++)
            g_assert_cmpstr(list[i], !=, never[j]);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/sandbox/openat-killed", test_openat_killed);
    g_test_add_func("/sandbox/exec-mapping-killed", test_exec_mapping_killed);
    g_test_add_func("/sandbox/socket-killed", test_socket_killed);
    g_test_add_func("/sandbox/fcntl-dup-killed", test_fcntl_dup_killed);
    g_test_add_func("/sandbox/off", test_off_allows_everything);
    g_test_add_func("/sandbox/list", test_list_has_no_file_or_process_calls);
    return testutil_run();
}
