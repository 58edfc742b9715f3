/* `tokend --system add`: the account goes to accounts.d/NAME.conf, owned
 * by root, group tokend, mode 0640, written atomically.
 *
 * No root process ever waits while tokend talks to the network.  Root
 * writes the file itself from what needs no network: the command line
 * and the provider table (--provider, or an address in one of the table's
 * consumer domains); it then execs as the service user for the sign-in,
 * leaving no root process behind.  An address that only the network can
 * place (MX records, a Microsoft 365 tenant, autoconfig) is detected by
 * the service user, root having exec'd into it: it stages the account's
 * text in STATEDIR/add/NAME.conf and asks for the same command again.
 * Root, run again, installs the staged text after checking it strictly
 * (owner, mode, one [account NAME] for this address, parsed as the
 * configuration is), and hands over for the sign-in as before. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "add_internal.h"
#include "tokend/add.h"
#include "tokend/fileio.h"
#include "tokend/log.h"
#include "tokend/paths.h"
#include "tokend/sysuser.h"

#define ADD_PHASE_VAR "TOKEND_ADD_PHASE"
#define STAGED_MAX_BYTES (64 * 1024)

static char **root_argv;

void add_system_enter_root(char **argv)
{
    root_argv = argv;
}

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

enum add_phase add_system_phase(void)
{
    const char *phase = g_getenv(ADD_PHASE_VAR);
    enum add_phase p = ADD_PHASE_ALL;
    uid_t uid;
    gid_t gid;

    if (paths_system() && geteuid() == 0 && root_argv) {
        p = ADD_PHASE_ROOT;
    } else if (paths_system() && phase && sysuser_service_ids(&uid, &gid) && geteuid() == uid) {
        /* Only the service user root exec'd into. */
        if (strcmp(phase, "stage") == 0)
            p = ADD_PHASE_STAGE;
        else if (strcmp(phase, "signin") == 0)
            p = ADD_PHASE_SIGNIN;
    }
    g_unsetenv(ADD_PHASE_VAR);
    return p;
}

int add_system_hand_over(enum add_phase next, struct tokend_error *e)
{
    g_setenv(ADD_PHASE_VAR, next == ADD_PHASE_STAGE ? "stage" : "signin", TRUE);
    return sysuser_become_service(root_argv, e);
}

static char *staged_path(const char *name)
{
    g_autofree char *state = paths_state_dir();
    g_autofree char *file = g_strconcat(name, ".conf", NULL);

    return g_build_filename(state, "add", file, NULL);
}

int add_system_stage(const char *name, const char *text, struct tokend_error *e)
{
    g_autofree char *path = staged_path(name);
    g_autofree char *dir = g_path_get_dirname(path);

    if (paths_ensure_private_dir(dir, e) < 0 ||
        fileio_write_atomic(path, text, strlen(text), FILEIO_SYNC_DURABLE, e) < 0)
        return -1;
    fprintf(stderr,
            "tokend: %s: the provider was found over the network, as user %s; the account is "
            "staged in %s; to put it in accounts.d, run the same command again (sudo tokend "
            "--system add ...)\n",
            name, paths_system_user(), path);
    return 0;
}

/* The staged file as only the service user can have left it. */
static int read_staged_fd(int fd, const char *path, char **text, struct tokend_error *e)
{
    struct stat st;
    uid_t uid;
    gid_t gid;
    ssize_t n;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return error_set(e, TOKEND_EX_DATAERR, "%s is not a regular file", path);
    if (!sysuser_service_ids(&uid, &gid) || st.st_uid != uid || (st.st_mode & 077) != 0 ||
        st.st_size <= 0 || st.st_size > STAGED_MAX_BYTES) {
        error_set(e, TOKEND_EX_DATAERR,
                  "%s is not what tokend stages (a file of user %s, 0600, at most 64 KiB)", path,
                  paths_system_user());
        error_set_hint(e, "remove it and run the command again: rm %s", path);
        return -1;
    }
    *text = g_malloc0((gsize)st.st_size + 1);
    n = read(fd, *text, (size_t)st.st_size);
    if (n != st.st_size)
        return error_set(e, TOKEND_EX_DATAERR, "cannot read %s", path);
    if (strlen(*text) != (size_t)n)
        return error_set(e, TOKEND_EX_DATAERR, "%s holds a NUL byte", path);
    return 0;
}

int add_system_staged(const char *name, char **text, char **path, struct tokend_error *e)
{
    int fd, r;

    *text = NULL;
    *path = staged_path(name);
    fd = open(*path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return error_set(e, TOKEND_EX_DATAERR, "cannot open %s: %s", *path, g_strerror(errno));
    r = read_staged_fd(fd, *path, text, e);
    close(fd);
    return r;
}

/* The text is one [account NAME] added for this address. */
static int check_text(const char *name, const char *email, const char *text, Config *cfg,
                      struct tokend_error *e)
{
    g_autofree char *head = g_strdup_printf("# added by tokend add %s: ", email);

    if (cfg->accounts->len != 1 || !config_find(cfg, name))
        return error_set(e, TOKEND_EX_DATAERR, "the new account's text is not one [account %s]",
                         name);
    if (g_ascii_strncasecmp(text, head, strlen(head)) != 0)
        return error_set(e, TOKEND_EX_DATAERR, "the staged account is not the one for %s", email);
    return 0;
}

int add_system_install(const char *name, const char *email, const char *text,
                       struct tokend_error *e)
{
    g_autofree char *config = paths_config_file(NULL);
    g_autofree char *path = add_system_target(config, name);
    g_autoptr(Config) cfg = config_parse(text, strlen(text), path, e);
    uid_t uid;
    gid_t gid;

    if (!cfg || check_text(name, email, text, cfg, e) < 0)
        return -1;
    if (!sysuser_service_ids(&uid, &gid))
        return error_set(e, TOKEND_EX_CONFIG, "there is no user %s", paths_system_user());
    if (g_file_test(path, G_FILE_TEST_EXISTS))
        return error_set(e, TOKEND_EX_CANTCREAT, "%s is there already", path);
    if (fileio_write_atomic_shared(path, text, strlen(text), FILEIO_SYNC_DURABLE, gid, 0640, e) < 0)
        return -1;
    log_info("%s: added [account %s] as %s (root:%s 0640)", name, name, path, paths_system_user());
    return 0;
}
