/* tokenset: scope lists in canonical form, set names, the token_sets key. */

#include <string.h>

#include "tokend/state.h"
#include "tokend/tokenset.h"
#include "testutil.h"

static void test_normalize(void)
{
    static const struct {
        const char *in[3];
        const char *out; /* NULL: refused */
    } cases[] = {
        {{"b a", NULL}, "a b"},
        {{"a", "a b", NULL}, "a b"},
        {{"  https://graph.microsoft.com/Calendars.Read\t", NULL},
         "https://graph.microsoft.com/Calendars.Read"},
        {{"x", "", NULL}, "x"},
        {{"", NULL}, NULL},
        {{"   ", NULL}, NULL},
        {{"a\"b", NULL}, NULL},
        {{"a\\b", NULL}, NULL},
        {{"caf\xc3\xa9", NULL}, NULL},
        {{"a\x01", NULL}, NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *why = NULL;
        g_autofree char *out = tokenset_normalize(cases[i].in, &why);

        g_test_message("case %zu", i);
        g_assert_cmpstr(out, ==, cases[i].out);
        if (!out)
            g_assert_nonnull(why);
    }
}

static void test_key(void)
{
    g_autofree char *a = tokenset_scopes_key("a b");
    g_autofree char *b = tokenset_scopes_key("a b");
    g_autofree char *c = tokenset_scopes_key("a c");

    g_assert_cmpstr(a, ==, b);
    g_assert_cmpstr(a, !=, c);
    g_assert_true(g_str_has_prefix(a, "scopes."));
    g_assert_cmpuint(strlen(a), ==, strlen("scopes.") + 16);
    /* No set name can be a scope list's key. */
    g_assert_false(tokenset_name_valid(a));
    g_assert_true(tokenset_key_valid(a));
    g_assert_true(tokenset_key_valid("graph"));
    g_assert_false(tokenset_key_valid("scopes.0123456789ABCDEF"));
    g_assert_false(tokenset_key_valid("scopes.0123456789abcde"));
    g_assert_false(tokenset_key_valid("scopes."));
    g_assert_false(tokenset_key_valid("graph.tmp"));
    g_assert_false(tokenset_key_valid("../x"));
}

static void test_parse_config(void)
{
    static const struct {
        const char *value;
        const char *sets; /* items joined by "|", or NULL: refused */
    } cases[] = {
        {"graph:https://graph.microsoft.com/Calendars.Read https://graph.microsoft.com/"
         "Contacts.Read; ews:https://outlook.office.com/EWS.AccessAsUser.All",
         "graph https://graph.microsoft.com/Calendars.Read https://graph.microsoft.com/"
         "Contacts.Read|ews https://outlook.office.com/EWS.AccessAsUser.All"},
        {"a:x;", "a x"},
        {" a : y x x ; b_2-c:z", "a x y|b_2-c z"},
        {"a:x;a:y", NULL},
        {"x", NULL},
        {":x", NULL},
        {"a.b:x", NULL},
        {"a:", NULL},
        {";", NULL},
        {"a:x\"", NULL},
        {"abcdefghijklmnopqrstuvwxyz0123456:x", NULL},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *why = NULL;
        g_auto(GStrv) sets = tokenset_parse_config(cases[i].value, &why);
        g_autofree char *joined = sets ? g_strjoinv("|", sets) : NULL;

        g_test_message("case %zu: %s", i, cases[i].value);
        g_assert_cmpstr(joined, ==, cases[i].sets);
        if (!sets)
            g_assert_nonnull(why);
    }
}

static void test_find(void)
{
    g_autofree char *why = NULL;
    g_auto(GStrv) sets = tokenset_parse_config("graph:g1 g2; gr:x; ews:e", &why);

    g_assert_cmpstr(tokenset_find(sets, "graph"), ==, "g1 g2");
    g_assert_cmpstr(tokenset_find(sets, "gr"), ==, "x");
    g_assert_cmpstr(tokenset_find(sets, "ews"), ==, "e");
    g_assert_null(tokenset_find(sets, "g"));
    g_assert_null(tokenset_find(NULL, "g"));
}

/* The state keeps each set's scopes and expiry, and loses nothing else. */
static void test_state_round_trip(void)
{
    g_autofree char *dir = testutil_mkdir("state");
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AccountState) st = state_new();
    g_autoptr(AccountState) back = NULL;
    StateTokenSet *t = state_token_set_get(st, "graph");
    const StateTokenSet *u;

    g_assert_true(state_token_set_get(st, "graph") == t);
    t->scopes = g_strdup("a b");
    t->granted = g_strdup("a b c");
    t->config_id = g_strdup("/c|1:2:3:4");
    t->expires_at = 1700003600;
    t->obtained_at = 1700000000;
    state_token_set_get(st, "scopes.0123456789abcdef")->expires_at = 5;
    st->expires_at = 42;
    g_assert_cmpint(state_save(dir, st, &e), ==, 0);
    back = state_load(dir, &e);
    g_assert_nonnull(back);
    g_assert_cmpint(back->expires_at, ==, 42);
    u = state_token_set_find(back, "graph");
    g_assert_nonnull(u);
    g_assert_cmpstr(u->scopes, ==, "a b");
    g_assert_cmpstr(u->granted, ==, "a b c");
    g_assert_cmpstr(u->config_id, ==, "/c|1:2:3:4");
    g_assert_cmpint(u->expires_at, ==, 1700003600);
    g_assert_cmpint(u->obtained_at, ==, 1700000000);
    g_assert_cmpint(state_token_set_find(back, "scopes.0123456789abcdef")->expires_at, ==, 5);
    g_assert_null(state_token_set_find(back, "ews"));
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/tokenset/normalize", test_normalize);
    g_test_add_func("/tokenset/key", test_key);
    g_test_add_func("/tokenset/parse_config", test_parse_config);
    g_test_add_func("/tokenset/find", test_find);
    g_test_add_func("/tokenset/state_round_trip", test_state_round_trip);
    return testutil_run();
}
