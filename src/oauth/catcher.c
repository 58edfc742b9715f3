#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>

#include "tokend/catcher.h"
#include "tokend/shared_curl.h"
#include "tokend/log.h"
#include "tokend/mhdlib.h"
#include "tokend/peercred.h"
#include "tokend/uri.h"

#define CONNECTION_LIMIT 64
#define CONNECTION_TIMEOUT_S 10
#define CONNECTION_MEMORY 16384

/* libmicrohttpd, loaded by the first catcher_new (mhdlib.h). */
static const struct mhdlib *mhd;

struct catcher;

/* What a daemon's accept policy needs: whose catcher, and where it listens
 * (the remote end of the peer's socket). */
struct listener {
    struct catcher *catcher;
    struct sockaddr_storage local;
};

struct catcher {
    struct MHD_Daemon *daemons[2];
    struct listener listeners[2];
    int sockets[2];
    char *redirect_uri;
    char *host;
    int port;
    char *path;
    char *state;
    int ready_fd; /* eventfd, readable once result is set */
    bool taken;   /* the answer was taken (from the browser, or pasted instead) */
    GMutex lock;
    GCond changed;
    RedirectParams *result;
    bool delivered;
    int accepted;              /* address of this marks the request that carried the result */
    bool told_bad, told_stale; /* each kind of refused redirect is told once */
};

#define PAGE(title, text)                                                                          \
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>tokend: " title                     \
    "</title></head><body style=\"font-family:sans-serif;margin:3em\"><h1>" title "</h1><p>" text  \
    "</p></body></html>\n"

static const char page_done[] = PAGE("Signed in", "tokend has the answer. You may close this tab.");
static const char page_refused[] =
    PAGE("Sign-in failed", "The provider refused the sign-in. See the terminal for the reason.");
static const char page_stale[] =
    PAGE("Not this sign-in", "This link does not belong to the sign-in tokend is waiting for. "
                             "Use the newest sign-in link, or run tokend obtain again.");
static const char page_bad[] = PAGE("Bad request", "The request could not be understood.");
static const char page_again[] =
    PAGE("Already signed in", "This sign-in is complete. You may close this tab.");
static const char page_missing[] = PAGE("Not found", "Nothing here.");
static const char page_method[] = PAGE("Not allowed", "Only GET is served here.");

bool catcher_handles(const char *redirect_uri)
{
    g_autoptr(GUri) u = g_uri_parse(redirect_uri, G_URI_FLAGS_NONE, NULL);

    return u && strcmp(g_uri_get_scheme(u), "http") == 0 && !g_uri_get_userinfo(u) &&
           uri_host_is_loopback(g_uri_get_host(u));
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, const char *page)
{
    struct MHD_Response *r =
        mhd->create_response_from_buffer(strlen(page), (void *)page, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    mhd->add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    mhd->add_response_header(r, "Cache-Control", "no-store");
    mhd->add_response_header(r, "Referrer-Policy", "no-referrer");
    mhd->add_response_header(r, "Content-Security-Policy",
                             "default-src 'none'; style-src 'unsafe-inline'");
    mhd->add_response_header(r, "X-Content-Type-Options", "nosniff");
    mhd->add_response_header(r, "Connection", "close");
    ret = mhd->queue_response(conn, status, r);
    mhd->destroy_response(r);
    return ret;
}

struct collect {
    RedirectParams *p;
    bool failed;
    char *why; /* the first parameter refused (no value in it) */
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct collect *c = cls;
    struct tokend_error e = TOKEND_ERROR_INIT;

    (void)kind;
    if (oauth_redirect_add(c->p, key, value, &e) < 0) {
        c->failed = true;
        c->why = g_strdup(e.message);
    }
    error_clear(&e);
    return c->failed ? MHD_NO : MHD_YES;
}

/* The user waits at the terminal: a redirect refused is said there at once
 * (once per kind, so that a flood of junk does not fill the terminal). */
static void tell_refused(bool *told, const char *why)
{
    if (*told)
        return;
    *told = true;
    log_info("refused a redirect to the sign-in listener: %s", why);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    Catcher *c = cls;
    struct collect col = {.p = g_new0(RedirectParams, 1)};
    const char *page;
    unsigned int status = MHD_HTTP_OK;

    (void)version;
    (void)upload_data;
    (void)upload_size;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        redirect_params_free(col.p);
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, page_method);
    }
    if (strcmp(url, c->path) != 0) {
        redirect_params_free(col.p);
        return reply(conn, MHD_HTTP_NOT_FOUND, page_missing);
    }
    mhd->get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, &col);
    g_mutex_lock(&c->lock);
    if (col.failed) {
        status = MHD_HTTP_BAD_REQUEST;
        page = page_bad;
        tell_refused(&c->told_bad, col.why);
    } else if (c->result || c->taken) {
        page = page_again;
    } else if (!col.p->state || strcmp(col.p->state, c->state) != 0) {
        status = MHD_HTTP_BAD_REQUEST;
        page = page_stale;
        tell_refused(&c->told_stale, "it does not belong to this sign-in (an older sign-in "
                                     "link?); use the newest link");
    } else {
        page = col.p->error ? page_refused : page_done;
        c->result = g_steal_pointer(&col.p);
        *req_cls = &c->accepted;
        g_cond_broadcast(&c->changed);
        if (eventfd_write(c->ready_fd, 1) < 0)
            log_verbose("catcher: cannot signal the redirect: %s", g_strerror(errno));
    }
    g_mutex_unlock(&c->lock);
    redirect_params_free(col.p);
    g_free(col.why);
    return reply(conn, status, page);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    Catcher *c = cls;

    (void)conn;
    (void)toe;
    if (*req_cls != &c->accepted)
        return;
    g_mutex_lock(&c->lock);
    c->delivered = true;
    g_cond_broadcast(&c->changed);
    g_mutex_unlock(&c->lock);
}

