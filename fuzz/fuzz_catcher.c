/* The redirect catcher (catcher.c, a libmicrohttpd server): one catcher for
 * http://127.0.0.1/ waiting for state "state123" is started once; each
 * input is sent as raw bytes over a new loopback TCP connection and the
 * reply read until the server closes (or a short timeout).  A redirect the
 * catcher accepted is taken with catcher_wait, so every input meets a
 * catcher that is still waiting.  Slower than the other targets: a
 * connection per input. */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "tokend/catcher.h"

#define FUZZ_STATE "state123"
#define REPLY_TIMEOUT_MS 2000

static Catcher *catcher;
static int catcher_port;

static void start_catcher(void)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    const char *uri;

    catcher = catcher_new("http://127.0.0.1/", FUZZ_STATE, &e);
    if (!catcher) {
        fprintf(stderr, "fuzz_catcher: %s\n", e.message);
        abort();
    }
    uri = catcher_redirect_uri(catcher);
    if (sscanf(uri, "http://127.0.0.1:%d/", &catcher_port) != 1) {
        fprintf(stderr, "fuzz_catcher: unexpected redirect URI %s\n", uri);
        abort();
    }
}

/* A connection from 127.0.0.1 to the catcher; closed with a reset so that
 * millions of them leave no TIME_WAIT behind on our side. */
static int connect_catcher(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    int fd;

    for (int attempt = 0; attempt < 100; attempt++) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            abort();
        sa.sin_port = htons((uint16_t)catcher_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        close(fd);
        /* Interrupted by libFuzzer's timer signal: again.  The catcher at
         * its connection limit or ports short: wait a little. */
        if (errno == EINTR)
            continue;
        if (errno != EADDRNOTAVAIL && errno != ECONNREFUSED && errno != EAGAIN)
            break;
        usleep(10000);
    }
    fprintf(stderr, "fuzz_catcher: cannot connect to port %d: %s\n", catcher_port, strerror(errno));
    abort();
}

static void send_all(int fd, const uint8_t *data, size_t size)
{
    while (size > 0) {
        ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server closed early: it may */
        data += n;
        size -= (size_t)n;
    }
}

/* Read until the server closes the connection. */
static size_t read_reply(int fd, char *buf, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t len = 0;
    char sink[4096];

    for (;;) {
        ssize_t n;
        int ready = poll(&p, 1, REPLY_TIMEOUT_MS);

        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break;
        if (len < cap)
            n = recv(fd, buf + len, cap - len, 0);
        else
            n = recv(fd, sink, sizeof(sink), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (len < cap)
            len += (size_t)n;
    }
    return len;
}

/* A redirect the catcher accepted must carry this sign-in's state. */
static void take_result(void)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    g_autoptr(RedirectParams) p = NULL;

    if (catcher_wait(catcher, 0, &p, &e) == 0) {
        if (!p || g_strcmp0(p->state, FUZZ_STATE) != 0)
            abort();
    }
    error_clear(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reply[512];
    size_t len;
    int fd;

    if (!catcher)
        start_catcher();
    fd = connect_catcher();
    send_all(fd, data, size);
    shutdown(fd, SHUT_WR);
    len = read_reply(fd, reply, sizeof(reply) - 1);
    close(fd);
    reply[len] = '\0';
    /* Whatever it answers is HTTP. */
    if (len > 0 && !g_str_has_prefix(reply, "HTTP/1."))
        abort();
    take_result();
    return 0;
}
