/* The owner of a local TCP peer.  inet_diag answers an exact lookup of one
 * socket by its four-tuple; /proc/net/tcp{,6} lists every socket with its
 * uid and serves where sock_diag is not available. */

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
static bool proc_endpoint_is(const char *field, const struct endpoint *ep)
{
    size_t words = ep->family == AF_INET ? 1 : 4;
    char buf[9] = {0};
    unsigned int port;

    if (strlen(field) != words * 8 + 5 || field[words * 8] != ':')
        return false;
    for (size_t i = 0; i < words; i++) {
        memcpy(buf, field + i * 8, 8);
        if (strspn(buf, "0123456789ABCDEFabcdef") != 8 ||
            (guint32)strtoul(buf, NULL, 16) != ep->addr[i])
            return false;
    }
    if (strspn(field + words * 8 + 1, "0123456789ABCDEFabcdef") != 4 ||
        sscanf(field + words * 8 + 1, "%x", &port) != 1)
        return false;
    return port == ep->port;
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
        g_auto(GStrv) f = g_strsplit_set(g_strstrip(*row), " \t", -1);
        g_autoptr(GPtrArray) cols = g_ptr_array_new();
        guint64 v;

        for (char **s = f; *s; s++)
            if (**s)
                g_ptr_array_add(cols, *s);
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
