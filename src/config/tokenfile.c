#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "tokend/tokenfile.h"
#include "tokend/fileio.h"
#include "tokend/tokenrule.h"

/* Room for a group entry with many members, at most. */
#define GROUP_BUF_MAX (1u << 20)

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

/* Group lookups are reentrant: a refresh saves token files from several
 * writer threads at once, and getgrnam's one buffer would be shared.
 * 0 and *gid, 1 when there is no such group, -1 on a lookup error. */
static int reader_group_lookup(const char *group, gid_t *gid)
{
    g_autofree char *buf = NULL;
    struct group gr, *found = NULL;
    size_t size = 4096;
    int rc;

    do {
        g_free(buf);
        buf = g_malloc(size);
        rc = getgrnam_r(group, &gr, buf, size, &found);
        size *= 2;
    } while (rc == ERANGE && size <= GROUP_BUF_MAX);
    if (rc != 0)
        return -1;
    if (!found)
        return 1;
    *gid = found->gr_gid;
    return 0;
}

/* The running user's name, for the message (reentrant, as above). */
static char *running_user(void)
{
    char buf[4096];
    struct passwd pw, *found = NULL;

    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found) != 0 || !found)
        return g_strdup("tokend");
    return g_strdup(found->pw_name);
}

int tokenfile_reader_gid(const char *group, gid_t *gid, struct tokend_error *e)
{
    g_autofree char *user = NULL;

    switch (reader_group_lookup(group, gid)) {
    case 0:
        break;
    case 1:
        return error_set(e, TOKEND_EX_CONFIG, "token_file_group %s: there is no such group", group);
    default:
        return error_set(e, TOKEND_EX_CANTCREAT, "token_file_group %s: cannot look the group up",
                         group);
    }
    if (in_group(*gid))
        return 0;
    user = running_user();
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
