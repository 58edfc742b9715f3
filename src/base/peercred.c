/* The owner of a local TCP peer, and of the listening socket behind a
 * local server address.  inet_diag answers an exact lookup of one socket by
 * its four-tuple, and dumps the listening sockets of a port;
 * /proc/net/tcp{,6} lists every socket with its uid and serves where
 * sock_diag is not available. */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "tokend/peercred.h"

#define PROC_TABLE_MAX (4 * 1024 * 1024)

struct endpoint {
    int family;
    guint16 port;    /* host order */
    guint32 addr[4]; /* as in memory (network order) */
};

static const guint8 v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool endpoint_of(const struct sockaddr *sa, struct endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = sa->sa_family;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        ep->port = ntohs(in->sin_port);
        memcpy(ep->addr, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        ep->port = ntohs(in6->sin6_port);
        memcpy(ep->addr, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

/* A socket in TIME_WAIT (or a half-open request) is no one's: the kernel
 * reports uid 0 for it. */
#define STATE_NEW_SYN_RECV 12 /* the kernel's TCP_NEW_SYN_RECV, in no libc header */

static bool owned_state(unsigned int state)
{
    return state != TCP_TIME_WAIT && state != STATE_NEW_SYN_RECV;
}

/* One request, one answer: the socket whose local end is peer and whose
 * remote end is server.  0 found, -errno otherwise. */
static int diag_lookup(const struct endpoint *peer, const struct endpoint *server, uid_t *uid)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nlh = {.nlmsg_len = sizeof(msg),
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST,
                .nlmsg_seq = 1},
        .req = {.sdiag_family = (guint8)peer->family,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = ~0u},
    };
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    union {
        struct nlmsghdr nlh;
        char bytes[8192];
    } answer;
    const struct nlmsghdr *h = &answer.nlh;
    ssize_t n;
    int fd, err = 0;

    msg.req.id.idiag_sport = htons(peer->port);
    msg.req.id.idiag_dport = htons(server->port);
    memcpy(msg.req.id.idiag_src, peer->addr, sizeof(peer->addr));
    memcpy(msg.req.id.idiag_dst, server->addr, sizeof(server->addr));
    msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        err = -errno;
    else if ((n = recv(fd, &answer, sizeof(answer), 0)) < 0)
        err = -errno;
    else if (!NLMSG_OK(h, (size_t)n))
        err = -EPROTO;
    else if (h->nlmsg_type == NLMSG_ERROR)
        err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error ?: -ENOENT;
    else if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
             h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        err = -EPROTO;
    else if (!owned_state(((const struct inet_diag_msg *)NLMSG_DATA(h))->idiag_state))
        err = -ENOENT;
    else
        *uid = ((const struct inet_diag_msg *)NLMSG_DATA(h))->idiag_uid;
    close(fd);
    return err;
}

/* "0100007F:1F90" (v4) or 32 hex digits and a port (v6): the kernel prints
 * each 32-bit word of the address in host order. */
static bool proc_endpoint_parse(const char *field, int family, struct endpoint *ep)
{
    size_t words = family == AF_INET ? 1 : 4;
    char buf[9] = {0};
    unsigned int port;

    memset(ep, 0, sizeof(*ep));
    ep->family = family;
    if (strlen(field) != words * 8 + 5 || field[words * 8] != ':')
        return false;
    for (size_t i = 0; i < words; i++) {
        memcpy(buf, field + i * 8, 8);
        if (strspn(buf, "0123456789ABCDEFabcdef") != 8)
            return false;
        ep->addr[i] = (guint32)strtoul(buf, NULL, 16);
    }
    if (strspn(field + words * 8 + 1, "0123456789ABCDEFabcdef") != 4 ||
        sscanf(field + words * 8 + 1, "%x", &port) != 1)
        return false;
    ep->port = (guint16)port;
    return true;
}

static bool proc_endpoint_is(const char *field, const struct endpoint *ep)
{
    struct endpoint got;

    return proc_endpoint_parse(field, ep->family, &got) &&
           memcmp(got.addr, ep->addr, sizeof(got.addr)) == 0 && got.port == ep->port;
}

/* The columns of one row of the table, empty ones left out. */
static GPtrArray *proc_columns(char *row, GStrv *fields)
{
    GPtrArray *cols = g_ptr_array_new();

    *fields = g_strsplit_set(g_strstrip(row), " \t", -1);
    for (char **s = *fields; *s; s++)
        if (**s)
            g_ptr_array_add(cols, *s);
    return cols;
}

int peercred_uid_from_proc_table(const char *table, const struct sockaddr *peer_sa,
                                 const struct sockaddr *server_sa, uid_t *uid)
{
    struct endpoint peer, server;
    g_auto(GStrv) rows = NULL;

    if (!endpoint_of(peer_sa, &peer) || !endpoint_of(server_sa, &server) ||
        peer.family != server.family)
        return -1;
    rows = g_strsplit(table, "\n", -1);
    for (char **row = rows; *row; row++) {
        g_auto(GStrv) f = NULL;
        g_autoptr(GPtrArray) cols = proc_columns(*row, &f);
        guint64 v;

        if (cols->len < 8 || !proc_endpoint_is(g_ptr_array_index(cols, 1), &peer) ||
            !proc_endpoint_is(g_ptr_array_index(cols, 2), &server) ||
            !g_ascii_string_to_unsigned(g_ptr_array_index(cols, 3), 16, 1, 0xff, &v, NULL) ||
            !owned_state((unsigned int)v) ||
            !g_ascii_string_to_unsigned(g_ptr_array_index(cols, 7), 10, 0, G_MAXUINT32, &v, NULL))
            continue;
        *uid = (uid_t)v;
        return 0;
    }
    return -1;
}

static int proc_lookup(const struct sockaddr *peer, const struct sockaddr *server, uid_t *uid)
{
    const char *path = peer->sa_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6";
    g_autofree char *table = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &table, &len, NULL) || len > PROC_TABLE_MAX)
        return -1;
    return peercred_uid_from_proc_table(table, peer, server, uid);
}

