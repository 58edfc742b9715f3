/* import: the parsers of other tools' token files, and Fernet. */

#include <string.h>

#include "tokend/import.h"
#include "testutil.h"

/* The Fernet specification's own example (github.com/fernet/spec,
 * generate.json): "hello" under this key, IV 00..0f. */
#define SPEC_KEY "730ff4c7af3d46923e8ed451ee813c87f790b0a226bc96a92de49b5e9c05e1ee"
#define SPEC_TOKEN                                                                                 \
    "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR"        \
    "64jVmpU4IwqDA=="

/* Made with python3-cryptography as emailproxy.py's Cryptographer does:
 * PBKDF2HMAC(SHA256, length=32, salt=b"0123456789abcdef", iterations=1000)
 * of "pässword", then Fernet.encrypt(b"1//refresh-token.x_y"). */
#define PROXY_SALT "MDEyMzQ1Njc4OWFiY2RlZg=="
#define PROXY_KEY "af26ecb819481c23842823e90ef4d596860790f12228e889aaa6062c21c07c5d"
#define PROXY_TOKEN                                                                                \
    "gAAAAABrDZqKz6Ctvs2TOYcVurZyTeOlXIfo4nn_OE0kLuga2lKQSJRFV2DgSxwQfTqRynEz7AsBpfe04nwPe"        \
    "PqTOkUw17JHedDrf4zMHlF9VEJtIEoBXU0="

static void hex_key(const char *hex, guint8 key[32])
{
    for (int i = 0; i < 32; i++)
        key[i] =
            (guint8)(g_ascii_xdigit_value(hex[2 * i]) << 4 | g_ascii_xdigit_value(hex[2 * i + 1]));
}

static void test_format_names(void)
{
    g_assert_cmpint(import_format_from_name("fetchmail-oauth2"), ==,
                    IMPORT_FORMAT_FETCHMAIL_OAUTH2);
    g_assert_cmpint(import_format_from_name("mutt-oauth2"), ==, IMPORT_FORMAT_MUTT_OAUTH2);
    g_assert_cmpint(import_format_from_name("oama"), ==, IMPORT_FORMAT_OAMA);
    g_assert_cmpint(import_format_from_name("pizauth"), ==, IMPORT_FORMAT_PIZAUTH);
    g_assert_cmpint(import_format_from_name("email-oauth2-proxy"), ==,
                    IMPORT_FORMAT_EMAIL_OAUTH2_PROXY);
    g_assert_cmpint(import_format_from_name("mutt"), ==, -1);
    g_assert_cmpint(import_format_from_name(NULL), ==, -1);
    for (int f = 0; f <= IMPORT_FORMAT_EMAIL_OAUTH2_PROXY; f++)
        g_assert_cmpint(import_format_from_name(import_format_name(f)), ==, f);
}

static const struct fetchmail_case {
    const char *text;
    const char *rt_file; /* NULL: an error */
    const char *client_id;
} fetchmail_cases[] = {
    /* The script's own example, as its docstring writes it. */
    {"client_id=1038.apps.googleusercontent.com\nclient_secret=VWFn8LIKAMC\n"
     "refresh_token_file=/home/u/rt\naccess_token_file=/home/u/at\n",
     "/home/u/rt", "1038.apps.googleusercontent.com"},
    /* line.strip(): surrounding blanks and CRLF go; split at the first '='. */
    {"  refresh_token_file=/a=b \r\n", "/a=b", NULL},
    {"scope=https://outlook.office365.com/IMAP.AccessAsUser.All offline_access\n"
     "refresh_token_file=x\nrefresh_token_file=y",
     "y", NULL},
    {"client_id=\nrefresh_token_file=x\n", "x", NULL},
    {"\n\nrefresh_token_file=x\n\n", "x", NULL},
    {"client_id=a\n", NULL, NULL},
    {"refresh_token_file=\n", NULL, NULL},
    {"refresh_token_file=x\nno equals sign\n", NULL, NULL},
    {"", NULL, NULL},
};

