/* spawn: how a child ended, its bounds, its streams, and what it does not
 * inherit (fds, signal mask and dispositions). */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokend/spawn.h"
#include "testutil.h"

typedef SpawnResult SpawnResultAuto;
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SpawnResultAuto, spawn_result_clear)

#define SECONDS 1000
/* stdout and stderr read into the result */
#define PIPED .out = SPAWN_IO_PIPE, .err = SPAWN_IO_PIPE

/* Runs argv; asserts it could start. */
static void run(const char *const *argv, SpawnOptions *o, SpawnResult *r)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    o->what = o->what ? o->what : "the test command";
    o->argv = argv;
    o->timeout_ms = o->timeout_ms ? o->timeout_ms : 10 * SECONDS;
    g_assert_cmpint(spawn_run(o, r, &e), ==, 0);
}

static bool alive(pid_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
    g_autofree char *stat = NULL;
    const char *end;

    if (!g_file_get_contents(path, &stat, NULL, NULL))
        return false;
    end = strrchr(stat, ')');
    return end && end[2] != 'Z';
}

static const struct {
    const char *script;
    enum spawn_end end;
    int code;
    const char *message;
} end_cases[] = {
    {"exit 0", SPAWN_END_EXITED, 0, "the test command exited with status 0"},
    {"exit 3", SPAWN_END_EXITED, 3, "the test command exited with status 3"},
    {"kill -USR1 $$", SPAWN_END_SIGNALLED, SIGUSR1, "the test command was killed by signal 10"},
    {"kill -KILL $$", SPAWN_END_SIGNALLED, SIGKILL, "the test command was killed by signal 9"},
};

static void test_how_it_ended(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(end_cases); i++) {
        const char *argv[] = {"sh", "-c", end_cases[i].script, NULL};
        g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        SpawnOptions o = {PIPED};

        g_test_message("case %zu: %s", i, end_cases[i].script);
        run(argv, &o, &r);
        g_assert_cmpint(r.end, ==, end_cases[i].end);
        g_assert_cmpint(r.code, ==, end_cases[i].code);
        g_assert_true(spawn_succeeded(&r) == (i == 0));
        g_assert_cmpint(spawn_error(&e, TOKEND_EX_UNAVAILABLE, &r, NULL), ==, -1);
        g_assert_cmpint(e.status, ==, TOKEND_EX_UNAVAILABLE);
        testutil_assert_contains(e.message, end_cases[i].message);
    }
}