/* Only our own user's programs may talk to the catcher: another local user
 * who read the authorization URL (and its state) from a process list must
 * not deliver a code of theirs.  Decided before a byte is read. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    const struct listener *l = cls;
    struct tokend_error e = TOKEND_ERROR_INIT;
    uid_t uid = (uid_t)-1;

    (void)addrlen;
    if (peercred_tcp_uid(addr, (const struct sockaddr *)&l->local, &uid, &e) < 0) {
        log_verbose("catcher: refused a connection whose owner is unknown (%s)", e.message);
        error_clear(&e);
        return MHD_NO;
    }
    if (uid != geteuid()) {
        log_verbose("catcher: refused a connection from another user (uid %u)", (unsigned)uid);
        return MHD_NO;
    }
    return MHD_YES;
}

static int listen_socket(int family, int port, struct tokend_error *e)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int one = 1;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        int err = errno;
        error_set(e, TOKEND_EX_TEMPFAIL, "cannot open a socket: %s", g_strerror(err));
        errno = err; /* the caller tells a missing IPv6 by it */
        return -1;
    }
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        in6->sin6_addr = in6addr_loopback;
        len = sizeof(*in6);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    /* A fixed port stays usable while the last sign-in's connection is in
     * TIME_WAIT; Linux still refuses a second listener on it. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 16) < 0) {
        int err = errno;
        close(fd);
        error_set(e, TOKEND_EX_TEMPFAIL, "cannot listen on %s port %d: %s",
                  family == AF_INET ? "127.0.0.1" : "[::1]", port, g_strerror(err));
        if (port)
            error_set_hint(e, "another program holds that port (another tokend obtain?); "
                              "stop it, or leave the port out of redirect_uri");
        errno = err;
        return -1;
    }
    return fd;
}

static int socket_port(int fd)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage ss;
    } a = {.ss = {0}};
    socklen_t len = sizeof(a);

    if (getsockname(fd, &a.sa, &len) < 0)
        return -1;
    return ntohs(a.sa.sa_family == AF_INET ? a.in.sin_port : a.in6.sin6_port);
}

/* Bind what the host asks for: localhost gets 127.0.0.1 and ::1 on one port
 * (::1 is skipped where the machine has no IPv6). */