static void test_fetchmail_config(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(fetchmail_cases); i++) {
        const struct fetchmail_case *c = &fetchmail_cases[i];
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *rt_file = NULL;
        g_autofree char *client_id = NULL;
        int r = import_parse_fetchmail_config(c->text, strlen(c->text), &rt_file, &client_id, &e);

        g_test_message("case %zu", i);
        if (!c->rt_file) {
            g_assert_cmpint(r, ==, -1);
            g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
            g_assert_null(rt_file);
            continue;
        }
        g_assert_cmpint(r, ==, 0);
        g_assert_cmpstr(rt_file, ==, c->rt_file);
        g_assert_cmpstr(client_id, ==, c->client_id);
    }
}

static const struct line_case {
    const char *text;
    const char *token; /* NULL: an error */
} line_cases[] = {
    {"1//0gabc-def_ghi\n", "1//0gabc-def_ghi"},
    {"tok \t\r\nsecond line\n", "tok"},
    {"tok", "tok"},
    {"\n", NULL},
    {"", NULL},
    {"   \n", NULL},
    {"to\x01k\n", NULL},
    {"t\xc3\xa9\n", NULL},
};

static void test_token_line(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(line_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(SecStr) in = secstr_from(line_cases[i].text, strlen(line_cases[i].text));
        g_autoptr(SecStr) out = import_parse_token_line(in, &e);

        g_test_message("case %zu", i);
        if (line_cases[i].token)
            g_assert_cmpstr(out ? out->data : NULL, ==, line_cases[i].token);
        else
            g_assert_true(!out && e.status == TOKEND_EX_DATAERR);
    }
}

static const struct line_case json_cases[] = {
    /* mutt_oauth2.py: json.dumps(token). */
    {"{\"registration\": \"google\", \"authflow\": \"authcode\", \"email\": \"a@b\", "
     "\"access_token\": \"ya29\", \"access_token_expiration\": \"2026-01-01T00:00:00\", "
     "\"refresh_token\": \"1//rt\"}",
     "1//rt"},
    /* oama: Aeson's encode of AuthRecord. */
    {"{\"access_token\":\"x\",\"email\":{\"unEmailAddress\":\"a@b\"},\"exp_date\":null,"
     "\"expires_in\":3599,\"refresh_token\":\"M.C5.rt!\",\"scope\":null,\"service\":"
     "\"microsoft\",\"token_type\":\"Bearer\"}",
     "M.C5.rt!"},
    /* mutt_oauth2.py before its first sign-in: empty strings. */
    {"{\"registration\": \"google\", \"refresh_token\": \"\"}", NULL},
    {"{\"refresh_token\":null}", NULL},
    {"{\"refresh_token\":42}", NULL},
    {"{\"refresh_token\":\"a\\nb\"}", NULL},
    {"[\"refresh_token\"]", NULL},
    {"not json", NULL},
    {"", NULL},
};

static void test_json(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(json_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(SecStr) in = secstr_from(json_cases[i].text, strlen(json_cases[i].text));
        g_autoptr(SecStr) out = import_parse_json(in, &e);

        g_test_message("case %zu", i);
        if (json_cases[i].token)
            g_assert_cmpstr(out ? out->data : NULL, ==, json_cases[i].token);
        else
            g_assert_true(!out && e.status == TOKEND_EX_DATAERR);
    }
}

static void test_fernet_spec(void)
{
    guint8 key[32];
    g_autoptr(SecStr) out = NULL;
    g_autofree char *bad = g_strdup(SPEC_TOKEN);

    hex_key(SPEC_KEY, key);
    out = import_fernet_decrypt(SPEC_TOKEN, key);
    g_assert_nonnull(out);
    g_assert_cmpstr(out->data, ==, "hello");
    /* One bit of the MAC, of the ciphertext, of the version: refused. */
    bad[strlen(bad) - 4] ^= 1;
    g_assert_null(import_fernet_decrypt(bad, key));
    bad[strlen(bad) - 4] ^= 1;
    bad[40] = bad[40] == 'A' ? 'B' : 'A';
    g_assert_null(import_fernet_decrypt(bad, key));
    g_assert_null(import_fernet_decrypt("hAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4"
                                        "BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
                                        key));
    g_assert_null(import_fernet_decrypt("gAAAAA==", key));
    g_assert_null(import_fernet_decrypt("", key));
    g_assert_null(import_fernet_decrypt("gAAA AAAdwJ6w", key));
    key[0] ^= 1;
    g_assert_null(import_fernet_decrypt(SPEC_TOKEN, key));
}

