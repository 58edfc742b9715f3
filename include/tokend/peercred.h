#pragma once
/* Who owns the other end of a local TCP connection: the peer's socket is
 * found by its (address, port) and the server's (address, port), through
 * NETLINK_SOCK_DIAG (inet_diag, exact), else /proc/net/tcp{,6}. */

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
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
