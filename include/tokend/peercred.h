#pragma once
/* Who owns the other end of a local TCP connection, and who owns the
 * listening socket behind a local server address: the peer's socket is
 * found by its (address, port) and the server's (address, port), a
 * listener by its port, through NETLINK_SOCK_DIAG (inet_diag), else
 * /proc/net/tcp{,6}. */

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <glib.h>
#include "tokend/error.h"

/* The uid owning the socket whose local end is peer and whose remote end is
 * server (both AF_INET or both AF_INET6).  -1 with e set when no such socket
 * is found or neither way to look works. */
int peercred_tcp_uid(const struct sockaddr *peer, const struct sockaddr *server, uid_t *uid,
                     struct tokend_error *e);
/* The same from a /proc/net/tcp{,6} table's text (for the fallback and its
 * tests): 0 and *uid when a row matches, -1 otherwise. */
int peercred_uid_from_proc_table(const char *table, const struct sockaddr *peer,
                                 const struct sockaddr *server, uid_t *uid);
/* The uid owning the listening TCP socket that takes connections to server
 * (a local address and port): one bound to that address, else to the
 * wildcard, of its family or, for IPv4, an IPv6 socket taking IPv4 too.
 * -1 with e set when none is found or two users' sockets tie. */
int peercred_listener_uid(const struct sockaddr *server, uid_t *uid, struct tokend_error *e);
/* The same from one /proc/net/tcp (family AF_INET) or tcp6 (AF_INET6)
 * table's text: 0 and *uid, or -1. */
int peercred_listener_from_proc_table(const char *table, int family, const struct sockaddr *server,
                                      uid_t *uid);
/* The peer of a unix socket: its uid and every group it had when it
 * connected (its gid and SO_PEERGROUPS), in *gids (gid_t).  -1 with e set
 * when fd is no unix socket. */
int peercred_unix(int fd, uid_t *uid, GArray **gids, struct tokend_error *e);
