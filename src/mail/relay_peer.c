/* Who may use the relay: the peer of the connection (a pipe from the
 * process that started tokend, a unix socket's SO_PEERCRED, a loopback TCP
 * peer's owner by inet_diag; another machine only when the relay has TLS
 * and password hashes for it), and which account a login name chooses. */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/netconn.h"
#include "tokend/peercred.h"
#include "tokend/relay.h"

static const char *const proto_names[] = {"smtp", "imap", "pop3", NULL};

int relay_proto_from_name(const char *name)
{
    for (int i = 0; proto_names[i]; i++)
        if (g_strcmp0(name, proto_names[i]) == 0)
            return i;
    return -1;
}

const char *relay_proto_name(enum relay_proto p)
{
    return (size_t)p < G_N_ELEMENTS(proto_names) - 1 ? proto_names[p] : "unknown";
}

static int tcp_peer(int fd, const struct sockaddr_storage *peer, enum relay_peer_kind *kind,
                    uid_t *uid, struct tokend_error *e)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);

    if (!netconn_addr_is_loopback(peer)) {
        *kind = RELAY_PEER_REMOTE;
        return 0;
    }
    *kind = RELAY_PEER_LOOPBACK;
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "getsockname: %s", g_strerror(errno));
    return peercred_tcp_uid((const struct sockaddr *)peer, (const struct sockaddr *)&local, uid, e);
}

int relay_peer_of(int fd, enum relay_peer_kind *kind, uid_t *uid, struct tokend_error *e)
{
    struct sockaddr_storage peer = {0};
    socklen_t len = sizeof(peer);
    struct stat st;

    if (fstat(fd, &st) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "fstat: %s", g_strerror(errno));
    if (!S_ISSOCK(st.st_mode)) {
        *kind = RELAY_PEER_PIPE;
        *uid = getuid();
        return 0;
    }
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "the client went away: %s", g_strerror(errno));
    if (peer.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0)
            return error_set(e, TOKEND_EX_SOFTWARE, "SO_PEERCRED: %s", g_strerror(errno));
        *kind = RELAY_PEER_UNIX;
        *uid = cred.uid;
        return 0;
    }
    if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6)
        return tcp_peer(fd, &peer, kind, uid, e);
    return error_set(e, TOKEND_EX_SOFTWARE, "a socket of family %d", peer.ss_family);
}

/* uid's user is in group gr: as its primary group or a member. */
static bool in_group(uid_t uid, const struct group *gr)
{
    // cppcheck-suppress getpwuidCalled ; one thread reads users
    struct passwd *pw = getpwuid(uid);

    if (!pw)
        return false;
    if (pw->pw_gid == gr->gr_gid)
        return true;
    for (char **m = gr->gr_mem; m && *m; m++)
        if (strcmp(*m, pw->pw_name) == 0)
            return true;
    return false;
}

int relay_peer_allowed(uid_t uid, const char *relay_peers, bool *allowed, struct tokend_error *e)
{
    g_auto(GStrv) names = g_strsplit_set(relay_peers ? relay_peers : "", " ,\t", -1);

    *allowed = uid == getuid();
    for (char **n = names; *n && !*allowed; n++) {
        struct passwd *pw;
        struct group *gr;

        if (**n == '\0')
            continue;
        // cppcheck-suppress getpwnamCalled ; one thread reads users
        if ((pw = getpwnam(*n)))
            *allowed = pw->pw_uid == uid;
        // cppcheck-suppress getgrnamCalled ; one thread reads users
        else if ((gr = getgrnam(*n)))
            *allowed = in_group(uid, gr);
        else
            return error_set(e, TOKEND_EX_CONFIG,
                             "relay_peers: \"%s\" is neither a user nor a group here", *n);
    }
    return 0;
}

int relay_check_peer(struct relay_ctx *ctx, struct tokend_error *e)
{
    enum relay_peer_kind kind = RELAY_PEER_REMOTE;
    uid_t uid = (uid_t)-1;
    bool allowed;

    if (relay_peer_of(ctx->in, &kind, &uid, e) < 0)
        return -1;
    ctx->tcp = kind == RELAY_PEER_LOOPBACK || kind == RELAY_PEER_REMOTE;
    if (kind == RELAY_PEER_REMOTE) {
        /* Another machine: TLS and the account's password, or nothing. */
        ctx->remote = true;
        return relay_remote_ready(ctx->cfg, e);
    }
    if (relay_peer_allowed(uid, ctx->cfg->relay_peers, &allowed, e) < 0)
        return -1;
    if (!allowed) {
        error_set(e, TOKEND_EX_NOPERM, "uid %u may not use this relay", (unsigned)uid);
        error_set_hint(e, "name its user or group in relay_peers in [defaults]");
        return -1;
    }
    return 0;
}

static bool address_in(const char *list, const char *address)
{
    g_auto(GStrv) items = g_strsplit_set(list ? list : "", " ,\t", -1);

    for (char **i = items; *i; i++)
        if (**i && g_ascii_strcasecmp(*i, address) == 0)
            return true;
    return false;
}

bool relay_may_send_as(const Account *a, const char *address)
{
    return (a->username && g_ascii_strcasecmp(a->username, address) == 0) ||
           address_in(a->send_as, address);
}

const Account *relay_find_account(const Config *cfg, const char *login)
{
    const Account *by_address = NULL;

    for (guint i = 0; i < cfg->accounts->len; i++) {
        const Account *a = g_ptr_array_index(cfg->accounts, i);
        if (strcmp(a->name, login) == 0)
            return a;
        if (!by_address && relay_may_send_as(a, login))
            by_address = a;
    }
    return by_address;
}
