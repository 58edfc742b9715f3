/* peercred: the owner of a loopback TCP peer, by sock_diag and from the
 * /proc/net/tcp{,6} table. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tokend/peercred.h"
#include "testutil.h"

struct pair {
    int listener, client, server;
    struct sockaddr_storage peer, local;
};

/* A connected loopback pair; false where the family is missing. */
static bool pair_open(int family, struct pair *p)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

    ss.ss_family = (sa_family_t)family;
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
    p->listener = socket(family, SOCK_STREAM, 0);
    if (p->listener < 0 || bind(p->listener, (struct sockaddr *)&ss, len) < 0) {
        if (p->listener >= 0)
            close(p->listener);
        return false;
    }
    g_assert_cmpint(listen(p->listener, 4), ==, 0);
    len = sizeof(p->local);
    g_assert_cmpint(getsockname(p->listener, (struct sockaddr *)&p->local, &len), ==, 0);
    p->client = socket(family, SOCK_STREAM, 0);
    g_assert_cmpint(connect(p->client, (struct sockaddr *)&p->local, len), ==, 0);
    p->server = accept(p->listener, NULL, NULL);
    g_assert_cmpint(p->server, >=, 0);
    len = sizeof(p->peer);
    g_assert_cmpint(getsockname(p->client, (struct sockaddr *)&p->peer, &len), ==, 0);
    return true;
}

static void pair_close(struct pair *p)
{
    close(p->client);
    close(p->server);
    close(p->listener);
}

static void test_live(gconstpointer data)
{
    int family = GPOINTER_TO_INT(data);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    struct pair p;
    struct sockaddr_storage other;
    uid_t uid = 12345;

    if (!pair_open(family, &p)) {
        /* As in the integration tests: a test that cannot run fails, unless
         * TOKEND_ALLOW_SKIP=1 says this machine lacks it on purpose. */
        if (g_strcmp0(g_getenv("TOKEND_ALLOW_SKIP"), "1") == 0)
            g_test_skip("no such loopback here");
        else
            g_test_fail_printf("no such loopback here (TOKEND_ALLOW_SKIP=1 lets it skip)");
        return;
    }
    g_assert_cmpint(
        peercred_tcp_uid((struct sockaddr *)&p.peer, (struct sockaddr *)&p.local, &uid, &e), ==, 0);
    g_assert_cmpuint(uid, ==, geteuid());
    /* The same peer port towards another server port: no such socket. */
    other = p.local;
    ((struct sockaddr_in *)&other)->sin_port ^= htons(1); /* same offset in sockaddr_in6 */
    g_assert_cmpint(
        peercred_tcp_uid((struct sockaddr *)&p.peer, (struct sockaddr *)&other, &uid, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_NOPERM);
    error_clear(&e);
    /* Gone (TIME_WAIT, which the kernel says belongs to uid 0): nothing. */
    pair_close(&p);
    g_assert_cmpint(
        peercred_tcp_uid((struct sockaddr *)&p.peer, (struct sockaddr *)&p.local, &uid, &e), ==,
        -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_NOPERM);
}

static struct sockaddr_storage v4(const char *addr, int port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    g_assert_cmpint(inet_pton(AF_INET, addr, &in->sin_addr), ==, 1);
    return ss;
}

static struct sockaddr_storage v6(const char *addr, int port)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    g_assert_cmpint(inet_pton(AF_INET6, addr, &in6->sin6_addr), ==, 1);
    return ss;
}

#define HEAD                                                                                       \
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "  \
    "inode\n"

static const char table4[] =
    HEAD "   0: 0100007F:A000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
         "0 1 1 0 100 0 0 10 0\n"
         "   1: 0100007F:C350 0100007F:A000 01 00000000:00000000 00:00000000 00000000 65534        "
         "0 2 1 0 20 4 30 10 -1\n"
         "   2: 0100007F:A000 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        "
         "0 3 1 0 20 4 30 10 -1\n"
         "   3: 0100007F:C351 0100007F:A000 01 00000000:00000000 00:00000000 00000000  1000\n"
         "   4: 0100007F:C352 0100007F:A000 01 00000000:00000000 00:00000000 00000000  -1 0 4\n"
         "   5: 0100007F:C353 0100007F:A000\n"
         "   6: 0100007F:C354 0100007F:A000 06 00000000:00000000 03:00000AE6 00000000     0        "
         "0 0 3\n";

