/* config: the INI file, its presets, defaults and errors. */

#include <string.h>

#include "tokend/config.h"
#include "testutil.h"

#define PATH "/cfg/tokend.conf"
#define CLIENT "00000000-0000-0000-0000-000000000001"
#define MS "[account work]\nprovider = microsoft\nclient_id = " CLIENT "\n"
#define GOOGLE "[account g]\nprovider = google\nclient_id = gid\n"
#define GENERIC "[account x]\nprovider = generic\nclient_id = xid\n"
#define MS_SCOPE "https://outlook.office.com/"

static Config *parse(const char *text, TokendError *e)
{
    return config_parse(text, strlen(text), PATH, e);
}

/* Parse text holding one account and return it (the config in *cfg). */
static const Account *parse_one(const char *text, Config **cfg)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;

    *cfg = parse(text, &e);
    if (!*cfg)
        g_error("config did not parse: %s\n%s", e.message, text);
    g_assert_cmpuint((*cfg)->accounts->len, ==, 1);
    return g_ptr_array_index((*cfg)->accounts, 0);
}

static void test_microsoft(void)
{
    g_autoptr(Config) cfg = NULL;
    const Account *a = parse_one(MS, &cfg);
    g_autofree char *token_file =
        g_build_filename(g_getenv("XDG_STATE_HOME"), "tokend", "work", "token", NULL);

    g_assert_cmpstr(a->name, ==, "work");
    g_assert_cmpstr(a->provider->name, ==, "microsoft");
    g_assert_cmpstr(a->client_id, ==, CLIENT);
    g_assert_cmpstr(a->tenant, ==, "common");
    g_assert_cmpstr(a->token_url, ==, "https://login.microsoftonline.com/common/oauth2/v2.0/token");
    g_assert_cmpstr(a->authorize_url, ==,
                    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize");
    g_assert_cmpstr(a->device_authorization_url, ==,
                    "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode");
    testutil_assert_contains(a->scopes, "offline_access");
    testutil_assert_contains(a->scopes, MS_SCOPE "IMAP.AccessAsUser.All");
    g_assert_cmpstr(a->imap_host, ==, "outlook.office365.com");
    g_assert_cmpint(a->imap_port, ==, 993);
    g_assert_null(a->client_secret);
    g_assert_cmpint(a->store, ==, STORE_KIND_AUTO);
    g_assert_cmpint(a->flow, ==, FLOW_KIND_CODE);
    g_assert_cmpint(a->refresh_margin, ==, 600);
    g_assert_cmpstr(a->token_file, ==, token_file);
    g_assert_cmpint(cfg->max_parallel, ==, 8);
    g_assert_true(config_find(cfg, "work") == a);
    g_assert_null(config_find(cfg, "Work"));
}

static void test_microsoft_tenant(void)
{
    g_autoptr(Config) cfg = NULL;
    g_autoptr(Config) cfg2 = NULL;
    const Account *a = parse_one(MS "tenant = contoso.onmicrosoft.com\n", &cfg);
    const Account *b = parse_one(MS "authority = login.microsoftonline.us\ntenant = t1.example\n"
                                    "token_url = https://proxy.example/token\n",
                                 &cfg2);

    g_assert_cmpstr(a->token_url, ==,
                    "https://login.microsoftonline.com/"
                    "contoso.onmicrosoft.com/oauth2/v2.0/token");
    g_assert_cmpstr(a->authorize_url, ==,
                    "https://login.microsoftonline.com/"
                    "contoso.onmicrosoft.com/oauth2/v2.0/authorize");
    g_assert_cmpstr(b->authorize_url, ==,
                    "https://login.microsoftonline.us/t1.example/oauth2/v2.0/authorize");
    /* An explicit endpoint wins over the preset. */
    g_assert_cmpstr(b->token_url, ==, "https://proxy.example/token");
}

static void test_google_and_generic(void)
{
    g_autoptr(Config) g = NULL;
    g_autoptr(Config) x1 = NULL;
    g_autoptr(Config) x2 = NULL;
    const Account *a = parse_one(GOOGLE "client_secret = GOCSPX-s3cr3t\n", &g);
    const Account *b = parse_one(GENERIC "issuer = https://idp.example\n", &x1);
    const Account *c = parse_one(GENERIC "authorize_url = https://idp.example/a\n"
                                         "token_url = http://127.0.0.1:8080/x\n",
                                 &x2);

    g_assert_cmpstr(a->client_secret->data, ==, "GOCSPX-s3cr3t");
    g_assert_cmpstr(a->token_url, ==, "https://oauth2.googleapis.com/token");
    g_assert_cmpstr(a->issuer, ==, "https://accounts.google.com");
    g_assert_cmpstr(a->scopes, ==, "https://mail.google.com/ openid email");
    g_assert_null(a->tenant);
    g_assert_cmpstr(b->issuer, ==, "https://idp.example");
    g_assert_null(b->token_url);
    g_assert_cmpstr(c->token_url, ==, "http://127.0.0.1:8080/x");
    g_assert_cmpstr(c->authorize_url, ==, "https://idp.example/a");
}

static void test_defaults(void)
{
    const char *text = "[defaults]\nprovider = microsoft\nclient_id = shared\n"
                       "refresh_margin = 300\nstore = file\nmax_parallel = 3\n"
                       "auth_params = domain_hint=example.com\n"
                       "[account a]\n"
                       "[account b]\nclient_id = own\nrefresh_margin = 60\nflow = device\n";
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(Config) cfg = parse(text, &e);
    const Account *a, *b;

    g_assert_nonnull(cfg);
    g_assert_cmpint(cfg->max_parallel, ==, 3);
    a = config_find(cfg, "a");
    b = config_find(cfg, "b");
    g_assert_true(a == g_ptr_array_index(cfg->accounts, 0));
    g_assert_cmpstr(a->client_id, ==, "shared");
    g_assert_cmpint(a->refresh_margin, ==, 300);
    g_assert_cmpint(a->store, ==, STORE_KIND_FILE);
    g_assert_cmpstr(a->auth_params[0], ==, "domain_hint=example.com");
    g_assert_cmpstr(b->client_id, ==, "own");
    g_assert_cmpint(b->refresh_margin, ==, 60);
    g_assert_cmpint(b->store, ==, STORE_KIND_FILE);
    g_assert_cmpint(b->flow, ==, FLOW_KIND_DEVICE);
}

static void test_values(void)
{
    g_autoptr(Config) cfg = NULL;
    const Account *a =
        parse_one("[account work]\nprovider = microsoft   # comment\nclient_id = " CLIENT "\t# c\n"
                  "username = me@example.com\nscopes = a#b c\n"
                  "redirect_uri = http://127.0.0.1:8080/x\n"
                  "auth_params = login_hint=me@example.com  prompt2=a=b\n"
                  "imap_port = 143\nrefresh_margin = 0\nlogin_timeout = 1\n"
                  "token_file = ~/mail/token\nclient_secret_file = secret.txt\n",
                  &cfg);
    g_autofree char *token_file = g_build_filename(g_get_home_dir(), "mail", "token", NULL);

    g_assert_cmpstr(a->provider->name, ==, "microsoft");
    g_assert_cmpstr(a->client_id, ==, CLIENT);
    g_assert_cmpstr(a->username, ==, "me@example.com");
    g_assert_cmpstr(a->scopes, ==, "a#b c");
    g_assert_cmpstr(a->redirect_uri, ==, "http://127.0.0.1:8080/x");
    g_assert_cmpuint(g_strv_length(a->auth_params), ==, 2);
    g_assert_cmpstr(a->auth_params[0], ==, "login_hint=me@example.com");
    g_assert_cmpstr(a->auth_params[1], ==, "prompt2=a=b");
    g_assert_cmpint(a->imap_port, ==, 143);
    g_assert_cmpint(a->refresh_margin, ==, 0);
    g_assert_cmpint(a->login_timeout, ==, 1);
    g_assert_cmpstr(a->token_file, ==, token_file);
    /* Relative paths are relative to the config file's folder. */
    g_assert_cmpstr(a->client_secret_file, ==, "/cfg/secret.txt");
}

static void test_urls(void)
{
    static const char *const good[] = {
        "https://idp.example/token", "http://127.0.0.1:8080/x", "http://127.0.0.1",
        "http://localhost/",         "http://localhost:9/cb",   "http://[::1]:8080/",
    };
    static const char *const bad[] = {
        "http://idp.example/token",
        "http://127.0.0.1.evil.example/",
        "http://localhost.evil/",
        "http://localhostx/",
        "https://",
        "ftp://idp.example/",
        "idp.example/token",
        "HTTP://idp.example/",
        "//idp.example/",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autofree char *text = g_strdup_printf(MS "token_url = %s\n", good[i]);
        g_autoptr(Config) cfg = NULL;
        const Account *a = parse_one(text, &cfg);
        g_assert_cmpstr(a->token_url, ==, good[i]);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *text = g_strdup_printf(MS "token_url = %s\n", bad[i]);
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = parse(text, &e);

        g_test_message("bad url %s", bad[i]);
        g_assert_null(cfg);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        testutil_assert_contains(e.message, "token_url");
    }
}

/* Each bad file fails with status 78 and a message naming the file and
 * what is wrong. */
static const struct {
    const char *text;
    const char *fragment;
} bad_cases[] = {
    {MS "colour = blue\n", "[account work] colour: unknown key"},
    {"[defaults]\ncolour = blue\n" MS, "[defaults] colour: unknown key"},
    {"[accounts work]\nprovider = microsoft\n", "[accounts work]"},
    {"[work]\nprovider = microsoft\n", "unknown group"},
    {"[account ]\nprovider = microsoft\nclient_id = c\n", "account name"},
    {"[account .x]\nprovider = microsoft\nclient_id = c\n", "account name \".x\""},
    {"[account a/b]\nprovider = microsoft\nclient_id = c\n", "account name \"a/b\""},
    {"[account a b]\nprovider = microsoft\nclient_id = c\n", "account name"},
    {"[account aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n"
     "provider = microsoft\nclient_id = c\n",
     "account name"},
    {MS "refresh_margin = -1\n", "refresh_margin"},
    {MS "refresh_margin = abc\n", "refresh_margin: \"abc\""},
    {MS "refresh_margin = 99999999999\n", "refresh_margin"},
    {MS "refresh_margin = 10s\n", "refresh_margin"},
    {MS "min_validity = 1.5\n", "min_validity"},
    {MS "login_timeout = 0\n", "login_timeout"},
    {MS "imap_port = 0\n", "imap_port"},
    {MS "smtp_port = 65536\n", "smtp_port"},
    {MS "issuer = http://idp.example\n", "issuer"},
    {MS "redirect_uri = http://192.168.1.1/\n", "redirect_uri"},
    {MS "auth_params = state=x\n", "auth_params: \"state\""},
    {MS "auth_params = login_hint=a redirect_uri=http://x/\n", "\"redirect_uri\""},
    {MS "auth_params = code_challenge=x\n", "\"code_challenge\""},
    {MS "auth_params = client_id=other\n", "\"client_id\""},
    {MS "auth_params = loginhint\n", "auth_params: \"loginhint\""},
    {MS "auth_params = =x\n", "auth_params"},
    {"[defaults]\nusername = me@example.com\n" MS, "[defaults] username"},
    {"[defaults]\ntoken_file = /tmp/t\n" MS, "[defaults] token_file"},
    {MS "max_parallel = 4\n", "[account work] max_parallel"},
    {"[defaults]\nmax_parallel = 0\n" MS, "max_parallel"},
    {"[defaults]\nmax_parallel = many\n" MS, "max_parallel"},
    {GOOGLE "client_secret = s\ntenant = contoso\n", "tenant"},
    {GOOGLE "client_secret = s\nauthority = login.example\n", "authority"},
    {GOOGLE, "[account g] client_secret: missing"},
    {GOOGLE "client_secret =\n", "client_secret: empty value"},
    {MS "client_secret = s\nclient_secret_file = f\n", "client_secret"},
    {GENERIC, "generic needs issuer"},
    {GENERIC "authorize_url = https://idp.example/a\n", "generic needs issuer"},
    {GENERIC "token_url = https://idp.example/t\n", "generic needs issuer"},
    {"[account work]\nclient_id = c\n", "provider: missing"},
    {"[account work]\nprovider = microsoft\n", "client_id: missing"},
    {"[account work]\nprovider = yahoo\nclient_id = c\n", "provider: \"yahoo\""},
    {"[account work]\nprovider = Microsoft\nclient_id = c\n", "provider"},
    {MS "store = keychain\n", "store: \"keychain\""},
    {MS "store = command\n", "store_get: missing"},
    {MS "store = command\nstore_get = g\nstore_delete = d\n", "store_put: missing"},
    {MS "store = command\nstore_get = g\nstore_put = p\n", "store_delete: missing"},
    {MS "store_get = sh -c 'x\n", "store_get: \"sh -c 'x\" cannot be split into words"},
    {MS "store_delete = \"\n", "store_delete"},
    {MS "store_timeout = 0\n", "store_timeout: must be at least 1 second"},
    {MS "flow = implicit\n", "flow"},
    {MS "token_url =\n", "token_url: empty value"},
    {"this is not an ini file\n", PATH},
    {"[account work\nprovider = microsoft\n", PATH},
    {"provider = microsoft\n", PATH},
    /* Values GLib cannot read are errors, not missing keys (found by
     * fuzz/fuzz_config.c): no fallback to [defaults], no raw escapes. */
    {"[account work]\nprovider = microsoft\nclient_id = caf\xe9\n",
     "[account work] client_id: the value is not UTF-8"},
    {"[defaults]\nclient_id = shared\n[account work]\nprovider = microsoft\n"
     "client_id = caf\xe9\n",
     "[account work] client_id: the value is not UTF-8"},
    {"[defaults]\nmax_parallel = \xff\n" MS, "[defaults] max_parallel: the value"},
    {MS "username = me\\x@example.com\n", "[account work] username: the value"},
    /* One token file, two accounts: one account's token for the other's server. */
    {MS "token_file = /t/token\n" GOOGLE "client_secret = s\ntoken_file = /t/token\n",
     "[account work] and [account g] both write the token file /t/token"},
    {MS "token_file = /t/x/../token\n" GOOGLE "client_secret = s\ntoken_file = /t/./token\n",
     "both write the token file /t/token"},
    {MS GOOGLE "client_secret = s\ntoken_file = ~/.local/state/tokend/work/token\n",
     "[account work] and [account g] both write"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = NULL;
        /* Escaped: some cases are not UTF-8, which TAP output must be. */
        g_autofree char *shown = g_strescape(bad_cases[i].text, NULL);

        g_test_message("case %zu: %s", i, shown);
        cfg = parse(bad_cases[i].text, &e);
        g_assert_null(cfg);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        g_assert_true(g_str_has_prefix(e.message, PATH ": "));
        testutil_assert_contains(e.message, bad_cases[i].fragment);
        g_assert_null(strpbrk(e.message, "\r\n"));
    }
}

static void test_account_names(void)
{
    static const char *const good[] = {"work", "a", "W0rk.mail", "me@example.com", "a+b-c_d", "1"};
    static const char *const bad[] = {"",    ".x",   "a/b", "-a",  "_a",
                                      "a b", "a\\b", "..",  "a\n", "caf\xc3\xa9"};
    g_autofree char *longest = g_strnfill(64, 'a');
    g_autofree char *too_long = g_strnfill(65, 'a');

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++)
        g_assert_true(config_account_name_valid(good[i]));
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("bad name %s", bad[i]);
        g_assert_false(config_account_name_valid(bad[i]));
    }
    g_assert_true(config_account_name_valid(longest));
    g_assert_false(config_account_name_valid(too_long));
}

