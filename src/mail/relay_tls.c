/* The relay's own TLS and local passwords.  On loopback the relay offers
 * STARTTLS (STLS) with a certificate it makes once for localhost, so that
 * clients that insist on TLS (fetchmail 6.4) can have it; for other
 * machines TLS with the configured certificate (relay_tls_certificate,
 * relay_tls_key) comes before any login, and the login's password is
 * checked against the account's relay_password_hash (libxcrypt's
 * yescrypt), compared in constant time. */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "relay_internal.h"
#include "tokend/cryptlib.h"
#include "tokend/log.h"
#include "tokend/paths.h"

#define LOOPBACK_DIR "_relay-tls" /* not an account name: those start alphanumeric */
#define LOOPBACK_NAMES "DNS:localhost,IP:127.0.0.1,IP:::1"
#define LOOPBACK_DAYS (10 * 365)
#define HANDSHAKE_TIMEOUT_US (30 * G_USEC_PER_SEC)

G_DEFINE_AUTOPTR_CLEANUP_FUNC(X509, X509_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BIO, BIO_free)

static char *loopback_dir(void)
{
    g_autofree char *state = paths_state_dir();

    return g_build_filename(state, LOOPBACK_DIR, NULL);
}

char *relay_tls_loopback_cert_path(void)
{
    g_autofree char *dir = loopback_dir();

    return g_build_filename(dir, "cert.pem", NULL);
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if (!(ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)))
        return -1;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* A self-signed certificate for the loopback names. */
static X509 *loopback_cert(EVP_PKEY *key)
{
    g_autoptr(X509) x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn;
    X509_NAME *name;
    int ok;

    if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
        return NULL;
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    name = X509_get_subject_name(x);
    if (!ok || X509_set_version(x, X509_VERSION_3) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), LOOPBACK_DAYS, 0, NULL) ||
        X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"tokend relay",
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1)
        return NULL;
    if (add_ext(x, NID_subject_alt_name, LOOPBACK_NAMES) < 0 ||
        add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") < 0 || X509_sign(x, key, EVP_sha256()) <= 0)
        return NULL;
    return g_steal_pointer(&x);
}

/* data into dir/name, created (never replaced) with mode. */
static int write_new(const char *dir, const char *name, const char *data, size_t len, mode_t mode,
                     struct tokend_error *e)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    bool ok;

    if (fd < 0)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create %s: %s", path, g_strerror(errno));
    ok = write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) < 0 || !ok)
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot write %s: %s", path, g_strerror(errno));
    return 0;
}

/* The PEM text of the key (wiped by the caller) and of the certificate. */
static int make_pems(BUF_MEM **key_pem, BUF_MEM **cert_pem, BIO *kb, BIO *cb)
{
    g_autoptr(EVP_PKEY) key = EVP_EC_gen("P-256");
    g_autoptr(X509) cert = key ? loopback_cert(key) : NULL;

    if (!cert || PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(cb, cert) != 1)
        return -1;
    BIO_get_mem_ptr(kb, key_pem);
    BIO_get_mem_ptr(cb, cert_pem);
    return 0;
}

/* Key and certificate in a new private folder, which then takes the
 * final name in one rename: readers see all of it or nothing.  When
 * another relay process made it first, its folder stays. */
