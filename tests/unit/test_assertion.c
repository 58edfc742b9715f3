/* JWT assertions (assertion.c) and the keys they are signed with
 * (keyfile.c): the header and claims against fixed vectors, the signature
 * verified by the openssl command, thumbprints against openssl's, and
 * tables of keys and key files that must be refused. */

#include <string.h>

#include "testutil.h"
#include "tokend/assertion.h"
#include "tokend/keyfile.h"

typedef struct fixture {
    char *dir;
    char *key_path;
    char *cert_path;
} Fixture;

static Fixture fx;

static char *run(const char *cmd)
{
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) gerr = NULL;
    int status = 0;

    if (!g_spawn_command_line_sync(cmd, &out, &err, &status, &gerr) ||
        !g_spawn_check_wait_status(status, NULL))
        g_error("%s failed: %s %s", cmd, gerr ? gerr->message : "", err ? err : "");
    return g_steal_pointer(&out);
}

static SecStr *read_secret(const char *path)
{
    gsize len = 0;
    g_autofree char *data = testutil_read(path, &len);

    return secstr_from(data, len);
}

static AppKey *the_key(void)
{
    g_autoptr(SecStr) pem = read_secret(fx.key_path);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    AppKey *k = keyfile_parse_private_key(pem, NULL, &e);

    g_assert_nonnull(k);
    error_clear(&e);
    return k;
}

static char *part_json(const char *part)
{
    g_autofree char *b64 = g_strdup(part);
    size_t n = strlen(b64);
    g_autoptr(GString) s = g_string_new(NULL);
    gsize len = 0;
    g_autofree guchar *raw = NULL;

    for (size_t i = 0; i < n; i++)
        g_string_append_c(s, b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i]);
    while (s->len % 4)
        g_string_append_c(s, '=');
    raw = g_base64_decode(s->str, &len);
    return g_strndup((const char *)raw, len);
}

static const struct assertion_claims fixed = {
    .iss = "00000000-1111-2222-3333-444444444444",
    .sub = "00000000-1111-2222-3333-444444444444",
    .aud = "https://login.example.test/tenant/oauth2/v2.0/token",
    .jti = "fixed-jti",
    .now = 1800000000,
    .lifetime = 300,
    .x5t_s256 = "S256THUMB",
    .x5t = "SHA1THUMB",
};

static void test_header_and_claims(void)
{
    g_autoptr(AppKey) k = the_key();
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) jwt = assertion_build(&fixed, ASSERTION_ALG_RS256, k, &e);
    g_auto(GStrv) parts = NULL;
    g_autofree char *header = NULL;
    g_autofree char *claims = NULL;

    g_assert_nonnull(jwt);
    parts = g_strsplit(jwt->data, ".", -1);
    g_assert_cmpuint(g_strv_length(parts), ==, 3);
    header = part_json(parts[0]);
    claims = part_json(parts[1]);
    g_assert_cmpstr(header, ==,
                    "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t#S256\":\"S256THUMB\","
                    "\"x5t\":\"SHA1THUMB\"}");
    g_assert_cmpstr(claims, ==,
                    "{\"iss\":\"00000000-1111-2222-3333-444444444444\","
                    "\"sub\":\"00000000-1111-2222-3333-444444444444\","
                    "\"aud\":\"https://login.example.test/tenant/oauth2/v2.0/token\","
                    "\"jti\":\"fixed-jti\",\"iat\":1800000000,\"nbf\":1800000000,"
                    "\"exp\":1800000300}");
    /* base64url without padding */
    g_assert_null(strpbrk(jwt->data, "+/="));
}