/* Every key the parser accepts is listed, and every listed key is accepted
 * (an unknown key would be refused before its value is looked at). */
static void test_known_keys(void)
{
    static const char *const expected[] = {
        "provider",
        "tenant",
        "authority",
        "client_id",
        "client_secret",
        "client_secret_file",
        "username",
        "scopes",
        "redirect_uri",
        "token_file",
        "token_file_group",
        "token_file_mode",
        "store",
        "ca_file",
        "issuer",
        "authorize_url",
        "token_url",
        "device_authorization_url",
        "revocation_url",
        "prompt",
        "auth_params",
        "offline_consent",
        "flow",
        "refresh_margin",
        "min_validity",
        "login_timeout",
        "imap_host",
        "imap_port",
        "smtp_host",
        "smtp_port",
        "pop_host",
        "pop_port",
        "notify_cmd",
        "max_parallel",
        "identity",
        "tunnel_mech",
        "tunnel_tls",
        "store_get",
        "store_put",
        "store_delete",
        "store_timeout",
        "signin_lifetime",
        "notify_before",
        "token_sets",
        "grant",
        "client_certificate",
        "client_key",
        "client_key_passphrase_file",
        "assertion_alg",
        "service_account_file",
        "subject",
        "send_as",
        "smtp_tls",
        "smtp_backend",
        "graph_url",
        "relay_account",
        "relay_peers",
        "relay_tls_certificate",
        "relay_tls_key",
        "relay_password_hash",
    };
    const char *const *keys = config_known_keys();

    g_assert_cmpuint(g_strv_length((char **)keys), ==, G_N_ELEMENTS(expected));
    for (size_t i = 0; i < G_N_ELEMENTS(expected); i++)
        g_assert_true(g_strv_contains(keys, expected[i]));
    /* In a valid account, "KEY = 1" parses, or is refused for its value
     * (the error names the key itself), never as an unknown key. */
    for (size_t i = 0; keys[i]; i++) {
        bool defaults = strcmp(keys[i], "max_parallel") == 0;
        g_autofree char *text =
            g_strdup_printf("[account k]\n%s%s%s%s = 1\n",
                            strcmp(keys[i], "provider") == 0 ? "" : "provider = microsoft\n",
                            strcmp(keys[i], "client_id") == 0 ? "" : "client_id = c\n",
                            defaults ? "[defaults]\n" : "", keys[i]);
        g_autofree char *own =
            g_strdup_printf("%s %s: ", defaults ? "[defaults]" : "[account k]", keys[i]);
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = parse(text, &e);

        g_test_message("key %s: %s", keys[i], cfg ? "accepted" : e.message);
        if (!cfg) {
            testutil_assert_contains(e.message, own);
            g_assert_null(strstr(e.message, "unknown key"));
        }
    }
}

