/* secstr: the secret string type, its growth and form encoding. */

#include <string.h>

#include "tokend/secstr.h"
#include "testutil.h"

static const struct {
    const char *value;
    const char *encoded;
} form_cases[] = {
    {"", ""},
    {"AZaz09-._~", "AZaz09-._~"},
    {"a b", "a+b"},
    {"a&b=c", "a%26b%3Dc"},
    {"https://x/y", "https%3A%2F%2Fx%2Fy"},
    {"a+b", "a%2Bb"},
    {"100%", "100%25"},
    {"?#[]@!$'()*,;", "%3F%23%5B%5D%40%21%24%27%28%29%2A%2C%3B"},
    {"\r\n\t", "%0D%0A%09"},
    {"caf\xc3\xa9", "caf%C3%A9"},
    {"\xff", "%FF"},
};

static void test_append_form(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(form_cases); i++) {
        g_autoptr(SecStr) s = secstr_new(0);
        g_autofree char *want = g_strconcat("k=", form_cases[i].encoded, NULL);

        secstr_append_form(s, "k", form_cases[i].value, strlen(form_cases[i].value));
        g_test_message("case %zu", i);
        g_assert_cmpstr(s->data, ==, want);
        g_assert_cmpuint(s->len, ==, strlen(want));
    }
}

static void test_append_form_pairs(void)
{
    g_autoptr(SecStr) s = secstr_new(4);

    secstr_append_form(s, "grant_type", "refresh_token", 13);
    secstr_append_form(s, "scope", "a b", 3);
    /* value_len is honoured: only "abc" of "abcdef". */
    secstr_append_form(s, "code", "abcdef", 3);
    secstr_append_form(s, "nul", "a\0b", 3);
    g_assert_cmpstr(s->data, ==, "grant_type=refresh_token&scope=a+b&code=abc&nul=a%00b");
}

/* Many appends of assorted sizes keep every byte, NUL-terminated. */
static void test_growth(void)
{
    g_autoptr(SecStr) s = secstr_new(0);
    g_autoptr(GString) want = g_string_new(NULL);

    for (unsigned i = 0; i < 2000; i++) {
        char chunk[300];
        size_t n = (i * 37) % sizeof(chunk);

        for (size_t j = 0; j < n; j++)
            chunk[j] = (char)('a' + (i + j) % 26);
        secstr_append(s, chunk, n);
        g_string_append_len(want, chunk, (gssize)n);
        if (i % 7 == 0) {
            /* The separator only goes between pairs. */
            secstr_append_form(s, "k", "v w", 3);
            g_string_append(want, want->len ? "&k=v+w" : "k=v+w");
        }
        g_assert_cmpuint(s->len, ==, want->len);
        g_assert_cmpuint(s->cap, >, s->len);
        g_assert_cmpint(s->data[s->len], ==, '\0');
    }
    g_assert_cmpmem(s->data, s->len, want->str, want->len);
}

static void test_from_and_dup(void)
{
    g_autoptr(SecStr) empty = secstr_from("", 0);
    g_autoptr(SecStr) a = secstr_from("token-with\0nul", 14);
    g_autoptr(SecStr) b = secstr_dup(a);
    g_autoptr(SecStr) c = secstr_new(100);

    g_assert_nonnull(empty->data);
    g_assert_cmpuint(empty->len, ==, 0);
    g_assert_cmpstr(empty->data, ==, "");
    g_assert_cmpuint(a->len, ==, 14);
    g_assert_cmpmem(b->data, b->len, "token-with\0nul", 14);
    g_assert_true(b->data != a->data);
    g_assert_cmpuint(c->len, ==, 0);
    g_assert_cmpuint(c->cap, >=, 101);
    secstr_append_str(c, "abc");
    g_assert_cmpstr(c->data, ==, "abc");
    g_assert_null(secstr_dup(NULL));
    secstr_free(NULL);
    secure_free_str(NULL);
    secure_free_str(g_strdup("secret"));
}

static void test_equal(void)
{
    g_autoptr(SecStr) a = secstr_from("abc", 3);
    g_autoptr(SecStr) a2 = secstr_new(1000);
    g_autoptr(SecStr) b = secstr_from("abd", 3);
    g_autoptr(SecStr) ab = secstr_from("ab", 2);
    g_autoptr(SecStr) nul1 = secstr_from("ab\0c", 4);
    g_autoptr(SecStr) nul2 = secstr_from("ab\0d", 4);
    g_autoptr(SecStr) e1 = secstr_new(0);
    g_autoptr(SecStr) e2 = secstr_from("", 0);

    secstr_append_str(a2, "abc");
    g_assert_true(secstr_equal(a, a2));
    g_assert_true(secstr_equal(a, a));
    g_assert_false(secstr_equal(a, b));
    g_assert_false(secstr_equal(a, ab));
    g_assert_false(secstr_equal(ab, a));
    g_assert_false(secstr_equal(nul1, nul2));
    g_assert_true(secstr_equal(e1, e2));
    g_assert_false(secstr_equal(a, NULL));
    g_assert_false(secstr_equal(NULL, a));
    g_assert_false(secstr_equal(NULL, NULL));
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/secstr/append-form", test_append_form);
    g_test_add_func("/secstr/append-form/pairs", test_append_form_pairs);
    g_test_add_func("/secstr/growth", test_growth);
    g_test_add_func("/secstr/from-and-dup", test_from_and_dup);
    g_test_add_func("/secstr/equal", test_equal);
    return testutil_run();
}