static int make_loopback(const char *dir, struct tokend_error *e)
{
    g_autofree char *tmp = g_strconcat(dir, ".XXXXXX", NULL);
    g_autoptr(BIO) kb = BIO_new(BIO_s_secmem());
    g_autoptr(BIO) cb = BIO_new(BIO_s_mem());
    BUF_MEM *key = NULL, *cert = NULL;
    int rc = -1;

    if (!kb || !cb || make_pems(&key, &cert, kb, cb) < 0)
        return error_set(e, TOKEND_EX_SOFTWARE, "cannot make the relay's loopback certificate");
    if (!g_mkdtemp_full(tmp, 0700))
        return error_set(e, TOKEND_EX_CANTCREAT, "cannot create %s: %s", tmp, g_strerror(errno));
    if (write_new(tmp, "key.pem", key->data, key->length, 0600, e) == 0 &&
        write_new(tmp, "cert.pem", cert->data, cert->length, 0644, e) == 0) {
        rc = 0;
        if (rename(tmp, dir) == 0)
            log_info("relay: made a certificate for loopback in %s", dir);
        else if (errno != EEXIST && errno != ENOTEMPTY)
            rc = error_set(e, TOKEND_EX_CANTCREAT, "cannot create %s: %s", dir, g_strerror(errno));
    }
    if (access(tmp, F_OK) == 0) {
        g_autofree char *k = g_build_filename(tmp, "key.pem", NULL);
        g_autofree char *c = g_build_filename(tmp, "cert.pem", NULL);
        unlink(k);
        unlink(c);
        rmdir(tmp);
    }
    return rc;
}

int relay_tls_loopback(char **cert, char **key, struct tokend_error *e)
{
    g_autofree char *state = paths_state_dir();
    g_autofree char *dir = loopback_dir();

    if (paths_ensure_private_dir(state, e) < 0)
        return -1;
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR) && make_loopback(dir, e) < 0)
        return -1;
    if (paths_trust_private_dir(dir, e) != 0)
        return e->message ? -1 : error_set(e, TOKEND_EX_CANTCREAT, "%s is missing", dir);
    *cert = g_build_filename(dir, "cert.pem", NULL);
    *key = g_build_filename(dir, "key.pem", NULL);
    return 0;
}

bool relay_tls_offered(const RelayIO *io, const struct relay_ctx *ctx)
{
    return ctx->tcp && !io->tls;
}

bool relay_tls_login_allowed(const RelayIO *io, const struct relay_ctx *ctx)
{
    return !ctx->remote || io->tls;
}

int relay_tls_start(RelayIO *io, const struct relay_ctx *ctx, struct tokend_error *e)
{
    const Config *cfg = ctx->cfg;
    g_autofree char *cert = NULL, *key = NULL;
    gint64 deadline = g_get_monotonic_time() + HANDSHAKE_TIMEOUT_US;

    if (io->off < io->len)
        log_verbose("relay: dropped %zu bytes the client sent before TLS", io->len - io->off);
    io->off = io->len = 0;
    if (cfg->relay_tls_certificate && cfg->relay_tls_key) {
        cert = g_strdup(cfg->relay_tls_certificate);
        key = g_strdup(cfg->relay_tls_key);
    } else if (ctx->remote) {
        return error_set(e, TOKEND_EX_CONFIG, "no relay_tls_certificate and relay_tls_key");
    } else if (relay_tls_loopback(&cert, &key, e) < 0) {
        return -1;
    }
    if (!(io->tls = netconn_accept_tls(io->in, cert, key, deadline, e)))
        return -1;
    log_verbose("relay: TLS with the client");
    return 0;
}

bool relay_tls_go(RelayIO *io, const struct relay_ctx *ctx, const char *go)
{
    struct tokend_error e = TOKEND_ERROR_INIT;

    if (relay_io_say(io, "%s", go) < 0)
        return false;
    if (relay_tls_start(io, ctx, &e) == 0)
        return true;
    log_warn("relay: TLS with the client failed: %s", e.message);
    error_clear(&e);
    return false;
}

/* Passwords --------------------------------------------------------------- */

/* libcrypt (cryptlib.h) is loaded by the first use: a relay serving other
 * machines loads it in relay_remote_ready, before its sessions start. */

/* A relay_password_hash tokend accepts: yescrypt ($y$ or $gy$) whose
 * parameters libxcrypt finds sound. */
static bool hash_usable(const struct cryptlib *lib, const char *hash)
{
    return hash && (g_str_has_prefix(hash, "$y$") || g_str_has_prefix(hash, "$gy$")) &&
           lib->checksalt(hash) == CRYPT_SALT_OK;
}