static void test_load(void)
{
    g_autofree char *dir = testutil_mkdir("load");
    g_autofree char *path = g_build_filename(dir, "config", NULL);
    g_autofree char *missing = g_build_filename(dir, "nope", NULL);
    g_autofree char *secret_file = g_build_filename(dir, "secret", NULL);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(Config) cfg = NULL;
    g_autoptr(Config) none = config_load(missing, &e);

    g_assert_null(none);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    testutil_assert_contains(e.message, missing);
    g_assert_nonnull(e.hint);
    error_clear(&e);
    /* A folder is not a config file. */
    g_assert_null(config_load(dir, &e));
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    testutil_write(path, MS "client_secret_file = secret\n", -1, 0600);
    cfg = config_load(path, &e);
    g_assert_nonnull(cfg);
    g_assert_cmpstr(cfg->path, ==, path);
    g_assert_cmpstr(((Account *)g_ptr_array_index(cfg->accounts, 0))->client_secret_file, ==,
                    secret_file);
}

static void test_duplicates(void)
{
    static const char *const texts[] = {
        MS "[account other]\nprovider = microsoft\nclient_id = c\n" MS,
        MS "client_id = second\n",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = parse(texts[i], &e);

        /* GKeyFile alone would merge repeated groups and keys silently. */
        g_assert_null(cfg);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        testutil_assert_contains(e.message, "work");
    }
}