static int bind_sockets(Catcher *c, const char *host, int port, struct tokend_error *e)
{
    bool v4 = g_strcmp0(host, "[::1]") != 0;
    bool v6 = g_strcmp0(host, "127.0.0.1") != 0;

    for (int attempt = 0; attempt < 8; attempt++) {
        struct tokend_error e6 = TOKEND_ERROR_INIT;
        int chosen = port;

        c->sockets[0] = listen_socket(v4 ? AF_INET : AF_INET6, port, e);
        if (c->sockets[0] < 0)
            return -1;
        chosen = socket_port(c->sockets[0]);
        if (!(v4 && v6))
            return chosen;
        c->sockets[1] = listen_socket(AF_INET6, chosen, &e6);
        if (c->sockets[1] < 0 && errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL && port) {
            /* localhost is also ::1 to the browser: whoever holds that port
             * there would get the code. */
            error_move(e, &e6);
            return -1;
        }
        if (c->sockets[1] >= 0 || errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL) {
            if (c->sockets[1] < 0)
                log_verbose("catcher: %s; listening on 127.0.0.1 only (no IPv6 here)", e6.message);
            error_clear(&e6);
            return chosen;
        }
        /* ::1 has that port taken: try another pair. */
        error_clear(&e6);
        close(c->sockets[0]);
        c->sockets[0] = -1;
    }
    return error_set(e, TOKEND_EX_TEMPFAIL, "cannot find a free loopback port");
}

static int parse_uri(const char *uri, char **host, int *port, char **path, struct tokend_error *e)
{
    g_autoptr(CURLU) u = curl_url();
    char *h = NULL, *p = NULL, *portstr = NULL;

    if (!catcher_handles(uri) || curl_url_set(u, CURLUPART_URL, uri, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !h)
        return error_set(e, TOKEND_EX_CONFIG, "redirect_uri %s is not an http:// loopback address",
                         uri);
    curl_url_get(u, CURLUPART_PATH, &p, 0);
    if (curl_url_get(u, CURLUPART_PORT, &portstr, 0) == CURLUE_OK && portstr)
        *port = atoi(portstr);
    *host = g_strdup(h);
    *path = g_strdup(p && *p ? p : "/");
    curl_free(h);
    curl_free(p);
    curl_free(portstr);
    return 0;
}

/* The configured URI as written, with our port: "http://localhost" stays
 * without a trailing slash, as Microsoft registers it.  (parse_uri has
 * checked it: an http:// loopback URI.) */
static char *uri_with_port(const char *uri, int port)
{
    g_autoptr(GUri) u = g_uri_parse(uri, G_URI_FLAGS_ENCODED, NULL);
    g_autoptr(GUri) with = NULL;

    if (!u)
        return NULL;
    with = g_uri_build(G_URI_FLAGS_ENCODED, g_uri_get_scheme(u), NULL, g_uri_get_host(u), port,
                       g_uri_get_path(u), g_uri_get_query(u), g_uri_get_fragment(u));
    return g_uri_to_string(with);
}

static struct MHD_Daemon *start_daemon(Catcher *c, int i, bool v6)
{
    struct listener *l = &c->listeners[i];
    socklen_t len = sizeof(l->local);
    int fd = c->sockets[i];

    l->catcher = c;
    if (getsockname(fd, (struct sockaddr *)&l->local, &len) < 0)
        return NULL;
    return mhd->start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | (v6 ? MHD_USE_IPv6 : 0), 0, on_accept, l,
        on_request, c, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONNECTION_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, c, MHD_OPTION_END);
}

Catcher *catcher_new(const char *redirect_uri, const char *expected_state, struct tokend_error *e)
{
    g_autoptr(Catcher) c = g_new0(Catcher, 1);
    int port = 0;

    c->sockets[0] = c->sockets[1] = c->ready_fd = -1;
    if (!(mhd = mhdlib_load(e)))
        return NULL;
    g_mutex_init(&c->lock);
    g_cond_init(&c->changed);
    c->state = g_strdup(expected_state);
    c->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->ready_fd < 0) {
        error_set(e, TOKEND_EX_SOFTWARE, "cannot create an event descriptor: %s",
                  g_strerror(errno));
        return NULL;
    }
    if (parse_uri(redirect_uri, &c->host, &port, &c->path, e) < 0)
        return NULL;
    port = bind_sockets(c, c->host, port, e);
    if (port < 0)
        return NULL;
    c->port = port;
    c->redirect_uri = uri_with_port(redirect_uri, port);
    for (int i = 0; i < 2; i++) {
        if (c->sockets[i] < 0)
            continue;
        c->daemons[i] = start_daemon(c, i, i == 1 || g_strcmp0(c->host, "[::1]") == 0);
        if (!c->daemons[i]) {
            error_set(e, TOKEND_EX_SOFTWARE, "cannot start the redirect listener");
            return NULL;
        }
        c->sockets[i] = -1; /* the daemon owns it now */
    }
    log_verbose("catcher: waiting for %s", c->redirect_uri);
    return g_steal_pointer(&c);
}

