/* error: one-line folding, prefixes and the error struct's life cycle. */

#include <string.h>

#include "tokend/error.h"
#include "testutil.h"

static const struct {
    const char *in;
    size_t max;
    const char *out;
} one_line_cases[] = {
    {"plain text", 100, "plain text"},
    {"AADSTS70008: expired.\r\nTrace ID: x", 100, "AADSTS70008: expired. Trace ID: x"},
    {"a\r\n\r\n\t  b", 100, "a b"},
    {"  leading and trailing  \n", 100, "leading and trailing"},
    {"bell\adel\x7f"
     "esc\x1b[31m",
     100, "bell del esc [31m"},
    {"nul-free\x01\x02\x03 controls", 100, "nul-free controls"},
    {"line\xe2\x80\xa8separator", 100, "line separator"}, /* U+2028 */
    {"next\xc2\x85line", 100, "next line"},               /* U+0085 */
    {"bad\xff\xfe utf8", 100, "bad utf8"},
    {"caf\xc3\xa9", 100, "caf\xc3\xa9"},
    {"abcdef", 3, "abc..."},
    {"abc", 3, "abc"},
    {"", 10, ""},
    {NULL, 10, ""},
    {"\r\n", 10, ""},
};

static void test_one_line(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(one_line_cases); i++) {
        g_autofree char *got = error_one_line(one_line_cases[i].in, one_line_cases[i].max);
        g_test_message("case %zu", i);
        g_assert_cmpstr(got, ==, one_line_cases[i].out);
    }
}

/* Truncation keeps UTF-8 whole and leaves no control characters. */
static void test_one_line_truncates(void)
{
    g_autoptr(GString) long_text = g_string_new(NULL);

    for (int i = 0; i < 500; i++)
        g_string_append(long_text, "\xc3\xa9t\xc3\xa9\r\n");
    for (size_t max = 1; max < 40; max++) {
        g_autofree char *got = error_one_line(long_text->str, max);
        g_assert_true(g_utf8_validate(got, -1, NULL));
        g_assert_true(g_str_has_suffix(got, "..."));
        /* One more character (up to 4 bytes) and a folded space may overshoot. */
        g_assert_cmpuint(strlen(got), <=, max + 5 + 3);
        g_assert_null(strpbrk(got, "\r\n\t"));
    }
}

static void test_set(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    g_assert_cmpint(error_set(&e, TOKEND_EX_CONFIG, "bad %s: %d\r\nmore", "key", 42), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    g_assert_cmpstr(e.message, ==, "bad key: 42 more");
    error_set_hint(&e, "fix it\nnow");
    error_set_detail(&e, "server\r\nwords");
    e.retry_after = 5;
    g_assert_cmpstr(e.hint, ==, "fix it now");
    g_assert_cmpstr(e.detail, ==, "server words");
    /* A new error replaces everything of the old one. */
    g_assert_cmpint(error_set(&e, TOKEND_EX_TEMPFAIL, "later"), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_TEMPFAIL);
    g_assert_cmpstr(e.message, ==, "later");
    g_assert_null(e.hint);
    g_assert_null(e.detail);
    g_assert_cmpint(e.retry_after, ==, 0);
    /* A NULL error is allowed and still returns -1. */
    g_assert_cmpint(error_set(NULL, TOKEND_EX_SOFTWARE, "x"), ==, -1);
    error_set_hint(NULL, "x");
    error_set_detail(NULL, "x");
}

static void test_prefix(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    error_prefix(&e, "nothing to prefix");
    g_assert_null(e.message);
    error_set(&e, TOKEND_EX_CANTCREAT, "cannot write");
    error_prefix(&e, "%s", "work");
    g_assert_cmpstr(e.message, ==, "work: cannot write");
    error_prefix(&e, "a\nb");
    g_assert_cmpstr(e.message, ==, "a b: work: cannot write");
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
}

static void test_clear_and_move(void)
{
    g_auto(TokendError) a = TOKEND_ERROR_INIT;
    g_auto(TokendError) b = TOKEND_ERROR_INIT;

    error_set(&a, TOKEND_EX_NOPERM, "sign in");
    error_set_hint(&a, "run tokend obtain");
    a.retry_after = 3;
    error_set(&b, TOKEND_EX_USAGE, "old");
    error_move(&b, &a);
    g_assert_cmpint(b.status, ==, TOKEND_EX_NOPERM);
    g_assert_cmpstr(b.message, ==, "sign in");
    g_assert_cmpstr(b.hint, ==, "run tokend obtain");
    g_assert_cmpint(b.retry_after, ==, 3);
    g_assert_cmpint(a.status, ==, 0);
    g_assert_null(a.message);
    g_assert_null(a.hint);
    error_clear(&b);
    g_assert_cmpint(b.status, ==, 0);
    g_assert_null(b.message);
    error_clear(NULL);
}

static void test_escape(void)
{
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"plain text, caf\xc3\xa9", "plain text, caf\xc3\xa9"},
        {"\x1b[31mred", "\\x1b[31mred"},
        {"one\ntwo\r\tthree", "one\\ntwo\\r\\tthree"},
        {"back\\slash", "back\\\\slash"},
        {"bell\x07 del\x7f", "bell\\x07 del\\x7f"},
        {"c1 \xc2\x9b", "c1 \\x9b"},           /* U+009B, CSI */
        {"bidi \xe2\x80\xae", "bidi \\u202e"}, /* RIGHT-TO-LEFT OVERRIDE */
        {"ls \xe2\x80\xa8", "ls \\u2028"},     /* LINE SEPARATOR */
        {"bad \xff\xfe utf8", "bad \\xff\\xfe utf8"},
        {"", ""},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
        g_autofree char *out = error_escape(rows[i].in);
        g_assert_cmpstr(out, ==, rows[i].out);
    }
    g_free(error_escape(NULL));
}

static void test_status_names(void)
{
    static const struct {
        int status;
        const char *name;
    } names[] = {
        {TOKEND_OK, "ok"},
        {TOKEND_EX_USAGE, "usage"},
        {TOKEND_EX_DATAERR, "bad-response"},
        {TOKEND_EX_UNAVAILABLE, "keyring-unavailable"},
        {TOKEND_EX_SOFTWARE, "internal"},
        {TOKEND_EX_CANTCREAT, "cannot-write"},
        {TOKEND_EX_TEMPFAIL, "temporary"},
        {TOKEND_EX_NOPERM, "sign-in-needed"},
        {TOKEND_EX_CONFIG, "config"},
        {1, "error"},
    };

    /* The values are sysexits(3)'s, which the man page documents. */
    g_assert_cmpint(TOKEND_EX_DATAERR, ==, 65);
    g_assert_cmpint(TOKEND_EX_CANTCREAT, ==, 73);
    g_assert_cmpint(TOKEND_EX_TEMPFAIL, ==, 75);
    g_assert_cmpint(TOKEND_EX_NOPERM, ==, 77);
    g_assert_cmpint(TOKEND_EX_CONFIG, ==, 78);
    for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
        g_assert_cmpstr(error_status_name(names[i].status), ==, names[i].name);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/error/one-line", test_one_line);
    g_test_add_func("/error/one-line/truncates", test_one_line_truncates);
    g_test_add_func("/error/set", test_set);
    g_test_add_func("/error/prefix", test_prefix);
    g_test_add_func("/error/clear-and-move", test_clear_and_move);
    g_test_add_func("/error/status-names", test_status_names);
    g_test_add_func("/error/escape", test_escape);
    return testutil_run();
}
