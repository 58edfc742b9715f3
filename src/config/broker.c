/* The broker's request and answer lines, and the reader's one request
 * over the unix socket: plain socket calls with a deadline (the launcher
 * links this). */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tokend/broker.h"
#include "tokend/config.h"
#include "tokend/paths.h"

#define REQUEST_VERB "refresh "

char *broker_parse_request(const char *buf, size_t len)
{
    size_t verb = strlen(REQUEST_VERB);
    g_autofree char *name = NULL;

    if (len > BROKER_REQUEST_MAX || len < verb + 2 || buf[len - 1] != '\n' ||
        memcmp(buf, REQUEST_VERB, verb) != 0)
        return NULL;
    /* No NUL, CR or second line hides inside: the name's charset decides. */
    name = g_strndup(buf + verb, len - verb - 1);
    if (strlen(name) != len - verb - 1 || !config_account_name_valid(name))
        return NULL;
    return g_steal_pointer(&name);
}

char *broker_answer_line(int status, const char *reason)
{
    GString *s = g_string_new(NULL);

    g_string_printf(s, "%d ", CLAMP(status, 0, 255));
    for (const char *p = reason ? reason : ""; *p && s->len < BROKER_REASON_MAX + 4; p++)
        g_string_append_c(s, g_ascii_isprint(*p) ? *p : '?');
    g_string_append_c(s, '\n');
    return g_string_free(s, FALSE);
}

int broker_parse_answer(const char *buf, size_t len, int *status, char **reason)
{
    guint64 n;
    size_t digits = 0;
    g_autofree char *code = NULL;

    if (len < 3 || len > BROKER_ANSWER_MAX || buf[len - 1] != '\n')
        return -1;
    while (digits < 3 && digits < len && g_ascii_isdigit(buf[digits]))
        digits++;
    if (digits == 0 || buf[digits] != ' ')
        return -1;
    for (size_t i = digits + 1; i < len - 1; i++)
        if (!g_ascii_isprint(buf[i]))
            return -1;
    code = g_strndup(buf, digits);
    if (!g_ascii_string_to_unsigned(code, 10, 0, 255, &n, NULL))
        return -1;
    *status = (int)n;
    *reason = g_strndup(buf + digits + 1, len - digits - 2);
    return 0;
}

char *broker_socket_path(void)
{
    g_autofree char *run = paths_runtime_dir();

    return g_build_filename(run, "broker", NULL);
}

/* Wait for events on fd until deadline (monotonic, microseconds). */
static bool wait_for(int fd, short events, gint64 deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    gint64 left;
    int rc;

    do {
        left = (deadline - g_get_monotonic_time()) / 1000;
        rc = left > 0 ? poll(&p, 1, (int)MIN(left, G_MAXINT)) : 0;
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
}

/* One line (up to and with "\n") of at most max bytes; its length, 0 when
 * the peer sent more or closed first, -1 on a timeout or error. */
static ssize_t read_line(int fd, char *buf, size_t max, gint64 deadline)
{
    size_t got = 0;

    while (got < max) {
        ssize_t n;
        if (!wait_for(fd, POLLIN, deadline))
            return -1;
        n = recv(fd, buf + got, max - got, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return n < 0 ? -1 : 0;
        got += (size_t)n;
        if (memchr(buf, '\n', got))
            return memchr(buf, '\n', got) == buf + got - 1 ? (ssize_t)got : 0;
    }
    return 0;
}

char *broker_read_request(int fd, int timeout_ms, struct tokend_error *e)
{
    char buf[BROKER_REQUEST_MAX];
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    ssize_t n = read_line(fd, buf, sizeof(buf), deadline);
    char *account;

    if (n < 0) {
        error_set(e, TOKEND_EX_TEMPFAIL, "no request came within %d s", timeout_ms / 1000);
        return NULL;
    }
    if (n == 0 || !(account = broker_parse_request(buf, (size_t)n))) {
        error_set(e, TOKEND_EX_USAGE,
                  "a malformed or oversized request (one line: refresh ACCOUNT)");
        return NULL;
    }
    return account;
}

static int broker_connect(const char *path, gint64 deadline, struct tokend_error *e)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path))
        return error_set(e, TOKEND_EX_TEMPFAIL, "the broker's socket path %s is too long", path);
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "socket: %s", g_strerror(errno));
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc < 0 && (errno == EINPROGRESS || errno == EAGAIN) && wait_for(fd, POLLOUT, deadline))
        rc = 0;
    if (rc < 0) {
        error_set(e, TOKEND_EX_TEMPFAIL, "the system broker %s cannot be reached: %s", path,
                  g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* The broker's answer to the request on fd. */
static int exchange(int fd, const char *account, gint64 deadline, struct tokend_error *e)
{
    g_autofree char *request = g_strconcat(REQUEST_VERB, account, "\n", NULL);
    g_autofree char *reason = NULL;
    char buf[BROKER_ANSWER_MAX];
    ssize_t n;
    int status;

    if (send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request))
        return error_set(e, TOKEND_EX_TEMPFAIL, "the system broker hung up: %s", g_strerror(errno));
    n = read_line(fd, buf, sizeof(buf), deadline);
    if (n < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "the system broker did not answer in time");
    if (n == 0 || broker_parse_answer(buf, (size_t)n, &status, &reason) < 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "the system broker's answer was not one");
    if (status != 0)
        return error_set(e, TOKEND_EX_TEMPFAIL, "the system broker could not refresh it: %s",
                         reason);
    return 0;
}

int broker_request_refresh(const char *account, int timeout_ms, struct tokend_error *e)
{
    g_autofree char *path = broker_socket_path();
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    int fd = broker_connect(path, deadline, e), rc;

    if (fd < 0)
        return -1;
    rc = exchange(fd, account, deadline, e);
    close(fd);
    if (rc < 0)
        error_set_hint(e, "the next poll tries again; run as root: tokend --system status");
    return rc;
}