static const char table6[] =
    HEAD "   0: 00000000000000000000000001000000:A000 00000000000000000000000000000000:0000 0A "
         "00000000:00000000 00:00000000 00000000     0        0 1 1\n"
         "   1: 00000000000000000000000001000000:C350 00000000000000000000000001000000:A000 01 "
         "00000000:00000000 00:00000000 00000000  1001        0 2 1\n";

static void test_proc_table(void)
{
    static const struct {
        const char *table;
        int family;
        const char *peer;
        int peer_port;
        const char *server;
        int server_port;
        int want; /* uid, or -1 for no match */
    } rows[] = {
        {table4, AF_INET, "127.0.0.1", 50000, "127.0.0.1", 40960, 65534},
        {table4, AF_INET, "127.0.0.1", 50001, "127.0.0.1", 40960, 1000},
        {table4, AF_INET, "127.0.0.1", 40960, "127.0.0.1", 50000, 0},
        {table4, AF_INET, "127.0.0.1", 50000, "127.0.0.1", 40961, -1}, /* other server port */
        {table4, AF_INET, "127.0.0.2", 50000, "127.0.0.1", 40960, -1}, /* other address */
        {table4, AF_INET, "127.0.0.1", 50002, "127.0.0.1", 40960, -1}, /* uid not a number */
        {table4, AF_INET, "127.0.0.1", 50003, "127.0.0.1", 40960, -1}, /* short row */
        {table4, AF_INET, "127.0.0.1", 50004, "127.0.0.1", 40960, -1}, /* TIME_WAIT */
        {table4, AF_INET, "127.0.0.1", 12345, "127.0.0.1", 40960, -1},
        {"", AF_INET, "127.0.0.1", 50000, "127.0.0.1", 40960, -1},
        {table6, AF_INET6, "::1", 50000, "::1", 40960, 1001},
        {table6, AF_INET6, "::1", 50000, "::2", 40960, -1},
        {table4, AF_INET6, "::1", 50000, "::1", 40960, -1}, /* v4 rows never match v6 */
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        bool is4 = rows[i].family == AF_INET;
        struct sockaddr_storage peer =
            is4 ? v4(rows[i].peer, rows[i].peer_port) : v6(rows[i].peer, rows[i].peer_port);
        struct sockaddr_storage server =
            is4 ? v4(rows[i].server, rows[i].server_port) : v6(rows[i].server, rows[i].server_port);
        uid_t uid = 424242;
        int r = peercred_uid_from_proc_table(rows[i].table, (struct sockaddr *)&peer,
                                             (struct sockaddr *)&server, &uid);

        g_test_message("row %zu", i);
        g_assert_cmpint(r, ==, rows[i].want < 0 ? -1 : 0);
        if (rows[i].want >= 0)
            g_assert_cmpuint(uid, ==, (uid_t)rows[i].want);
    }
}

/* The fallback reads what the kernel prints: the live pair is in it. */
static void test_proc_live(void)
{
    struct pair p;
    g_autofree char *table = NULL;
    uid_t uid = 12345;

    g_assert_true(pair_open(AF_INET, &p));
    g_assert_true(g_file_get_contents("/proc/net/tcp", &table, NULL, NULL));
    g_assert_cmpint(peercred_uid_from_proc_table(table, (struct sockaddr *)&p.peer,
                                                 (struct sockaddr *)&p.local, &uid),
                    ==, 0);
    g_assert_cmpuint(uid, ==, geteuid());
    pair_close(&p);
}

/* Listeners: 127.0.0.1:40960 (uid 0), 0.0.0.0:40961 (uid 1000) and
 * 127.0.0.2:40961 (uid 65534), an established socket on 40962 (not a
 * listener); IPv6: :::40963 (uid 1001), ::ffff:127.0.0.1:40964 (uid 1002),
 * ::1:40965 (uid 1003). */
static const char listen4[] =
    HEAD "   0: 0100007F:A000 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        "
         "0 1\n"
         "   1: 00000000:A001 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        "
         "0 2\n"
         "   2: 0200007F:A001 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        "
         "0 3\n"
         "   3: 0100007F:A002 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        "
         "0 4\n";

