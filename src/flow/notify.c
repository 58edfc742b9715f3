#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/notify.h"
#include "tokend/log.h"

#define NOTIFY_TIMEOUT_MS 10000

extern char **environ;

static int wait_bounded(pid_t pid)
{
    gint64 deadline = g_get_monotonic_time() + NOTIFY_TIMEOUT_MS * 1000;
    int status = 0;

    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        g_usleep(10000);
    }
    return status;
}

static void notify_run(const Account *a, const char *reason, gint64 signin_by)
{
    g_auto(GStrv) argv = NULL;
    g_auto(GStrv) env = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *command = NULL;
    pid_t pid;
    int rc, status;

    if (!a->notify_cmd)
        return;
    /* Split like a shell would, but run without one. */
    if (!g_shell_parse_argv(a->notify_cmd, NULL, &argv, &err)) {
        log_warn("%s: notify_cmd: %s", a->name, err->message);
        return;
    }
    command = config_command(a, "obtain");
    env = g_get_environ();
    env = g_environ_setenv(env, "TOKEND_ACCOUNT", a->name, TRUE);
    env = g_environ_setenv(env, "TOKEND_REASON", reason ? reason : "sign-in needed", TRUE);
    env = g_environ_setenv(env, "TOKEND_COMMAND", command, TRUE);
    if (a->username)
        env = g_environ_setenv(env, "TOKEND_USERNAME", a->username, TRUE);
    if (signin_by > 0) {
        g_autofree char *when = g_strdup_printf("%" G_GINT64_FORMAT, signin_by);
        env = g_environ_setenv(env, "TOKEND_SIGNIN_BY", when, TRUE);
    }
    rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, env);
    if (rc != 0) {
        log_warn("%s: cannot run notify_cmd %s: %s", a->name, argv[0], g_strerror(rc));
        return;
    }
    status = wait_bounded(pid);
    if (status < 0)
        log_warn("%s: notify_cmd took longer than %d s and was stopped", a->name,
                 NOTIFY_TIMEOUT_MS / 1000);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        log_warn("%s: notify_cmd failed", a->name);
}

void notify_signin_needed(const Account *a, const char *reason)
{
    notify_run(a, reason, 0);
}

void notify_signin_soon(const Account *a, const char *reason, gint64 signin_by)
{
    notify_run(a, reason, signin_by);
}