static void test_proxy_key(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) password = secstr_from("p\xc3\xa4ssword", 9);
    guint8 key[32], want[32];
    g_autoptr(SecStr) out = NULL;

    g_assert_cmpint(
        import_fernet_key(password, (const guint8 *)"0123456789abcdef", 16, 1000, key, &e), ==, 0);
    hex_key(PROXY_KEY, want);
    g_assert_cmpmem(key, 32, want, 32);
    out = import_fernet_decrypt(PROXY_TOKEN, key);
    g_assert_cmpstr(out ? out->data : NULL, ==, "1//refresh-token.x_y");
}

static const struct proxy_case {
    const char *text;
    const char *username;
    const char *section; /* NULL: an error */
    guint64 iterations;
} proxy_cases[] = {
    {"[Server setup]\n\n[IMAP-1993]\nserver_address = outlook.office365.com\n\n"
     "[a@example.org]\nclient_id = cid\ntoken_salt = " PROXY_SALT "\n"
     "token_iterations = 1200000\nrefresh_token = " PROXY_TOKEN "\n",
     "a@example.org", "a@example.org", 1200000},
    /* No token_iterations: Cryptographer.LEGACY_ITERATIONS. */
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\nrefresh_token = " PROXY_TOKEN "\n", NULL,
     "a@example.org", 100000},
    {"[A@Example.org]\ntoken_salt = " PROXY_SALT "\nrefresh_token = " PROXY_TOKEN "\n",
     "a@example.org", "A@Example.org", 100000},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\nrefresh_token = " PROXY_TOKEN "\n"
     "[b@example.org]\ntoken_salt = " PROXY_SALT "\nrefresh_token = " PROXY_TOKEN "\n",
     NULL, NULL, 0},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\nrefresh_token = " PROXY_TOKEN "\n",
     "b@example.org", NULL, 0},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\n", "a@example.org", NULL, 0},
    {"[a@example.org]\nrefresh_token = " PROXY_TOKEN "\n", "a@example.org", NULL, 0},
    {"[a@example.org]\ntoken_salt = !!\nrefresh_token = x\n", "a@example.org", NULL, 0},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\ntoken_iterations = many\n"
     "refresh_token = x\n",
     "a@example.org", NULL, 0},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\ntoken_iterations = 10000000\n"
     "refresh_token = " PROXY_TOKEN "\n",
     "a@example.org", "a@example.org", 10000000},
    /* Beyond the bound: refused before any round is run. */
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\ntoken_iterations = 10000001\n"
     "refresh_token = " PROXY_TOKEN "\n",
     "a@example.org", NULL, 0},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\ntoken_iterations = 18446744073709551615\n"
     "refresh_token = " PROXY_TOKEN "\n",
     "a@example.org", NULL, 0},
    {"[a@example.org]\ntoken_salt = " PROXY_SALT "\ntoken_iterations = 0\n"
     "refresh_token = " PROXY_TOKEN "\n",
     "a@example.org", NULL, 0},
    {"not an ini file", NULL, NULL, 0},
};

static void test_proxy_config(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(proxy_cases); i++) {
        const struct proxy_case *c = &proxy_cases[i];
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(ProxyEntry) p =
            import_parse_proxy_config(c->text, strlen(c->text), c->username, &e);

        g_test_message("case %zu", i);
        if (!c->section) {
            g_assert_null(p);
            g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
            continue;
        }
        g_assert_nonnull(p);
        g_assert_cmpstr(p->section, ==, c->section);
        g_assert_cmpstr(p->refresh_token, ==, PROXY_TOKEN);
        g_assert_cmpmem(p->salt, p->salt_len, "0123456789abcdef", 16);
        g_assert_cmpuint(p->iterations, ==, c->iterations);
    }
}

/* pizauth's dump: made with python3-cryptography's ChaCha20Poly1305 under
 * pizauth's key, nonce 00..0b, around the Dump of one account "work"
 * (auth_uri "a", client_id "c", redirect_uri "r", token_uri "t", Active
 * with access token "at", refresh token "1//rt"). */