const char *catcher_redirect_uri(const Catcher *c)
{
    return c->redirect_uri;
}

int catcher_wait(Catcher *c, int timeout_s, RedirectParams **out, struct tokend_error *e)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_s * G_USEC_PER_SEC;
    gint64 page_deadline;

    g_mutex_lock(&c->lock);
    while (!c->result && g_cond_wait_until(&c->changed, &c->lock, deadline))
        ;
    if (!c->result) {
        g_mutex_unlock(&c->lock);
        error_set(e, TOKEND_EX_TEMPFAIL, "no sign-in arrived within %d s", timeout_s);
        error_set_hint(e, "run tokend obtain again (or use --manual to paste the URL)");
        return -1;
    }
    /* Let the browser get its page before the listener goes away. */
    page_deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
    while (!c->delivered && g_cond_wait_until(&c->changed, &c->lock, page_deadline))
        ;
    *out = g_steal_pointer(&c->result);
    c->taken = true; /* a replay of the redirect must not look like a new one */
    g_mutex_unlock(&c->lock);
    return 0;
}

int catcher_fd(const Catcher *c)
{
    return c->ready_fd;
}

/* Whether a pasted address is where this catcher listens: same scheme and
 * host as the redirect URI, our port, the same path. */
static bool catcher_owns(const Catcher *c, const char *address)
{
    g_autofree char *host = NULL;
    g_autofree char *path = NULL;
    struct tokend_error ignored = TOKEND_ERROR_INIT;
    int port = 80; /* a browser shows http://host/ for port 80 */
    bool same;

    if (parse_uri(address, &host, &port, &path, &ignored) < 0) {
        error_clear(&ignored);
        return false;
    }
    same = host && path && g_ascii_strcasecmp(host, c->host) == 0 && port == c->port &&
           strcmp(path, c->path) == 0;
    return same;
}

static int refuse_paste(struct tokend_error *e, const char *what, const Catcher *c)
{
    error_set(e, TOKEND_EX_DATAERR, "%s", what);
    error_set_hint(e,
                   "paste the whole address of the page this sign-in ended on (%s?code=...), "
                   "or finish the sign-in in the browser",
                   c->redirect_uri);
    return -1;
}

int catcher_take_pasted(Catcher *c, const RedirectParams *p, struct tokend_error *e)
{
    int r = 0;

    if (p->bare || !p->address)
        return refuse_paste(e,
                            "a code or parameters alone cannot be checked against this "
                            "sign-in",
                            c);
    if (!catcher_owns(c, p->address))
        return refuse_paste(e, "the pasted address is not the one this sign-in redirects to", c);
    if (!p->state || strcmp(p->state, c->state) != 0)
        return refuse_paste(e,
                            p->state ? "the pasted address belongs to another sign-in "
                                       "attempt (state differs)"
                                     : "the pasted address has no state parameter",
                            c);
    g_mutex_lock(&c->lock);
    if (c->result)
        r = error_set(e, TOKEND_EX_DATAERR, "the browser's redirect arrived first");
    else
        c->taken = true;
    g_mutex_unlock(&c->lock);
    return r;
}

void catcher_free(Catcher *c)
{
    if (!c)
        return;
    for (int i = 0; i < 2; i++) {
        if (c->daemons[i])
            mhd->stop_daemon(c->daemons[i]);
        if (c->sockets[i] >= 0)
            close(c->sockets[i]);
    }
    if (c->ready_fd >= 0)
        close(c->ready_fd);
    redirect_params_free(c->result);
    g_free(c->redirect_uri);
    g_free(c->host);
    g_free(c->path);
    g_free(c->state);
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->changed);
    g_free(c);
}
