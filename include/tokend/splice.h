#pragma once
/* Bytes both ways between a mail client (fd in, fd out) and a server
 * connection, until either side closes: fixed buffers, no line buffering,
 * half-close passed on. */

#include "tokend/error.h"
#include "tokend/netconn.h"

/* 0 when a side closed; -1 (e filled) when the server connection failed. */
int splice_run(NetConn *c, int in, int out, struct tokend_error *e);
/* The same with the client under TLS (the relay's STARTTLS or implicit
 * TLS, netconn_accept_tls): the server's end of the data ends the
 * client's TLS (close_notify) and its side of the connection. */
int splice_run_tls(NetConn *c, NetConn *client, struct tokend_error *e);