/* http:// is for loopback hosts only; user info must not fake one. */
static void test_url_userinfo(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(Config) cfg = parse(MS "token_url = http://localhost:80@evil.example/t\n", &e);

    g_assert_null(cfg);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    testutil_assert_contains(e.message, "token_url");
}

#define MS_TOKEN "/oauth2/v2.0/token"

/* authority and tenant as written -> the token endpoint and the tenant. */
static void test_authority_good(void)
{
    static const struct {
        const char *lines, *token_url, *tenant;
    } cases[] = {
        {"authority = login.microsoftonline.us\n",
         "https://login.microsoftonline.us/common" MS_TOKEN, "common"},
        {"authority = 127.0.0.1:8443\n", "https://127.0.0.1:8443/common" MS_TOKEN, "common"},
        {"authority = [::1]:8443\n", "https://[::1]:8443/common" MS_TOKEN, "common"},
        {"authority = https://login.microsoftonline.com\n",
         "https://login.microsoftonline.com/common" MS_TOKEN, "common"},
        {"authority = https://login.microsoftonline.com/\n",
         "https://login.microsoftonline.com/common" MS_TOKEN, "common"},
        {"authority = https://login.microsoftonline.com/contoso.onmicrosoft.com\n",
         "https://login.microsoftonline.com/contoso.onmicrosoft.com" MS_TOKEN,
         "contoso.onmicrosoft.com"},
        {"authority = https://login.microsoftonline.com/organizations/\n",
         "https://login.microsoftonline.com/organizations" MS_TOKEN, "organizations"},
        {"authority = https://127.0.0.1:8443/contoso.com\ntenant = Contoso.com\n",
         "https://127.0.0.1:8443/Contoso.com" MS_TOKEN, "Contoso.com"},
        {"authority = HTTPS://[::1]:8443/consumers\n", "https://[::1]:8443/consumers" MS_TOKEN,
         "consumers"},
        {"tenant = 72f988bf-86f1-41af-91ab-2d7cd011db47\n",
         "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47" MS_TOKEN,
         "72f988bf-86f1-41af-91ab-2d7cd011db47"},
        {"tenant = COMMON\n", "https://login.microsoftonline.com/COMMON" MS_TOKEN, "COMMON"},
        {"tenant = contoso.onmicrosoft.com\n",
         "https://login.microsoftonline.com/contoso.onmicrosoft.com" MS_TOKEN,
         "contoso.onmicrosoft.com"},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = g_strconcat(MS, cases[i].lines, NULL);
        g_autoptr(Config) cfg = NULL;
        const Account *a;

        g_test_message("authority case %zu: %s", i, cases[i].lines);
        a = parse_one(text, &cfg);
        g_assert_cmpstr(a->token_url, ==, cases[i].token_url);
        g_assert_cmpstr(a->tenant, ==, cases[i].tenant);
        g_assert_true(g_str_has_suffix(a->authorize_url, "/oauth2/v2.0/authorize"));
    }
}

