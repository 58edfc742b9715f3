/* `tokend --system add`: the account goes to accounts.d/NAME.conf, owned
 * by root, group tokend, mode 0640, written atomically.  Run by root, the
 * work is the service user's all the same: root starts it as tokend with
 * a pipe (TOKEND_ADD_FD) and only writes the file from what comes back
 * (checked as the configuration is), then hands over to the service user
 * for the sign-in (TOKEND_ADD_SIGNIN), leaving no root process behind.
 * Root never reads a secret or talks to the network. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "add_internal.h"
#include "tokend/add.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/sysuser.h"

#define ADD_FD_VAR "TOKEND_ADD_FD"
#define ADD_SIGNIN_VAR "TOKEND_ADD_SIGNIN"
#define EMIT_MAX_BYTES (64 * 1024)

char *add_system_target(const char *config_path, const char *name)
{
    g_autofree char *dir = g_path_get_dirname(config_path);
    g_autofree char *file = g_strconcat(name, ".conf", NULL);

    return g_build_filename(dir, "accounts.d", file, NULL);
}

int add_system_check_unused(const char *config_path, const char *name, struct tokend_error *e)
{
    g_autoptr(Config) cfg = config_load(config_path, e);

    if (!cfg)
        return -1;
    if (config_find(cfg, name)) {
        error_set(e, TOKEND_EX_CANTCREAT, "the system configuration already has an [account %s]",
                  name);
        error_set_hint(e, "give another ACCOUNT name, or remove that group first");
        return -1;
    }
    return 0;
}

enum add_phase add_system_phase(int *fd)
{
    const char *text = g_getenv(ADD_FD_VAR);
    guint64 n = 0;
    uid_t uid;
    gid_t gid;
    enum add_phase phase = ADD_PHASE_ALL;

    /* Only the service user started by root's add below. */
    if (paths_system() && sysuser_service_ids(&uid, &gid) && geteuid() == uid) {
        if (text && g_ascii_string_to_unsigned(text, 10, 3, 1024, &n, NULL)) {
            *fd = (int)n;
            phase = ADD_PHASE_EMIT;
        } else if (g_getenv(ADD_SIGNIN_VAR)) {
            phase = ADD_PHASE_SIGNIN;
        }
    }
    g_unsetenv(ADD_FD_VAR);
    g_unsetenv(ADD_SIGNIN_VAR);
    return phase;
}

int add_system_emit(int fd, const char *name, bool signin, const char *group,
                    struct tokend_error *e)
{
    g_autofree char *all = g_strdup_printf("%s %d\n%s", name, signin ? 1 : 0, group);
    size_t len = strlen(all), done = 0;

    while (done < len) {
        ssize_t n = write(fd, all + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return error_set(e, TOKEND_EX_SOFTWARE, "cannot hand the account to root: %s",
                             g_strerror(errno));
        done += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Root's side, 1: the service user's add up to the account's text. */
static int run_emitter(char **argv, GString *out, struct tokend_error *e)
{
    int fds[2], wstatus = 0;
    char buf[4096];
    ssize_t n;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot start the service user: %s",
                         g_strerror(errno));
    if (pid == 0) {
        g_autofree char *num = g_strdup_printf("%d", fds[1]);
        close(fds[0]);
        fcntl(fds[1], F_SETFD, 0);
        g_setenv(ADD_FD_VAR, num, TRUE);
        sysuser_become_service(argv, e);
        error_print(e, NULL);
        _exit(e->status ? e->status : TOKEND_EX_SOFTWARE);
    }
    close(fds[1]);
    while ((n = read(fds[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && out->len <= EMIT_MAX_BYTES)
            g_string_append_len(out, buf, n);
    close(fds[0]);
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
        return -1 - (WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : TOKEND_EX_SOFTWARE);
    return 0;
}

/* Root's side, 2: the text checked as one [account NAME] and written. */
static int write_dropin(const char *name, const char *text, struct tokend_error *e)
{
    g_autofree char *config = paths_config_file(NULL);
    g_autofree char *path = add_system_target(config, name);
    g_autoptr(Config) cfg = config_parse(text, strlen(text), path, e);
    uid_t uid;
    gid_t gid;

    if (!cfg)
        return -1;
    if (cfg->accounts->len != 1 || !config_find(cfg, name))
        return error_set(e, TOKEND_EX_SOFTWARE, "the new account's text is not one [account %s]",
                         name);
    if (!sysuser_service_ids(&uid, &gid))
        return error_set(e, TOKEND_EX_CONFIG, "there is no user %s", paths_system_user());
    if (g_file_test(path, G_FILE_TEST_EXISTS))
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is there already", path);
    if (fileio_write_atomic_shared(path, text, strlen(text), FILEIO_SYNC_DURABLE, gid, 0640, e) < 0)
        return -1;
    log_info("%s: added [account %s] as %s (root:%s 0640)", name, name, path, paths_system_user());
    return 0;
}

/* The service user's "NAME 1|0" line: the name, and whether to sign in. */
static char *emitted_name(const GString *out, const char **text, bool *signin)
{
    const char *nl = out->len < EMIT_MAX_BYTES ? strchr(out->str, '\n') : NULL;
    g_autofree char *name = nl ? g_strndup(out->str, (gsize)(nl - out->str)) : NULL;
    char *space = name ? strrchr(name, ' ') : NULL;

    if (!space)
        return NULL;
    *signin = strcmp(space, " 1") == 0;
    *space = '\0';
    *text = nl + 1;
    return config_account_name_valid(name) ? g_steal_pointer(&name) : NULL;
}

int add_system_as_root(char **argv)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(GString) out = g_string_new(NULL);
    g_autofree char *name = NULL;
    const char *text = "";
    bool signin = false;
    int rc = run_emitter(argv, out, &e);

    if (rc < -1)
        return -1 - rc; /* the service user said why */
    if (rc == 0 && out->len == 0)
        return 0; /* it had nothing to add (--help) */
    if (rc == 0 && !(name = emitted_name(out, &text, &signin)))
        error_set(&e, TOKEND_EX_SOFTWARE, "the service user's add said no account");
    if (name && write_dropin(name, text, &e) == 0) {
        if (!signin) {
            log_info("%s: sign in with: sudo tokend --system obtain %s", name, name);
            return 0;
        }
        g_setenv(ADD_SIGNIN_VAR, "1", TRUE);
        sysuser_become_service(argv, &e);
    }
    error_print(&e, name);
    return e.status ? e.status : TOKEND_EX_SOFTWARE;
}