static void test_missing_program(void)
{
    const char *argv[] = {"no-such-program-of-tokend", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    SpawnOptions o = {.what = "the store_get command no-such-program-of-tokend",
                      .argv = argv,
                      .timeout_ms = SECONDS};

    g_assert_cmpint(spawn_run(&o, &r, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_UNAVAILABLE);
    g_assert_cmpstr(e.message, ==,
                    "the store_get command no-such-program-of-tokend cannot be run: "
                    "No such file or directory");
}

/* A shell that leaves a child behind: both stopped, the run bounded. */
static void test_timeout_stops_the_group(void)
{
    const char *argv[] = {"sh", "-c", "sleep 30 & echo $!; wait", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    SpawnOptions o = {PIPED, .timeout_ms = 300};
    gint64 start = g_get_monotonic_time();
    pid_t sleeper;

    run(argv, &o, &r);
    g_assert_cmpint(r.end, ==, SPAWN_END_TIMED_OUT);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 3 * G_USEC_PER_SEC);
    sleeper = atoi(r.out->data);
    g_assert_cmpint(sleeper, >, 1);
    for (int i = 0; i < 100 && alive(sleeper); i++)
        g_usleep(10000);
    g_assert_false(alive(sleeper));
    spawn_error(&e, TOKEND_EX_UNAVAILABLE, &r, NULL);
    g_assert_cmpint(e.status, ==, TOKEND_EX_TEMPFAIL);
    g_assert_cmpstr(e.message, ==, "the test command did not finish within 300 ms and was stopped");
}

/* SIGTERM ignored: SIGKILL after the grace. */
static void test_timeout_kills_what_ignores_sigterm(void)
{
    const char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    SpawnOptions o = {PIPED, .timeout_ms = 2 * SECONDS};
    gint64 start = g_get_monotonic_time();

    run(argv, &o, &r);
    g_assert_cmpint(r.end, ==, SPAWN_END_TIMED_OUT);
    g_assert_cmpstr(r.out->data, ==, "ready\n");
    g_assert_cmpint(g_get_monotonic_time() - start, >=,
                    (2 * SECONDS + SPAWN_KILL_GRACE_MS) * 1000 - 50000);
    g_assert_cmpint(g_get_monotonic_time() - start, <, 6 * G_USEC_PER_SEC);
}

/* More than a pipe holds, in and out at once, with stderr written beside
 * it: none of the three pipes may wait for another. */
static void test_large_input_and_output_together(void)
{
    const char *argv[] = {"tee", "/dev/stderr", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_autoptr(SecStr) in = secstr_new(0);
    SpawnOptions o = {PIPED, .in = SPAWN_IO_PIPE, .input = in, .out_max = 2 << 20, .err_max = 1000};

    for (int i = 0; i < (1 << 20) / 16; i++)
        secstr_append(in, "0123456789abcde\n", 16);
    run(argv, &o, &r);
    g_assert_true(spawn_succeeded(&r));
    g_assert_cmpuint(r.out->len, ==, in->len);
    g_assert_true(memcmp(r.out->data, in->data, in->len) == 0);
    /* stderr kept to its cap, the rest read and dropped. */
    g_assert_cmpuint(r.err->len, ==, 1000);
    g_assert_true(memcmp(r.err->data, in->data, 1000) == 0);
}

static void test_stdout_beyond_its_cap_stops_the_child(void)
{
    const char *argv[] = {"yes", "token", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    SpawnOptions o = {PIPED, .out_max = 10000};

    run(argv, &o, &r);
    g_assert_cmpint(r.end, ==, SPAWN_END_TOO_MUCH);
    g_assert_cmpuint(r.out->len, <=, 10000);
    spawn_error(&e, TOKEND_EX_UNAVAILABLE, &r, NULL);
    g_assert_cmpstr(e.message, ==,
                    "the test command printed more than 10000 bytes and was stopped");
}

/* A child that exits without reading its input: no SIGPIPE for tokend. */
static void test_input_not_read(void)
{
    const char *argv[] = {"true", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_autoptr(SecStr) in = secstr_new(0);
    SpawnOptions o = {PIPED, .in = SPAWN_IO_PIPE, .input = in};

    for (int i = 0; i < 1 << 16; i++)
        secstr_append(in, "0123456789abcdef", 16);
    run(argv, &o, &r);
    g_assert_true(spawn_succeeded(&r));
}

static void test_stderr_and_exit_status(void)
{
    const char *argv[] = {"sh", "-c", "echo out; echo 'cannot decrypt' >&2; exit 2", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    SpawnOptions o = {PIPED};

    run(argv, &o, &r);
    g_assert_cmpstr(r.out->data, ==, "out\n");
    g_assert_cmpstr(r.err->data, ==, "cannot decrypt\n");
    spawn_error(&e, TOKEND_EX_DATAERR, &r, "cannot decrypt");
    g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
    g_assert_cmpstr(e.message, ==, "the test command exited with status 2: cannot decrypt");
}

/* stdin is /dev/null unless piped; so is an unpiped stdout. */
static void test_streams_default_to_dev_null(void)
{
    const char *argv[] = {"sh", "-c", "readlink /proc/self/fd/0 >&2; cat; echo gone", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    SpawnOptions o = {.err = SPAWN_IO_PIPE};

    run(argv, &o, &r);
    g_assert_true(spawn_succeeded(&r));
    g_assert_cmpstr(r.err->data, ==, "/dev/null\n");
    g_assert_cmpuint(r.out->len, ==, 0);
}

/* fds tokend opened without O_CLOEXEC stay behind. */
static void test_no_fd_inherited(void)
{
    const char *argv[] = {"ls", "/proc/self/fd", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(GStrv) fds = NULL;
    SpawnOptions o = {PIPED};
    int leaky = open("/dev/null", O_RDONLY);

    g_assert_cmpint(dup2(leaky, 47), ==, 47);
    run(argv, &o, &r);
    close(leaky);
    close(47);
    g_assert_true(spawn_succeeded(&r));
    fds = g_strsplit(g_strstrip(r.out->data), "\n", -1);
    /* 0, 1, 2, and the folder ls itself opened to list them. */
    g_assert_cmpuint(g_strv_length(fds), ==, 4);
    for (int i = 0; i < 3; i++)
        g_assert_cmpint(atoi(fds[i]), ==, i);
}

/* A signal set from /proc/PID/status, e.g. "SigBlk:\t0000000000000000". */
static guint64 status_set(const char *status, const char *key)
{
    const char *at = strstr(status, key);

    g_assert_nonnull(at);
    return g_ascii_strtoull(at + strlen(key), NULL, 16);
}

/* Blocked and ignored signals of the caller are not the child's.  glibc's
 * posix_spawn leaves its own two signals (32 and 33, below SIGRTMIN)
 * ignored in every child; no program can use them. */
static void test_signal_mask_and_dispositions_reset(void)
{
    const char *argv[] = {"cat", "/proc/self/status", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_hup;
    guint64 glibc_own = (1ULL << (32 - 1)) | (1ULL << (33 - 1));
    sigset_t block, old_mask;
    SpawnOptions o = {PIPED};

    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGHUP, &ign, &old_hup);
    run(argv, &o, &r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    g_assert_cmphex(status_set(r.out->data, "SigBlk:"), ==, 0);
    g_assert_cmphex(status_set(r.out->data, "SigIgn:") & ~glibc_own, ==, 0);
}

/* Its own process group, so that a stop reaches what it started. */
static void test_own_process_group(void)
{
    const char *argv[] = {"sh", "-c", "echo $$; ps -o pgid= -p $$", NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(GStrv) lines = NULL;
    SpawnOptions o = {PIPED};

    g_autofree char *ps = g_find_program_in_path("ps");

    if (!ps) {
        g_test_skip("no ps");
        return;
    }
    run(argv, &o, &r);
    lines = g_strsplit(r.out->data, "\n", -1);
    g_assert_cmpint(atoi(lines[0]), ==, atoi(lines[1]));
}

/* The browser's way: not waited for, reaped all the same, and no
 * SIGCHLD disposition changed. */
static void test_detached_is_reaped(void)
{
    g_autofree char *dir = testutil_mkdir("detached");
    g_autofree char *pidfile = g_build_filename(dir, "pid", NULL);
    g_autofree char *script =
        g_strdup_printf("echo $$ > %s.tmp; mv %s.tmp %s", pidfile, pidfile, pidfile);
    const char *argv[] = {"sh", "-c", script, NULL};
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *text = NULL, *proc = NULL;
    struct sigaction chld;
    SpawnOptions o = {.what = "the browser sh", .argv = argv, .out = SPAWN_IO_LOG};
    pid_t pid;

    g_assert_cmpint(spawn_detached(&o, &e), ==, 0);
    for (int i = 0; i < 500 && !g_file_get_contents(pidfile, &text, NULL, NULL); i++)
        g_usleep(10000);
    g_assert_nonnull(text);
    pid = atoi(text);
    proc = g_strdup_printf("/proc/%d", (int)pid);
    for (int i = 0; i < 500 && g_file_test(proc, G_FILE_TEST_EXISTS); i++)
        g_usleep(10000);
    g_assert_false(alive(pid));
    g_assert_cmpint(kill(pid, 0), ==, -1);
    sigaction(SIGCHLD, NULL, &chld);
    g_assert_true(chld.sa_handler == SIG_DFL);
}

static void test_bad_options(void)
{
    const char *argv[] = {"true", NULL};
    const char *empty[] = {NULL};
    g_auto(SpawnResultAuto) r = SPAWN_RESULT_INIT;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    SpawnOptions o = {.what = "x", .argv = argv, .in = SPAWN_IO_LOG, .timeout_ms = 10};

    g_assert_cmpint(spawn_run(&o, &r, &e), ==, -1);
    spawn_result_clear(&r);
    o.in = SPAWN_IO_NULL;
    o.out = SPAWN_IO_PIPE;
    g_assert_cmpint(spawn_detached(&o, &e), ==, -1);
    o.argv = empty;
    g_assert_cmpint(spawn_run(&o, &r, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/spawn/how-it-ended", test_how_it_ended);
    g_test_add_func("/spawn/missing-program", test_missing_program);
    g_test_add_func("/spawn/timeout-stops-the-group", test_timeout_stops_the_group);
    g_test_add_func("/spawn/timeout-kills-what-ignores-sigterm",
                    test_timeout_kills_what_ignores_sigterm);
    g_test_add_func("/spawn/large-input-and-output", test_large_input_and_output_together);
    g_test_add_func("/spawn/stdout-cap", test_stdout_beyond_its_cap_stops_the_child);
    g_test_add_func("/spawn/input-not-read", test_input_not_read);
    g_test_add_func("/spawn/stderr", test_stderr_and_exit_status);
    g_test_add_func("/spawn/dev-null", test_streams_default_to_dev_null);
    g_test_add_func("/spawn/no-fd-inherited", test_no_fd_inherited);
    g_test_add_func("/spawn/signals-reset", test_signal_mask_and_dispositions_reset);
    g_test_add_func("/spawn/own-process-group", test_own_process_group);
    g_test_add_func("/spawn/detached", test_detached_is_reaped);
    g_test_add_func("/spawn/bad-options", test_bad_options);
    return testutil_run();
}
