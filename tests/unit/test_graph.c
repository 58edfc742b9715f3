/* graph: each of Microsoft Graph's sendMail answers as the SMTP reply a
 * client gets (learn.microsoft.com/graph/api/user-sendmail,
 * learn.microsoft.com/graph/errors, learn.microsoft.com/graph/throttling),
 * and the relay's dot-unstuffing of the message it sends. */

#include <string.h>

#include "tokend/graph.h"
#include "tokend/relaycmd.h"
#include "testutil.h"

static void test_replies(void)
{
    static const struct {
        long status;
        int retry_after;
        const char *code, *message, *failure;
        const char *start, *contains;
    } cases[] = {
        {202, 0, NULL, NULL, NULL, "250 2.0.0 tokend: work: ", "accepted"},
        {400, 0, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.",
         NULL, "554 5.6.0 ", ": ErrorMimeContentInvalidBase64String: Invalid base64"},
        {403, 0, "ErrorAccessDenied", "Access is denied.", NULL, "550 5.7.1 ", "Mail.Send"},
        {413, 0, NULL, NULL, NULL, "552 5.3.4 ", "3145728"},
        {429, 7, "ApplicationThrottled", NULL, NULL, "451 4.4.5 ", "wait 7 seconds"},
        {503, 0, NULL, NULL, NULL, "451 4.4.3 ", "answered 503"},
        {504, 30, NULL, NULL, NULL, "451 4.4.3 ", "wait 30 seconds"},
        {500, 0, "generalException", NULL, NULL, "451 4.3.0 ", "generalException"},
        {404, 0, "ErrorInvalidUser", NULL, NULL, "554 5.0.0 ", "ErrorInvalidUser"},
        {0, 0, NULL, NULL, "127.0.0.1 did not answer in time", "451 4.4.1 ", "did not answer"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct graph_answer a = {.status = cases[i].status,
                                 .retry_after = cases[i].retry_after,
                                 .code = (char *)cases[i].code,
                                 .message = (char *)cases[i].message,
                                 .failure = (char *)cases[i].failure};
        g_autofree char *reply = graph_smtp_reply(&a, "work");

        g_test_message("status %ld: %s", cases[i].status, reply);
        g_assert_true(g_str_has_prefix(reply, cases[i].start));
        g_assert_nonnull(strstr(reply, cases[i].contains));
        g_assert_null(strpbrk(reply, "\r\n"));
    }
}

static void test_token_refused(void)
{
    struct graph_answer a = {.status = 401, .code = (char *)"InvalidAuthenticationToken"};
    g_autofree char *reply = graph_token_refused(&a, "work");

    g_assert_true(g_str_has_prefix(reply, "454 4.7.0 tokend: work: "));
    g_assert_nonnull(strstr(reply, "InvalidAuthenticationToken"));
}

/* The data as the client sends it, in chunks of every size: the message
 * without dot-stuffing, and the end line's CR LF. */
static void test_unstuff(void)
{
    static const struct {
        const char *data, *message;
    } cases[] = {
        {".\r\n", "\r\n"},
        {"a\r\n.\r\n", "a\r\n\r\n"},
        {"..a\r\n..\r\n.\r\n", ".a\r\n.\r\n\r\n"},
        {"a.\r\nb\r.c\n.d\r\n.\r\n", "a.\r\nb\r.c\n.d\r\n\r\n"},
        {"x\r\n...\r\n.\r\n", "x\r\n..\r\n\r\n"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        size_t len = strlen(cases[i].data);
        for (size_t chunk = 1; chunk <= len; chunk++) {
            g_autoptr(GByteArray) out = g_byte_array_new();
            int state = RELAYCMD_DATA_LINE_START;

            for (size_t off = 0; off < len; off += chunk)
                relaycmd_unstuff(cases[i].data + off, MIN(chunk, len - off), &state, out);
            g_assert_cmpmem(out->data, out->len, cases[i].message, strlen(cases[i].message));
        }
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/graph/replies", test_replies);
    g_test_add_func("/graph/token-refused", test_token_refused);
    g_test_add_func("/graph/unstuff", test_unstuff);
    return g_test_run();
}