/* host[:port] as written, with or without the port key -> host and port. */
static void test_hosts_good(void)
{
    static const struct {
        const char *lines, *imap_host;
        int imap_port;
        const char *smtp_host;
        int smtp_port;
        const char *pop_host;
        int pop_port;
    } cases[] = {
        {"", "outlook.office365.com", 993, "smtp.office365.com", 587, "outlook.office365.com", 995},
        {"imap_host = imap.example.com:143\n", "imap.example.com", 143, "smtp.office365.com", 587,
         "outlook.office365.com", 995},
        {"imap_host = imap.example.com\nimap_port = 1143\n", "imap.example.com", 1143,
         "smtp.office365.com", 587, "outlook.office365.com", 995},
        {"imap_host = imap.example.com:143\nimap_port = 143\n", "imap.example.com", 143,
         "smtp.office365.com", 587, "outlook.office365.com", 995},
        {"smtp_host = [::1]:1587\n", "outlook.office365.com", 993, "::1", 1587,
         "outlook.office365.com", 995},
        {"smtp_host = [2001:db8::25]\n", "outlook.office365.com", 993, "2001:db8::25", 587,
         "outlook.office365.com", 995},
        {"pop_host = 127.0.0.1:1995\n", "outlook.office365.com", 993, "smtp.office365.com", 587,
         "127.0.0.1", 1995},
        {"pop_host = pop.example.com\npop_port = 110\n", "outlook.office365.com", 993,
         "smtp.office365.com", 587, "pop.example.com", 110},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = g_strconcat(MS, cases[i].lines, NULL);
        g_autoptr(Config) cfg = NULL;
        const Account *a;

        g_test_message("host case %zu: %s", i, cases[i].lines);
        a = parse_one(text, &cfg);
        g_assert_cmpstr(a->imap_host, ==, cases[i].imap_host);
        g_assert_cmpint(a->imap_port, ==, cases[i].imap_port);
        g_assert_cmpstr(a->smtp_host, ==, cases[i].smtp_host);
        g_assert_cmpint(a->smtp_port, ==, cases[i].smtp_port);
        g_assert_cmpstr(a->pop_host, ==, cases[i].pop_host);
        g_assert_cmpint(a->pop_port, ==, cases[i].pop_port);
    }
}