#define PIZAUTH_SEALED                                                                             \
    "000102030405060708090a0bcef41f6d39fe658d0daa8d5828050b29ff3325e969c0d5de47ef0cddc0150"        \
    "5188a2fdf7f9ec2693422790d28d97e97e69742fe41de47db5fbc2729309505b2ff6936a5086ba1c9aa7"         \
    "1e5a4dd6ee738811801a0a4bf5752092a4df8aa20fc8b9cda6ca6bb4cf628f337511622c0ba3cdfb2aa6"         \
    "6926c754f4c7b5d4b7cfc472da36b42278e17f40269e55fb6a814af616439d4d837d9"

static GByteArray *unhex(const char *hex)
{
    GByteArray *b = g_byte_array_new();

    for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
        guint8 v = (guint8)(g_ascii_xdigit_value(hex[i]) << 4 | g_ascii_xdigit_value(hex[i + 1]));
        g_byte_array_append(b, &v, 1);
    }
    return b;
}

static void put_int(GByteArray *b, guint64 v, int width)
{
    for (int i = 0; i < width; i++) {
        guint8 c = (guint8)(v >> (8 * i));
        g_byte_array_append(b, &c, 1);
    }
}

static void put_str(GByteArray *b, const char *s)
{
    put_int(b, strlen(s), 8);
    g_byte_array_append(b, (const guint8 *)s, (guint)strlen(s));
}

/* One entry: name, AccountDump (client_id cid, one scope, no secret), and
 * TokenStateDump tag with, for Active, access token, two times, refresh
 * token (NULL: None). */
static void put_entry(GByteArray *b, const char *name, const char *cid, guint32 tag, const char *rt)
{
    put_str(b, name);
    put_str(b, "https://as.example/authorize");
    put_int(b, 1, 8), put_str(b, "login_hint"), put_str(b, "alice");
    put_str(b, cid);
    put_int(b, 0, 1);
    put_str(b, "http://localhost/");
    put_int(b, 1, 8), put_str(b, "offline_access");
    put_str(b, "https://as.example/token");
    put_int(b, tag, 4);
    if (tag != 1)
        return;
    put_str(b, "access");
    put_int(b, 1700000000, 8), put_int(b, 999999999, 4);
    put_int(b, 1700003600, 8), put_int(b, 0, 4);
    put_int(b, rt != NULL, 1);
    if (rt)
        put_str(b, rt);
}

enum pizauth_mutation { PM_NONE, PM_VERSION, PM_TRAILING, PM_CUT, PM_HUGE_COUNT };

static const struct pizauth_case {
    const char *want; /* the account asked for */
    guint32 tag;      /* work's token state */
    const char *rt;   /* work's refresh token */
    const char *cid;  /* work's client_id */
    bool twice;       /* work twice in the map */
    enum pizauth_mutation mutation;
    const char *token; /* NULL: an error */
    const char *error; /* part of its message */
} pizauth_cases[] = {
    {"work", 1, "1//rt", "cid", false, PM_NONE, "1//rt", NULL},
    {"other", 1, "1//rt", "cid", false, PM_NONE, "other-rt", NULL},
    {"work", 1, "1//rt", "", false, PM_NONE, "1//rt", NULL},
    {"nobody", 1, "1//rt", "cid", false, PM_NONE, NULL, "no account nobody (it has: "},
    {"work", 0, NULL, "cid", false, PM_NONE, NULL, "held no token"},
    {"work", 1, NULL, "cid", false, PM_NONE, NULL, "held no refresh token"},
    {"work", 2, NULL, "cid", false, PM_NONE, NULL, "unknown token state"},
    {"work", 1, "", "cid", false, PM_NONE, NULL, "not a token"},
    {"work", 1, "a b\n", "cid", false, PM_NONE, NULL, "not a token"},
    {"work", 1, "\xff\xfe", "cid", false, PM_NONE, NULL, "not UTF-8"},
    {"work", 1, "1//rt", "cid", true, PM_NONE, NULL, "twice"},
    {"work", 1, "1//rt", "cid", false, PM_VERSION, NULL, "version 2;"},
    {"work", 1, "1//rt", "cid", false, PM_TRAILING, NULL, "bytes follow"},
    {"work", 1, "1//rt", "cid", false, PM_CUT, NULL, "larger than the data"},
    {"work", 1, "1//rt", "cid", false, PM_HUGE_COUNT, NULL, "larger than the data"},
};

