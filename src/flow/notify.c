/* notify_cmd runs through spawn.h: stdin /dev/null and stdout on the log,
 * since tokend's own are the tunnel's IMAP session or the token a script
 * reads; bounded in time. */

#include "tokend/notify.h"
#include "tokend/log.h"
#include "tokend/spawn.h"

#define NOTIFY_TIMEOUT_MS 10000

/* The documented environment: the account, why, what to run. */
static char **notify_env(const Account *a, const char *reason, gint64 signin_by)
{
    g_autofree char *command = config_command(a, "obtain");
    char **env = g_get_environ();

    env = g_environ_setenv(env, "TOKEND_ACCOUNT", a->name, TRUE);
    env = g_environ_setenv(env, "TOKEND_REASON", reason ? reason : "sign-in needed", TRUE);
    env = g_environ_setenv(env, "TOKEND_COMMAND", command, TRUE);
    if (a->username)
        env = g_environ_setenv(env, "TOKEND_USERNAME", a->username, TRUE);
    if (signin_by > 0) {
        g_autofree char *when = g_strdup_printf("%" G_GINT64_FORMAT, signin_by);
        env = g_environ_setenv(env, "TOKEND_SIGNIN_BY", when, TRUE);
    }
    return env;
}

static void notify_run(const Account *a, const char *reason, gint64 signin_by)
{
    g_auto(GStrv) argv = NULL;
    g_auto(GStrv) env = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *what = NULL;
    struct tokend_error e = TOKEND_ERROR_INIT;
    SpawnOptions o = {.in = SPAWN_IO_NULL,
                      .out = SPAWN_IO_LOG,
                      .err = SPAWN_IO_LOG,
                      .timeout_ms = NOTIFY_TIMEOUT_MS};
    SpawnResult r = SPAWN_RESULT_INIT;

    if (!a->notify_cmd)
        return;
    /* Split like a shell would, but run without one. */
    if (!g_shell_parse_argv(a->notify_cmd, NULL, &argv, &err)) {
        log_warn("%s: notify_cmd: %s", a->name, err->message);
        return;
    }
    what = g_strdup_printf("notify_cmd %s", argv[0]);
    o.what = what;
    o.argv = (const char *const *)argv;
    env = notify_env(a, reason, signin_by);
    o.env = (const char *const *)env;
    if (spawn_run(&o, &r, &e) == 0 && !spawn_succeeded(&r))
        spawn_error(&e, TOKEND_EX_UNAVAILABLE, &r, NULL);
    if (e.message)
        log_warn("%s: %s", a->name, e.message);
    error_clear(&e);
    spawn_result_clear(&r);
}

void notify_signin_needed(const Account *a, const char *reason)
{
    notify_run(a, reason, 0);
}

void notify_signin_soon(const Account *a, const char *reason, gint64 signin_by)
{
    notify_run(a, reason, signin_by);
}