/* Each bad value is refused (78), naming the key it was given in. */
static const struct {
    const char *lines;
    const char *fragment;
} bad_values[] = {
    {"authority = http://login.microsoftonline.com\n", "[account work] authority:"},
    {"authority = http://127.0.0.1:8443/common\n", "[account work] authority:"},
    {"authority = ftp://login.example\n", "[account work] authority:"},
    {"authority = https://user@login.microsoftonline.com/common\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/common?x=1\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/?x=1\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/common#f\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/common/oauth2\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com//common\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com//\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/con%2Ftoso\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/t1\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com:0/\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com:99999/\n", "[account work] authority:"},
    {"authority = https://\n", "[account work] authority:"},
    {"authority = https:///common\n", "[account work] authority:"},
    {"authority = https://login_host.example/\n", "[account work] authority:"},
    {"authority = login.microsoftonline.com/\n", "[account work] authority:"},
    {"authority = login.microsoftonline.com/common\n", "[account work] authority:"},
    {"authority = user@login.microsoftonline.com\n", "[account work] authority:"},
    {"authority = login.microsoftonline.com:x\n", "[account work] authority:"},
    {"authority = login.microsoftonline.com?x\n", "[account work] authority:"},
    {"authority = ::1:8443\n", "[account work] authority:"},
    {"authority = -login.example\n", "[account work] authority:"},
    {"authority = https://login.microsoftonline.com/contoso.com\ntenant = fabrikam.com\n",
     "[account work] authority: names tenant contoso.com, but tenant = fabrikam.com"},
    {"tenant = t1\n", "[account work] tenant: \"t1\""},
    {"tenant = contoso\n", "[account work] tenant:"},
    {"tenant = common/\n", "[account work] tenant:"},
    {"tenant = a/../b.com\n", "[account work] tenant:"},
    {"tenant = contoso..com\n", "[account work] tenant:"},
    {"tenant = -contoso.com\n", "[account work] tenant:"},
    {"tenant = contoso.com?x\n", "[account work] tenant:"},
    {"tenant = https://login.microsoftonline.com/common\n", "[account work] tenant:"},
    {"tenant = 72f988bf-86f1-41af-91ab-2d7cd011db4\n", "[account work] tenant:"},
    {"tenant = 72f988bf-86f1-41af-91ab-2d7cd011db47a\n", "[account work] tenant:"},
    {"tenant = 72f988bg-86f1-41af-91ab-2d7cd011db47\n", "[account work] tenant:"},
    {"tenant = con toso.com\n", "[account work] tenant:"},
    {"imap_host = imap.example.com:0\n", "[account work] imap_host:"},
    {"imap_host = imap.example.com:65536\n", "[account work] imap_host:"},
    {"imap_host = imap.example.com:imaps\n", "[account work] imap_host:"},
    {"imap_host = imap.example.com:\n", "[account work] imap_host:"},
    {"imap_host = ::1:993\n", "[account work] imap_host:"},
    {"imap_host = ::1\n", "[account work] imap_host:"},
    {"imap_host = [::1\n", "[account work] imap_host:"},
    {"imap_host = [::1]993\n", "[account work] imap_host:"},
    {"imap_host = [imap.example.com]:993\n", "[account work] imap_host:"},
    {"imap_host = imap.example.com/\n", "[account work] imap_host:"},
    {"imap_host = imaps://imap.example.com\n", "[account work] imap_host:"},
    {"imap_host = imap.example.com:143\nimap_port = 993\n",
     "[account work] imap_host: names port 143, but imap_port = 993"},
    {"smtp_host = smtp.example.com:465\nsmtp_port = 587\n",
     "[account work] smtp_host: names port 465, but smtp_port = 587"},
    {"smtp_host = smtp example.com\n", "[account work] smtp_host:"},
    {"pop_host = [::1]:1995\npop_port = 995\n", "[account work] pop_host: names port 1995"},
    {"pop_host = pop.example.com:x\n", "[account work] pop_host:"},
    {"pop_port = 0\n", "[account work] pop_port:"},
    {"redirect_uri = http://user@127.0.0.1/\n", "[account work] redirect_uri:"},
    {"redirect_uri = http://127.0.0.1:0/\n", "[account work] redirect_uri:"},
    {"issuer = https://\n", "[account work] issuer:"},
    {"authorize_url = http://idp.example/a\n", "[account work] authorize_url:"},
    {"device_authorization_url = https://u:p@idp.example/d\n",
     "[account work] device_authorization_url:"},
    {"revocation_url = ftp://idp.example/r\n", "[account work] revocation_url:"},
    {"token_url = https://[::1/t\n", "[account work] token_url:"},
    {"token_url = https://idp.example/t#frag\n", "[account work] token_url: "},
    {"redirect_uri = http://127.0.0.1/cb#x\n", "[account work] redirect_uri: "},
    {"issuer = https://idp.example/?tenant=x\n", "[account work] issuer: "},
    {"issuer = https://idp.example/#x\n", "[account work] issuer: "},
    {"tunnel_mech = plain\n", "[account work] tunnel_mech: \"plain\" is not one of auto"},
    {"tunnel_tls = ssl\n", "[account work] tunnel_tls: \"ssl\" is not one of auto"},
};

