/* pkce: RFC 7636 S256 verifiers and challenges, base64url. */

#include <string.h>

#include "tokend/pkce.h"
#include "testutil.h"

/* RFC 7636 Appendix B. */
static const unsigned char rfc_octets[32] = {
    116, 24,  223, 180, 151, 153, 224, 37,  79, 250, 96, 125, 216, 173, 187, 186,
    22,  212, 37,  77,  105, 214, 191, 240, 91, 88,  5,  88,  83,  132, 141, 121,
};
#define RFC_VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define RFC_CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

static bool unreserved_only(const char *s)
{
    /* RFC 7636 section 4.1: ALPHA / DIGIT / "-" / "." / "_" / "~" */
    for (; *s; s++)
        if (!g_ascii_isalnum(*s) && !strchr("-._~", *s))
            return false;
    return true;
}

static void test_rfc7636_example(void)
{
    g_autofree char *verifier = pkce_base64url(rfc_octets, sizeof(rfc_octets));
    g_autofree char *challenge = pkce_challenge(RFC_VERIFIER, strlen(RFC_VERIFIER));

    g_assert_cmpstr(verifier, ==, RFC_VERIFIER);
    g_assert_cmpstr(challenge, ==, RFC_CHALLENGE);
}

static const struct {
    const char *data;
    size_t len;
    const char *encoded;
} base64url_cases[] = {
    {"", 0, ""},
    {"f", 1, "Zg"},
    {"fo", 2, "Zm8"},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg"},
    {"\xfb\xff", 2, "-_8"},
    {"\xfb\xef\xbe", 3, "----"},
    {"\xff\xff\xff", 3, "____"},
    {"\x00\x00", 2, "AAA"},
};

static void test_base64url(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(base64url_cases); i++) {
        g_autofree char *got =
            pkce_base64url((const unsigned char *)base64url_cases[i].data, base64url_cases[i].len);
        g_test_message("case %zu", i);
        g_assert_cmpstr(got, ==, base64url_cases[i].encoded);
    }
    /* Every byte value and length: no padding, no '+' or '/'. */
    for (size_t len = 0; len < 70; len++) {
        unsigned char buf[70];
        g_autofree char *got = NULL;

        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)(255 - (len * 7 + j * 13) % 256);
        got = pkce_base64url(buf, len);
        g_assert_null(strpbrk(got, "=+/"));
        g_assert_cmpuint(strlen(got), ==, (len * 4 + 2) / 3);
        g_assert_true(unreserved_only(got));
    }
}

static void test_new(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(Pkce) a = pkce_new(&e);
    g_autoptr(Pkce) b = pkce_new(&e);
    g_autofree char *challenge = NULL;

    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_cmpint(e.status, ==, 0);
    g_assert_cmpuint(a->verifier->len, >=, 43);
    g_assert_cmpuint(a->verifier->len, <=, 128);
    g_assert_cmpuint(a->verifier->len, ==, strlen(a->verifier->data));
    g_assert_true(unreserved_only(a->verifier->data));
    challenge = pkce_challenge(a->verifier->data, a->verifier->len);
    g_assert_cmpstr(a->challenge, ==, challenge);
    g_assert_cmpuint(strlen(a->challenge), ==, 43);
    g_assert_false(secstr_equal(a->verifier, b->verifier));
    g_assert_cmpstr(a->challenge, !=, b->challenge);
    pkce_free(NULL);
}

static void test_random_string(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    for (int i = 0; i < 100; i++) {
        char *s = pkce_random_string(32, &e);

        g_assert_nonnull(s);
        g_assert_cmpuint(strlen(s), ==, 43);
        g_assert_true(unreserved_only(s));
        g_assert_true(g_hash_table_add(seen, s));
    }
    for (size_t bytes = 0; bytes <= 64; bytes += 16) {
        g_autofree char *s = pkce_random_string(bytes, &e);
        g_assert_cmpuint(strlen(s), ==, (bytes * 4 + 2) / 3);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/pkce/rfc7636-appendix-b", test_rfc7636_example);
    g_test_add_func("/pkce/base64url", test_base64url);
    g_test_add_func("/pkce/new", test_new);
    g_test_add_func("/pkce/random-string", test_random_string);
    return testutil_run();
}
