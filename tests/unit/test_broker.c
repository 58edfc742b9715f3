/* broker: the system broker's request and answer lines, and the reader's
 * side when no broker is there. */

#include <string.h>

#include "tokend/broker.h"
#include "tokend/paths.h"
#include "testutil.h"

static const struct {
    const char *line;
    const char *account; /* NULL: refused */
} requests[] = {
    {"refresh work\n", "work"},
    {"refresh office@example.com\n", "office@example.com"},
    {"refresh a.b_c+d-e\n", "a.b_c+d-e"},
    {"refresh 0123456789012345678901234567890123456789012345678901234567890123\n",
     "0123456789012345678901234567890123456789012345678901234567890123"},
    {"refresh 01234567890123456789012345678901234567890123456789012345678901234\n", NULL},
    {"refresh work", NULL},
    {"refresh work\r\n", NULL},
    {"refresh  work\n", NULL},
    {"refresh work \n", NULL},
    {"Refresh work\n", NULL},
    {"refresh\n", NULL},
    {"refresh \n", NULL},
    {"refresh ../work\n", NULL},
    {"refresh .work\n", NULL},
    {"refresh work\nrefresh work\n", NULL},
    {"token work\n", NULL},
    {"", NULL},
};

static void test_requests(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(requests); i++) {
        g_autofree char *account = broker_parse_request(requests[i].line, strlen(requests[i].line));
        g_assert_cmpstr(account, ==, requests[i].account);
    }
    /* A NUL inside is refused, not cut short. */
    g_assert_null(broker_parse_request("refresh wo\0rk\n", 14));
}

static const struct {
    const char *line;
    int status; /* -1: refused */
    const char *reason;
} answers[] = {
    {"0 refreshed\n", 0, "refreshed"},
    {"0 fresh\n", 0, "fresh"},
    {"75 the server could not be reached\n", 75, "the server could not be reached"},
    {"255 x\n", 255, "x"},
    {"0 \n", 0, ""},
    {"256 x\n", -1, NULL},
    {"0000 x\n", -1, NULL},
    {"0x\n", -1, NULL},
    {" 0 x\n", -1, NULL},
    {"-1 x\n", -1, NULL},
    {"0 x", -1, NULL},
    {"0 a\tb\n", -1, NULL},
    {"0 a\nb\n", -1, NULL},
    {"\n", -1, NULL},
};

static void test_answers(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(answers); i++) {
        g_autofree char *reason = NULL;
        int status = -1;
        int rc = broker_parse_answer(answers[i].line, strlen(answers[i].line), &status, &reason);
        g_assert_cmpint(rc, ==, answers[i].status < 0 ? -1 : 0);
        if (rc == 0) {
            g_assert_cmpint(status, ==, answers[i].status);
            g_assert_cmpstr(reason, ==, answers[i].reason);
        }
    }
}

static void test_answer_line(void)
{
    g_autofree char *plain = broker_answer_line(77, "may not read");
    g_autofree char *odd = broker_answer_line(75, "two\nlines\tand\x1b");
    g_autofree char *wide = g_strnfill(1000, 'x');
    g_autofree char *cut = broker_answer_line(75, wide);

    g_assert_cmpstr(plain, ==, "77 may not read\n");
    g_assert_cmpstr(odd, ==, "75 two?lines?and?\n");
    g_assert_cmpuint(strlen(cut), <=, BROKER_ANSWER_MAX);
    g_assert_true(g_str_has_suffix(cut, "x\n"));
}

static void test_no_broker_is_75(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autofree char *run = testutil_mkdir("run");

    g_setenv("TOKEND_RUNTIMEDIR", run, TRUE);
    paths_set_system(true);
    g_assert_cmpint(broker_request_refresh("work", 1000, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_TEMPFAIL);
    testutil_assert_contains(e.message, "cannot be reached");
    paths_set_system(false);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/broker/requests", test_requests);
    g_test_add_func("/broker/answers", test_answers);
    g_test_add_func("/broker/answer_line", test_answer_line);
    g_test_add_func("/broker/no_broker_is_75", test_no_broker_is_75);
    return testutil_run();
}