/* password matches hash: crypt's answer compared in constant time. */
static bool password_matches(const struct cryptlib *lib, const char *password, const char *hash)
{
    struct crypt_data *cd = g_malloc0(sizeof(*cd));
    const char *out = lib->rn(password, hash, cd, sizeof(*cd));
    size_t len = strlen(hash);
    bool ok = out && out[0] != '*' && strlen(out) == len && CRYPTO_memcmp(out, hash, len) == 0;

    explicit_bzero(cd, sizeof(*cd));
    g_free(cd);
    return ok;
}

int relay_password_check(const struct relay_ctx *ctx, const Account *a, const char *password,
                         struct tokend_error *e)
{
    const struct cryptlib *lib;

    if (!ctx->remote)
        return 0;
    if (!(lib = cryptlib_load(e)))
        return -1;
    if (!hash_usable(lib, a->relay_password_hash))
        return error_set(e, TOKEND_EX_NOPERM,
                         "%s has no usable relay_password_hash (yescrypt) for other machines",
                         a->name);
    if (!password || !password_matches(lib, password, a->relay_password_hash))
        return error_set(e, TOKEND_EX_NOPERM, "wrong password for %s", a->name);
    return 0;
}

int relay_password_take(const struct relay_ctx *ctx, const Account *a, char *password, char **why)
{
    struct tokend_error e = TOKEND_ERROR_INIT;
    int rc = a ? relay_password_check(ctx, a, password, &e) : -1;

    if (password)
        explicit_bzero(password, strlen(password));
    g_free(password);
    if (rc < 0 && a) {
        log_warn("relay: %s", e.message);
        *why = g_strdup(e.message);
    }
    error_clear(&e);
    return rc;
}

char *relay_password_hash_new(const char *password, struct tokend_error *e)
{
    const struct cryptlib *lib = cryptlib_load(e);
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    char *hash = NULL;

    if (!lib)
        return NULL;
    if (!lib->gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt))) {
        error_set(e, TOKEND_EX_SOFTWARE, "cannot make a yescrypt salt: %s", g_strerror(errno));
        return NULL;
    }
    cd = g_malloc0(sizeof(*cd));
    if (lib->rn(password, salt, cd, sizeof(*cd)) && cd->output[0] == '$')
        hash = g_strdup(cd->output);
    else
        error_set(e, TOKEND_EX_SOFTWARE, "cannot hash the password: %s", g_strerror(errno));
    explicit_bzero(cd, sizeof(*cd));
    g_free(cd);
    return hash;
}

/* For other machines ------------------------------------------------------ */

static bool some_account_has_hash(const struct cryptlib *lib, const Config *cfg)
{
    for (guint i = 0; i < cfg->accounts->len; i++) {
        const Account *a = g_ptr_array_index(cfg->accounts, i);
        if (hash_usable(lib, a->relay_password_hash))
            return true;
    }
    return false;
}

int relay_remote_ready(const Config *cfg, struct tokend_error *e)
{
    const char *why = "the relay serves other machines only over TLS with a password per "
                      "account, stored as a hash";
    const struct cryptlib *lib;

    if (!cfg->relay_tls_certificate || !cfg->relay_tls_key) {
        error_set(e, TOKEND_EX_CONFIG,
                  "%s: set relay_tls_certificate and relay_tls_key in "
                  "[defaults]",
                  why);
        return -1;
    }
    if (netconn_check_server_tls(cfg->relay_tls_certificate, cfg->relay_tls_key, e) < 0) {
        error_prefix(e, "%s", why);
        return -1;
    }
    if (!(lib = cryptlib_load(e))) {
        error_prefix(e, "%s", why);
        return -1;
    }
    if (!some_account_has_hash(lib, cfg)) {
        error_set(e, TOKEND_EX_CONFIG, "%s: no account has a relay_password_hash (yescrypt)", why);
        error_set_hint(e, "run: tokend relay-password ACCOUNT");
        return -1;
    }
    return 0;
}