/* The openssl command verifies what tokend signed. */
static void verify_with_openssl(enum assertion_alg alg, const char *sigopts)
{
    g_autoptr(AppKey) k = the_key();
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(SecStr) jwt = assertion_build(&fixed, alg, k, &e);
    const char *dot = strrchr(jwt->data, '.');
    g_autofree char *input = g_build_filename(fx.dir, "input", NULL);
    g_autofree char *sig = g_build_filename(fx.dir, "sig", NULL);
    g_autofree char *pub = g_build_filename(fx.dir, "pub.pem", NULL);
    g_autofree char *cmd = NULL;
    g_autofree char *out = NULL;
    gsize sig_len = 0;

    testutil_write(input, jwt->data, dot - jwt->data, 0600);
    {
        /* part_json decoded it as text; the signature is binary. */
        g_autoptr(GString) s = g_string_new(dot + 1);
        for (gsize i = 0; i < s->len; i++)
            s->str[i] = s->str[i] == '-' ? '+' : s->str[i] == '_' ? '/' : s->str[i];
        while (s->len % 4)
            g_string_append_c(s, '=');
        g_autofree guchar *raw = g_base64_decode(s->str, &sig_len);
        testutil_write(sig, (const char *)raw, (gssize)sig_len, 0600);
    }
    g_assert_cmpuint(sig_len, ==, 256);
    g_free(run(
        cmd = g_strdup_printf("openssl x509 -in %s -pubkey -noout -out %s", fx.cert_path, pub)));
    g_free(cmd);
    cmd = g_strdup_printf("openssl dgst -sha256 %s -verify %s -signature %s %s", sigopts, pub, sig,
                          input);
    out = run(cmd);
    testutil_assert_contains(out, "Verified OK");
}

static void test_rs256_verifies(void)
{
    verify_with_openssl(ASSERTION_ALG_RS256, "");
}

static void test_ps256_verifies(void)
{
    verify_with_openssl(ASSERTION_ALG_PS256,
                        "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32");
}

static void test_fresh_jti_each_time(void)
{
    g_autoptr(AppKey) k = the_key();
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    struct assertion_claims c = fixed;
    g_autoptr(SecStr) a = NULL;
    g_autoptr(SecStr) b = NULL;

    c.jti = NULL;
    a = assertion_build(&c, ASSERTION_ALG_RS256, k, &e);
    b = assertion_build(&c, ASSERTION_ALG_RS256, k, &e);
    g_assert_false(secstr_equal(a, b));
}

/* The thumbprints are openssl's fingerprints, base64url. */
static void test_certificate_thumbprints(void)
{
    gsize len = 0;
    g_autofree char *pem = testutil_read(fx.cert_path, &len);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AppCert) c = keyfile_parse_certificate(pem, len, &e);
    g_autofree char *cmd =
        g_strdup_printf("sh -c 'openssl x509 -in %s -outform DER | openssl dgst -sha256 -binary | "
                        "openssl base64 -A | tr \"+/\" \"-_\" | tr -d ='",
                        fx.cert_path);
    g_autofree char *want = run(cmd);
    g_autoptr(AppKey) k = the_key();

    g_assert_nonnull(c);
    g_assert_cmpstr(c->x5t_s256, ==, g_strstrip(want));
    g_assert_cmpuint(strlen(c->x5t), ==, 27); /* SHA-1: 20 bytes */
    g_assert_cmpint(c->not_after, >, 1700000000);
    g_assert_true(keyfile_key_matches(k, c));
}

/* The certificate's expiry in unix seconds, as openssl reads it. */
static gint64 openssl_not_after(const char *cert)
{
    g_autofree char *cmd = g_strdup_printf(
        "sh -c 'date -u -d \"$(openssl x509 -enddate -noout -in %s | cut -d= -f2)\" +%%s'", cert);
    g_autofree char *out = run(cmd);

    return g_ascii_strtoll(out, NULL, 10);
}

static char *openssl_x5t(const char *cert, const char *digest)
{
    g_autofree char *cmd =
        g_strdup_printf("sh -c 'openssl x509 -in %s -outform DER | openssl dgst -%s -binary | "
                        "openssl base64 -A | tr \"+/\" \"-_\" | tr -d ='",
                        cert, digest);

    return g_strstrip(run(cmd));
}

static AppCert *cert_at(const char *path)
{
    gsize len = 0;
    g_autofree char *pem = testutil_read(path, &len);
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    AppCert *c = keyfile_parse_certificate(pem, len, &e);

    if (!c)
        g_error("%s: %s", path, e.message);
    return c;
}

/* Certificates as admins have them, each read as openssl reads it: one
 * after its key in the same file, a version 1 certificate (no version
 * field), one expiring after 2049 (GeneralizedTime), and an EC one (read,
 * but no RSA key is its key). */
