/* `tokend relay --listen`: for machines without socket activation.  Each
 * connection gets a fresh tokend process (as systemd's Accept=yes would
 * start), so nothing stale (resolver, sockets, tokens) outlives a session;
 * at most max_sessions run at once, the next are refused in their
 * protocol.  An address other than loopback needs what relay_remote_ready
 * checks (TLS and password hashes); without it the relay does not start. */

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokend/log.h"
#include "tokend/netconn.h"
#include "tokend/relay.h"
#include "tokend/relayrun.h"
#include "tokend/uri.h"

#define MAX_LISTENERS 16

void relay_refuse(enum relay_proto p, int out, bool permanent, const char *line)
{
    g_autofree char *text = NULL;
    ssize_t n;

    switch (p) {
    case RELAY_PROTO_SMTP:
        text = g_strdup_printf("%s %s\r\n", permanent ? "554 5.7.1" : "421 4.3.2", line);
        break;
    case RELAY_PROTO_IMAP:
        text = g_strdup_printf("* BYE [%s] %s\r\n", permanent ? "ALERT" : "UNAVAILABLE", line);
        break;
    case RELAY_PROTO_POP3:
        text = g_strdup_printf("-ERR [%s] %s\r\n", permanent ? "AUTH" : "SYS/TEMP", line);
        break;
    }
    do
        n = write(out, text, strlen(text));
    while (n < 0 && errno == EINTR);
}

static int listen_on(const Config *cfg, const char *addr, struct tokend_error *e)
{
    g_autofree char *host = NULL;
    g_autofree char *port_text = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    const char *why = NULL;
    int port, fd, one = 1, rc;

    if (!uri_split_host_port(addr, &host, &port, &why) || port <= 0)
        return error_set(e, TOKEND_EX_USAGE, "--listen %s: not ADDR:PORT%s%s", addr,
                         why ? ": " : "", why ? why : "");
    port_text = g_strdup_printf("%d", port);
    if ((rc = getaddrinfo(host, port_text, &hints, &res)) != 0)
        return error_set(e, TOKEND_EX_USAGE, "--listen %s: %s", addr, gai_strerror(rc));
    if (!netconn_addr_is_loopback((const struct sockaddr_storage *)(void *)res->ai_addr) &&
        relay_remote_ready(cfg, e) < 0) {
        freeaddrinfo(res);
        error_prefix(e, "--listen %s: not a loopback address", addr);
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
        int err = errno;
        freeaddrinfo(res);
        if (fd >= 0)
            close(fd);
        return error_set(e, TOKEND_EX_UNAVAILABLE, "--listen %s: %s", addr, g_strerror(err));
    }
    freeaddrinfo(res);
    return fd;
}

/* The connection as the new process's stdin and stdout, nothing else. */
static void start_child(int conn, char *const *self_argv, const sigset_t *old)
{
    dup2(conn, STDIN_FILENO);
    dup2(conn, STDOUT_FILENO);
    if (conn > STDOUT_FILENO && conn != STDERR_FILENO)
        close(conn);
    sigprocmask(SIG_SETMASK, old, NULL);
    signal(SIGPIPE, SIG_DFL);
    execv(self_argv[0], self_argv);
    _exit(127);
}

static void accept_one(int lfd, enum relay_proto p, int max_sessions, int *active,
                       char *const *self_argv, const sigset_t *old)
{
    // cppcheck-suppress nullPointer ; accept4 takes NULL for an address not wanted
    int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    pid_t pid;

    if (conn < 0)
        return;
    if (*active >= max_sessions) {
        g_autofree char *line = g_strdup_printf(
            "tokend: all %d sessions of this relay are busy; try again later", max_sessions);
        log_warn("relay: %d sessions running; refused one more", *active);
        relay_refuse(p, conn, false, line);
    } else if ((pid = fork()) == 0) {
        start_child(conn, self_argv, old);
    } else if (pid > 0) {
        (*active)++;
    } else {
        log_warn("relay: cannot start a session: %s", g_strerror(errno));
        relay_refuse(p, conn, false, "tokend: cannot start a session; try again later");
    }
    close(conn);
}

/* Reaps the sessions that ended; false on SIGTERM or SIGINT. */
static bool on_signal(int sfd, int *active)
{
    struct signalfd_siginfo si;
    bool go_on = true;

    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            go_on = false;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        (*active)--;
    return go_on;
}

static int serve(struct pollfd *p, int n, enum relay_proto proto, int max_sessions,
                 char *const *self_argv, const sigset_t *old)
{
    int active = 0;

    for (;;) {
        if (poll(p, (nfds_t)n + 1, -1) < 0 && errno != EINTR)
            return -1;
        if ((p[n].revents & POLLIN) && !on_signal(p[n].fd, &active))
            return 0;
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLIN)
                accept_one(p[i].fd, proto, max_sessions, &active, self_argv, old);
    }
}

/* "127.0.0.1:1587", "[::1]:1587": where fd listens, numeric. */
static char *bound_address(int fd)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return NULL;
    return g_strdup_printf(ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* What `tokend status` shows of this listener: its runtime file, or NULL
 * (said) when it cannot be written; the relay runs all the same. */
static char *announce(enum relay_proto proto, const struct pollfd *p, int n,
                      const char *config_path)
{
    g_autoptr(GPtrArray) bound = g_ptr_array_new_with_free_func(g_free);
    struct tokend_error e = TOKEND_ERROR_INIT;
    char *path;

    for (int i = 0; i < n; i++) {
        char *a = bound_address(p[i].fd);
        if (a)
            g_ptr_array_add(bound, a);
    }
    g_ptr_array_add(bound, NULL);
    if (!(path = relayrun_register(relay_proto_name(proto), (char *const *)bound->pdata,
                                   config_path, &e)))
        log_warn("%s; tokend status will not show this relay", e.message);
    error_clear(&e);
    return path;
}

int relay_listen(const Config *cfg, enum relay_proto proto, char **addrs, int max_sessions,
                 char *const *self_argv, struct tokend_error *e)
{
    struct pollfd p[MAX_LISTENERS + 1];
    g_autofree char *runfile = NULL;
    sigset_t mask, old;
    int n = 0, rc;

    for (; addrs[n]; n++) {
        if (n == MAX_LISTENERS)
            return error_set(e, TOKEND_EX_USAGE, "at most %d --listen", MAX_LISTENERS);
        p[n] = (struct pollfd){.fd = listen_on(cfg, addrs[n], e), .events = POLLIN};
        if (p[n].fd < 0)
            return -1;
        log_info("relay: %s on %s", relay_proto_name(proto), addrs[n]);
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, &old);
    p[n] = (struct pollfd){.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK), .events = POLLIN};
    runfile = announce(proto, p, n, cfg->path);
    rc = serve(p, n, proto, max_sessions, self_argv, &old);
    relayrun_remove(runfile);
    for (int i = 0; i <= n; i++)
        close(p[i].fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "poll: %s", g_strerror(errno));
    return 0;
}