static void test_bad_values(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_values); i++) {
        g_autofree char *text = g_strconcat(MS, bad_values[i].lines, NULL);
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = NULL;

        g_test_message("bad value %zu: %s", i, bad_values[i].lines);
        cfg = parse(text, &e);
        g_assert_null(cfg);
        g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
        g_assert_true(g_str_has_prefix(e.message, PATH ": "));
        testutil_assert_contains(e.message, bad_values[i].fragment);
    }
}

/* A value from [defaults] is checked the same way. */
static void test_bad_defaults(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(Config) cfg = parse("[defaults]\ntenant = nope\n" MS, &e);

    g_assert_null(cfg);
    g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
    testutil_assert_contains(e.message, "tenant: \"nope\"");
}

/* The command a hint names: with -c FILE only when it was given. */
static void test_command(void)
{
    g_autoptr(Config) cfg = NULL;
    const Account *a = parse_one(MS, &cfg);
    g_autofree char *plain = config_command(a, "obtain");
    g_autofree char *with_c = NULL;
    g_autofree char *spaced = NULL;

    g_assert_cmpstr(plain, ==, "tokend obtain work");
    config_set_arg(cfg, "/home/me/mail/tokend.conf");
    with_c = config_command(a, "obtain");
    g_assert_cmpstr(with_c, ==, "tokend -c /home/me/mail/tokend.conf obtain work");
    config_set_arg(cfg, "/home/me/My Mail/tokend.conf");
    spaced = config_command(a, "obtain");
    g_assert_cmpstr(spaced, ==, "tokend -c '/home/me/My Mail/tokend.conf' obtain work");
}