static void test_certificate_forms(void)
{
    static const struct {
        const char *name, *make;
        bool rsa;
    } forms[] = {
        {"key-then-cert.pem", "cat $KEY $CERT > $OUT", true},
        {"v1.pem",
         "openssl req -new -key $KEY -subj /CN=v1 -out $OUT.csr && "
         "openssl x509 -req -in $OUT.csr -key $KEY -days 5 -out $OUT",
         true},
        {"far.pem", "openssl req -x509 -key $KEY -subj /CN=far -days 20000 -out $OUT", true},
        {"ec.pem",
         "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $OUT.key "
         "-subj /CN=ec -days 5 -out $OUT",
         false},
    };
    g_autoptr(AppKey) k = the_key();

    for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
        g_autofree char *path = g_build_filename(fx.dir, forms[i].name, NULL);
        g_autofree char *cmd = g_strdup_printf("sh -c 'CERT=%s KEY=%s OUT=%s; %s'", fx.cert_path,
                                               fx.key_path, path, forms[i].make);
        g_autofree char *s256 = NULL, *sha1 = NULL;
        g_autoptr(AppCert) c = NULL;

        g_free(run(cmd));
        c = cert_at(path);
        s256 = openssl_x5t(path, "sha256");
        sha1 = openssl_x5t(path, "sha1");
        g_assert_cmpstr(c->x5t_s256, ==, s256);
        g_assert_cmpstr(c->x5t, ==, sha1);
        g_assert_cmpint(c->not_after, ==, openssl_not_after(path));
        g_assert_cmpint(keyfile_key_matches(k, c), ==, forms[i].rsa);
    }
    {
        g_autofree char *v1 = g_build_filename(fx.dir, "v1.pem", NULL);
        g_autofree char *cmd = g_strdup_printf(
            "sh -c 'openssl x509 -in %s -noout -text | grep -c \"Version: 1\"'", v1);

        g_free(run(cmd)); /* fails unless openssl made a version 1 certificate */
    }
}

/* Not a certificate: each refused with 65. */
static void test_bad_certificates(void)
{
    g_autofree char *key_pem = testutil_read(fx.key_path, NULL);
    g_autofree char *key_as_cert = NULL;
    g_autoptr(GString) truncated = NULL;
    gsize len = 0;
    g_autofree char *cert = testutil_read(fx.cert_path, &len);
    const char *end = strstr(cert, "-----END");

    key_as_cert = g_strdup(key_pem);
    /* A private key's DER under a certificate's label. */
    {
        g_autoptr(GString) s = g_string_new(key_as_cert);
        g_string_replace(s, "PRIVATE KEY", "CERTIFICATE", 0);
        g_free(key_as_cert);
        key_as_cert = g_string_free(g_steal_pointer(&s), FALSE);
    }
    /* The certificate's base64 cut short by two lines. */
    truncated = g_string_new_len(cert, end - cert - 130);
    g_string_append(truncated, "\n-----END CERTIFICATE-----\n");
    {
        const char *bad[] = {
            "",
            "not a certificate",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
            key_pem,
            key_as_cert,
            truncated->str,
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
            g_auto(TokendError) e = TOKEND_ERROR_INIT;
            g_autoptr(AppCert) c = keyfile_parse_certificate(bad[i], strlen(bad[i]), &e);

            g_assert_null(c);
            g_assert_cmpint(e.status, ==, 65);
        }
    }
}

/* A key made by `openssl genpkey -algorithm ALGORITHM_AND_OPTIONS`, as
 * keyfile reads it. */
static AppKey *generated_key(const char *name, const char *algorithm, struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(fx.dir, name, NULL);
    g_autofree char *cmd =
        g_strdup_printf("openssl genpkey -algorithm %s -out %s", algorithm, path);
    g_autoptr(SecStr) pem = NULL;

    g_free(run(cmd));
    pem = read_secret(path);
    return keyfile_parse_private_key(pem, NULL, e);
}

/* The certificate's key in every form keyfile reads: PKCS #8 and PKCS #1
 * read from their numbers, encrypted ones and a three-prime key through
 * OpenSSL's decoders; each matches its certificate and signs. */
