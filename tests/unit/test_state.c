/* state: the per-account JSON that never holds a secret. */

#include <string.h>

#include "tokend/state.h"
#include "testutil.h"

static AccountState *full_state(void)
{
    AccountState *st = state_new();

    st->expires_at = 1700003600;
    st->obtained_at = 1700000000;
    st->signed_in_at = 1690000000;
    st->last_refresh = 1700000001;
    st->last_attempt = 1700000002;
    st->store = g_strdup("secret-service");
    st->token_file = g_strdup("/home/u/.local/state/tokend/work/token");
    st->scope = g_strdup("https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
    st->last_error = g_strdup("sign-in needed: \"quoted\" \\ caf\xc3\xa9");
    st->last_status = TOKEND_EX_NOPERM;
    st->needs_signin = true;
    st->next_due = 1700003300;
    st->binding_refused = true;
    return st;
}

static void assert_state_equal(const AccountState *a, const AccountState *b)
{
    g_assert_cmpint(a->expires_at, ==, b->expires_at);
    g_assert_cmpint(a->obtained_at, ==, b->obtained_at);
    g_assert_cmpint(a->signed_in_at, ==, b->signed_in_at);
    g_assert_cmpint(a->last_refresh, ==, b->last_refresh);
    g_assert_cmpint(a->last_attempt, ==, b->last_attempt);
    g_assert_cmpstr(a->store, ==, b->store);
    g_assert_cmpstr(a->token_file, ==, b->token_file);
    g_assert_cmpstr(a->scope, ==, b->scope);
    g_assert_cmpstr(a->last_error, ==, b->last_error);
    g_assert_cmpint(a->last_status, ==, b->last_status);
    g_assert_cmpint(a->needs_signin, ==, b->needs_signin);
    g_assert_cmpint(a->next_due, ==, b->next_due);
    g_assert_cmpint(a->binding_refused, ==, b->binding_refused);
}

/* Found by fuzzing: integers beyond INT_MAX wrapped negative, and a
 * negative margin passed an expired token off as fresh. */
static void test_huge_numbers_do_not_wrap(void)
{
    static const char *const texts[] = {
        "{\"min_validity\":4294967176,\"refresh_margin\":4294967176,\"expires_at\":10}",
        "{\"min_validity\":1e12,\"refresh_margin\":99999999999,\"last_status\":7777777777}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        struct tokend_error e = TOKEND_ERROR_INIT;
        g_autoptr(AccountState) st = state_parse(texts[i], strlen(texts[i]), &e);

        g_assert_nonnull(st);
        g_assert_cmpint(st->min_validity, >=, 0);
        g_assert_cmpint(st->refresh_margin, >=, 0);
        g_assert_cmpint(st->last_status, >=, 0);
        g_assert_false(state_token_fresh(st, st->min_validity, 100));
    }
}

static void test_round_trip(void)
{
    g_autofree char *dir = testutil_mkdir("round-trip");
    g_autofree char *path = g_build_filename(dir, "state.json", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = full_state();
    g_autoptr(AccountState) empty = state_new();
    g_autoptr(AccountState) back = NULL;
    g_autoptr(AccountState) back_empty = NULL;

    g_assert_cmpint(state_save(dir, st, &e), ==, 0);
    g_assert_cmpint(testutil_mode(path), ==, 0600);
    back = state_load(dir, &e);
    g_assert_nonnull(back);
    assert_state_equal(back, st);
    /* An empty state round-trips to an empty state. */
    g_assert_cmpint(state_save(dir, empty, &e), ==, 0);
    back_empty = state_load(dir, &e);
    assert_state_equal(back_empty, empty);
    g_assert_null(back_empty->store);
}

static void test_missing(void)
{
    g_autofree char *dir = testutil_mkdir("missing");
    g_autofree char *gone = g_build_filename(dir, "no-account", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = state_load(gone, &e);
    g_autoptr(AccountState) empty = state_new();

    g_assert_nonnull(st);
    assert_state_equal(st, empty);
    g_assert_cmpint(e.status, ==, 0);
    g_assert_null(e.message);
}

static void test_save_fails(void)
{
    g_autofree char *dir = testutil_mkdir("save");
    g_autofree char *gone = g_build_filename(dir, "no-account", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = full_state();

    g_assert_cmpint(state_save(gone, st, &e), ==, -1);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CANTCREAT);
    g_assert_false(g_file_test(gone, G_FILE_TEST_EXISTS));
}

static const char *const garbage[] = {
    "",     "not json",          "[]",       "[{}]",      "42", "\"string\"",
    "null", "{\"expires_at\": ", "\xff\xfe", "{\"a\": 1",
};

static void test_garbage(void)
{
    g_autofree char *dir = testutil_mkdir("garbage");
    g_autofree char *path = g_build_filename(dir, "state.json", NULL);

    for (size_t i = 0; i < G_N_ELEMENTS(garbage); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_auto(TokendError) e2 = TOKEND_ERROR_INIT;
        g_autoptr(AccountState) st = NULL;
        g_autoptr(AccountState) loaded = NULL;

        g_test_message("case %zu", i);
        st = state_parse(garbage[i], strlen(garbage[i]), &e);
        g_assert_null(st);
        g_assert_cmpint(e.status, !=, 0);
        g_assert_nonnull(e.message);
        testutil_write(path, garbage[i], -1, 0600);
        loaded = state_load(dir, &e2);
        g_assert_null(loaded);
        /* The message names the file. */
        testutil_assert_contains(e2.message, path);
    }
}

/* Fields of the wrong type or out of range are ignored, not fatal. */
static const struct {
    const char *json;
    gint64 expires_at;
    const char *store;
    bool needs_signin;
    int last_status;
} lenient_cases[] = {
    {"{}", 0, NULL, false, 0},
    {"{\"expires_at\": \"1700000000\"}", 0, NULL, false, 0},
    {"{\"expires_at\": -5}", 0, NULL, false, 0},
    {"{\"expires_at\": 1e300}", 0, NULL, false, 0},
    {"{\"expires_at\": 1700000000.9}", 1700000000, NULL, false, 0},
    {"{\"store\": 5, \"needs_signin\": \"yes\"}", 0, NULL, false, 0},
    {"{\"store\": null, \"needs_signin\": 1}", 0, NULL, false, 0},
    {"{\"store\": [\"file\"], \"last_status\": {}}", 0, NULL, false, 0},
    {"{\"store\": \"file\", \"needs_signin\": true, \"last_status\": 75}", 0, "file", true, 75},
    {"{\"version\": 99, \"unknown\": {\"deep\": [1,2,3]}, \"expires_at\": 7}", 7, NULL, false, 0},
};

static void test_lenient(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(lenient_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(AccountState) st = NULL;

        g_test_message("case %zu: %s", i, lenient_cases[i].json);
        st = state_parse(lenient_cases[i].json, strlen(lenient_cases[i].json), &e);
        g_assert_nonnull(st);
        g_assert_cmpint(st->expires_at, ==, lenient_cases[i].expires_at);
        g_assert_cmpstr(st->store, ==, lenient_cases[i].store);
        g_assert_cmpint(st->needs_signin, ==, lenient_cases[i].needs_signin);
        g_assert_cmpint(st->last_status, ==, lenient_cases[i].last_status);
    }
}

static const struct {
    gint64 expires_at;
    int margin;
    gint64 now;
    bool fresh;
} fresh_cases[] = {
    {0, 0, 0, false}, /* no token at all */
    {0, 0, -100, false},
    {1000, 0, 999, true},
    {1000, 0, 1000, false}, /* expiring now */
    {1000, 0, 1001, false},
    {1000, 600, 399, true},
    {1000, 600, 400, false}, /* exactly the margin left: refresh */
    {1000, 600, 401, false},
    {1000, 600, 2000, false},
    {G_GINT64_CONSTANT(1700003600), 120, G_GINT64_CONSTANT(1700000000), true},
};

static void test_token_fresh(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(fresh_cases); i++) {
        g_autoptr(AccountState) st = state_new();

        st->expires_at = fresh_cases[i].expires_at;
        g_test_message("case %zu", i);
        g_assert_cmpint(state_token_fresh(st, fresh_cases[i].margin, fresh_cases[i].now), ==,
                        fresh_cases[i].fresh);
    }
}

static void test_no_secrets_written(void)
{
    g_autofree char *dir = testutil_mkdir("written");
    g_autofree char *path = g_build_filename(dir, "state.json", NULL);
    g_autofree char *text = NULL;
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = full_state();

    g_assert_cmpint(state_save(dir, st, &e), ==, 0);
    text = testutil_read(path, NULL);
    g_assert_true(g_str_has_suffix(text, "}\n"));
    testutil_assert_contains(text, "\"version\"");
    testutil_assert_contains(text, "\"expires_at\"");
    g_assert_null(strstr(text, "access_token"));
    g_assert_null(strstr(text, "refresh_token"));
}

/* Where the refresh token came from round-trips; an older state has none. */
static void test_binding(void)
{
    g_autofree char *dir = testutil_mkdir("binding");
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = state_new();
    g_autoptr(AccountState) back = NULL;
    g_autoptr(AccountState) old = NULL;
    static const char older[] = "{\"store\":\"file\",\"expires_at\":10}";

    st->bound_client_id = g_strdup("tokend-native");
    st->bound_token_url = g_strdup("https://127.0.0.1:8443/token");
    st->identity_check = g_strdup("not verified");
    g_assert_cmpint(state_save(dir, st, &e), ==, 0);
    back = state_load(dir, &e);
    g_assert_cmpstr(back->bound_client_id, ==, "tokend-native");
    g_assert_cmpstr(back->bound_token_url, ==, "https://127.0.0.1:8443/token");
    g_assert_null(back->bound_issuer);
    g_assert_cmpstr(back->identity_check, ==, "not verified");
    old = state_parse(older, strlen(older), &e);
    g_assert_null(old->bound_client_id);
    g_assert_null(old->identity_check);
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/state/round-trip", test_round_trip);
    g_test_add_func("/state/huge-numbers", test_huge_numbers_do_not_wrap);
    g_test_add_func("/state/missing", test_missing);
    g_test_add_func("/state/save-fails", test_save_fails);
    g_test_add_func("/state/garbage", test_garbage);
    g_test_add_func("/state/lenient", test_lenient);
    g_test_add_func("/state/token-fresh", test_token_fresh);
    g_test_add_func("/state/no-secrets-written", test_no_secrets_written);
    g_test_add_func("/state/binding", test_binding);
    return testutil_run();
}
