#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tokend/netconn.h"

#define CONNECT_TIMEOUT_US (10 * G_USEC_PER_SEC)
#define MAX_LINE (64 * 1024)
#define KEEPALIVE_IDLE 120
#define KEEPALIVE_INTERVAL 30
#define KEEPALIVE_COUNT 4

struct netconn {
    char *host;
    int port;
    int fd;
    bool loopback;
    SSL_CTX *ctx;
    SSL *ssl;
    char in[16 * 1024]; /* read ahead by the line reader */
    size_t in_off, in_len;
};

static ssize_t io_failed(NetConn *c, const char *what, int err, struct tokend_error *e);
static int tls_handshake(NetConn *c, bool server, gint64 deadline, struct tokend_error *e);

/* 1 ready, 0 deadline passed, -1 error. */
static int wait_fd(int fd, short events, gint64 deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        gint64 left = deadline - g_get_monotonic_time();
        int r;

        if (left <= 0)
            return 0;
        r = poll(&p, 1, (int)MIN(left / 1000 + 1, G_MAXINT));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

bool netconn_addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
        return IN6_IS_ADDR_LOOPBACK(a);
    }
    return false;
}

static void tune_socket(int fd)
{
    int on = 1, idle = KEEPALIVE_IDLE, intvl = KEEPALIVE_INTERVAL, cnt = KEEPALIVE_COUNT;

    /* An established session may idle for hours (IMAP IDLE): keepalive
     * finds a dead peer; no Nagle delay on the relayed stream. */
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* A connected non-blocking socket, or -1 with *err set. */
static int connect_one(const struct addrinfo *ai, gint64 deadline, int *err)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    int so_err = 0, r;
    socklen_t len = sizeof(so_err);

    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return -1;
    }
    r = wait_fd(fd, POLLOUT, MIN(deadline, g_get_monotonic_time() + CONNECT_TIMEOUT_US));
    if (r > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_err, &len) == 0 && so_err == 0)
        return fd;
    *err = r == 0 ? ETIMEDOUT : so_err ? so_err : errno;
    close(fd);
    return -1;
}

NetConn *netconn_connect(const char *host, int port, gint64 deadline, struct tokend_error *e)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    g_autofree char *service = g_strdup_printf("%d", port);
    struct sockaddr_storage peer = {0};
    socklen_t plen = sizeof(peer);
    int r, fd = -1, err = 0;
    NetConn *c;

    r = getaddrinfo(host, service, &hints, &list);
    if (r != 0) {
        error_set(e, TOKEND_EX_TEMPFAIL, "cannot resolve %s: %s", host, gai_strerror(r));
        error_set_hint(e, "check the server name and the network");
        return NULL;
    }
    /* Every address in turn: one dead address must not stop the mail. */
    for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
        if (g_get_monotonic_time() >= deadline)
            break;
        fd = connect_one(ai, deadline, &err);
    }
    freeaddrinfo(list);
    if (fd < 0) {
        error_set(e, TOKEND_EX_TEMPFAIL, "cannot connect to %s port %d: %s", host, port,
                  g_strerror(err ? err : ETIMEDOUT));
        error_set_hint(e, "check the server and the network; the client will retry");
        return NULL;
    }
    tune_socket(fd);
    c = g_new0(NetConn, 1);
    c->host = g_strdup(host);
    c->port = port;
    c->fd = fd;
    c->loopback =
        getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 && netconn_addr_is_loopback(&peer);
    return c;
}

bool netconn_peer(const NetConn *c, struct sockaddr_storage *peer)
{
    socklen_t len = sizeof(*peer);

    return getpeername(c->fd, (struct sockaddr *)peer, &len) == 0;
}

int netconn_first_byte(NetConn *c, gint64 deadline, unsigned char *byte, struct tokend_error *e)
{
    for (;;) {
        ssize_t n;
        int r;

        if (c->in_off < c->in_len) {
            *byte = (unsigned char)c->in[c->in_off];
            return 1;
        }
        n = recv(c->fd, byte, 1, MSG_PEEK);
        if (n == 1)
            return 1;
        if (n == 0)
            return error_set(e, TOKEND_EX_TEMPFAIL, "%s closed the connection", c->host);
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return (int)io_failed(c, "reading from", errno, e);
        if ((r = wait_fd(c->fd, POLLIN, deadline)) <= 0)
            return r == 0 ? 0 : (int)io_failed(c, "waiting for", errno, e);
    }
}

bool netconn_is_loopback(const NetConn *c)
{
    return c->loopback;
}

bool netconn_is_tls(const NetConn *c)
{
    return c->ssl != NULL;
}

int netconn_fd(const NetConn *c)
{
    return c->fd;
}

const char *netconn_host(const NetConn *c)
{
    return c->host;
}