static void test_key_forms(void)
{
    static const struct {
        const char *name, *tool, *options, *passphrase;
    } forms[] = {
        {"pkcs8", "pkey", "", NULL},
        {"pkcs1", "rsa", "-traditional", NULL},
        {"pkcs8-enc", "pkey", "-aes256 -passout pass:sesame", "sesame"},
        {"pkcs1-enc", "rsa", "-traditional -aes256 -passout pass:sesame", "sesame"},
    };
    g_autofree char *cert_pem = NULL;
    size_t cert_len = 0;
    g_auto(TokendError) ce = TOKEND_ERROR_INIT;
    g_autoptr(AppCert) c = NULL;

    cert_pem = testutil_read(fx.cert_path, &cert_len);
    c = keyfile_parse_certificate(cert_pem, cert_len, &ce);
    g_assert_nonnull(c);
    for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
        g_autofree char *path = g_build_filename(fx.dir, forms[i].name, NULL);
        g_autofree char *cmd = g_strdup_printf("openssl %s -in %s %s -out %s", forms[i].tool,
                                               fx.key_path, forms[i].options, path);
        g_autoptr(SecStr) pem = NULL, pass = NULL, jwt = NULL;
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(AppKey) k = NULL;

        g_free(run(cmd));
        pem = read_secret(path);
        if (forms[i].passphrase)
            pass = secstr_from(forms[i].passphrase, strlen(forms[i].passphrase));
        k = keyfile_parse_private_key(pem, pass, &e);
        g_assert_nonnull(k);
        g_assert_true(keyfile_key_matches(k, c));
        jwt = assertion_build(&fixed, ASSERTION_ALG_RS256, k, &e);
        g_assert_nonnull(jwt);
    }
    {
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(AppKey) k =
            generated_key("three-primes.key",
                          "RSA -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_keygen_primes:3", &e);

        g_assert_nonnull(k);
        g_assert_false(keyfile_key_matches(k, c));
    }
}

static const char *const bad_keys[] = {
    "",
    "not a key",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
};

static void test_bad_keys(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(bad_keys); i++) {
        g_autoptr(SecStr) pem = secstr_from(bad_keys[i], strlen(bad_keys[i]));
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(AppKey) k = keyfile_parse_private_key(pem, NULL, &e);

        g_assert_null(k);
        g_assert_cmpint(e.status, !=, 0);
    }
}

static void test_ec_key_refused(void)
{
    g_auto(TokendError) e = TOKEND_ERROR_INIT;
    g_autoptr(AppKey) k = generated_key("ec.key", "EC -pkeyopt ec_paramgen_curve:P-256", &e);

    g_assert_null(k);
    testutil_assert_contains(e.message, "not an RSA key");
    error_clear(&e);
}

static const struct {
    const char *json;
    bool ok;
} key_files[] = {
    {"{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":\"K\","
     "\"private_key_id\":\"id\",\"client_id\":\"123\"}",
     true},
    {"{\"type\":\"authorized_user\",\"client_email\":\"a@b\",\"private_key\":\"K\"}", false},
    {"{\"type\":\"service_account\",\"private_key\":\"K\"}", false},
    {"{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":7}", false},
    {"[]", false},
    {"{", false},
};

static void test_service_account_files(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(key_files); i++) {
        g_autoptr(SecStr) json = secstr_from(key_files[i].json, strlen(key_files[i].json));
        g_auto(TokendError) e = TOKEND_ERROR_INIT;
        g_autoptr(ServiceAccount) sa = keyfile_parse_service_account(json, &e);

        g_assert_cmpint(sa != NULL, ==, key_files[i].ok);
        if (sa) {
            g_assert_cmpstr(sa->client_email, ==, "a@b");
            g_assert_cmpstr(sa->private_key_id, ==, "id");
            g_assert_cmpstr(sa->private_key->data, ==, "K");
        }
    }
}

int main(int argc, char **argv)
{
    testutil_init(&argc, &argv);
    fx.dir = testutil_mkdir("assertion");
    fx.key_path = g_build_filename(fx.dir, "app.key", NULL);
    fx.cert_path = g_build_filename(fx.dir, "app.pem", NULL);
    {
        g_autofree char *cmd =
            g_strdup_printf("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 30 "
                            "-subj /CN=tokend-unit",
                            fx.key_path, fx.cert_path);
        g_free(run(cmd));
    }
    g_test_add_func("/assertion/header-and-claims", test_header_and_claims);
    g_test_add_func("/assertion/rs256-verifies", test_rs256_verifies);
    g_test_add_func("/assertion/ps256-verifies", test_ps256_verifies);
    g_test_add_func("/assertion/fresh-jti", test_fresh_jti_each_time);
    g_test_add_func("/keyfile/thumbprints", test_certificate_thumbprints);
    g_test_add_func("/keyfile/certificate-forms", test_certificate_forms);
    g_test_add_func("/keyfile/bad-certificates", test_bad_certificates);
    g_test_add_func("/keyfile/key-forms", test_key_forms);
    g_test_add_func("/keyfile/bad-keys", test_bad_keys);
    g_test_add_func("/keyfile/ec-refused", test_ec_key_refused);
    g_test_add_func("/keyfile/service-account", test_service_account_files);
    return testutil_run();
}
