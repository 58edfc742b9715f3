#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokend/fault.h"
#include "tokend/log.h"
#include "tokend/splice.h"

#define RELAY_BUF (64 * 1024)
/* After the client's end of stream, how long the server may take to close. */
#define CLOSE_GRACE_US (30 * G_USEC_PER_SEC)

struct flow {
    char data[RELAY_BUF];
    size_t off, len;
    bool eof;
};

struct relay {
    NetConn *c;
    int in, out;
    NetConn *cl;              /* the client under TLS (relay), or NULL: fds in and out */
    bool cl_read_wants_write; /* TLS: as below, on the client's side */
    bool cl_write_wants_read;
    struct flow up;        /* client -> server */
    struct flow down;      /* server -> client */
    bool read_wants_write; /* TLS: a read needs the socket writable */
    bool write_wants_read; /* TLS: a write needs the socket readable */
    bool client_gone;
    bool shut;
    gint64 close_deadline;
};

static bool flow_empty(const struct flow *f)
{
    return f->off == f->len;
}

/* Pipes and sockets from the client go non-blocking; a terminal or file is
 * left alone (its flags are shared with whoever else has it open). */
static void nonblocking(int fd)
{
    struct stat st;
    int fl;

    if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
        (fl = fcntl(fd, F_GETFL)) >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The client under TLS: what is at hand, as server_read does. */
static bool client_tls_read(struct relay *r)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    bool progress = false;

    if (flow_empty(&r->up))
        r->up.off = r->up.len = 0;
    while (!r->up.eof && r->up.off == 0 && r->up.len < RELAY_BUF) {
        ssize_t n = netconn_try_read(r->cl, r->up.data + r->up.len, RELAY_BUF - r->up.len,
                                     &r->cl_read_wants_write, &e);
        if (n == NETCONN_AGAIN)
            break;
        r->cl_read_wants_write = false;
        r->up.eof = n <= 0; /* end of stream, or a client that went away */
        r->up.len += n > 0 ? (size_t)n : 0;
        progress = true;
    }
    error_clear(&e);
    return progress;
}

static bool client_read(struct relay *r)
{
    ssize_t n;

    if (r->cl)
        return client_tls_read(r);
    if (r->up.eof || !flow_empty(&r->up))
        return false;
    n = read(r->in, r->up.data, RELAY_BUF);
    if (n > 0) {
        r->up.off = 0;
        r->up.len = (size_t)n;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    r->up.eof = true; /* end of stream, or a client that went away */
    return true;
}

static ssize_t client_write_some(struct relay *r)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    const char *data = r->down.data + r->down.off;
    size_t len = r->down.len - r->down.off;
    ssize_t n;

    if (!r->cl)
        return write(r->out, data, len);
    n = netconn_try_write(r->cl, data, len, &r->cl_write_wants_read, &e);
    error_clear(&e);
    if (n == NETCONN_AGAIN)
        errno = EAGAIN;
    else if (n >= 0)
        r->cl_write_wants_read = false;
    return n == NETCONN_AGAIN ? -1 : n;
}

