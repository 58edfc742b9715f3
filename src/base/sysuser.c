#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <unistd.h>

#include "tokend/sysuser.h"
#include "tokend/paths.h"

#define MAX_GROUPS 1024

static int no_service_user(struct tokend_error *e)
{
    const char *name = paths_system_user();

    error_set(e, TOKEND_EX_CONFIG, "there is no user %s for the system mode to run as", name);
    error_set_hint(e,
                   "create it: systemd-sysusers (tokend's sysusers.d file), or: "
                   "useradd --system --home-dir /var/lib/tokend %s",
                   name);
    return -1;
}

bool sysuser_service_ids(uid_t *uid, gid_t *gid)
{
    // cppcheck-suppress getpwnamCalled ; one thread reads users
    struct passwd *pw = getpwnam(paths_system_user());

    if (!pw)
        return false;
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return true;
}

int sysuser_role(enum sysuser_role *role, struct tokend_error *e)
{
    uid_t uid;
    gid_t gid;

    if (!sysuser_service_ids(&uid, &gid))
        return no_service_user(e);
    if (geteuid() == 0)
        *role = SYSUSER_ROLE_ROOT;
    else
        *role = geteuid() == uid ? SYSUSER_ROLE_SERVICE : SYSUSER_ROLE_READER;
    return 0;
}

/* Exactly the user's ids, with no way back to root. */
static bool ids_are(uid_t uid, gid_t gid)
{
    uid_t ru, eu, su;
    gid_t rg, eg, sg;

    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return false;
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
        return false;
    return uid == 0 || (setuid(0) < 0 && seteuid(0) < 0);
}

static int drop_to(const struct passwd *pw, struct tokend_error *e)
{
    gid_t groups[MAX_GROUPS];
    int n = MAX_GROUPS;

    if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "user %s is in more than %d groups", pw->pw_name,
                         MAX_GROUPS);
    if (setgroups((size_t)n, groups) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot become user %s: %s", pw->pw_name,
                         g_strerror(errno));
    if (!ids_are(pw->pw_uid, pw->pw_gid))
        return error_set(e, TOKEND_EX_SOFTWARE, "became user %s only in part; stopping",
                         pw->pw_name);
    return 0;
}

int sysuser_become_service(char **argv, struct tokend_error *e)
{
    // cppcheck-suppress getpwnamCalled ; one thread reads users
    struct passwd *pw = getpwnam(paths_system_user());
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (!pw)
        return no_service_user(e);
    if (pw->pw_uid == 0)
        return error_set(e, TOKEND_EX_CONFIG, "user %s is root; the system mode never runs as root",
                         pw->pw_name);
    if (n <= 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot find this program: %s", g_strerror(errno));
    self[n] = '\0';
    if (drop_to(pw, e) < 0)
        return -1;
    g_setenv("HOME", pw->pw_dir, TRUE);
    g_setenv("USER", pw->pw_name, TRUE);
    g_setenv("LOGNAME", pw->pw_name, TRUE);
    execv(self, argv);
    return error_set(e, TOKEND_EX_SOFTWARE, "cannot run %s as user %s: %s", self, pw->pw_name,
                     g_strerror(errno));
}
