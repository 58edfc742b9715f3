/* idtoken: the claims of an ID token, read defensively; which claim names
 * the account. */

#include <string.h>

#include "tokend/idtoken.h"
#include "tokend/pkce.h"
#include "testutil.h"

#define HEADER "eyJhbGciOiJFUzI1NiIsImtpZCI6InRlc3QifQ" /* {"alg":"ES256","kid":"test"} */
#define CLIENT "tokend-native"

/* header.base64url(payload).signature */
static char *jwt(const char *payload)
{
    g_autofree char *body = pkce_base64url((const guchar *)payload, strlen(payload));
    return g_strconcat(HEADER ".", body, ".c2lnbmF0dXJl", NULL);
}

static const struct {
    const char *name;
    const char *payload;
    const char *sub, *email, *preferred_username, *upn;
} good[] = {
    {"all",
     "{\"aud\":\"" CLIENT "\",\"sub\":\"s1\",\"email\":\"a@b.example\","
     "\"preferred_username\":\"alice\",\"upn\":\"alice@corp.example\"}",
     "s1", "a@b.example", "alice", "alice@corp.example"},
    {"sub-only", "{\"aud\":\"" CLIENT "\",\"sub\":\"alice\"}", "alice", NULL, NULL, NULL},
    {"aud-array", "{\"aud\":[\"x\",\"" CLIENT "\"],\"email\":\"a@b.example\"}", NULL, "a@b.example",
     NULL, NULL},
    {"non-strings-dropped",
     "{\"aud\":\"" CLIENT "\",\"sub\":1,\"email\":null,"
     "\"preferred_username\":[\"a\"],\"upn\":{}}",
     NULL, NULL, NULL, NULL},
    {"control-chars-dropped",
     "{\"aud\":\"" CLIENT "\",\"email\":\"a@b\\n.example\","
     "\"upn\":\"x\\u001by\",\"sub\":\"\"}",
     NULL, NULL, NULL, NULL},
    {"unicode-kept", "{\"aud\":\"" CLIENT "\",\"email\":\"j\\u00fcrgen@b.example\"}", NULL,
     "j\xc3\xbcrgen@b.example", NULL, NULL},
};

static void test_good(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *t = jwt(good[i].payload);
        g_autoptr(IdClaims) c = NULL;

        g_test_message("case %s", good[i].name);
        g_assert_cmpint(idtoken_parse(t, strlen(t), CLIENT, &c, &e), ==, 0);
        g_assert_cmpstr(c->sub, ==, good[i].sub);
        g_assert_cmpstr(c->email, ==, good[i].email);
        g_assert_cmpstr(c->preferred_username, ==, good[i].preferred_username);
        g_assert_cmpstr(c->upn, ==, good[i].upn);
    }
}

static const struct {
    const char *name;
    const char *token; /* used as is, or NULL to build one from payload */
    const char *payload;
    const char *words;
} bad[] = {
    {"empty", "", NULL, "empty"},
    {"one-part", "abc", NULL, "not a signed JWT"},
    {"two-parts", HEADER ".e30", NULL, "not a signed JWT"},
    {"encrypted-five-parts", "a.b.c.d.e", NULL, "not a signed JWT"},
    {"payload-not-base64url", HEADER ".e30+.sig", NULL, "base64url"},
    {"payload-padded", HEADER ".e30=.sig", NULL, "base64url"},
    {"payload-bad-length", HEADER ".e30xx.sig", NULL, "base64url"},
    {"payload-empty", HEADER "..sig", NULL, "base64url"},
    {"not-json", NULL, "not json", "JSON object"},
    {"array", NULL, "[\"" CLIENT "\"]", "JSON object"},
    {"trailing-garbage", NULL, "{\"aud\":\"" CLIENT "\"} x", "JSON object"},
    {"nul-escaped", NULL, "{\"aud\":\"" CLIENT "\",\"email\":\"a\\u0000@evil\"}", "NUL"},
    {"other-audience", NULL, "{\"aud\":\"someone-else\",\"email\":\"a@b\"}", "aud"},
    {"no-audience", NULL, "{\"email\":\"a@b\"}", "aud"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *built = bad[i].payload ? jwt(bad[i].payload) : NULL;
        const char *t = built ? built : bad[i].token;
        g_autoptr(IdClaims) c = NULL;

        g_test_message("case %s", bad[i].name);
        g_assert_cmpint(idtoken_parse(t, strlen(t), CLIENT, &c, &e), ==, -1);
        g_assert_null(c);
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
        testutil_assert_contains(e.message, "id_token");
        if (bad[i].words)
            testutil_assert_contains(e.message, bad[i].words);
    }
}