static GByteArray *pizauth_plain(const struct pizauth_case *c)
{
    GByteArray *b = g_byte_array_new();

    put_int(b, c->mutation == PM_VERSION ? 2 : 1, 8);
    put_int(b, c->mutation == PM_HUGE_COUNT ? G_MAXUINT64 : c->twice ? 3 : 2, 8);
    put_entry(b, "other", "cid", 1, "other-rt");
    put_entry(b, "work", c->cid, c->tag, c->rt);
    if (c->twice)
        put_entry(b, "work", c->cid, c->tag, c->rt);
    if (c->mutation == PM_TRAILING)
        put_int(b, 0, 1);
    if (c->mutation == PM_CUT)
        g_byte_array_set_size(b, b->len - 1);
    return b;
}

static void test_pizauth_parse(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(pizauth_cases); i++) {
        const struct pizauth_case *c = &pizauth_cases[i];
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(GByteArray) plain = pizauth_plain(c);
        g_autofree char *client_id = NULL;
        g_autoptr(SecStr) rt =
            import_parse_pizauth(plain->data, plain->len, c->want, &client_id, &e);

        g_test_message("case %zu", i);
        if (!c->token) {
            g_assert_null(rt);
            g_assert_null(client_id);
            g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
            g_assert_nonnull(strstr(e.message, c->error));
            continue;
        }
        g_assert_nonnull(rt);
        g_assert_cmpstr(rt->data, ==, c->token);
        g_assert_cmpstr(client_id, ==, *c->cid ? c->cid : NULL);
    }
}

/* Every cut of a good dump is refused, never read past its end. */
static void test_pizauth_every_cut(void)
{
    static const struct pizauth_case good = {"work", 1,       "1//rt", "cid",
                                             false,  PM_NONE, "1//rt", NULL};
    g_autoptr(GByteArray) plain = pizauth_plain(&good);

    for (guint n = 0; n < plain->len; n++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autofree char *cid = NULL;
        g_autofree guint8 *cut = g_memdup2(plain->data, n);

        g_assert_null(import_parse_pizauth(cut, n, "work", &cid, &e));
        g_assert_cmpint(e.status, ==, TOKEND_EX_DATAERR);
    }
}

static void test_pizauth_open(void)
{
    g_autoptr(GByteArray) sealed = unhex(PIZAUTH_SEALED);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) plain = import_pizauth_open(sealed->data, sealed->len, &e);
    g_autoptr(SecStr) rt = NULL;
    g_autofree char *cid = NULL;

    g_assert_nonnull(plain);
    rt = import_parse_pizauth((const guint8 *)plain->data, plain->len, "work", &cid, &e);
    g_assert_nonnull(rt);
    g_assert_cmpstr(rt->data, ==, "1//rt");
    g_assert_cmpstr(cid, ==, "c");
    /* Any changed byte (nonce, ciphertext, tag) fails the tag. */
    for (guint i = 0; i < sealed->len; i += 7) {
        g_auto(TokendError) e2 = TOKEND_ERROR_INIT;

        sealed->data[i] ^= 0x40;
        g_assert_null(import_pizauth_open(sealed->data, sealed->len, &e2));
        g_assert_cmpint(e2.status, ==, TOKEND_EX_DATAERR);
        sealed->data[i] ^= 0x40;
    }
    g_assert_null(import_pizauth_open(sealed->data, 27, &e));
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/import/format-names", test_format_names);
    g_test_add_func("/import/fetchmail-config", test_fetchmail_config);
    g_test_add_func("/import/token-line", test_token_line);
    g_test_add_func("/import/json", test_json);
    g_test_add_func("/import/fernet-spec", test_fernet_spec);
    g_test_add_func("/import/proxy-key", test_proxy_key);
    g_test_add_func("/import/proxy-config", test_proxy_config);
    g_test_add_func("/import/pizauth-parse", test_pizauth_parse);
    g_test_add_func("/import/pizauth-every-cut", test_pizauth_every_cut);
    g_test_add_func("/import/pizauth-open", test_pizauth_open);
    return testutil_run();
}
