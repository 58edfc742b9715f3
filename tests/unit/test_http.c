/* http: which URLs may be used at all, and how a transport failure comes
 * back (one request and through the pool).  Nothing leaves loopback. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tokend/http.h"
#include "testutil.h"

static void test_check_url(void)
{
    static const char *const ok[] = {
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "https://idp.example:8443/t?x=1",
        "HTTPS://IDP.EXAMPLE/",
        "http://127.0.0.1:9/token",
        "http://localhost/token",
        "http://[::1]:8080/",
    };
    static const struct {
        const char *url, *fragment;
    } bad[] = {
        {"http://idp.example/token", "only https://"},
        {"http://127.0.0.1.evil.example/", "only https://"},
        {"http://0.0.0.0/", "only https://"},
        {"ftp://idp.example/", "only https://"},
        {"file:///etc/passwd", "not a valid URL"},
        {"not a url", "not a valid URL"},
        {"", "not a valid URL"},
        {NULL, "no URL configured"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;

        g_test_message("ok: %s", ok[i]);
        g_assert_cmpint(http_check_url(ok[i], &e), ==, 0);
        g_assert_null(e.message);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Http) h = http_new(NULL);
        g_autoptr(HttpResponse) r = NULL;

        g_test_message("bad: %s", bad[i].url ? bad[i].url : "(null)");
        g_assert_cmpint(http_check_url(bad[i].url, &e), ==, -1);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        testutil_assert_contains(e.message, bad[i].fragment);
        error_clear(&e);
        /* A request is refused the same way, before any connection. */
        g_assert_cmpint(http_request(h, bad[i].url, NULL, &r, &e), ==, -1);
        g_assert_null(r);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    }
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(in);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(bind(fd, (struct sockaddr *)&in, sizeof(in)), ==, 0);
    g_assert_cmpint(getsockname(fd, (struct sockaddr *)&in, &len), ==, 0);
    close(fd);
    return ntohs(in.sin_port);
}

struct outcome {
    int calls;
    bool got_response;
    int status;
};

static void on_done(void *user, HttpResponse *r, struct tokend_error *e)
{
    struct outcome *o = user;

    o->calls++;
    o->got_response = r != NULL;
    o->status = e->status;
    http_response_free(r);
}

static void test_transport_error(void)
{
    g_autofree char *url = g_strdup_printf("http://127.0.0.1:%d/token", closed_port());
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(Http) h = http_new(NULL);
    g_autoptr(HttpResponse) r = NULL;
    g_autoptr(HttpMulti) m = http_multi_new(2);
    struct outcome o = {0};

    g_assert_cmpint(http_request(h, url, NULL, &r, &e), ==, -1);
    g_assert_null(r);
    g_assert_cmpint(e.status, ==, TOKEND_EX_TEMPFAIL);
    error_clear(&e);

    g_assert_cmpint(http_multi_add(m, url, NULL, NULL, NULL, on_done, &o, &e), ==, 0);
    g_assert_cmpint(http_multi_add(m, "http://idp.example/", NULL, NULL, NULL, on_done, &o, &e), ==,
                    -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    http_multi_run(m);
    g_assert_cmpint(o.calls, ==, 1);
    g_assert_false(o.got_response);
    g_assert_cmpint(o.status, ==, TOKEND_EX_TEMPFAIL);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/http/check-url", test_check_url);
    g_test_add_func("/http/transport-error", test_transport_error);
    return testutil_run();
}
