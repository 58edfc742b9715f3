#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib.h>

#include "tokend/browser.h"
#include "tokend/log.h"

extern char **environ;

static bool in_path(const char *prog)
{
    g_autofree char *found = g_find_program_in_path(prog);
    return found != NULL;
}

static bool spawn(const char *prog, const char *url)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    char *argv[] = {(char *)prog, (char *)url, NULL};
    pid_t pid;
    int rc;

    posix_spawn_file_actions_init(&fa);
    /* The browser must not read our stdin (the user may paste there) nor
     * write into our stdout (scripts may read it). */
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    rc = posix_spawnp(&pid, prog, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        log_warn("cannot start %s: %s", prog, g_strerror(rc));
        return false;
    }
    log_verbose("started %s (pid %d)", prog, (int)pid);
    return true;
}

bool browser_open(const char *url)
{
    const char *browser = g_getenv("BROWSER");

    /* Reap the browser (or its launcher) whenever it exits. */
    signal(SIGCHLD, SIG_IGN);
    if (browser && *browser) {
        /* $BROWSER may list alternatives separated by ':'; take the first
         * that starts.  It is a program name, never run through a shell. */
        g_auto(GStrv) progs = g_strsplit(browser, ":", -1);
        for (char **p = progs; *p; p++)
            if (**p && spawn(*p, url))
                return true;
        return false;
    }
    if (in_path("xdg-open"))
        return spawn("xdg-open", url);
    return false;
}