static SSL_CTX *tls_context(const char *ca_file, struct tokend_error *e)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        error_set(e, TOKEND_EX_SOFTWARE, "cannot set up TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Mail protocols end themselves; many servers just close TCP. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Several records per read(2) when the server sends a lot (a FETCH). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
    if (ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        SSL_CTX_free(ctx);
        error_set(e, TOKEND_EX_CONFIG, "cannot read the certificate authorities%s%s",
                  ca_file ? " in " : "", ca_file ? ca_file : "");
        error_set_hint(e, "check ca_file");
        return NULL;
    }
    return ctx;
}

/* The name (or address) the certificate must carry. */
static int tls_expect_host(SSL *ssl, const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)
        return -1;
    return 0;
}

static int tls_failed(NetConn *c, struct tokend_error *e)
{
    long v = SSL_get_verify_result(c->ssl);
    unsigned long err = ERR_peek_last_error();
    char buf[256] = "";

    if (v != X509_V_OK) {
        error_set(e, TOKEND_EX_TEMPFAIL, "the certificate of %s was not accepted: %s", c->host,
                  X509_verify_cert_error_string(v));
        error_set_hint(e, "check the server name, or ca_file");
        return -1;
    }
    if (err)
        ERR_error_string_n(err, buf, sizeof(buf));
    error_set(e, TOKEND_EX_TEMPFAIL, "TLS with %s port %d failed%s%s", c->host, c->port,
              err ? ": " : "", buf);
    error_set_hint(e, "check the port (implicit TLS or STARTTLS) and the network");
    return -1;
}

int netconn_start_tls(NetConn *c, const char *ca_file, gint64 deadline, struct tokend_error *e)
{
    if (c->in_off < c->in_len)
        return error_set(e, TOKEND_EX_TEMPFAIL,
                         "%s sent data before the TLS handshake; not trusting it", c->host);
    if (!(c->ctx = tls_context(ca_file, e)))
        return -1;
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || tls_expect_host(c->ssl, c->host) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot set up TLS for %s", c->host);
    return tls_handshake(c, false, deadline, e);
}

/* The server side of TLS (the relay's clients): a context with the
 * certificate chain and its key, TLS 1.2 or later, no session tickets. */
static SSL_CTX *tls_server_context(const char *cert_file, const char *key_file,
                                   struct tokend_error *e)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx) {
        error_set(e, TOKEND_EX_SOFTWARE, "cannot set up TLS");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        unsigned long err = ERR_peek_last_error();
        char buf[256] = "";
        if (err)
            ERR_error_string_n(err, buf, sizeof(buf));
        SSL_CTX_free(ctx);
        error_set(e, TOKEND_EX_CONFIG, "cannot use the certificate %s with the key %s: %s",
                  cert_file, key_file, buf);
        return NULL;
    }
    return ctx;
}

int netconn_check_server_tls(const char *cert_file, const char *key_file, struct tokend_error *e)
{
    SSL_CTX *ctx = tls_server_context(cert_file, key_file, e);

    if (!ctx)
        return -1;
    SSL_CTX_free(ctx);
    return 0;
}

/* The handshake's loop, either side. */
static int tls_handshake(NetConn *c, bool server, gint64 deadline, struct tokend_error *e)
{
    for (;;) {
        int r, w;

        ERR_clear_error();
        r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
        if (r == 1)
            return 0;
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            w = wait_fd(c->fd, POLLIN, deadline);
            break;
        case SSL_ERROR_WANT_WRITE:
            w = wait_fd(c->fd, POLLOUT, deadline);
            break;
        default:
            return tls_failed(c, e);
        }
        if (w <= 0)
            return error_set(e, TOKEND_EX_TEMPFAIL, "TLS with %s port %d timed out", c->host,
                             c->port);
    }
}

NetConn *netconn_accept_tls(int fd, const char *cert_file, const char *key_file, gint64 deadline,
                            struct tokend_error *e)
{
    struct sockaddr_storage peer = {0};
    socklen_t plen = sizeof(peer);
    g_autoptr(NetConn) c = g_new0(NetConn, 1);
    int fl;

    c->host = g_strdup("the client");
    c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (c->fd < 0 || (fl = fcntl(c->fd, F_GETFL)) < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "the client's socket: %s", g_strerror(errno)), NULL;
    c->loopback =
        getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 && netconn_addr_is_loopback(&peer);
    if (!(c->ctx = tls_server_context(cert_file, key_file, e)))
        return NULL;
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot set up TLS for the client"), NULL;
    if (tls_handshake(c, true, deadline, e) < 0)
        return NULL;
    return g_steal_pointer(&c);
}

static ssize_t io_failed(NetConn *c, const char *what, int err, struct tokend_error *e)
{
    unsigned long ssl_err = ERR_peek_last_error();
    char buf[256] = "";

    if (ssl_err)
        ERR_error_string_n(ssl_err, buf, sizeof(buf));
    error_set(e, TOKEND_EX_TEMPFAIL, "%s %s failed: %s", what, c->host,
              ssl_err ? buf : g_strerror(err ? err : EIO));
    return NETCONN_FAILED;
}

static ssize_t tls_io(NetConn *c, void *buf, size_t len, bool reading, bool *wants_other,
                      struct tokend_error *e)
{
    size_t done = 0;
    int ok, err;