static void test_bounded(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(GString) p = g_string_new("{\"aud\":\"" CLIENT "\",\"x\":\"");
    g_autofree char *t = NULL;
    g_autoptr(IdClaims) c = NULL;
    g_autofree char *long_email = g_strnfill(300, 'a');
    g_autofree char *payload =
        g_strdup_printf("{\"aud\":\"" CLIENT "\",\"email\":\"%s\"}", long_email);
    g_autofree char *t2 = jwt(payload);

    for (int i = 0; i < 20000; i++)
        g_string_append_c(p, 'x');
    g_string_append(p, "\"}");
    t = jwt(p->str);
    g_assert_cmpint(idtoken_parse(t, strlen(t), CLIENT, &c, &e), ==, -1);
    testutil_assert_contains(e.message, "too long");
    /* A NUL in the payload would hide what follows from cJSON. */
    {
        static const char raw[] = "{\"aud\":\"" CLIENT "\",\"email\":\"a\"}\0x";
        g_autofree char *body = pkce_base64url((const guchar *)raw, sizeof(raw) - 1);
        g_autofree char *t3 = g_strconcat(HEADER ".", body, ".sig", NULL);
        g_assert_cmpint(idtoken_parse(t3, strlen(t3), CLIENT, &c, &e), ==, -1);
        testutil_assert_contains(e.message, "NUL");
        error_clear(&e);
    }
    /* A claim longer than any name is dropped, not truncated. */
    g_assert_cmpint(idtoken_parse(t2, strlen(t2), CLIENT, &c, &e), ==, 0);
    g_assert_null(c->email);
}

static const struct {
    const char *name;    /* the configured name */
    const char *matches; /* the claim that matches it, or NULL */
} matches[] = {
    {"alice@corp.example", "Alice@Corp.Example"}, /* email, ASCII case ignored */
    {"ALICE@CORP.EXAMPLE", "Alice@Corp.Example"},
    {"a.smith", "A.Smith"},                                               /* preferred_username */
    {"a.smith@tenant.onmicrosoft.com", "a.smith@Tenant.onmicrosoft.com"}, /* upn */
    {"S-123", "S-123"},                                                   /* sub, exactly */
    {"s-123", NULL}, /* sub is case-sensitive */
    {"alice@corp.example.", NULL},
    {"alice", NULL},
    {"", NULL},
};

static void test_match(void)
{
    IdClaims c = {.sub = "S-123",
                  .email = "Alice@Corp.Example",
                  .preferred_username = "A.Smith",
                  .upn = "a.smith@Tenant.onmicrosoft.com"};
    IdClaims sub_only = {.sub = "S-123"};

    for (size_t i = 0; i < G_N_ELEMENTS(matches); i++) {
        g_test_message("case %s", matches[i].name);
        g_assert_cmpstr(idtoken_match(&c, matches[i].name), ==, matches[i].matches);
    }
    g_assert_null(idtoken_match(&c, NULL));
    g_assert_null(idtoken_match(NULL, "x"));
    g_assert_true(idtoken_has_name(&c));
    g_assert_false(idtoken_has_name(&sub_only));
    g_assert_cmpstr(idtoken_best_name(&c), ==, "Alice@Corp.Example");
    g_assert_cmpstr(idtoken_best_name(&sub_only), ==, "S-123");
}

/* The same claims from a userinfo answer. */
static void test_userinfo(void)
{
    static const struct {
        const char *json, *sub, *email, *fragment;
    } cases[] = {
        {"{\"sub\":\"alice\",\"email\":\"Alice@Corp.Example\"}", "alice", "Alice@Corp.Example",
         NULL},
        {" {\"sub\":\"alice\"} \n", "alice", NULL, NULL},
        {"{\"sub\":\"alice\",\"email\":7}", "alice", NULL, NULL},
        {"{\"sub\":\"a\"} x", NULL, NULL, "not a JSON object"},
        {"[\"sub\"]", NULL, NULL, "not a JSON object"},
        {"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", NULL, NULL, "not a JSON object"},
        {"", NULL, NULL, "empty"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(IdClaims) c = NULL;
        int r = idtoken_parse_userinfo(cases[i].json, strlen(cases[i].json), &c, &e);

        g_test_message("case %zu: %s", i, cases[i].json);
        if (cases[i].fragment) {
            g_assert_cmpint(r, ==, -1);
            g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
            testutil_assert_contains(e.message, cases[i].fragment);
            continue;
        }
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpstr(c->sub, ==, cases[i].sub);
        g_assert_cmpstr(c->email, ==, cases[i].email);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/idtoken/good", test_good);
    g_test_add_func("/idtoken/bad", test_bad);
    g_test_add_func("/idtoken/bounded", test_bounded);
    g_test_add_func("/idtoken/match", test_match);
    g_test_add_func("/idtoken/userinfo", test_userinfo);
    return testutil_run();
}
