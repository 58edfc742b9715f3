#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "tokend/tokenfile.h"
#include "tokend/fileio.h"
#include "tokend/tokenrule.h"

int tokenfile_write(const char *path, const SecStr *token, struct tokend_error *e)
{
    return tokenfile_write_shared(path, token, NULL, 0600, e);
}

static bool in_group(gid_t gid)
{
    gid_t groups[1024];
    int n = getgroups(G_N_ELEMENTS(groups), groups);

    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return getegid() == gid;
}

int tokenfile_reader_gid(const char *group, gid_t *gid, struct tokend_error *e)
{
    // cppcheck-suppress getgrnamCalled ; one thread reads users
    struct group *gr = getgrnam(group);
    // cppcheck-suppress getpwuidCalled ; one thread reads users
    struct passwd *pw = getpwuid(geteuid());
    const char *user = pw ? pw->pw_name : "tokend";

    if (!gr)
        return error_set(e, TOKEND_EX_CONFIG, "token_file_group %s: there is no such group", group);
    *gid = gr->gr_gid;
    if (in_group(*gid))
        return 0;
    error_set(e, TOKEND_EX_CANTCREAT,
              "user %s is not a member of group %s, so the token file cannot be given to it", user,
              group);
    error_set_hint(e,
                   "add the line \"m %s %s\" to /etc/sysusers.d/tokend-readers.conf, run "
                   "systemd-sysusers, and start tokend again",
                   user, group);
    return -1;
}

int tokenfile_write_shared(const char *path, const SecStr *token, const char *group, int mode,
                           struct tokend_error *e)
{
    return tokenfile_write_synced(path, token, group, mode, FILEIO_SYNC_DATA, e);
}

int tokenfile_write_synced(const char *path, const SecStr *token, const char *group, int mode,
                           enum fileio_sync sync, struct tokend_error *e)
{
    g_autoptr(SecStr) line = NULL;
    gid_t gid = (gid_t)-1;

    if (!token || !tokenrule_valid(token->data, token->len))
        return error_set(e, TOKEND_EX_DATAERR,
                         "the access token is empty or has characters a token cannot have");
    line = secstr_new(token->len + 1);
    secstr_append(line, token->data, token->len);
    secstr_append(line, "\n", 1);
    if (group && tokenfile_reader_gid(group, &gid, e) < 0)
        return -1;
    return fileio_write_atomic_shared(path, line->data, line->len, sync, gid, (mode_t)mode, e);
}

SecStr *tokenfile_read(const char *path, bool *missing, struct tokend_error *e)
{
    return tokenfile_read_shared(path, geteuid(), 0600, missing, e);
}

SecStr *tokenfile_read_shared(const char *path, uid_t owner, int mode, bool *missing,
                              struct tokend_error *e)
{
    g_autoptr(SecStr) s = NULL;

    if (fileio_read_secret_shared(path, TOKENRULE_MAX_BYTES + 1, owner, (mode_t)(mode & 0040), &s,
                                  missing, e) < 0)
        return NULL;
    if (s->len > 0 && s->data[s->len - 1] == '\n')
        s->data[--s->len] = '\0';
    if (!tokenrule_valid(s->data, s->len)) {
        error_set(e, TOKEND_EX_CANTCREAT, "%s does not hold one valid token", path);
        return NULL;
    }
    return g_steal_pointer(&s);
}