int peercred_tcp_uid(const struct sockaddr *peer_sa, const struct sockaddr *server_sa, uid_t *uid,
                     struct tokend_error *e)
{
    struct endpoint peer, server;
    int r;

    if (!endpoint_of(peer_sa, &peer) || !endpoint_of(server_sa, &server) ||
        peer.family != server.family)
        return error_set(e, TOKEND_EX_SOFTWARE, "not a TCP/IP connection");
    r = diag_lookup(&peer, &server, uid);
    if (r == 0)
        return 0;
    if (r == -ENOENT)
        return error_set(e, TOKEND_EX_NOPERM, "no local socket is the peer");
    /* No sock_diag here (no module, a sandbox): the slower table. */
    if (proc_lookup(peer_sa, server_sa, uid) == 0)
        return 0;
    return error_set(e, TOKEND_EX_NOPERM, "cannot tell who owns the peer (sock_diag: %s)",
                     g_strerror(-r));
}

/* Listening sockets ------------------------------------------------------ */

struct listener_best {
    int score; /* of the best match so far; 0: none */
    uid_t uid;
    bool conflict; /* two equally good listeners of different users */
};

/* How closely a listener bound to (family, addr, port) matches the local
 * server address ep; the kernel hands a connection to the closest.  An
 * IPv4 address is also reached through an IPv6 listener on the wildcard or
 * on its v4-mapped form.  0: it takes no connection to ep. */
static int listener_score(const struct endpoint *ep, int family, const guint32 addr[4],
                          guint16 port)
{
    static const guint32 any[4] = {0};
    guint8 mapped[16];
    size_t n = family == AF_INET ? 4 : 16;

    if (port != ep->port || (family != AF_INET && family != AF_INET6))
        return 0;
    if (family == ep->family)
        return memcmp(addr, ep->addr, n) == 0 ? 4 : memcmp(addr, any, n) == 0 ? 3 : 0;
    if (ep->family != AF_INET)
        return 0;
    memcpy(mapped, v4_mapped_prefix, 12);
    memcpy(mapped + 12, ep->addr, 4);
    return memcmp(addr, mapped, 16) == 0 ? 2 : memcmp(addr, any, 16) == 0 ? 1 : 0;
}

static void listener_consider(struct listener_best *b, int score, uid_t uid)
{
    if (score == 0 || score < b->score)
        return;
    if (score == b->score) {
        b->conflict |= uid != b->uid;
        return;
    }
    b->score = score;
    b->uid = uid;
    b->conflict = false;
}

/* An IPv4 address written as v4-mapped IPv6 is looked up as IPv4. */
static void endpoint_unmap(struct endpoint *ep)
{
    if (ep->family != AF_INET6 || memcmp(ep->addr, v4_mapped_prefix, 12) != 0)
        return;
    ep->family = AF_INET;
    ep->addr[0] = ep->addr[3];
    ep->addr[1] = ep->addr[2] = ep->addr[3] = 0;
}

static void diag_consider(struct nlmsghdr *h, size_t len, const struct endpoint *ep,
                          struct listener_best *best, int *err, bool *done)
{
    for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        const struct inet_diag_msg *m = NLMSG_DATA(h);

        if (h->nlmsg_type == NLMSG_DONE) {
            *done = true;
            return;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
            *err = ((const struct nlmsgerr *)NLMSG_DATA(h))->error ?: -EPROTO;
            return;
        }
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
            h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)) &&
            m->idiag_state == TCP_LISTEN)
            listener_consider(
                best,
                listener_score(ep, m->idiag_family, m->id.idiag_src, ntohs(m->id.idiag_sport)),
                m->idiag_uid);
    }
}