    ERR_clear_error();
    errno = 0;
    ok = reading ? SSL_read_ex(c->ssl, buf, len, &done) : SSL_write_ex(c->ssl, buf, len, &done);
    if (ok)
        return (ssize_t)done;
    err = SSL_get_error(c->ssl, ok);
    *wants_other =
        (reading && err == SSL_ERROR_WANT_WRITE) || (!reading && err == SSL_ERROR_WANT_READ);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
        return NETCONN_AGAIN;
    if (reading && err == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (reading && err == SSL_ERROR_SYSCALL && errno == 0 && ERR_peek_last_error() == 0)
        return 0;
    return io_failed(c, reading ? "reading from" : "writing to", errno, e);
}

static ssize_t raw_io(NetConn *c, void *buf, size_t len, bool reading, bool *wants_other,
                      struct tokend_error *e)
{
    *wants_other = false;
    if (c->ssl)
        return tls_io(c, buf, len, reading, wants_other, e);
    for (;;) {
        ssize_t n = reading ? read(c->fd, buf, len) : send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return NETCONN_AGAIN;
        if (errno != EINTR)
            return io_failed(c, reading ? "reading from" : "writing to", errno, e);
    }
}

ssize_t netconn_try_read(NetConn *c, void *buf, size_t len, bool *wants_other,
                         struct tokend_error *e)
{
    if (c->in_off < c->in_len) {
        size_t n = MIN(len, c->in_len - c->in_off);
        memcpy(buf, c->in + c->in_off, n);
        c->in_off += n;
        *wants_other = false;
        return (ssize_t)n;
    }
    return raw_io(c, buf, len, true, wants_other, e);
}

ssize_t netconn_try_write(NetConn *c, const void *buf, size_t len, bool *wants_other,
                          struct tokend_error *e)
{
    return raw_io(c, (void *)buf, len, false, wants_other, e);
}

/* Waits for what the last NETCONN_AGAIN asked for. */
static int wait_again(NetConn *c, bool reading, bool wants_other, gint64 deadline,
                      struct tokend_error *e)
{
    short ev = (reading != wants_other) ? POLLIN : POLLOUT;
    int r = wait_fd(c->fd, ev, deadline);

    if (r > 0)
        return 0;
    if (r == 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "%s did not answer in time", c->host);
    return io_failed(c, "waiting for", errno, e);
}

static int fill(NetConn *c, gint64 deadline, struct tokend_error *e)
{
    for (;;) {
        bool other;
        ssize_t n = raw_io(c, c->in, sizeof(c->in), true, &other, e);

        if (n > 0) {
            c->in_off = 0;
            c->in_len = (size_t)n;
            return 0;
        }
        if (n == 0)
            return error_set(e, TOKEND_EX_TEMPFAIL, "%s closed the connection", c->host);
        if (n == NETCONN_FAILED || wait_again(c, true, other, deadline, e) < 0)
            return -1;
    }
}

ssize_t netconn_read_some(NetConn *c, void *buf, size_t len, gint64 deadline,
                          struct tokend_error *e)
{
    for (;;) {
        bool other;
        ssize_t n = netconn_try_read(c, buf, len, &other, e);

        if (n >= 0)
            return n;
        if (n == NETCONN_FAILED || wait_again(c, true, other, deadline, e) < 0)
            return -1;
    }
}

int netconn_read_line(NetConn *c, GString *line, gint64 deadline, struct tokend_error *e)
{
    g_string_truncate(line, 0);
    for (;;) {
        const char *start = c->in + c->in_off;
        const char *nl = memchr(start, '\n', c->in_len - c->in_off);

        if (nl) {
            g_string_append_len(line, start, nl - start);
            c->in_off += (size_t)(nl - start) + 1;
            if (line->len && line->str[line->len - 1] == '\r')
                g_string_truncate(line, line->len - 1);
            return 0;
        }
        g_string_append_len(line, start, c->in_len - c->in_off);
        c->in_off = c->in_len = 0;
        if (line->len > MAX_LINE)
            return error_set(e, TOKEND_EX_TEMPFAIL, "%s sent an over-long line", c->host);
        if (fill(c, deadline, e) < 0)
            return -1;
    }
}

int netconn_write(NetConn *c, const char *data, size_t len, gint64 deadline, struct tokend_error *e)
{
    while (len > 0) {
        bool other;
        ssize_t n = raw_io(c, (void *)data, len, false, &other, e);

        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n == NETCONN_FAILED || wait_again(c, false, other, deadline, e) < 0) {
            return -1;
        }
    }
    return 0;
}

void netconn_shutdown_write(NetConn *c)
{
    if (c->ssl) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* sends close_notify; the answer is read by the relay */
    }
    shutdown(c->fd, SHUT_WR);
}

void netconn_free(NetConn *c)
{
    if (!c)
        return;
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    explicit_bzero(c->in, sizeof(c->in));
    g_free(c->host);
    g_free(c);
}
