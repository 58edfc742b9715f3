#pragma once
/* A TCP connection to a mail server, optionally under TLS (OpenSSL), for the
 * tunnel: every address of the name tried in turn, bounded connect, TCP
 * keepalive, full certificate and name verification, line reads with a
 * deadline for the login, and non-blocking reads and writes for the relay
 * that follows. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <glib.h>
#include "tokend/error.h"

typedef struct netconn NetConn;

/* Deadlines are g_get_monotonic_time() values. */
NetConn *netconn_connect(const char *host, int port, gint64 deadline, struct tokend_error *e);
/* ss is a loopback address (127/8, ::1, ::ffff:127/104). */
bool netconn_addr_is_loopback(const struct sockaddr_storage *ss);
/* The connected peer is a loopback address. */
bool netconn_is_loopback(const NetConn *c);
bool netconn_is_tls(const NetConn *c);
/* The address connected to. */
bool netconn_peer(const NetConn *c, struct sockaddr_storage *peer);
/* Waits for the server's first byte without taking it (a plain-text
 * connection): 1 and *byte, 0 when the deadline passed first, -1 (e) when
 * the connection closed or failed. */
int netconn_first_byte(NetConn *c, gint64 deadline, unsigned char *byte, struct tokend_error *e);
/* TLS handshake, verifying the certificate against ca_file (or the system's
 * authorities) and the host name the connection was opened with. */
int netconn_start_tls(NetConn *c, const char *ca_file, gint64 deadline, struct tokend_error *e);
/* The server side of TLS on an accepted connection fd (a relay's client;
 * fd is duplicated, not taken): the handshake with the certificate chain
 * in cert_file and its key, TLS 1.2 or later. */
NetConn *netconn_accept_tls(int fd, const char *cert_file, const char *key_file, gint64 deadline,
                            struct tokend_error *e);
/* The certificate and key can serve TLS: 0, or -1 (e says why). */
int netconn_check_server_tls(const char *cert_file, const char *key_file, struct tokend_error *e);
/* Up to len bytes, waiting until the deadline for at least one: >0, 0 at
 * the end of the stream, -1 (e). */
ssize_t netconn_read_some(NetConn *c, void *buf, size_t len, gint64 deadline,
                          struct tokend_error *e);
/* One line without its CR LF. */
int netconn_read_line(NetConn *c, GString *line, gint64 deadline, struct tokend_error *e);
int netconn_write(NetConn *c, const char *data, size_t len, gint64 deadline,
                  struct tokend_error *e);

/* Non-blocking, for the relay: >0 bytes moved, 0 end of stream (reads),
 * NETCONN_AGAIN (then *wants_other says TLS needs the opposite direction
 * first), NETCONN_FAILED (e filled). */
#define NETCONN_AGAIN (-2)
#define NETCONN_FAILED (-1)
ssize_t netconn_try_read(NetConn *c, void *buf, size_t len, bool *wants_other,
                         struct tokend_error *e);
ssize_t netconn_try_write(NetConn *c, const void *buf, size_t len, bool *wants_other,
                          struct tokend_error *e);
/* No more data from us: TLS close_notify, then a TCP half-close. */
void netconn_shutdown_write(NetConn *c);
int netconn_fd(const NetConn *c);
const char *netconn_host(const NetConn *c);
void netconn_free(NetConn *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetConn, netconn_free)