/* offline_consent: auto unless said otherwise, one of three words. */
static void test_offline_consent(void)
{
    static const struct {
        const char *line;
        int want; /* -1: refused */
    } cases[] = {
        {"", OFFLINE_CONSENT_AUTO},
        {"offline_consent = auto\n", OFFLINE_CONSENT_AUTO},
        {"offline_consent = always\n", OFFLINE_CONSENT_ALWAYS},
        {"offline_consent = never\n", OFFLINE_CONSENT_NEVER},
        {"offline_consent = yes\n", -1},
        {"offline_consent = Never\n", -1},
        {"offline_consent =\n", -1},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = g_strconcat(MS, cases[i].line, NULL);
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = parse(text, &e);

        g_test_message("case %zu", i);
        if (cases[i].want < 0) {
            g_assert_null(cfg);
            g_assert_cmpint(e.status, ==, TOKEND_EX_CONFIG);
            testutil_assert_contains(e.message, "offline_consent");
            continue;
        }
        g_assert_nonnull(cfg);
        g_assert_cmpint(((const Account *)cfg->accounts->pdata[0])->offline_consent, ==,
                        cases[i].want);
    }
}

/* signin_lifetime and notify_before: a number with a unit, or seconds. */
static void test_durations(void)
{
    static const struct {
        const char *value;
        int seconds; /* -1: refused */
    } cases[] = {
        {"7d", 7 * 86400}, {"36h", 36 * 3600}, {"90m", 5400},
        {"45s", 45},       {"2w", 14 * 86400}, {"600", 600},
        {"0", 0},          {"7D", 7 * 86400},  {"3650d", 3650 * 86400},
        {"3651d", -1},     {"soon", -1},       {"d", -1},
        {"-1d", -1},       {"7y", -1},         {"1.5d", -1},
        {"7 d", -1},       {"7dd", -1},        {"", -1},
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = g_strdup_printf(MS "signin_lifetime = %s\n", cases[i].value);
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(Config) cfg = parse(text, &e);

        g_test_message("duration \"%s\"", cases[i].value);
        if (cases[i].seconds < 0) {
            g_assert_null(cfg);
            testutil_assert_contains(e.message, "signin_lifetime");
            continue;
        }
        g_assert_nonnull(cfg);
        g_assert_cmpint(config_find(cfg, "work")->signin_lifetime, ==, cases[i].seconds);
        /* Warned two days ahead unless the account says otherwise. */
        g_assert_cmpint(config_find(cfg, "work")->notify_before, ==, 2 * 86400);
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    g_test_add_func("/config/microsoft", test_microsoft);
    g_test_add_func("/config/microsoft/tenant", test_microsoft_tenant);
    g_test_add_func("/config/google-and-generic", test_google_and_generic);
    g_test_add_func("/config/defaults", test_defaults);
    g_test_add_func("/config/values", test_values);
    g_test_add_func("/config/urls", test_urls);
    g_test_add_func("/config/bad", test_bad);
    g_test_add_func("/config/account-names", test_account_names);
    g_test_add_func("/config/known-keys", test_known_keys);
    g_test_add_func("/config/load", test_load);
    g_test_add_func("/config/duplicates", test_duplicates);
    g_test_add_func("/config/url-userinfo", test_url_userinfo);
    g_test_add_func("/config/authority", test_authority_good);
    g_test_add_func("/config/hosts", test_hosts_good);
    g_test_add_func("/config/bad-values", test_bad_values);
    g_test_add_func("/config/bad-defaults", test_bad_defaults);
    g_test_add_func("/config/command", test_command);
    g_test_add_func("/config/offline-consent", test_offline_consent);
    g_test_add_func("/config/durations", test_durations);
    return testutil_run();
}