/* Every listening TCP socket of family on ep's port.  0 or -errno. */
static int diag_listeners(int family, const struct endpoint *ep, struct listener_best *best)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg = {
        .nlh = {.nlmsg_len = sizeof(msg),
                .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                .nlmsg_seq = 1},
        .req = {.sdiag_family = (guint8)family,
                .sdiag_protocol = IPPROTO_TCP,
                .idiag_states = 1u << TCP_LISTEN},
    };
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    union {
        struct nlmsghdr nlh;
        char bytes[16384];
    } answer;
    bool done = false;
    int fd, err = 0;

    msg.req.id.idiag_sport = htons(ep->port);
    msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        err = -errno;
    while (!err && !done) {
        ssize_t n = recv(fd, &answer, sizeof(answer), 0);
        if (n <= 0) {
            err = n < 0 ? -errno : -EPROTO;
            break;
        }
        diag_consider(&answer.nlh, (size_t)n, ep, best, &err, &done);
    }
    close(fd);
    return err;
}

static void proc_listeners(const char *table, int family, const struct endpoint *ep,
                           struct listener_best *best)
{
    g_auto(GStrv) rows = g_strsplit(table, "\n", -1);

    for (char **row = rows; *row; row++) {
        g_auto(GStrv) f = NULL;
        g_autoptr(GPtrArray) cols = proc_columns(*row, &f);
        struct endpoint local;
        guint64 v;

        if (cols->len < 8 || !proc_endpoint_parse(g_ptr_array_index(cols, 1), family, &local) ||
            g_strcmp0(g_ptr_array_index(cols, 3), "0A") != 0 ||
            !g_ascii_string_to_unsigned(g_ptr_array_index(cols, 7), 10, 0, G_MAXUINT32, &v, NULL))
            continue;
        listener_consider(best, listener_score(ep, family, local.addr, local.port), (uid_t)v);
    }
}

int peercred_listener_from_proc_table(const char *table, int family, const struct sockaddr *server,
                                      uid_t *uid)
{
    struct endpoint ep;
    struct listener_best best = {0};

    if (!endpoint_of(server, &ep) || (family != AF_INET && family != AF_INET6))
        return -1;
    endpoint_unmap(&ep);
    proc_listeners(table, family, &ep, &best);
    if (best.score == 0 || best.conflict)
        return -1;
    *uid = best.uid;
    return 0;
}

static void proc_lookup_listeners(const struct endpoint *ep, struct listener_best *best)
{
    static const struct {
        int family;
        const char *path;
    } tables[] = {{AF_INET, "/proc/net/tcp"}, {AF_INET6, "/proc/net/tcp6"}};

    for (size_t i = 0; i < G_N_ELEMENTS(tables); i++) {
        g_autofree char *table = NULL;
        gsize len = 0;

        if (tables[i].family == AF_INET && ep->family != AF_INET)
            continue;
        if (g_file_get_contents(tables[i].path, &table, &len, NULL) && len <= PROC_TABLE_MAX)
            proc_listeners(table, tables[i].family, ep, best);
    }
}

int peercred_listener_uid(const struct sockaddr *server, uid_t *uid, struct tokend_error *e)
{
    struct endpoint ep;
    struct listener_best best = {0};
    int r = 0;

    if (!endpoint_of(server, &ep))
        return error_set(e, TOKEND_EX_SOFTWARE, "not a TCP/IP address");
    endpoint_unmap(&ep);
    /* An IPv4 address may be served by an IPv6 socket as well. */
    if (ep.family == AF_INET)
        r = diag_listeners(AF_INET, &ep, &best);
    if (r == 0)
        r = diag_listeners(AF_INET6, &ep, &best);
    if (r < 0) {
        best = (struct listener_best){0};
        proc_lookup_listeners(&ep, &best);
    }
    if (best.conflict)
        return error_set(e, TOKEND_EX_NOPERM, "sockets of different users listen there");
    if (best.score == 0 && r < 0)
        return error_set(e, TOKEND_EX_NOPERM, "no listening socket found (sock_diag: %s)",
                         g_strerror(-r));
    if (best.score == 0)
        return error_set(e, TOKEND_EX_NOPERM, "no listening socket found");
    *uid = best.uid;
    return 0;
}

#define PEER_GROUPS_MAX 65536

int peercred_unix(int fd, uid_t *uid, GArray **gids, struct tokend_error *e)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    g_autoptr(GArray) all = g_array_new(FALSE, TRUE, sizeof(gid_t));

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return error_set(e, TOKEND_EX_USAGE, "not a unix socket connection: %s", g_strerror(errno));
    g_array_append_val(all, cred.gid);
    len = 0;
    /* ERANGE, with the length needed. */
    (void)getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, &cred.gid, &len);
    if (len > 0 && len <= PEER_GROUPS_MAX * sizeof(gid_t)) {
        g_array_set_size(all, 1 + len / sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, &g_array_index(all, gid_t, 1), &len) < 0)
            return error_set(e, TOKEND_EX_SOFTWARE, "SO_PEERGROUPS: %s", g_strerror(errno));
        g_array_set_size(all, 1 + len / sizeof(gid_t));
    }
    *uid = cred.uid;
    *gids = g_steal_pointer(&all);
    return 0;
}