static bool client_write(struct relay *r)
{
    ssize_t n;

    if (flow_empty(&r->down))
        return false;
    n = client_write_some(r);
    if (n > 0) {
        r->down.off += (size_t)n;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    r->client_gone = true;
    return true;
}

/* 1 progress, 0 none, -1 failed.  Fills the buffer with what is at hand
 * (TLS hands out one record per read), so that the client gets it in few
 * writes. */
static int server_read(struct relay *r, struct tokend_error *e)
{
    int progress = 0;

    if (flow_empty(&r->down))
        r->down.off = r->down.len = 0;
    while (!r->down.eof && r->down.off == 0 && r->down.len < RELAY_BUF) {
        ssize_t n = netconn_try_read(r->c, r->down.data + r->down.len, RELAY_BUF - r->down.len,
                                     &r->read_wants_write, e);
        if (n == NETCONN_AGAIN)
            break;
        if (n < 0)
            return -1;
        r->read_wants_write = false;
        r->down.len += (size_t)n;
        r->down.eof = n == 0;
        progress = 1;
    }
    return progress;
}

static int server_write(struct relay *r, struct tokend_error *e)
{
    ssize_t n;

    if (flow_empty(&r->up))
        return 0;
    n = netconn_try_write(r->c, r->up.data + r->up.off, r->up.len - r->up.off, &r->write_wants_read,
                          e);
    if (n == NETCONN_AGAIN)
        return 0;
    if (n < 0)
        return -1;
    r->write_wants_read = false;
    r->up.off += (size_t)n;
    return 1;
}

/* Moves what can move without waiting. */
static int pump(struct relay *r, struct tokend_error *e)
{
    bool progress = true;

    while (progress && !r->client_gone) {
        int a, b;

        progress = client_read(r);
        if ((a = server_write(r, e)) < 0 || (b = server_read(r, e)) < 0)
            return -1;
        progress = progress || a || b || client_write(r);
        if (r->up.eof && flow_empty(&r->up) && !r->shut) {
            netconn_shutdown_write(r->c);
            r->shut = true;
            r->close_deadline = g_get_monotonic_time() + CLOSE_GRACE_US;
        }
    }
    return 0;
}

static short server_events(const struct relay *r)
{
    short ev = 0;

    if (!r->down.eof && flow_empty(&r->down))
        ev |= r->read_wants_write ? POLLOUT : POLLIN;
    if (!flow_empty(&r->up))
        ev |= r->write_wants_read ? POLLIN : POLLOUT;
    return ev;
}

/* Blocks until something can move; false when the grace time is over. */
static bool wait_any(struct relay *r)
{
    int in = r->cl ? netconn_fd(r->cl) : r->in, out = r->cl ? netconn_fd(r->cl) : r->out;
    struct pollfd p[3] = {
        {.fd = r->up.eof || !flow_empty(&r->up) ? -1 : in,
         .events = r->cl_read_wants_write ? POLLOUT : POLLIN},
        {.fd = flow_empty(&r->down) ? -1 : out,
         .events = r->cl_write_wants_read ? POLLIN : POLLOUT},
        {.fd = netconn_fd(r->c), .events = server_events(r)},
    };
    int timeout = -1;

    if (r->shut) {
        gint64 left = r->close_deadline - g_get_monotonic_time();
        if (left <= 0)
            return false;
        timeout = (int)(left / 1000 + 1);
    }
    if (poll(p, 3, timeout) < 0 && errno != EINTR)
        return false;
    if (p[1].revents & (POLLERR | POLLHUP))
        r->client_gone = true;
    return true;
}

static int run(struct relay *r, struct tokend_error *e)
{
    /* Test builds: a relay that opens a file, which the sandbox kills. */
    FAULT_OPEN("sandbox-open");
    for (;;) {
        if (pump(r, e) < 0)
            return -1;
        if (r->client_gone) {
            log_verbose("the mail client went away");
            return 0;
        }
        if (r->down.eof && flow_empty(&r->down)) {
            log_verbose("%s closed the connection", netconn_host(r->c));
            if (r->cl)
                netconn_shutdown_write(r->cl);
            else
                close(r->out);
            return 0;
        }
        if (!wait_any(r)) {
            log_verbose("%s did not close the connection; closing it", netconn_host(r->c));
            return 0;
        }
    }
}

int splice_run(NetConn *c, int in, int out, struct tokend_error *e)
{
    g_autofree struct relay *r = g_new0(struct relay, 1);

    r->c = c;
    r->in = in;
    r->out = out;
    nonblocking(in);
    nonblocking(out);
    return run(r, e);
}

int splice_run_tls(NetConn *c, NetConn *client, struct tokend_error *e)
{
    g_autofree struct relay *r = g_new0(struct relay, 1);

    r->c = c;
    r->cl = client;
    r->in = r->out = -1;
    return run(r, e);
}