static const char listen6[] =
    HEAD "   0: 00000000000000000000000000000000:A003 00000000000000000000000000000000:0000 0A "
         "00000000:00000000 00:00000000 00000000  1001        0 1\n"
         "   1: 0000000000000000FFFF00000100007F:A004 00000000000000000000000000000000:0000 0A "
         "00000000:00000000 00:00000000 00000000  1002        0 2\n"
         "   2: 00000000000000000000000001000000:A005 00000000000000000000000000000000:0000 0A "
         "00000000:00000000 00:00000000 00000000  1003        0 3\n";

static void test_listener_table(void)
{
    static const struct {
        const char *table;
        int family;
        const char *server;
        int port;
        int want; /* uid, or -1 for none */
    } rows[] = {
        {listen4, AF_INET, "127.0.0.1", 40960, 0},
        {listen4, AF_INET, "127.0.0.1", 40961, 1000},  /* the wildcard */
        {listen4, AF_INET, "127.0.0.2", 40961, 65534}, /* the exact address wins */
        {listen4, AF_INET, "127.0.0.1", 40962, -1},    /* established, not listening */
        {listen4, AF_INET, "127.0.0.1", 40970, -1},
        {listen4, AF_INET6, "::1", 40960, -1},
        {listen6, AF_INET6, "127.0.0.1", 40963, 1001}, /* IPv4 through a v6 wildcard */
        {listen6, AF_INET6, "127.0.0.1", 40964, 1002}, /* through its v4-mapped form */
        {listen6, AF_INET6, "127.0.0.2", 40964, -1},
        {listen6, AF_INET6, "::1", 40965, 1003},
        {listen6, AF_INET6, "::1", 40963, 1001},
        {listen6, AF_INET6, "::2", 40965, -1},
        {listen6, AF_INET6, "::ffff:127.0.0.1", 40964, 1002},
        {"", AF_INET, "127.0.0.1", 40960, -1},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        bool is6 = strchr(rows[i].server, ':') != NULL;
        struct sockaddr_storage server =
            is6 ? v6(rows[i].server, rows[i].port) : v4(rows[i].server, rows[i].port);
        uid_t uid = 424242;
        int r = peercred_listener_from_proc_table(rows[i].table, rows[i].family,
                                                  (struct sockaddr *)&server, &uid);

        g_test_message("row %zu", i);
        g_assert_cmpint(r, ==, rows[i].want < 0 ? -1 : 0);
        if (rows[i].want >= 0)
            g_assert_cmpuint(uid, ==, (uid_t)rows[i].want);
    }
}

/* Our own listener is found as ours, by sock_diag and in the table; a
 * closed port has none. */
static void test_listener_live(gconstpointer data)
{
    int family = GPOINTER_TO_INT(data);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *table = NULL;
    struct pair p;
    uid_t uid = 12345;

    if (!pair_open(family, &p)) {
        g_test_skip("no such loopback here");
        return;
    }
    g_assert_cmpint(peercred_listener_uid((struct sockaddr *)&p.local, &uid, &e), ==, 0);
    g_assert_cmpuint(uid, ==, geteuid());
    g_assert_true(g_file_get_contents(family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6",
                                      &table, NULL, NULL));
    uid = 12345;
    g_assert_cmpint(
        peercred_listener_from_proc_table(table, family, (struct sockaddr *)&p.local, &uid), ==, 0);
    g_assert_cmpuint(uid, ==, geteuid());
    pair_close(&p);
    g_assert_cmpint(peercred_listener_uid((struct sockaddr *)&p.local, &uid, &e), ==, -1);
    g_assert_nonnull(e.message);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_data_func("/peercred/live-v4", GINT_TO_POINTER(AF_INET), test_live);
    g_test_add_data_func("/peercred/live-v6", GINT_TO_POINTER(AF_INET6), test_live);
    g_test_add_func("/peercred/proc-table", test_proc_table);
    g_test_add_func("/peercred/proc-live", test_proc_live);
    g_test_add_func("/peercred/listener-table", test_listener_table);
    g_test_add_data_func("/peercred/listener-live-v4", GINT_TO_POINTER(AF_INET),
                         test_listener_live);
    g_test_add_data_func("/peercred/listener-live-v6", GINT_TO_POINTER(AF_INET6),
                         test_listener_live);
    return testutil_run();
}
